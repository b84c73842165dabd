"""Any BIDS dataset as a Hugging Face ``datasets.Dataset`` (or ``IterableDataset``).

:func:`load_bids` indexes the tree with pybids (:mod:`brrrr.ingest.index`, no
per-dataset glob code) and builds the rows described in :mod:`brrrr.ingest.rows`:
one per file, session or subject, with image columns as ``datasets.Nifti`` that
decode only when read, and header columns for filtering without decoding.

Example:
    >>> from brrrr.ingest.bids import load_bids
    >>> ds = load_bids("ds004884", suffixes=["T1w"])  # doctest: +SKIP
    >>> ds.filter(lambda row: row["spacing"][2] <= 1.0)  # no voxel is decoded  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from brrrr.ingest.index import index_bids
from brrrr.ingest.rows import (
    Check,
    Level,
    LoadReport,
    OnError,
    bids_features,
    iter_rows,
    streaming_rows,
)

if TYPE_CHECKING:
    import datasets

__all__ = ["load_bids"]


def load_bids(
    root: str | os.PathLike[str],
    *,
    level: Level = "file",
    subjects: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    datatypes: Sequence[str] | None = None,
    suffixes: Sequence[str] | None = None,
    include_derivatives: bool = True,
    streaming: bool = False,
    on_error: OnError = "raise",
    check: Check = "header",
    report: LoadReport | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Load a BIDS dataset as a Hugging Face dataset, built on pybids.

    Args:
        root: Dataset root (holds ``dataset_description.json``).
        level: One row per ``"file"``, ``"session"`` or ``"subject"``.
        subjects: Keep these subject labels (without ``sub-``).
        sessions: Keep these session labels (without ``ses-``).
        datatypes: Keep these datatypes (``anat``, ``func``, ``dwi``…).
        suffixes: Keep images whose suffix (``T1w``) or modality key (``lesion_mask``) is listed.
        include_derivatives: Also load ``derivatives/*`` (matched to raw data by entities).
        streaming: Return an ``IterableDataset`` that reads headers as it is
            iterated (and shards over DataLoader workers) instead of reading all first.
        on_error: ``"raise"`` or ``"skip"`` a file that fails to load (skips
            are warned about and listed in ``report``; never silent). When every
            file fails, ``"skip"`` returns an empty dataset with the full schema
            (the columns and feature types the readable files would have had) and
            warns that nothing was readable.
        check: ``"header"`` reads headers only; ``"size"`` also checks that every voxel
            byte the header declares is stored (a ``stat`` for ``.nii``, one inflate
            for ``.nii.gz``); ``"full"`` also decodes voxels.
        report: Receives skipped files (not when streaming: there each skip
            is a warning from the process that reads the file).

    Returns:
        ``datasets.Dataset`` (or ``IterableDataset`` when streaming). Image
        columns are ``Nifti()``: decoding happens only when a cell is read. The
        schema comes from the index, not from the files that could be read, so it
        is the same whether no, some or all files are skipped; an empty
        dataset (no file readable, or none selected) has every column.

    Raises:
        BidsError: Not a BIDS dataset, or a file fails with ``on_error="raise"``.

    Example:
        >>> ds = load_bids("ds004884", level="session")  # doctest: +SKIP
        >>> session = ds[0]  # doctest: +SKIP
        >>> session["T2w"]  # every run of the session, in run order  # doctest: +SKIP
    """
    from datasets import Dataset

    index = index_bids(
        root,
        subjects=subjects,
        sessions=sessions,
        datatypes=datatypes,
        suffixes=suffixes,
        include_derivatives=include_derivatives,
    )
    if streaming:
        return streaming_rows(index, level=level, on_error=on_error, check=check)
    features = bids_features(index, level=level)
    report = LoadReport() if report is None else report
    already_skipped = len(report.skipped)
    rows = list(iter_rows(index, level=level, on_error=on_error, check=check, report=report))
    if rows:
        return Dataset.from_list(rows, features=features)
    skipped = len(report.skipped) - already_skipped
    if skipped:
        what = f"none of the {skipped} selected images could be read (see the skipped files)"
    else:
        what = "no image matches the filters"
    warnings.warn(f"{index.root}: {what}; the dataset is empty", RuntimeWarning, stacklevel=2)
    # from_list([]) cannot tell the columns apart from no columns: give each one, empty.
    return Dataset.from_dict({name: [] for name in features}, features=features)
