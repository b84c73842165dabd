"""`Layer`: one volume of a view, with its colormap, opacity, display range and threshold.

A layer is handed to NiiVue as the bytes of a gzipped NIfTI-1 file written from the
:class:`~brrrr.core.Volume` by nibabel (``Volume.to_nibabel``, the encoder of core's NIfTI
writer), so NiiVue reads the same voxel→world affine (sform, RAS+ mm) that the volume has.

Example:
    >>> from brrrr.core import samples
    >>> from brrrr.demos.viewer import Layer
    >>> image, lesion = samples.lesion_phantom(shape=(32, 38, 32), spacing=6.0)
    >>> Layer(lesion, colormap="red", opacity=0.6).display_range()
    (0.0, 1.0)
"""

from __future__ import annotations

import base64
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.demos.errors import LayerError, ViewerError
from brrrr.demos.viewer.assets import niivue_bundle

if TYPE_CHECKING:
    from brrrr.core import Volume

__all__ = ["Layer"]

# NiiVue reads these voxel types as they are; others are sent as float32 (NiiVue itself
# widens 32/64-bit integers to float64, so nothing that fits float32 is lost on screen).
_SENT_AS_IS = {np.dtype(t) for t in ("u1", "i1", "u2", "i2", "f4")}
# Fraction of voxels above the default top of the display range: 0.5 %, so a few bright
# outliers do not wash out the image (a binary mask falls back to its maximum).
_ROBUST_TOP = 99.5


