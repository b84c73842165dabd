"""`PeakTable`: activation peaks (MNI mm) grouped by study, with the study facts kernels need.

Studies are rows ``0..S-1`` in the order :func:`numpy.unique` gives their ids, which is the
order NiMARE's kernel transformers return maps in. Peaks are stored grouped by study (stable:
a study's peaks keep their input order). Missing facts stay missing: an unknown sample size
or year is NaN, an unknown space is ``""``; nothing is filled in.

Example:
    >>> import numpy as np
    >>> from brrrr.preprocess.kernels import PeakTable, deduplicate_peaks
    >>> peaks = PeakTable.from_peaks(
    ...     ["s2", "s1", "s2"], np.array([[0.0, 0, 0], [10, 20, 30], [0, 0, 0]]),
    ...     sample_sizes={"s1": 20},
    ... )
    >>> peaks.study_ids.tolist(), peaks.peaks_per_study.tolist()
    (['s1', 's2'], [1, 2])
    >>> clean, report = deduplicate_peaks(peaks)
    >>> report.n_removed, report.removed_per_study
    (1, {'s2': 1})
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from brrrr.preprocess.errors import CoordinateError

__all__ = ["DedupReport", "PeakTable", "deduplicate_peaks"]


def _study_array(values: Sequence[Any] | np.ndarray | None, n: int, what: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise CoordinateError(f"{what} must have one value per study ({n}), got {array.shape}")
    return array


def _peak_ids(values: Sequence[Any] | np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=object)
    if array.shape != (n,):
        raise CoordinateError(f"{what} must have one value per peak ({n}), got {array.shape}")
    return array


class PeakTable:
    """Peaks of many studies.

    Args:
        study_ids: (S,) study (or analysis/contrast) ids, unique.
        coords_mm: (P, 3) world coordinates, RAS+ mm (MNI space for the MNI templates).
        study_index: (P,) row in ``study_ids`` of each peak.
        sample_sizes: (S,) participants per study; NaN where unknown.
        years: (S,) publication year; NaN where unknown.
        spaces: (S,) coordinate space as the source names it (``"mni152_2mm"``); ``""``
            where unknown.
        table_ids: (P,) the table each peak was reported in, when the source has it.
        peak_ids: (P,) the source's own id of each peak, when it has one.

    Raises:
        CoordinateError: Mismatched lengths, duplicate study ids, indices out of range or
            non-finite coordinates (the offending studies are named).
    """

    __slots__ = (
        "coords_mm",
        "peak_ids",
        "sample_sizes",
        "spaces",
        "study_ids",
        "study_index",
        "table_ids",
        "years",
    )

    def __init__(
        self,
        study_ids: Sequence[Any] | np.ndarray,
        coords_mm: np.ndarray | Sequence[Sequence[float]],
        study_index: np.ndarray | Sequence[int],
        *,
        sample_sizes: np.ndarray | Sequence[float] | None = None,
        years: np.ndarray | Sequence[float] | None = None,
        spaces: np.ndarray | Sequence[str] | None = None,
        table_ids: np.ndarray | Sequence[Any] | None = None,
        peak_ids: np.ndarray | Sequence[Any] | None = None,
    ) -> None:
        ids = np.asarray(study_ids, dtype=object).reshape(-1)
        n_studies = ids.size
        if len(set(ids.tolist())) != n_studies:
            raise CoordinateError("study ids must be unique")
        coords = np.asarray(coords_mm, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise CoordinateError(f"coords_mm must have shape (P, 3), got {coords.shape}")
        index = np.asarray(study_index)
        if index.shape != (coords.shape[0],) or not (
            index.size == 0 or np.issubdtype(index.dtype, np.integer)
        ):
            raise CoordinateError(
                f"study_index must be {coords.shape[0]} integers, got {index.dtype} {index.shape}"
            )
        index = index.astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= n_studies):
            raise CoordinateError(f"study_index must lie in [0, {n_studies})")
        bad = ~np.isfinite(coords).all(axis=1)
        if bad.any():
            named = sorted({str(ids[i]) for i in index[bad]})
            raise CoordinateError(
                f"{int(bad.sum())} peaks have NaN or infinite coordinates, in studies "
                f"{named[:5]}{'...' if len(named) > 5 else ''}; drop or fix them first"
            )
        order = np.argsort(index, kind="stable")
        study_spaces = (
            np.full(n_studies, "", dtype=object)
            if spaces is None
            else np.asarray(spaces, dtype=object)
        )
        if study_spaces.shape != (n_studies,):
            raise CoordinateError(f"spaces must have one value per study ({n_studies})")
        tables = _peak_ids(table_ids, coords.shape[0], "table_ids")
        peak_names = _peak_ids(peak_ids, coords.shape[0], "peak_ids")
        #: (S,) study ids.
        self.study_ids: np.ndarray = ids
        #: (P, 3) float64 coordinates, grouped by study.
        self.coords_mm: np.ndarray = coords[order]
        #: (P,) int64 study row of each peak, ascending.
        self.study_index: np.ndarray = index[order]
        #: (S,) float64 sample sizes, NaN where unknown.
        self.sample_sizes: np.ndarray = _study_array(sample_sizes, n_studies, "sample_sizes")
        #: (S,) float64 years, NaN where unknown.
        self.years: np.ndarray = _study_array(years, n_studies, "years")
        #: (S,) spaces, "" where unknown.
        self.spaces: np.ndarray = study_spaces
        #: (P,) table ids, or None.
        self.table_ids: np.ndarray | None = None if tables is None else tables[order]
        #: (P,) peak ids, or None.
        self.peak_ids: np.ndarray | None = None if peak_names is None else peak_names[order]
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None:
                value.flags.writeable = False

    # -- constructors ------------------------------------------------------------------
    @classmethod
    def from_peaks(
        cls,
        study_of_peak: Sequence[str] | np.ndarray,
        coords_mm: np.ndarray,
        *,
        sample_sizes: Mapping[str, float | None] | None = None,
        years: Mapping[str, float | None] | None = None,
        spaces: Mapping[str, str] | Sequence[str] | np.ndarray | None = None,
        table_ids: Sequence[Any] | np.ndarray | None = None,
        peak_ids: Sequence[Any] | np.ndarray | None = None,
    ) -> PeakTable:
        """Group one row per peak into studies.

        Args:
            study_of_peak: (P,) study id of each peak.
            coords_mm: (P, 3) world coordinates in mm.
            sample_sizes: Study id → sample size (missing ids and ``None`` are unknown).
            years: Study id → publication year.
            spaces: Study id → space, or (P,) space of each peak (a study whose peaks
                disagree gets their sorted names joined by ``"+"``).
            table_ids: (P,) table id of each peak.
            peak_ids: (P,) source id of each peak.
        """
        labels = np.asarray(study_of_peak, dtype=object).reshape(-1)
        ids, index = np.unique(labels.astype(str), return_inverse=True)
        ids_list = ids.tolist()

        def per_study(mapping: Mapping[str, float | None] | None) -> np.ndarray:
            if mapping is None:
                return np.full(ids.size, np.nan)
            return np.array([_as_float(mapping.get(study)) for study in ids_list], dtype=np.float64)

        if spaces is None or isinstance(spaces, Mapping):
            space_of = {} if spaces is None else dict(spaces)
            study_spaces = np.array([space_of.get(s, "") for s in ids_list], dtype=object)
        else:
            per_peak = np.asarray(spaces, dtype=object)
            if per_peak.shape != labels.shape:
                raise CoordinateError("spaces must be a mapping or one value per peak")
            order = np.argsort(index, kind="stable")
            bounds = np.searchsorted(index[order], np.arange(ids.size + 1))
            study_spaces = np.array(
                [
                    "+".join(sorted({str(v) for v in per_peak[order[a:b]]}))
                    for a, b in itertools.pairwise(bounds)
                ],
                dtype=object,
            )
        return cls(
            ids.astype(object),
            np.asarray(coords_mm, dtype=np.float64),
            index.astype(np.int64),
            sample_sizes=per_study(sample_sizes),
            years=per_study(years),
            spaces=study_spaces,
            table_ids=table_ids,
            peak_ids=peak_ids,
        )

    @classmethod
    def from_nimare(cls, collection: Any) -> PeakTable:
        """The peaks of a NiMARE ``Dataset`` or ``Studyset``, one row per analysis id.

        Coordinates are taken as the collection holds them (NiMARE has already moved them to
        its target space). The sample size of a study is the mean of its ``sample_sizes``
        metadata (else ``sample_size``), as NiMARE's kernels compute it; a year is read from
        ``year`` or ``publication_year`` metadata when present. Table and peak ids are read
        from ``table_id`` / ``peak_id`` coordinate columns when present.

        Args:
            collection: ``nimare.dataset.Dataset`` or ``nimare.studyset.Studyset``.
        """
        frame = collection.coordinates
        missing = {"id", "x", "y", "z"} - set(frame.columns)
        if missing:
            raise CoordinateError(f"NiMARE coordinates lack the columns {sorted(missing)}")
        labels = frame["id"].astype(str).to_numpy()
        available = set(collection.get_metadata())
        ids = sorted(set(labels.tolist()))

        def metadata(fields: Sequence[str]) -> dict[str, float | None] | None:
            name = next((f for f in fields if f in available), None)
            if name is None:
                return None
            values = collection.get_metadata(field=name, ids=ids)
            return {study: _mean_or_none(v) for study, v in zip(ids, values, strict=True)}

        def column(name: str) -> np.ndarray | None:
            return frame[name].to_numpy(dtype=object) if name in frame.columns else None

        return cls.from_peaks(
            labels,
            frame[["x", "y", "z"]].to_numpy(dtype=np.float64),
            sample_sizes=metadata(("sample_sizes", "sample_size")),
            years=metadata(("year", "publication_year")),
            spaces=column("space"),
            table_ids=column("table_id"),
            peak_ids=column("peak_id"),
        )

    # -- derived -----------------------------------------------------------------------
    @property
    def n_studies(self) -> int:
        """Number of studies ``S``."""
        return int(self.study_ids.size)

    @property
    def n_peaks(self) -> int:
        """Number of peaks ``P``."""
        return int(self.coords_mm.shape[0])

    @property
    def peaks_per_study(self) -> np.ndarray:
        """(S,) int64 peak count of each study."""
        return np.bincount(self.study_index, minlength=self.n_studies)

    @property
    def study_starts(self) -> np.ndarray:
        """(S + 1,) int64: study ``s`` owns peaks ``study_starts[s]:study_starts[s + 1]``."""
        return np.concatenate(([0], np.cumsum(self.peaks_per_study))).astype(np.int64)

    def study_peaks(self, study: int | str) -> np.ndarray:
        """(n, 3) coordinates of one study, by row or by id."""
        row = self.row_of(study) if isinstance(study, str) else int(study)
        starts = self.study_starts
        return self.coords_mm[starts[row] : starts[row + 1]]

    def row_of(self, study_id: str) -> int:
        """Row of a study id.

        Raises:
            CoordinateError: No such study.
        """
        rows = np.flatnonzero(self.study_ids == study_id)
        if rows.size == 0:
            raise CoordinateError(f"no study {study_id!r} in this peak table")
        return int(rows[0])

    def select(self, rows: Sequence[int] | np.ndarray) -> PeakTable:
        """A table of some studies (rows in the given order), with their peaks and facts."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        starts = self.study_starts
        take = np.concatenate(
            [np.arange(starts[r], starts[r + 1]) for r in rows] or [np.zeros(0, np.int64)]
        ).astype(np.int64)
        new_index = np.repeat(np.arange(rows.size), self.peaks_per_study[rows])
        return PeakTable(
            self.study_ids[rows],
            self.coords_mm[take],
            new_index,
            sample_sizes=self.sample_sizes[rows],
            years=self.years[rows],
            spaces=self.spaces[rows],
            table_ids=None if self.table_ids is None else self.table_ids[take],
            peak_ids=None if self.peak_ids is None else self.peak_ids[take],
        )

    def __len__(self) -> int:
        return self.n_studies

    def __repr__(self) -> str:
        known = int(np.isfinite(self.sample_sizes).sum())
        return (
            f"PeakTable(studies={self.n_studies}, peaks={self.n_peaks}, sample sizes known={known})"
        )


