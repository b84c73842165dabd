"""A safe, content-addressed cache of prepared volumes as memory-mappable uint8 ``.npy``.

:class:`CacheManager` runs :func:`~brrrr.preprocess.neurovfm.prepare.load_and_prepare`
(``prepare_for_inference(load_image(path), ...)``, overlapped) once per image of a
dataset (see :mod:`brrrr.preprocess.neurovfm.metadata` for the layout) and stores the
result so that training reads it with ``np.load(..., mmap_mode="r")``. No pickle
anywhere: NeuroVFM's ``torch.load`` of ``.pt`` files runs code from whoever wrote
the cache; a ``.npy`` read with ``allow_pickle=False`` cannot.

Layout under ``root/cache/``::

    manifest.json              index: "<study>/<image>" → entry record, source hashes
    entries/<key>/image.npy    uint8 (C, D, H, W): C = 1 (MRI) or 3 (CT: brain, blood, bone)
    entries/<key>/mask.npy     uint8 (D, H, W), 1 = foreground
    entries/<key>/entry.json   shape, windows, view, SHA-256 and size of both .npy

Values are ``round(255 · clip(x, 0, 1))`` of the prepared [0, 1] arrays (a
quantisation step of 1/255; divide by 255 to read them back).

Cache key rules. An entry's key is the SHA-256 (first 32 hex digits) of the JSON
of: the cache format version; the SHA-256 of the source's bytes (for a DICOM
folder, of every file's relative path and bytes, in sorted order); the image's
mode; the preparation settings *of that mode*
(:class:`~brrrr.preprocess.neurovfm.prepare.PrepareSettings`, see :func:`settings_for_mode`); and
``PREPARE_VERSION`` of :mod:`brrrr.preprocess.neurovfm.prepare` (bumped when the algorithm
changes). So:

* editing or replacing a source file rebuilds that image only;
* changing a CT setting rebuilds the CT images only, and an MRI setting the MRI
  images only; ``device`` is not part of the key (CPU and GPU results agree to
  1e-5, so a cached voxel can differ by at most one step where it rounds);
* moving or renaming a dataset keeps every entry (nothing depends on paths), and
  identical files share one entry.

Source hashes are remembered in the manifest with the file's size and
modification time, and only recomputed when either changes.

Robustness. Every file is written atomically (temporary file, fsync, rename), and
``entry.json`` is written last, as the commit mark: an entry without it is
incomplete and is rebuilt. A killed build therefore resumes where it stopped (the
manifest, written when a build ends, is only an index; entries are found by key).
:meth:`CacheManager.build` checks existing entries against their recorded
SHA-256 (``verify="checksum"``) and rebuilds any that do not match.

Beyond one machine (see :mod:`brrrr.preprocess.neurovfm._cache_sharded`): ``build``
with ``shard_index``/``num_shards`` prepares one contiguous share of the images (a
SLURM array task) and writes ``cache/manifest.share-I-of-N.json``; the share that finds
every share finished (or :meth:`CacheManager.merge_shares`) writes the manifest. With
``scheduler``/``cluster_spec`` Dask tasks prepare batches of images on workers. Entries
are content-addressed and committed by their ``entry.json``, so a task rerun after its
worker died finds them; the manifest has the content a single-machine build writes.

Example:
    >>> cache = CacheManager("/data")                          # doctest: +SKIP
    >>> report = cache.build(num_workers=8)                     # doctest: +SKIP
    >>> entry = cache.load_image("patient_002", "head", window="blood")  # doctest: +SKIP
    >>> entry.data.shape, entry.data.dtype                      # doctest: +SKIP
    ((40, 224, 192), dtype('uint8'))
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from tqdm import tqdm

from brrrr.core.errors import BrrrrError, FileReadError
from brrrr.core.files import atomic_write, sha256_file
from brrrr.preprocess.errors import CacheBuildError, CacheCorruptError, CacheError, CacheMissError
from brrrr.preprocess.neurovfm._cache_entry import (
    CACHE_FORMAT,
    FILES,
    BuildReport,
    Verify,
    build_entry,
    entry_key,
    hash_source,
    init_worker,
    npy_header,
    settings_for_mode,
    source_stamp,
    view_from_json,
)
from brrrr.preprocess.neurovfm.metadata import METADATA_FILE, DatasetMetadata, ImageRecord
from brrrr.preprocess.neurovfm.settings import Mode, PrepareSettings, View

if TYPE_CHECKING:
    from brrrr.core.distributed import ClusterSpec

__all__ = [
    "CACHE_DIR",
    "CACHE_FORMAT",
    "BuildReport",
    "CacheManager",
    "CacheStats",
    "CachedImage",
    "Verify",
    "entry_key",
    "hash_source",
    "settings_for_mode",
]

#: Folder under the dataset root that holds the cache.
CACHE_DIR = "cache"

_MANIFEST_FORMAT = "brrrr-preprocess-cache"


@dataclass(frozen=True)
class CachedImage:
    """One image read from the cache (memory-mapped, read-only).

    Attributes:
        data: uint8 ``(C, D, H, W)`` with every window, or ``(D, H, W)`` for one.
        mask: uint8 ``(D, H, W)``, 1 = foreground.
        mode: ``"mri"`` or ``"ct"``.
        window: The window selected (``"brain"``, ``"blood"``, ``"bone"``) or None.
        windows: Names along ``C``: ``("mri",)`` or :data:`CT_WINDOWS`.
        view: The :class:`~brrrr.preprocess.neurovfm.prepare.View` of the prepared grid.
        key: The entry's content key.
    """

    data: np.ndarray
    mask: np.ndarray
    mode: Mode
    window: str | None
    windows: tuple[str, ...]
    view: View
    key: str


@dataclass(frozen=True)
class CacheStats:
    """How complete the cache is (from the manifest and file sizes; nothing is hashed).

    Attributes:
        images: Images in the dataset metadata.
        cached: Images whose entry is in the manifest with both files present.
        missing: Images without a usable entry.
        failed: Images whose last build failed (a subset of ``missing``).
        entries: Distinct entries referenced (identical sources share one).
        orphaned: Entry folders no image refers to any more (see ``prune``).
        bytes: Size on disk of the referenced entries.
    """

    images: int
    cached: int
    missing: int
    failed: int
    entries: int
    orphaned: int
    bytes: int


class CacheManager:
    """Build and read the prepared-volume cache of a dataset root.

    Args:
        root: Dataset root (holds ``raw/`` and ``metadata.json``; see
            :mod:`brrrr.preprocess.neurovfm.metadata`).
        settings: Preparation settings (default ``PrepareSettings()``); the fields
            that apply to an image's mode are part of its key.

    Raises:
        MetadataError: ``root/metadata.json`` is missing or malformed (on first use).
    """

    def __init__(self, root: str | os.PathLike[str], *, settings: PrepareSettings | None = None):
        self.root = Path(root)
        self.settings = settings or PrepareSettings()
        self._mode_settings = {m: settings_for_mode(self.settings, m) for m in ("mri", "ct")}
        self.folder = self.root / CACHE_DIR
        self._metadata: DatasetMetadata | None = None
        self._manifest: dict[str, Any] | None = None

    # -- metadata and manifest -------------------------------------------------------
    @property
    def metadata(self) -> DatasetMetadata:
        """The dataset's images (read once from ``root/metadata.json``)."""
        if self._metadata is None:
            self._metadata = DatasetMetadata.load(self.root / METADATA_FILE)
        return self._metadata

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def _entry_dir(self, key: str) -> Path:
        return self.folder / "entries" / key

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest: ``{"images": {name: record}, "sources": {path: hash info}, …}``."""
        if self._manifest is None:
            self._manifest = self._read_manifest()
        return self._manifest

    @staticmethod
    def _empty_manifest() -> dict[str, Any]:
        return {
            "format": _MANIFEST_FORMAT,
            "version": CACHE_FORMAT,
            "images": {},
            "sources": {},
            "failed": {},
        }

    def _read_manifest(self) -> dict[str, Any]:
        empty = self._empty_manifest()
        if not self.manifest_path.is_file():
            return empty
        try:
            doc = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return empty  # an unreadable index is rebuilt from the entries by build()
        if doc.get("format") != _MANIFEST_FORMAT or doc.get("version") != CACHE_FORMAT:
            return empty
        return doc

    def refresh(self) -> None:
        """Forget the metadata and manifest read so far (after another process built)."""
        self._metadata = None
        self._manifest = None

    # -- reading ---------------------------------------------------------------------
    def record(self, study: str, image: str) -> dict[str, Any]:
        """The manifest record of one image (key, shape, windows, view, checksums).

        Raises:
            CacheMissError: The image has no entry, or its entry was prepared with
                other settings than this manager's.
        """
        name = f"{study}/{image}"
        record = self.manifest["images"].get(name)
        if record is None:
            why = self.manifest["failed"].get(name)
            hint = f"its last build failed: {why}" if why else "it has not been built"
            raise CacheMissError(
                f"{name} is not in the cache ({hint}); run CacheManager(root).build()",
                path=self.folder,
            )
        if record["settings"] != self._mode_settings[record["mode"]]:
            raise CacheMissError(
                f"{name} was cached with other preparation settings ({record['settings']}); "
                "run CacheManager(root, settings=...).build() with the settings you read with",
                path=self.folder,
            )
        return record

    def load_image(
        self, study: str, image: str, *, window: str | None = None, verify: Verify = "none"
    ) -> CachedImage:
        """Memory-map one cached image and its mask.

        Args:
            study: Study id.
            image: Image name.
            window: For CT, one of :data:`CT_WINDOWS` to get ``(D, H, W)``; None for
                all windows ``(C, D, H, W)``. For MRI, None gives ``(1, D, H, W)``
                and ``"mri"`` gives ``(D, H, W)``.
            verify: ``"checksum"`` re-hashes both files (slow, reads every byte),
                ``"size"`` compares file sizes, ``"none"`` trusts them. Shape and
                dtype are always checked.

        Returns:
            The read-only memory-mapped arrays.

        Raises:
            CacheMissError: No entry for this image.
            CacheCorruptError: A file is missing, truncated or does not match its record.
            CacheError: ``window`` is not one of this image's windows.
        """
        record = self.record(study, image)
        folder = self._entry_dir(record["key"])
        if verify != "none":
            bad = self._check_files(folder, record, verify)
            if bad:
                raise CacheCorruptError(
                    f"{bad} does not match its recorded checksum; run "
                    "CacheManager(root).build() to rebuild it",
                    path=folder / bad,
                )
        data = self._open(folder / "image.npy", tuple(record["shape"]))
        mask = self._open(folder / "mask.npy", tuple(record["shape"][1:]))
        windows = tuple(record["windows"])
        if window is not None:
            if window not in windows:
                raise CacheError(
                    f"{study}/{image} ({record['mode']}) has windows {windows}, not {window!r}"
                )
            data = data[windows.index(window)]
        view = view_from_json(record["view"])
        return CachedImage(data, mask, record["mode"], window, windows, view, record["key"])

    @staticmethod
    def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray:
        """Memory-map a cached uint8 ``.npy`` of the recorded shape, read-only.

        The fast path compares the file's header with the exact bytes ``np.save``
        writes for that dtype and shape, then maps the data (a quarter of the cost
        of ``np.load``); anything else goes through ``np.load(mmap_mode="r",
        allow_pickle=False)``, which either reads it or says what is wrong.
        """
        header = npy_header(shape)
        try:
            with open(path, "rb") as handle:
                if handle.read(len(header)) == header:
                    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                    count = math.prod(shape)
                    if len(mapped) == len(header) + count:
                        return np.frombuffer(mapped, np.uint8, count, len(header)).reshape(shape)
        except (OSError, ValueError):
            pass
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CacheCorruptError(
                f"cannot be read ({exc}); run CacheManager(root).build() to rebuild it", path=path
            ) from None
        if array.dtype == np.uint8 and array.shape == shape:
            return array
        raise CacheCorruptError(
            f"holds {array.dtype} {array.shape} in {path.stat().st_size} bytes, expected uint8 "
            f"{shape}; run CacheManager(root).build() to rebuild it",
            path=path,
        )

    @staticmethod
    def _check_files(folder: Path, record: Mapping[str, Any], verify: Verify) -> str | None:
        """The first file of an entry that is missing or does not match, else None."""
        for name in FILES:
            path = folder / name
            expected = record["files"][name]
            try:
                if path.stat().st_size != expected["bytes"]:
                    return name
                if verify == "checksum" and sha256_file(path).hexdigest() != expected["sha256"]:
                    return name
            except (OSError, FileReadError):
                return name
        return None

    def _valid_entry(self, key: str, verify: Verify) -> dict[str, Any] | None:
        folder = self._entry_dir(key)
        try:
            record = json.loads((folder / "entry.json").read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != key or self._check_files(folder, record, verify) is not None:
            return None
        return dict(record)

    # -- building --------------------------------------------------------------------
    def _hash_sources(
        self,
        images: Iterable[ImageRecord],
        pool: ProcessPoolExecutor | None,
        progress: bool,
        manifest: dict[str, Any],
    ) -> dict[str, str]:
        known: dict[str, Any] = manifest["sources"]
        hashes: dict[str, str] = {}
        stamps: dict[str, list[int]] = {}
        for record in images:
            if record.path in stamps:
                continue
            stamps[record.path] = source_stamp(self.root / record.path)
            old = known.get(record.path)
            if old is not None and old.get("stamp") == stamps[record.path]:
                hashes[record.path] = old["sha256"]
        todo = [p for p in stamps if p not in hashes]
        paths = [str(self.root / p) for p in todo]
        results: Iterator[str] = (
            pool.map(hash_source, paths, chunksize=8) if pool else map(hash_source, paths)
        )
        for rel, digest in tqdm(
            zip(todo, results, strict=True),
            total=len(todo),
            desc="hash sources",
            unit="file",
            disable=not progress or not todo,
        ):
            hashes[rel] = digest
            known[rel] = {"stamp": stamps[rel], "sha256": digest}
        return hashes

    def build(
        self,
        *,
        num_workers: int | None = None,
        force: bool = False,
        verify: Verify = "checksum",
        on_error: Literal["raise", "record"] = "raise",
        device: str | None = None,
        progress: Literal["bar", "none"] = "bar",
        shard_index: int | None = None,
        num_shards: int | None = None,
        scheduler: str | None = None,
        cluster_spec: str | os.PathLike[str] | ClusterSpec | None = None,
        batch_size: int = 4,
    ) -> BuildReport:
        """Prepare every image of the metadata that has no valid entry.

        Args:
            num_workers: Worker processes (``os.cpu_count()`` when None; 0 builds
                in this process). With ``scheduler``, unused (the cluster's workers).
            force: Rebuild every entry even when it is valid.
            verify: How existing entries are checked before being reused:
                ``"checksum"`` (SHA-256 of both files), ``"size"``, or ``"none"``
                (``entry.json`` present). A failed check rebuilds the entry.
            on_error: ``"raise"``: after building everything else, raise
                :class:`CacheBuildError` listing the images that failed.
                ``"record"``: only record them (report and manifest).
            device: Device for ``load_and_prepare`` (not part of the key).
            progress: ``"bar"`` shows tqdm progress bars.
            shard_index: With ``num_shards``: prepare only share ``shard_index``
                (0-based) of the images, dealt in ``num_shards`` contiguous shares in
                metadata order (a SLURM array task). The share writes
                ``cache/manifest.share-I-of-N.json``; the one that finds every share
                finished merges them into ``cache/manifest.json``.
            num_shards: The number of shares.
            scheduler: Prepare batches of images as Dask tasks: ``"tcp://host:8786"``
                or ``"local:N"`` (needs ``brrrr-core[dask]``).
            cluster_spec: Or a ``dask-jobqueue`` cluster to start for the build (a
                :class:`~brrrr.core.distributed.ClusterSpec` or its YAML file).
            batch_size: Images per Dask task.

        Returns:
            What was built, rebuilt, reused and what failed (in a share: its images).

        Raises:
            CacheBuildError: With ``on_error="raise"``, when any image failed.
            MetadataError: ``root/metadata.json`` is missing or malformed.
            DistributedError: Bad shard or scheduler arguments.
        """
        from brrrr.core.distributed import run_mode

        run = run_mode(
            shard_index=shard_index,
            num_shards=num_shards,
            scheduler=scheduler,
            cluster_spec=cluster_spec,
        )
        self.refresh()
        if run != "here":
            from brrrr.preprocess.neurovfm import _cache_sharded

            if run == "share":
                assert shard_index is not None
                assert num_shards is not None
                report = _cache_sharded.build_share(
                    self,
                    shard_index=shard_index,
                    num_shards=num_shards,
                    num_workers=num_workers,
                    force=force,
                    verify=verify,
                    device=device,
                    progress=progress == "bar",
                )
            else:
                report = _cache_sharded.build_dask(
                    self,
                    scheduler=scheduler,
                    cluster_spec=cluster_spec,
                    batch_size=batch_size,
                    force=force,
                    verify=verify,
                    device=device,
                    progress=progress == "bar",
                )
            self._raise_failures(report, on_error)
            return report
        images = self.metadata.images
        workers = (os.cpu_count() or 1) if num_workers is None else num_workers
        report = BuildReport()
        manifest = self.manifest
        pool = ProcessPoolExecutor(workers, initializer=init_worker) if workers > 0 else None
        keys: dict[str, str] = {}
        try:
            self._build_into(
                manifest,
                images,
                pool=pool,
                force=force,
                verify=verify,
                device=device,
                report=report,
                show=progress == "bar",
                keys=keys,
            )
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            self._tidy(manifest, images, report, keys)
            self._write_manifest()
        self._raise_failures(report, on_error)
        return report

    def _raise_failures(self, report: BuildReport, on_error: str) -> None:
        if report.failed and on_error == "raise":
            total = (
                len(report.built) + len(report.rebuilt) + len(report.reused) + len(report.failed)
            )
            lines = "\n".join(f"  {n}: {m}" for n, m in sorted(report.failed.items()))
            raise CacheBuildError(
                f"{len(report.failed)} of {total} images could not be prepared "
                f"(the others are cached):\n{lines}",
                path=self.root,
            )

    def _build_into(
        self,
        manifest: dict[str, Any],
        images: Sequence[ImageRecord],
        *,
        pool: ProcessPoolExecutor | None,
        force: bool,
        verify: Verify,
        device: str | None,
        report: BuildReport,
        show: bool,
        keys: dict[str, str],
    ) -> None:
        """Build the entries ``images`` lack, recording them in ``manifest`` and ``keys``."""
        manifest["settings"] = self.settings.as_dict()
        manifest["failed"] = {}
        hashes = self._hash_sources(images, pool, show, manifest)
        pending: dict[str, list[ImageRecord]] = {}
        repair: set[str] = set()
        for image in images:
            settings = settings_for_mode(self.settings, image.mode)
            key = entry_key(hashes[image.path], image.mode, settings)
            keys[image.name] = key
            if key in pending:
                pending[key].append(image)
                continue
            valid = None if force else self._valid_entry(key, verify)
            if valid is not None:
                manifest["images"][image.name] = self._image_record(image, valid)
                report.reused.append(image.name)
                continue
            pending[key] = [image]
            if force or (self._entry_dir(key) / "entry.json").exists():
                repair.add(key)
        self._run(pending, repair, pool, device, report, show, manifest)

    @staticmethod
    def _tidy(
        manifest: dict[str, Any],
        images: Sequence[ImageRecord],
        report: BuildReport,
        keys: Mapping[str, str],
    ) -> None:
        """Drop records of images that left ``images``, failed, or whose key changed
        (an interrupted build keeps the records it did not get to), and of sources no
        image uses."""
        names = {image.name for image in images}
        for name, record in list(manifest["images"].items()):
            if (
                name not in names
                or name in report.failed
                or keys.get(name, record["key"]) != record["key"]
            ):
                del manifest["images"][name]
        paths = {image.path for image in images}
        manifest["sources"] = {p: h for p, h in manifest["sources"].items() if p in paths}

    def merge_shares(self, *, on_error: Literal["raise", "record"] = "raise") -> BuildReport:
        """Write ``cache/manifest.json`` from the share manifests of a finished sharded build.

        Needed only when no share could see the others finish (the last one merges).

        Returns:
            The images of the merged manifest, as ``reused``, and those that failed.

        Raises:
            DistributedError: A share manifest is missing or unfinished (named), or two
                shares disagree.
            CacheError: A share was built with other settings (named).
            CacheBuildError: With ``on_error="raise"``, when any image failed.
        """
        from brrrr.preprocess.neurovfm import _cache_sharded

        self.refresh()
        report = _cache_sharded.merge(self, num_shards=None)
        self._raise_failures(report, on_error)
        return report

    def _image_record(self, image: ImageRecord, entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"study": image.study, "image": image.image, "source": image.path, **entry}

    def _run(
        self,
        pending: Mapping[str, list[ImageRecord]],
        repair: set[str],
        pool: ProcessPoolExecutor | None,
        device: str | None,
        report: BuildReport,
        show: bool,
        manifest: dict[str, Any],
    ) -> None:
        def args(key: str) -> tuple[Any, ...]:
            first = pending[key][0]
            return (
                str(self.root / first.path),
                first.mode,
                settings_for_mode(self.settings, first.mode),
                key,
                str(self._entry_dir(key)),
                device,
            )

        def finish(key: str, result: dict[str, Any] | None, error: BaseException | None) -> None:
            for image in pending[key]:
                if error is not None:
                    message = str(error) if isinstance(error, BrrrrError) else repr(error)
                    report.failed[image.name] = message
                    manifest["failed"][image.name] = message
                    continue
                assert result is not None
                manifest["images"][image.name] = self._image_record(image, result)
                (report.rebuilt if key in repair else report.built).append(image.name)

        bar = tqdm(
            total=len(pending), desc="cache build", unit="vol", disable=not show or not pending
        )
        try:
            if pool is None:
                for key in pending:
                    try:
                        result = build_entry(*args(key))
                    except Exception as exc:
                        finish(key, None, exc)
                    else:
                        finish(key, result, None)
                    bar.update()
                return
            futures: dict[Future[dict[str, Any]], str] = {
                pool.submit(build_entry, *args(key)): key for key in pending
            }
            for future in as_completed(futures):
                error = future.exception()
                finish(futures[future], None if error else future.result(), error)
                bar.update()
        finally:
            bar.close()

    def _write_manifest(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(self.manifest, indent=1, sort_keys=True).encode()
        atomic_write(self.manifest_path, payload)

    # -- housekeeping ----------------------------------------------------------------
    def _entry_dirs(self) -> list[Path]:
        folder = self.folder / "entries"
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def stats(self) -> CacheStats:
        """Counts and bytes of the cache, from the manifest (cheap: no hashing)."""
        self.refresh()
        images = self.metadata.images
        cached = 0
        keys: set[str] = set()
        for image in images:
            record = self.manifest["images"].get(image.name)
            if record is None:
                continue
            if self._check_files(self._entry_dir(record["key"]), record, "size") is None:
                cached += 1
                keys.add(record["key"])
        referenced = {r["key"] for r in self.manifest["images"].values()}
        orphaned = sum(1 for p in self._entry_dirs() if p.name not in referenced)
        size = sum(
            f.stat().st_size for k in keys for f in self._entry_dir(k).iterdir() if f.is_file()
        )
        failed = sum(1 for image in images if image.name in self.manifest["failed"])
        return CacheStats(
            images=len(images),
            cached=cached,
            missing=len(images) - cached,
            failed=failed,
            entries=len(keys),
            orphaned=orphaned,
            bytes=size,
        )

    def prune(self) -> int:
        """Delete entry folders that no image of the manifest refers to; returns their number."""
        self.refresh()
        referenced = {r["key"] for r in self.manifest["images"].values()}
        removed = 0
        for folder in self._entry_dirs():
            if folder.name not in referenced:
                shutil.rmtree(folder)
                removed += 1
        return removed

    def token_counts(self, *, patch: tuple[int, int, int] = (4, 16, 16)) -> dict[str, int]:
        """Tokens per cached image (``"<study>/<image>"`` → ``D/pd · H/ph · W/pw``)."""
        out = {}
        for name, record in self.manifest["images"].items():
            d, h, w = record["shape"][1:]
            out[name] = (d // patch[0]) * (h // patch[1]) * (w // patch[2])
        return out

    def __repr__(self) -> str:
        return f"CacheManager(root={str(self.root)!r}, settings={self.settings})"
