"""`Template`: the voxel grid (and mask) that coordinate maps are drawn on.

A template is a shape, a voxel→world affine (RAS+ mm, voxel index = voxel centre), the voxel
sizes as a NIfTI header stores them (float32, which NiMARE's kernels use), and an optional
mask. Maps in the ``"masked"`` layout list the mask's voxels in C order, exactly as NiMARE's
``return_type="array"`` does.

World → voxel follows NiMARE's ``nimare.utils.mm2vox`` to the bit: the inverse affine applied
with nibabel's ``apply_affine`` in float64, then ``numpy.round`` (round half to even, so
``x = 1 mm`` on a 2 mm grid centred at 0 rounds to the even index).

Example:
    >>> from brrrr.preprocess.kernels import Template
    >>> tpl = Template.mni152(mask="brain")  # doctest: +SKIP
    >>> tpl.shape, tpl.n_voxels  # doctest: +SKIP
    ((91, 109, 91), 228483)
    >>> tpl.to_voxels([[0.0, 0.0, 0.0]])  # doctest: +SKIP
    array([[45, 63, 36]])
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from brrrr.core import geometry
from brrrr.core.errors import GeometryError, MissingDependencyError
from brrrr.preprocess.errors import CoordinateError

if TYPE_CHECKING:
    from brrrr.core import Volume

__all__ = ["Template"]

_NIMARE_TEMPLATES = {
    # (resolution, mask) -> file under nimare/resources/templates
    (2, "brain"): "tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz",
    (2, "ale"): "MNI152_2x2x2_brainmask.nii.gz",
    (2, "none"): "tpl-MNI152NLin6Asym_res-02_T1w.nii.gz",
    (1, "brain"): "tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz",
    (1, "none"): "tpl-MNI152NLin6Asym_res-01_T1w.nii.gz",
}


class Template:
    """A voxel grid with an optional mask.

    Args:
        affine: (4, 4) voxel→world matrix, RAS+ mm.
        shape: Grid shape ``(I, J, K)``.
        mask: (I, J, K) bool, the voxels maps are kept on; ``None`` keeps the whole grid.
        zooms: (3,) voxel sizes in mm as the NIfTI header stores them (float32). ``None``
            derives them from the affine's column lengths.
        name: Free-form label (a file name), shown in errors.

    Raises:
        GeometryError: Bad affine, shape, or a mask of another shape.
    """

    def __init__(
        self,
        affine: np.ndarray | Sequence[Sequence[float]],
        shape: Sequence[int],
        *,
        mask: np.ndarray | None = None,
        zooms: np.ndarray | Sequence[float] | None = None,
        name: str = "",
    ) -> None:
        checked = geometry.check_affine(affine, path=name or None)
        checked.flags.writeable = False
        grid = tuple(int(n) for n in shape)
        if len(grid) != 3 or min(grid) < 1:
            raise GeometryError(f"a template grid is 3D, got shape {grid}", path=name or None)
        kept = None
        if mask is not None:
            kept = np.asarray(mask).astype(bool)
            if kept.shape != grid:
                raise GeometryError(
                    f"mask shape {kept.shape} differs from the grid shape {grid}",
                    path=name or None,
                )
            kept.flags.writeable = False
        sizes = np.asarray(
            geometry.spacing(checked) if zooms is None else zooms, dtype=np.float32
        ).reshape(3)
        sizes.flags.writeable = False
        #: (4, 4) float64 voxel→world affine (read-only).
        self.affine: np.ndarray = checked
        #: Grid shape (I, J, K).
        self.shape: tuple[int, int, int] = (grid[0], grid[1], grid[2])
        #: (I, J, K) bool mask, or None for the whole grid.
        self.mask: np.ndarray | None = kept
        #: (3,) float32 voxel sizes, mm.
        self.zooms: np.ndarray = sizes
        #: Label shown in errors (the file name).
        self.name = name
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(checked, dtype="<f8").tobytes())
        digest.update(np.asarray(grid, dtype="<i8").tobytes())
        digest.update(sizes.astype("<f4").tobytes())
        digest.update(b"nomask" if kept is None else np.packbits(kept.reshape(-1)).tobytes())
        self._fingerprint = digest.hexdigest()

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def from_volume(
        cls,
        volume: Volume,
        *,
        mask: Literal["nonzero", "none"] = "nonzero",
        zooms: np.ndarray | None = None,
    ) -> Template:
        """The grid of a :class:`~brrrr.core.Volume`; its nonzero voxels as the mask.

        Args:
            volume: An ``(I, J, K)`` volume (a brain mask or a T1).
            mask: ``"nonzero"`` keeps voxels whose value is not 0 (NiMARE's rule for mask
                images); ``"none"`` keeps the whole grid.
            zooms: (3,) voxel sizes as a header stores them; ``None`` uses the affine's.
        """
        data = volume.data if volume.data.ndim == 3 else volume.data[0]
        return cls(
            np.asarray(volume.affine),
            volume.shape,
            mask=None if mask == "none" else data.astype(bool),
            zooms=np.asarray(volume.spacing if zooms is None else zooms, dtype=np.float32),
            name=volume.source or "",
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, mask: Literal["nonzero", "none"] = "nonzero"
    ) -> Template:
        """Read a template or mask image (NIfTI, MGZ, ...) with :func:`brrrr.core.load_volume`.

        The voxel sizes come from the header (``pixdim``) when it has them, as NiMARE's do.
        """
        from brrrr.core import load_volume

        return cls.from_volume(load_volume(path), mask=mask, zooms=_header_zooms(path))

    @classmethod
    def mni152(
        cls,
        *,
        resolution_mm: Literal[1, 2] = 2,
        mask: Literal["brain", "ale", "none"] = "brain",
    ) -> Template:
        """The MNI152 templates NiMARE ships (without importing NiMARE).

        Args:
            resolution_mm: 2 (91×109×91) or 1 (182×218×182).
            mask: ``"brain"``: TemplateFlow's MNI152NLin6Asym brain mask (NiMARE's default
                masker, x step +2 mm); ``"ale"``: GingerALE's conservative 2 mm mask
                (``MNI152_2x2x2_brainmask``, x step −2 mm); ``"none"``: the whole T1 grid.

        Raises:
            MissingDependencyError: NiMARE is not installed.
            GeometryError: No such resolution/mask combination is shipped.
        """
        relative = _NIMARE_TEMPLATES.get((resolution_mm, mask))
        if relative is None:
            raise GeometryError(
                f"NiMARE ships no {resolution_mm} mm template with mask={mask!r}; "
                f"choose one of {sorted(_NIMARE_TEMPLATES)}"
            )
        spec = importlib.util.find_spec("nimare")
        if spec is None or not spec.submodule_search_locations:
            raise MissingDependencyError(
                'the MNI152 templates ship with NiMARE: pip install "brrrr-preprocess[nimare]"'
            )
        root = Path(next(iter(spec.submodule_search_locations)))
        path = root / "resources" / "templates" / relative
        return cls.load(path, mask="none" if mask == "none" else "nonzero")

    # -- derived -----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """SHA-256 of affine, shape, zooms and mask: equal grids have equal fingerprints."""
        return self._fingerprint

    @property
    def n_voxels(self) -> int:
        """Voxels kept per map in the ``"masked"`` layout (the mask's size, else the grid's)."""
        return int(self.flat_index.size)

    @cached_property
    def flat_index(self) -> np.ndarray:
        """(V,) int64 C-order flat positions of the kept voxels (NiMARE's column order)."""
        if self.mask is None:
            return np.arange(int(np.prod(self.shape)), dtype=np.int64)
        return np.flatnonzero(self.mask.reshape(-1)).astype(np.int64)

    def to_voxels(self, coords_mm: np.ndarray | list[list[float]]) -> np.ndarray:
        """World mm → nearest voxel index, exactly as NiMARE's ``mm2vox``.

        Args:
            coords_mm: (P, 3) world coordinates, RAS+ mm.

        Returns:
            (P, 3) int64 voxel indices (may lie outside the grid).

        Raises:
            CoordinateError: Wrong shape or non-finite coordinates.
        """
        from nibabel.affines import apply_affine

        xyz = np.asarray(coords_mm, dtype=np.float64)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise CoordinateError(f"coordinates must have shape (P, 3), got {xyz.shape}")
        bad = ~np.isfinite(xyz).all(axis=1)
        if bad.any():
            raise CoordinateError(
                f"{int(bad.sum())} coordinates are NaN or infinite (rows "
                f"{np.flatnonzero(bad)[:5].tolist()}...); drop them before mapping"
            )
        return np.round(apply_affine(np.linalg.inv(self.affine), xyz)).astype(np.int64)

    def unmask(self, maps: np.ndarray) -> np.ndarray:
        """Masked maps back onto the grid, zeros outside the mask.

        Args:
            maps: (..., V) values in the ``"masked"`` layout.

        Returns:
            (..., I, J, K) array of the same dtype.
        """
        values = np.asarray(maps)
        if values.shape[-1] != self.n_voxels:
            raise GeometryError(
                f"maps have {values.shape[-1]} voxels, the template keeps {self.n_voxels}",
                path=self.name or None,
            )
        out = np.zeros((*values.shape[:-1], int(np.prod(self.shape))), dtype=values.dtype)
        out[..., self.flat_index] = values
        return out.reshape(*values.shape[:-1], *self.shape)

    def to_volume(self, map_values: np.ndarray, **metadata: object) -> Volume:
        """One map as a :class:`~brrrr.core.Volume` on this grid.

        Args:
            map_values: (V,) masked values or (I, J, K) grid values.
            **metadata: Stored in the volume's metadata.
        """
        from brrrr.core import Volume

        values = np.asarray(map_values)
        grid = values if values.shape == self.shape else self.unmask(values)
        return Volume(grid, self.affine, metadata={"template": self.name, **metadata})

    def __repr__(self) -> str:
        spacing = ", ".join(f"{z:.3g}" for z in self.zooms)
        return (
            f"Template(shape={self.shape}, spacing=({spacing}) mm, "
            f"axcodes={geometry.axcodes(self.affine)!r}, voxels={self.n_voxels}"
            + (f", name={os.path.basename(self.name)!r})" if self.name else ")")
        )


def _header_zooms(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The voxel sizes a NIfTI/MGH header declares (float32), or ``None`` if unreadable."""
    import nibabel as nib

    try:
        zooms = nib.load(os.fspath(path)).header.get_zooms()[:3]  # type: ignore[attr-defined]
    except (OSError, ValueError, nib.filebasedimages.ImageFileError):
        # Not a single-file image nibabel knows (a DICOM folder): the affine's sizes serve.
        return None
    return np.asarray(zooms, dtype=np.float32)
