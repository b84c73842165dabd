"""The image list of a NeuroVFM-style dataset: studies, images and their modality.

Layout of a dataset root (NeuroVFM's, so existing trees work unchanged)::

    root/
    ├── raw/                        the source images, read-only to brrrr
    │   ├── <study>/                one folder per study (a patient visit)
    │   │   ├── <image>.nii.gz      an image: .nii.gz, .nii, .mgz, .mgh or .dcm file…
    │   │   └── <image>/            …or a folder holding one DICOM series
    │   └── …
    ├── metadata.json               DatasetMetadata.save(root / "metadata.json")
    └── cache/                      written by CacheManager(root).build()

An image's name is its file name without the suffix (``T1.nii.gz`` → ``T1``) or
its DICOM folder's name. Other files (JSON sidecars, notes, hidden files) are
ignored. Two files with the same name in one study (``T1.nii`` and ``T1.nii.gz``)
are an error.

``mode_mapping`` says which images are MRI and which CT. It is either a callable
``(study, file_name) -> "mri" | "ct"`` or a mapping whose keys are tried in this
order for each image:

1. the study id (``{"patient_001": "ct"}``, as in NeuroVFM);
2. ``"<study>/<file name>"`` or ``"<study>/<image>"``, exactly;
3. shell patterns (``fnmatch``, case-sensitive), in the mapping's order: a
   pattern with a ``/`` is matched against ``"<study>/<file name>"``, one without
   against the study id and against the file name (``{"*_ct.nii.gz": "ct",
   "CT*": "ct", "*": "mri"}``).

An image that no key matches is an error naming it.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("s1/T1.nii.gz", "s1/head_ct.nii.gz", "s2/FLAIR.nii"):
    ...     (root / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
    ...     (root / "raw" / name).touch()
    >>> meta = DatasetMetadata.from_directory(root, {"*_ct.nii.gz": "ct", "*": "mri"})
    >>> [(r.study, r.image, r.mode) for r in meta.images]
    [('s1', 'T1', 'mri'), ('s1', 'head_ct', 'ct'), ('s2', 'FLAIR', 'mri')]
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, get_args

from brrrr.core.files import atomic_write
from brrrr.preprocess.errors import MetadataError
from brrrr.preprocess.neurovfm.settings import Mode

__all__ = [
    "IMAGE_SUFFIXES",
    "METADATA_FILE",
    "RAW_DIR",
    "DatasetMetadata",
    "ImageRecord",
    "ModeMapping",
]

ModeMapping = Mapping[str, str] | Callable[[str, str], str]

#: Folder under the root that holds one folder per study.
RAW_DIR = "raw"
#: Where ImageDataset and CacheManager look for the metadata.
METADATA_FILE = "metadata.json"
#: File suffixes read as images (longest first, so ``.nii.gz`` wins over ``.gz``).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".dcm")

_FORMAT = "brrrr-dataset-metadata"
_VERSION = 1


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset.

    Attributes:
        study: Study id (the folder name under ``raw/``).
        image: Image name, unique within its study.
        mode: ``"mri"`` or ``"ct"``.
        path: Source file or DICOM folder, relative to the root, ``/``-separated.
    """

    study: str
    image: str
    mode: Mode
    path: str

    @property
    def name(self) -> str:
        """``"<study>/<image>"``."""
        return f"{self.study}/{self.image}"


def _image_name(entry: Path) -> str | None:
    if entry.name.startswith("."):
        return None
    if entry.is_dir():
        return entry.name if any(p.is_file() for p in entry.rglob("*")) else None
    lower = entry.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return entry.name[: -len(suffix)]
    return None


def _resolve_mode(mapping: ModeMapping, study: str, file_name: str, image: str) -> str | None:
    if callable(mapping):
        return mapping(study, file_name)
    for exact in (study, f"{study}/{file_name}", f"{study}/{image}"):
        if exact in mapping:
            return mapping[exact]
    for pattern, mode in mapping.items():
        if "/" in pattern:
            if fnmatchcase(f"{study}/{file_name}", pattern):
                return mode
        elif fnmatchcase(study, pattern) or fnmatchcase(file_name, pattern):
            return mode
    return None