class Layer:
    """One volume of a :class:`~brrrr.demos.viewer.View` and how it is drawn.

    Args:
        source: A :class:`~brrrr.core.Volume`, or a path that
            :func:`brrrr.core.load_volume` reads (NIfTI, MGZ, a DICOM file or folder).
        colormap: A NiiVue colormap name (``"gray"``, ``"red"``, ``"hot"``, ``"viridis"``…;
            :attr:`~brrrr.demos.viewer.assets.NiivueBundle.colormaps` lists them).
        opacity: 0 (invisible) to 1 (opaque).
        cal_min: Value drawn with the colormap's first colour. Default: the threshold
            when one is given, else the volume's minimum.
        cal_max: Value drawn with the colormap's last colour. Default: the 99.5th
            percentile (the maximum when that is not above ``cal_min``).
        threshold: Voxels below this value are hidden: on an overlay they are
            transparent, on the base layer they take the colormap's first colour.
        name: A label for the layer (default: the file name, or ``layer<N>``).

    Raises:
        LayerError: The volume is 2-D, has several channels, or holds NaN or infinite
            voxels (the message names the file).
        ViewerError: An option is out of range or the colormap is unknown.
        VolumeReadError: ``source`` is a path that cannot be read (core's error, naming it).
        UnsupportedFormatError: ``source`` is a file that is not an image (core's error).
    """

    __slots__ = ("cal_max", "cal_min", "colormap", "name", "opacity", "threshold", "volume")

    def __init__(
        self,
        source: Volume | str | os.PathLike[str],
        *,
        colormap: str = "gray",
        opacity: float = 1.0,
        cal_min: float | None = None,
        cal_max: float | None = None,
        threshold: float | None = None,
        name: str | None = None,
    ) -> None:
        self.volume: Volume = _as_volume(source)
        _check_volume(self.volume)
        if colormap not in niivue_bundle().colormaps:
            raise ViewerError(
                f"unknown colormap {colormap!r}; NiiVue's colormaps are: "
                + ", ".join(niivue_bundle().colormaps)
            )
        if not 0.0 <= float(opacity) <= 1.0:
            raise ViewerError(f"opacity must be between 0 and 1, got {opacity}")
        for label, value in (("cal_min", cal_min), ("cal_max", cal_max), ("threshold", threshold)):
            if value is not None and not np.isfinite(value):
                raise ViewerError(f"{label} must be a finite number, got {value}")
        if cal_min is not None and cal_max is not None and not cal_min < cal_max:
            raise ViewerError(f"cal_min ({cal_min}) must be below cal_max ({cal_max})")
        self.colormap = colormap
        self.opacity = float(opacity)
        self.cal_min = None if cal_min is None else float(cal_min)
        self.cal_max = None if cal_max is None else float(cal_max)
        self.threshold = None if threshold is None else float(threshold)
        self.name = name

    def __repr__(self) -> str:
        options = [f"colormap={self.colormap!r}", f"opacity={self.opacity:g}"]
        for label in ("cal_min", "cal_max", "threshold"):
            value = getattr(self, label)
            if value is not None:
                options.append(f"{label}={value:g}")
        return f"Layer({self.label(0)!r}, shape={self.volume.shape}, {', '.join(options)})"

    def label(self, index: int) -> str:
        """The layer's name: ``name``, else the source file's name, else ``layer<index>``."""
        if self.name:
            return self.name
        if self.volume.source:
            return _strip_image_suffix(Path(self.volume.source).name)
        return f"layer{index}"

    def display_range(self) -> tuple[float, float]:
        """``(cal_min, cal_max)`` as drawn, with the defaults filled in."""
        data = self.volume.data
        low = self.cal_min
        if low is None:
            low = self.threshold if self.threshold is not None else float(data.min())
        high = self.cal_max
        if high is None:
            high = float(np.percentile(data, _ROBUST_TOP))
            if not high > low:
                high = float(data.max())
            if not high > low:  # a constant image, or everything below the threshold
                high = low + 1.0
        return float(low), float(high)

    def voxels(self) -> np.ndarray:
        """The ``(I, J, K)`` array sent to the browser: threshold applied, in a type NiiVue reads."""
        data = self.volume.data
        if data.dtype == np.bool_:
            data = data.astype(np.uint8)
        if self.threshold is not None:
            low, _ = self.display_range()
            fill = min(low, float(data.min()))
            data = data.astype(np.float32)
            data[data < self.threshold] = fill
        if data.dtype.newbyteorder("=") not in _SENT_AS_IS:
            data = data.astype(np.float32)
        return data

    def nifti_bytes(self) -> bytes:
        """The layer as the bytes of a gzipped NIfTI-1 file (what NiiVue is given)."""
        volume = self.volume.with_data(self.voxels())
        raw = volume.to_nibabel().to_bytes()
        packer = zlib.compressobj(level=1, wbits=31)  # wbits=31: a gzip stream
        return packer.compress(raw) + packer.flush()

    def spec(self, index: int) -> dict[str, Any]:
        """The JSON the browser runtime loads this layer from."""
        low, high = self.display_range()
        return {
            "name": f"{self.label(index)}.nii.gz",
            "base64": base64.b64encode(self.nifti_bytes()).decode("ascii"),
            "colormap": self.colormap,
            "opacity": self.opacity,
            "cal_min": low,
            "cal_max": high,
        }


def _strip_image_suffix(name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _as_volume(source: Volume | str | os.PathLike[str]) -> Volume:
    from brrrr.core import Volume, load_volume

    if isinstance(source, Volume):
        return source
    if isinstance(source, str | os.PathLike):
        return load_volume(source)
    raise ViewerError(
        f"a layer is made from a brrrr.core.Volume or a file path, got {type(source).__name__}"
    )


def _check_volume(volume: Volume) -> None:
    where = volume.source
    if volume.channels > 1:
        raise LayerError(
            f"volume has {volume.channels} channels (shape {volume.data.shape}): a layer shows "
            "one 3-D volume; pick one, e.g. volume.with_data(volume.data[0])",
            path=where,
        )
    flat = [n for n in volume.shape if n == 1]
    if flat:
        raise LayerError(
            f"{3 - len(flat)}-D image (shape {volume.shape}): the viewer shows 3-D volumes",
            path=where,
        )
    data = volume.data
    if data.dtype.kind in "fc":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise LayerError(
                f"{bad} of {data.size} voxels are NaN or infinite: replace them "
                "(e.g. volume.with_data(numpy.nan_to_num(volume.data))) before viewing",
                path=where,
            )
    elif data.dtype.kind not in "biu":
        raise LayerError(f"cannot show voxels of dtype {data.dtype}", path=where)
