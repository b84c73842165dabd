"""``brrrr segment evaluate`` and the folder evaluation behind it (pairing, grid and value
checks, CSV/JSON), on NIfTI masks written with ``brrrr.core.save_volume``."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brrrr.core import Volume, save_volume
from brrrr.core.cli import build_app
from brrrr.models.segmentation import (
    LabelRule,
    SegmentationError,
    evaluate_folder,
    pair_cases,
)
from brrrr.models.segmentation import cli as segment_cli

RUNNER = CliRunner()
AFFINE = np.array(
    [[0.5, 0.0, 0.0, -10.0], [0.0, 2.0, 0.0, 4.0], [0.0, 0.0, 3.0, 7.5], [0.0, 0.0, 0.0, 1.0]]
)
VOXEL_ML = 0.5 * 2.0 * 3.0 / 1000


def _write(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    return save_volume(Volume(data, affine), path)


def _cube(start: int, size: int, shape: tuple[int, int, int] = (8, 8, 8)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[start : start + size, start : start + size, start : start + size] = 1
    return mask


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two cases: ``a`` (perfect, 8 voxels) and ``b`` (empty prediction, 27-voxel GT)."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    _write(gt / "case_a_mask.nii.gz", _cube(1, 2))
    _write(pred / "case_a_pred.nii.gz", _cube(1, 2))
    _write(gt / "case_b.nii", _cube(2, 3))
    _write(pred / "case_b.nii.gz", np.zeros((8, 8, 8), dtype=np.uint8))
    (pred / "notes.txt").write_text("not a mask")
    (pred / ".case_c.nii.gz").write_bytes(b"hidden files are skipped")
    return pred, gt


# -- pairing -------------------------------------------------------------------------------
def test_pairing_strips_extensions_and_role_suffixes(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    pairs = pair_cases(pred, gt)
    assert [p.case_id for p in pairs] == ["case_a", "case_b"]
    assert pairs[0].prediction.name == "case_a_pred.nii.gz"
    assert pairs[0].ground_truth.name == "case_a_mask.nii.gz"
    assert pairs[1].ground_truth.name == "case_b.nii"


def test_unmatched_prediction_is_named(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    _write(pred / "case_z_pred.nii.gz", _cube(1, 2))
    with pytest.raises(SegmentationError, match="no ground truth") as error:
        pair_cases(pred, gt)
    assert "case_z_pred.nii.gz" in str(error.value)


def test_unmatched_ground_truth_is_named(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    _write(gt / "case_y_mask.nii.gz", _cube(1, 2))
    with pytest.raises(SegmentationError, match="no prediction") as error:
        pair_cases(pred, gt)
    assert "case_y_mask.nii.gz" in str(error.value)


def test_two_files_of_one_case_are_named(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    _write(pred / "case_a.nii.gz", _cube(1, 2))
    with pytest.raises(SegmentationError, match="both case 'case_a'") as error:
        pair_cases(pred, gt)
    assert "case_a_pred.nii.gz" in str(error.value)


def test_missing_or_empty_folder_is_named(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    missing = tmp_path / "nowhere"
    with pytest.raises(SegmentationError, match="does not exist") as error:
        pair_cases(missing, gt)
    assert error.value.path == str(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SegmentationError, match=r"no \.nii") as error:
        pair_cases(pred, empty)
    assert error.value.path == str(empty)


# -- values and grids ----------------------------------------------------------------------
def test_folder_metrics_and_outputs(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    csv_path, json_path = tmp_path / "out" / "cases.csv", tmp_path / "out" / "cases.json"
    results, summary = evaluate_folder(pred, gt, csv_path=csv_path, json_path=json_path)

    a, b = (r.metrics for r in results)
    assert (a.dice, a.lesion_f1, a.hd95_mm, a.absolute_volume_difference_ml) == (1.0, 1.0, 0.0, 0.0)
    assert a.gt_volume_ml == pytest.approx(8 * VOXEL_ML)  # spacing from the GT affine
    assert (b.dice, b.lesion_f1, b.lesion_count_difference) == (0.0, 0.0, 1)
    assert b.absolute_volume_difference_ml == pytest.approx(27 * VOXEL_ML)
    assert math.isnan(b.hd95_mm)
    assert summary["dice"].mean == 0.5
    assert summary["hd95_mm"].count == 1  # the NaN of case b is left out

    rows = list(csv.DictReader(csv_path.open()))
    assert [r["case_id"] for r in rows] == ["case_a", "case_b"]
    assert rows[1]["hd95_mm"] == "nan"
    assert float(rows[1]["absolute_volume_difference_ml"]) == pytest.approx(27 * VOXEL_ML)

    document = json.loads(json_path.read_text())  # strict JSON: NaN became null
    assert document["cases"][1]["hd95_mm"] is None
    assert document["cases"][0]["prediction"].endswith("case_a_pred.nii.gz")
    assert document["aggregate"]["dice"] == {
        "mean": 0.5,
        "std": pytest.approx(math.sqrt(0.5)),
        "median": 0.5,
        "count": 2,
    }
    assert document["aggregate"]["hd95_mm"]["std"] is None
    assert "ISLES'22" in document["rules"]


def test_nan_voxels_are_named(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    with_nan = _cube(1, 2).astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    bad = _write(pred / "case_a_pred.nii.gz", with_nan)
    with pytest.raises(SegmentationError, match="1 voxels are NaN") as error:
        evaluate_folder(pred, gt)
    assert error.value.path == str(bad)


def test_non_binary_masks_are_refused_unless_labels_positive(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    labels = _cube(1, 2) * 2
    labels[5, 5, 5] = 7
    bad = _write(pred / "case_a_pred.nii.gz", labels)
    with pytest.raises(SegmentationError, match="not binary: it holds 2, 7") as error:
        evaluate_folder(pred, gt)
    assert error.value.path == str(bad)
    assert "--labels positive" in str(error.value)

    results, _ = evaluate_folder(pred, gt, labels="positive")
    assert results[0].metrics.pred_lesions == 2
    assert results[0].metrics.lesion_f1 == pytest.approx(2 / 3)  # one TP, one FP


def test_shape_mismatch_names_both_files(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    bad = _write(pred / "case_a_pred.nii.gz", _cube(1, 2, shape=(8, 8, 9)))
    with pytest.raises(SegmentationError, match="different grids") as error:
        evaluate_folder(pred, gt)
    assert str(bad) in str(error.value)
    assert str(gt / "case_a_mask.nii.gz") in str(error.value)


def test_affine_mismatch_names_both_files_and_small_differences_pass(
    folders: tuple[Path, Path],
) -> None:
    pred, gt = folders
    nudged = AFFINE.copy()
    nudged[0, 3] += 5e-5  # within the 1e-4 mm tolerance
    _write(pred / "case_a_pred.nii.gz", _cube(1, 2), nudged)
    assert evaluate_folder(pred, gt)[0][0].metrics.dice == 1.0

    shifted = AFFINE.copy()
    shifted[1, 3] += 0.5
    bad = _write(pred / "case_a_pred.nii.gz", _cube(1, 2), shifted)
    with pytest.raises(SegmentationError, match=r"affines that differ by up to 0\.5 mm") as error:
        evaluate_folder(pred, gt)
    assert str(bad) in str(error.value)
    assert str(gt / "case_a_mask.nii.gz") in str(error.value)


# -- the command ---------------------------------------------------------------------------
def test_cli_label_choices_are_the_label_rule() -> None:
    hint = typing.get_type_hints(segment_cli.evaluate, include_extras=True)["labels"]
    assert typing.get_args(typing.get_args(hint)[0]) == typing.get_args(LabelRule)


def test_cli_prints_the_table_and_writes_files(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    csv_path, json_path = tmp_path / "m.csv", tmp_path / "m.json"
    result = RUNNER.invoke(
        build_app(),
        [
            "segment",
            "evaluate",
            str(pred),
            str(gt),
            "--csv",
            str(csv_path),
            "--json",
            str(json_path),
        ],
    )
    assert result.exit_code == 0, result.output
    for text in ("case_a", "case_b", "Dice", "Lesion F1", "HD95", "mean", "median", "cases kept"):
        assert text in result.output
    assert csv_path.is_file()
    assert json.loads(json_path.read_text())["aggregate"]["dice"]["count"] == 2


def test_cli_error_is_a_segmentation_error(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    _write(pred / "case_z.nii.gz", _cube(1, 2))
    result = RUNNER.invoke(build_app(), ["segment", "evaluate", str(pred), str(gt)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SegmentationError)


def _brrrr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from brrrr.core.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_brrrr_segment_evaluate_in_a_subprocess(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    json_path = tmp_path / "m.json"
    done = _brrrr("segment", "evaluate", str(pred), str(gt), "--json", str(json_path))
    assert done.returncode == 0, done.stderr
    assert "case_b" in done.stdout
    assert json.loads(json_path.read_text())["cases"][0]["dice"] == 1.0

    (gt / "case_b.nii").unlink()
    failed = _brrrr("segment", "evaluate", str(pred), str(gt))
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("brrrr: error: ")]
    assert len(errors) == 1
    assert "case_b.nii.gz" in errors[0]
    assert "Traceback" not in failed.stderr
