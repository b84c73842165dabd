""":meth:`CacheManager.build` beyond one machine: shares, Dask tasks, and the merge.

* A share (``shard_index``/``num_shards``) prepares its contiguous slice of the
  metadata's images (:func:`~brrrr.core.distributed.shard_slice`) exactly as a
  single-machine build does, into a manifest of its own,
  ``cache/manifest.share-I-of-N.json`` (with ``"complete": true`` once done). The share
  that finds every share complete merges them.
* A Dask task prepares a batch of images on a worker and returns its part of the
  manifest; this process merges the parts and writes the manifest once.

Entries are found by content key and committed by ``entry.json`` (written last), so a
task run again after its worker died finds the entries it had finished and prepares
only the rest; two shares that meet the same source write the same bytes, atomically.
The merged manifest has the content a single-machine build writes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from brrrr.core.distributed import (
    merge_records,
    read_shares,
    remove_shares,
    run_tasks,
    shard_slice,
    share_path,
    write_share,
)
from brrrr.core.errors import DistributedError
from brrrr.preprocess.errors import CacheError
from brrrr.preprocess.neurovfm._cache_entry import CACHE_FORMAT, BuildReport, Verify, init_worker
from brrrr.preprocess.neurovfm.metadata import ImageRecord

if TYPE_CHECKING:
    from brrrr.core.distributed import ClusterSpec
    from brrrr.preprocess.neurovfm.cache import CacheManager

__all__ = ["CacheTask", "build_dask", "build_share", "build_task", "merge"]

_STEM = "manifest"  # cache/manifest.share-00001-of-00004.json


@dataclass
class CacheTask:
    """One batch of images to prepare on a worker (pickled to it).

    Attributes:
        manager: A manager of the dataset root (as the workers see it) and settings,
            with nothing read yet.
        images: The batch.
        sources: Known source hashes of the batch (``path → {"stamp", "sha256"}``).
        force: Rebuild valid entries too.
        verify: How existing entries are checked.
        device: Device for ``load_and_prepare``.
    """

    manager: CacheManager
    images: Sequence[ImageRecord]
    sources: dict[str, Any]
    force: bool
    verify: Verify
    device: str | None


def _part(manager: CacheManager, images: Sequence[ImageRecord]) -> dict[str, Any]:
    """An empty manifest that knows the source hashes the cache's manifest holds for ``images``."""
    part = manager._empty_manifest()
    known = manager.manifest["sources"]
    part["sources"] = {i.path: known[i.path] for i in images if i.path in known}
    return part


def build_task(task: CacheTask) -> tuple[dict[str, Any], BuildReport]:
    """Prepare one batch in this process (a Dask task); its manifest part and report."""
    manager = task.manager
    part = manager._empty_manifest()
    part["sources"] = dict(task.sources)
    report = BuildReport()
    keys: dict[str, str] = {}
    manager._build_into(
        part,
        task.images,
        pool=None,
        force=task.force,
        verify=task.verify,
        device=task.device,
        report=report,
        show=False,
        keys=keys,
    )
    manager._tidy(part, task.images, report, keys)
    return part, report


