"""Reading and writing volumes: NIfTI-1/2, MGH/MGZ, DICOM files and series.

The names below are imported on first use (PEP 562), so that importing a submodule such
as ``brrrr.core.io.nifti`` or ``brrrr.core.io._atomic`` does not pay for nibabel, pydicom
and scipy (about 0.9 s) unless a loader that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brrrr.core.io.load import DEFAULT_MAX_VOXELS, load_volume, save_volume

__all__ = ["DEFAULT_MAX_VOXELS", "load_volume", "save_volume"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'brrrr.core.io' has no attribute {name!r}")
    value = getattr(importlib.import_module("brrrr.core.io.load"), name)
    globals()[name] = value
    return value
