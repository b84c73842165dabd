"""MiniVess preset: fetch the EBRAINS dataset (or unpack its ZIP) into a training layout.

MiniVess (Poon et al. 2023, *Scientific Data* 10:141; EBRAINS dataset
``bf268b89-1420-476b-b428-b85a913eb523``, CC BY-NC-SA) holds 70 two-photon
volumes of rodent cerebrovasculature as ``raw/mvNN.nii.gz``, their vessel masks
as ``seg/mvNN_y.nii.gz`` and per-volume metadata as ``json/mvNN.json``. The
layout written here is the one nnU-Net/MONAI loaders expect::

    OUT/imagesTr/mvNN.nii.gz    ← raw/mvNN.nii.gz
    OUT/labelsTr/mvNN.nii.gz    ← seg/mvNN_y.nii.gz   (the _y suffix stripped)
    OUT/metadata/mvNN.json      ← json/mvNN.json
    OUT/metadata/<file>         ← any other top-level file (the licence)

Files are downloaded straight to those names (through ``.part`` files, verified,
recorded in ``OUT/.brrrr-fetch.json``), so nothing is staged twice. A run on a
complete ``OUT`` makes no request; an interrupted one resumes. From a local ZIP
every member name is checked before anything is written: ``..``, absolute
paths, drive letters, backslashes and symbolic links refuse the whole archive.

Example:
    >>> from brrrr.ingest.fetch.minivess import fetch_minivess
    >>> result = fetch_minivess("data/minivess")  # doctest: +SKIP
    >>> len(result.volumes)  # doctest: +SKIP
    70
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from brrrr.ingest.errors import FetchError, UnsafePathError
from brrrr.ingest.fetch.download import (
    PART_SUFFIX,
    FetchManifest,
    FetchReport,
    check_names,
    download_files,
    safe_relpath,
)
from brrrr.ingest.fetch.ebrains import DEFAULT_BASE_URL, list_ebrains
from brrrr.ingest.fetch.http import make_client
from brrrr.ingest.retry import RetryPolicy

__all__ = [
    "MINIVESS_DATASET_ID",
    "MINIVESS_VOLUMES",
    "MinivessResult",
    "complete_volumes",
    "fetch_minivess",
    "minivess_layout_name",
    "safe_extract_zip",
]

MINIVESS_DATASET_ID = "bf268b89-1420-476b-b428-b85a913eb523"
MINIVESS_VOLUMES = 70
_RULES = (
    (re.compile(r"raw/(mv\d+)\.nii\.gz"), "imagesTr/{}.nii.gz"),
    (re.compile(r"seg/(mv\d+)_y\.nii\.gz"), "labelsTr/{}.nii.gz"),
    (re.compile(r"json/(mv\d+)\.json"), "metadata/{}.json"),
)
_CHUNK = 1 << 20


@dataclass
class MinivessResult:
    """What :func:`fetch_minivess` left in ``root``.

    Attributes:
        root: The output folder.
        volumes: Ids (``mv01``…) with an image, a label and metadata.
        source: ``"existing"`` (already complete, no request made), ``"zip"`` or ``"ebrains"``.
        fetched: The download report (``source="ebrains"`` only).
        extracted: Layout names written from the ZIP (``source="zip"`` only).
    """

    root: Path
    volumes: list[str]
    source: Literal["existing", "zip", "ebrains"]
    fetched: FetchReport | None = None
    extracted: list[str] | None = None


def minivess_layout_name(name: str) -> str | None:
    """Where a MiniVess file goes in the layout, or ``None`` for files left out.

    ``name`` may carry leading folders (a ZIP's top folder); only its last two
    parts decide. A top-level file other than the three kinds goes to ``metadata/``.

    Example:
        >>> minivess_layout_name("seg/mv07_y.nii.gz")
        'labelsTr/mv07.nii.gz'
    """
    parts = name.split("/")
    tail = "/".join(parts[-2:])
    for pattern, target in _RULES:
        match = pattern.fullmatch(tail)
        if match:
            return target.format(match.group(1))
    if len(parts) == 1 or (len(parts) == 2 and parts[0].startswith("d-")):
        return f"metadata/{parts[-1]}"
    return None


def complete_volumes(root: str | os.PathLike[str]) -> list[str]:
    """Ids whose image, label and metadata files are all in ``root``'s layout."""
    root = Path(root)

    def ids(folder: str, suffix: str) -> set[str]:
        return {p.name[: -len(suffix)] for p in (root / folder).glob(f"mv*{suffix}")}

    return sorted(
        ids("imagesTr", ".nii.gz") & ids("labelsTr", ".nii.gz") & ids("metadata", ".json")
    )


def safe_extract_zip(
    zip_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    rename: Callable[[str], str | None] | None = None,
    max_bytes: int | None = 64 << 30,
    progress: bool = True,
) -> list[str]:
    """Extract a ZIP, refusing any member that would land outside ``dest``.

    Every member is checked before anything is written. Each file is written to
    ``NAME.part`` then renamed; one already there with the member's size is kept.
    Its SHA-256 is recorded in ``dest/.brrrr-fetch.json``.

    Args:
        zip_path: The archive.
        dest: Destination folder, created if missing.
        rename: Maps a member name to its name under ``dest`` (``None`` leaves the
            member out); members keep their names otherwise.
        max_bytes: Refuse archives whose members add up to more (a ZIP bomb
            guard); ``None`` for no limit.
        progress: Show a progress bar.

    Returns:
        The names under ``dest`` that were written (kept ones not included).

    Raises:
        UnsafePathError: A member name escapes ``dest`` or is a symbolic link.
        FetchError: Not a ZIP, a damaged member (CRC), or over ``max_bytes``.
    """
    zip_path, root = Path(zip_path), Path(dest)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FetchError(f"cannot open as a ZIP archive: {exc}", path=zip_path) from None
    with archive:
        plan: list[tuple[zipfile.ZipInfo, str]] = []
        for info in archive.infolist():
            name = info.filename.rstrip("/") if info.is_dir() else info.filename
            safe_relpath(name, source=str(zip_path))
            if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafePathError(
                    f"refused: a symbolic link member in {zip_path}; nothing was extracted",
                    path=info.filename,
                )
            renamed = rename(name) if rename else name
            if not info.is_dir() and renamed is not None:
                plan.append((info, str(safe_relpath(renamed))))
        total = sum(info.file_size for info, _ in plan)
        if max_bytes is not None and total > max_bytes:
            raise FetchError(
                f"members add up to {total:,} bytes, over the {max_bytes:,} allowed", path=zip_path
            )
        manifest = FetchManifest(root)
        written = []
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=zip_path.name, disable=not progress
        ) as bar:
            for info, name in plan:
                target = root / name
                if target.is_file() and target.stat().st_size == info.file_size:
                    bar.update(info.file_size)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(target.name + PART_SUFFIX)
                sha = hashlib.sha256()
                try:
                    with archive.open(info) as src, part.open("wb") as out:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            sha.update(chunk)
                            bar.update(len(chunk))
                except (zipfile.BadZipFile, OSError) as exc:
                    part.unlink(missing_ok=True)
                    raise FetchError(f"member {info.filename}: {exc}", path=zip_path) from None
                os.replace(part, target)
                manifest.record(
                    name,
                    {
                        "size": info.file_size,
                        "sha256": sha.hexdigest(),
                        "url": f"{zip_path}::{info.filename}",
                    },
                )
                written.append(name)
        manifest.flush()
    return written


