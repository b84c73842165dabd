"""The shard writer under :func:`~brrrr.ingest.shards.to_hf`, on one machine or many.

What a conversion will write is planned once (:class:`_Plan`: rows from header facts,
shards of about ``shard_bytes``, their row groups and input fingerprints), then each shard
is written by :func:`_write_shard`: row groups read straight into one buffer each
(:func:`_read_images`, SHA-256 from the very bytes embedded), encoded by pyarrow into a
temporary file that a :class:`~brrrr.ingest._hashing.TrailingHasher` hashes as it grows,
and renamed when complete. :mod:`brrrr.ingest.shards` (one machine) and
:mod:`brrrr.ingest._sharded` (shares and Dask tasks) both write through it, so every way
writes the same bytes under the same names.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brrrr.ingest._hashing import TrailingHasher
from brrrr.ingest.errors import BidsError, OutputError
from brrrr.ingest.manifest import FileRecord, Manifest, ShardRecord
from brrrr.ingest.rows import LoadReport

if TYPE_CHECKING:
    import pyarrow as pa

    from brrrr.ingest.index import BidsIndex

__all__ = ["DATA_DIR", "ShardHook", "plan_shards", "shard_name"]

DATA_DIR = "data"


ShardHook = Callable[[Manifest, ShardRecord, bool], None]


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


def _files_by_shard(manifest: Manifest | None) -> dict[int, dict[str, FileRecord]]:
    """A manifest's file records grouped by shard, each group in recorded order."""
    grouped: dict[int, dict[str, FileRecord]] = {}
    for relpath, record in ({} if manifest is None else manifest.files).items():
        grouped.setdefault(record.shard, {})[relpath] = record
    return grouped
