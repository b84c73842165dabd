"""`brrrr preprocess …` commands, run through core's `brrrr` app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from brrrr.core.cli import build_app
from brrrr.core.testing import write_nifti

runner = CliRunner()


def test_preprocess_group_is_registered() -> None:
    result = runner.invoke(build_app(), ["preprocess", "--help"])
    assert result.exit_code == 0, result.output
    assert "drift" in result.output
    assert "microscopy" in result.output


def test_drift_command_writes_files_and_manifest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_nifti(src / f"scan{i}.nii.gz", seed=i)
    out = tmp_path / "out"
    args = ["preprocess", "drift", str(src), str(out), "--kind", "brighten", "--severity", "0.5"]
    result = runner.invoke(build_app(), [*args, "--schedule", "linear", "--seed", "7"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "drift_manifest.json").read_text())
    assert manifest["kind"] == "brighten"
    assert manifest["seed"] == 7
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "scan0.nii.gz",
        "scan1.nii.gz",
        "scan2.nii.gz",
    ]


def test_drift_command_rejects_a_bad_severity(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_nifti(src / "scan.nii.gz")
    args = [
        "preprocess",
        "drift",
        str(src),
        str(tmp_path / "o"),
        "--kind",
        "noise",
        "--severity",
        "3",
    ]
    result = runner.invoke(build_app(), args)
    assert result.exit_code != 0


def test_cache_command_builds_then_reuses(tmp_path: Path) -> None:
    from brrrr.core import samples, save_volume

    for study, seed in (("s1", 1), ("s2", 2)):
        folder = tmp_path / "raw" / study
        folder.mkdir(parents=True)
        volume = samples.phantom(shape=(40, 48, 20), spacing=(4.0, 4.0, 8.0), seed=seed)
        save_volume(volume, folder / "t1.nii.gz")
    first = runner.invoke(build_app(), ["preprocess", "cache", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "built 2" in first.output
    assert (tmp_path / "metadata.json").is_file()
    again = runner.invoke(build_app(), ["preprocess", "cache", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "reused 2" in again.output


def test_cache_command_rejects_a_bad_mode(tmp_path: Path) -> None:
    (tmp_path / "raw" / "s1").mkdir(parents=True)
    result = runner.invoke(build_app(), ["preprocess", "cache", str(tmp_path), "--mode", "x=pet"])
    assert result.exit_code != 0
