"""`MapCache`: kernel maps of many studies on disk, content-addressed, read memory-mapped.

Layout of a cache folder::

    manifest.json          {"format", "version", "entries": {key: {...}}, "templates": {...}}
    shards/<hash>.npy      (n, V) or (n, I, J, K) maps, plain .npy (no pickle)

A study's key is the SHA-256 of its coordinates (sorted, float64), the kernel's settings,
the per-study facts the kernel uses (ALE: the sample size or FWHM), the layout, the dtype and
the template's fingerprint (affine, shape, zooms, mask). Study ids are not part of the key:
two studies with the same peaks share one map, and renaming a study costs nothing. A build
computes only keys the manifest lacks, writes each shard and then the manifest with atomic
renames, so an interrupted build leaves a valid cache. One writer at a time.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from brrrr.core.files import atomic_write
from brrrr.preprocess.errors import MapCacheError
from brrrr.preprocess.kernels._apply import Layout, MapDType, iter_maps
from brrrr.preprocess.kernels._peaks import PeakTable
from brrrr.preprocess.kernels._specs import Kernel
from brrrr.preprocess.kernels._template import Template

if TYPE_CHECKING:
    import torch

__all__ = ["CachedMaps", "MapCache"]

_FORMAT = "brrrr.preprocess.kernels.MapCache"
_VERSION = 1


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
    ) -> CachedMaps:
        """Compute the maps the cache lacks, then return all of ``peaks``' maps.

        Args:
            peaks: The studies.
            kernel: Kernel settings.
            template: Grid and mask.
            layout: ``"masked"`` (V,) or ``"grid"`` (I, J, K) per map.
            dtype: ``"float32"`` or ``"uint8"`` (MKDA/KDA).
            device: Where to compute.
            shard_size: Maps per shard file.
            progress: Show a tqdm bar over the studies being computed.

        Returns:
            The :class:`CachedMaps` of every study, in the table's order.

        Raises:
            MapCacheError: Unreadable manifest.
            KernelError: Impossible kernel settings.
        """
        from tqdm.auto import tqdm

        keys = self.keys_for(peaks, kernel=kernel, template=template, layout=layout, dtype=dtype)
        manifest = self._read_manifest()
        entries: dict[str, dict[str, Any]] = manifest["entries"]
        first_row: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key not in entries and key not in first_row:
                first_row[key] = row
        if first_row:
            (self.root / "shards").mkdir(parents=True, exist_ok=True)
            manifest["templates"][template.fingerprint] = {
                "name": os.path.basename(template.name),
                "shape": list(template.shape),
                "affine": np.asarray(template.affine).tolist(),
                "n_voxels": template.n_voxels,
            }
            todo_rows = list(first_row.values())
            todo = peaks.select(todo_rows)
            bar = tqdm(total=len(todo_rows), unit="map", desc="map cache", disable=not progress)
            try:
                for batch in iter_maps(
                    todo,
                    kernel=kernel,
                    template=template,
                    batch_size=shard_size,
                    layout=layout,
                    dtype=dtype,
                    device=device,
                ):
                    batch_keys = [keys[todo_rows[i]] for i in range(batch.start, batch.stop)]
                    name = hashlib.sha256("".join(batch_keys).encode()).hexdigest()[:32]
                    relative = f"shards/{name}.npy"
                    buffer = io.BytesIO()
                    np.save(buffer, batch.maps.cpu().numpy(), allow_pickle=False)
                    atomic_write(self.root / relative, buffer.getbuffer())
                    for offset, key in enumerate(batch_keys):
                        source = todo_rows[batch.start + offset]
                        entries[key] = {
                            "shard": relative,
                            "row": offset,
                            "kernel": kernel.settings(),
                            "layout": layout,
                            "dtype": dtype,
                            "template": template.fingerprint,
                            "n_peaks": int(peaks.peaks_per_study[source]),
                        }
                    self._write_manifest(manifest)
                    bar.update(batch.stop - batch.start)
            finally:
                bar.close()
        return self._cached(peaks, keys, entries)

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
