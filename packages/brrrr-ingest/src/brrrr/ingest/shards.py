"""A BIDS dataset to Parquet shards that the Hub and ``datasets`` read as they are.

:func:`to_hf` writes ``OUT/data/train-NNNNN-of-MMMMM.parquet`` (image bytes
embedded as ``datasets.Nifti`` cells), ``OUT/manifest.json`` and a dataset
card ``OUT/README.md``.

Memory stays bounded whatever the dataset size: rows are planned up front from
header facts only (no voxels), then shards are written one row group (about
``row_group_bytes`` of images) at a time. A row group's files are read
straight into one buffer that Arrow uses without a copy, and each file's
SHA-256 is taken from that buffer, the very bytes embedded. One thread reads
and hashes the next row group while the current one is encoded; pyarrow writes
the encoded pages straight to the shard's file, and a
:class:`~brrrr.ingest._hashing.TrailingHasher` hashes each row group's bytes on
a thread of its own as soon as they are written (from the page cache, never
from the disk) and starts their writeback. File reads, ``hashlib`` and Arrow
release the GIL: the work spreads over the cores. The peak is about two row
groups plus the writer's buffers (about 400 MB in all with the 64 MB default,
measured by ``benchmarks/bench_ingest.py``), the same for a shard of 500 MB or
a dataset of 500 GB. Shards close at about ``shard_bytes``. Writing needs
pyarrow, not ``datasets`` (see :mod:`brrrr.ingest.features`).

A killed run resumes: each shard is written under a temporary name and renamed
when complete, then the manifest (rewritten atomically) records it with its
SHA-256 and a fingerprint of its inputs. A later run with the same options
keeps every recorded shard whose file is intact and whose inputs have not
changed, and writes only the rest.

Beyond one machine (see :mod:`brrrr.ingest._sharded` and ``docs/scale.md``): with
``shard_index``/``num_shards`` a run writes one contiguous share of the shards (a SLURM
array task) and records them in a share manifest; the share that finds every share
finished, or a later ``mode="merge"`` run, writes ``manifest.json`` and the card. With
``scheduler``/``cluster_spec`` one Dask task per shard writes it on a worker. Either way
the shards, the manifest and the card are the bytes a single-machine run writes.

Example:
    >>> from brrrr.ingest.shards import to_hf
    >>> result = to_hf("ds004884", "ds004884-hf", level="session")  # doctest: +SKIP
    >>> import datasets
    >>> ds = datasets.load_dataset("parquet", data_files="ds004884-hf/data/*.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from brrrr.ingest._shard_writer import (
    DATA_DIR,
    ShardHook,
    _cells,
    _clean_stale,
    _files_by_shard,
    _fingerprint,
    _Images,
    _Job,
    _Plan,
    _read_ahead,
    _read_images,
    _reusable,
    _write_shard,
    plan_shards,
    shard_name,
)
from brrrr.ingest.errors import BidsError, ManifestError
from brrrr.ingest.features import arrow_schema, image_columns
from brrrr.ingest.index import index_bids
from brrrr.ingest.manifest import Manifest, ShardRecord
from brrrr.ingest.rows import Check, Level, LoadReport, OnError, bids_schema, iter_rows

if TYPE_CHECKING:
    from brrrr.core.distributed import ClusterSpec
    from brrrr.ingest.index import BidsIndex

__all__ = [
    "DEFAULT_ROW_GROUP_BYTES",
    "DEFAULT_SHARD_BYTES",
    "ConversionResult",
    "parse_size",
    "plan_shards",
    "shard_name",
    "to_hf",
]

DEFAULT_SHARD_BYTES = 500 * 10**6
DEFAULT_ROW_GROUP_BYTES = 64 * 10**6
Mode = Literal["resume", "overwrite", "merge"]


@dataclass
class ConversionResult:
    """What :func:`to_hf` did.

    Attributes:
        out: The output folder.
        manifest: The final manifest.
        written: Indices of the shards written by this run.
        reused: Indices of the shards kept from an earlier run.
        report: Files skipped by ``on_error="skip"``.
        merged: False for a share (``shard_index``) that left the merge to another:
            ``manifest`` is then its share manifest, and ``OUT/manifest.json`` is not
            written yet.
    """

    out: Path
    manifest: Manifest
    written: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    report: LoadReport = field(default_factory=LoadReport)
    merged: bool = True


def parse_size(text: str | int) -> int:
    """Bytes from ``"500MB"``, ``"2GiB"``, ``"1e9"`` or an int.

    Raises:
        ValueError: Not a size.
    """
    if isinstance(text, int):
        return text
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    units |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    clean = text.strip().lower().replace(" ", "")
    number = clean.rstrip("kmgtib")
    try:
        value = float(number) * units[clean[len(number) :]]
    except (ValueError, KeyError):
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB or 2GiB)") from None
    if value <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return int(value)


def to_hf(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    level: Level = "file",
    subjects: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
    datatypes: Sequence[str] | None = None,
    suffixes: Sequence[str] | None = None,
    include_derivatives: bool = True,
    on_error: OnError = "raise",
    check: Check = "header",
    shard_bytes: int | str = DEFAULT_SHARD_BYTES,
    row_group_bytes: int | str = DEFAULT_ROW_GROUP_BYTES,
    mode: Mode = "resume",
    on_shard: ShardHook | None = None,
    uploaded_to: str | None = None,
    repo_id: str | None = None,
    progress: bool = True,
    shard_index: int | None = None,
    num_shards: int | None = None,
    scheduler: str | None = None,
    cluster_spec: str | os.PathLike[str] | ClusterSpec | None = None,
) -> ConversionResult:
    """Convert a BIDS dataset to Parquet shards, a manifest and a dataset card in ``out``.

    Args:
        root: BIDS dataset root.
        out: Output folder (created). What the Hub repo will hold.
        level: One row per ``"file"``, ``"session"`` or ``"subject"``.
        subjects: Keep these subject labels.
        sessions: Keep these session labels.
        datatypes: Keep these datatypes.
        suffixes: Keep these suffixes or modality keys.
        include_derivatives: Also convert ``derivatives/*``.
        on_error: ``"raise"`` or ``"skip"`` files that fail to load; skipped
            files are listed in the manifest and the card.
        check: How each image is checked before it is embedded
            (:data:`brrrr.ingest.header.Check`; ``"full"`` decodes every image).
        shard_bytes: Budget per shard (``500MB`` by default).
        row_group_bytes: Image bytes per Parquet row group: the memory bound.
        mode: ``"resume"`` keeps finished shards of an earlier run with the same
            options; ``"overwrite"`` starts again; ``"merge"`` writes nothing but the
            manifest and the card, from the share manifests of a sharded run (every
            share must have finished).
        on_shard: Called as ``on_shard(manifest, record, reused)`` after each
            shard is written or kept and the manifest saved, in shard order
            (:func:`brrrr.ingest.hub.push` uploads from it). In a sharded run, for
            this share's shards, with the share manifest.
        uploaded_to: A destination id: shards recorded as uploaded there count
            as finished even when their local file was deleted.
        repo_id: Hub repository named in the card's loading example.
        progress: Show progress bars.
        shard_index: With ``num_shards``: write only share ``shard_index`` (0-based) of
            the shards, dealt in ``num_shards`` contiguous shares (a SLURM array task:
            ``$SLURM_ARRAY_TASK_ID``); every share plans the same shards. The share
            that finds all shares finished writes the manifest and the card.
        num_shards: The number of shares (the array's size), not of Parquet shards.
        scheduler: Run one Dask task per shard: ``"tcp://host:8786"`` (a running
            ``distributed`` scheduler) or ``"local:N"`` (N local worker processes).
        cluster_spec: Or a ``dask-jobqueue`` cluster to start for the run (a
            :class:`~brrrr.core.distributed.ClusterSpec` or its YAML file).

    Returns:
        The :class:`ConversionResult` (see its ``merged``).

    Raises:
        BidsError: Not a BIDS dataset, or a file fails with ``on_error="raise"``.
        ManifestError: ``out`` holds a conversion made with other options and
            ``mode="resume"``; with ``mode="merge"``, a shard no share wrote.
        DistributedError: Bad shard or scheduler arguments; with ``mode="merge"``,
            a share manifest missing or unfinished (named).
        MissingDependencyError: A scheduler without ``brrrr-core[dask]`` installed.
    """
    from brrrr.core.distributed import run_mode

    out = Path(out)
    run = run_mode(
        shard_index=shard_index,
        num_shards=num_shards,
        scheduler=scheduler,
        cluster_spec=cluster_spec,
    )
    if mode == "merge" and run != "here":
        raise ValueError("mode='merge' takes no shard or scheduler arguments")
    shard_bytes, row_group_bytes = parse_size(shard_bytes), parse_size(row_group_bytes)
    options = {
        "level": level,
        "subjects": None if subjects is None else sorted(subjects),
        "sessions": None if sessions is None else sorted(sessions),
        "datatypes": None if datatypes is None else sorted(datatypes),
        "suffixes": None if suffixes is None else sorted(suffixes),
        "include_derivatives": include_derivatives,
        "on_error": on_error,
        "check": check,
        "shard_bytes": shard_bytes,
        "row_group_bytes": row_group_bytes,
    }
    index = index_bids(
        root,
        subjects=subjects,
        sessions=sessions,
        datatypes=datatypes,
        suffixes=suffixes,
        include_derivatives=include_derivatives,
    )
    previous = _previous_manifest(out, options, mode)
    plan = _plan(index, options, root=root, progress=progress)
    if run != "here" or mode == "merge":
        from brrrr.ingest import _sharded

        result = ConversionResult(out=out, manifest=plan.manifest(), report=plan.report)
        if mode == "merge":
            return _sharded.merge(plan, out, result, repo_id=repo_id)
        if run == "share":
            assert shard_index is not None
            assert num_shards is not None
            return _sharded.run_share(
                plan,
                out,
                result,
                previous=previous,
                shard_index=shard_index,
                num_shards=num_shards,
                on_shard=on_shard,
                uploaded_to=uploaded_to,
                repo_id=repo_id,
                progress=progress,
            )
        return _sharded.run_dask(
            plan,
            out,
            result,
            previous=previous,
            scheduler=scheduler,
            cluster_spec=cluster_spec,
            on_shard=on_shard,
            uploaded_to=uploaded_to,
            repo_id=repo_id,
            progress=progress,
        )
    return _convert_here(
        plan,
        out,
        previous=previous,
        on_shard=on_shard,
        uploaded_to=uploaded_to,
        repo_id=repo_id,
        progress=progress,
    )


def _plan(
    index: BidsIndex, options: dict[str, Any], *, root: str | os.PathLike[str], progress: bool
) -> _Plan:
    """Rows (header facts only), shards, row groups and fingerprints of a conversion."""
    level = options["level"]
    features = bids_schema(index, level=level)
    columns = image_columns(features)
    report = LoadReport()
    rows = list(
        iter_rows(
            index,
            level=level,
            on_error=options["on_error"],
            check=options["check"],
            report=report,
            progress=progress,
        )
    )
    if not rows:
        raise BidsError(
            "no image left to convert (check the filters and the skipped files)", path=root
        )
    paths = [[path for _, _, path in _cells(row, columns)] for row in rows]
    weights = [sum(os.path.getsize(p) for p in row) for row in paths]
    spans = plan_shards(weights, shard_bytes=options["shard_bytes"])
    fingerprints = [
        _fingerprint(features, rows[span.start : span.stop], [p for r in span for p in paths[r]])
        for span in spans
    ]
    return _Plan(
        index=index,
        options=options,
        features=features,
        columns=columns,
        schema=arrow_schema(features),
        rows=rows,
        weights=weights,
        spans=spans,
        fingerprints=fingerprints,
        report=report,
    )


def _convert_here(
    plan: _Plan,
    out: Path,
    *,
    previous: Manifest | None,
    on_shard: ShardHook | None,
    uploaded_to: str | None,
    repo_id: str | None,
    progress: bool,
) -> ConversionResult:
    """The single-machine conversion: every shard, in order, in this process."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from brrrr.ingest.card import write_card

    rows, spans, total = plan.rows, plan.spans, plan.total
    manifest = plan.manifest()
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    _clean_stale(out, {shard_name(i, total) for i in range(total)})
    result = ConversionResult(out=out, manifest=manifest, report=plan.report)
    bar = tqdm(
        total=sum(len(r) for r in spans), desc="writing shards", unit="row", disable=not progress
    )
    previous_files = _files_by_shard(previous)
    kept: dict[int, ShardRecord] = {}
    for shard, fingerprint in enumerate(plan.fingerprints):
        old = None if previous is None else previous.shards.get(shard)
        if old is not None and _reusable(
            old, out, shard_name(shard, total), fingerprint, uploaded_to
        ):
            kept[shard] = old
    groups: list[_Job] = [
        (shard, group)
        for shard in range(total)
        if shard not in kept
        for group in plan.row_groups(shard)
    ]

    def read(job: _Job) -> _Images:
        shard, group = job
        first = spans[shard].start
        return _read_images(
            rows[first + group.start : first + group.stop],
            group.start,
            columns=plan.columns,
            root=plan.index.root,
        )

    # One thread reads and hashes the images of the next row group (of this shard or the
    # next) while this one encodes the current group (file reads, hashlib and Arrow
    # release the GIL).
    with ThreadPoolExecutor(1, thread_name_prefix="brrrr-read") as reader:
        loaded = _read_ahead(reader, read, groups)
        for shard, span in enumerate(spans):
            if shard in kept:
                manifest.shards[shard] = kept[shard]
                manifest.files |= previous_files.get(shard, {})
                result.reused.append(shard)
            else:
                n_groups = sum(1 for s, _ in groups if s == shard)
                record, files = _write_shard(
                    out,
                    shard_name(shard, total),
                    rows[span.start : span.stop],
                    ((group, images) for (_, group), images in itertools.islice(loaded, n_groups)),
                    shard=shard,
                    schema=plan.schema,
                    columns=plan.columns,
                )
                record.fingerprint = plan.fingerprints[shard]
                manifest.shards[shard] = record
                manifest.files |= files
                result.written.append(shard)
            manifest.save(out)
            bar.update(len(span))
            if on_shard is not None:
                on_shard(manifest, manifest.shards[shard], shard in result.reused)
    bar.close()
    write_card(out, index=plan.index, manifest=manifest, features=plan.features, repo_id=repo_id)
    manifest.complete = True
    manifest.save(out)
    return result


def _previous_manifest(out: Path, options: dict[str, Any], mode: str) -> Manifest | None:
    if mode not in ("resume", "overwrite", "merge"):
        raise ValueError(f"mode must be 'resume', 'overwrite' or 'merge', got {mode!r}")
    if mode in ("overwrite", "merge") or not (out / "manifest.json").is_file():
        return None
    previous = Manifest.load(out)
    if previous.options != options:
        changed = sorted(k for k in options if previous.options.get(k) != options[k])
        raise ManifestError(
            f"this folder holds a conversion made with other options ({', '.join(changed)}); "
            "pass mode='overwrite' (--overwrite) to replace it, or choose another folder",
            path=out,
        )
    return previous