@dataclass(frozen=True)
class DatasetMetadata:
    """The images of a dataset, sorted by study then image name.

    Attributes:
        images: One record per image.
    """

    images: tuple[ImageRecord, ...]

    @classmethod
    def from_directory(
        cls, root: str | os.PathLike[str], mode_mapping: ModeMapping
    ) -> DatasetMetadata:
        """Scan ``root/raw/<study>/`` (see the module docstring for the layout and rules).

        Args:
            root: Dataset root, the folder that holds ``raw/``.
            mode_mapping: Study ids, names or patterns → ``"mri"`` / ``"ct"``, or a
                callable ``(study, file_name) -> mode``.

        Returns:
            The metadata; call :meth:`save` to write it.

        Raises:
            MetadataError: ``raw/`` is missing, an image matches no mapping key or
                maps to an unknown mode, or two images of a study share a name.
        """
        raw = Path(root) / RAW_DIR
        if not raw.is_dir():
            raise MetadataError(
                f"no {RAW_DIR}/ folder: put each study's images in {RAW_DIR}/<study>/",
                path=Path(root),
            )
        records: list[ImageRecord] = []
        for study_dir in sorted(p for p in raw.iterdir() if p.is_dir()):
            if study_dir.name.startswith("."):
                continue
            seen: dict[str, str] = {}
            for entry in sorted(study_dir.iterdir()):
                image = _image_name(entry)
                if image is None:
                    continue
                if image in seen:
                    raise MetadataError(
                        f"two images named {image!r}: {seen[image]} and {entry.name}; rename one",
                        path=study_dir,
                    )
                seen[image] = entry.name
                mode = _resolve_mode(mode_mapping, study_dir.name, entry.name, image)
                if mode is None:
                    raise MetadataError(
                        "no mode_mapping key matches this image; add its study id, "
                        "'<study>/<file>' or a pattern such as '*': 'mri'",
                        path=entry,
                    )
                if mode not in get_args(Mode):
                    raise MetadataError(
                        f"mode_mapping gives mode {mode!r}; use 'mri' or 'ct'", path=entry
                    )
                rel = entry.relative_to(root).as_posix()
                records.append(ImageRecord(study_dir.name, image, mode, rel))  # type: ignore[arg-type]
        return cls(tuple(sorted(records, key=lambda r: (r.study, r.image))))

    @property
    def studies(self) -> dict[str, tuple[ImageRecord, ...]]:
        """Study id → its images, in order."""
        out: dict[str, list[ImageRecord]] = {}
        for record in self.images:
            out.setdefault(record.study, []).append(record)
        return {study: tuple(records) for study, records in out.items()}

    def get(self, study: str, image: str) -> ImageRecord:
        """The record of one image.

        Raises:
            MetadataError: No such image.
        """
        for record in self.images:
            if record.study == study and record.image == image:
                return record
        raise MetadataError(f"no image {study}/{image} in the dataset metadata")

    def __len__(self) -> int:
        return len(self.images)

    def to_json(self) -> dict[str, Any]:
        """The JSON form: ``{"format", "version", "studies": {study: {image: {mode, path}}}}``."""
        studies: dict[str, dict[str, dict[str, str]]] = {}
        for r in self.images:
            studies.setdefault(r.study, {})[r.image] = {"mode": r.mode, "path": r.path}
        return {"format": _FORMAT, "version": _VERSION, "studies": studies}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the metadata as JSON (atomically), usually to ``root / "metadata.json"``."""
        payload = json.dumps(self.to_json(), indent=1, sort_keys=True).encode()
        return atomic_write(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetMetadata:
        """Read metadata written by :meth:`save`.

        Raises:
            MetadataError: The file is missing, not JSON, or not this format.
        """
        path = Path(path)
        if not path.is_file():
            raise MetadataError(
                "metadata file not found; create it with "
                "DatasetMetadata.from_directory(root, mode_mapping).save(root / 'metadata.json')",
                path=path,
            )
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
                raise ValueError(f"format {doc.get('format')!r} version {doc.get('version')!r}")
            records = []
            for study in sorted(doc["studies"]):
                images = doc["studies"][study]
                for image in sorted(images):
                    info = images[image]
                    if info["mode"] not in get_args(Mode):
                        raise ValueError(f"{study}/{image} has mode {info['mode']!r}")
                    records.append(ImageRecord(study, image, info["mode"], str(info["path"])))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MetadataError(
                f"not a {_FORMAT} v{_VERSION} file ({exc}); regenerate it with "
                "DatasetMetadata.from_directory",
                path=path,
            ) from None
        return cls(tuple(records))
