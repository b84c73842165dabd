"""The `brrrr` command: plugin discovery, `brrrr info` on every input kind, `brrrr sample`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from brrrr.core import samples, save_volume
from brrrr.core.cli import build_app, main

PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"
runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    volume = samples.phantom(shape=(20, 24, 20), spacing=9.0)
    return {
        "nifti": save_volume(volume, folder / "head.nii.gz"),
        "mgz": save_volume(volume.reorient("LIA"), folder / "head.mgz"),
        "dicom file": PYDICOM_DATA / "CT_small.dcm",
        "dicom folder": PYDICOM_DATA / "dicomdirtests" / "98892001" / "CT5N",
    }


def test_commands_come_from_entry_points() -> None:
    names = {command.name for command in build_app().registered_commands}
    assert {"info", "sample"} <= names


@pytest.mark.parametrize("kind", ["nifti", "mgz", "dicom file", "dicom folder"])
def test_info_json_on_every_input_kind(inputs: dict[str, Path], kind: str) -> None:
    result = runner.invoke(build_app(), ["info", str(inputs[kind]), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert {
        "format",
        "shape",
        "dtype",
        "spacing_mm",
        "axcodes",
        "affine",
        "file_bytes",
        "value_range",
    } <= set(facts)
    assert len(facts["affine"]) == 4
    assert facts["file_bytes"] > 0
    expected_format = {
        "nifti": "nifti1",
        "mgz": "mgh",
        "dicom file": "dicom",
        "dicom folder": "dicom",
    }[kind]
    assert facts["format"] == expected_format


def test_info_values_match_nibabel(inputs: dict[str, Path]) -> None:
    result = runner.invoke(build_app(), ["info", str(inputs["nifti"]), "--json"])
    facts = json.loads(result.output)
    reference = nib.load(inputs["nifti"])
    data = np.asanyarray(reference.dataobj)
    assert facts["shape"] == list(reference.shape)
    assert facts["value_range"] == [float(data.min()), float(data.max())]
    np.testing.assert_allclose(facts["affine"], reference.affine, atol=1e-6)
    assert facts["axcodes"] == "".join(nib.aff2axcodes(reference.affine))


def test_info_text(inputs: dict[str, Path]) -> None:
    result = runner.invoke(build_app(), ["info", str(inputs["mgz"])])
    assert result.exit_code == 0, result.output
    assert "LIA" in result.output
    assert "value range" in result.output


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    process = subprocess.run(
        [sys.executable, "-c", "from brrrr.core.cli import main; main()", "info", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode == 1
    error_lines = [
        line for line in process.stderr.splitlines() if line.startswith("brrrr: error: ")
    ]
    assert len(error_lines) == 1
    assert str(bad) in error_lines[0]
    assert "Traceback" not in process.stderr


def test_main_reports_brrrr_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "missing.nii")])
    assert exit_info.value.code == 1
    assert "no such file" in capsys.readouterr().err


def test_sample_command_writes_and_reads_every_format(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    result = runner.invoke(build_app(), ["sample", str(out), "--spacing", "8"])
    assert result.exit_code == 0, result.output
    for name in [
        "phantom_T1w.nii.gz",
        "phantom_desc-lesion_mask.nii.gz",
        "phantom_T1w.mgz",
        "phantom_ct.nii.gz",
    ]:
        assert (out / name).is_file()
    assert len(list((out / "phantom_dicom").glob("*"))) > 1
    assert "dicom" in result.output
    assert "mgh" in result.output
    # Running it twice is fine (idempotent).
    assert runner.invoke(build_app(), ["sample", str(out), "--spacing", "8"]).exit_code == 0


def test_start_up_imports_no_heavy_library() -> None:
    # Every `brrrr` invocation builds the app from all installed plugins; none of
    # them may pull in torch, nibabel or pybids before a command needs them.
    code = (
        "import sys; from brrrr.core.cli import build_app; build_app(); "
        "print(sorted(m for m in ('torch', 'nibabel', 'bids', 'datasets') if m in sys.modules))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert process.stdout.strip() == "[]"


def test_io_helpers_import_without_nibabel() -> None:
    # `brrrr.core.io` resolves its loaders on first use: the manifest and card writers of
    # brrrr-ingest use only `brrrr.core.files`, and must not pay for nibabel and pydicom.
    code = (
        "import sys; import brrrr.core.files; "
        "print(sorted(m for m in ('nibabel', 'pydicom', 'scipy') if m in sys.modules)); "
        "from brrrr.core.io import DEFAULT_MAX_VOXELS, load_volume; print(callable(load_volume))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert process.stdout.split() == ["[]", "True"]