def _as_float(value: object) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _mean_or_none(value: object) -> float | None:
    """NiMARE's reduction of a metadata cell: the mean of a list, ``None`` stays ``None``."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.size == 0 or not np.isfinite(array).all():
        return None
    return float(np.mean(array))


@dataclass(frozen=True)
class DedupReport:
    """What :func:`deduplicate_peaks` removed.

    Attributes:
        key: The fields that made two peaks of one study the same.
        n_peaks_in: Peaks before.
        n_removed: Peaks removed (every copy after the first).
        removed_per_study: Study id → peaks removed, for studies that lost any.
    """

    key: str
    n_peaks_in: int
    n_removed: int
    removed_per_study: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "key": self.key,
            "n_peaks_in": self.n_peaks_in,
            "n_removed": self.n_removed,
            "removed_per_study": dict(self.removed_per_study),
        }


def deduplicate_peaks(
    peaks: PeakTable,
    *,
    key: Literal["coordinates", "table+coordinates", "peak_id"] = "coordinates",
) -> tuple[PeakTable, DedupReport]:
    """Drop repeated peaks within each study, comparing recorded fields only.

    Two peaks of the same study are the same when (``key``):

    * ``"coordinates"``: their x, y, z are exactly equal (no tolerance, no rounding);
    * ``"table+coordinates"``: same table id and exactly equal x, y, z;
    * ``"peak_id"``: same source peak id.

    The first occurrence is kept. Peaks of different studies are never merged. MKDA and ALE
    maps do not change (they take a maximum); KDA maps, which count spheres, do.

    Args:
        peaks: The table.
        key: Which recorded fields define a repeat.

    Returns:
        ``(table without repeats, report)``.

    Raises:
        CoordinateError: ``key`` needs table or peak ids the table does not have.
    """
    columns: list[np.ndarray] = [peaks.study_index.astype(object)]
    if key in ("coordinates", "table+coordinates"):
        columns += [peaks.coords_mm[:, axis].astype(object) for axis in range(3)]
    if key == "table+coordinates":
        if peaks.table_ids is None:
            raise CoordinateError("key='table+coordinates' needs table ids; this table has none")
        columns.append(peaks.table_ids)
    if key == "peak_id":
        if peaks.peak_ids is None:
            raise CoordinateError("key='peak_id' needs peak ids; this table has none")
        columns.append(peaks.peak_ids)
    seen: set[tuple[object, ...]] = set()
    keep = np.ones(peaks.n_peaks, dtype=bool)
    for row, values in enumerate(zip(*columns, strict=True)):
        if values in seen:
            keep[row] = False
        else:
            seen.add(values)
    removed = np.bincount(peaks.study_index[~keep], minlength=peaks.n_studies)
    report = DedupReport(
        key=key,
        n_peaks_in=peaks.n_peaks,
        n_removed=int((~keep).sum()),
        removed_per_study={
            str(peaks.study_ids[s]): int(removed[s]) for s in np.flatnonzero(removed)
        },
    )
    if report.n_removed == 0:
        return peaks, report
    clean = PeakTable(
        peaks.study_ids,
        peaks.coords_mm[keep],
        peaks.study_index[keep],
        sample_sizes=peaks.sample_sizes,
        years=peaks.years,
        spaces=peaks.spaces,
        table_ids=None if peaks.table_ids is None else peaks.table_ids[keep],
        peak_ids=None if peaks.peak_ids is None else peaks.peak_ids[keep],
    )
    return clean, report
