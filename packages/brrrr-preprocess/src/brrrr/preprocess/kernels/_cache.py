"""`MapCache`: kernel maps of many studies on disk, content-addressed, read memory-mapped.

Layout of a cache folder::

    manifest.json          {"format", "version", "entries": {key: {...}}, "templates": {...}}
    shards/<hash>.npy      (n, V) or (n, I, J, K) maps, plain .npy (no pickle)

A study's key is the SHA-256 of its coordinates (sorted, float64), the kernel's settings,
the per-study facts the kernel uses (ALE: the sample size or FWHM), the layout, the dtype and
the template's fingerprint (affine, shape, zooms, mask). Study ids are not part of the key:
two studies with the same peaks share one map, and renaming a study costs nothing. A build
computes only keys the manifest lacks, writes each shard and then the manifest with atomic
renames, so an interrupted build leaves a valid cache. One writer of the manifest at a time.

Beyond one machine: the missing maps are cut into the same batches of ``shard_size`` studies
whatever runs them, and a batch's shard is named by its keys, so every way writes the same
files. :meth:`MapCache.build` with ``scheduler``/``cluster_spec`` computes one batch per Dask
task (a rerun after a dead worker finds the shard and computes nothing) and writes the
manifest once. :meth:`MapCache.build_share` computes one contiguous share of the batches (a
SLURM array task) and records it in ``manifest.share-I-of-N.json``; the share that finds
every share finished, or :meth:`MapCache.merge_shares`, writes the manifest.

Example:
    >>> cache = MapCache("maps_cache")  # doctest: +SKIP
    >>> maps = cache.build(peaks, kernel=MKDA(), template=tpl)  # doctest: +SKIP
    >>> maps[0].shape, type(maps[0])  # doctest: +SKIP
    ((228483,), <class 'numpy.memmap'>)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from brrrr.core.files import atomic_write
from brrrr.preprocess.errors import KernelError, MapCacheError
from brrrr.preprocess.kernels._apply import Layout, MapDType, iter_maps
from brrrr.preprocess.kernels._peaks import PeakTable
from brrrr.preprocess.kernels._specs import Kernel
from brrrr.preprocess.kernels._template import Template

if TYPE_CHECKING:
    import torch

    from brrrr.core.distributed import ClusterSpec

__all__ = ["CachedMaps", "MapCache"]

_FORMAT = "brrrr.preprocess.kernels.MapCache"
_VERSION = 1
_STEM = "manifest"  # share manifests: manifest.share-00001-of-00004.json


@dataclass
class _Batch:
    """One shard of maps to compute: everything a Dask worker needs (pickled to it)."""

    root: str
    relative: str
    keys: list[str]
    rows: list[int]  # of the whole table: the first study of each key
    peaks: PeakTable
    kernel: Kernel
    template: Template
    layout: Layout
    dtype: MapDType
    device: str


def _entry(batch: _Batch, offset: int) -> dict[str, Any]:
    return {
        "shard": batch.relative,
        "row": offset,
        "kernel": batch.kernel.settings(),
        "layout": batch.layout,
        "dtype": batch.dtype,
        "template": batch.template.fingerprint,
        "n_peaks": int(batch.peaks.peaks_per_study[offset]),
    }


def _has_shard(path: Path, rows: int) -> bool:
    """Whether a finished shard of ``rows`` maps is there (written atomically: whole or absent)."""
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0]) == rows
    except (OSError, ValueError, IndexError):
        return False


def _save_maps(path: Path, maps: torch.Tensor) -> None:
    buffer = io.BytesIO()
    np.save(buffer, maps.cpu().numpy(), allow_pickle=False)
    atomic_write(path, buffer.getbuffer())


def _compute_batch(batch: _Batch) -> dict[str, dict[str, Any]]:
    """Compute and write one shard unless it is there already; its manifest entries."""
    path = Path(batch.root) / batch.relative
    if not _has_shard(path, len(batch.keys)):
        path.parent.mkdir(parents=True, exist_ok=True)
        (maps,) = (
            b.maps
            for b in iter_maps(
                batch.peaks,
                kernel=batch.kernel,
                template=batch.template,
                batch_size=len(batch.keys),
                layout=batch.layout,
                dtype=batch.dtype,
                device=batch.device,
            )
        )
        _save_maps(path, maps)
    return {key: _entry(batch, offset) for offset, key in enumerate(batch.keys)}


class CachedMaps(Sequence[np.ndarray]):
    """Maps of some studies, read from a :class:`MapCache` (memory-mapped, read-only).

    Attributes:
        study_ids: (S,) ids, in the peak table's order.
        keys: (S,) content keys.
    """

    def __init__(self, root: Path, study_ids: Sequence[str], entries: Sequence[dict[str, Any]]):
        self._root = root
        self.study_ids = tuple(study_ids)
        self.keys = tuple(str(e["key"]) for e in entries)
        self._entries = list(entries)
        self._open: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        """One study's map, ``(V,)`` or ``(I, J, K)``, as a read-only memory map."""
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        entry = self._entries[index]
        shard = self._shard(str(entry["shard"]))
        row = int(entry["row"])
        if row >= shard.shape[0]:
            raise MapCacheError(
                f"manifest points at row {row} of a shard with {shard.shape[0]} rows; "
                "rebuild the cache",
                path=self._root / str(entry["shard"]),
            )
        return shard[row]

    def stack(self, rows: Sequence[int] | None = None) -> np.ndarray:
        """Maps of ``rows`` (default: all) copied into one ``(n, ...)`` array."""
        chosen = range(len(self)) if rows is None else rows
        return np.stack([np.asarray(self[i]) for i in chosen])

    def _shard(self, relative: str) -> np.ndarray:
        if relative not in self._open:
            path = self._root / relative
            try:
                self._open[relative] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise MapCacheError(
                    f"cannot read shard: {exc}; rebuild the cache", path=path
                ) from None
        return self._open[relative]

    def __repr__(self) -> str:
        return f"CachedMaps(studies={len(self)}, root={str(self._root)!r})"


