"""A file that is hashed as it is written, in the background.

:class:`HashingWriter` takes what the Parquet writer produces and, on one
background thread, writes it to disk and feeds a SHA-256 with it. File writes
and ``hashlib`` release the GIL, so on two cores the shard's hash and its write
overlap the encoding of the next pages, and the shard is never read back to be
hashed. Memory stays bounded: the writer waits once ``max_pending_bytes`` are
queued. As the file grows, the kernel is asked to start writing it out, so that
the ``fsync`` that makes it durable at the end has little left to wait for.

Example:
    >>> from brrrr.ingest._hashing import HashingWriter
    >>> sink = HashingWriter("shard.parquet.part")  # doctest: +SKIP
    >>> sink.write(b"PAR1")  # doctest: +SKIP
    4
    >>> digest, size = sink.finish()  # hashed, flushed and fsynced  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["HashingWriter"]

# Page headers and footers arrive as many writes of a few bytes: gather those
# into one chunk instead of a thread hand-off each; larger writes go as they are.
_SMALL = 64 << 10
_GATHER = 1 << 20
# Start the writeback of every this many bytes written.
_WRITEBACK = 32 << 20


class HashingWriter:
    """A write-only binary file that computes the SHA-256 of what it receives.

    Chunks are written and hashed in order on one background thread; an error
    there (disk full…) is raised by the next :meth:`write` or by :meth:`finish`.

    Args:
        path: The file to create (truncated if it exists).
        max_pending_bytes: Bytes handed to the thread but not yet written, at most.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_pending_bytes: int = 32 << 20) -> None:
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by finish() or close()
        self._digest = hashlib.sha256()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="brrrr-hash")
        self._pending: deque[tuple[int, Future[None]]] = deque()
        self._pending_bytes = 0
        self._max_pending = max_pending_bytes
        self._small: list[bytes] = []
        self._small_bytes = 0
        self._size = 0
        self._written = 0
        self._flushed = 0
        self.closed = False

    def _consume(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:  # a raw write may be partial
            view = view[self._file.write(view) :]
        self._digest.update(chunk)
        self._written += len(chunk)
        if self._written - self._flushed >= _WRITEBACK and hasattr(os, "posix_fadvise"):
            # DONTNEED starts the writeback of these pages now, and drops them from the
            # page cache once written: nothing reads this file back while it is written.
            os.posix_fadvise(
                self._file.fileno(),
                self._flushed,
                self._written - self._flushed,
                os.POSIX_FADV_DONTNEED,
            )
            self._flushed = self._written

    def _submit(self, chunk: bytes) -> None:
        self._pending.append((len(chunk), self._thread.submit(self._consume, chunk)))
        self._pending_bytes += len(chunk)
        while self._pending_bytes > self._max_pending:
            self._retire()

    def _retire(self) -> None:
        size, done = self._pending.popleft()
        self._pending_bytes -= size
        done.result()

    def _flush_small(self) -> None:
        if self._small:
            self._submit(b"".join(self._small))
            self._small.clear()
            self._small_bytes = 0

    def write(self, data: Any) -> int:
        """Queue ``data`` (bytes-like) for writing and hashing; return its length."""
        if self.closed:
            raise ValueError("write to a closed HashingWriter")
        # The caller may reuse a mutable buffer once this returns: keep an immutable copy.
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._size += len(chunk)
        if len(chunk) < _SMALL:
            self._small.append(chunk)
            self._small_bytes += len(chunk)
            if self._small_bytes >= _GATHER:
                self._flush_small()
        else:
            self._flush_small()
            self._submit(chunk)
        return len(chunk)

    def tell(self) -> int:
        """Bytes written so far (queued included)."""
        return self._size

    def flush(self) -> None:
        """Nothing to do: :meth:`finish` makes the file complete and durable."""

    def finish(self) -> tuple[str, int]:
        """Wait for every write, fsync the file, close it; return its SHA-256 and size."""
        self._flush_small()
        while self._pending:
            self._retire()
        os.fsync(self._file.fileno())
        self.close()
        return self._digest.hexdigest(), self._size

    def close(self) -> None:
        """Stop and close the file (without fsync); what was queued is still written."""
        if self.closed:
            return
        self.closed = True
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._file.close()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
