"""Reading and writing volumes: NIfTI-1/2, MGH/MGZ, DICOM files and series.

The names below are imported on first use (PEP 562), so that importing a submodule such
as ``brrrr.core.io.header`` does not pay for nibabel, pydicom and scipy (about 0.9 s)
unless a loader that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brrrr.core.io.header import VolumeHeader, read_header
    from brrrr.core.io.load import DEFAULT_MAX_VOXELS, load_volume, save_volume

__all__ = ["DEFAULT_MAX_VOXELS", "VolumeHeader", "load_volume", "read_header", "save_volume"]

_LAZY = {
    "DEFAULT_MAX_VOXELS": "brrrr.core.io.load",
    "VolumeHeader": "brrrr.core.io.header",
    "load_volume": "brrrr.core.io.load",
    "read_header": "brrrr.core.io.header",
    "save_volume": "brrrr.core.io.load",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brrrr.core.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
