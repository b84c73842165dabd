"""``to_hf`` beyond one machine: shares for SLURM arrays, one Dask task per shard, the merge.

Both ways write the shards :func:`~brrrr.ingest.shards.to_hf` writes on one machine,
under the same names and with the same bytes, and then the same ``manifest.json`` and
card. They record what they wrote in *share manifests* (``manifest.share-I-of-N.json``,
the :class:`~brrrr.ingest.manifest.Manifest` format with only that share's shards,
``complete`` once the share is done) beside the output:

* a share (``shard_index``/``num_shards``) writes the shards
  :func:`~brrrr.core.distributed.shard_range` gives it, saving its share manifest after
  each one (so a requeued share resumes), then merges if every share has finished;
* a Dask task writes one shard and its own share manifest (share ``s`` of the number
  of shards): the commit mark a rerun of the task finds, after its worker died, to
  return the record without writing the shard again. The client merges the results.

The merge checks that every planned shard is recorded with the planned fingerprint and
an intact file, writes the manifest and the card, and deletes the share manifests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brrrr.core.distributed import (
    read_shares,
    remove_shares,
    run_tasks,
    shard_range,
    share_path,
)
from brrrr.core.files import atomic_write
from brrrr.ingest._shard_writer import (
    DATA_DIR,
    ShardHook,
    _clean_stale,
    _files_by_shard,
    _Plan,
    _read_ahead,
    _read_images,
    _reusable,
    _write_shard,
    shard_name,
)
from brrrr.ingest.errors import ManifestError
from brrrr.ingest.manifest import FileRecord, Manifest, ShardRecord

if TYPE_CHECKING:
    import pyarrow as pa

    from brrrr.core.distributed import ClusterSpec
    from brrrr.ingest.shards import ConversionResult

__all__ = ["ShardTask", "convert_shard", "merge", "run_dask", "run_share"]

_STEM = "manifest"  # share manifests: manifest.share-00001-of-00004.json


@dataclass
class ShardTask:
    """Everything a worker needs to write one shard (pickled to it; no BIDS index).

    Attributes:
        out: Output folder (shared by every worker).
        root: BIDS root (cells store paths relative to it).
        shard: The shard's index.
        rows: The shard's rows.
        groups: Its row groups, as spans of ``rows``.
        schema: The Arrow schema.
        columns: The image columns.
        fingerprint: The planned fingerprint of the shard.
        head: The manifest with no shard (source, options, counts, skipped).
    """

    out: str
    root: str
    shard: int
    rows: list[dict[str, Any]]
    groups: list[range]
    schema: pa.Schema
    columns: dict[str, bool]
    fingerprint: str
    head: Manifest


def _write(task: ShardTask) -> tuple[ShardRecord, dict[str, FileRecord]]:
    """Write one shard; the next row group is read while this one is encoded."""
    root = Path(task.root)

    def read(job: tuple[int, range]) -> Any:
        group = job[1]
        return _read_images(
            task.rows[group.start : group.stop], group.start, columns=task.columns, root=root
        )

    jobs = [(task.shard, group) for group in task.groups]
    with ThreadPoolExecutor(1, thread_name_prefix="brrrr-read") as reader:
        record, files = _write_shard(
            Path(task.out),
            shard_name(task.shard, task.head.num_shards),
            task.rows,
            ((group, images) for (_, group), images in _read_ahead(reader, read, jobs)),
            shard=task.shard,
            schema=task.schema,
            columns=task.columns,
        )
    record.fingerprint = task.fingerprint
    return record, files


def _share_manifest(path: Path, head: Manifest) -> Manifest | None:
    """A share manifest of this conversion (same options), or None."""
    try:
        found = Manifest.from_json(path.read_text(encoding="utf-8"), where=str(path))
    except (OSError, ManifestError):
        return None
    return found if found.options == head.options and found.num_shards == head.num_shards else None


def _save_share(out: Path, manifest: Manifest, *, shard_index: int, num_shards: int) -> Path:
    path = share_path(out, stem=_STEM, shard_index=shard_index, num_shards=num_shards)
    atomic_write(path, manifest.to_json().encode("utf-8"))
    return path


def convert_shard(task: ShardTask) -> tuple[ShardRecord, dict[str, FileRecord], bool]:
    """Write one shard and its share manifest, unless an earlier attempt did (a Dask task).

    Returns:
        The shard's record, its files, and whether it was found finished.
    """
    out = Path(task.out)
    total = task.head.num_shards
    path = share_path(out, stem=_STEM, shard_index=task.shard, num_shards=total)
    done = _share_manifest(path, task.head)
    record = None if done is None else done.shards.get(task.shard)
    if (
        done is not None
        and record is not None
        and _reusable(record, out, shard_name(task.shard, total), task.fingerprint, None)
    ):
        return record, _files_by_shard(done).get(task.shard, {}), True
    record, files = _write(task)
    mark = _copy_head(task.head)
    mark.shards[task.shard] = record
    mark.files = dict(files)
    mark.complete = True
    _save_share(out, mark, shard_index=task.shard, num_shards=total)
    return record, files, False


def _copy_head(head: Manifest) -> Manifest:
    return Manifest(
        source=dict(head.source),
        options=dict(head.options),
        num_shards=head.num_shards,
        num_rows=head.num_rows,
        skipped=list(head.skipped),
    )


def _task(plan: _Plan, out: Path, shard: int) -> ShardTask:
    span = plan.spans[shard]
    return ShardTask(
        out=str(out),
        root=str(plan.index.root),
        shard=shard,
        rows=plan.rows[span.start : span.stop],
        groups=plan.row_groups(shard),
        schema=plan.schema,
        columns=plan.columns,
        fingerprint=plan.fingerprints[shard],
        head=plan.manifest(),
    )


def _kept(
    plan: _Plan,
    out: Path,
    previous: Manifest | None,
    shards: Sequence[int],
    uploaded_to: str | None,
) -> dict[int, ShardRecord]:
    """Shards of ``shards`` that an earlier complete run's manifest holds, intact."""
    kept = {}
    for shard in shards:
        old = None if previous is None else previous.shards.get(shard)
        if old is not None and _reusable(
            old, out, plan.name(shard), plan.fingerprints[shard], uploaded_to
        ):
            kept[shard] = old
    return kept


