"""Tests of brrrr.core.io.dicom on files pydicom and nibabel ship and on synthetic series."""

from __future__ import annotations

import gzip
import json
import shutil
import warnings
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from scipy.spatial.transform import Rotation

from brrrr.core.errors import (
    DicomSeriesError,
    UnsupportedFormatError,
    VolumeReadError,
    VolumeTooLargeError,
)
from brrrr.core.io import dicom
from brrrr.core.io.dicom import DicomSeries, list_series, read_dicom
from brrrr.core.testing._dicom import write_dicom_series

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"
CT5N = PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT5N"
CT2N = PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT2N"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nibabel_affine_ras(path_or_ds: Path | pydicom.Dataset) -> np.ndarray:
    """nibabel's single-image affine, put in our conventions.

    nibabel's ``Wrapper.affine`` maps (row index, column index, slice) to LPS, and its
    slice normal is ``IOP[3:6] × IOP[0:3]``, the opposite of DICOM's ``IOP[0:3] ×
    IOP[3:6]`` that we sort along. So: swap the first two columns, negate the third,
    and convert LPS to RAS.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "experimental" warning on import
        from nibabel.nicom import dicomwrappers

        if isinstance(path_or_ds, Path):
            wrapper = dicomwrappers.wrapper_from_file(str(path_or_ds))
        else:
            wrapper = dicomwrappers.wrapper_from_data(path_or_ds)
        affine = np.asarray(wrapper.affine, dtype=np.float64)[:, [1, 0, 2, 3]]
    affine[:3, 2] *= -1
    return LPS_TO_RAS @ affine


def oblique(
    angles_deg: tuple[float, float, float], zooms: tuple[float, float, float]
) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() @ np.diag(
        zooms
    )
    affine[:3, 3] = [12.5, -30.25, 41.0]
    return affine


AXIAL = np.diag([0.8, 0.9, 2.5, 1.0]) + np.array(
    [[0, 0, 0, -40.0], [0, 0, 0, 20.0], [0, 0, 0, 7.0], [0] * 4]
)
SAGITTAL = np.array(
    [[0, 0, 1.2, -60.0], [0.9, 0, 0, -100.0], [0, 0.9, 0, -80.0], [0, 0, 0, 1.0]]
)  # i → A, j → S, k → R
CORONAL = np.array(
    [[-1.0, 0, 0, 90.0], [0, 0, -3.0, -10.0], [0, -1.0, 0, 60.0], [0, 0, 0, 1.0]]
)  # i → L, j → I, k → P


def random_data(shape: tuple[int, int, int] = (6, 5, 7), *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3000, shape).astype(np.float64)


# -- real files -----------------------------------------------------------------------


def test_ct5n_series_shape_spacing_affine() -> None:
    headers = [pydicom.dcmread(p) for p in sorted(CT5N.iterdir())]
    # Expected geometry from the headers by hand: axial slices, k must go up in z.
    by_z = sorted(headers, key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert [int(ds.InstanceNumber) for ds in by_z] == [10, 9, 8, 7, 6]  # not instance order
    row_spacing, col_spacing = (float(v) for v in by_z[0].PixelSpacing)
    step = float(by_z[1].ImagePositionPatient[2]) - float(by_z[0].ImagePositionPatient[2])
    x0, y0, z0 = (float(v) for v in by_z[0].ImagePositionPatient)
    expected = np.array(
        [
            [-col_spacing, 0, 0, -x0],
            [0, -row_spacing, 0, -y0],
            [0, 0, step, z0],
            [0, 0, 0, 1],
        ]
    )

    vol = read_dicom(CT5N)

    assert vol.shape == (16, 16, 5)
    assert vol.spacing == pytest.approx((0.488281, 0.488281, 2.5))
    np.testing.assert_allclose(vol.affine, expected, atol=1e-6)
    assert vol.axcodes == "LPS"
    assert vol.dtype == np.int32  # signed 16-bit stored values with intercept -1024
    hu = np.stack([ds.pixel_array.T.astype(np.int32) - 1024 for ds in by_z], axis=-1)
    np.testing.assert_array_equal(vol.data, hu)
    assert vol.source == str(CT5N)
    assert vol.metadata["n_files"] == 5
    assert vol.metadata["slice_step_mm"] == pytest.approx(2.5)
    assert vol.metadata["rescale_intercept"] == -1024.0


def test_ct_small_single_file_is_hu_and_matches_nibabel() -> None:
    path = PYDICOM_FILES / "CT_small.dcm"
    ds = pydicom.dcmread(path)

    vol = read_dicom(path)

    assert vol.shape == (128, 128, 1)
    expected = pydicom.pixels.apply_rescale(ds.pixel_array, ds).T[..., None]
    np.testing.assert_array_equal(vol.data, expected)
    assert vol.data.min() < 0  # HU, not stored values
    np.testing.assert_allclose(vol.affine, nibabel_affine_ras(path), atol=1e-5)
    assert vol.spacing == pytest.approx((0.661468, 0.661468, 5.0))
    assert vol.metadata["slice_step_source"] == "SliceThickness"
    assert vol.metadata["modality"] == "CT"
    assert vol.source == str(path)


def test_mr_small_without_rescale_keeps_stored_dtype() -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    vol = read_dicom(PYDICOM_FILES / "MR_small.dcm")
    assert vol.dtype == np.int16
    np.testing.assert_array_equal(vol.data[..., 0], ds.pixel_array.T)
    assert vol.metadata["rescale_slope"] == 1.0
    assert vol.metadata["echo_time_s"] == pytest.approx(float(ds.EchoTime) / 1000)
    assert vol.metadata["repetition_time_s"] == pytest.approx(float(ds.RepetitionTime) / 1000)


@pytest.mark.parametrize(
    "name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm"]
)
def test_other_transfer_syntaxes_decode_to_the_same_volume(name: str) -> None:
    reference = read_dicom(PYDICOM_FILES / "MR_small.dcm")
    vol = read_dicom(PYDICOM_FILES / name)
    np.testing.assert_array_equal(vol.data, reference.data)
    np.testing.assert_allclose(vol.affine, reference.affine)


def test_decimal_rescale_gives_float_or_int_by_rule() -> None:
    path = NIBABEL_FILES / "decimal_rescale.dcm"
    vol = read_dicom(path)
    # slope 2, intercept -4096, 12 stored bits: every rescaled value fits int16.
    assert vol.dtype == np.int16
    np.testing.assert_allclose(vol.affine, nibabel_affine_ras(path), atol=1e-5)
    assert vol.metadata["series_uid"] == ""  # this file has no SeriesInstanceUID


def test_enhanced_philips_file_matches_nibabel(tmp_path: Path) -> None:
    raw = gzip.decompress((NIBABEL_FILES / "philips_mprage.dcm.gz").read_bytes())
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw), stop_before_pixels=True)

    vol = read_dicom(raw)

    assert vol.shape == (256, 256, 176)
    assert vol.source is None
    assert vol.dtype == np.float32  # Philips slope 2.1079…
    assert vol.metadata["enhanced"] is True
    assert vol.metadata["rescale_slope"] == pytest.approx(2.1079365079365)
    assert vol.metadata["repetition_time_s"] > 0
    # nibabel orders frames along its own normal (the opposite of ours): flip its k.
    nib_affine = nibabel_affine_ras(ds)
    nib_affine[:3, 2] *= -1
    flip_k = np.eye(4)
    flip_k[2, 2], flip_k[2, 3] = -1, vol.shape[2] - 1
    # nibabel's k column is normal × spacing, ours the mean step between positions:
    # equal to 1e-4; both ends of the stack land on the first and last frame positions.
    np.testing.assert_allclose(vol.affine[:, :3], (nib_affine @ flip_k)[:, :3], atol=1e-4)
    last = vol.affine @ [0, 0, vol.shape[2] - 1, 1]
    np.testing.assert_allclose(last, nib_affine[:, 3], atol=1e-4)
    first = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    np.testing.assert_allclose(vol.origin, [-float(first[0]), -float(first[1]), float(first[2])])


def test_single_file_without_slice_thickness_uses_1_mm() -> None:
    from pydicom.pixels import get_decoder

    if not get_decoder(pydicom.uid.JPEG2000Lossless).is_available:
        pytest.skip("no JPEG 2000 decoder installed")
    path = NIBABEL_FILES / "slicethickness_empty_string.dcm"
    vol = read_dicom(path)
    assert vol.metadata["slice_step_source"] == "default 1 mm"
    assert vol.spacing[2] == pytest.approx(1.0)
    np.testing.assert_allclose(vol.affine[:3, :2], nibabel_affine_ras(path)[:3, :2], atol=1e-5)


def test_damaged_siemens_mosaic_is_refused_naming_the_file() -> None:
    # nibabel's 0.dcm declares 48 tiles (7×7) in a 256×256 image: they cannot tile it
    # (nibabel's own reader fails on it too).
    with pytest.raises(VolumeReadError, match=r"mosaic of 48 slices \(7×7 tiles\)") as info:
        read_dicom(NIBABEL_FILES / "0.dcm")
    assert "0.dcm" in str(info.value)


def test_several_series_are_listed_and_one_is_selected(tmp_path: Path) -> None:
    shutil.copytree(CT5N, tmp_path / "CT5N")
    shutil.copytree(CT2N, tmp_path / "CT2N")
    ct5n_uid = str(pydicom.dcmread(next(CT5N.iterdir())).SeriesInstanceUID)
    ct2n_uid = str(pydicom.dcmread(next(CT2N.iterdir())).SeriesInstanceUID)

    with pytest.raises(DicomSeriesError) as info:
        read_dicom(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "series_uid" in message
    for uid, description, n in [
        (ct5n_uid, "'SmartScore - Gated 0.5 sec'", 5),
        (ct2n_uid, "'Scout'", 2),
    ]:
        assert uid in message
        assert description in message
        assert f"{n} file(s)" in message
    assert message.count("modality=CT") == 2

    vol = read_dicom(tmp_path, series_uid=ct5n_uid)
    np.testing.assert_array_equal(vol.data, read_dicom(CT5N).data)
    # The two scouts of CT2N are orthogonal planes: not one stack.
    with pytest.raises(DicomSeriesError, match="orientation"):
        read_dicom(tmp_path, series_uid=ct2n_uid)
    with pytest.raises(DicomSeriesError, match=r"no series with series_uid='1\.2\.3'"):
        read_dicom(tmp_path, series_uid="1.2.3")


def test_list_series_skips_files_that_are_not_dicom_images(tmp_path: Path) -> None:
    shutil.copytree(CT5N, tmp_path / "a" / "CT5N")
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    (tmp_path / "README").write_text("not DICOM\n")
    (tmp_path / "a" / "sidecar.json").write_text("{}")

    series = list_series(tmp_path)

    assert len(series) == 1
    s = series[0]
    assert isinstance(s, DicomSeries)
    assert (s.n_files, s.n_frames, s.rows, s.cols, s.modality) == (5, 5, 16, 16, "CT")
    assert s.description == "SmartScore - Gated 0.5 sec"
    assert not s.enhanced
    assert sorted(p.name for p in s.files) == sorted(p.name for p in CT5N.iterdir())
    assert read_dicom(tmp_path).shape == (16, 16, 5)


# -- synthetic round trips --------------------------------------------------------------


@pytest.mark.parametrize(
    "affine",
    [
        AXIAL,
        SAGITTAL,
        CORONAL,
        oblique((20, -35, 50), (0.9, 1.1, 2.5)),
        oblique((3, 1, -2), (1, 1, 1)),
    ],
    ids=["axial", "sagittal", "coronal", "oblique", "slightly-oblique"],
)
@pytest.mark.parametrize(
    ("slope", "intercept", "dtype"),
    [(1.0, 0.0, np.uint16), (1.0, -1024.0, np.int32), (0.25, -100.0, np.float32)],
)
def test_round_trip(
    tmp_path: Path, affine: np.ndarray, slope: float, intercept: float, dtype: type
) -> None:
    data = random_data() * slope + intercept
    paths = write_dicom_series(
        tmp_path, data, affine, rescale_slope=slope, rescale_intercept=intercept
    )
    instance = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in paths]
    assert instance != sorted(instance)  # files are not in spatial order

    vol = read_dicom(tmp_path)

    assert vol.dtype == dtype
    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)
    np.testing.assert_allclose(vol.data, data, atol=slope / 2)
    assert vol.metadata["rescale_slope"] == slope
    assert vol.metadata["rescale_intercept"] == intercept
    assert vol.metadata["slice_step_mm"] == pytest.approx(vol.spacing[2])


def test_round_trip_ordered_names_and_ct(tmp_path: Path) -> None:
    data = random_data() - 1000
    paths = write_dicom_series(
        tmp_path, data, AXIAL, modality="CT", rescale_intercept=-1024, file_names="ordered"
    )
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    vol = read_dicom(tmp_path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.metadata["modality"] == "CT"


def test_negative_determinant_comes_back_with_k_reversed(tmp_path: Path) -> None:
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])  # "LAS": the DICOM normal points to inferior
    data = random_data()
    write_dicom_series(tmp_path, data, affine)
    vol = read_dicom(tmp_path)
    flip_k = np.eye(4)
    flip_k[2, 2], flip_k[2, 3] = -1, data.shape[2] - 1
    np.testing.assert_allclose(vol.affine, affine @ flip_k, atol=1e-9)
    np.testing.assert_array_equal(vol.data, data[..., ::-1])


def test_slice_rescale_that_differs_between_files_gives_float32(tmp_path: Path) -> None:
    data = random_data()
    paths = write_dicom_series(tmp_path, data, AXIAL, file_names="ordered")
    ds = pydicom.dcmread(paths[3])
    ds.RescaleSlope = "2"
    ds.save_as(paths[3])
    expected = data.copy()
    expected[..., 3] *= 2

    vol = read_dicom(tmp_path)

    assert vol.dtype == np.float32
    np.testing.assert_array_equal(vol.data, expected)
    assert vol.metadata["rescale_slope"] == [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    json.dumps(vol.metadata)


def test_enhanced_round_trip(tmp_path: Path) -> None:
    data = random_data((5, 4, 9)) * 0.5 + 10
    affine = oblique((-15, 25, 70), (1.0, 1.2, 1.5))
    paths = write_dicom_series(
        tmp_path, data, affine, enhanced=True, rescale_slope=0.5, rescale_intercept=10
    )
    assert [p.name for p in paths] == ["enhanced.dcm"]
    series = list_series(tmp_path)
    assert (series[0].enhanced, series[0].n_files, series[0].n_frames) == (True, 1, 9)

    vol = read_dicom(paths[0])

    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)
    np.testing.assert_allclose(vol.data, data, atol=0.25)
    assert vol.metadata["enhanced"] is True
    assert vol.metadata["n_slices"] == 9


def test_enhanced_duplicate_frame_is_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, random_data(), AXIAL, enhanced=True, duplicate_slices=[2])
    with pytest.raises(DicomSeriesError, match=r"share a slice position.*enhanced\.dcm frame"):
        read_dicom(tmp_path)


# -- inconsistent series ----------------------------------------------------------------


@pytest.mark.parametrize("affine", [AXIAL, oblique((20, -35, 50), (0.9, 1.1, 2.5))])
def test_missing_slice_is_refused(tmp_path: Path, affine: np.ndarray) -> None:
    write_dicom_series(tmp_path, random_data((4, 4, 8)), affine, drop_slices=[4])
    with pytest.raises(
        DicomSeriesError, match=r"missing slice.*about 1 slice\(s\) missing"
    ) as info:
        read_dicom(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_duplicated_slice_is_refused(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, random_data(), AXIAL, duplicate_slices=[3])
    with pytest.raises(DicomSeriesError, match="2 images share a slice position") as info:
        read_dicom(tmp_path)
    message = str(info.value)
    assert paths[3].name in message
    assert paths[-1].name in message
    # New SOPInstanceUID and InstanceNumber: not a copy of a file, and the message says so.
    assert "copied twice" not in message
    assert "nothing but InstanceNumber tells them apart" in message
    assert "1 to 2 images per position" in message


def test_a_file_copied_twice_is_named_as_such(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, random_data(), AXIAL)
    shutil.copy(paths[2], tmp_path / "copy.dcm")
    with pytest.raises(DicomSeriesError, match=r"same SOPInstanceUID.*copied twice") as info:
        read_dicom(tmp_path)
    assert "copy.dcm" in str(info.value)


def test_duplicated_positions_with_distinct_echoes_name_the_echoes(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, random_data(), AXIAL, duplicate_slices=[3])
    for echo, path in ((1, paths[3]), (2, paths[-1])):
        ds = pydicom.dcmread(path)
        ds.EchoNumbers = echo
        ds.save_as(path)
    with pytest.raises(
        DicomSeriesError, match=r"EchoNumbers \(1, 2\).*no grouping.*complete volumes"
    ) as info:
        read_dicom(tmp_path)
    assert "copied twice" not in str(info.value)


def shift_slice(path: Path, offset_lps: tuple[float, float, float]) -> None:
    ds = pydicom.dcmread(path)
    ds.ImagePositionPatient = [
        float(v) + o for v, o in zip(ds.ImagePositionPatient, offset_lps, strict=True)
    ]
    ds.save_as(path)


def test_non_uniform_spacing_is_refused_unless_tolerated(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, random_data(), AXIAL)  # step 2.5 mm
    shift_slice(paths[3], (0, 0, 0.3))
    with pytest.raises(DicomSeriesError, match="non-uniform slice spacing") as info:
        read_dicom(tmp_path)
    assert paths[3].name in str(info.value)
    vol = read_dicom(tmp_path, slice_tolerance=0.2)
    assert vol.spacing[2] == pytest.approx(2.5)


def test_in_plane_shift_of_one_slice_is_refused(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, random_data(), AXIAL)
    shift_slice(paths[2], (1.0, 0, 0))
    with pytest.raises(DicomSeriesError, match="shifted in-plane"):
        read_dicom(tmp_path)


def test_gantry_tilt_gives_a_sheared_affine(tmp_path: Path) -> None:
    affine = AXIAL.copy()
    affine[1, 2] = 0.5  # each slice moves 0.5 mm anterior: a tilted CT gantry
    data = random_data()
    write_dicom_series(tmp_path, data, affine)
    vol = read_dicom(tmp_path)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-9)
    assert vol.metadata["slice_step_mm"] == pytest.approx(2.5)


def test_differing_pixel_spacing_is_refused(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path, random_data(), AXIAL)
    ds = pydicom.dcmread(paths[1])
    ds.PixelSpacing = [1.0, 1.0]
    ds.save_as(paths[1])
    with pytest.raises(DicomSeriesError, match="PixelSpacing"):
        read_dicom(tmp_path)


def test_differing_image_size_is_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, random_data((6, 5, 4)), AXIAL, series_uid="1.2.3.4")
    write_dicom_series(tmp_path / "other", random_data((6, 6, 1)), AXIAL, series_uid="1.2.3.4")
    with pytest.raises(DicomSeriesError, match=r"size \(Rows, Columns\)"):
        read_dicom(tmp_path)


# -- limits and errors --------------------------------------------------------------------


def test_max_voxels_is_checked_before_any_pixel_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dicom_series(tmp_path, random_data((6, 5, 7)), AXIAL)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(dicom, "decode", no_decoding)
    with pytest.raises(VolumeTooLargeError) as info:
        read_dicom(tmp_path, max_voxels=6 * 5 * 7 - 1)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "6×5×7" in message
    assert "max_voxels=209" in message
    # The truncated pixel data of MR_truncated.dcm is never reached either.
    with pytest.raises(VolumeTooLargeError, match="64×64×1"):
        read_dicom(PYDICOM_FILES / "MR_truncated.dcm", max_voxels=1000)


def test_folder_without_dicom_is_refused(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("hello\n")
    (tmp_path / "scan.json").write_text("{}")
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    with pytest.raises(VolumeReadError, match="no DICOM image file found") as info:
        read_dicom(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert list_series(tmp_path) == []


def test_bytes_input_reads_like_the_file() -> None:
    path = PYDICOM_FILES / "CT_small.dcm"
    from_bytes = read_dicom(path.read_bytes())
    from_file = read_dicom(path)
    np.testing.assert_array_equal(from_bytes.data, from_file.data)
    np.testing.assert_array_equal(from_bytes.affine, from_file.affine)
    assert from_bytes.source is None


def test_file_without_preamble_is_read(tmp_path: Path) -> None:
    data = random_data((4, 3, 1))
    (path,) = write_dicom_series(tmp_path, data, AXIAL)
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(path.read_bytes()[132:])  # no preamble, no "DICM"
    vol = read_dicom(bare)
    np.testing.assert_array_equal(vol.data, data)
    path.unlink()
    (tmp_path / "README").write_text("not DICOM\n")
    # Folders recognise it by content too; the README is still skipped.
    np.testing.assert_array_equal(read_dicom(tmp_path).data, data)


def test_truncated_pixel_data_is_a_read_error_naming_the_file() -> None:
    path = PYDICOM_FILES / "MR_truncated.dcm"
    with pytest.raises(VolumeReadError, match="truncated") as info:
        read_dicom(path)
    assert "MR_truncated.dcm" in str(info.value)


@pytest.mark.parametrize("cut", [200, 1500, 3000, 3900])
def test_truncated_file_in_a_folder_is_never_skipped(tmp_path: Path, cut: int) -> None:
    shutil.copytree(CT5N, tmp_path, dirs_exist_ok=True)
    victim = tmp_path / "2693"  # 3936 bytes, pixel data from byte 3412
    victim.write_bytes(victim.read_bytes()[:cut])
    with pytest.raises(VolumeReadError, match="truncated") as info:
        read_dicom(tmp_path)
    assert "2693" in str(info.value)
    if cut < 3412:  # the header itself is cut: the header scan already refuses it
        with pytest.raises(VolumeReadError, match="2693"):
            list_series(tmp_path)


def test_single_file_that_is_not_dicom_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some text, long enough to look like something " * 10)
    with pytest.raises(UnsupportedFormatError, match="not a DICOM image"):
        read_dicom(path)
    with pytest.raises(UnsupportedFormatError):
        read_dicom(b"\x00" * 300)


def test_missing_path_raises_volume_read_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(VolumeReadError, match="no such DICOM file or folder") as info:
        read_dicom(missing)
    assert info.value.path == str(missing)


def test_metadata_is_json_serialisable() -> None:
    vol = read_dicom(PYDICOM_FILES / "MR_small.dcm")
    restored = json.loads(json.dumps(vol.metadata))
    assert restored["format"] == "dicom"
    assert restored["modality"] == "MR"
    assert restored["transfer_syntax"] == "1.2.840.10008.1.2.1"
    assert restored["series_uid"] == str(
        pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm").SeriesInstanceUID
    )
    assert "manufacturer" in restored
