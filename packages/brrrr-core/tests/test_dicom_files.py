"""What counts as a DICOM image file: content sniffing, preamble-less and gzipped files,
skipped non-image objects, localizers, Philips scaling, file names in every message."""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from brrrr.core import load_volume
from brrrr.core.errors import DicomSeriesError, VolumeReadError
from brrrr.core.io._dicom_sniff import looks_like_dicom
from brrrr.core.io.dicom import SkippedFilesWarning, list_series, read_dicom
from brrrr.core.testing import write_dicom_series, write_nifti

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"
AXIAL = np.array([[0.8, 0, 0, -40.0], [0, 0.9, 0, 20.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1.0]])
SAGITTAL = np.array([[0, 0, 1.2, -60.0], [0.9, 0, 0, -100.0], [0, 0.9, 0, -80.0], [0, 0, 0, 1]])
CORONAL = np.array([[-1.0, 0, 0, 90.0], [0, 0, -3.0, -10.0], [0, -1.0, 0, 60.0], [0, 0, 0, 1]])
RAW_DATA = "1.2.840.10008.5.1.4.1.1.66"
PRESENTATION_STATE = "1.2.840.10008.5.1.4.1.1.11.1"


def random_data(shape: tuple[int, ...] = (6, 5, 4), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3000, shape).astype(np.float64)


