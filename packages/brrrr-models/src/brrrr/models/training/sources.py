"""Where training studies come from: peak tables, kernels and (coarsened) template grids.

* :func:`load_peaks` reads NiMARE's shipped ``nback_vs_flanker`` studyset, any NiMARE studyset
  folder or dataset ``.json``, or a plain ``.csv``/``.tsv`` peak table, and returns the
  :class:`~brrrr.preprocess.kernels.PeakTable` (one row per analysis) with the *study* of each
  row, which is what splits group by.
* :func:`kernel_from_spec` turns ``{"name": "gaussian", "fwhm_mm": 12}`` into a kernel.
* :func:`coarsen_template` makes a coarser grid covering the same field of view, for quick runs.

Example:
    >>> import numpy as np
    >>> from brrrr.preprocess.kernels import Template
    >>> tpl = Template(np.diag([2.0, 2.0, 2.0, 1.0]), (91, 109, 91))
    >>> coarse = coarsen_template(tpl, factor=4)
    >>> coarse.shape, coarse.zooms.tolist(), coarse.affine[:3, 3].tolist()
    ((23, 28, 23), [8.0, 8.0, 8.0], [3.0, 3.0, 3.0])
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brrrr.models.errors import ModelConfigError
from brrrr.preprocess.kernels import ALE, KDA, MKDA, Gaussian, Kernel, PeakTable, Template

__all__ = [
    "NIMARE_STUDYSET",
    "coarsen_template",
    "kernel_from_spec",
    "load_peaks",
    "select_studies",
]

NIMARE_STUDYSET = "nback_vs_flanker_studyset_2026-07"
_KERNELS: dict[str, type[Kernel]] = {"mkda": MKDA, "kda": KDA, "ale": ALE, "gaussian": Gaussian}


def kernel_from_spec(spec: Mapping[str, Any]) -> Kernel:
    """A kernel from ``{"name": ..., **arguments}``.

    Raises:
        ModelConfigError: Unknown kernel name or arguments.
    """
    arguments = dict(spec)
    name = str(arguments.pop("name", "gaussian")).lower()
    if name not in _KERNELS:
        raise ModelConfigError(f"unknown kernel {name!r}; choose one of {sorted(_KERNELS)}")
    try:
        return _KERNELS[name](**arguments)
    except TypeError as exc:
        raise ModelConfigError(f"bad arguments for kernel {name!r}: {exc}") from None


def coarsen_template(template: Template, *, factor: int) -> Template:
    """The grid with voxels ``factor`` times larger, over the same field of view.

    Coarse voxel ``i`` covers fine voxels ``factor * i … factor * i + factor - 1`` on each axis,
    so its centre is at fine index ``factor * i + (factor - 1) / 2``; the shape is rounded up.
    A coarse voxel is in the mask when any fine voxel it covers is.

    Args:
        template: The fine grid (e.g. MNI152 2 mm).
        factor: Integer coarsening factor (1 returns ``template``).

    Returns:
        The coarse :class:`~brrrr.preprocess.kernels.Template`.
    """
    if factor < 1:
        raise ModelConfigError(f"downsample factor must be >= 1, got {factor}")
    if factor == 1:
        return template
    scale = np.diag([float(factor)] * 3 + [1.0])
    scale[:3, 3] = (factor - 1) / 2.0
    shape = tuple(-(-side // factor) for side in template.shape)
    mask = None
    if template.mask is not None:
        padded = np.zeros([s * factor for s in shape], dtype=bool)
        i, j, k = template.shape
        padded[:i, :j, :k] = template.mask
        blocks = padded.reshape(shape[0], factor, shape[1], factor, shape[2], factor)
        mask = np.asarray(blocks.any(axis=(1, 3, 5)), dtype=bool)
    return Template(
        template.affine @ scale,
        shape,
        mask=mask,
        zooms=template.zooms * factor,
        name=f"{template.name}@x{factor}",
    )


def _nimare_collection(source: str) -> Any:
    from brrrr.core.errors import MissingDependencyError

    try:
        from nimare.dataset import Dataset
        from nimare.studyset import Studyset
        from nimare.utils import get_resource_path
    except ImportError:
        raise MissingDependencyError(
            'reading NiMARE studysets needs NiMARE: pip install "brrrr-preprocess[nimare]"'
        ) from None
    path = (
        Path(get_resource_path()) / NIMARE_STUDYSET
        if source == "nimare:nback_vs_flanker"
        else Path(source)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Dataset(str(path)) if path.suffix == ".json" else Studyset(path)


def _read_table(path: Path) -> tuple[PeakTable, np.ndarray]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=delimiter))
    if not rows or not {"id", "x", "y", "z"} <= set(rows[0]):
        raise ModelConfigError("a peak table needs the columns id, x, y, z", path=path)
    ids = [r["id"] for r in rows]
    coords = np.array([[float(r[a]) for a in "xyz"] for r in rows])

    def per_study(column: str) -> dict[str, float | None] | None:
        if column not in rows[0]:
            return None
        return {r["id"]: float(r[column]) if r[column] not in ("", "nan") else None for r in rows}

    peaks = PeakTable.from_peaks(
        ids, coords, years=per_study("year"), sample_sizes=per_study("sample_size")
    )
    study_of = {r["id"]: r.get("study_id") or r["id"] for r in rows}
    return peaks, np.array([study_of[str(s)] for s in peaks.study_ids], dtype=object)


def load_peaks(source: str | os.PathLike[str]) -> tuple[PeakTable, np.ndarray]:
    """Read peaks, one row per analysis, and the study each analysis belongs to.

    Args:
        source: ``"nimare:nback_vs_flanker"``, a NiMARE studyset folder or dataset ``.json``
            (needs NiMARE), or a ``.csv``/``.tsv`` table with columns ``id``, ``x``, ``y``,
            ``z`` and optionally ``study_id``, ``year``, ``sample_size``.

    Returns:
        ``(peaks, groups)``: the table and ``(S,)`` study ids of its rows.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_table(path)
    if not text.startswith("nimare:") and not path.exists():
        raise ModelConfigError("no such peak source", path=path)
    collection = _nimare_collection(text)
    peaks = PeakTable.from_nimare(collection)
    frame = collection.coordinates
    study_column = "study_id" if "study_id" in frame.columns else "id"
    study_of = dict(zip(frame["id"].astype(str), frame[study_column].astype(str), strict=True))
    return peaks, np.array([study_of[str(s)] for s in peaks.study_ids], dtype=object)


def select_studies(groups: np.ndarray, *, max_studies: int | None, seed: int = 0) -> np.ndarray:
    """Rows of at most ``max_studies`` whole studies, chosen by a seeded hash of the study id.

    Args:
        groups: ``(S,)`` study of each row.
        max_studies: Studies to keep, or ``None`` for all.
        seed: Seed of the choice.

    Returns:
        Ascending row indices.
    """
    if max_studies is None:
        return np.arange(len(groups), dtype=np.int64)
    from brrrr.models.training.splits import study_split

    studies = sorted(set(map(str, groups)))
    if max_studies >= len(studies):
        return np.arange(len(groups), dtype=np.int64)
    keep_fraction = max_studies / len(studies)
    # The "val" share of a split with only a val fraction is a seeded sample of studies.
    return study_split(groups, val_fraction=keep_fraction, test_fraction=0.0, seed=seed)["val"]
