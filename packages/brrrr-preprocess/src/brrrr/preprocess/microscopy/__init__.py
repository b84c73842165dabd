"""Microscopy volumes (the MiniVess ``imagesTr/labelsTr`` layout, voxel sizes in µm).

Modules:
    dataset: pairing images with labels, sidecar voxel sizes, preparing a dataset.
    budget: resampling to a voxel size in µm under a memory budget (refuse or tile to disk).

The public names are importable from :mod:`brrrr.preprocess`.
"""

__all__: list[str] = []