def build_dask(
    manager: CacheManager,
    *,
    scheduler: str | None,
    cluster_spec: str | os.PathLike[str] | ClusterSpec | None,
    batch_size: int,
    force: bool,
    verify: Verify,
    device: str | None,
    progress: bool,
) -> BuildReport:
    """Prepare every image as Dask tasks of ``batch_size`` images; write the manifest here."""
    from tqdm import tqdm

    if batch_size < 1:
        raise CacheError(f"batch_size must be at least 1, got {batch_size}")
    images = manager.metadata.images
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    tasks = [
        CacheTask(
            manager=type(manager)(manager.root, settings=manager.settings),
            images=batch,
            sources=_part(manager, batch)["sources"],
            force=force,
            verify=verify,
            device=device,
        )
        for batch in batches
    ]
    bar = tqdm(total=len(images), desc="cache build", unit="vol", disable=not progress)
    try:
        parts = run_tasks(
            build_task,
            tasks,
            scheduler=scheduler,
            cluster_spec=cluster_spec,
            name="cache-build",
            on_result=lambda position, _: bar.update(len(tasks[position].images)),
        )
    finally:
        bar.close()
    manifest = manager.manifest
    manifest["settings"] = manager.settings.as_dict()
    manifest["failed"] = {}
    report = BuildReport()
    for part, part_report in parts:
        for name in ("images", "sources", "failed"):
            manifest[name].update(part[name])
        report.built += part_report.built
        report.rebuilt += part_report.rebuilt
        report.reused += part_report.reused
        report.failed |= part_report.failed
    manager._tidy(manifest, images, report, {})
    manager._write_manifest()
    return report


def build_share(
    manager: CacheManager,
    *,
    shard_index: int,
    num_shards: int,
    num_workers: int | None,
    force: bool,
    verify: Verify,
    device: str | None,
    progress: bool,
) -> BuildReport:
    """Prepare share ``shard_index`` of ``num_shards`` of the images; merge if it is the last."""
    from concurrent.futures import ProcessPoolExecutor

    images = shard_slice(manager.metadata.images, shard_index=shard_index, num_shards=num_shards)
    part = _part(manager, images)
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    pool = ProcessPoolExecutor(workers, initializer=init_worker) if workers > 0 and images else None
    report = BuildReport()
    keys: dict[str, str] = {}
    complete = False
    try:
        manager._build_into(
            part,
            images,
            pool=pool,
            force=force,
            verify=verify,
            device=device,
            report=report,
            show=progress,
            keys=keys,
        )
        complete = True
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        manager._tidy(part, images, report, keys)
        manager.folder.mkdir(parents=True, exist_ok=True)
        write_share(
            manager.folder,
            part | {"complete": complete},
            stem=_STEM,
            shard_index=shard_index,
            num_shards=num_shards,
        )
    shares = read_shares(manager.folder, stem=_STEM, num_shards=num_shards, missing="none")
    if shares is not None and all(share.get("complete") for share in shares):
        merge(manager, num_shards=num_shards)
    return report


def merge(manager: CacheManager, *, num_shards: int | None) -> BuildReport:
    """Write ``cache/manifest.json`` from every share manifest, then delete them.

    Raises:
        DistributedError: A share manifest is missing or unfinished (named), or two
            shares recorded one image or source differently.
        CacheError: A share was built with other settings or another cache format (named).
    """
    shares = read_shares(manager.folder, stem=_STEM, num_shards=num_shards)
    assert shares is not None
    settings = manager.settings.as_dict()
    for position, share in enumerate(shares):
        path = share_path(manager.folder, stem=_STEM, shard_index=position, num_shards=len(shares))
        if share.get("version") != CACHE_FORMAT or share.get("settings") != settings:
            raise CacheError(
                "this share was built with other preparation settings (or cache format); "
                "build it again with the same settings",
                path=path,
            )
        if not share.get("complete"):
            raise DistributedError(
                "this share did not finish; run it again (finished entries are kept), then merge",
                path=path,
            )
    manifest = manager._empty_manifest()
    manifest["settings"] = settings
    for name, what in (("images", "image records"), ("sources", "source hashes")):
        manifest[name] = merge_records(
            (share[name] for share in shares), what=what, path=manager.folder
        )
    manifest["failed"] = merge_records(
        (share["failed"] for share in shares), what="failures", path=manager.folder
    )
    report = BuildReport(reused=sorted(manifest["images"]), failed=dict(manifest["failed"]))
    manager._tidy(manifest, manager.metadata.images, report, {})
    manager._manifest = manifest
    manager._write_manifest()
    remove_shares(manager.folder, stem=_STEM)
    return report
