"""`Volume`: a voxel array with its voxel→world affine, metadata and source.

The array holds the spatial axes last: ``(I, J, K)`` for one channel or
``(C, I, J, K)`` for several (a 4D NIfTI's time points, DWI directions…). The
affine maps voxel indices to world RAS+ millimetres. ``shape``, ``spacing``,
``axcodes`` and ``origin`` are computed from those two, never stored.

Example:
    >>> import numpy as np
    >>> from brrrr.core import Volume
    >>> vol = Volume(np.zeros((4, 5, 6), dtype="f4"), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> vol
    Volume(shape=(4, 5, 6), dtype=float32, spacing=(2, 2, 3) mm, axcodes='RAS', memory=480 B)
    >>> vol.reorient("LPS").axcodes
    'LPS'
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from brrrr.core import geometry
from brrrr.core.errors import GeometryError, MissingDependencyError
from brrrr.core.resample import Boundary, Interpolation, grid_for_spacing, resample

if TYPE_CHECKING:
    import nibabel as nib
    import torch

__all__ = ["Volume"]


def _format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class Volume:
    """A voxel array on a world grid.

    Args:
        data: ``(I, J, K)`` or ``(C, I, J, K)`` array. Kept as given (no copy).
        affine: (4, 4) voxel→world matrix, RAS+ mm. Stored as float64.
        metadata: Free-form facts about the volume (format, header fields…).
        source: Where the volume came from (a path), if anywhere.

    Raises:
        GeometryError: The array is not 3D/4D or the affine is invalid.
    """

    __slots__ = ("_affine", "_data", "metadata", "source")

    def __init__(
        self,
        data: np.ndarray,
        affine: np.ndarray | Sequence[Sequence[float]],
        *,
        metadata: Mapping[str, Any] | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> None:
        array = np.asarray(data)
        if array.ndim not in (3, 4):
            raise GeometryError(
                f"a Volume holds an (I, J, K) or (C, I, J, K) array, got shape {array.shape}",
                path=source,
            )
        self._data = array
        self._affine = geometry.check_affine(affine, path=source)
        self._affine.flags.writeable = False
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.source: str | None = None if source is None else os.fspath(source)

    # -- the stored parts ------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The voxel array, ``(I, J, K)`` or ``(C, I, J, K)``."""
        return self._data

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) float64 voxel→world matrix (read-only view)."""
        # A view of a read-only array cannot be made writeable again, unlike the array itself.
        return self._affine.view()

    # -- derived ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(I, J, K)``."""
        i, j, k = self._data.shape[-3:]
        return (i, j, k)

    @property
    def channels(self) -> int:
        """Number of channels: 1 for an ``(I, J, K)`` array, else ``C``."""
        return 1 if self._data.ndim == 3 else int(self._data.shape[0])

    @property
    def dtype(self) -> np.dtype:
        """Voxel dtype."""
        return self._data.dtype

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(I, J, K)``."""
        s = geometry.spacing(self._affine)
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def axcodes(self) -> str:
        """Orientation code such as ``"RAS"`` (closest axes for oblique grids)."""
        return geometry.axcodes(self._affine)

    @property
    def origin(self) -> tuple[float, float, float]:
        """World position (mm) of the centre of voxel ``(0, 0, 0)``."""
        o = geometry.origin(self._affine)
        return (float(o[0]), float(o[1]), float(o[2]))

    @property
    def nbytes(self) -> int:
        """Memory held by the voxel array."""
        return int(self._data.nbytes)

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        channels = "" if self._data.ndim == 3 else f", channels={self.channels}"
        source = "" if self.source is None else f", source={os.path.basename(self.source)!r}"
        return (
            f"Volume(shape={self.shape}{channels}, dtype={self.dtype}, spacing=({spacing}) mm, "
            f"axcodes={self.axcodes!r}, memory={_format_bytes(self.nbytes)}{source})"
        )

    def _repr_html_(self) -> str | None:
        """Jupyter's rich display: an interactive viewer when one is installed, else ``None``.

        ``brrrr.core`` draws nothing itself (it imports no viewer): a package that registers
        a function under the entry-point group ``brrrr.html_repr`` (``brrrr-demos`` does:
        NiiVue, offline) renders the volume; with none installed Jupyter shows the plain
        ``repr``. A renderer that fails also falls back to the plain ``repr``.
        """
        for render in _html_renderers():
            try:
                html = render(self)
            except Exception:  # a display hook must never break printing a volume
                continue
            if isinstance(html, str):
                return html
        return None

    def with_data(self, data: np.ndarray, affine: np.ndarray | None = None) -> Volume:
        """A new volume with other voxels (and optionally another affine), same metadata."""
        return Volume(
            data,
            self._affine if affine is None else affine,
            metadata=self.metadata,
            source=self.source,
        )

    # -- conversion ------------------------------------------------------------------
    def to_numpy(self) -> np.ndarray:
        """The voxel array itself (no copy)."""
        return self._data

    def to_torch(self, device: str | torch.device | None = None) -> torch.Tensor:
        """The voxels as a torch tensor.

        Shares memory with :attr:`data` on the CPU when the strides allow it
        (positive strides, a dtype torch has); a reoriented view with flipped
        axes is copied once. ``device="cuda"`` copies to the GPU.
        """
        try:
            import torch
        except ImportError:
            raise MissingDependencyError(
                'Volume.to_torch needs torch: pip install "brrrr-core[torch]"'
            ) from None
        array = self._data
        # ``isnative``, not ``byteorder == "="``: nibabel spells native order "<" explicitly.
        if any(s < 0 for s in array.strides) or not array.dtype.isnative:
            array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(array)
        return tensor if device is None else tensor.to(device)

    def to_nibabel(self) -> nib.Nifti1Image | nib.Nifti2Image:
        """A nibabel NIfTI image sharing this volume's array (channels go to the 4th axis).

        ``image.affine`` is this volume's float64 affine. NIfTI has no bool or float16,
        so those become uint8 and float32 (a copy); 64-bit integers are kept.
        """
        import nibabel as nib

        array = self._data if self._data.ndim == 3 else np.moveaxis(self._data, 0, -1)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        elif array.dtype == np.float16:
            array = array.astype(np.float32)
        # nibabel refuses 64-bit integer data unless the dtype is asked for explicitly.
        wide = array.dtype.kind in "iu" and array.dtype.itemsize == 8
        cls = nib.Nifti2Image if max(array.shape) > np.iinfo(np.int16).max else nib.Nifti1Image
        image = cls(array, self._affine, dtype=array.dtype if wide else None)
        header = image.header
        header.set_xyzt_units("mm", "sec")
        sform_code = int(self.metadata.get("sform_code", 0) or 0)
        qform_code = int(self.metadata.get("qform_code", 0) or 0)
        # Set the codes on the header: ``image.set_sform`` would also replace the
        # image's float64 affine by the header's float32 copy.
        header.set_sform(self._affine, code=sform_code or 2)
        header.set_qform(self._affine, code=qform_code or 1)
        if self.metadata.get("descrip"):
            header["descrip"] = str(self.metadata["descrip"])[:79]
        if self.metadata.get("repetition_time_s"):
            header["pixdim"][4] = float(self.metadata["repetition_time_s"])
        return image

    @classmethod
    def from_nibabel(cls, image: Any, *, source: str | os.PathLike[str] | None = None) -> Volume:
        """Wrap any nibabel spatial image (NIfTI, MGH, MINC, PAR/REC…).

        The 4th and later axes become channels; scaling (slope/intercept) is applied.
        """
        data = np.asanyarray(image.dataobj)
        if data.ndim < 3:
            data = data.reshape(data.shape + (1,) * (3 - data.ndim))
        if data.ndim > 3:
            data = np.moveaxis(data.reshape(*data.shape[:3], -1, order="F"), -1, 0)
        if source is None and getattr(image, "get_filename", None) is not None:
            source = image.get_filename()
        return cls(data, image.affine, metadata={"format": type(image).__name__}, source=source)

    # -- geometry --------------------------------------------------------------------
    def reorient(self, code: str) -> Volume:
        """The same voxels, flipped and permuted to orientation ``code`` (exact, a view).

        Args:
            code: Orientation code, e.g. ``"RAS"``, ``"LPS"``, ``"RPI"``.
        """
        plan = geometry.reorientation(self._affine, code, shape=self.shape)
        if plan.is_identity:
            return self
        return self.with_data(plan.apply(self._data), plan.transform_affine(self._affine))

    def resample(
        self,
        spacing: float | Sequence[float] | None = None,
        *,
        like: Volume | None = None,
        interpolation: Interpolation = "linear",
        boundary: Boundary = "blend",
        fill: float = 0.0,
        device: str | None = None,
    ) -> Volume:
        """Resample to a voxel size, or onto another volume's grid.

        Args:
            spacing: New voxel size in mm (one number or three). The field of view's
                centre and the axis directions are kept (see
                :func:`brrrr.core.resample.grid_for_spacing`).
            like: A volume whose grid (shape and affine) to resample onto instead.
            interpolation: ``"nearest"``, ``"linear"`` or ``"cubic"``.
            boundary: ``"blend"`` or ``"extent"`` at the edge of the input (see
                :func:`brrrr.core.resample.resample`).
            fill: Value outside the input.
            device: Torch device to compute on; ``None`` stays on numpy.
        """
        if (spacing is None) == (like is None):
            raise GeometryError("give exactly one of spacing= or like=", path=self.source)
        if like is not None:
            shape, target = like.shape, like.affine
        else:
            assert spacing is not None
            shape, target = grid_for_spacing(self.shape, self._affine, spacing)
        out = resample(
            self._data,
            self._affine,
            target_shape=shape,
            target_affine=target,
            interpolation=interpolation,
            boundary=boundary,
            fill=fill,
            device=device,
        )
        return self.with_data(out, target)


HTML_REPR_GROUP = "brrrr.html_repr"


@functools.cache
def _html_renderers() -> tuple[Callable[[Volume], object], ...]:
    """The ``brrrr.html_repr`` entry points that load, in name order (looked up once)."""
    from importlib.metadata import entry_points

    renderers = []
    for entry in sorted(entry_points(group=HTML_REPR_GROUP), key=lambda e: e.name):
        try:
            renderers.append(entry.load())
        except Exception:  # an optional viewer whose dependencies are missing
            continue
    return tuple(renderers)
