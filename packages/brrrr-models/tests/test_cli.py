"""``brrrr train vae|hvae|pointvae --config`` and ``brrrr generate`` (latent, metadata, traversal)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from brrrr.core import load_volume
from brrrr.core.cli import build_app

RUNNER = CliRunner()
MODELS = {
    "vae": {
        "channels": [8, 8],
        "dilations": [1],
        "latent_dim": 4,
        "bottleneck_channels": 8,
        "hidden_dim": 8,
        "metadata_embedding_dim": 8,
        "decoder_output": "mean_logvar",
    },
    "hvae": {
        "channels": [8, 8, 8],
        "dilations": [1, 1],
        "bottom_stage": 1,
        "top_latent_dim": 4,
        "bottom_latent_channels": 2,
        "bottleneck_channels": 8,
        "metadata_embedding_dim": 8,
    },
    "pointvae": {
        "n_points": 12,
        "latent_dim": 4,
        "fourier_frequencies": 4,
        "centroids": [6, 3],
        "neighbors": [4, 3],
        "sa_channels": [8, 8],
        "global_channels": 8,
        "decoder_hidden": [16],
        "metadata_embedding_dim": 4,
    },
}


def _config(tmp_path: Path, kind: str, source: Path) -> Path:
    run = {
        "model": MODELS[kind],
        "module": {"beta": 0.01} if kind == "pointvae" else {},
        "data": {
            "source": str(source),
            "downsample": 8,
            "kernel": {"name": "gaussian", "fwhm_mm": 25},
            "batch_size": 4,
            "n_points": 12,
            "val_fraction": 0.25,
            "test_fraction": 0.0,
            "metadata": ["year", "n_peaks"],
        },
        "kl": {"mode": "linear", "warmup_steps": 2},
        "snapshots": {"n_snapshots": 2, "cycle_steps": 2} if kind == "vae" else {},
        "trainer": {
            "max_steps": 2,
            "checkpoint_every_n_steps": 2,
            "progress_bar": False,
            "tensorboard": False,
        },
        "output_dir": str(tmp_path / "unused"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    return path


def _invoke(*args: str) -> str:
    result = RUNNER.invoke(build_app(), list(args))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def _train(tmp_path: Path, kind: str, steps: int, peak_csv: Callable[[Path], Path]) -> Path:
    out = tmp_path / "run"
    _invoke(
        "train",
        kind,
        "--config",
        str(_config(tmp_path, kind, peak_csv(tmp_path / "peaks.csv"))),
        "--output-dir",
        str(out),
        "--max-steps",
        str(steps),
        "--seed",
        "1",
        "--accelerator",
        "cpu",
    )
    return out


def test_train_vae_resumes_and_generate_writes_nifti(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    out = _train(tmp_path, "vae", 4, peak_csv)
    model = out / "model"
    assert {"config.json", "model.safetensors", "template.json", "metadata.json"} <= {
        p.name for p in model.iterdir()
    }
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["snapshot-01", "snapshot-02"]
    assert (out / "logs" / "version_0" / "metrics.csv").exists()
    assert json.loads((out / "run.json").read_text())["trainer"]["seed"] == 1
    _invoke(
        "train",
        "vae",
        "--config",
        str(tmp_path / "run.yaml"),
        "--output-dir",
        str(out),
        "--max-steps",
        "6",
        "--accelerator",
        "cpu",
    )  # continues from last.ckpt
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6
    assert (out / "logs" / "version_1").exists()

    template = json.loads((model / "template.json").read_text())
    affine, shape = np.asarray(template["affine"]), tuple(template["shape"])
    assert template["name"].startswith("tpl-MNI152")  # a file name, not this machine's path
    assert shape == (12, 14, 12)  # the 2 mm MNI grid coarsened 8x
    gen = tmp_path / "gen"
    _invoke("generate", str(model), str(gen / "latent"), "--latent", "0.5,0,0,-1")
    _invoke(
        "generate",
        str(model),
        str(gen / "meta"),
        "--metadata",
        "n_peaks=10",
        "--metadata",
        "year=2003",
        "--n-samples",
        "2",
    )
    _invoke(
        "generate",
        str(model),
        str(gen / "trav"),
        "--traverse",
        "0",
        "--traverse",
        "3",
        "--values=-1,1",
    )
    files = {d: sorted(p.name for p in (gen / d).iterdir()) for d in ("latent", "meta", "trav")}
    assert files["latent"] == ["sample-000.nii.gz"]
    assert files["meta"] == ["sample-000.nii.gz", "sample-001.nii.gz"]
    assert len([f for f in files["trav"] if f.endswith(".nii.gz")]) == 4
    assert "traversal.png" in files["trav"]
    volume = load_volume(gen / "latent" / "sample-000.nii.gz")
    assert volume.shape == shape
    np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    a = load_volume(gen / "meta" / "sample-000.nii.gz").data
    b = load_volume(gen / "meta" / "sample-001.nii.gz").data
    assert not np.array_equal(a, b)  # two prior samples


@pytest.mark.parametrize("kind", ["hvae", "pointvae"])
def test_train_hvae_and_pointvae(
    tmp_path: Path, kind: str, peak_csv: Callable[[Path], Path]
) -> None:
    out = _train(tmp_path, kind, 2, peak_csv)
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == {"hvae": "HierarchicalVAE", "pointvae": "PointVAE"}[kind]
    assert config["metadata_dim"] == 2
    gen = tmp_path / "gen"
    _invoke("generate", str(out / "model"), str(gen), "--n-samples", "1")
    names = sorted(p.name for p in gen.iterdir())
    if kind == "pointvae":
        assert names == ["sample-000.csv", "sample-000.nii.gz"]
        points = np.loadtxt(gen / "sample-000.csv", delimiter=",", skiprows=1)
        assert points.shape == (12, 3)
        assert load_volume(gen / "sample-000.nii.gz").shape == (91, 109, 91)
    else:
        assert names == ["sample-000.nii.gz"]


def test_train_reads_one_section_of_a_params_file(
    tmp_path: Path, peak_csv: Callable[[Path], Path]
) -> None:
    run = yaml.safe_load(_config(tmp_path, "vae", peak_csv(tmp_path / "peaks.csv")).read_text())
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"sample": {"spacing_mm": 2.0}, "vae": run}))
    out = tmp_path / "run"
    _invoke(
        "train", "vae", "--config", str(params), "--section", "vae", "--output-dir", str(out),
        "--accelerator", "cpu", "--metrics", str(tmp_path / "metrics" / "vae.json"),
    )  # fmt: skip
    assert (out / "model" / "model.safetensors").exists()
    assert "train/loss" in json.loads((tmp_path / "metrics" / "vae.json").read_text())
    assert json.loads((out / "run.json").read_text())["trainer"]["max_steps"] == 2

    missing = RUNNER.invoke(
        build_app(), ["train", "vae", "--config", str(params), "--section", "atlas"]
    )
    assert missing.exit_code != 0
    assert "no run section 'atlas'" in str(missing.exception) + missing.output
    assert "params.yaml" in str(missing.exception) + missing.output
