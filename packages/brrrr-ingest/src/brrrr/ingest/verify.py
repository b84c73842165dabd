"""Check a converted dataset — a local folder or a Hub repo — against its manifest.

:func:`verify` checks that every shard the manifest lists is there with the
right size, SHA-256 and row count, that no unlisted shard is there, and that
the image bytes embedded in the shards have the SHA-256 the manifest recorded
and, when the BIDS source is at hand, the SHA-256 of the source files — for
every file or for a seeded random sample.

Example:
    >>> from brrrr.ingest.verify import verify
    >>> report = verify("ds004884-hf", sample=100)  # doctest: +SKIP
    >>> report.ok, report.problems  # doctest: +SKIP
    (True, [])
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from brrrr.core.files import sha256_file, sha256_hex
from brrrr.ingest.errors import ManifestError
from brrrr.ingest.manifest import MANIFEST_NAME, FileRecord, Manifest

__all__ = ["VerifyReport", "verify"]

# Bytes per read of a shard: large, as each read of a Hub file may be an HTTP range request.
_CHUNK = 8 << 20
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`.

    Attributes:
        target: What was checked.
        source: The BIDS root the embedded bytes were compared with, if any.
        shards_checked: Shards whose size and row count were checked.
        shards_hashed: Shards whose SHA-256 was computed.
        files_checked: Embedded files whose bytes were hashed.
        problems: One line per problem; empty when everything matches.
    """

    target: str
    source: str | None = None
    shards_checked: int = 0
    shards_hashed: int = 0
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def _filesystem(target: str | os.PathLike[str]) -> tuple[Any, str]:
    import fsspec

    text = os.fspath(target)
    if not Path(text).exists() and _REPO_ID.match(text):
        text = f"hf://datasets/{text}"
    fs, base = fsspec.core.url_to_fs(text)
    return fs, base.rstrip("/")


