"""EBRAINS data-proxy: list a dataset's files and download them.

The data-proxy (``https://data-proxy.ebrains.eu/api/v1``) serves a dataset's
files from object storage (Swift at CSCS). The three calls used here:

* ``GET /datasets/{id}?limit=N&marker=NAME``: one page of the listing, as
  ``{"objects": [{"name", "bytes", "hash", "last_modified", "content_type"}]}``,
  the names after ``marker`` in order. Pages are requested until one comes back
  empty, so a server that caps ``limit`` below what was asked cannot end the
  listing early.
* ``GET /datasets/{id}/stat``: totals of the dataset; the object count is
  compared with the listing, and a difference is warned about (advisory: a
  missing ``/stat`` is not an error).
* ``GET /datasets/{id}/{name}``: a redirect to a temporary URL of the object
  (which honours ``Range``). Each attempt asks the data-proxy again, so an
  expired temporary URL is replaced by a fresh one.

``hash`` is Swift's ETag: the MD5 of the bytes, except for large segmented
objects, whose listing marks them (``slo_etag``, or a ``swift_bytes`` content
type) and whose files are then checked by size only (SHA-256 still recorded).
Controlled-access datasets need a bearer token (``token=`` or ``EBRAINS_TOKEN``)
and the terms of use accepted once on the EBRAINS website; a 401/403 says so.

Example:
    >>> from brrrr.ingest.fetch.ebrains import fetch_ebrains
    >>> report = fetch_ebrains("bf268b89-1420-476b-b428-b85a913eb523", "minivess-raw")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from brrrr.ingest.errors import FetchError
from brrrr.ingest.fetch.download import (
    FetchReport,
    RemoteFile,
    check_names,
    download_files,
    select_files,
)
from brrrr.ingest.fetch.http import make_client, request_with_retries
from brrrr.ingest.retry import RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "ebrains_stat", "fetch_ebrains", "list_ebrains"]

DEFAULT_BASE_URL = "https://data-proxy.ebrains.eu/api/v1"
_DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _dataset_url(dataset_id: str, base_url: str) -> str:
    if not _DATASET_ID.fullmatch(dataset_id) or ".." in dataset_id:
        raise FetchError(
            "not an EBRAINS dataset id (expected a UUID such as "
            "bf268b89-1420-476b-b428-b85a913eb523)",
            path=dataset_id,
        )
    return f"{base_url.rstrip('/')}/datasets/{dataset_id}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise FetchError(
            f"the answer is not JSON ({exc})", path=str(response.request.url)
        ) from None


def _remote(obj: dict[str, Any], dataset_url: str) -> RemoteFile | None:
    name = obj.get("name")
    if not isinstance(name, str) or not name or name.endswith("/"):
        return None  # a folder marker or a "subdir" entry, not a file
    segmented = "slo_etag" in obj or "swift_bytes" in str(obj.get("content_type", ""))
    size = obj.get("bytes")
    return RemoteFile(
        name=name,
        url=f"{dataset_url}/{quote(name, safe='/')}",
        size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        md5=None if segmented else obj.get("hash"),
    )


def list_ebrains(
    dataset_id: str,
    *,
    client: httpx.Client,
    base_url: str = DEFAULT_BASE_URL,
    prefix: str | None = None,
    page_size: int = 1000,
    max_pages: int = 100_000,
    retry: RetryPolicy | None = None,
) -> list[RemoteFile]:
    """Every file of an EBRAINS dataset, following ``marker`` pages.

    Args:
        dataset_id: The dataset (version) id, a UUID.
        client: The HTTP client (see :func:`~brrrr.ingest.fetch.http.make_client`).
        base_url: The data-proxy API root, or a local test server's.
        prefix: Only names that start with this.
        page_size: ``limit`` of each page.
        max_pages: Stop with an error after this many pages (a loop guard).
        retry: Retry rules of each page request.

    Returns:
        The files in listing order. Names are not checked here; the download
        refuses unsafe ones.

    Raises:
        FetchError: A page failed after retries, was not the expected JSON, or
            the listing did not end within ``max_pages``.
    """
    url = _dataset_url(dataset_id, base_url)
    files: list[RemoteFile] = []
    marker: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"limit": page_size}
        if marker is not None:
            params["marker"] = marker
        if prefix:
            params["prefix"] = prefix
        payload = _json(request_with_retries(client, url, params=params, retry=retry))
        objects = payload.get("objects") if isinstance(payload, dict) else None
        if not isinstance(objects, list):
            raise FetchError("the listing has no 'objects' list", path=url)
        if not objects:
            return files
        for obj in objects:
            remote = _remote(obj, url) if isinstance(obj, dict) else None
            if remote is not None:
                files.append(remote)
        last = objects[-1]
        next_marker = last.get("name") or last.get("subdir") if isinstance(last, dict) else None
        if not isinstance(next_marker, str) or next_marker == marker:
            raise FetchError(f"the listing does not advance past marker {marker!r}", path=url)
        marker = next_marker
    raise FetchError(f"the listing did not end within {max_pages} pages", path=url)


def ebrains_stat(
    dataset_id: str,
    *,
    client: httpx.Client,
    base_url: str = DEFAULT_BASE_URL,
    retry: RetryPolicy | None = None,
) -> dict[str, Any]:
    """The dataset's ``/stat`` document (object count and bytes), as returned."""
    url = _dataset_url(dataset_id, base_url) + "/stat"
    payload = _json(request_with_retries(client, url, retry=retry))
    if not isinstance(payload, dict):
        raise FetchError("the answer is not a JSON object", path=url)
    return payload


