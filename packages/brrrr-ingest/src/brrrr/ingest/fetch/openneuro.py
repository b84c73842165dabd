"""OpenNeuro: list a dataset in the public S3 bucket and download it.

OpenNeuro publishes every dataset in the public bucket ``s3://openneuro.org``
under ``{dataset}/`` (e.g. ``ds004884/sub-M2001/ses-1/anat/…``), readable
without credentials over plain HTTPS:

* listing: ``GET {base}?list-type=2&prefix=ds004884/`` (S3 ListObjectsV2 XML),
  followed through ``NextContinuationToken`` while ``IsTruncated`` is true;
* download: ``GET {base}/{key}``, which honours ``Range``.

``ETag`` is the MD5 of the bytes for objects uploaded in one part; multipart
ETags (``"…-N"``) are not, and those files are checked by size only (their
SHA-256 is still computed and recorded).

Snapshot tags: the bucket's current listing is the *latest* snapshot of the
dataset; older snapshots are not listed there (only as old object versions,
which a tag cannot be mapped to without OpenNeuro's GraphQL API). So ``tag=``
is a check, not a selector: the newest version in the dataset's ``CHANGES``
file must equal it, or the fetch stops before downloading anything and says
which snapshot the bucket holds. Use OpenNeuro's own client or the DataLad
mirror (``github.com/OpenNeuroDatasets/{dataset}``) for an older snapshot.

Example:
    >>> from brrrr.ingest.fetch.openneuro import fetch_openneuro
    >>> fetch_openneuro("ds004884", "ds004884", include=["sub-*/ses-*/anat/*"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
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

__all__ = ["DEFAULT_BASE_URL", "fetch_openneuro", "latest_snapshot", "list_openneuro"]

DEFAULT_BASE_URL = "https://s3.amazonaws.com/openneuro.org"
_DATASET_ID = re.compile(r"ds\d{6}")


def _check_id(dataset_id: str) -> str:
    if not _DATASET_ID.fullmatch(dataset_id):
        raise FetchError("not an OpenNeuro dataset id (expected ds + 6 digits)", path=dataset_id)
    return dataset_id


def _child(element: ET.Element, tag: str) -> ET.Element | None:
    # S3 answers in its 2006-03-01 namespace; S3 look-alikes sometimes in none.
    for child in element:
        if child.tag == tag or child.tag.endswith("}" + tag):
            return child
    return None


def _text(element: ET.Element, tag: str) -> str | None:
    child = _child(element, tag)
    return None if child is None else (child.text or "")


def list_openneuro(
    dataset_id: str,
    *,
    client: httpx.Client,
    base_url: str = DEFAULT_BASE_URL,
    page_size: int = 1000,
    max_pages: int = 100_000,
    retry: RetryPolicy | None = None,
) -> list[RemoteFile]:
    """Every file of an OpenNeuro dataset in the bucket, names relative to the dataset.

    Args:
        dataset_id: ``ds`` + six digits.
        client: The HTTP client.
        base_url: The bucket's URL (path style), or a local test server's bucket.
        page_size: ``max-keys`` of each page (S3 gives at most 1000).
        max_pages: Stop with an error after this many pages (a loop guard).
        retry: Retry rules of each page request.

    Raises:
        FetchError: A page failed after retries, was not ListObjectsV2 XML, or
            the listing did not end within ``max_pages``.
    """
    prefix = _check_id(dataset_id) + "/"
    base = base_url.rstrip("/")
    files: list[RemoteFile] = []
    token: str | None = None
    for _ in range(max_pages):
        params: dict[str, str | int] = {"list-type": 2, "prefix": prefix, "max-keys": page_size}
        if token is not None:
            params["continuation-token"] = token
        response = request_with_retries(client, base, params=params, retry=retry)
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise FetchError(f"the listing is not XML ({exc})", path=str(response.url)) from None
        for item in root:
            if not item.tag.endswith("Contents"):
                continue
            key, size = _text(item, "Key") or "", _text(item, "Size") or ""
            if not key.startswith(prefix) or key.endswith("/"):
                continue  # the dataset's folder marker, or one of a sub-folder
            files.append(
                RemoteFile(
                    name=key[len(prefix) :],
                    url=f"{base}/{quote(key, safe='/')}",
                    size=int(size) if size.isdigit() else None,
                    md5=_text(item, "ETag"),
                )
            )
        if _text(root, "IsTruncated") != "true":
            return files
        next_token = _text(root, "NextContinuationToken")
        if not next_token or next_token == token:
            raise FetchError("a truncated listing page has no new continuation token", path=base)
        token = next_token
    raise FetchError(f"the listing did not end within {max_pages} pages", path=base)


def latest_snapshot(changes: str) -> str | None:
    """The newest version in a BIDS ``CHANGES`` text (its first non-empty line's first word)."""
    for line in changes.splitlines():
        if line.strip():
            return line.split()[0]
    return None


def _check_tag(
    tag: str, files: list[RemoteFile], client: httpx.Client, retry: RetryPolicy | None
) -> None:
    changes = next((f for f in files if f.name == "CHANGES"), None)
    if changes is None:
        raise FetchError(
            f"cannot confirm snapshot {tag}: the dataset has no CHANGES file in the bucket",
            path=files[0].url.rsplit("/", 1)[0] if files else tag,
        )
    text = request_with_retries(client, changes.url, retry=retry).text
    latest = latest_snapshot(text)
    if latest != tag:
        raise FetchError(
            f"the public bucket holds snapshot {latest}, not {tag}; older snapshots are not "
            "in its listing: use OpenNeuro's client or the DataLad mirror for them, or drop --tag",
            path=changes.url,
        )


def fetch_openneuro(
    dataset_id: str,
    out_dir: str | os.PathLike[str],
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    with_root_files: bool = True,
    tag: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeout_s: float = 60.0,
    page_size: int = 1000,
    progress: bool = True,
) -> FetchReport:
    """Download an OpenNeuro dataset (or the files matching ``include``) into ``out_dir``.

    Args:
        dataset_id: ``ds`` + six digits, e.g. ``ds004884``.
        out_dir: Output folder: the dataset's root (``dataset_description.json`` lands here).
        include: Globs on names relative to the dataset (``sub-*/ses-*/anat/*``);
            all files when empty.
        exclude: Globs on names to leave out.
        with_root_files: Also fetch the files at the dataset's top level
            (``dataset_description.json``, ``participants.tsv``, ``README``…)
            whatever ``include`` says, so the result is a loadable BIDS dataset.
        tag: Snapshot the bucket must hold (e.g. ``1.0.2``); see the module notes.
        base_url: The bucket's URL, or a local test server's bucket.
        concurrency: Files downloaded at once.
        retry: Retry rules.
        timeout_s: Per-request timeout in seconds.
        page_size: ``max-keys`` of each listing page.
        progress: Show a progress bar.

    Returns:
        A :class:`~brrrr.ingest.fetch.download.FetchReport`.

    Raises:
        UnsafePathError: A key would escape ``out_dir``; nothing was downloaded.
        FetchError: Unknown dataset, a different snapshot than ``tag``, a failed
            listing, or files that still failed after every retry.
    """
    with make_client(timeout_s=timeout_s, concurrency=concurrency) as client:
        files = list_openneuro(
            dataset_id, client=client, base_url=base_url, page_size=page_size, retry=retry
        )
        if not files:
            raise FetchError(
                "no files under this prefix: unknown dataset id?",
                path=f"{base_url.rstrip('/')}/{dataset_id}/",
            )
        check_names(files)
        if tag is not None:
            _check_tag(tag, files, client, retry)
        chosen = select_files(files, include=include, exclude=exclude)
        if with_root_files and include:
            picked = {f.name for f in chosen}
            chosen += [
                f
                for f in select_files(files, exclude=exclude)
                if "/" not in f.name and f.name not in picked
            ]
        return download_files(
            chosen,
            Path(out_dir),
            client=client,
            concurrency=concurrency,
            retry=retry,
            progress=progress,
            description=dataset_id,
        )
