"""The Stroke segmentation tab's work (brrrr.demos.apps.stroke), without a server.

The served app, its endpoints and screenshots are tested in test_demo_app.py.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import load_volume, save_volume
from brrrr.demos.apps import stroke
from brrrr.demos.errors import DemoInputError, DemoSetupError


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-sample")
    stroke.prepare(root)
    return root


def test_prepare_writes_cases_with_ground_truth(sample_dir: Path) -> None:
    cases = stroke.sample_cases(sample_dir)
    assert sorted(cases) == [f"case-00{i}" for i in range(stroke.SAMPLE_CASES)]
    for case in cases.values():
        assert case.flair is not None
        assert case.mask is not None
        assert case.mask.is_file()
    stroke.prepare(sample_dir)  # reused, not rewritten
    assert sorted(stroke.sample_cases(sample_dir)) == sorted(cases)


def test_unprepared_folder_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(DemoSetupError, match="no prepared stroke sample"):
        stroke.sample_cases(tmp_path)


def test_model_choices_include_models_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(stroke.MODELS_ENV, str(tmp_path / "mine.safetensors"))
    choices = stroke.model_choices()
    assert choices[:2] == [stroke.SHIPPED, stroke.ENSEMBLE]
    assert any("mine.safetensors" in c for c in choices[2:])


def _upload(tmp_path: Path, name: str, data: np.ndarray) -> Path:
    path = tmp_path / name
    nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0])).to_filename(path)
    return path


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "pick a sample case or upload"),
        ({"case": "case-999"}, "no sample case 'case-999'"),
        ({"case": "case-000", "model": "nope"}, "unknown model 'nope'"),
        (
            {"case": "case-000", "model": stroke.ENSEMBLE, "method": "vote"},
            "unknown ensemble method",
        ),
        ({"case": "case-000", "threshold": 1.5}, "threshold must be in"),
    ],
)
def test_bad_choices_are_clear_errors(
    sample_dir: Path, tmp_path: Path, kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(DemoInputError, match=expected):
        stroke.segment_case(sample_dir, tmp_path, **kwargs)  # type: ignore[arg-type]


def test_bad_uploads_name_the_file(sample_dir: Path, tmp_path: Path) -> None:
    dwi = _upload(tmp_path, "my_dwi.nii.gz", np.ones((8, 8, 8), np.float32))
    with pytest.raises(DemoInputError, match="upload a ADC volume too"):
        stroke.segment_case(sample_dir, tmp_path, uploads={"dwi": dwi})

    truncated = tmp_path / "broken_adc.nii.gz"
    whole = _upload(tmp_path, "whole.nii.gz", np.ones((16, 16, 16), np.float32)).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DemoInputError, match=r"broken_adc\.nii\.gz.*truncated"):
        stroke.segment_case(sample_dir, tmp_path, uploads={"dwi": dwi, "adc": truncated})

    labels = _upload(tmp_path, "labels.nii.gz", np.arange(512, dtype=np.float32).reshape(8, 8, 8))
    with pytest.raises(DemoInputError, match=r"labels\.nii\.gz.*only 0 and 1"):
        stroke.segment_case(sample_dir, tmp_path, uploads={"dwi": dwi, "adc": dwi, "gt": labels})

    flat = _upload(tmp_path, "flat_flair.nii.gz", np.ones((8, 8, 1), np.float32))
    with pytest.raises(DemoInputError, match=r"flat_flair\.nii\.gz.*2-D image"):
        stroke.segment_case(sample_dir, tmp_path, uploads={"dwi": dwi, "adc": dwi, "flair": flat})


@pytest.mark.slow
def test_sample_case_and_the_same_case_uploaded_on_another_grid(
    sample_dir: Path, tmp_path: Path
) -> None:
    """The shipped model finds the sample lesion; uploads with a ground truth on another grid
    (1.5 mm, reoriented) are scored on the DWI grid and give the same mask."""
    case = stroke.sample_cases(sample_dir)["case-001"]
    result = stroke.segment_case(sample_dir, tmp_path / "work", case="case-001")
    assert result.mask.shape == load_volume(case.dwi).shape
    assert np.allclose(result.mask.affine, load_volume(case.dwi).affine)
    assert result.metrics["dice"] > 0.7
    assert result.summary["lesion_count"] >= 1
    assert result.summary["lesion_volume_ml"] > 1.0
    assert result.mask_path.is_file()
    assert np.array_equal(load_volume(result.mask_path).data, result.mask.data)

    moved_truth = load_volume(case.mask).reorient("RAS").resample(1.5, interpolation="nearest")
    truth_path = save_volume(moved_truth, tmp_path / "truth_ras_1p5.nii.gz")
    uploads = {**{k: str(v) for k, v in case.inputs().items()}, "gt": str(truth_path)}
    uploaded = stroke.segment_case(sample_dir, tmp_path / "work", uploads=uploads)
    assert np.array_equal(uploaded.mask.data, result.mask.data)
    assert uploaded.ground_truth is not None
    assert uploaded.ground_truth.shape == result.mask.shape
    assert uploaded.metrics["dice"] == pytest.approx(result.metrics["dice"], abs=0.02)

    view = stroke.stroke_view(uploaded)
    assert [layer.colormap for layer in view.layers] == ["gray", "green", "red"]


@pytest.mark.slow
def test_ensemble_of_three_members(sample_dir: Path, tmp_path: Path) -> None:
    method = "majority"  # the rules themselves are tested in brrrr-models
    result = stroke.segment_case(
        sample_dir, tmp_path, case="case-001", model=stroke.ENSEMBLE, method=method
    )
    assert len(result.summary["member_volumes_ml"]) == 3
    assert method in result.summary["model"]
    assert result.metrics["dice"] > 0.7
