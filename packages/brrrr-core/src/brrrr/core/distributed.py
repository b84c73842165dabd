"""Run a conversion or a cache build on many machines: shares for SLURM arrays, or Dask.

Two ways to spread one job over a cluster, shared by ``brrrr bids to-hf``, ``brrrr
preprocess cache`` and :class:`~brrrr.preprocess.kernels.MapCache`:

* **Shares** (``--shard-index I --num-shards N``): each invocation does share ``I`` of
  ``N`` (:func:`shard_range`: contiguous, balanced, the same in every invocation) and
  writes a *share manifest* next to the output (:func:`write_share`); whichever share
  finds all ``N`` written merges them (:func:`read_shares`, :func:`merge_records`) into
  the manifest a single-machine run writes, with the same content. A SLURM array runs
  the shares with no scheduler at all.
* **Dask** (``--scheduler ADDRESS``, ``--scheduler local:N`` or ``--cluster SPEC.yaml``):
  :func:`run_tasks` sends one task per output shard or batch of entries to a
  ``distributed`` cluster and returns the results in task order; the caller writes the
  manifest once. A task whose worker dies is run again elsewhere by the scheduler, so
  tasks write their outputs atomically under names fixed by their content or shard: a
  rerun finds the finished file, or writes the same bytes again.

``dask`` and ``dask-jobqueue`` are imported inside the functions that need them
(``pip install "brrrr-core[dask]"``); shares need neither.

Example:
    >>> from brrrr.core.distributed import run_tasks, shard_range, shard_slice
    >>> [list(shard_range(10, shard_index=i, num_shards=3)) for i in range(3)]
    [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    >>> shard_slice("abcde", shard_index=1, num_shards=2)
    ['c', 'd', 'e']
    >>> run_tasks(abs, [-1, 2, -3])  # no scheduler: in this process, in order
    [1, 2, 3]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from brrrr.core.errors import DistributedError, MissingDependencyError
from brrrr.core.files import atomic_write

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "CLUSTER_KINDS",
    "DASK_EXTRA",
    "ClusterSpec",
    "RunMode",
    "load_cluster_spec",
    "merge_records",
    "read_shares",
    "remove_shares",
    "run_mode",
    "run_tasks",
    "shard_range",
    "shard_slice",
    "share_path",
    "write_share",
]

T = TypeVar("T")
R = TypeVar("R")
V = TypeVar("V")

#: What to install for :func:`run_tasks` on a cluster.
DASK_EXTRA = "brrrr-core[dask]"
#: ``cluster:`` of a cluster spec → the ``dask_jobqueue`` class it builds.
CLUSTER_KINDS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
#: How a job runs: ``"here"`` (one process), ``"share"`` (one share of N) or ``"dask"``.
RunMode = Literal["here", "share", "dask"]

_LOCAL = re.compile(r"local:(\d+)")


# -- shares ----------------------------------------------------------------------------
def _check_share(shard_index: int, num_shards: int) -> None:
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise DistributedError(f"num_shards must be a positive integer, got {num_shards!r}")
    if (
        isinstance(shard_index, bool)
        or not isinstance(shard_index, int)
        or not 0 <= shard_index < num_shards
    ):
        raise DistributedError(
            f"shard_index must be an integer in [0, {num_shards - 1}] for num_shards="
            f"{num_shards}, got {shard_index!r} (SLURM arrays: --array=0-{num_shards - 1})"
        )


def shard_range(count: int, *, shard_index: int, num_shards: int) -> range:
    """The positions of ``count`` items that share ``shard_index`` of ``num_shards`` takes.

    Shares are contiguous, in order, and balanced (their sizes differ by at most one);
    they depend on nothing but the three numbers, so every invocation of an array agrees.

    Args:
        count: Number of items.
        shard_index: This share, ``0 <= shard_index < num_shards``.
        num_shards: Number of shares (may exceed ``count``: some shares are empty).

    Returns:
        A ``range`` of positions.

    Raises:
        DistributedError: ``shard_index`` or ``num_shards`` out of range.
    """
    _check_share(shard_index, num_shards)
    return range(shard_index * count // num_shards, (shard_index + 1) * count // num_shards)


def shard_slice(items: Iterable[T], *, shard_index: int, num_shards: int) -> list[T]:
    """The items of share ``shard_index`` of ``num_shards`` (see :func:`shard_range`).

    Raises:
        DistributedError: ``shard_index`` or ``num_shards`` out of range.
    """
    items = list(items)
    span = shard_range(len(items), shard_index=shard_index, num_shards=num_shards)
    return items[span.start : span.stop]


def run_mode(
    *,
    shard_index: int | None = None,
    num_shards: int | None = None,
    scheduler: str | None = None,
    cluster_spec: str | os.PathLike[str] | ClusterSpec | None = None,
) -> RunMode:
    """Which way a job runs, from the arguments every distributed command takes.

    Returns:
        ``"share"`` with both shard arguments, ``"dask"`` with a scheduler or a
        cluster spec, ``"here"`` with none.

    Raises:
        DistributedError: One shard argument without the other, shares mixed with
            Dask, both a scheduler and a cluster spec, or a share out of range.
    """
    if (shard_index is None) != (num_shards is None):
        raise DistributedError("give both --shard-index and --num-shards, or neither")
    if scheduler is not None and cluster_spec is not None:
        raise DistributedError("give a scheduler address or a cluster spec, not both")
    dask = scheduler is not None or cluster_spec is not None
    if shard_index is not None and num_shards is not None:
        if dask:
            raise DistributedError(
                "shard arguments split the work between separate invocations; a scheduler "
                "splits it by itself: give one or the other"
            )
        _check_share(shard_index, num_shards)
        return "share"
    return "dask" if dask else "here"


def share_path(
    folder: str | os.PathLike[str], *, stem: str, shard_index: int, num_shards: int
) -> Path:
    """``folder/STEM.share-00003-of-00008.json``: where share 3 of 8 records what it did."""
    _check_share(shard_index, num_shards)
    return Path(folder) / f"{stem}.share-{shard_index:05d}-of-{num_shards:05d}.json"


def write_share(
    folder: str | os.PathLike[str],
    document: Mapping[str, Any],
    *,
    stem: str,
    shard_index: int,
    num_shards: int,
) -> Path:
    """Write a share manifest atomically (JSON); returns its path.

    Raises:
        FileWriteError: The folder is missing or the write fails.
    """
    path = share_path(folder, stem=stem, shard_index=shard_index, num_shards=num_shards)
    atomic_write(path, (json.dumps(document, indent=1) + "\n").encode())
    return path


def _shares_on_disk(folder: Path, stem: str) -> dict[tuple[int, int], Path]:
    pattern = re.compile(re.escape(stem) + r"\.share-(\d{5})-of-(\d{5})\.json")
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found[int(match[1]), int(match[2])] = path
    return found


def read_shares(
    folder: str | os.PathLike[str],
    *,
    stem: str,
    num_shards: int | None = None,
    missing: Literal["raise", "none"] = "raise",
) -> list[dict[str, Any]] | None:
    """The share manifests of all shares, in share order, once every one is written.

    Args:
        folder: Where the shares wrote them.
        stem: Their name's stem (``manifest`` for ``manifest.share-…``).
        num_shards: How many shares there are; None reads it from the file names
            (which must all agree).
        missing: ``"raise"`` when a share is missing; ``"none"`` returns None instead
            (a share that finishes early asks this way whether it is the last).

    Returns:
        ``num_shards`` JSON documents, or None (``missing="none"``).

    Raises:
        DistributedError: A share manifest is missing (they are named), unreadable, or
            the file names disagree on the number of shares.
    """
    folder = Path(folder)
    found = _shares_on_disk(folder, stem)
    if num_shards is None:
        counts = sorted({n for _, n in found})
        if len(counts) > 1:
            raise DistributedError(
                f"share manifests of runs with {counts} shares are mixed here; delete the "
                f"{stem}.share-*.json of the runs you gave up",
                path=folder,
            )
        if not counts:
            if missing == "none":
                return None
            raise DistributedError(
                f"no share manifest ({stem}.share-*-of-*.json) here: run the shares first",
                path=folder,
            )
        num_shards = counts[0]
    paths = [
        share_path(folder, stem=stem, shard_index=i, num_shards=num_shards)
        for i in range(num_shards)
    ]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        if missing == "none":
            return None
        shown = ", ".join(absent[:5]) + (" …" if len(absent) > 5 else "")
        raise DistributedError(
            f"{len(absent)} of {num_shards} shares have not finished ({shown}); run them "
            "(again), then merge",
            path=folder,
        )
    documents = []
    for path in paths:
        try:
            documents.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise DistributedError(
                f"unreadable share manifest ({exc}); run this share again", path=path
            ) from None
    return documents


def remove_shares(folder: str | os.PathLike[str], *, stem: str) -> int:
    """Delete every ``STEM.share-*.json`` in ``folder`` (after a merge); returns their number."""
    removed = 0
    for path in _shares_on_disk(Path(folder), stem).values():
        with contextlib.suppress(FileNotFoundError):  # another share merged at the same time
            path.unlink()
            removed += 1
    return removed


def merge_records(
    parts: Iterable[Mapping[str, V]], *, what: str, path: str | os.PathLike[str] | None = None
) -> dict[str, V]:
    """The union of record mappings from several shares, in the order given.

    A key may appear in several parts (two shares met the same content) only with equal
    records.

    Args:
        parts: One mapping per share.
        what: What the records are, for the error message (``"cache entries"``).
        path: The folder the shares belong to, for the error message.

    Returns:
        One dict holding every record.

    Raises:
        DistributedError: Two shares recorded different values under one key.
    """
    merged: dict[str, V] = {}
    for part in parts:
        for key, value in part.items():
            if key in merged and merged[key] != value:
                raise DistributedError(
                    f"two shares recorded different {what} for {key!r}: the input changed "
                    "between shares; run them all again",
                    path=path,
                )
            merged[key] = value
    return merged


# -- clusters --------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterSpec:
    """A ``dask-jobqueue`` cluster to start for a run (the ``--cluster`` YAML file).

    The file::

        cluster: slurm          # or pbs: dask_jobqueue.SLURMCluster / PBSCluster
        jobs: 8                 # batch jobs to submit (cluster.scale(jobs=8))
        options:                # keyword arguments of the cluster class
          cores: 8
          processes: 8          # one single-threaded worker per core
          memory: 32GB
          walltime: "02:00:00"
          queue: normal
          account: my-lab

    Attributes:
        kind: ``"slurm"`` or ``"pbs"``.
        jobs: Number of batch jobs.
        options: Keyword arguments of the ``dask_jobqueue`` class.
        path: The file it was read from, if any.
    """

    kind: Literal["slurm", "pbs"]
    jobs: int
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_mapping(
        cls, doc: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None
    ) -> ClusterSpec:
        """Check and read a spec (the YAML document as a mapping).

        Raises:
            DistributedError: Unknown cluster kind or keys, or a bad number of jobs.
        """
        unknown = sorted(set(doc) - {"cluster", "jobs", "options"})
        if unknown:
            raise DistributedError(
                f"unknown keys {unknown} in a cluster spec (use cluster, jobs, options)",
                path=path,
            )
        kind = doc.get("cluster")
        if kind not in CLUSTER_KINDS:
            raise DistributedError(
                f"cluster must be one of {sorted(CLUSTER_KINDS)}, got {kind!r}", path=path
            )
        jobs = doc.get("jobs", 1)
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise DistributedError(f"jobs must be a positive integer, got {jobs!r}", path=path)
        options = doc.get("options") or {}
        if not isinstance(options, Mapping):
            raise DistributedError(
                f"options must be a mapping of {CLUSTER_KINDS[kind]} arguments", path=path
            )
        return cls(kind, jobs, dict(options), None if path is None else Path(path))

    def create(self) -> Any:
        """Start the ``dask_jobqueue`` cluster (its scheduler runs in this process).

        Jobs are submitted when the cluster is scaled (:func:`run_tasks` does it).

        Raises:
            MissingDependencyError: ``dask-jobqueue`` is not installed.
            DistributedError: The class refused the options (the message says why).
        """
        jobqueue = _import("dask_jobqueue")
        cluster_class = getattr(jobqueue, CLUSTER_KINDS[self.kind])
        try:
            return cluster_class(**self.options)
        except (TypeError, ValueError) as exc:
            raise DistributedError(
                f"{CLUSTER_KINDS[self.kind]} refused the options: {exc}", path=self.path
            ) from exc


def load_cluster_spec(path: str | os.PathLike[str]) -> ClusterSpec:
    """Read a cluster spec YAML file (see :class:`ClusterSpec`).

    Raises:
        DistributedError: The file is unreadable, not YAML, or not a valid spec.
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DistributedError(f"cannot read: {exc.strerror or exc}", path=path) from None
    except yaml.YAMLError as exc:
        raise DistributedError(f"not YAML: {exc}", path=path) from None
    if not isinstance(doc, Mapping):
        raise DistributedError("a cluster spec is a mapping (cluster, jobs, options)", path=path)
    return ClusterSpec.from_mapping(doc, path=path)


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"running on a cluster needs {module.replace('_', '-')} "
            f'(pip install "{DASK_EXTRA}"): {exc}'
        ) from exc


