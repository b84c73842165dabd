"""Per-study peak sets as fixed-size point clouds (the PointNet++ VAE's input).

Every study becomes exactly ``n_points`` points (MNI mm), by two documented rules:

* **fewer peaks than** ``n_points``: the real peaks first, in table order, then copies of them
  cycling from the first (``point j = peak j mod n``), so each peak is repeated at most once
  more than any other. ``is_real`` is True only for the first ``n`` points.
* **more peaks than** ``n_points``: dropout. ``n_points`` peaks are drawn without replacement
  with a generator seeded by ``(seed, SHA-256 of the study id)``, and kept in table order. The
  choice for a study does not depend on which other studies are in the table.

``source_index`` records which of the study's peaks each point is, so every point can be
traced to a real peak. A study with no peaks cannot be made into a cloud and is an error.

On disk (:func:`save_point_clouds`), a folder holds ``points.npy`` (S, N, 3) float32,
``is_real.npy`` (S, N) bool, ``source_index.npy`` (S, N) int32 (all memory-mappable), and
``studies.json`` (one record per study: id, year, sample size, space, peak count, points
dropped; missing facts are ``null``) plus the settings.

Example:
    >>> import numpy as np
    >>> from brrrr.preprocess.kernels import PeakTable
    >>> from brrrr.preprocess.pointclouds import to_point_clouds
    >>> peaks = PeakTable.from_peaks(["a", "a", "b"], np.array([[0.0, 0, 0], [2, 0, 0], [9, 9, 9]]))
    >>> clouds = to_point_clouds(peaks, n_points=3)
    >>> clouds.points.shape, clouds.is_real.tolist()
    ((2, 3, 3), [[True, True, False], [True, False, False]])
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brrrr.core.files import atomic_write
from brrrr.preprocess.errors import PointCloudError
from brrrr.preprocess.kernels import PeakTable

__all__ = [
    "PointClouds",
    "load_point_clouds",
    "save_point_clouds",
    "to_point_clouds",
]

_FORMAT = "brrrr.preprocess.pointclouds"
_VERSION = 1
_ARRAYS = ("points", "is_real", "source_index")


@dataclass(frozen=True, eq=False)
class PointClouds:
    """Fixed-size point clouds of S studies.

    Attributes:
        points: (S, N, 3) float32 world coordinates, mm.
        is_real: (S, N) bool, True for a study's own peaks, False for repeated ones.
        source_index: (S, N) int32, the study's peak (in table order) each point copies.
        n_peaks: (S,) int32 peaks the study had.
        study_ids: (S,) ids.
        years: (S,) float64, NaN where unknown.
        sample_sizes: (S,) float64, NaN where unknown.
        spaces: (S,) coordinate space, ``""`` where unknown.
        seed: Seed of the dropout.
    """

    points: np.ndarray
    is_real: np.ndarray
    source_index: np.ndarray
    n_peaks: np.ndarray
    study_ids: np.ndarray
    years: np.ndarray
    sample_sizes: np.ndarray
    spaces: np.ndarray
    seed: int

    @property
    def n_points(self) -> int:
        """Points per cloud ``N``."""
        return int(self.points.shape[1])

    @property
    def n_dropped(self) -> np.ndarray:
        """(S,) int32 peaks left out by dropout."""
        return np.maximum(self.n_peaks - self.n_points, 0).astype(np.int32)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready metadata record per study (missing facts are ``None``)."""
        return [
            {
                "study_id": str(self.study_ids[s]),
                "year": _int_or_none(self.years[s]),
                "sample_size": _float_or_none(self.sample_sizes[s]),
                "space": str(self.spaces[s]) or None,
                "n_peaks": int(self.n_peaks[s]),
                "n_dropped": int(self.n_dropped[s]),
            }
            for s in range(len(self))
        ]

    def __repr__(self) -> str:
        return (
            f"PointClouds(studies={len(self)}, points={self.n_points}, "
            f"real={int(self.is_real.sum())}, seed={self.seed})"
        )