def _check_complete(root: Path, expected: int | None) -> list[str]:
    volumes = complete_volumes(root)
    if expected is not None and len(volumes) != expected:
        raise FetchError(
            f"{len(volumes)} complete volumes (image + label + metadata), expected {expected}",
            path=root,
        )
    return volumes


def fetch_minivess(
    out_dir: str | os.PathLike[str],
    *,
    zip_path: str | os.PathLike[str] | None = None,
    expected_volumes: int | None = MINIVESS_VOLUMES,
    dataset_id: str = MINIVESS_DATASET_ID,
    base_url: str = DEFAULT_BASE_URL,
    token: str | None = None,
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> MinivessResult:
    """MiniVess in ``out_dir`` as ``imagesTr/``, ``labelsTr/``, ``metadata/``; idempotent.

    Args:
        out_dir: Output folder.
        zip_path: The EBRAINS ZIP of the dataset, if you have it: no network then.
        expected_volumes: Volumes a complete copy has; ``None`` accepts what the
            source holds (and then always asks the source).
        dataset_id: The EBRAINS dataset to list.
        base_url: The data-proxy API root, or a local test server's.
        token: EBRAINS bearer token, if the dataset needs one.
        concurrency: Files downloaded at once.
        retry: Retry rules.
        timeout_s: Per-request timeout in seconds.
        progress: Show progress bars.

    Returns:
        A :class:`MinivessResult`.

    Raises:
        UnsafePathError: A listed name or ZIP member escapes the folder.
        FetchError: Download or extraction failed, or the result does not have
            ``expected_volumes`` complete volumes.
    """
    root = Path(out_dir)
    if expected_volumes is not None and len(complete_volumes(root)) == expected_volumes:
        return MinivessResult(root, complete_volumes(root), "existing")
    if zip_path is not None:
        written = safe_extract_zip(zip_path, root, rename=minivess_layout_name, progress=progress)
        return MinivessResult(
            root, _check_complete(root, expected_volumes), "zip", extracted=written
        )
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with make_client(timeout_s=timeout_s, concurrency=concurrency, headers=headers) as client:
        files = list_ebrains(dataset_id, client=client, base_url=base_url, retry=retry)
        check_names(files)
        mapped = [
            replace(remote, name=layout)
            for remote in files
            if (layout := minivess_layout_name(remote.name)) is not None
        ]
        report = download_files(
            mapped,
            root,
            client=client,
            concurrency=concurrency,
            retry=retry,
            progress=progress,
            description="minivess",
        )
    return MinivessResult(root, _check_complete(root, expected_volumes), "ebrains", fetched=report)
