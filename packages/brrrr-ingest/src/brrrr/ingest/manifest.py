"""The JSON manifest of a converted dataset: shards, row counts, SHA-256 of shards and sources.

It sits next to the shards (``OUT/manifest.json``) and travels with them to
the Hub. It is rewritten atomically after every finished shard, so a killed
run knows exactly which shards it can keep, and :mod:`brrrr.ingest.verify`
can check a copy of the output anywhere.

Example:
    >>> from brrrr.ingest.manifest import Manifest
    >>> manifest = Manifest.load("out")  # doctest: +SKIP
    >>> manifest.num_rows, len(manifest.shards)  # doctest: +SKIP
    (1804, 12)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brrrr.core.files import atomic_write
from brrrr.ingest.errors import ManifestError

__all__ = ["MANIFEST_NAME", "FileRecord", "Manifest", "ShardRecord"]

MANIFEST_NAME = "manifest.json"
_FORMAT = "brrrr-ingest-manifest"
_VERSION = 1


@dataclass
class ShardRecord:
    """One finished shard.

    Attributes:
        index: Position of the shard (0-based).
        path: File path relative to the output root, e.g. ``data/train-00000-of-00004.parquet``.
        rows: Number of rows.
        bytes: File size.
        sha256: SHA-256 of the file.
        fingerprint: SHA-256 of what the shard was made from (rows, source sizes
            and modification times): a resumed run keeps the shard only if it matches.
        uploaded_to: Destinations that already hold this shard.
    """

    index: int
    path: str
    rows: int
    bytes: int
    sha256: str
    fingerprint: str
    uploaded_to: list[str] = field(default_factory=list)


@dataclass
class FileRecord:
    """One source file embedded in a shard.

    Attributes:
        sha256: SHA-256 of the source file's bytes (the bytes embedded).
        bytes: Source file size.
        shard: Index of the shard holding it.
        row: Row within that shard.
        column: Column holding it (``image``, or a modality at session/subject level).
        position: Position in the column's list (session/subject level); ``None`` at file level.
    """

    sha256: str
    bytes: int
    shard: int
    row: int
    column: str
    position: int | None = None


@dataclass
class Manifest:
    """Everything needed to resume a conversion and to verify its output.

    Attributes:
        source: ``root`` (absolute path when written) and ``name`` of the BIDS dataset.
        options: Options of the conversion; a resume must use the same.
        num_shards: Number of shards the finished output has.
        num_rows: Number of rows over all shards.
        shards: Finished shards, by index.
        files: Embedded source files by path relative to the BIDS root.
        skipped: Files left out (``{"path", "reason"}``) by ``on_error="skip"``.
        complete: Whether every shard and the dataset card are written.
    """

    source: dict[str, Any]
    options: dict[str, Any]
    num_shards: int
    num_rows: int
    shards: dict[int, ShardRecord] = field(default_factory=dict)
    files: dict[str, FileRecord] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    complete: bool = False

    def to_json(self) -> str:
        """The manifest as indented JSON text."""
        payload = {
            "format": _FORMAT,
            "version": _VERSION,
            "source": self.source,
            "options": self.options,
            "num_shards": self.num_shards,
            "num_rows": self.num_rows,
            "complete": self.complete,
            "shards": [asdict(self.shards[i]) for i in sorted(self.shards)],
            "files": {path: asdict(record) for path, record in self.files.items()},
            "skipped": self.skipped,
        }
        return json.dumps(payload, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str | None = None) -> Manifest:
        """Parse a manifest written by :meth:`to_json`.

        Args:
            text: The JSON text.
            where: File it came from, for error messages.

        Raises:
            ManifestError: Not JSON, or not a brrrr-ingest manifest of a known version.
        """
        try:
            raw = json.loads(text)
            if raw.get("format") != _FORMAT:
                raise ValueError(f"format is {raw.get('format')!r}, expected {_FORMAT!r}")
            if raw.get("version") != _VERSION:
                raise ValueError(f"unknown manifest version {raw.get('version')!r}")
            return cls(
                source=raw["source"],
                options=raw["options"],
                num_shards=int(raw["num_shards"]),
                num_rows=int(raw["num_rows"]),
                shards={int(s["index"]): ShardRecord(**s) for s in raw["shards"]},
                files={path: FileRecord(**record) for path, record in raw["files"].items()},
                skipped=list(raw.get("skipped", [])),
                complete=bool(raw.get("complete", False)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"not a valid brrrr-ingest manifest: {exc}", path=where) from None

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> Manifest:
        """Read ``folder/manifest.json``.

        Raises:
            ManifestError: Missing or invalid.
        """
        path = Path(folder) / MANIFEST_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(
                f"cannot read the manifest: {exc.strerror or exc}; is this a `brrrr bids to-hf` output?",
                path=path,
            ) from None
        return cls.from_json(text, where=str(path))

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/manifest.json`` atomically (never half-written).

        Raises:
            FileWriteError: The folder is missing or the write fails (names the file).
        """
        return atomic_write(Path(folder) / MANIFEST_NAME, self.to_json().encode("utf-8"))
