"""brrrr.core.distributed: balanced shares, share manifests, cluster specs, and run_tasks on a
real two-process LocalCluster on 127.0.0.1, including a worker killed as its task finishes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brrrr.core.distributed import (
    ClusterSpec,
    load_cluster_spec,
    merge_records,
    read_shares,
    remove_shares,
    run_mode,
    run_tasks,
    shard_range,
    shard_slice,
    share_path,
    write_share,
)
from brrrr.core.errors import BrrrrError, DistributedError, FileReadError


# -- shares --------------------------------------------------------------------------------
@given(st.integers(0, 500), st.integers(1, 40))
def test_shares_are_contiguous_balanced_and_cover_everything(count: int, num_shards: int) -> None:
    spans = [shard_range(count, shard_index=i, num_shards=num_shards) for i in range(num_shards)]
    assert [i for span in spans for i in span] == list(range(count))
    sizes = [len(span) for span in spans]
    assert max(sizes) - min(sizes) <= 1
    assert spans == [
        shard_range(count, shard_index=i, num_shards=num_shards) for i in range(num_shards)
    ]


def test_shard_slice_and_bad_arguments() -> None:
    assert shard_slice(range(7), shard_index=2, num_shards=3) == [4, 5, 6]
    assert shard_slice([], shard_index=0, num_shards=4) == []
    for index, total in [(3, 3), (-1, 3), (0, 0), (True, 2)]:
        with pytest.raises(DistributedError, match=r"shard_index|num_shards"):
            shard_range(5, shard_index=index, num_shards=total)


def test_run_mode() -> None:
    assert run_mode() == "here"
    assert run_mode(shard_index=1, num_shards=4) == "share"
    assert run_mode(scheduler="local:2") == "dask"
    assert run_mode(cluster_spec="slurm.yaml") == "dask"
    with pytest.raises(DistributedError, match="both"):
        run_mode(shard_index=1)
    with pytest.raises(DistributedError, match="one or the other"):
        run_mode(shard_index=0, num_shards=2, scheduler="local:2")
    with pytest.raises(DistributedError, match="not both"):
        run_mode(scheduler="tcp://127.0.0.1:8786", cluster_spec="slurm.yaml")
    with pytest.raises(DistributedError, match=r"\[0, 3\]"):
        run_mode(shard_index=4, num_shards=4)


def test_share_manifests_are_read_once_all_are_written_then_removed(tmp_path: Path) -> None:
    assert read_shares(tmp_path, stem="manifest", missing="none") is None
    with pytest.raises(DistributedError, match="no share manifest"):
        read_shares(tmp_path, stem="manifest")
    write_share(tmp_path, {"i": 0}, stem="manifest", shard_index=0, num_shards=3)
    write_share(tmp_path, {"i": 2}, stem="manifest", shard_index=2, num_shards=3)
    assert read_shares(tmp_path, stem="manifest", num_shards=3, missing="none") is None
    with pytest.raises(DistributedError, match=r"1 of 3 shares .*manifest\.share-00001-of-00003"):
        read_shares(tmp_path, stem="manifest")
    path = write_share(tmp_path, {"i": 1}, stem="manifest", shard_index=1, num_shards=3)
    assert path == share_path(tmp_path, stem="manifest", shard_index=1, num_shards=3)
    assert path.name == "manifest.share-00001-of-00003.json"
    assert read_shares(tmp_path, stem="manifest") == [{"i": 0}, {"i": 1}, {"i": 2}]
    write_share(tmp_path, {}, stem="manifest", shard_index=0, num_shards=2)
    with pytest.raises(DistributedError, match=r"\[2, 3\] shares are mixed"):
        read_shares(tmp_path, stem="manifest")
    assert read_shares(tmp_path, stem="manifest", num_shards=3) is not None
    assert remove_shares(tmp_path, stem="manifest") == 4
    assert list(tmp_path.iterdir()) == []


def test_merge_records_refuses_conflicts(tmp_path: Path) -> None:
    merged = merge_records([{"a": 1, "b": 2}, {"b": 2, "c": 3}], what="entries")
    assert list(merged.items()) == [("a", 1), ("b", 2), ("c", 3)]
    with pytest.raises(DistributedError, match=r"different entries for 'b'") as info:
        merge_records([{"b": 2}, {"b": 3}], what="entries", path=tmp_path)
    assert info.value.path == str(tmp_path)


# -- cluster specs ---------------------------------------------------------------------------
def test_cluster_spec_builds_the_slurm_job_it_describes(tmp_path: Path) -> None:
    pytest.importorskip("dask_jobqueue")
    spec_file = tmp_path / "slurm.yaml"
    spec_file.write_text(
        "cluster: slurm\n"
        "jobs: 4\n"
        "options:\n"
        "  cores: 8\n"
        "  processes: 8\n"
        "  memory: 32GB\n"
        "  walltime: '02:00:00'\n"
        "  queue: normal\n"
        "  account: my-lab\n"
        "  scheduler_options: {host: 127.0.0.1, dashboard_address: ':0'}\n"
    )
    spec = load_cluster_spec(spec_file)
    assert (spec.kind, spec.jobs, spec.options["memory"]) == ("slurm", 4, "32GB")
    with spec.create() as cluster:  # starts the scheduler only: no job is submitted
        script = cluster.job_script()
    for line in ("#SBATCH -p normal", "#SBATCH -A my-lab", "#SBATCH -t 02:00:00", "#SBATCH -n 1"):
        assert line in script
    assert "--nworkers 8" in script


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cluster: sge\n", "cluster must be one of"),
        ("cluster: slurm\njobs: 0\n", "jobs must be a positive"),
        ("cluster: slurm\nworkers: 3\n", "unknown keys"),
        ("- a list\n", "a mapping"),
        ("cluster: [unclosed\n", "not YAML"),
    ],
)
def test_bad_cluster_specs_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(DistributedError, match=match) as info:
        load_cluster_spec(path)
    assert info.value.path == str(path)


def test_cluster_spec_refused_by_the_class_is_named(tmp_path: Path) -> None:
    pytest.importorskip("dask_jobqueue")
    spec = ClusterSpec.from_mapping({"cluster": "pbs", "options": {"no_such": 1}}, path="pbs.yaml")
    with pytest.raises(DistributedError, match="PBSCluster refused the options"):
        spec.create()


# -- run_tasks ---------------------------------------------------------------------------------
def test_without_a_scheduler_tasks_run_here_in_order() -> None:
    seen: list[tuple[int, int]] = []
    assert run_tasks(abs, [-3, 1, -2], on_result=lambda i, r: seen.append((i, r))) == [3, 1, 2]
    assert seen == [(0, 3), (1, 1), (2, 2)]


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    from brrrr.core.testing import local_cluster

    with local_cluster() as running:
        yield running


@pytest.mark.slow
def test_tasks_run_on_two_worker_processes_and_come_back_in_order(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from brrrr.core.testing import square_task

    seen: list[int] = []
    tasks = [(str(tmp_path), n) for n in range(12)]
    results = run_tasks(
        square_task,
        tasks,
        scheduler=cluster.scheduler_address,
        name="square",
        on_result=lambda i, r: seen.append(i),
    )
    assert [r["square"] for r in results] == [n * n for n in range(12)]
    assert sorted(seen) == list(range(12))
    assert len({r["pid"] for r in results}) == 2  # both worker processes took tasks
    assert {r["pid"] for r in results}.isdisjoint({os.getpid()})


@pytest.mark.slow
def test_a_worker_killed_as_its_task_finishes_loses_nothing_and_writes_nothing_twice(
    cluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from distributed import Client

    from brrrr.core.testing import kill_once_plugin, snapshot_files, square_task

    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "killed.json"
    with Client(cluster.scheduler_address) as client:
        client.register_plugin(kill_once_plugin(marker, key_prefix="square", watch=out))
        try:
            tasks = [(str(out), n) for n in range(8)]
            results = run_tasks(
                square_task, tasks, scheduler=cluster.scheduler_address, name="square"
            )
        finally:
            client.unregister_worker_plugin("brrrr-kill-once")
    killed = json.loads(marker.read_text())
    assert killed["key"].startswith("square-")
    assert [r["square"] for r in results] == [n * n for n in range(8)]
    # The killed worker's output was written before it died; the rerun found it.
    assert sorted((out / "writes.log").read_text().split()) == [str(n) for n in range(8)]
    after = snapshot_files(out)
    finished = {n: s for n, s in killed["files"].items() if n.startswith("out-")}
    assert finished, "the worker died before writing its output"
    for name, stat in finished.items():  # not writes.log, nor the other worker's temp files
        assert after[name] == stat, f"{name} was rewritten"


@pytest.mark.slow
def test_a_task_error_comes_back_as_raised(cluster) -> None:  # type: ignore[no-untyped-def]
    from brrrr.core.testing import fail_task

    paths = [f"input-{n}.nii.gz" for n in range(3)]
    with pytest.raises(FileReadError, match=r"input-\d\.nii\.gz: cannot read") as info:
        run_tasks(fail_task, paths, scheduler=cluster.scheduler_address, retries=0)
    assert isinstance(info.value, BrrrrError)


@pytest.mark.slow
def test_a_task_that_kills_every_worker_is_named_on_a_local_n_cluster() -> None:
    pytest.importorskip("distributed")
    import dask

    from brrrr.core.testing import die_task

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        pytest.raises(DistributedError, match=r"task 0 of 1 \(die-0-\w+\) killed every worker"),
    ):
        run_tasks(die_task, [1], scheduler="local:1", name="die")


def test_a_cluster_without_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from brrrr.core.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"brrrr-core\[dask\]"):
        run_tasks(abs, [1], scheduler="local:1")
