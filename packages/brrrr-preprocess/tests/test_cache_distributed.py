"""CacheManager.build beyond one machine: shares built one by one (as SLURM array tasks) and
merged, and Dask tasks on a real two-process LocalCluster (127.0.0.1), one of whose workers is
killed as it finishes a batch; the manifest and every entry are the single-machine build's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brrrr.core import samples, save_volume
from brrrr.core.cli import build_app
from brrrr.core.errors import DistributedError
from brrrr.core.testing import write_dicom_series
from brrrr.preprocess.errors import CacheError
from brrrr.preprocess.neurovfm.cache import CacheManager
from brrrr.preprocess.neurovfm.metadata import DatasetMetadata
from brrrr.preprocess.neurovfm.settings import PrepareSettings

SHAPE = (16, 16, 8)
SPACING = (4.0, 4.0, 8.0)
MODES = {"s2": "ct", "s3/ct_series": "ct", "*": "mri"}


def make_dataset(root: Path) -> Path:
    """Three MRI and two CT images in four studies; s4/t1 is a byte copy of s1/t1."""
    raw = root / "raw"
    for study in ("s1", "s2", "s3", "s4"):
        (raw / study).mkdir(parents=True)
    save_volume(samples.phantom(shape=SHAPE, spacing=SPACING, seed=1), raw / "s1" / "t1.nii.gz")
    flair = samples.phantom(shape=SHAPE, spacing=SPACING, axcodes="LPS", seed=2)
    save_volume(flair, raw / "s1" / "flair.nii.gz")
    ct = samples.phantom(shape=SHAPE, spacing=SPACING, modality="ct", seed=3)
    save_volume(ct, raw / "s2" / "head_ct.nii.gz")
    ct2 = samples.phantom(shape=SHAPE, spacing=SPACING, modality="ct", seed=4)
    write_dicom_series(
        raw / "s3" / "ct_series", ct2.data, ct2.affine, modality="CT", rescale_intercept=-1024
    )
    shutil.copy2(raw / "s1" / "t1.nii.gz", raw / "s4" / "t1.nii.gz")
    DatasetMetadata.from_directory(root, MODES).save(root / "metadata.json")
    return root


def _cache_files(root: Path) -> dict[str, bytes]:
    folder = root / "cache"
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset, without a cache (tests build copies of it)."""
    return make_dataset(tmp_path_factory.mktemp("dataset") / "ds")


@pytest.fixture(scope="module")
def reference(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every file of a single-machine build's cache (manifest and entries)."""
    root = Path(shutil.copytree(dataset, tmp_path_factory.mktemp("reference") / "ds"))
    CacheManager(root).build(num_workers=0, progress="none")
    assert len(list((root / "cache" / "entries").iterdir())) == 4  # s4/t1 shares s1/t1's
    return _cache_files(root)


@pytest.fixture
def fresh(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "ds"))  # copy2: same mtimes, same stamps


def _assert_same_cache(root: Path, reference: dict[str, bytes]) -> None:
    ours = _cache_files(root)
    assert sorted(ours) == sorted(reference)  # no share manifest left
    for name, data in reference.items():
        assert ours[name] == data, f"cache/{name} differs from the single-machine build"


def test_shares_built_one_by_one_merge_into_the_single_machine_cache(
    fresh: Path, reference: dict[str, bytes]
) -> None:
    manifest = fresh / "cache" / "manifest.json"
    names = []
    for index in range(3):
        report = CacheManager(fresh).build(
            num_workers=0, progress="none", shard_index=index, num_shards=3
        )
        names += report.built + report.reused
        share = fresh / "cache" / f"manifest.share-{index:05d}-of-00003.json"
        if index < 2:
            assert not manifest.exists()
            assert json.loads(share.read_text())["complete"]
    assert sorted(names) == ["s1/flair", "s1/t1", "s2/head_ct", "s3/ct_series", "s4/t1"]
    _assert_same_cache(fresh, reference)
    stats = CacheManager(fresh).stats()
    assert (stats.cached, stats.entries) == (5, 4)


def test_cli_shares_and_merge_name_what_is_missing(
    fresh: Path, reference: dict[str, bytes]
) -> None:
    runner = CliRunner()
    modes = [arg for pattern, mode in MODES.items() for arg in ("--mode", f"{pattern}={mode}")]

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(build_app(), ["preprocess", "cache", str(fresh), *modes, *args])

    for index in (0, 2):
        done = run("--shard-index", str(index), "--num-shards", "3")
        assert done.exit_code == 0, done.output
        assert f"share {index} of 3: built" in done.output
    merged = run("--merge")
    assert isinstance(merged.exception, DistributedError)
    assert "manifest.share-00001-of-00003.json" in str(merged.exception)
    last = run("--shard-index", "1", "--num-shards", "3")
    assert last.exit_code == 0, last.output
    assert "cache holds 5/5 images" in last.output
    _assert_same_cache(fresh, reference)


def test_merge_refuses_a_share_of_other_settings(fresh: Path) -> None:
    CacheManager(fresh).build(num_workers=0, progress="none", shard_index=0, num_shards=2)
    other = CacheManager(fresh, settings=PrepareSettings(in_plane_mm=2.0))
    with pytest.raises(CacheError, match=r"share-00000-of-00002\.json: this share was built with"):
        other.build(num_workers=0, progress="none", shard_index=1, num_shards=2)
    assert not (fresh / "cache" / "manifest.json").exists()


# -- Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    from brrrr.core.testing import local_cluster

    with local_cluster() as running:
        yield running


@pytest.mark.slow
def test_dask_tasks_build_the_single_machine_cache(
    cluster,
    fresh: Path,
    reference: dict[str, bytes],  # type: ignore[no-untyped-def]
) -> None:
    report = CacheManager(fresh).build(
        scheduler=cluster.scheduler_address, batch_size=2, progress="none"
    )
    assert sorted(report.built + report.reused) == sorted(
        ["s1/flair", "s1/t1", "s2/head_ct", "s3/ct_series", "s4/t1"]
    )
    _assert_same_cache(fresh, reference)
    again = CacheManager(fresh).build(scheduler=cluster.scheduler_address, progress="none")
    assert len(again.reused) == 5


@pytest.mark.slow
def test_a_worker_killed_as_it_finishes_a_batch_changes_nothing(
    cluster,
    fresh: Path,
    tmp_path: Path,
    reference: dict[str, bytes],  # type: ignore[no-untyped-def]
) -> None:
    from distributed import Client

    from brrrr.core.testing import kill_once_plugin, snapshot_files

    marker = tmp_path / "killed.json"
    (fresh / "cache").mkdir()
    with Client(cluster.scheduler_address) as client:
        client.register_plugin(
            kill_once_plugin(marker, key_prefix="cache-build", watch=fresh / "cache")
        )
        try:
            report = CacheManager(fresh).build(
                scheduler=cluster.scheduler_address, batch_size=2, progress="none"
            )
        finally:
            client.unregister_worker_plugin("brrrr-kill-once")
    killed = json.loads(marker.read_text())
    entries_then = {  # finished files only, not the other worker's temporary ones
        k: v
        for k, v in killed["files"].items()
        if k.startswith("entries/") and not Path(k).name.startswith(".")
    }
    assert entries_then, "the worker died before writing its entries"
    after = snapshot_files(fresh / "cache")
    for name, stat in entries_then.items():
        assert after[name] == stat, f"cache/{name} was written twice"
    assert len(report.reused) >= 2  # the rerun found the killed task's entries
    _assert_same_cache(fresh, reference)
