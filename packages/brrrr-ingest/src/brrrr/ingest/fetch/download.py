"""Shared download machinery of the fetchers: safe names, retries, resume, verification.

Every fetcher lists a remote dataset as :class:`RemoteFile` records and hands them to
:func:`download_files`, which applies one set of rules:

* **Names.** A remote name becomes a path under the output folder only if
  :func:`safe_relpath` accepts it: no ``..`` segment, no absolute path, no drive
  letter, no backslash, no empty segment. One unsafe name refuses the whole
  listing before anything is written.
* **Bounded concurrency.** ``concurrency`` threads share one ``httpx.Client``.
* **Resume.** Bytes arrive in ``NAME.part`` next to the final name. A later
  attempt (or a later run) asks for the rest with ``Range: bytes=N-``; a server
  that ignores the range (200 instead of 206) restarts the file from zero.
* **Verification.** The size and the MD5 from the listing, when it gives them,
  are checked before the file takes its final name. SHA-256 is always computed
  and recorded, with the size, in ``.brrrr-fetch.json`` in the output folder.
* **Atomic names.** ``os.replace(NAME.part, NAME)`` only after verification, so a
  file under its final name is always complete.
* **Retries.** As :mod:`brrrr.ingest.fetch.http` says (backoff, jitter,
  ``Retry-After``, a cap); a dropped connection resumes from the ``.part``, a
  checksum mismatch discards it and starts over. 403, 404… fail at once.
* **Skip what is there.** A final file whose size matches the listing and whose
  manifest entry matches the listing's size and MD5 is not fetched again
  (``verify_existing="hash"`` re-hashes it instead).

Example:
    >>> from brrrr.ingest.fetch.download import safe_relpath
    >>> safe_relpath("sub-01/anat/sub-01_T1w.nii.gz").parts
    ('sub-01', 'anat', 'sub-01_T1w.nii.gz')
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import httpx
from tqdm.auto import tqdm

from brrrr.ingest.errors import ChecksumError, FetchError, UnsafePathError
from brrrr.ingest.fetch.http import make_client, status_problem
from brrrr.ingest.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

__all__ = [
    "MANIFEST_NAME",
    "PART_SUFFIX",
    "FetchManifest",
    "FetchReport",
    "RemoteFile",
    "check_names",
    "download_files",
    "safe_relpath",
    "select_files",
]

MANIFEST_NAME = ".brrrr-fetch.json"
PART_SUFFIX = ".part"
CHUNK_BYTES = 1 << 20
_MD5 = re.compile(r"[0-9a-f]{32}")
_DRIVE = re.compile(r"[A-Za-z]:")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote listing.

    Args:
        name: Relative POSIX path under the output folder (checked by :func:`safe_relpath`).
        url: Where to GET the bytes (redirects are followed).
        size: Size in bytes from the listing, when it gives one.
        md5: Hex MD5 from the listing (an S3 ETag or a Swift hash), when it is one.
    """

    name: str
    url: str
    size: int | None = None
    md5: str | None = None

    def __post_init__(self) -> None:
        if self.md5 is not None:
            md5 = self.md5.strip('"').lower()
            object.__setattr__(self, "md5", md5 if _MD5.fullmatch(md5) else None)


@dataclass
class FetchReport:
    """What one :func:`download_files` run did.

    Attributes:
        root: The output folder.
        downloaded: Names fetched in this run.
        present: Names already complete and verified, not fetched again.
        failed: Name → reason, for files that still failed after every retry.
        bytes_downloaded: Bytes received in this run (resumed prefixes not counted).
    """

    root: Path
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    bytes_downloaded: int = 0

    def summary(self) -> str:
        """One line for people: counts, bytes and the output folder."""
        text = (
            f"{len(self.downloaded)} downloaded ({self.bytes_downloaded:,} bytes), "
            f"{len(self.present)} already present, {len(self.failed)} failed → {self.root}"
        )
        return text


