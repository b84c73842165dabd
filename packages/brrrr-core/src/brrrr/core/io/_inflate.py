"""Inflating gzip content with ISA-L into a buffer of known size, piece by piece.

:meth:`RawSource.read <brrrr.core.io._source.RawSource.read>` returns the inflated content as a
new ``bytes`` object, which a reader must then copy into a writable array. Here the content goes
straight into the caller's array, in pieces of about 200 KB, so that (a) there is no second copy
and (b) a reader on another thread can use the first voxels while the rest is still inflating
(ISA-L releases the GIL while it inflates).

:class:`ReadAhead` lets one thread read the file while another inflates what has arrived.

Each call to the inflater gets at most ``_PIECE`` compressed bytes and may return at most the bytes
still wanted, so a corrupt or hostile stream can never make us allocate more than the header
declared. The errors and their messages are those of ``RawSource``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from io import BufferedIOBase

import numpy as np
from isal import isal_zlib

from brrrr.core.errors import VolumeReadError

__all__ = ["GZIP_MAGIC", "ReadAhead", "gunzip_head", "inflate_into"]

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31  # 16 + 15: a gzip header and trailer, 32 KiB window
# Compressed bytes per inflater call: ~200 KB of content, which stays in cache while it is
# copied (and, for a streaming reader, while it is used).
_PIECE = 1 << 17
# Compressed bytes fed to find the end of a member whose declared content is complete.
_TRAILER_LOOKAHEAD = 64
# Bytes per read of a ReadAhead: the inflater waits for at most one.
_READ = 1 << 20


def gunzip_head(raw: bytes, n: int, *, name: str) -> bytes:
    """The first ``n`` bytes of the first gzip member's content (fewer if it is shorter).

    Only the compressed bytes needed are inflated, so the cost does not grow with the file.

    Raises:
        VolumeReadError: The start of the stream is corrupt.
    """
    view = memoryview(raw)
    size = 4096
    while True:
        try:
            head = isal_zlib.decompressobj(wbits=_GZIP_WBITS).decompress(view[:size], n)
        except isal_zlib.error as exc:  # type: ignore[misc]
            raise VolumeReadError(f"corrupt gzip stream: {exc}", path=name) from None
        if len(head) >= n or size >= len(raw):
            return head
        size *= 4


class ReadAhead:
    """A file read into one buffer by one thread while another already inflates its start.

    Args:
        file: The open file, positioned at its start.
        size: Its size in bytes (``os.fstat``); a file that shrinks meanwhile ends early.
    """

    def __init__(self, file: BufferedIOBase, size: int) -> None:
        self._file = file
        # Not bytearray(size): that zero-fills the buffer first, which costs as much as reading.
        self.buffer: memoryview = np.empty(size, dtype=np.uint8).data
        self._filled = 0
        self._done = False
        self._changed = threading.Condition()

    @property
    def filled(self) -> int:
        """Bytes read so far."""
        return self._filled

    def read(self, end: int | None = None) -> None:
        """Read on up to byte ``end`` (the end of the file when ``None``).

        Raises:
            OSError: The read failed; the bytes after the failure count as missing.
        """
        view = self.buffer
        stop = len(self.buffer) if end is None else min(end, len(self.buffer))
        try:
            while self._filled < stop:
                n = self._file.readinto(view[self._filled : min(stop, self._filled + _READ)])
                if not n:  # the file is shorter than it was
                    self._end()
                    return
                with self._changed:
                    self._filled += n
                    self._changed.notify_all()
        except BaseException:
            self._end()
            raise
        if self._filled == len(self.buffer):
            self._end()

    def _end(self) -> None:
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def available(self, end: int) -> int:
        """Block until ``end`` bytes are read, or the file has ended; the bytes read."""
        with self._changed:
            while self._filled < end and not self._done:
                self._changed.wait()
            return self._filled


def inflate_into(
    raw: bytes | memoryview,
    out: np.ndarray,
    *,
    skip: int,
    name: str,
    progress: Callable[[int], None] | None = None,
    stopped: Callable[[], bool] | None = None,
    available: Callable[[int], int] | None = None,
) -> None:
    """Inflate the gzip stream ``raw`` and fill ``out`` with its content after ``skip`` bytes.

    Several gzip members back to back (bgzip, appended writes) concatenate. Whenever a member
    ends right after the wanted bytes, its CRC and length are checked too.

    Args:
        raw: The compressed bytes.
        out: (n,) writable, C-contiguous uint8 array; exactly filled on return.
        skip: Content bytes before the first one ``out`` receives (a header).
        name: The file named in errors.
        progress: Called with the number of bytes of ``out`` filled so far, after each piece.
        stopped: Polled between pieces; when it returns ``True`` the function returns early,
            leaving ``out`` partly filled.
        available: For ``raw`` still being filled (:meth:`ReadAhead.available`): blocks
            until the first ``n`` bytes are there, or fewer when that is all there will be,
            and returns how many are.

    Raises:
        VolumeReadError: The stream is corrupt (bad deflate data, CRC or length), or it ends
            before ``skip + out.size`` bytes of content (a truncated file).
    """
    target = skip + out.size
    view = memoryview(raw)
    size = len(raw)

    def present(end: int) -> int:
        """The end of the bytes there are up to ``end`` (waiting for them when still read)."""
        return min(end, size if available is None else available(end))

    got = 0  # content bytes inflated so far
    pos = 0  # next compressed byte not yet given to an inflater
    while True:
        inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            while got < target and not inflater.eof:
                if stopped is not None and stopped():
                    return
                piece: bytes | memoryview = inflater.unconsumed_tail
                if not piece:
                    end = present(pos + _PIECE)
                    if end <= pos:
                        break
                    piece = view[pos:end]
                    pos = end
                chunk = inflater.decompress(piece, target - got)
                if got + len(chunk) > skip:
                    start = max(skip - got, 0)
                    out[got + start - skip : got + len(chunk) - skip] = np.frombuffer(
                        chunk, dtype=np.uint8, offset=start
                    )
                got += len(chunk)
                if progress is not None:
                    progress(max(got - skip, 0))
            if got >= target:
                if not inflater.eof:
                    # Inflate what follows (at most 1 byte): reaches the trailer, so the CRC
                    # and length are checked, when the member ends here.
                    file_end = present(pos + _TRAILER_LOOKAHEAD)
                    rest = bytes(inflater.unconsumed_tail) + bytes(view[pos:file_end])
                    more = inflater.decompress(rest, 1)
                    if not inflater.eof and not more and file_end < pos + _TRAILER_LOOKAHEAD:
                        # Nothing follows the content, yet the member never ended: its CRC
                        # and length trailer is missing or cut (gzip's own "unexpected end").
                        raise VolumeReadError(
                            "gzip stream is truncated: it ends before its CRC and length trailer",
                            path=name,
                        )
                return
        except isal_zlib.error as exc:  # type: ignore[misc]
            raise VolumeReadError(f"corrupt gzip stream: {exc}", path=name) from None
        if not inflater.eof:
            raise VolumeReadError(
                f"gzip stream is truncated after {got} bytes of content", path=name
            )
        pos -= len(inflater.unused_data)
        if bytes(view[pos : present(pos + 2)]) != GZIP_MAGIC:
            raise VolumeReadError(
                f"file is truncated: expected at least {target} bytes of content, found {got}",
                path=name,
            )
