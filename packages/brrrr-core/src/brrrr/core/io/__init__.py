"""Reading and writing volumes: NIfTI-1/2, MGH/MGZ, DICOM files and series."""

from brrrr.core.io.load import DEFAULT_MAX_VOXELS, load_volume, save_volume

__all__ = ["DEFAULT_MAX_VOXELS", "load_volume", "save_volume"]
