"""to_hf beyond one machine: shares run one by one (as SLURM array tasks) and merged, and
Dask tasks on a real two-process LocalCluster (127.0.0.1), one of whose workers is killed
as its shard is written; every output is byte for byte the single-machine run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brrrr.core.cli import build_app
from brrrr.core.errors import DistributedError
from brrrr.ingest.errors import ManifestError
from brrrr.ingest.manifest import Manifest
from brrrr.ingest.shards import to_hf

OPTIONS = {"shard_bytes": "40KB", "row_group_bytes": "10KB", "progress": False}


def _outputs(out: Path) -> dict[str, bytes]:
    """Every file of an output, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _assert_same_output(out: Path, reference: Path) -> None:
    ours, theirs = _outputs(out), _outputs(reference)
    assert sorted(ours) == sorted(theirs)  # no share manifest, no .part file left
    for name in theirs:
        assert ours[name] == theirs[name], f"{name} differs from the single-machine run"


def test_shares_run_one_by_one_merge_into_the_single_machine_output(
    bids_root: Path, converted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    total = Manifest.load(converted).num_shards
    written: list[int] = []
    for index in range(3):
        result = to_hf(bids_root, out, shard_index=index, num_shards=3, **OPTIONS)  # type: ignore[arg-type]
        written += result.written
        if index < 2:
            assert not result.merged
            assert not (out / "manifest.json").exists()
            share = out / f"manifest.share-{index:05d}-of-00003.json"
            assert json.loads(share.read_text())["complete"]
    assert result.merged  # the last share merged
    assert result.manifest.complete
    assert sorted(written) == list(range(total))
    _assert_same_output(out, converted)


def test_a_share_that_stopped_resumes_from_its_share_manifest(
    bids_root: Path, converted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    class Stop(Exception):
        pass

    def stop_after_first(manifest: Manifest, record: object, reused: bool) -> None:
        raise Stop

    with pytest.raises(Stop):
        to_hf(bids_root, out, shard_index=0, num_shards=2, on_shard=stop_after_first, **OPTIONS)  # type: ignore[arg-type]
    share = Manifest.from_json((out / "manifest.share-00000-of-00002.json").read_text())
    assert not share.complete
    assert sorted(share.shards) == [0]
    first = (out / share.shards[0].path).stat()
    again = to_hf(bids_root, out, shard_index=0, num_shards=2, **OPTIONS)  # type: ignore[arg-type]
    assert again.reused == [0]
    assert (out / share.shards[0].path).stat().st_ino == first.st_ino
    to_hf(bids_root, out, shard_index=1, num_shards=2, **OPTIONS)  # type: ignore[arg-type]
    _assert_same_output(out, converted)


def test_cli_shares_and_merge_name_what_is_missing(
    bids_root: Path, converted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        common = ["--shard-size", "40KB", "--row-group-size", "10KB"]
        return runner.invoke(
            build_app(), ["bids", "to-hf", str(bids_root), str(out), *common, *args]
        )

    for index in (2, 0):
        done = run("--shard-index", str(index), "--num-shards", "3")
        assert done.exit_code == 0, done.output
        assert f"share {index} of 3" in done.output
    merged = run("--merge")
    assert isinstance(merged.exception, DistributedError)
    assert "1 of 3 shares have not finished (manifest.share-00001-of-00003.json)" in str(
        merged.exception
    )
    bad = run("--shard-index", "1")
    assert isinstance(bad.exception, DistributedError)
    assert "both --shard-index and --num-shards" in str(bad.exception)
    last = run("--shard-index", "1", "--num-shards", "3")
    assert last.exit_code == 0, last.output
    assert "28 rows in" in last.output
    _assert_same_output(out, converted)


def test_merge_refuses_a_share_of_other_options(bids_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    to_hf(bids_root, out, shard_index=0, num_shards=2, suffixes=["T1w"], **OPTIONS)  # type: ignore[arg-type]
    # The last share merges, and finds that share 0 converted something else.
    with pytest.raises(
        ManifestError, match=r"share-00000-of-00002\.json: this share was run with other"
    ):
        to_hf(bids_root, out, shard_index=1, num_shards=2, suffixes=["FLAIR"], **OPTIONS)  # type: ignore[arg-type]
    assert not (out / "manifest.json").exists()


# -- Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    from brrrr.core.testing import local_cluster

    with local_cluster() as running:
        yield running


@pytest.mark.slow
def test_dask_tasks_write_the_single_machine_output(
    cluster,
    bids_root: Path,
    converted: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "out"
    seen: list[int] = []
    result = to_hf(
        bids_root,
        out,
        scheduler=cluster.scheduler_address,
        on_shard=lambda manifest, record, reused: seen.append(record.index),
        **OPTIONS,  # type: ignore[arg-type]
    )
    total = Manifest.load(converted).num_shards
    assert result.written == list(range(total))
    assert seen == list(range(total))  # in shard order, as on one machine
    _assert_same_output(out, converted)
    again = to_hf(bids_root, out, scheduler=cluster.scheduler_address, **OPTIONS)  # type: ignore[arg-type]
    assert again.reused == list(range(total))
    assert again.written == []


@pytest.mark.slow
def test_a_worker_killed_as_it_finishes_a_shard_changes_nothing(
    cluster,
    bids_root: Path,
    converted: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from distributed import Client

    from brrrr.core.testing import kill_once_plugin, snapshot_files

    out = tmp_path / "out"
    marker = tmp_path / "killed.json"
    with Client(cluster.scheduler_address) as client:
        client.register_plugin(kill_once_plugin(marker, key_prefix="to-hf", watch=out))
        try:
            result = to_hf(bids_root, out, scheduler=cluster.scheduler_address, **OPTIONS)  # type: ignore[arg-type]
        finally:
            client.unregister_worker_plugin("brrrr-kill-once")
    killed = json.loads(marker.read_text())
    shards_then = {k: v for k, v in killed["files"].items() if k.startswith("data/train-")}
    assert shards_then, "the worker died before writing its shard"
    after = snapshot_files(out)
    for name, stat in shards_then.items():
        assert after[name] == stat, f"{name} was written twice"
    # The rerun of the killed task found its shard and share manifest: not written again.
    total = Manifest.load(converted).num_shards
    assert sorted(result.written + result.reused) == list(range(total))
    assert len(result.reused) >= 1
    _assert_same_output(out, converted)
