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

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from brrrr.ingest._hashing import TrailingHasher
from brrrr.ingest.errors import BidsError, ManifestError, OutputError
from brrrr.ingest.features import arrow_schema, image_columns
from brrrr.ingest.index import index_bids
from brrrr.ingest.manifest import FileRecord, Manifest, ShardRecord
from brrrr.ingest.rows import Check, Level, LoadReport, OnError, bids_schema, iter_rows

if TYPE_CHECKING:
    import pyarrow as pa

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
DATA_DIR = "data"

ShardHook = Callable[[Manifest, ShardRecord, bool], None]
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


@dataclass
class _Plan:
    """What a conversion will write, decided before any image byte is read.

    Every share of a sharded run computes the same plan from the same inputs.
    """

    index: BidsIndex
    options: dict[str, Any]
    features: dict[str, Any]
    columns: dict[str, bool]
    schema: pa.Schema
    rows: list[dict[str, Any]]
    weights: list[int]
    spans: list[range]
    fingerprints: list[str]
    report: LoadReport

    @property
    def total(self) -> int:
        return len(self.spans)

    def name(self, shard: int) -> str:
        return shard_name(shard, self.total)

    def manifest(self) -> Manifest:
        """A manifest holding no shard yet."""
        return Manifest(
            source={"root": str(self.index.root), "name": self.index.description.get("Name")},
            options=self.options,
            num_shards=self.total,
            num_rows=len(self.rows),
            skipped=[{"path": s.path, "reason": s.reason} for s in self.report.skipped],
        )

    def row_groups(self, shard: int) -> list[range]:
        """The row groups of a shard (spans of its rows)."""
        span = self.spans[shard]
        budget = self.options["row_group_bytes"]
        return [
            g for g in plan_shards(self.weights[span.start : span.stop], shard_bytes=budget) if g
        ]


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


def shard_name(index: int, total: int) -> str:
    """``data/train-00003-of-00012.parquet``: the Hub's naming, found by its default config."""
    return f"{DATA_DIR}/train-{index:05d}-of-{total:05d}.parquet"


def plan_shards(weights: Sequence[int], *, shard_bytes: int) -> list[range]:
    """Split rows, in order, into consecutive shards of about ``shard_bytes``.

    A shard closes when adding the next row would pass the budget; a row larger
    than the budget gets a shard of its own. No row is split.

    Args:
        weights: Bytes of each row (the sizes of its image files).
        shard_bytes: The budget per shard.

    Returns:
        Row index ranges, one per shard (at least one, possibly empty).
    """
    plan: list[range] = []
    start, total = 0, 0
    for i, weight in enumerate(weights):
        if i > start and total + weight > shard_bytes:
            plan.append(range(start, i))
            start, total = i, 0
        total += weight
    plan.append(range(start, len(weights)))
    return plan


def _cells(row: dict[str, Any], columns: dict[str, bool]) -> list[tuple[str, int | None, str]]:
    """(column, position in list or None, absolute path) of each image of a row."""
    out: list[tuple[str, int | None, str]] = []
    for name, is_list in columns.items():
        if is_list:
            out += [(name, i, cell["path"]) for i, cell in enumerate(row[name] or [])]
        elif row[name] is not None:
            out.append((name, None, row[name]["path"]))
    return out