class MapCache:
    """A folder of kernel maps keyed by content.

    Args:
        root: Cache folder (created on the first build).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        """``root/manifest.json``."""
        return self.root / "manifest.json"

    def keys_for(
        self,
        peaks: PeakTable,
        *,
        kernel: Kernel,
        template: Template,
        layout: Layout = "masked",
        dtype: MapDType = "float32",
    ) -> list[str]:
        """(S,) content key of each study's map."""
        settings = kernel.settings()
        per_study = kernel.study_settings(peaks)
        starts = peaks.study_starts
        keys = []
        for row in range(peaks.n_studies):
            coords = peaks.coords_mm[starts[row] : starts[row + 1]]
            coords = coords[np.lexsort(coords.T[::-1])] if coords.size else coords
            header = json.dumps(
                {
                    "v": _VERSION,
                    "kernel": settings,
                    "study": per_study[row],
                    "layout": layout,
                    "dtype": dtype,
                    "template": template.fingerprint,
                },
                sort_keys=True,
                default=float,
            )
            digest = hashlib.sha256(header.encode())
            digest.update(np.ascontiguousarray(coords, dtype="<f8").tobytes())
            keys.append(digest.hexdigest())
        return keys

    def lookup(
        self,
        peaks: PeakTable,
        *,
        kernel: Kernel,
        template: Template,
        layout: Layout = "masked",
        dtype: MapDType = "float32",
    ) -> CachedMaps:
        """The cached maps of every study in ``peaks``.

        Raises:
            MapCacheError: Some studies' maps are not cached (they are named).
        """
        keys = self.keys_for(peaks, kernel=kernel, template=template, layout=layout, dtype=dtype)
        return self._cached(peaks, keys, self._read_manifest()["entries"])

    def build(
        self,
        peaks: PeakTable,
        *,
        kernel: Kernel,
        template: Template,
        layout: Layout = "masked",
        dtype: MapDType = "float32",
        device: str | torch.device = "cpu",
        shard_size: int = 256,
        progress: bool = True,
        scheduler: str | None = None,
        cluster_spec: str | os.PathLike[str] | ClusterSpec | None = None,
    ) -> CachedMaps:
        """Compute the maps the cache lacks, then return all of ``peaks``' maps.

        Args:
            peaks: The studies.
            kernel: Kernel settings.
            template: Grid and mask.
            layout: ``"masked"`` (V,) or ``"grid"`` (I, J, K) per map.
            dtype: ``"float32"`` or ``"uint8"`` (MKDA/KDA).
            device: Where to compute (on each worker, with a scheduler).
            shard_size: Maps per shard file.
            progress: Show a tqdm bar over the studies being computed.
            scheduler: Compute one shard per Dask task: ``"tcp://host:8786"`` or
                ``"local:N"`` (needs ``brrrr-core[dask]``); the root must be a folder
                every worker sees.
            cluster_spec: Or a ``dask-jobqueue`` cluster to start for the build (a
                :class:`~brrrr.core.distributed.ClusterSpec` or its YAML file).

        Returns:
            The :class:`CachedMaps` of every study, in the table's order.

        Raises:
            MapCacheError: Unreadable manifest.
            KernelError: Impossible kernel settings.
            DistributedError: Both a scheduler and a cluster spec, or a task that killed
                its workers.
        """
        from tqdm.auto import tqdm

        from brrrr.core.distributed import run_mode, run_tasks

        dask = run_mode(scheduler=scheduler, cluster_spec=cluster_spec) == "dask"
        keys = self.keys_for(peaks, kernel=kernel, template=template, layout=layout, dtype=dtype)
        manifest = self._read_manifest()
        entries: dict[str, dict[str, Any]] = manifest["entries"]
        batches = self._batches(
            peaks, keys, entries, kernel, template, layout, dtype, device, shard_size
        )
        if not batches:
            return self._cached(peaks, keys, entries)
        self._add_template(manifest, template)
        bar = tqdm(
            total=sum(len(b.keys) for b in batches),
            unit="map",
            desc="map cache",
            disable=not progress,
        )
        try:
            if dask:
                for found in run_tasks(
                    _compute_batch,
                    batches,
                    scheduler=scheduler,
                    cluster_spec=cluster_spec,
                    name="map-cache",
                    on_result=lambda position, _: bar.update(len(batches[position].keys)),
                ):
                    entries.update(found)
                self._write_manifest(manifest)
            else:
                self._compute_here(peaks, batches, manifest, bar)
        finally:
            bar.close()
        return self._cached(peaks, keys, entries)

    def build_share(
        self,
        peaks: PeakTable,
        *,
        shard_index: int,
        num_shards: int,
        kernel: Kernel,
        template: Template,
        layout: Layout = "masked",
        dtype: MapDType = "float32",
        device: str | torch.device = "cpu",
        shard_size: int = 256,
        progress: bool = True,
    ) -> CachedMaps | None:
        """Compute share ``shard_index`` of ``num_shards`` of the maps :meth:`build` would.

        Every share cuts the missing maps into the same batches of ``shard_size`` and
        takes a contiguous, balanced share of them (a SLURM array task each); it writes
        their shards and ``manifest.share-I-of-N.json``, not the manifest. The share that
        finds every share finished merges them (:meth:`merge_shares`).

        Args:
            peaks: The studies (the same table in every share).
            shard_index: This share, 0-based (``$SLURM_ARRAY_TASK_ID``).
            num_shards: The number of shares.
            kernel: Kernel settings.
            template: Grid and mask.
            layout: ``"masked"`` or ``"grid"``.
            dtype: ``"float32"`` or ``"uint8"``.
            device: Where to compute.
            shard_size: Maps per shard file.
            progress: Show a tqdm bar.

        Returns:
            Every study's maps once this share merged; None while other shares are to come.

        Raises:
            DistributedError: Bad shard arguments.
            MapCacheError: Unreadable manifest.
        """
        from tqdm.auto import tqdm

        from brrrr.core.distributed import read_shares, shard_slice, write_share

        keys = self.keys_for(peaks, kernel=kernel, template=template, layout=layout, dtype=dtype)
        manifest = self._read_manifest()
        batches = self._batches(
            peaks, keys, manifest["entries"], kernel, template, layout, dtype, device, shard_size
        )
        mine = shard_slice(batches, shard_index=shard_index, num_shards=num_shards)
        share: dict[str, Any] = {"format": _FORMAT, "version": _VERSION, "entries": {}}
        share["templates"] = {}
        if batches:
            self._add_template(share, template)
        bar = tqdm(total=len(mine), unit="shard", desc=f"share {shard_index}", disable=not progress)
        for batch in mine:
            share["entries"].update(_compute_batch(batch))
            bar.update()
        bar.close()
        self.root.mkdir(parents=True, exist_ok=True)
        write_share(
            self.root,
            share | {"complete": True},
            stem=_STEM,
            shard_index=shard_index,
            num_shards=num_shards,
        )
        if read_shares(self.root, stem=_STEM, num_shards=num_shards, missing="none") is None:
            return None
        self.merge_shares(num_shards=num_shards)
        return self.lookup(peaks, kernel=kernel, template=template, layout=layout, dtype=dtype)

    def merge_shares(self, *, num_shards: int | None = None) -> int:
        """Add the entries of every share manifest to the manifest, then delete them.

        Needed only when no share could see the others finish (the last one merges).

        Args:
            num_shards: How many shares to expect; None reads it from the file names.

        Returns:
            The number of entries the manifest holds.

        Raises:
            DistributedError: A share manifest is missing or unfinished (named), or two
                recorded one key differently.
            MapCacheError: A share manifest of another cache format (named).
        """
        from brrrr.core.distributed import merge_records, read_shares, remove_shares, share_path

        shares = read_shares(self.root, stem=_STEM, num_shards=num_shards)
        assert shares is not None
        for position, share in enumerate(shares):
            path = share_path(self.root, stem=_STEM, shard_index=position, num_shards=len(shares))
            if share.get("format") != _FORMAT or share.get("version") != _VERSION:
                raise MapCacheError(
                    f"not a version-{_VERSION} map cache share manifest; run this share again",
                    path=path,
                )
            if not share.get("complete"):
                raise MapCacheError("this share did not finish; run it again", path=path)
        manifest = self._read_manifest()
        for name, what in (("entries", "map entries"), ("templates", "templates")):
            manifest[name] = merge_records(
                [manifest[name], *(share[name] for share in shares)], what=what, path=self.root
            )
        self._write_manifest(manifest)
        remove_shares(self.root, stem=_STEM)
        return len(manifest["entries"])

    def _batches(
        self,
        peaks: PeakTable,
        keys: Sequence[str],
        entries: dict[str, dict[str, Any]],
        kernel: Kernel,
        template: Template,
        layout: Layout,
        dtype: MapDType,
        device: str | torch.device,
        shard_size: int,
    ) -> list[_Batch]:
        """The shards a build writes: the first study of each key missing from ``entries``,
        in table order, cut every ``shard_size``; each named by its keys."""
        first_row: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key not in entries and key not in first_row:
                first_row[key] = row
        if shard_size < 1:
            raise KernelError(f"shard_size must be at least 1, got {shard_size}")
        todo = list(first_row.values())
        batches = []
        for start in range(0, len(todo), shard_size):
            rows = todo[start : start + shard_size]
            batch_keys = [keys[row] for row in rows]
            name = hashlib.sha256("".join(batch_keys).encode()).hexdigest()[:32]
            batches.append(
                _Batch(
                    root=str(self.root),
                    relative=f"shards/{name}.npy",
                    keys=batch_keys,
                    rows=rows,
                    peaks=peaks.select(rows),
                    kernel=kernel,
                    template=template,
                    layout=layout,
                    dtype=dtype,
                    device=str(device),
                )
            )
        return batches

    @staticmethod
    def _add_template(manifest: dict[str, Any], template: Template) -> None:
        manifest["templates"][template.fingerprint] = {
            "name": os.path.basename(template.name),
            "shape": list(template.shape),
            "affine": np.asarray(template.affine).tolist(),
            "n_voxels": template.n_voxels,
        }

    def _compute_here(
        self,
        peaks: PeakTable,
        batches: Sequence[_Batch],
        manifest: dict[str, Any],
        bar: Any,
    ) -> None:
        """All batches in this process, through one kernel plan; the manifest after each."""
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        first = batches[0]
        todo = peaks.select([row for batch in batches for row in batch.rows])
        maps = iter_maps(
            todo,
            kernel=first.kernel,
            template=first.template,
            batch_size=len(first.keys),
            layout=first.layout,
            dtype=first.dtype,
            device=first.device,
        )
        for batch, computed in zip(batches, maps, strict=True):
            _save_maps(self.root / batch.relative, computed.maps)
            manifest["entries"].update(
                {key: _entry(batch, offset) for offset, key in enumerate(batch.keys)}
            )
            self._write_manifest(manifest)
            bar.update(len(batch.keys))

    def _cached(
        self, peaks: PeakTable, keys: Sequence[str], entries: dict[str, dict[str, Any]]
    ) -> CachedMaps:
        """The maps of ``peaks``' studies, whose content ``keys`` are looked up in ``entries``.

        Raises:
            MapCacheError: Some studies' maps are not in ``entries`` (they are named).
        """
        study_ids = [str(s) for s in peaks.study_ids]
        missing = [s for s, k in zip(study_ids, keys, strict=True) if k not in entries]
        if missing:
            raise MapCacheError(
                f"{len(missing)} of {len(keys)} studies are not cached ({missing[:5]}"
                f"{'...' if len(missing) > 5 else ''}); run MapCache.build first",
                path=self.root,
            )
        return CachedMaps(self.root, study_ids, [{"key": k, **entries[k]} for k in keys])

    def _read_manifest(self) -> dict[str, Any]:
        path = self.manifest_path
        if not path.exists():
            return {"format": _FORMAT, "version": _VERSION, "entries": {}, "templates": {}}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise MapCacheError(f"unreadable manifest: {exc}", path=path) from None
        if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            raise MapCacheError(
                f"not a version-{_VERSION} map cache manifest (format={manifest.get('format')!r}, "
                f"version={manifest.get('version')!r}); use another folder",
                path=path,
            )
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        payload = json.dumps(manifest, indent=1, sort_keys=True).encode()
        atomic_write(self.manifest_path, payload)

    def __len__(self) -> int:
        return len(self._read_manifest()["entries"])

    def __repr__(self) -> str:
        return f"MapCache(root={str(self.root)!r})"
