"""``brrrr segment stroke``: one case segmented with the shipped model (mask and probability
on the DWI grid), and each bad input a SegmentationError naming the file: a channel the model
needs but was not given, NaN voxels, a grid that cannot be matched, a checkpoint that does
not fit its network, a model that does not exist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from brrrr.core import load_volume, save_volume
from brrrr.core.cli import build_app
from brrrr.models.segmentation import (
    NetworkConfig,
    SegmentationError,
    build_network,
    dice,
    save_network,
)
from brrrr.models.segmentation.preprocessing import same_grid
from brrrr.models.segmentation.synthetic import synthetic_stroke_case

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("case")
    case = synthetic_stroke_case(200_003)
    paths = {
        "dwi": save_volume(case.dwi.reorient("LPS"), folder / "dwi.nii.gz"),
        "adc": save_volume(case.adc, folder / "adc.nii.gz"),
        "flair": save_volume(case.flair.resample(spacing=2.0), folder / "flair.nii.gz"),
        "truth": save_volume(case.mask.reorient("LPS"), folder / "truth.nii.gz"),
    }
    return paths


def _stroke(files: dict[str, Path], out: Path, *extra: str, adc: Path | None = None):  # type: ignore[no-untyped-def]
    args = ["segment", "stroke", "--dwi", str(files["dwi"]), "--adc", str(adc or files["adc"])]
    return RUNNER.invoke(build_app(), [*args, "--out", str(out), *extra])


def test_stroke_writes_mask_and_probability_on_the_dwi_grid(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, prob = tmp_path / "mask.nii.gz", tmp_path / "prob.nii.gz"
    result = _stroke(files, out, "--flair", str(files["flair"]), "--prob-out", str(prob))
    assert result.exit_code == 0, result.output
    assert "lesion voxels" in result.output
    assert "trained on synthetic data only" in result.output
    dwi, mask, probability = load_volume(files["dwi"]), load_volume(out), load_volume(prob)
    assert same_grid(mask, dwi)
    assert same_grid(probability, dwi)
    assert mask.dtype == np.uint8
    assert probability.dtype == np.float32
    np.testing.assert_array_equal(mask.data, probability.data >= 0.5)
    truth = load_volume(files["truth"]).data > 0
    assert dice(mask.data > 0, truth) > 0.8
    strict = _stroke(files, tmp_path / "strict.nii.gz", "--threshold", "0.9")
    assert strict.exit_code == 0, strict.output
    assert load_volume(tmp_path / "strict.nii.gz").data.sum() <= mask.data.sum()


def test_missing_channel_names_the_model_file(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    config = NetworkConfig.from_dict(
        {
            "network": "SegResNet",
            "channels": ["dwi", "adc", "flair"],
            "kwargs": {"init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1]},
            "patch_size": [32, 32, 32],
            "spacing_mm": [6.0, 6.0, 6.0],
        }
    )
    weights = save_network(build_network(config), config, tmp_path / "needs_flair.safetensors")
    result = _stroke(files, tmp_path / "m.nii.gz", "--model", str(weights))
    assert result.exit_code == 1
    assert isinstance(result.exception, SegmentationError)
    assert result.exception.path == str(weights)
    assert "needs the channel(s) flair" in str(result.exception)


def test_nan_voxels_name_the_file(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    adc = load_volume(files["adc"], dtype="float32")
    data = adc.data.copy()
    data[10:12, 10, 10] = np.nan
    bad = save_volume(adc.with_data(data), tmp_path / "adc_nan.nii.gz")
    result = _stroke(files, tmp_path / "m.nii.gz", adc=bad)
    assert result.exit_code == 1
    assert isinstance(result.exception, SegmentationError)
    assert result.exception.path == str(bad)
    assert "2 NaN" in str(result.exception)


def test_grid_that_cannot_be_matched_names_the_file(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    adc = load_volume(files["adc"])
    affine = adc.affine.copy()
    affine[:3, 3] += [0.0, 250.0, 0.0]
    far = save_volume(adc.with_data(adc.data, affine), tmp_path / "adc_elsewhere.nii.gz")
    result = _stroke(files, tmp_path / "m.nii.gz", adc=far)
    assert result.exit_code == 1
    assert isinstance(result.exception, SegmentationError)
    assert result.exception.path == str(far)
    assert "field of view" in str(result.exception)


def test_checkpoint_that_does_not_fit_names_the_checkpoint(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shipped = json.loads(
        (
            Path(__file__).resolve().parents[1]
            / "src/brrrr/models/segmentation/weights/lesion_segresnet_synthetic.json"
        ).read_text()
    )
    other = NetworkConfig.from_dict(
        {**shipped, "kwargs": {**shipped["kwargs"], "init_filters": 16}}
    )
    weights = tmp_path / "model.pt"
    torch.save(build_network(NetworkConfig.from_dict(shipped)).state_dict(), weights)
    weights.with_suffix(".json").write_text(json.dumps(other.to_dict()))
    result = _stroke(files, tmp_path / "m.nii.gz", "--model", str(weights))
    assert result.exit_code == 1
    assert isinstance(result.exception, SegmentationError)
    assert result.exception.path == str(weights)
    assert "shape mismatch" in str(result.exception)


def test_unknown_model_and_real_subprocess(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _stroke(files, tmp_path / "m.nii.gz", "--model", str(tmp_path / "nothing.pt"))
    assert result.exit_code == 1
    assert "built-in: synthetic-lesion" in str(result.exception)
    completed = subprocess.run(
        [
            sys.executable, "-c", "from brrrr.core.cli import main; main()",
            "segment", "stroke", "--dwi", str(files["dwi"]), "--adc", str(files["adc"]),
            "--out", str(tmp_path / "m.nii.gz"), "--model", "no-such-model",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.startswith("brrrr: error: no-such-model: no model file")
    help_text = RUNNER.invoke(build_app(), ["segment", "stroke", "--help"])
    assert "--prob-out" in help_text.output
    assert "--register-flair" in help_text.output