def _fingerprint(
    schema: dict[str, Any], rows: Sequence[dict[str, Any]], paths: Sequence[str]
) -> str:
    """What a shard is made of: the schema, the rows, and each source file's size and mtime."""
    digest = hashlib.sha256(json.dumps([schema, list(rows)], default=str).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _writer_options(schema: Any) -> dict[str, Any]:
    """No compression, dictionary or statistics on image bytes (already compressed, unique)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = pa.BufferOutputStream()
    pq.ParquetWriter(buffer, schema).close()
    parquet_schema = pq.ParquetFile(pa.BufferReader(buffer.getvalue())).schema
    leaves = [parquet_schema.column(i) for i in range(len(parquet_schema))]
    blobs = {
        c.path for c in leaves if c.physical_type == "BYTE_ARRAY" and c.logical_type.type == "NONE"
    }
    others = [c.path for c in leaves if c.path not in blobs]
    return {
        "compression": {c.path: ("none" if c.path in blobs else "zstd") for c in leaves},
        "use_dictionary": others,
        "write_statistics": others,
        # Check the page size after every value, so that a page holds about one image (or
        # 1 MB of small ones) instead of a whole row group's images grown by doubling:
        # four times faster to encode, and each page reaches the file as one write.
        "write_batch_size": 1,
    }


_MAX_CELL_BYTES = 2**31 - 1  # Parquet BYTE_ARRAY values and Arrow binary offsets are 32-bit


def _read_column(
    entries: Sequence[tuple[int, int | None, str]], *, root: Path
) -> tuple[Any, list[tuple[str, str, int]]]:
    """One row group's images of one column: read straight into one buffer, no copy after.

    Each file's SHA-256 is taken from the bytes just read, the very bytes embedded.

    Args:
        entries: ``(row, position, absolute path)`` in row order.
        root: BIDS root (cells store paths relative to it).

    Returns:
        The ``struct<bytes, path>`` Arrow array, and ``(relpath, sha256, size)`` per entry.
    """
    import numpy as np
    import pyarrow as pa

    try:
        sizes = [os.path.getsize(path) for _, _, path in entries]
    except OSError as exc:  # the file went away (or became unreadable) since it was indexed
        raise BidsError(f"cannot read: {exc.strerror or exc}", path=exc.filename) from exc
    offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    for (_, _, path), size in zip(entries, sizes, strict=True):
        if size > _MAX_CELL_BYTES:
            raise BidsError(f"{size:,} bytes: Parquet cannot embed a file over 2 GiB", path=path)
    if offsets[-1] > _MAX_CELL_BYTES:
        raise BidsError(f"a row group of {offsets[-1]:,} bytes: lower row_group_bytes", path=root)
    buffer = np.empty(int(offsets[-1]), dtype=np.uint8)  # every byte is read into: no zeroing
    view = buffer.data
    digests = []
    for (_, _, path), start, size in zip(entries, offsets[:-1], sizes, strict=True):
        cell = view[start : start + size]
        try:
            with open(path, "rb") as handle:
                got = handle.readinto(cell)
                changed = got != size or bool(handle.read(1))
        except OSError as exc:
            raise BidsError(f"cannot read: {exc.strerror or exc}", path=path) from exc
        if changed:
            raise BidsError("the file changed size while it was being read", path=path)
        digests.append(hashlib.sha256(cell).hexdigest())
    relpaths = [Path(path).relative_to(root).as_posix() for _, _, path in entries]
    data = pa.BinaryArray.from_buffers(
        pa.binary(),
        len(entries),
        [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(buffer)],
    )
    cells = pa.StructArray.from_arrays(
        [data, pa.array(relpaths, pa.string())],
        fields=[pa.field("bytes", pa.binary()), pa.field("path", pa.string())],
    )
    return cells, list(zip(relpaths, digests, sizes, strict=True))


_Images = dict[str, tuple[list[tuple[int, int | None, str]], Any, list[tuple[str, str, int]]]]
_Job = tuple[int, range]  # a shard, and the rows of one of its row groups (within the shard)


def _read_images(
    rows: Sequence[dict[str, Any]], first: int, *, columns: dict[str, bool], root: Path
) -> _Images:
    """The image bytes of one row group: column → (entries, Arrow cells, file facts)."""
    images: _Images = {}
    for name, is_list in columns.items():
        entries = [
            (first + i, position, path)
            for i, row in enumerate(rows)
            for column, position, path in _cells(row, {name: is_list})
            if column == name
        ]
        cells, facts = _read_column(entries, root=root)
        images[name] = (entries, cells, facts)
    return images


def _read_ahead(
    pool: Any, read: Callable[[_Job], _Images], jobs: Sequence[_Job]
) -> Iterator[tuple[_Job, _Images]]:
    """``(job, read(job))`` for each job; the next is read on ``pool`` while this one is used.

    At most two row groups are in memory: the one yielded and the one being read.
    """
    if not jobs:
        return
    ahead = pool.submit(read, jobs[0])
    for i, job in enumerate(jobs):
        images = ahead.result()
        if i + 1 < len(jobs):
            ahead = pool.submit(read, jobs[i + 1])
        yield job, images
        del images


def _row_group(
    rows: Sequence[dict[str, Any]],
    images: _Images,
    *,
    shard: int,
    schema: pa.Schema,
    columns: dict[str, bool],
) -> tuple[Any, dict[str, FileRecord]]:
    """An Arrow table of ``rows`` with the image bytes of ``images``, and the files it holds."""
    import pyarrow as pa

    plain = pa.schema([field for field in schema if field.name not in columns])
    table = pa.Table.from_pylist(
        [{k: v for k, v in row.items() if k not in columns} for row in rows], schema=plain
    )
    arrays = {name: table.column(name).combine_chunks() for name in plain.names}
    files: dict[str, FileRecord] = {}
    for name, is_list in columns.items():
        entries, cells, facts = images[name]
        for (row_index, position, _), (relpath, digest, size) in zip(entries, facts, strict=True):
            files[relpath] = FileRecord(digest, size, shard, row_index, name, position)
        if is_list:
            counts = [len(row[name] or []) for row in rows]
            offsets = pa.array([0, *itertools.accumulate(counts)], pa.int32())
            arrays[name] = pa.ListArray.from_arrays(offsets, cells)
        else:
            arrays[name] = cells
    return pa.Table.from_arrays([arrays[n] for n in schema.names], schema=schema), files


def _write_shard(
    out: Path,
    relpath: str,
    rows: Sequence[dict[str, Any]],
    row_groups: Iterable[tuple[range, _Images]],
    *,
    shard: int,
    schema: pa.Schema,
    columns: dict[str, bool],
) -> tuple[ShardRecord, dict[str, FileRecord]]:
    """Write one shard under a temporary name, then rename it.

    Args:
        out: Output folder.
        relpath: The shard's path in ``out``.
        rows: The shard's rows.
        row_groups: Each row group's rows (a span of ``rows``) and images, as read.
        shard: The shard's index.
        schema: The Arrow schema (with the ``datasets`` features in its metadata).
        columns: The image columns (see :func:`~brrrr.ingest.features.image_columns`).

    pyarrow writes the encoded pages to the file itself; a :class:`TrailingHasher` hashes
    each row group's bytes on a thread of its own while this one encodes the next.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files: dict[str, FileRecord] = {}
    path = out / relpath
    tmp = path.with_name(f".{path.name}.part")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, TrailingHasher(tmp) as hasher:
            with pq.ParquetWriter(sink, schema, **_writer_options(schema)) as writer:
                for span, images in row_groups:
                    table, group_files = _row_group(
                        rows[span.start : span.stop],
                        images,
                        shard=shard,
                        schema=schema,
                        columns=columns,
                    )
                    writer.write_table(table, row_group_size=len(span))
                    files |= group_files
                    del table, images  # the row group's bytes: the only large allocation
                    pa.default_memory_pool().release_unused()
                    hasher.catch_up(sink.tell())
            digest, size = hasher.finish(sink.tell())
            os.fsync(sink.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):  # reads fail as BidsError: this is the output's
            raise OutputError(f"cannot write: {exc.strerror or exc}", path=path) from exc
        raise
    record = ShardRecord(
        index=shard,
        path=relpath,
        rows=len(rows),
        bytes=size,
        sha256=digest,
        fingerprint="",
    )
    return record, files


def _reusable(
    record: ShardRecord, out: Path, name: str, fingerprint: str, uploaded_to: str | None
) -> bool:
    """Whether a shard of an earlier run can stay: same name and inputs, and intact or uploaded."""
    if record.path != name or record.fingerprint != fingerprint:
        return False
    local = out / record.path
    if local.is_file():
        return local.stat().st_size == record.bytes
    return uploaded_to is not None and uploaded_to in record.uploaded_to


def _clean_stale(out: Path, keep: set[str]) -> None:
    data = out / DATA_DIR
    if not data.is_dir():
        return
    for stale in data.iterdir():
        name = f"{DATA_DIR}/{stale.name}"
        ours = stale.name.startswith(("train-", ".train-")) and ".parquet" in stale.name
        if ours and name not in keep:
            stale.unlink()


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

        if mode == "merge":
            return _sharded.merge(plan, out, repo_id=repo_id)
        if run == "share":
            assert shard_index is not None
            assert num_shards is not None
            return _sharded.run_share(
                plan,
                out,
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


def _files_by_shard(manifest: Manifest | None) -> dict[int, dict[str, FileRecord]]:
    """A manifest's file records grouped by shard, each group in recorded order."""
    grouped: dict[int, dict[str, FileRecord]] = {}
    for relpath, record in ({} if manifest is None else manifest.files).items():
        grouped.setdefault(record.shard, {})[relpath] = record
    return grouped


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