@contextlib.contextmanager
def _client(
    scheduler: str | None, cluster_spec: str | os.PathLike[str] | ClusterSpec | None
) -> Iterator[Client]:
    """A ``distributed.Client`` for the run; closes what it started, and only that."""
    distributed = _import("distributed")
    with contextlib.ExitStack() as stack:
        if cluster_spec is not None:
            spec = (
                cluster_spec
                if isinstance(cluster_spec, ClusterSpec)
                else load_cluster_spec(cluster_spec)
            )
            cluster = stack.enter_context(spec.create())
            cluster.scale(jobs=spec.jobs)
            target: Any = cluster
        elif scheduler is not None and (local := _LOCAL.fullmatch(scheduler)):
            workers = int(local[1])
            if workers < 1:
                raise DistributedError(f"local:N needs N >= 1, got {scheduler!r}")
            # One single-threaded process per worker: conversions and builds hold the GIL
            # in places, and each task already uses its own threads for I/O.
            target = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1"
                )
            )
        elif scheduler is not None:
            target = scheduler
        else:
            raise DistributedError("a Dask run needs a scheduler address or a cluster spec")
        try:
            client = stack.enter_context(distributed.Client(target))
        except OSError as exc:
            raise DistributedError(f"cannot reach the Dask scheduler at {target!r}: {exc}") from exc
        yield client


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    scheduler: str | None = None,
    cluster_spec: str | os.PathLike[str] | ClusterSpec | None = None,
    retries: int = 1,
    name: str = "brrrr",
    on_result: Callable[[int, R], None] | None = None,
) -> list[R]:
    """Run ``fn(task)`` for every task, on a Dask cluster or in this process.

    Args:
        fn: A function the workers can import (module level), whose outputs are
            written atomically under names fixed by the task, so that running a task
            again (its worker died after writing) finds or rewrites the same files.
        tasks: Its arguments, one per task (pickled to the workers: keep them small).
        scheduler: ``"tcp://host:8786"`` (an existing ``distributed`` scheduler),
            ``"local:N"`` (a ``LocalCluster`` of N single-threaded worker processes,
            closed at the end), or None.
        cluster_spec: A :class:`ClusterSpec` or its YAML file: a SLURM or PBS cluster
            started for this run and closed at the end.
        retries: How many times a task that *raised* is tried again (for passing
            I/O failures). A task whose worker died is rerun by the scheduler whatever
            this says, up to ``distributed.scheduler.allowed-failures`` (3) deaths.
        name: Prefix of the task keys, as the dashboard shows them.
        on_result: Called as ``on_result(position, result)`` in this process as each
            task finishes (in completion order): progress bars, hooks.

    With neither ``scheduler`` nor ``cluster_spec``, the tasks run here, in order.

    Returns:
        The results, in the order of ``tasks``.

    Raises:
        MissingDependencyError: A cluster is asked for and ``dask[distributed]`` (or
            ``dask-jobqueue`` for a spec) is not installed.
        DistributedError: The scheduler cannot be reached, or a task killed too many
            workers (it names the task).
        Exception: The first exception a task raised (after its retries), as raised;
            the tasks not started yet are cancelled.
    """
    if scheduler is None and cluster_spec is None:
        results = []
        for position, task in enumerate(tasks):
            results.append(fn(task))
            if on_result is not None:
                on_result(position, results[-1])
        return results
    distributed = _import("distributed")
    token = uuid.uuid4().hex[:8]
    with _client(scheduler, cluster_spec) as client:
        keys = [f"{name}-{position}-{token}" for position in range(len(tasks))]
        futures = client.map(fn, tasks, key=keys, retries=retries, pure=False)
        position_of = {future.key: position for position, future in enumerate(futures)}
        results_by_position: dict[int, R] = {}
        try:
            for future in distributed.as_completed(futures):
                position = position_of[future.key]
                try:
                    result = future.result()
                except distributed.KilledWorker as exc:
                    raise DistributedError(
                        f"task {position} of {len(tasks)} ({future.key}) killed every worker "
                        f"that ran it ({exc}); it may need more memory than a worker has"
                    ) from exc
                results_by_position[position] = result
                if on_result is not None:
                    on_result(position, result)
        finally:
            client.cancel([f for f in futures if not f.done()])
    return [results_by_position[position] for position in range(len(tasks))]
