"""brrrr.core: volumes, geometry and fast NIfTI/MGZ/DICOM I/O.

Example:
    >>> from brrrr.core import load_volume, samples
    >>> vol = samples.phantom(shape=(32, 32, 24), spacing=(2.0, 2.0, 3.0))
    >>> vol.reorient("LPS").axcodes
    'LPS'
"""

from brrrr.core.io import load_volume, save_volume
from brrrr.core.volume import Volume

__all__ = ["Volume", "load_volume", "save_volume"]
__version__ = "0.1.0"
