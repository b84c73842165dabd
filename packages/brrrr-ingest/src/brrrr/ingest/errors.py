"""Errors of ``brrrr.ingest``: all derive from :class:`brrrr.core.errors.BrrrrError`.

Example:
    >>> from brrrr.ingest.errors import BidsError
    >>> str(BidsError("no dataset_description.json", path="/data/ds"))
    '/data/ds: no dataset_description.json'
"""

from __future__ import annotations

from brrrr.core.errors import BrrrrError

__all__ = ["BidsError", "HubUploadError", "ManifestError", "OutputError"]


class BidsError(BrrrrError):
    """A BIDS dataset, or one file in it, cannot be read (bad root, corrupt image, bad sidecar…)."""


class OutputError(BrrrrError):
    """An output file cannot be written (disk full, file too large, no permission…)."""


class ManifestError(BrrrrError):
    """An output folder and its ``manifest.json`` disagree, or a run cannot resume into it."""


class HubUploadError(BrrrrError):
    """An upload to the destination still failed after every retry."""
