"""brrrr.core: volumes, geometry and fast NIfTI/MGZ/DICOM I/O.

Example:
    >>> from brrrr.core import load_volume, samples
    >>> vol = samples.phantom(shape=(32, 32, 24), spacing=(2.0, 2.0, 3.0))
    >>> vol.reorient("LPS").axcodes
    'LPS'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brrrr.core.io import VolumeHeader, load_volume, read_header, save_volume
    from brrrr.core.volume import Volume

__all__ = ["Volume", "VolumeHeader", "load_volume", "read_header", "save_volume"]
__version__ = "0.1.0"

# Imported on first use (PEP 562): the `brrrr` command imports `brrrr.core.cli` on
# every start, and should not pay for nibabel and pydicom unless a command reads data.
_LAZY = {
    "Volume": "brrrr.core.volume",
    "VolumeHeader": "brrrr.core.io",
    "load_volume": "brrrr.core.io",
    "read_header": "brrrr.core.io",
    "save_volume": "brrrr.core.io",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brrrr.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
