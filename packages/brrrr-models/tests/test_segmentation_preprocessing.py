"""Preprocessing of segmenter inputs: loading and its errors (each naming the file),
alignment by world position against brrrr.core.resample, normalisation, the model grid,
and rigid registration checked against SimpleITK's own reading of the file."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import numpy as np
import pytest

from brrrr.core import Volume, save_volume
from brrrr.core.errors import MissingDependencyError
from brrrr.core.resample import resample
from brrrr.models.segmentation import SegmentationError
from brrrr.models.segmentation.preprocessing import (
    Normalization,
    align_to_reference,
    field_of_view_overlap,
    load_inputs,
    model_grid,
    normalize,
    register_rigid,
    same_grid,
    to_sitk,
)
from brrrr.models.segmentation.synthetic import synthetic_stroke_case

SMALL = {"shape": (42, 51, 42), "spacing": 4.0}


@pytest.fixture(scope="module")
def case():  # type: ignore[no-untyped-def]
    return synthetic_stroke_case(5, **SMALL)


# -- loading ---------------------------------------------------------------------------------
def test_load_inputs_reads_paths_and_volumes(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dwi = save_volume(case.dwi, tmp_path / "dwi.nii.gz")
    volumes = load_inputs(
        {"dwi": dwi, "adc": case.adc, "t2": case.flair, "flair": None},
        channels=("dwi", "adc"),
        optional_channels=("flair",),
    )
    assert list(volumes) == ["dwi", "adc"]  # unknown names and missing optionals left out
    assert volumes["dwi"].data.dtype == np.float32
    assert volumes["dwi"].source == str(dwi)
    np.testing.assert_allclose(volumes["dwi"].data, case.dwi.data, rtol=1e-6)


def test_missing_channel_names_the_model_file(case) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentationError, match=r"needs the channel\(s\) adc") as error:
        load_inputs({"dwi": case.dwi}, channels=("dwi", "adc"), source="model.json")
    assert error.value.path == "model.json"
    assert "given: dwi" in str(error.value)


def test_nan_voxels_name_the_file(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = case.adc.data.copy()
    data[3, 4, 5] = np.nan
    data[6, 7, 8] = np.inf
    path = save_volume(case.adc.with_data(data), tmp_path / "adc_nan.nii.gz")
    with pytest.raises(SegmentationError, match="2 NaN or infinite voxels") as error:
        load_inputs({"dwi": case.dwi, "adc": path}, channels=("dwi", "adc"))
    assert error.value.path == str(path)
    # In memory, the message names the channel instead.
    with pytest.raises(SegmentationError, match=r"the adc volume \(in memory\)"):
        load_inputs({"dwi": case.dwi, "adc": case.adc.with_data(data)}, channels=("dwi", "adc"))


def test_multi_volume_file_is_refused(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stacked = Volume(np.stack([case.dwi.data, case.dwi.data]), case.dwi.affine)
    path = save_volume(stacked, tmp_path / "dwi_4d.nii.gz")
    with pytest.raises(SegmentationError, match="holds 2 volumes") as error:
        load_inputs({"dwi": path}, channels=("dwi",))
    assert error.value.path == str(path)
    single = save_volume(Volume(case.dwi.data[None], case.dwi.affine), tmp_path / "dwi_1.nii.gz")
    assert load_inputs({"dwi": single}, channels=("dwi",))["dwi"].data.ndim == 3


# -- grids -----------------------------------------------------------------------------------
def test_align_resamples_by_world_position_like_brrrr_core(case) -> None:  # type: ignore[no-untyped-def]
    adc = case.adc.resample(spacing=3.0).reorient("LPI")
    aligned = align_to_reference({"dwi": case.dwi, "adc": adc}, reference="dwi")
    assert aligned["dwi"] is case.dwi or np.array_equal(aligned["dwi"].data, case.dwi.data)
    assert same_grid(aligned["adc"], case.dwi)
    expected = resample(
        adc.data, adc.affine, target_shape=case.dwi.shape, target_affine=case.dwi.affine
    )
    np.testing.assert_array_equal(aligned["adc"].data, expected)
    assert np.corrcoef(aligned["adc"].data.ravel(), case.adc.data.ravel())[0, 1] > 0.9


def test_grid_that_cannot_be_matched_names_the_file(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    affine = case.adc.affine.copy()
    affine[:3, 3] += [300.0, 0.0, 0.0]  # another part of space
    path = save_volume(case.adc.with_data(case.adc.data, affine), tmp_path / "adc_far.nii.gz")
    volumes = load_inputs({"dwi": case.dwi, "adc": path}, channels=("dwi", "adc"))
    assert field_of_view_overlap(volumes["adc"], case.dwi) == 0.0
    with pytest.raises(SegmentationError, match=r"covers only 0% of the dwi image") as error:
        align_to_reference(volumes, reference="dwi")
    assert error.value.path == str(path)


def test_model_grid_is_exact_under_reorientation(case) -> None:  # type: ignore[no-untyped-def]
    shape, affine = model_grid(case.dwi, spacing_mm=3.0, orientation="RAS")
    for code in ("LPS", "PIR", "SAL"):
        other_shape, other_affine = model_grid(case.dwi.reorient(code), spacing_mm=3.0)
        assert other_shape == shape
        np.testing.assert_allclose(other_affine, affine, atol=1e-9)
    assert model_grid(case.dwi.reorient("LPS"), spacing_mm=None)[0] == case.dwi.shape


# -- intensities -----------------------------------------------------------------------------
def test_zscore_over_nonzero_with_percentile_clip() -> None:
    rng = np.random.default_rng(0)
    data = np.zeros((20, 20, 20), dtype=np.float32)
    data[5:15, 5:15, 5:15] = rng.normal(100, 10, (10, 10, 10))
    data[7, 7, 7] = 10_000  # an outlier the clip removes
    out = normalize(data, Normalization(clip_percentiles=(1.0, 99.0)))
    inside = data != 0
    values = np.clip(data[inside], *np.percentile(data[inside], [1.0, 99.0]))
    np.testing.assert_allclose(out[inside], (values - values.mean()) / values.std(), atol=1e-4)
    assert (out[~inside] == 0).all()
    assert abs(float(out[inside].mean())) < 1e-5
    assert abs(float(out[inside].std()) - 1) < 1e-4
    assert out.max() < 5  # the outlier was clipped
    whole = normalize(data, Normalization(region="all", clip_percentiles=None))
    assert abs(float(whole.mean())) < 1e-5
    brain = np.zeros(data.shape, dtype=bool)
    brain[5:10] = True
    masked = normalize(data, Normalization(region="brain", clip_percentiles=None), brain=brain)
    assert (masked[~brain] == 0).all()
    assert abs(float(masked[brain].mean())) < 1e-5
    assert np.array_equal(
        normalize(data, Normalization(method="none", clip_percentiles=None)), data
    )


def test_normalization_settings_are_checked() -> None:
    with pytest.raises(SegmentationError, match="unknown normalisation"):
        Normalization.from_dict({"metod": "zscore"})
    with pytest.raises(SegmentationError, match="region"):
        Normalization(region="skull")  # type: ignore[arg-type]
    with pytest.raises(SegmentationError, match="clip_percentiles"):
        Normalization(clip_percentiles=(99.0, 1.0))
    spec = Normalization(region="brain", clip_percentiles=(2.0, 98.0))
    assert Normalization.from_dict(spec.to_dict()) == spec


# -- registration ----------------------------------------------------------------------------
def _rigid(degrees: float, shift_mm: tuple[float, float, float]) -> np.ndarray:
    angle = np.deg2rad(degrees)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    matrix[:3, 3] = shift_mm
    return matrix


def test_to_sitk_matches_simpleitk_reading_the_file(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sitk = pytest.importorskip("SimpleITK")
    volume = case.dwi.reorient("PIL")
    path = save_volume(volume, tmp_path / "dwi_pil.nii.gz")
    read, ours = sitk.ReadImage(str(path)), to_sitk(volume)
    np.testing.assert_allclose(ours.GetOrigin(), read.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ours.GetSpacing(), read.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(ours.GetDirection(), read.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(read))


def test_rigid_registration_recovers_a_known_motion() -> None:
    pytest.importorskip("SimpleITK")
    case = synthetic_stroke_case(2, shape=(56, 68, 56), spacing=3.0)
    motion = _rigid(6.0, (5.0, -4.0, 3.0))
    # The head moved between the scans: the FLAIR shows the world at motion @ x.
    moved = resample(
        case.flair.data,
        case.flair.affine,
        target_shape=case.flair.shape,
        target_affine=motion @ case.flair.affine,
    )
    flair = case.flair.with_data(moved.astype(np.float32))
    result = register_rigid(flair, case.dwi)
    expected = np.linalg.inv(motion)
    np.testing.assert_allclose(result.matrix[:3, 3], expected[:3, 3], atol=1.5)
    cosine = (np.trace(result.matrix[:3, :3].T @ expected[:3, :3]) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cosine, -1, 1))) < 1.5
    assert same_grid(result.volume, case.dwi)

    def correlation(a: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), case.flair.data.ravel())[0, 1])

    assert correlation(result.volume.data) > 0.97
    assert correlation(flair.data) < 0.9


def test_registration_names_the_extra_without_simpleitk(
    case, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    real_import = builtins.__import__

    def no_sitk(name: str, *args: object, **kwargs: object) -> object:
        if name == "SimpleITK":
            raise ImportError("No module named 'SimpleITK'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "SimpleITK", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_sitk)
    with pytest.raises(MissingDependencyError, match=r"brrrr-models\[registration\]"):
        register_rigid(case.flair, case.dwi)
