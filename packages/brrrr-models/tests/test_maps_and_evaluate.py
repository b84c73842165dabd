"""``brrrr train maps`` (a run's kernel maps ahead of training, whole or in shares) and
``brrrr train evaluate`` (the atlas metrics of a finished run on its held-out split)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from brrrr.core.cli import build_app
from brrrr.models.errors import ModelConfigError
from brrrr.models.training import (
    build_datamodule,
    build_map_cache,
    evaluate_run,
    load_run_config,
    map_cache_dir,
)

RUNNER = CliRunner()
MODEL = {
    "channels": [8, 8],
    "dilations": [1],
    "latent_dim": 4,
    "bottleneck_channels": 8,
    "hidden_dim": 8,
    "decoder_output": "mean_logvar",
}


def _run_file(tmp_path: Path, source: Path, *, test_fraction: float = 0.25) -> Path:
    run = {
        "model": MODEL,
        "data": {
            "source": str(source),
            "downsample": 8,
            "kernel": {"name": "gaussian", "fwhm_mm": 25},
            "cache_dir": str(tmp_path / "maps"),
            "batch_size": 4,
            "val_fraction": 0.25,
            "test_fraction": test_fraction,
            "metadata": ["year", "n_peaks"],
        },
        "trainer": {
            "max_steps": 2,
            "accelerator": "cpu",
            "checkpoint_every_n_steps": 2,
            "progress_bar": False,
            "tensorboard": False,
        },
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    return path


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(build_app(), list(args))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def _failure(*args: str) -> str:
    result = RUNNER.invoke(build_app(), list(args))
    assert result.exit_code != 0
    return f"{result.output}{result.exception}"


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_maps_ahead_of_training_are_used_as_they_are(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    run = _run_file(tmp_path, peak_csv(tmp_path / "peaks.csv"))
    _invoke("train", "maps", "--config", str(run), "--json", str(tmp_path / "maps.json"))
    summary = json.loads((tmp_path / "maps.json").read_text())
    assert summary["maps"] == 16  # 8 studies x 2 analyses
    assert summary["cache_dir"] == str(tmp_path / "maps")
    before = _files(tmp_path / "maps")
    assert "manifest.json" in before

    _invoke("train", "vae", "--config", str(run))
    # Training found every map: the cache is untouched (DVC sees its dependency unchanged).
    assert _files(tmp_path / "maps") == before
    assert not (tmp_path / "run" / "map-cache").exists()


def _with_cache_dir(run: Path, folder: Path) -> Path:
    data = yaml.safe_load(run.read_text())
    data["data"]["cache_dir"] = str(folder)
    run.write_text(yaml.safe_dump(data))
    return run


def test_maps_in_shares_equal_one_build(tmp_path: Path, peak_csv: Callable[[Path], Path]) -> None:
    source = peak_csv(tmp_path / "peaks.csv")
    whole = build_map_cache(load_run_config(_run_file(tmp_path, source)))
    assert whole is not None

    shared_dir = tmp_path / "shared"
    run = _with_cache_dir(_run_file(tmp_path, source), shared_dir)
    args = ["train", "maps", "--config", str(run), "--num-shards", "2", "--shard-index"]
    outputs = [_invoke(*args, str(index)) for index in (0, 1)]
    assert "share 0 of 2 done" in outputs[0]  # the first share waits for the other
    assert "16 maps in" in outputs[1]  # the last one merges
    assert (shared_dir / "manifest.json").exists()
    assert not list(shared_dir.glob("manifest.share-*"))
    shares = build_map_cache(load_run_config(run))  # reads what the shares wrote
    assert shares is not None
    assert len(shares) == len(whole) == 16
    for a, b in zip(whole, shares, strict=True):
        np.testing.assert_array_equal(a, b)

    bad = _failure("train", "maps", "--config", str(run), "--shard-index", "2", "--num-shards", "2")
    assert "shard_index" in bad


def test_merge_joins_shares_that_could_not_see_each_other(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    # As on NFS: each share ran without seeing the other's files, so neither merged.
    source = peak_csv(tmp_path / "peaks.csv")
    folders = [tmp_path / "node-0", tmp_path / "node-1"]
    for index, folder in enumerate(folders):
        run = _with_cache_dir(_run_file(tmp_path, source), folder)
        out = _invoke(
            "train", "maps", "--config", str(run),
            "--shard-index", str(index), "--num-shards", "2",
        )  # fmt: skip
        assert f"share {index} of 2 done" in out
    run = _with_cache_dir(_run_file(tmp_path, source), folders[0])
    missing = _failure("train", "maps", "--config", str(run), "--merge", "--num-shards", "2")
    assert "1 of 2 shares have not finished (manifest.share-00001-of-00002.json)" in missing
    for path in folders[1].rglob("*"):
        if path.is_file():
            target = folders[0] / path.relative_to(folders[1])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    merged = _invoke(
        "train", "maps", "--config", str(run), "--merge", "--num-shards", "2",
        "--json", str(tmp_path / "maps.json"),
    )  # fmt: skip
    assert "16 maps in" in merged
    assert json.loads((tmp_path / "maps.json").read_text())["maps"] == 16
    assert not list(folders[0].glob("manifest.share-*"))
    whole = build_map_cache(load_run_config(_with_cache_dir(run, tmp_path / "whole")))
    joined = build_map_cache(load_run_config(_with_cache_dir(run, folders[0])))
    assert whole is not None
    assert joined is not None
    for a, b in zip(whole, joined, strict=True):
        np.testing.assert_array_equal(a, b)


def test_evaluate_scores_the_test_split_against_the_mean_map(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    run = _run_file(tmp_path, peak_csv(tmp_path / "peaks.csv"))
    _invoke("train", "vae", "--config", str(run))
    out = _invoke(
        "train", "evaluate", str(tmp_path / "run"),
        "--json", str(tmp_path / "atlas.json"), "--csv", str(tmp_path / "atlas.csv"),
    )  # fmt: skip
    assert "test maps: r =" in out
    metrics = json.loads((tmp_path / "atlas.json").read_text())
    assert metrics["kind"] == "vae"
    assert metrics["n_maps"] == metrics["splits"]["test"] > 0
    assert metrics["grid"] == [12, 14, 12]
    assert np.isfinite(metrics["reconstruction"]["mse"])
    assert 0.0 <= metrics["versus_baseline"]["share_of_maps_lower_mse"] <= 1.0
    assert "ece_aleatoric" in metrics
    with (tmp_path / "atlas.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics["n_maps"]
    assert np.mean([float(r["mse"]) for r in rows]) == pytest.approx(
        metrics["reconstruction"]["mse"]
    )

    # The baseline, by hand: the mean training map against each test map, over the mask.
    config = load_run_config(run)
    datamodule = build_datamodule("vae", config)
    mask = datamodule.template.mask
    train, test = datamodule.dataset("train"), datamodule.dataset("test")
    mean_map = np.mean([train[i]["x"].numpy()[0] for i in range(len(train))], axis=0)
    by_hand = [
        float(np.mean((mean_map[mask] - test[i]["x"].numpy()[0][mask]) ** 2))
        for i in range(len(test))
    ]
    assert sorted(by_hand) == pytest.approx(sorted(float(r["baseline_mse"]) for r in rows))
    assert {r["study"] for r in rows}.isdisjoint(
        {str(datamodule.groups[i]) for i in datamodule.splits["train"]}
    )


def test_evaluate_refuses_what_it_cannot_score(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    missing = _failure("train", "evaluate", str(tmp_path / "nowhere"))
    assert "run.json" in missing
    assert "not a training run folder" in missing

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    assert "unreadable run file" in _failure("train", "evaluate", str(broken))

    assert "use test or val" in _failure("train", "evaluate", str(broken), "--split", "train")

    run = _run_file(tmp_path, peak_csv(tmp_path / "peaks.csv"), test_fraction=0.0)
    _invoke("train", "vae", "--config", str(run))
    with pytest.raises(ModelConfigError, match="holds no maps"):
        evaluate_run(tmp_path / "run")
    assert map_cache_dir(load_run_config(run)) == tmp_path / "maps"


@pytest.mark.slow
def test_maps_on_a_local_dask_cluster_equal_one_build(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    pytest.importorskip("distributed")
    from brrrr.core.testing import local_cluster

    source = peak_csv(tmp_path / "peaks.csv")
    whole = build_map_cache(load_run_config(_run_file(tmp_path, source)))
    assert whole is not None
    run = _with_cache_dir(_run_file(tmp_path, source), tmp_path / "dask-maps")
    with local_cluster() as cluster:
        _invoke("train", "maps", "--config", str(run), "--scheduler", cluster.scheduler_address)
    on_dask = build_map_cache(load_run_config(run))
    assert on_dask is not None
    for a, b in zip(whole, on_dask, strict=True):
        np.testing.assert_array_equal(a, b)
