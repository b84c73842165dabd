"""MapCache beyond one machine, on NiMARE's shipped studyset: shares computed one by one (as
SLURM array tasks) and merged, and Dask tasks on a real two-process LocalCluster (127.0.0.1),
one of whose workers is killed as it finishes a shard; every file is the single-machine one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brrrr.core.errors import DistributedError
from brrrr.preprocess.kernels import ALE, MapCache, PeakTable, Template, peaks_to_maps

nimare = pytest.importorskip("nimare")

SHARD_SIZE = 4  # 13 studies to compute: 4 shards, the last of one map
KERNEL = ALE(fwhm_if_unknown_mm=10.0)


@pytest.fixture(scope="module")
def peaks() -> PeakTable:
    from nimare.studyset import Studyset
    from nimare.utils import get_resource_path

    full = Studyset(Path(get_resource_path()) / "nback_vs_flanker_studyset_2026-07")
    # The two studies with a sample size (their own ALE width) among eleven without.
    sized = [i for i, n in zip(full.ids, full.sample_sizes(), strict=True) if np.isfinite(n)]
    ids = sorted(set(sorted(full.ids)[::70][:11]) | set(sized))
    assert len(ids) == 13
    return PeakTable.from_nimare(full.slice(ids))


@pytest.fixture(scope="module")
def brain() -> Template:
    return Template.mni152(mask="brain")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def reference(peaks: PeakTable, brain: Template, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("reference") / "cache"
    maps = MapCache(root).build(
        peaks, kernel=KERNEL, template=brain, shard_size=SHARD_SIZE, progress=False
    )
    files = _files(root)
    assert len([n for n in files if n.startswith("shards/")]) == 4
    return files, maps.stack()


def _assert_same_cache(root: Path, reference) -> None:  # type: ignore[no-untyped-def]
    files, _ = reference
    ours = _files(root)
    assert sorted(ours) == sorted(files)  # no share manifest left
    for name, data in files.items():
        assert ours[name] == data, f"{name} differs from the single-machine build"


def test_shares_computed_one_by_one_merge_into_the_single_machine_cache(
    peaks: PeakTable,
    brain: Template,
    reference,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    cache = MapCache(tmp_path / "cache")
    for index in range(3):
        maps = cache.build_share(
            peaks,
            shard_index=index,
            num_shards=3,
            kernel=KERNEL,
            template=brain,
            shard_size=SHARD_SIZE,
            progress=False,
        )
        if index < 2:
            assert maps is None
            assert not cache.manifest_path.exists()
            share = cache.root / f"manifest.share-{index:05d}-of-00003.json"
            assert json.loads(share.read_text())["complete"]
    assert maps is not None
    np.testing.assert_array_equal(maps.stack(), reference[1])
    np.testing.assert_array_equal(
        maps.stack(), peaks_to_maps(peaks, kernel=KERNEL, template=brain).numpy()
    )
    _assert_same_cache(cache.root, reference)


def test_merge_names_the_share_that_is_missing(
    peaks: PeakTable,
    brain: Template,
    reference,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    cache = MapCache(tmp_path / "cache")
    options = {"kernel": KERNEL, "template": brain, "shard_size": SHARD_SIZE, "progress": False}
    for index in (0, 2):
        assert cache.build_share(peaks, shard_index=index, num_shards=3, **options) is None  # type: ignore[arg-type]
    with pytest.raises(DistributedError, match=r"manifest\.share-00001-of-00003\.json"):
        cache.merge_shares()
    cache.build_share(peaks, shard_index=1, num_shards=3, **options)  # type: ignore[arg-type]
    _assert_same_cache(cache.root, reference)
    # Nothing left to compute: every share writes an empty share manifest and merges.
    assert cache.build_share(peaks, shard_index=0, num_shards=1, **options) is not None  # type: ignore[arg-type]
    _assert_same_cache(cache.root, reference)


# -- Dask ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    pytest.importorskip("distributed")
    from brrrr.core.testing import local_cluster

    with local_cluster() as running:
        yield running


@pytest.mark.slow
def test_dask_tasks_write_the_single_machine_cache(
    cluster,
    peaks: PeakTable,
    brain: Template,
    reference,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    cache = MapCache(tmp_path / "cache")
    maps = cache.build(
        peaks,
        kernel=KERNEL,
        template=brain,
        shard_size=SHARD_SIZE,
        progress=False,
        scheduler=cluster.scheduler_address,
    )
    np.testing.assert_array_equal(maps.stack(), reference[1])
    _assert_same_cache(cache.root, reference)


@pytest.mark.slow
def test_a_worker_killed_as_it_finishes_a_shard_changes_nothing(
    cluster,
    peaks: PeakTable,
    brain: Template,
    reference,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from distributed import Client

    from brrrr.core.testing import kill_once_plugin, snapshot_files

    cache = MapCache(tmp_path / "cache")
    (cache.root / "shards").mkdir(parents=True)
    marker = tmp_path / "killed.json"
    with Client(cluster.scheduler_address) as client:
        client.register_plugin(
            kill_once_plugin(marker, key_prefix="map-cache", watch=cache.root / "shards")
        )
        try:
            maps = cache.build(
                peaks,
                kernel=KERNEL,
                template=brain,
                shard_size=SHARD_SIZE,
                progress=False,
                scheduler=cluster.scheduler_address,
            )
        finally:
            client.unregister_worker_plugin("brrrr-kill-once")
    killed = json.loads(marker.read_text())
    shards_then = {k: v for k, v in killed["files"].items() if not k.startswith(".")}
    assert shards_then, "the worker died before writing its shard"
    after = snapshot_files(cache.root / "shards")
    for name, stat in shards_then.items():
        assert after[name] == stat, f"shards/{name} was written twice"
    np.testing.assert_array_equal(maps.stack(), reference[1])
    _assert_same_cache(cache.root, reference)
