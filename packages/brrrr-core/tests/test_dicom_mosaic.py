"""Siemens mosaics: brrrr.core.io._dicom_mosaic against nibabel's MosaicWrapper."""

from __future__ import annotations

import gzip
import io
import shutil
import warnings
from pathlib import Path
from typing import Any

import nibabel
import numpy as np
import pydicom
import pytest

from brrrr.core import load_volume
from brrrr.core.errors import VolumeReadError
from brrrr.core.io._dicom_mosaic import csa_image_header, csa_value
from brrrr.core.io.dicom import read_dicom
from brrrr.core.testing import write_dicom_mosaics

NIBABEL_FILES = Path(nibabel.__file__).parent / "nicom" / "tests" / "data"
SIEMENS_DWI = [NIBABEL_FILES / "siemens_dwi_0.dcm.gz", NIBABEL_FILES / "siemens_dwi_1000.dcm.gz"]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
AFFINE = np.array(
    [[0.8, 0, 0, -40.0], [0, 0.9, 0, 20.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1.0]]
)  # axial, k → S
OBLIQUE = np.array(
    [
        [0.0, 0.0, 3.0, -60.0],  # k → R
        [2.0 * np.cos(0.3), -1.5 * np.sin(0.3), 0.0, 10.0],
        [2.0 * np.sin(0.3), 1.5 * np.cos(0.3), 0.0, -5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)  # sagittal, tilted by 0.3 rad


def nibabel_mosaic(
    ds_or_path: pydicom.Dataset | Path,
) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
    """nibabel's data, affine, wrapper and b-vector, put in our conventions.

    nibabel's arrays are (row, column, slice) with an LPS affine, its slices along the
    CSA normal; ours are (column, row, slice) with a RAS affine, slices along DICOM's
    IOP[0:3] × IOP[3:6]. So: swap the first two axes and affine columns, convert LPS to
    RAS, and reverse k where the two normals point apart. Its b-vector is in its
    (row, column, CSA normal) frame: swap, and negate the third where k was reversed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import dicomwrappers

        if isinstance(ds_or_path, Path):
            wrapper = dicomwrappers.wrapper_from_file(str(ds_or_path))
        else:
            wrapper = dicomwrappers.wrapper_from_data(ds_or_path)
        data = wrapper.get_data().transpose(1, 0, 2)
        affine = LPS_TO_RAS @ np.asarray(wrapper.affine)[:, [1, 0, 2, 3]]
    assert type(wrapper).__name__ == "MosaicWrapper"
    dicom_normal = np.cross(*np.asarray(wrapper.image_orient_patient).T)  # IOP[0:3] × IOP[3:6], LPS
    b_vector = np.full(3, np.nan)
    if wrapper.b_vector is not None:
        nib = np.asarray(wrapper.b_vector)
        b_vector = np.array([nib[1], nib[0], nib[2]])
    if float(np.asarray(wrapper.slice_normal) @ dicom_normal) < 0:
        flip = np.eye(4)
        flip[2, 2], flip[2, 3] = -1, data.shape[2] - 1
        data, affine = data[..., ::-1], affine @ flip
        b_vector[2] *= -1
    return data, affine, wrapper, b_vector


def dataset(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(gzip.decompress(path.read_bytes())))


def random_volumes(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(np.float64)


@pytest.mark.parametrize("affine", [AFFINE, OBLIQUE], ids=["axial", "oblique"])
@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
def test_written_mosaic_matches_nibabel(
    tmp_path: Path, affine: np.ndarray, descending: bool
) -> None:
    data = random_volumes((6, 5, 7))  # 7 tiles in a 3×3 grid: two blank tiles
    (path,) = write_dicom_mosaics(tmp_path, data, affine, descending=descending)
    nib_data, nib_affine, _, _ = nibabel_mosaic(path)

    vol = read_dicom(path)

    assert vol.shape == (6, 5, 7)
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_array_equal(vol.data, nib_data)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    np.testing.assert_allclose(vol.affine, nib_affine, atol=1e-5)
    assert vol.metadata["mosaic"] is True
    assert vol.metadata["slice_step_source"] == "SpacingBetweenSlices (Siemens mosaic)"


def test_mosaic_series_is_a_dwi_volume_with_image_frame_b_vectors(tmp_path: Path) -> None:
    data = random_volumes((3, 6, 5, 4), seed=1)
    gradients = [[0.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, -0.8]]  # patient LPS
    paths = write_dicom_mosaics(
        tmp_path,
        data,
        OBLIQUE,
        descending=True,
        b_values=[0, 1000, 2000],
        gradients_lps=gradients,
        slice_times_ms=[0.0, 500.0, 250.0, 750.0],
    )

    vol = read_dicom(tmp_path)

    assert vol.shape == (6, 5, 4)
    assert vol.channels == 3
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, OBLIQUE, atol=1e-5)
    assert vol.metadata["n_volumes"] == 3
    assert vol.metadata["b_values"] == [0.0, 1000.0, 2000.0]
    assert vol.metadata["acquisition_numbers"] == [1, 2, 3]
    assert vol.metadata["slice_times_s"] == [0.0, 0.5, 0.25, 0.75]
    # Image frame: components along the voxel axes i, j, k (unit columns of the affine).
    axes = LPS_TO_RAS[:3, :3] @ (OBLIQUE[:3, :3] / np.linalg.norm(OBLIQUE[:3, :3], axis=0))
    for got, g in zip(vol.metadata["b_vectors"], gradients, strict=True):
        np.testing.assert_allclose(got, axes.T @ np.asarray(g), atol=1e-6)
    # nibabel's b-vectors are in its (row, column, slice) frame, their sign arbitrary.
    for v in (1, 2):
        _, _, wrapper, theirs = nibabel_mosaic(paths[v])
        ours = np.asarray(vol.metadata["b_vectors"][v])
        # B = b g gᵀ gives the direction up to its sign.
        assert min(np.abs(ours - theirs).max(), np.abs(ours + theirs).max()) < 1e-6
        assert wrapper.b_value == pytest.approx(vol.metadata["b_values"][v])


@pytest.mark.parametrize("path", SIEMENS_DWI, ids=lambda p: p.name)
def test_shipped_siemens_dwi_mosaic_matches_nibabel(path: Path) -> None:
    ds = dataset(path)
    nib_data, nib_affine, wrapper, theirs = nibabel_mosaic(ds)

    vol = load_volume(path)  # a .dcm.gz whose preamble starts like a NIfTI header

    assert vol.shape == (128, 128, 48) == nib_data.shape
    np.testing.assert_array_equal(vol.data, nib_data)
    # nibabel's k column is normal × thickness, ours the step between tile positions.
    np.testing.assert_allclose(vol.affine, nib_affine, atol=1e-4)
    assert vol.source == str(path)
    csa = csa_image_header(ds)
    assert vol.metadata["b_value"] == float(csa_value(csa, "B_value"))
    if wrapper.b_vector is not None:
        ours = np.asarray(vol.metadata["b_vector"])
        # nibabel derives its vector from the B matrix, we read DiffusionGradientDirection.
        assert min(np.abs(ours - theirs).max(), np.abs(ours + theirs).max()) < 1e-3
    assert len(vol.metadata["slice_times_s"]) == 48


def test_shipped_siemens_dwi_pair_is_one_4d_series(tmp_path: Path) -> None:
    for path in SIEMENS_DWI:
        shutil.copy(path, tmp_path / path.name)  # still gzipped: folder scans inflate them

    vol = read_dicom(tmp_path)

    assert vol.data.shape == (2, 128, 128, 48)
    assert vol.metadata["b_values"] == [0.0, 1000.0]
    assert vol.metadata["b_vectors"][0] == [0.0, 0.0, 0.0]
    assert vol.metadata["volume_keys"][0] == "AcquisitionNumber"
    np.testing.assert_allclose(vol.affine, load_volume(SIEMENS_DWI[0]).affine)


def test_mosaic_without_tile_count_names_the_file(tmp_path: Path) -> None:
    (path,) = write_dicom_mosaics(tmp_path, random_volumes((4, 4, 3)), AFFINE)
    ds = pydicom.dcmread(path)
    del ds[0x0029, 0x1010]
    ds.save_as(path)
    with pytest.raises(VolumeReadError, match="NumberOfImagesInMosaic") as info:
        read_dicom(path)
    assert path.name in str(info.value)