def write_non_image(path: Path, sop_class: str, series_uid: str) -> None:
    """A non-image object as Philips writes them: Rows/Columns, private data, no pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality, ds.Manufacturer = series_uid, "MR", "Philips"
    ds.Rows, ds.Columns = 5, 6
    block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
    block.add_new(0x0E, "FL", 1.0)
    ds.save_as(path, enforce_file_format=True)


# -- non-image objects --------------------------------------------------------------------


def test_raw_data_and_other_non_image_objects_are_skipped_and_listed(tmp_path: Path) -> None:
    data = random_data()
    write_dicom_series(tmp_path, data, AXIAL, series_uid="1.2.3.4")
    write_non_image(tmp_path / "XX_0001", RAW_DATA, "1.2.3.4")
    write_non_image(tmp_path / "PS_0001", PRESENTATION_STATE, "1.2.3.4")
    shutil.copy(PYDICOM_FILES / "test-SR.dcm", tmp_path / "SR_0001")
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")

    with pytest.warns(SkippedFilesWarning) as caught:
        vol = read_dicom(tmp_path)

    np.testing.assert_array_equal(vol.data, data)
    message = str(caught[0].message)
    assert "skipped 3 DICOM object(s) without an image" in message
    assert "1 Raw Data Storage (XX_0001)" in message
    assert "Grayscale Softcopy Presentation State Storage (PS_0001)" in message
    assert "Comprehensive SR Storage (SR_0001)" in message
    assert "DICOMDIR" not in message
    skipped = {s["file"]: s["sop_class"] for s in vol.metadata["skipped_files"]}
    assert skipped == {
        "DICOMDIR": "Media Storage Directory Storage",
        "PS_0001": "Grayscale Softcopy Presentation State Storage",
        "SR_0001": "Comprehensive SR Storage",
        "XX_0001": "Raw Data Storage",
    }
    assert len(list_series(tmp_path)) == 1


def test_dicomdir_alone_is_skipped_without_a_warning(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, random_data(), AXIAL)
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vol = read_dicom(tmp_path)
    assert vol.metadata["skipped_files"] == [
        {"file": "DICOMDIR", "sop_class": "Media Storage Directory Storage"}
    ]


def test_folder_or_file_with_raw_data_only(tmp_path: Path) -> None:
    write_non_image(tmp_path / "XX_0001", RAW_DATA, "1.2.3")
    with pytest.raises(VolumeReadError, match=r"1 non-image DICOM object\(s\) skipped"):
        read_dicom(tmp_path)
    with pytest.raises(VolumeReadError, match="Raw Data Storage without an image") as info:
        read_dicom(tmp_path / "XX_0001")
    assert "XX_0001" in str(info.value)


# -- recognising DICOM by content -------------------------------------------------------------


def test_sniffing_tells_dicom_from_other_content(tmp_path: Path) -> None:
    (path,) = write_dicom_series(tmp_path, random_data((4, 3, 1)), AXIAL)
    full = path.read_bytes()
    assert looks_like_dicom(full[:1024])
    assert looks_like_dicom(full[132:1156])  # no preamble, file meta first
    ds = pydicom.dcmread(path)
    del ds.file_meta
    bare = tmp_path / "implicit"
    ds.save_as(bare, implicit_vr=True, little_endian=True)  # no preamble, no meta
    assert looks_like_dicom(bare.read_bytes()[:1024])
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm", "rtstruct.dcm"):
        assert looks_like_dicom((PYDICOM_FILES / name).read_bytes()[:1024]), name
    nifti = write_nifti(tmp_path / "a.nii", np.zeros((2, 2, 2), np.int16))
    assert not looks_like_dicom(nifti.read_bytes()[:1024])
    assert not looks_like_dicom(b'{"EchoTime": 0.03}' + b" " * 200)
    assert not looks_like_dicom(b"\x00" * 1024)
    assert not looks_like_dicom(b"README: scanner export\n" * 20)


def test_siemens_preamble_that_looks_like_nifti_is_read_as_dicom() -> None:
    path = NIBABEL_FILES / "siemens_dwi_0.dcm.gz"
    raw = gzip.decompress(path.read_bytes())
    assert raw[:4] == (348).to_bytes(4, "little")  # a NIfTI-1 sizeof_hdr in the preamble
    vol = load_volume(path)
    assert vol.metadata["format"] == "dicom"
    assert vol.source == str(path)


def test_preamble_less_file_without_suffix_and_gzipped(tmp_path: Path) -> None:
    data = random_data((4, 3, 2))
    paths = write_dicom_series(tmp_path / "series", data, AXIAL, preamble=False)
    assert all(p.read_bytes()[128:132] != b"DICM" for p in paths)
    np.testing.assert_array_equal(load_volume(tmp_path / "series").data, data)
    single = tmp_path / "IM0001"  # no .dcm suffix: recognised by content
    single.write_bytes(paths[0].read_bytes())
    assert load_volume(single).shape == (4, 3, 1)
    zipped = tmp_path / "IM0001.dcm.gz"
    zipped.write_bytes(gzip.compress(paths[0].read_bytes()))
    vol = load_volume(zipped)
    assert vol.source == str(zipped)
    np.testing.assert_array_equal(vol.data, read_dicom(paths[0]).data)
    np.testing.assert_array_equal(read_dicom(zipped).data, vol.data)


@pytest.mark.parametrize("reader", [load_volume, read_dicom], ids=["load_volume", "read_dicom"])
def test_errors_from_gzipped_files_name_the_file(tmp_path: Path, reader: object) -> None:
    (path,) = write_dicom_series(tmp_path / "s", random_data((8, 8, 1)), AXIAL)
    raw = path.read_bytes()
    cut = tmp_path / "cut.dcm.gz"
    cut.write_bytes(gzip.compress(raw[: len(raw) - 40]))  # pixel data cut short
    with pytest.raises(VolumeReadError, match="truncated") as info:
        reader(cut)  # type: ignore[operator]
    assert str(cut) in str(info.value)
    assert "<bytes>" not in str(info.value)
    sheared = tmp_path / "shear.dcm.gz"
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [1, 0, 0, 0.5, 0.5, 0]
    ds.save_as(tmp_path / "shear.dcm")
    sheared.write_bytes(gzip.compress((tmp_path / "shear.dcm").read_bytes()))
    with pytest.raises(VolumeReadError, match="orthogonal") as info:
        reader(sheared)  # type: ignore[operator]
    assert str(sheared) in str(info.value)


# -- localizers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("labelled", [True, False], ids=["LOCALIZER", "three-planes"])
def test_localizer_is_named_as_such(tmp_path: Path, labelled: bool) -> None:
    image_type = ["ORIGINAL", "PRIMARY", "LOCALIZER" if labelled else "OTHER"]
    for name, affine in (("ax", AXIAL), ("sag", SAGITTAL), ("cor", CORONAL)):
        write_dicom_series(
            tmp_path / name,
            random_data((6, 6, 1)),
            affine,
            series_uid="1.2.3.9",
            series_description="survey" if labelled else "planes",
            volume_tags=[{"ImageType": image_type}],
        )
    with pytest.raises(DicomSeriesError, match="localizer") as info:
        read_dicom(tmp_path)
    message = str(info.value)
    assert "3 orientations" in message
    for plane in ("axial", "sagittal", "coronal"):
        assert plane in message


def test_two_orientations_without_localizer_marks_say_orientation(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "a", random_data(), AXIAL, series_uid="1.2.3.9")
    write_dicom_series(tmp_path / "b", random_data(), SAGITTAL, series_uid="1.2.3.9")
    with pytest.raises(DicomSeriesError, match="differ in orientation") as info:
        read_dicom(tmp_path)
    assert "localizer" not in str(info.value)


# -- Philips scaling ----------------------------------------------------------------------------


@pytest.mark.parametrize("enhanced", [False, True], ids=["classic", "enhanced"])
def test_philips_precise_scaling(tmp_path: Path, enhanced: bool) -> None:
    data = random_data() * 0.5 + 10  # displayed values: stored × 0.5 + 10
    write_dicom_series(
        tmp_path,
        data,
        AXIAL,
        rescale_slope=0.5,
        rescale_intercept=10,
        philips_scale_slope=0.3,
        enhanced=enhanced,
    )

    display = read_dicom(tmp_path)
    precise = load_volume(tmp_path, philips_scaling="precise")

    np.testing.assert_allclose(display.data, data, atol=1e-4)
    # FP = DV / (RS × SS)
    np.testing.assert_allclose(precise.data, data / (0.5 * 0.3), rtol=1e-6)
    assert precise.dtype == np.float32
    assert display.metadata["philips_scaling"] == "display"
    assert precise.metadata["philips_scaling"] == "precise"
    assert precise.metadata["philips_scale_slope"] == pytest.approx(0.3)
    assert precise.metadata["rescale_slope"] == pytest.approx(1 / 0.3)


def test_philips_precise_scaling_of_the_shipped_enhanced_file() -> None:
    raw = gzip.decompress((NIBABEL_FILES / "philips_mprage.dcm.gz").read_bytes())
    display = read_dicom(raw)
    precise = read_dicom(raw, philips_scaling="precise")
    scale = precise.metadata["philips_scale_slope"]
    assert scale == pytest.approx(0.00026825038)
    slope = display.metadata["rescale_slope"]
    np.testing.assert_allclose(precise.data, display.data / (slope * scale), rtol=1e-5)


def test_precise_scaling_without_the_philips_tag_is_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path, random_data(), AXIAL)
    with pytest.raises(VolumeReadError, match=r"2005,100E.*philips_scaling='display'") as info:
        read_dicom(tmp_path, philips_scaling="precise")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(ValueError, match="philips_scaling"):
        read_dicom(tmp_path, philips_scaling="exact")  # type: ignore[arg-type]