def _finish(
    plan: _Plan,
    out: Path,
    records: dict[int, ShardRecord],
    files: dict[int, dict[str, FileRecord]],
    *,
    repo_id: str | None,
    uploaded_to: str | None = None,
) -> Manifest:
    """The single-machine run's manifest from per-shard records, then the card; shares removed.

    Raises:
        ManifestError: A planned shard is not recorded, or recorded for other inputs, or
            its file is missing or of another size (the shard is named).
    """
    from brrrr.ingest.card import write_card

    manifest = plan.manifest()
    for shard in range(plan.total):
        record = records.get(shard)
        name = plan.name(shard)
        if record is None:
            raise ManifestError(
                "no share wrote this shard; run its share again (or the whole conversion), "
                "then merge",
                path=out / name,
            )
        if not _reusable(record, out, name, plan.fingerprints[shard], uploaded_to):
            raise ManifestError(
                "this shard was written from other inputs, or its file is missing or of "
                "another size than recorded; run its share again, then merge",
                path=out / name,
            )
        manifest.shards[shard] = record
        manifest.files |= files.get(shard, {})
    write_card(out, index=plan.index, manifest=manifest, features=plan.features, repo_id=repo_id)
    manifest.complete = True
    manifest.save(out)
    remove_shares(out, stem=_STEM)
    return manifest


def _merge_shares(plan: _Plan, out: Path, *, repo_id: str | None) -> tuple[Manifest, list[int]]:
    """The merged manifest, and the shards the shares recorded.

    Raises:
        DistributedError: A share manifest is missing (named).
        ManifestError: A share is unfinished or of other options, or a shard is missing.
    """
    documents = read_shares(out, stem=_STEM)
    assert documents is not None
    shares = []
    for position, document in enumerate(documents):
        path = share_path(out, stem=_STEM, shard_index=position, num_shards=len(documents))
        share = Manifest.from_json(json.dumps(document), where=str(path))
        if share.options != plan.options or share.num_shards != plan.total:
            raise ManifestError(
                "this share was run with other options or another dataset; run it again",
                path=path,
            )
        if not share.complete:
            raise ManifestError(
                f"this share has not finished ({len(share.shards)} shards written); run it "
                "again (it resumes), then merge",
                path=path,
            )
        shares.append(share)
    records = {i: r for share in shares for i, r in share.shards.items()}
    files: dict[int, dict[str, FileRecord]] = {}
    for share in shares:
        for shard, group in _files_by_shard(share).items():
            files.setdefault(shard, {}).update(group)
    return _finish(plan, out, records, files, repo_id=repo_id), sorted(records)


def merge(
    plan: _Plan, out: Path, result: ConversionResult, *, repo_id: str | None
) -> ConversionResult:
    """Merge the share manifests of a finished sharded run (``mode="merge"``) into ``result``.

    Raises:
        DistributedError: A share manifest is missing (named).
        ManifestError: A share is unfinished or of other options, or a shard is missing.
    """
    result.manifest, result.reused = _merge_shares(plan, out, repo_id=repo_id)
    return result


