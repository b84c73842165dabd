"""Reading and writing volumes: NIfTI-1/2, MGH/MGZ, DICOM files and series.

The names below are imported on first use (PEP 562), so that importing a submodule such
as ``brrrr.core.io.header`` does not pay for nibabel, pydicom and scipy (about 0.9 s)
unless a loader that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from brrrr.core.io.header import VolumeHeader, read_header
    from brrrr.core.io.load import DEFAULT_MAX_VOXELS, load_volume, save_volume

__all__ = ["DEFAULT_MAX_VOXELS", "VolumeHeader", "load_volume", "read_header", "save_volume"]

__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "load": ["DEFAULT_MAX_VOXELS", "load_volume", "save_volume"],
        "header": ["VolumeHeader", "read_header"],
    },
)