def _int_or_none(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None


def _float_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _study_rng(seed: int, study_id: str) -> np.random.Generator:
    digest = hashlib.sha256(str(study_id).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def to_point_clouds(peaks: PeakTable, *, n_points: int = 30, seed: int = 0) -> PointClouds:
    """Make every study an ``n_points`` cloud (rules in the module docstring).

    Args:
        peaks: Studies and their peaks.
        n_points: Points per cloud.
        seed: Seed of the dropout for studies with more than ``n_points`` peaks.

    Returns:
        The clouds, in the table's study order.

    Raises:
        PointCloudError: ``n_points < 1`` or a study without peaks (named).
    """
    if n_points < 1:
        raise PointCloudError(f"n_points must be at least 1, got {n_points}")
    counts = peaks.peaks_per_study
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        named = [str(s) for s in peaks.study_ids[empty[:5]]]
        raise PointCloudError(
            f"{empty.size} studies have no peaks ({named}); drop them before making clouds"
        )
    n_studies = peaks.n_studies
    source = np.empty((n_studies, n_points), dtype=np.int32)
    for row, n in enumerate(counts.tolist()):
        if n >= n_points:
            chosen = np.arange(n) if n == n_points else None
            if chosen is None:
                rng = _study_rng(seed, str(peaks.study_ids[row]))
                chosen = np.sort(rng.choice(n, size=n_points, replace=False))
            source[row] = chosen
        else:
            source[row] = np.arange(n_points) % n
    starts = peaks.study_starts[:-1]
    points = peaks.coords_mm[starts[:, None] + source].astype(np.float32)
    is_real = np.arange(n_points)[None, :] < np.minimum(counts, n_points)[:, None]
    return PointClouds(
        points=points,
        is_real=is_real,
        source_index=source,
        n_peaks=counts.astype(np.int32),
        study_ids=np.asarray(peaks.study_ids, dtype=object),
        years=np.asarray(peaks.years, dtype=np.float64),
        sample_sizes=np.asarray(peaks.sample_sizes, dtype=np.float64),
        spaces=np.asarray(peaks.spaces, dtype=object),
        seed=int(seed),
    )


def save_point_clouds(clouds: PointClouds, folder: str | os.PathLike[str]) -> Path:
    """Write clouds as ``.npy`` arrays plus ``studies.json`` (atomic writes).

    Args:
        clouds: The clouds.
        folder: Destination folder (created).

    Returns:
        The folder.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for name in _ARRAYS:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(getattr(clouds, name)), allow_pickle=False)
        atomic_write(root / f"{name}.npy", buffer.getbuffer())
    table = {
        "format": _FORMAT,
        "version": _VERSION,
        "n_points": clouds.n_points,
        "seed": clouds.seed,
        "rules": {
            "fewer": "real peaks first, then copies cycling from the first (j mod n)",
            "more": "n_points peaks drawn without replacement, rng seeded by "
            "(seed, sha256(study_id)[:8] little-endian), kept in table order",
        },
        "studies": clouds.records(),
    }
    atomic_write(root / "studies.json", json.dumps(table, indent=1).encode())
    return root


def load_point_clouds(
    folder: str | os.PathLike[str], *, mmap_mode: str | None = "r"
) -> PointClouds:
    """Read clouds written by :func:`save_point_clouds`.

    Args:
        folder: The folder.
        mmap_mode: ``"r"`` memory-maps the arrays (default); ``None`` reads them.

    Raises:
        PointCloudError: Missing or inconsistent files (the file is named).
    """
    root = Path(folder)
    table_path = root / "studies.json"
    try:
        table = json.loads(table_path.read_text())
    except (OSError, ValueError) as exc:
        raise PointCloudError(f"cannot read the study table: {exc}", path=table_path) from None
    if table.get("format") != _FORMAT or table.get("version") != _VERSION:
        raise PointCloudError("not a version-1 point-cloud folder", path=table_path)
    arrays: dict[str, np.ndarray] = {}
    for name in _ARRAYS:
        path = root / f"{name}.npy"
        try:
            arrays[name] = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            raise PointCloudError(f"cannot read: {exc}", path=path) from None
    studies = table["studies"]
    shape = (len(studies), int(table["n_points"]))
    for name, array in arrays.items():
        if tuple(array.shape[:2]) != shape:
            raise PointCloudError(
                f"shape {array.shape} does not match {len(studies)} studies × "
                f"{table['n_points']} points in studies.json",
                path=root / f"{name}.npy",
            )

    def column(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else r[key] for r in studies], dtype=np.float64)

    return PointClouds(
        points=arrays["points"],
        is_real=arrays["is_real"],
        source_index=arrays["source_index"],
        n_peaks=np.array([r["n_peaks"] for r in studies], dtype=np.int32),
        study_ids=np.array([r["study_id"] for r in studies], dtype=object),
        years=column("year"),
        sample_sizes=column("sample_size"),
        spaces=np.array([r["space"] or "" for r in studies], dtype=object),
        seed=int(table["seed"]),
    )
