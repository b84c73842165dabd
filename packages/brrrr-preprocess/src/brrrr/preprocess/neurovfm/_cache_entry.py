"""Content keys and the writing of one cache entry (the worker side of :mod:`brrrr.preprocess.neurovfm.cache`).

Kept apart from :class:`~brrrr.preprocess.neurovfm.cache.CacheManager` so that worker processes
import only what they run. See :mod:`brrrr.preprocess.neurovfm.cache` for the layout and key rules.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from brrrr.core.files import atomic_write, sha256_file
from brrrr.preprocess.errors import CacheError
from brrrr.preprocess.neurovfm.prepare import load_and_prepare
from brrrr.preprocess.neurovfm.settings import (
    CT_WINDOWS,
    PREPARE_VERSION,
    Mode,
    PrepareSettings,
    View,
)

__all__ = [
    "CACHE_FORMAT",
    "FILES",
    "BuildReport",
    "Verify",
    "build_entry",
    "entry_key",
    "hash_source",
    "init_worker",
    "npy_header",
    "settings_for_mode",
    "source_stamp",
    "view_from_json",
    "view_json",
]

#: How existing entries are checked before reuse: SHA-256 of both files, sizes, or nothing.
Verify = Literal["checksum", "size", "none"]
#: Version of the on-disk layout and quantisation; part of every key.
CACHE_FORMAT = 1
#: The arrays of an entry, in the order (image, mask).
FILES = ("image.npy", "mask.npy")
# Settings of prepare.PrepareSettings that only the other mode reads.
_OTHER_MODE_ONLY: dict[str, frozenset[str]] = {
    "mri": frozenset({"foreground_hu"}),
    "ct": frozenset({"mri_percentiles", "foreground_percentile"}),
}


@dataclass
class BuildReport:
    """What :meth:`~brrrr.preprocess.neurovfm.cache.CacheManager.build` did, as ``"<study>/<image>"`` names.

    Attributes:
        built: Prepared now (no entry existed).
        rebuilt: Prepared now because the entry was corrupt (or ``force``).
        reused: Already cached and verified.
        failed: Name → error message, for images that could not be prepared.
    """

    built: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def settings_for_mode(settings: PrepareSettings, mode: Mode) -> dict[str, Any]:
    """The preparation settings that can change a ``mode`` image: part of its key.

    Fields known to apply to the other mode only are left out, so changing them does
    not rebuild this mode's entries; any other field (including ones added later)
    is kept.
    """
    return {k: v for k, v in settings.as_dict().items() if k not in _OTHER_MODE_ONLY[mode]}


def _source_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def source_stamp(path: Path) -> list[int]:
    """(total size, newest mtime_ns, file count): changes whenever the source does."""
    stats = [p.stat() for p in _source_files(path)]
    return [
        sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=0),
        len(stats),
    ]


def hash_source(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a source file, or of a folder's files (relative paths and bytes, sorted)."""
    path = Path(path)
    if not path.is_dir():
        return str(sha256_file(path).hexdigest())
    digest = hashlib.sha256()
    for file in _source_files(path):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        sha256_file(file, digest=digest)
    return digest.hexdigest()


def entry_key(source_sha256: str, mode: Mode, settings: Mapping[str, Any]) -> str:
    """The content key of an entry (see the module docstring)."""
    doc = {
        "cache_format": CACHE_FORMAT,
        "source_sha256": source_sha256,
        "mode": mode,
        "settings": dict(settings),
        "prepare_version": PREPARE_VERSION,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=256)
def npy_header(shape: tuple[int, ...]) -> bytes:
    """The exact header ``np.save`` writes for a C-ordered uint8 array of ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _to_uint8(values: Any) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    return np.rint(np.clip(array.astype(np.float32, copy=False), 0.0, 1.0) * 255.0).astype(np.uint8)


def view_json(view: View) -> dict[str, Any]:
    return {
        "plane": view.plane,
        "slice_axis": view.slice_axis,
        "axes": list(view.axes),
        "affine": np.asarray(view.affine, dtype=np.float64).tolist(),
        "shape": list(view.shape),
    }


def view_from_json(doc: Mapping[str, Any]) -> View:
    return View(
        plane=doc["plane"],
        slice_axis=int(doc["slice_axis"]),
        axes=tuple(doc["axes"]),
        affine=np.asarray(doc["affine"], dtype=np.float64),
        shape=tuple(doc["shape"]),
    )


def _settings_args(settings: Mapping[str, Any]) -> dict[str, Any]:
    """JSON settings back to PrepareSettings arguments (lists to tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}


def build_entry(
    source: str,
    mode: Mode,
    settings: Mapping[str, Any],
    key: str,
    entry_dir: str,
    device: str | None = None,
) -> dict[str, Any]:
    """Prepare one image and write its entry (runs in a worker process).

    Returns:
        The entry record written to ``entry.json``.
    """
    img_arrs, mask, view = load_and_prepare(
        source, mode=mode, device=device, settings=PrepareSettings(**_settings_args(settings))
    )
    image = np.stack([_to_uint8(a) for a in img_arrs])
    mask_u8 = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask)
    mask_u8 = (mask_u8 != 0).astype(np.uint8)
    windows = tuple(CT_WINDOWS) if mode == "ct" else ("mri",)
    if image.shape[0] != len(windows) or image.shape[1:] != mask_u8.shape:
        raise CacheError(
            f"prepare_for_inference returned images {image.shape} and mask {mask_u8.shape}; "
            f"expected {len(windows)} arrays of the mask's shape",
            path=source,
        )
    folder = Path(entry_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, array in zip(FILES, (image, mask_u8), strict=True):
        payload = _npy_bytes(array)
        atomic_write(folder / name, payload)
        files[name] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    record = {
        "key": key,
        "mode": mode,
        "shape": list(image.shape),
        "windows": list(windows),
        "view": view_json(view),
        "settings": dict(settings),
        "files": files,
    }
    # Written last: its presence marks the entry complete.
    atomic_write(folder / "entry.json", json.dumps(record, indent=1).encode())
    return record


def init_worker() -> None:
    # One thread per process: the pool already uses every core.
    import torch

    torch.set_num_threads(1)
