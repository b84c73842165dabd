"""Every transfer syntax pydicom ships a test file for, decoded by brrrr.core.io._dicom_pixels.

Compressed files are compared with an uncompressed (or losslessly compressed) copy of
the same image where pydicom ships one, and otherwise with pydicom's own decoding of
the file (so the test shows the file is routed to the right decoder and laid out as
our volumes are). Secondary-capture files have no geometry: the tests add one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from brrrr.core.errors import MissingDependencyError
from brrrr.core.io import _dicom_pixels
from brrrr.core.io.dicom import read_dicom
from brrrr.core.testing import write_dicom_series


def shipped(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom no longer ships {name}"
    return Path(path)


def placed(name: str, tmp_path: Path) -> Path:
    """A copy of a pydicom test file with a position, orientation and spacing."""
    ds = pydicom.dcmread(shipped(name))
    ds.ImagePositionPatient = ds.get("ImagePositionPatient") or [0, 0, 0]
    ds.ImageOrientationPatient = ds.get("ImageOrientationPatient") or [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = ds.get("PixelSpacing") or [1, 1]
    out = tmp_path / name
    ds.save_as(out)
    return out


def as_volume(pixels: np.ndarray) -> np.ndarray:
    """pydicom's (rows, cols[, samples]) array in our (cols, rows, 1) / (3, cols, rows, 1)."""
    if pixels.ndim == 3:
        return np.moveaxis(pixels, -1, 0).transpose(0, 2, 1)[..., None]
    return pixels.T[..., None]


MR_SMALL_COPIES = {
    "MR_small_implicit.dcm": "1.2.840.10008.1.2",
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "MR_small_expb.dcm": "1.2.840.10008.1.2.2",
    "MR_small_padded.dcm": "1.2.840.10008.1.2.1",
    "MR_small_RLE.dcm": "1.2.840.10008.1.2.5",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "MR_small_jp2klossless.dcm": "1.2.840.10008.1.2.4.90",
}


@pytest.mark.parametrize("name", sorted(MR_SMALL_COPIES))
def test_mr_small_in_every_syntax_equals_the_uncompressed_file(name: str) -> None:
    reference = read_dicom(shipped("MR_small.dcm"))

    vol = read_dicom(shipped(name))

    assert vol.metadata["transfer_syntax"] == MR_SMALL_COPIES[name]
    assert vol.dtype == reference.dtype
    np.testing.assert_array_equal(vol.data, reference.data)
    np.testing.assert_allclose(vol.affine, reference.affine)


RGB_COPIES = {
    # name: (transfer syntax, largest difference from the RLE Lossless reference)
    "SC_rgb_jpeg_gdcm.dcm": ("1.2.840.10008.1.2.4.70", 0),  # JPEG Lossless SV1
    "SC_rgb_gdcm_KY.dcm": ("1.2.840.10008.1.2.4.91", 0),  # JPEG 2000, lossless here
    "SC_rgb_dcmtk_+eb+cr.dcm": ("1.2.840.10008.1.2.4.50", 2),  # JPEG baseline (lossy)
    "SC_rgb_jpeg_dcmtk.dcm": ("1.2.840.10008.1.2.4.50", 8),  # baseline, YBR_FULL
    "SC_rgb_jls_lossy_line.dcm": ("1.2.840.10008.1.2.4.81", 3),  # JPEG-LS near-lossless
}


@pytest.mark.parametrize("name", sorted(RGB_COPIES))
def test_rgb_image_in_every_syntax_matches_the_rle_reference(name: str, tmp_path: Path) -> None:
    syntax, tolerance = RGB_COPIES[name]
    reference = pydicom.dcmread(shipped("SC_rgb_rle.dcm")).pixel_array.astype(np.int64)

    vol = read_dicom(placed(name, tmp_path))

    assert vol.metadata["transfer_syntax"] == syntax
    assert vol.metadata["channels"] == "RGB"
    assert vol.data.shape == (3, 100, 100, 1)
    assert np.abs(vol.data.astype(np.int64) - as_volume(reference)).max() <= tolerance


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51"),  # 12-bit JPEG extended
        ("JPEGLSNearLossless_16.dcm", "1.2.840.10008.1.2.4.81"),
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.91"),
        ("693_J2KI.dcm", "1.2.840.10008.1.2.4.91"),
        ("image_dfl.dcm", "1.2.840.10008.1.2.1.99"),  # deflated explicit VR
        ("SC_rgb_rle.dcm", "1.2.840.10008.1.2.5"),
    ],
)
def test_syntax_without_a_reference_decodes_as_pydicom_does(
    name: str, syntax: str, tmp_path: Path
) -> None:
    path = placed(name, tmp_path)
    ds = pydicom.dcmread(path)

    vol = read_dicom(path)

    assert vol.metadata["transfer_syntax"] == syntax
    expected = as_volume(ds.pixel_array)
    if ds.SamplesPerPixel == 1:
        expected = pydicom.pixels.apply_rescale(ds.pixel_array, ds).T[..., None]
    np.testing.assert_array_equal(vol.data, expected)


@pytest.mark.parametrize("syntax", ["jpeg-lossless", "rle"])
@pytest.mark.parametrize("enhanced", [False, True], ids=["classic", "enhanced"])
def test_written_greyscale_series_compressed_round_trips(
    tmp_path: Path, syntax: str, enhanced: bool
) -> None:
    data = np.random.default_rng(0).integers(0, 65535, (2, 7, 5, 4)).astype(np.float64)
    tags = [{"EchoNumbers": 1, "EchoTime": "10"}, {"EchoNumbers": 2, "EchoTime": "20"}]
    affine = np.diag([0.9, 0.8, 3.0, 1.0])
    write_dicom_series(
        tmp_path, data, affine, transfer_syntax=syntax, enhanced=enhanced, volume_tags=tags
    )
    vol = read_dicom(tmp_path)
    expected_syntax = {"jpeg-lossless": "1.2.840.10008.1.2.4.70", "rle": "1.2.840.10008.1.2.5"}
    assert vol.metadata["transfer_syntax"] == expected_syntax[syntax]
    np.testing.assert_array_equal(vol.data, data)


def test_missing_decoder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dicom_pixels, "_decoder_available", lambda uid: False)
    path = shipped("MR_small_jpeg_ls_lossless.dcm")
    with pytest.raises(MissingDependencyError) as info:
        read_dicom(path)
    message = str(info.value)
    assert isinstance(info.value, ImportError)
    assert "MR_small_jpeg_ls_lossless.dcm" in message
    assert "JPEG-LS Lossless" in message
    assert "1.2.840.10008.1.2.4.80" in message
    assert 'pip install "brrrr-core[dicom-codecs]"' in message


def test_installed_codecs_decode_every_compressed_syntax() -> None:
    from pydicom.pixels import get_decoder

    for uid in (
        pydicom.uid.JPEGBaseline8Bit,
        pydicom.uid.JPEGExtended12Bit,
        pydicom.uid.JPEGLosslessSV1,
        pydicom.uid.JPEGLSLossless,
        pydicom.uid.JPEGLSNearLossless,
        pydicom.uid.JPEG2000Lossless,
        pydicom.uid.JPEG2000,
        pydicom.uid.RLELossless,
    ):
        assert get_decoder(uid).is_available, uid.name
