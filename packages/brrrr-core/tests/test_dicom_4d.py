"""4-D and multi-echo DICOM series: brrrr.core.io._dicom_group and the per-volume metadata."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from scipy.spatial.transform import Rotation

from brrrr.core import load_volume
from brrrr.core.errors import DicomSeriesError
from brrrr.core.io.dicom import read_dicom
from brrrr.core.testing import write_dicom_series

NIBABEL_FILES = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
AXIAL = np.array([[0.8, 0, 0, -40.0], [0, 0.9, 0, 20.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1.0]])


def oblique() -> np.ndarray:
    affine = np.eye(4)
    rotation = Rotation.from_euler("xyz", (20, -35, 50), degrees=True).as_matrix()
    affine[:3, :3] = rotation @ np.diag((0.9, 1.1, 2.5))
    affine[:3, 3] = [12.5, -30.25, 41.0]
    return affine


def volumes(n: int, shape: tuple[int, int, int] = (6, 5, 4), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3000, (n, *shape)).astype(np.float64)


def image_frame(gradient_lps: list[float], affine_ras: np.ndarray) -> np.ndarray:
    axes = LPS_TO_RAS[:3, :3] @ affine_ras[:3, :3]
    axes = axes / np.linalg.norm(axes, axis=0)
    return axes.T @ np.asarray(gradient_lps, dtype=np.float64)


MULTI_ECHO = [{"EchoNumbers": e, "EchoTime": str(10 * e)} for e in (1, 2, 3)]


@pytest.mark.parametrize("enhanced", [False, True], ids=["classic", "enhanced"])
def test_multi_echo_is_one_volume_per_echo(tmp_path: Path, enhanced: bool) -> None:
    data = volumes(3)
    write_dicom_series(tmp_path, data, AXIAL, volume_tags=MULTI_ECHO, enhanced=enhanced)

    vol = read_dicom(tmp_path)

    assert vol.data.shape == (3, 6, 5, 4)
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, AXIAL, atol=1e-6)
    assert vol.metadata["echo_times_s"] == pytest.approx([0.01, 0.02, 0.03])
    assert vol.metadata["n_volumes"] == 3
    json.dumps(vol.metadata)
    for echo in (1, 2, 3):
        one = read_dicom(tmp_path, echo=echo)
        assert one.shape == (6, 5, 4)
        np.testing.assert_array_equal(one.data, data[echo - 1])
        assert one.metadata["echo_time_s"] == pytest.approx(0.01 * echo)
    loaded = load_volume(tmp_path, echo=2, dtype="float32")
    np.testing.assert_array_equal(loaded.data, data[1])


def test_asking_for_an_echo_the_series_lacks(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, volumes(3), AXIAL, volume_tags=MULTI_ECHO)
    with pytest.raises(DicomSeriesError, match=r"no echo 4 .*echoes \[1, 2, 3\]") as info:
        read_dicom(tmp_path, echo=4)
    assert str(tmp_path) in str(info.value)
    single = tmp_path / "single"
    write_dicom_series(single, volumes(1)[0], AXIAL)
    assert read_dicom(single, echo=1).shape == (6, 5, 4)
    with pytest.raises(DicomSeriesError, match="one echo"):
        read_dicom(single, echo=2)


DWI = [
    {"DiffusionBValue": 0},
    {"DiffusionBValue": 1000, "DiffusionGradientOrientation": [1.0, 0.0, 0.0]},
    {"DiffusionBValue": 1000, "DiffusionGradientOrientation": [0.0, 0.6, 0.8]},
    {"DiffusionBValue": 2000, "DiffusionGradientOrientation": [0.0, 0.6, 0.8]},
]


@pytest.mark.parametrize("enhanced", [False, True], ids=["classic", "enhanced"])
def test_dwi_b_values_and_image_frame_b_vectors(tmp_path: Path, enhanced: bool) -> None:
    data, affine = volumes(4, seed=2), oblique()
    write_dicom_series(tmp_path, data, affine, volume_tags=DWI, enhanced=enhanced)

    vol = read_dicom(tmp_path)

    np.testing.assert_array_equal(vol.data, data)  # acquisition order, not sorted by b
    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)
    assert vol.metadata["b_values"] == [0.0, 1000.0, 1000.0, 2000.0]
    assert vol.metadata["b_vectors"][0] == [0.0, 0.0, 0.0]
    for got, tags in zip(vol.metadata["b_vectors"][1:], DWI[1:], strict=True):
        expected = image_frame(tags["DiffusionGradientOrientation"], affine)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)
    assert set(vol.metadata["volume_keys"]) <= {"DiffusionBValue", "DiffusionGradient"}


def test_repeated_b0_volumes_are_told_apart_by_acquisition_number(tmp_path: Path) -> None:
    tags = [
        {"AcquisitionNumber": 1, "DiffusionBValue": 0},
        {"AcquisitionNumber": 2, "DiffusionBValue": 0},
        {"AcquisitionNumber": 3, **DWI[1]},
    ]
    data = volumes(3, seed=3)
    write_dicom_series(tmp_path, data, AXIAL, volume_tags=tags)
    vol = read_dicom(tmp_path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.metadata["b_values"] == [0.0, 0.0, 1000.0]
    assert vol.metadata["acquisition_numbers"] == [1, 2, 3]


@pytest.mark.parametrize("enhanced", [False, True], ids=["classic", "enhanced"])
def test_fmri_time_series_by_temporal_position(tmp_path: Path, enhanced: bool) -> None:
    data = volumes(5, seed=4)
    tags = [{"TemporalPositionIdentifier": t + 1} for t in range(5)]
    write_dicom_series(tmp_path, data, AXIAL, volume_tags=tags[::-1], enhanced=enhanced)

    vol = read_dicom(tmp_path)

    # Written from the last time point down: read back in temporal order.
    np.testing.assert_array_equal(vol.data, data[::-1])
    assert vol.metadata["temporal_positions"] == [1, 2, 3, 4, 5]
    assert vol.metadata["volume_keys"] == ["TemporalPosition"]
    assert vol.metadata["repetition_time_s"] == pytest.approx(2.0)


def test_time_series_told_apart_only_by_instance_order(tmp_path: Path) -> None:
    data = volumes(3, seed=5)
    write_dicom_series(tmp_path, data, AXIAL)  # 3 volumes, no attribute tells them apart
    vol = read_dicom(tmp_path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.metadata["volume_keys"] == ["InstanceNumber"]


def test_field_map_magnitude_and_phase_by_image_type(tmp_path: Path) -> None:
    data = volumes(2, seed=6)
    tags = [
        {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]},
        {"ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]},
    ]
    write_dicom_series(tmp_path, data, AXIAL, volume_tags=tags)
    vol = read_dicom(tmp_path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.metadata["image_types"] == ["ORIGINAL\\PRIMARY\\M\\ND", "ORIGINAL\\PRIMARY\\P\\ND"]


def test_attribute_that_varies_per_slice_is_not_taken_for_a_volume_key(tmp_path: Path) -> None:
    data = volumes(2, seed=7)
    paths = write_dicom_series(tmp_path, data, AXIAL, volume_tags=MULTI_ECHO[:2])
    for n, path in enumerate(paths):  # a scanner numbering every image's acquisition
        ds = pydicom.dcmread(path)
        ds.AcquisitionNumber = n + 1
        ds.save_as(path)
    vol = read_dicom(tmp_path)
    np.testing.assert_array_equal(vol.data, data)
    assert "AcquisitionNumber" not in vol.metadata["volume_keys"]


def test_a_volume_missing_a_slice_is_refused(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, volumes(2), AXIAL, volume_tags=MULTI_ECHO[:2])
    paths[-1].unlink()
    with pytest.raises(DicomSeriesError, match=r"EchoNumbers \(1, 2\).*complete volumes") as info:
        read_dicom(tmp_path)
    assert "copied twice" not in str(info.value)


def test_volumes_with_different_geometry_are_refused(tmp_path: Path) -> None:
    write_dicom_series(
        tmp_path / "a", volumes(1)[0], AXIAL, series_uid="1.2.3", volume_tags=[MULTI_ECHO[0]]
    )
    shifted = AXIAL.copy()
    shifted[2, 2] = 2.6  # same first slice, another step: positions interleave
    write_dicom_series(
        tmp_path / "b", volumes(1)[0], shifted, series_uid="1.2.3", volume_tags=[MULTI_ECHO[1]]
    )
    with pytest.raises(DicomSeriesError):
        read_dicom(tmp_path)


def test_enhanced_philips_shipped_file_is_still_one_volume() -> None:
    raw = gzip.decompress((NIBABEL_FILES / "philips_mprage.dcm.gz").read_bytes())
    vol = read_dicom(raw)
    assert vol.shape == (256, 256, 176)
    assert "n_volumes" not in vol.metadata
    assert "b_value" not in vol.metadata  # Philips' private b-factor 0 is not diffusion