def _check_stat(stat: dict[str, Any], files: list[RemoteFile], url: str) -> None:
    count = stat.get("objects_count", stat.get("object_count"))
    if isinstance(count, int) and count != len(files):
        warnings.warn(
            f"{url}/stat: counts {count} objects, the listing gave {len(files)} files "
            "(folder markers count in /stat only)",
            RuntimeWarning,
            stacklevel=3,
        )


def fetch_ebrains(
    dataset_id: str,
    out_dir: str | os.PathLike[str],
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    token: str | None = None,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeout_s: float = 60.0,
    page_size: int = 1000,
    progress: bool = True,
) -> FetchReport:
    """Download an EBRAINS dataset (or the files matching ``include``) into ``out_dir``.

    Resumable and verified (see :mod:`brrrr.ingest.fetch.download`): run it again
    after an interruption and only what is missing is fetched.

    Args:
        dataset_id: The dataset (version) id, a UUID.
        out_dir: Output folder; files keep their names from the listing.
        include: Globs on names to keep (``raw/*``); all files when empty.
        exclude: Globs on names to leave out.
        base_url: The data-proxy API root, or a local test server's.
        token: EBRAINS bearer token; ``EBRAINS_TOKEN`` from the environment otherwise.
        concurrency: Files downloaded at once.
        retry: Retry rules.
        timeout_s: Per-request timeout in seconds.
        page_size: ``limit`` of each listing page.
        progress: Show a progress bar.

    Returns:
        A :class:`~brrrr.ingest.fetch.download.FetchReport`.

    Raises:
        UnsafePathError: A listed name would escape ``out_dir``; nothing was downloaded.
        FetchError: The listing failed, or files still failed after every retry.
    """
    token = token or os.environ.get("EBRAINS_TOKEN") or None
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with make_client(timeout_s=timeout_s, concurrency=concurrency, headers=headers) as client:
        files = list_ebrains(
            dataset_id, client=client, base_url=base_url, page_size=page_size, retry=retry
        )
        url = _dataset_url(dataset_id, base_url)
        try:
            stat = ebrains_stat(dataset_id, client=client, base_url=base_url, retry=retry)
        except FetchError:
            stat = {}  # advisory only
        _check_stat(stat, files, url)
        check_names(files)
        chosen = select_files(files, include=include, exclude=exclude)
        return download_files(
            chosen,
            Path(out_dir),
            client=client,
            concurrency=concurrency,
            retry=retry,
            progress=progress,
            description=f"ebrains {dataset_id[:8]}",
        )
