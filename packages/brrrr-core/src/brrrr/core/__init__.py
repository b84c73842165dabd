"""brrrr.core: volumes, geometry and fast NIfTI/MGZ/DICOM I/O.

Example:
    >>> from brrrr.core import load_volume, samples
    >>> vol = samples.phantom(shape=(32, 32, 24), spacing=(2.0, 2.0, 3.0))
    >>> vol.reorient("LPS").axcodes
    'LPS'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from brrrr.core.io import VolumeHeader, load_volume, read_header, save_volume
    from brrrr.core.volume import Volume

__all__ = ["Volume", "VolumeHeader", "load_volume", "read_header", "save_volume"]
__version__ = "0.1.0"

# Imported on first use (PEP 562, through lazy_loader): the `brrrr` command imports
# `brrrr.core.cli` on every start, and should not pay for nibabel and pydicom unless a
# command reads data.
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submodules=["errors", "files", "geometry", "io", "resample", "samples", "testing", "volume"],
    submod_attrs={
        "volume": ["Volume"],
        "io": ["VolumeHeader", "load_volume", "read_header", "save_volume"],
    },
)