class _Retry(Exception):
    """Internal: this attempt failed in a way worth another attempt."""

    def __init__(self, reason: str, *, retry_after: float | None = None, checksum: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.checksum = checksum


def safe_relpath(name: str, *, source: str | None = None) -> PurePosixPath:
    """Check a remote name and return it as a relative path that stays in the output folder.

    Args:
        name: The name as the remote listing (or a ZIP member) spells it.
        source: Where the name came from (a URL or an archive), for the error message.

    Returns:
        The name as a :class:`~pathlib.PurePosixPath` with at least one part.

    Raises:
        UnsafePathError: The name is empty, absolute, has a drive letter, a
            backslash, a NUL, or an empty, ``.`` or ``..`` segment.
    """
    origin = f" (listed by {source})" if source else ""
    problem = None
    if not name:
        problem = "an empty name"
    elif "\\" in name:
        problem = "a backslash in the name (Windows separators are refused)"
    elif "\x00" in name:
        problem = "a NUL character in the name"
    elif name.startswith("/"):
        problem = "an absolute path"
    elif _DRIVE.match(name):
        problem = "a drive letter"
    else:
        parts = name.split("/")
        if ".." in parts:
            problem = "a '..' segment that escapes the output folder"
        elif any(part in ("", ".") for part in parts):
            problem = "an empty or '.' segment"
    if problem is not None:
        raise UnsafePathError(
            f"refused: {problem}{origin}; nothing was written for this listing", path=name
        )
    return PurePosixPath(name)


def check_names(files: Iterable[RemoteFile]) -> None:
    """Refuse a whole listing if any name in it is unsafe (see :func:`safe_relpath`).

    Fetchers call this on the full listing, before ``include`` filters, so a
    hostile listing is reported even when the hostile name was not asked for.
    """
    for remote in files:
        safe_relpath(remote.name, source=remote.url)


def _target(root: Path, name: str, *, source: str | None = None) -> Path:
    rel = safe_relpath(name, source=source)
    target = root.joinpath(*rel.parts)
    real_root = os.path.realpath(root)
    # A symbolic link inside the output folder could still lead outside it.
    if os.path.commonpath([real_root, os.path.realpath(target.parent)]) != real_root:
        raise UnsafePathError(
            "refused: the path leads outside the output folder through a symbolic link",
            path=name,
        )
    return target


def select_files(
    files: Iterable[RemoteFile],
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[RemoteFile]:
    """Keep the files whose name matches any ``include`` glob and no ``exclude`` glob.

    Globs are :func:`fnmatch.fnmatchcase` patterns on the whole relative name, so
    ``*`` also crosses ``/`` (``sub-*/ses-*/anat/*`` and ``*.json`` both work).
    No ``include`` keeps everything.
    """
    kept = []
    for remote in files:
        if include and not any(fnmatch.fnmatchcase(remote.name, p) for p in include):
            continue
        if exclude and any(fnmatch.fnmatchcase(remote.name, p) for p in exclude):
            continue
        kept.append(remote)
    return kept


class FetchManifest:
    """``.brrrr-fetch.json``: size, SHA-256 and source of every file fetched into a folder.

    Thread-safe. Written atomically (temporary name, then rename), at most once
    a second while downloads run and once at the end, so a killed run loses at
    most the last second of entries (those files are checked again next time).
    """

    def __init__(self, root: Path) -> None:
        self.path = root / MANIFEST_NAME
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._dirty = False
        self.files: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.files = dict(loaded["files"])
            except (ValueError, KeyError, TypeError):
                # An unreadable manifest only costs re-verification, never wrong data.
                self.files = {}

    def get(self, name: str) -> dict[str, Any] | None:
        """The entry recorded for ``name``, if any."""
        with self._lock:
            return self.files.get(name)

    def record(self, name: str, entry: dict[str, Any]) -> None:
        """Record ``name`` and write the manifest if the last write is over a second old."""
        with self._lock:
            self.files[name] = entry
            self._dirty = True
            if time.monotonic() - self._last_write > 1.0:
                self._write()

    def flush(self) -> None:
        """Write the manifest now if anything changed."""
        with self._lock:
            if self._dirty:
                self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"format": "brrrr-fetch-manifest", "version": 1, "files": self.files}
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
        self._last_write = time.monotonic()
        self._dirty = False


def _hash_file(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _is_present(
    remote: RemoteFile,
    target: Path,
    manifest: FetchManifest,
    verify_existing: Literal["manifest", "hash"],
) -> bool:
    if not target.is_file():
        return False
    size = target.stat().st_size
    if remote.size is not None and size != remote.size:
        return False
    entry = manifest.get(remote.name)
    if verify_existing == "manifest" and entry is not None:
        same_size = entry.get("size") == size
        same_md5 = remote.md5 is None or entry.get("md5") in (None, remote.md5)
        if same_size and same_md5:
            return True
    if remote.md5 is None and (entry is None or "sha256" not in entry):
        return False  # nothing to check it against: fetch it again
    md5, sha = _hash_file(target)
    if (remote.md5 is not None and md5 != remote.md5) or (
        remote.md5 is None and entry is not None and entry.get("sha256") != sha
    ):
        return False
    manifest.record(remote.name, {"size": size, "sha256": sha, "md5": md5, "url": remote.url})
    return True


class _Downloader:
    """Fetches one file at a time into ``NAME.part``, resuming, verifying, renaming."""

    def __init__(
        self,
        client: httpx.Client,
        retry: RetryPolicy,
        manifest: FetchManifest,
        bar: tqdm[Any],
        stop: threading.Event,
    ) -> None:
        self.client = client
        self.retry = retry
        self.manifest = manifest
        self.bar = bar
        self.stop = stop
        self._lock = threading.Lock()
        self._shown: dict[str, int] = {}  # bytes of each file the bar counts: its .part size
        self.received = 0

    def _show(self, name: str, on_disk: int) -> None:
        with self._lock:
            self.bar.update(on_disk - self._shown.get(name, 0))
            self._shown[name] = on_disk

    def _add(self, name: str, n: int) -> None:
        with self._lock:
            self.bar.update(n)
            self._shown[name] = self._shown.get(name, 0) + n
            self.received += n

    def fetch(self, remote: RemoteFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + PART_SUFFIX)
        last = _Retry("no attempt made")
        for attempt in range(1, self.retry.attempts + 1):
            if self.stop.is_set():
                raise FetchError("interrupted", path=remote.url)
            try:
                self._attempt(remote, target, part)
                return
            except _Retry as exc:
                last = exc
            except httpx.TransportError as exc:
                last = _Retry(f"{type(exc).__name__}: {exc}")
            if attempt < self.retry.attempts:
                self.retry.sleep(self.retry.delay(attempt, last.retry_after))
        error = ChecksumError if last.checksum else FetchError
        raise error(
            f"failed after {self.retry.attempts} attempts; last: {last.reason}", path=remote.url
        )

    def _attempt(self, remote: RemoteFile, target: Path, part: Path) -> None:
        offset = part.stat().st_size if part.exists() else 0
        if remote.size is not None and offset > remote.size:
            part.unlink()
            offset = 0
        self._show(remote.name, offset)
        if remote.size is not None and offset == remote.size and offset > 0:
            self._finish(remote, target, part, *_hash_file(part))
            return
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        with self.client.stream("GET", remote.url, headers=headers) as response:
            status = response.status_code
            if status == 416:
                part.unlink(missing_ok=True)
                raise _Retry("HTTP 416 for the rest of a partial download; starting over")
            if status in RETRY_STATUSES:
                raise _Retry(
                    status_problem(response),
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            if status >= 400:
                raise FetchError(status_problem(response), path=remote.url)
            if offset and (
                status != 206
                or not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
            ):
                offset = 0  # the server sent the whole file: start over
                self._show(remote.name, 0)
            if offset:
                with part.open("rb") as fh:
                    while chunk := fh.read(CHUNK_BYTES):
                        md5.update(chunk)
                        sha.update(chunk)
            total = offset
            with part.open("ab" if offset else "wb") as fh:
                # No chunk size: bytes reach the .part as they arrive, so a drop loses none.
                for chunk in response.iter_raw():
                    if self.stop.is_set():
                        raise FetchError("interrupted", path=remote.url)
                    fh.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    total += len(chunk)
                    self._add(remote.name, len(chunk))
                    if remote.size is not None and total > remote.size:
                        break
        if remote.size is not None and total > remote.size:
            part.unlink()
            raise _Retry(f"more bytes than the listed {remote.size}", checksum=True)
        if remote.size is not None and total < remote.size:
            raise _Retry(f"{total} of {remote.size} bytes before the stream ended")
        self._finish(remote, target, part, md5.hexdigest(), sha.hexdigest())

    def _finish(self, remote: RemoteFile, target: Path, part: Path, md5: str, sha: str) -> None:
        if remote.md5 is not None and md5 != remote.md5:
            part.unlink()
            raise _Retry(
                f"checksum mismatch: MD5 {md5}, the listing says {remote.md5}", checksum=True
            )
        size = part.stat().st_size
        os.replace(part, target)
        self.manifest.record(
            remote.name, {"size": size, "sha256": sha, "md5": md5, "url": remote.url}
        )


def download_files(
    files: Sequence[RemoteFile],
    out_dir: str | os.PathLike[str],
    *,
    client: httpx.Client | None = None,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    verify_existing: Literal["manifest", "hash"] = "manifest",
    on_error: Literal["raise", "report"] = "raise",
    timeout_s: float = 60.0,
    progress: bool = True,
    description: str = "fetch",
) -> FetchReport:
    """Download ``files`` into ``out_dir`` under their names (see the module rules).

    Every name is checked before anything is written. Files that fail do not stop
    the others; the failures are raised together at the end.

    Args:
        files: What to fetch, from a fetcher's listing.
        out_dir: Output folder, created if missing.
        client: A client to reuse (e.g. with an ``Authorization`` header); one
            from :func:`make_client` otherwise.
        concurrency: Files downloaded at once.
        retry: Retry rules (:class:`~brrrr.ingest.retry.RetryPolicy` defaults otherwise).
        verify_existing: Trust the manifest for files already present
            (``"manifest"``), or re-hash them (``"hash"``).
        on_error: ``"raise"`` a :class:`FetchError` naming every failed file, or
            ``"report"`` them in :attr:`FetchReport.failed`.
        timeout_s: Per-request timeout when this function makes the client.
        progress: Show a tqdm bar of bytes.
        description: Label of the bar.

    Returns:
        A :class:`FetchReport`.

    Raises:
        UnsafePathError: A name would escape ``out_dir``; nothing was downloaded.
        FetchError: Two remote names map to the same file, or (``on_error="raise"``)
            files still failed after every retry.
    """
    root = Path(out_dir)
    targets: dict[str, Path] = {}
    for remote in files:
        targets[remote.name] = _target(root, remote.name, source=remote.url)
    names = [remote.name for remote in files]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise FetchError(f"the listing names these files twice: {', '.join(dupes[:5])}", path=root)
    if MANIFEST_NAME in targets:
        raise FetchError(
            f"the listing has a file named {MANIFEST_NAME}, the name of this tool's manifest",
            path=root,
        )
    clashes = sorted(n for n in names if n + PART_SUFFIX in targets)
    if clashes:
        raise FetchError(
            f"the listing has both {clashes[0]!r} and {clashes[0] + PART_SUFFIX!r}, "
            "which the resume files would mix up",
            path=root,
        )
    root.mkdir(parents=True, exist_ok=True)
    manifest = FetchManifest(root)
    report = FetchReport(root=root)
    todo = []
    for remote in files:
        target = targets[remote.name]
        if _is_present(remote, target, manifest, verify_existing):
            report.present.append(remote.name)
            target.with_name(target.name + PART_SUFFIX).unlink(missing_ok=True)  # stale
        else:
            todo.append(remote)
    sizes = [r.size for r in todo]
    total = sum(s for s in sizes if s is not None) if None not in sizes else None
    own_client = client is None
    http = client or make_client(timeout_s=timeout_s, concurrency=concurrency)
    stop = threading.Event()
    errors: list[Exception] = []
    try:
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=description,
            disable=not progress or not todo,
        ) as bar:
            worker = _Downloader(http, retry or RetryPolicy(), manifest, bar, stop)
            with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(todo) or 1))) as pool:
                futures: dict[Future[None], RemoteFile] = {
                    pool.submit(worker.fetch, remote, targets[remote.name]): remote
                    for remote in todo
                }
                try:
                    for future in as_completed(futures):
                        remote = futures[future]
                        try:
                            future.result()
                        except (FetchError, OSError) as exc:
                            report.failed[remote.name] = str(exc)
                            errors.append(exc)
                        else:
                            report.downloaded.append(remote.name)
                except BaseException:
                    stop.set()
                    for future in futures:
                        future.cancel()
                    raise
            report.bytes_downloaded = worker.received
    finally:
        manifest.flush()
        if own_client:
            http.close()
    report.downloaded.sort()
    if errors and on_error == "raise":
        if len(errors) == 1:
            raise errors[0]
        listed = "; ".join(f"{reason}" for _, reason in sorted(report.failed.items())[:10])
        more = f" (and {len(report.failed) - 10} more)" if len(report.failed) > 10 else ""
        raise FetchError(
            f"{len(report.failed)} of {len(files)} files failed: {listed}{more}; "
            "run again to resume",
            path=root,
        )
    return report