def _embedded(
    fs: Any, path: str, wanted: list[tuple[str, FileRecord]]
) -> dict[str, tuple[bytes | None, str | None]]:
    """Bytes and stored path of each wanted file, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    found: dict[str, tuple[bytes | None, str | None]] = {}
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        starts = [0]
        for i in range(parquet.metadata.num_row_groups):
            starts.append(starts[-1] + parquet.metadata.row_group(i).num_rows)
        by_group: dict[int, list[tuple[str, FileRecord]]] = defaultdict(list)
        for relpath, record in wanted:
            group = next((g for g in range(len(starts) - 1) if record.row < starts[g + 1]), None)
            if group is not None:
                by_group[group].append((relpath, record))
        for group, members in sorted(by_group.items()):
            columns = sorted({record.column for _, record in members})
            table = parquet.read_row_group(group, columns=columns)
            for relpath, record in members:
                cell = table.column(record.column)[record.row - starts[group]].as_py()
                if record.position is not None:
                    cell = cell[record.position] if cell and record.position < len(cell) else None
                found[relpath] = (None, None) if cell is None else (cell["bytes"], cell["path"])
    return found


def verify(
    target: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | Literal["manifest", "none"] = "manifest",
    sample: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> VerifyReport:
    """Compare an output folder or Hub repo with its ``manifest.json``.

    Args:
        target: A folder written by :func:`~brrrr.ingest.shards.to_hf`, a URL
            fsspec understands (``hf://datasets/owner/name``), or ``owner/name``.
        source: The BIDS root to compare embedded bytes with; ``"manifest"``
            uses the root recorded in the manifest when it exists here;
            ``"none"`` compares with the manifest only.
        sample: Check this many embedded files, drawn with ``seed`` (and hash
            only the shards holding them); ``None`` checks everything.
        seed: Seed of the sample.
        progress: Show a progress bar.

    Returns:
        The :class:`VerifyReport`; ``report.ok`` is True when nothing differs.
    """
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    fs, base = _filesystem(target)
    report = VerifyReport(target=os.fspath(target))
    try:
        with fs.open(f"{base}/{MANIFEST_NAME}", "rb") as handle:
            manifest = Manifest.from_json(
                handle.read().decode("utf-8"), where=f"{base}/{MANIFEST_NAME}"
            )
    except (OSError, ManifestError) as exc:
        report.problems.append(f"{MANIFEST_NAME}: cannot read it ({exc})")
        return report
    if not manifest.complete:
        report.problems.append(f"{MANIFEST_NAME}: the conversion did not finish (resume it)")
    if not fs.exists(f"{base}/README.md"):
        report.problems.append("README.md: missing (the dataset card)")
    root = _source_root(manifest, source)
    report.source = None if root is None else str(root)

    files = sorted(manifest.files.items())
    if sample is not None and sample < len(files):
        files = random.Random(seed).sample(files, sample)
    wanted_shards = {record.shard for _, record in files}
    present: set[int] = set()
    rows = 0
    missing = sorted(set(range(manifest.num_shards)) - set(manifest.shards))
    if missing:
        report.problems.append(f"{MANIFEST_NAME}: shards {missing} are not recorded as finished")
    for index, record in tqdm(
        sorted(manifest.shards.items()), desc="verifying shards", unit="shard", disable=not progress
    ):
        path = f"{base}/{record.path}"
        if not fs.exists(path):
            report.problems.append(f"{record.path}: missing")
            continue
        present.add(index)
        size = int(fs.info(path)["size"])
        if size != record.bytes:
            report.problems.append(f"{record.path}: {size} bytes, the manifest says {record.bytes}")
        report.shards_checked += 1
        if sample is None or index in wanted_shards:
            with fs.open(path, "rb") as handle:
                digest = sha256_file(handle, chunk_size=_CHUNK).hexdigest()
            report.shards_hashed += 1
            if digest != record.sha256:
                report.problems.append(
                    f"{record.path}: SHA-256 {digest} differs from the manifest's"
                )
        with fs.open(path, "rb") as handle:
            n_rows = pq.ParquetFile(handle).metadata.num_rows
        rows += n_rows
        if n_rows != record.rows:
            report.problems.append(f"{record.path}: {n_rows} rows, the manifest says {record.rows}")
    if rows != manifest.num_rows and len(present) == manifest.num_shards:
        report.problems.append(f"{rows} rows in all shards, the manifest says {manifest.num_rows}")
    listed = {record.path for record in manifest.shards.values()}
    for extra in sorted(fs.glob(f"{base}/data/*.parquet")):
        name = extra[len(base) + 1 :] if extra.startswith(base) else extra.split("/", 1)[-1]
        if name not in listed:
            report.problems.append(f"{name}: a shard the manifest does not list")
    _check_files(fs, base, manifest, files, present, root, report, progress=progress)
    return report


def _source_root(manifest: Manifest, source: str | os.PathLike[str]) -> Path | None:
    if source == "none":
        return None
    if source == "manifest":
        recorded = manifest.source.get("root")
        return Path(recorded) if recorded and Path(recorded).is_dir() else None
    return Path(source)


def _check_files(
    fs: Any,
    base: str,
    manifest: Manifest,
    files: list[tuple[str, FileRecord]],
    present: set[int],
    root: Path | None,
    report: VerifyReport,
    *,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    by_shard: dict[int, list[tuple[str, FileRecord]]] = defaultdict(list)
    for relpath, record in files:
        by_shard[record.shard].append((relpath, record))
    bar = tqdm(total=len(files), desc="verifying embedded files", unit="file", disable=not progress)
    for shard, wanted in sorted(by_shard.items()):
        if shard not in present:
            bar.update(len(wanted))
            continue
        found = _embedded(fs, f"{base}/{manifest.shards[shard].path}", wanted)
        for relpath, record in wanted:
            data, stored_path = found.get(relpath, (None, None))
            report.files_checked += 1
            if data is None:
                report.problems.append(f"{relpath}: no embedded bytes at the recorded place")
            elif hashlib.sha256(data).hexdigest() != record.sha256:
                report.problems.append(
                    f"{relpath}: embedded bytes differ from the manifest's SHA-256"
                )
            elif stored_path != relpath:
                report.problems.append(f"{relpath}: the embedded cell names {stored_path!r}")
            if root is not None:
                source_file = root / relpath
                if not source_file.is_file():
                    report.problems.append(f"{relpath}: missing from the source {root}")
                elif sha256_hex(source_file) != record.sha256:
                    report.problems.append(
                        f"{relpath}: the source file differs from the embedded bytes"
                    )
            bar.update(1)
    bar.close()
