"""A BIDS dataset laid out as a NeuroVFM dataset root (``raw/<study>/<image>``).

NeuroVFM's unit is the study, one patient visit; BIDS's is the session. So a study is
``sub-<label>_ses-<label>`` (``sub-<label>`` in a dataset without sessions), and an image is
the file's name without its subject and session entities (``sub-01_ses-1_run-2_T2w.nii.gz``
→ ``raw/sub-01_ses-1/run-2_T2w.nii.gz``). Only raw data is taken: the top-level ``sub-*``
folders (not ``derivatives/``, ``sourcedata/`` or hidden folders), the chosen datatype folders
(``anat`` by default: the 3-D structural scans the cache prepares), NIfTI and MGH files.

Files are copied by default; ``link="hardlink"`` (the same bytes under a second name, falling
back to a copy across file systems) or ``link="symlink"`` avoid the copy for large datasets.
Each file appears under its final name only once complete (written beside it, then renamed).

Example:
    >>> from brrrr.core.testing import write_bids_tree
    >>> import tempfile, pathlib
    >>> bids = write_bids_tree(pathlib.Path(tempfile.mkdtemp()) / "bids", subjects=["01"])
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "neurovfm"
    >>> [p.relative_to(root).as_posix() for p in layout_from_bids(bids, root)][:2]
    ['raw/sub-01_ses-1/FLAIR.nii.gz', 'raw/sub-01_ses-1/T1w.nii.gz']
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from brrrr.core.errors import FileWriteError
from brrrr.preprocess.errors import MetadataError
from brrrr.preprocess.neurovfm.metadata import RAW_DIR

__all__ = ["BIDS_IMAGE_SUFFIXES", "Link", "bids_study_images", "layout_from_bids"]

Link = Literal["copy", "hardlink", "symlink"]
#: The image files taken from a BIDS datatype folder (DICOM is not BIDS raw data).
BIDS_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh")


def _suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in BIDS_IMAGE_SUFFIXES if lower.endswith(s)), None)


def _visits(bids_root: Path) -> list[tuple[str, Path, str]]:
    """``(study, folder, entity prefix)`` of every subject (and session) folder, sorted."""
    visits = []
    for subject in sorted(p for p in bids_root.glob("sub-*") if p.is_dir()):
        sessions = sorted(p for p in subject.glob("ses-*") if p.is_dir())
        if not sessions:
            visits.append((subject.name, subject, f"{subject.name}_"))
        for session in sessions:
            study = f"{subject.name}_{session.name}"
            visits.append((study, session, f"{study}_"))
    return visits


def bids_study_images(
    bids_root: str | os.PathLike[str], *, datatypes: Sequence[str] = ("anat",)
) -> dict[str, dict[str, Path]]:
    """The images of a BIDS dataset by study and image name (file name in the study).

    Args:
        bids_root: The dataset (holds ``dataset_description.json`` and ``sub-*/``).
        datatypes: Datatype folders to take images from (``anat``, ``dwi``, ``func``, ``perf``…).

    Returns:
        ``{study: {file name: source path}}``, sorted.

    Raises:
        MetadataError: The folder is not a BIDS dataset, holds no subject folder, a file's name
            does not start with its subject (and session) entities, or no image was found.
    """
    root = Path(bids_root)
    if not (root / "dataset_description.json").is_file():
        raise MetadataError("not a BIDS dataset: no dataset_description.json", path=root)
    visits = _visits(root)
    if not visits:
        raise MetadataError("a BIDS dataset without sub-* folders", path=root)
    studies: dict[str, dict[str, Path]] = {}
    for study, folder, prefix in visits:
        images: dict[str, Path] = {}
        for datatype in datatypes:
            for path in sorted((folder / datatype).glob("*")):
                suffix = _suffix(path.name)
                if suffix is None or path.name.startswith(".") or not path.is_file():
                    continue
                if not path.name.startswith(prefix):
                    raise MetadataError(
                        f"a BIDS file name must start with {prefix!r} in this folder", path=path
                    )
                images[path.name[len(prefix) :]] = path
        if images:
            studies[study] = dict(sorted(images.items()))
    if not studies:
        raise MetadataError(
            f"no {'/'.join(BIDS_IMAGE_SUFFIXES)} images in the {list(datatypes)} folders",
            path=root,
        )
    return studies


def _place(source: Path, target: Path, link: Link) -> None:
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if link == "symlink":
            partial.symlink_to(source.resolve())
        elif link == "hardlink":
            try:
                os.link(source, partial)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(source, partial)
        else:
            shutil.copyfile(source, partial)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FileWriteError(
            f"cannot place {source} here: {exc.strerror or exc}", path=target
        ) from None


def layout_from_bids(
    bids_root: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    datatypes: Sequence[str] = ("anat",),
    link: Link = "copy",
    overwrite: bool = False,
) -> list[Path]:
    """Lay a BIDS dataset out as the ``raw/`` folder of a NeuroVFM dataset root.

    Args:
        bids_root: The BIDS dataset (read only).
        root: The dataset root to create; ``root/raw`` must not hold files yet.
        datatypes: Datatype folders to take (see :func:`bids_study_images`).
        link: ``"copy"``, ``"hardlink"`` (copy where it cannot) or ``"symlink"``.
        overwrite: Replace an existing ``root/raw``.

    Returns:
        The paths written, sorted.

    Raises:
        MetadataError: As :func:`bids_study_images`; ``root/raw`` exists (without
            ``overwrite``).
        FileWriteError: A file cannot be written (named).
    """
    if link not in ("copy", "hardlink", "symlink"):
        raise MetadataError(f"link must be copy, hardlink or symlink, not {link!r}")
    studies = bids_study_images(bids_root, datatypes=datatypes)
    raw = Path(root) / RAW_DIR
    if raw.exists() and any(raw.iterdir()):
        if not overwrite:
            raise MetadataError(
                "already holds a raw/ folder: remove it, or replace it with overwrite=True (--overwrite)",
                path=raw,
            )
        shutil.rmtree(raw)
    written = []
    for study, images in studies.items():
        (raw / study).mkdir(parents=True, exist_ok=True)
        for name, source in images.items():
            target = raw / study / name
            _place(source, target, link)
            written.append(target)
    return sorted(written)
