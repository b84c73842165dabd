"""Errors of ``brrrr.ingest``: all derive from :class:`brrrr.core.errors.BrrrrError`.

Example:
    >>> from brrrr.ingest.errors import BidsError
    >>> str(BidsError("no dataset_description.json", path="/data/ds"))
    '/data/ds: no dataset_description.json'
"""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = [
    "BidsError",
    "ChecksumError",
    "CoordinateSourceError",
    "FetchError",
    "HubUploadError",
    "ManifestError",
    "OutputError",
    "UnsafePathError",
]


class BidsError(BrrrrError):
    """A BIDS dataset, or one file in it, cannot be read (bad root, corrupt image, bad sidecar…)."""


class OutputError(BrrrrError):
    """An output file cannot be written (disk full, file too large, no permission…)."""


class ManifestError(BrrrrError):
    """An output folder and its ``manifest.json`` disagree, or a run cannot resume into it."""


class HubUploadError(BrrrrError):
    """An upload to the destination still failed after every retry."""


# -- fetchers: the ``path`` of each error is the URL or file it is about -----------------
class FetchError(BrrrrError):
    """A listing or a download failed (HTTP error, truncated body, retries exhausted…)."""


class ChecksumError(FetchError):
    """Downloaded bytes do not match the size or checksum the listing promised."""


class UnsafePathError(FetchError):
    """A remote name would write outside the output folder (``../``, absolute, drive, ``\\``)."""


# -- coordinate databases ----------------------------------------------------------------
class CoordinateSourceError(BrrrrError):
    """A coordinate source cannot be found, recognised, downloaded or read."""
