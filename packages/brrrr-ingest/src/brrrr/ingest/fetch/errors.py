"""Errors of the fetchers: all derive from :class:`brrrr.core.errors.BrrrrError`.

The ``path`` of each error is the URL or file it is about, so the message always
names it first.

Example:
    >>> from brrrr.ingest.fetch.errors import UnsafePathError
    >>> str(UnsafePathError("'..' escapes the output folder", path="../etc/passwd"))
    "../etc/passwd: '..' escapes the output folder"
"""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = ["ChecksumError", "FetchError", "UnsafePathError"]


class FetchError(BrrrrError):
    """A listing or a download failed (HTTP error, truncated body, retries exhausted…)."""


class ChecksumError(FetchError):
    """Downloaded bytes do not match the size or checksum the listing promised."""


class UnsafePathError(FetchError):
    """A remote name would write outside the output folder (``../``, absolute, drive, ``\\``)."""