def run_share(
    plan: _Plan,
    out: Path,
    result: ConversionResult,
    *,
    previous: Manifest | None,
    shard_index: int,
    num_shards: int,
    on_shard: ShardHook | None,
    uploaded_to: str | None,
    repo_id: str | None,
    progress: bool,
) -> ConversionResult:
    """Write share ``shard_index`` of ``num_shards``; merge when it is the last to finish."""
    from tqdm.auto import tqdm

    mine = shard_range(plan.total, shard_index=shard_index, num_shards=num_shards)
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    # Only finished files of other plans: another share's .part files are its own.
    _clean_stale_final(out, {plan.name(i) for i in range(plan.total)})
    path = share_path(out, stem=_STEM, shard_index=shard_index, num_shards=num_shards)
    own = _share_manifest(path, plan.manifest())
    kept = _kept(plan, out, previous, mine, uploaded_to)
    own_files = _files_by_shard(own)
    share = plan.manifest()
    result.manifest, result.merged = share, False
    bar = tqdm(total=len(mine), desc=f"share {shard_index}", unit="shard", disable=not progress)
    for shard in mine:
        recorded = None if own is None else own.shards.get(shard)
        if shard in kept:
            share.shards[shard] = kept[shard]
            share.files |= _files_by_shard(previous).get(shard, {})
            result.reused.append(shard)
        elif recorded is not None and _reusable(
            recorded, out, plan.name(shard), plan.fingerprints[shard], uploaded_to
        ):
            share.shards[shard] = recorded
            share.files |= own_files.get(shard, {})
            result.reused.append(shard)
        else:
            record, files = _write(_task(plan, out, shard))
            share.shards[shard] = record
            share.files |= files
            result.written.append(shard)
        _save_share(out, share, shard_index=shard_index, num_shards=num_shards)
        bar.update()
        if on_shard is not None:
            on_shard(share, share.shards[shard], shard in result.reused)
    bar.close()
    share.complete = True
    _save_share(out, share, shard_index=shard_index, num_shards=num_shards)
    documents = read_shares(out, stem=_STEM, num_shards=num_shards, missing="none")
    if documents is not None and all(d.get("complete") for d in documents):
        result.manifest, _ = _merge_shares(plan, out, repo_id=repo_id)
        result.merged = True
    return result


def _clean_stale_final(out: Path, keep: set[str]) -> None:
    data = out / DATA_DIR
    for stale in data.iterdir():
        name = f"{DATA_DIR}/{stale.name}"
        if stale.name.startswith("train-") and stale.name.endswith(".parquet") and name not in keep:
            stale.unlink(missing_ok=True)


def run_dask(
    plan: _Plan,
    out: Path,
    result: ConversionResult,
    *,
    previous: Manifest | None,
    scheduler: str | None,
    cluster_spec: str | os.PathLike[str] | ClusterSpec | None,
    on_shard: ShardHook | None,
    uploaded_to: str | None,
    repo_id: str | None,
    progress: bool,
) -> ConversionResult:
    """One Dask task per shard still to write; the manifest written once, here, at the end."""
    from tqdm.auto import tqdm

    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    _clean_stale(out, {plan.name(i) for i in range(plan.total)})
    kept = _kept(plan, out, previous, range(plan.total), uploaded_to)
    todo = [shard for shard in range(plan.total) if shard not in kept]
    records: dict[int, ShardRecord] = dict(kept)
    files = {s: g for s, g in _files_by_shard(previous).items() if s in kept}
    result.reused = sorted(kept)
    bar = tqdm(total=len(todo), desc="writing shards", unit="shard", disable=not progress)
    partial = plan.manifest()
    released = 0  # on_shard sees the shards in order: those before `released` are out

    def finished(position: int, outcome: tuple[ShardRecord, dict[str, FileRecord], bool]) -> None:
        nonlocal released
        record, shard_files, _ = outcome
        records[record.index] = record
        files[record.index] = shard_files
        bar.update()
        while released < plan.total and released in records:
            partial.shards[released] = records[released]
            partial.files |= files.get(released, {})
            if on_shard is not None:
                on_shard(partial, records[released], released in kept)
            released += 1

    while released < plan.total and released in records:  # leading kept shards
        partial.shards[released] = records[released]
        partial.files |= files.get(released, {})
        if on_shard is not None:
            on_shard(partial, records[released], True)
        released += 1
    outcomes = run_tasks(
        convert_shard,
        [_task(plan, out, shard) for shard in todo],
        scheduler=scheduler,
        cluster_spec=cluster_spec,
        name="to-hf",
        on_result=finished,
    )
    bar.close()
    for (record, _, found), shard in zip(outcomes, todo, strict=True):
        assert record.index == shard
        (result.reused if found else result.written).append(shard)
    result.reused.sort()
    result.manifest = _finish(plan, out, records, files, repo_id=repo_id, uploaded_to=uploaded_to)
    return result
