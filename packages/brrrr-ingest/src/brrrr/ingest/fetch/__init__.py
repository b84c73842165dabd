"""Fetchers: EBRAINS data-proxy, OpenNeuro's S3 bucket, and the MiniVess preset.

All share one download machinery (:mod:`brrrr.ingest.fetch.download`): bounded
parallel downloads, ``Range`` resume from ``.part`` files, size/MD5 checks and a
SHA-256 manifest, atomic renames, retries honouring ``Retry-After``, and the
refusal of any remote name that would escape the output folder.

* :func:`fetch_ebrains` / ``brrrr fetch ebrains DATASET_ID OUT``
* :func:`fetch_openneuro` / ``brrrr fetch openneuro ds004884 OUT --include 'sub-*/ses-*/anat/*'``
* :func:`fetch_minivess` / ``brrrr fetch minivess OUT [--zip FILE]``
* :func:`download_files`: the machinery, for any list of :class:`RemoteFile`.

Example:
    >>> from brrrr.ingest.fetch import fetch_openneuro
    >>> fetch_openneuro("ds004884", "ds004884", include=["sub-*/ses-*/anat/*"])  # doctest: +SKIP
"""

from brrrr.ingest.errors import ChecksumError, FetchError, UnsafePathError
from brrrr.ingest.fetch.download import FetchReport, RemoteFile, download_files, safe_relpath
from brrrr.ingest.fetch.ebrains import fetch_ebrains, list_ebrains
from brrrr.ingest.fetch.minivess import fetch_minivess, safe_extract_zip
from brrrr.ingest.fetch.openneuro import fetch_openneuro, list_openneuro

# RetryPolicy lives in brrrr.ingest.retry (shared with the Hub uploads); it is the
# fetchers' ``retry=`` argument, so this namespace keeps exporting it.
from brrrr.ingest.retry import RetryPolicy

__all__ = [
    "ChecksumError",
    "FetchError",
    "FetchReport",
    "RemoteFile",
    "RetryPolicy",
    "UnsafePathError",
    "download_files",
    "fetch_ebrains",
    "fetch_minivess",
    "fetch_openneuro",
    "list_ebrains",
    "list_openneuro",
    "safe_extract_zip",
    "safe_relpath",
]
