"""Reading raw bytes from a path or a bytes object, gunzipping with ISA-L.

ISA-L (``isal``) inflates about twice as fast as the standard library's zlib.
Decompression is bounded: callers ask for the number of bytes a header declares,
so a corrupt or hostile file cannot make us allocate more than that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from isal import isal_zlib

from brrrr.core.errors import VolumeReadError

__all__ = ["RawSource", "open_source"]

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31  # 16 + 15: a gzip header and trailer, 32 KiB window


@dataclass(frozen=True)
class RawSource:
    """The bytes of a file as stored (possibly gzip-compressed).

    Attributes:
        raw: The stored bytes.
        name: The path to name in error messages (``"<bytes>"`` for in-memory input).
        path: The path, or ``None`` for in-memory input.
    """

    raw: bytes
    name: str
    path: Path | None

    @property
    def is_gzip(self) -> bool:
        """Whether the stored bytes start with the gzip magic number."""
        return self.raw[:2] == GZIP_MAGIC

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes of the content (decompressing only what is needed)."""
        if not self.is_gzip:
            return self.raw[:n]
        # Feed the stream in growing pieces: given all of it, the inflater would keep a copy
        # of every byte it did not need (its ``unconsumed_tail``), the whole file less a few KB.
        inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        stored = memoryview(self.raw)
        out = bytearray()
        at, step = 0, 1 << 12
        try:
            while len(out) < n and at < len(stored) and not inflater.eof:
                piece = stored[at : at + step]
                at += len(piece)
                out += inflater.decompress(piece, n - len(out))
                if inflater.unconsumed_tail:  # ``n`` bytes reached inside this piece
                    break
                step = min(step * 4, 1 << 20)
        except isal_zlib.error as exc:  # type: ignore[misc]
            raise VolumeReadError(f"corrupt gzip stream: {exc}", path=self.name) from None
        return bytes(out)

    def read(self, n: int | None = None) -> bytes:
        """The first ``n`` bytes of the content, or all of it when ``n`` is ``None``.

        Raises:
            VolumeReadError: The gzip stream is corrupt (bad deflate data or CRC),
                or it ends before ``n`` bytes (a truncated file).
        """
        data = (self.raw if n is None else self.raw[:n]) if not self.is_gzip else self._gunzip(n)
        if n is not None and len(data) < n:
            raise VolumeReadError(
                f"file is truncated: expected at least {n} bytes of content, found {len(data)}",
                path=self.name,
            )
        return data

    def _gunzip(self, n: int | None) -> bytes:
        pieces: list[bytes] = []
        got = 0
        stream = self.raw
        # A file may hold several gzip members back to back (bgzip, appended
        # writes); their contents concatenate.
        while True:
            inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
            try:
                if n is None:
                    piece = inflater.decompress(stream)
                else:
                    piece = inflater.decompress(stream, n - got)
                    # Inflate what follows (at most 1 byte) so the trailer's CRC and
                    # length are checked whenever the member is complete.
                    if inflater.unconsumed_tail and not inflater.eof:
                        piece += inflater.decompress(inflater.unconsumed_tail, 1)[
                            : n - got - len(piece)
                        ]
            except isal_zlib.error as exc:  # type: ignore[misc]
                raise VolumeReadError(f"corrupt gzip stream: {exc}", path=self.name) from None
            pieces.append(piece)
            got += len(piece)
            if n is not None and got >= n:
                break
            if not inflater.eof:
                raise VolumeReadError(
                    f"gzip stream is truncated after {got} bytes of content", path=self.name
                )
            stream = inflater.unused_data
            if stream[:2] != GZIP_MAGIC:
                break
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def open_source(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> RawSource:
    """Read a file's stored bytes, or wrap in-memory bytes.

    Raises:
        VolumeReadError: The path does not exist, is empty, or cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
        if not raw:
            raise VolumeReadError("no bytes given (empty input)", path="<bytes>")
        return RawSource(raw=raw, name="<bytes>", path=None)
    path = Path(source)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VolumeReadError("no such file", path=path) from None
    except IsADirectoryError:
        raise VolumeReadError("is a folder, expected a file", path=path) from None
    except OSError as exc:
        raise VolumeReadError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    if not raw:
        raise VolumeReadError("file is empty (0 bytes)", path=path)
    return RawSource(raw=raw, name=str(path), path=path)
