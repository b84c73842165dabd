"""Layer: what NiiVue is given is the same volume on the same world grid; bad input is named."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brrrr.core import Volume, load_volume, samples, save_volume
from brrrr.core.errors import BrrrrError, UnsupportedFormatError
from brrrr.core.testing import write_dicom_series
from brrrr.demos.errors import LayerError, ViewerError
from brrrr.demos.viewer import Layer


def _oblique_affine() -> np.ndarray:
    angle = np.deg2rad(20.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([2.0, 2.5, 3.0])
    affine[:3, 3] = (-40.5, 12.25, -7.0)
    return affine


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "oblique"])
def test_nifti_bytes_round_trip_the_affine_and_the_voxels(axcodes: str) -> None:
    if axcodes == "oblique":
        volume = Volume(samples.phantom(shape=(20, 24, 16), spacing=4.0).data, _oblique_affine())
    else:
        volume = samples.phantom(shape=(20, 24, 16), spacing=(4.0, 5.0, 6.0), axcodes=axcodes)
    back = load_volume(Layer(volume).nifti_bytes())
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-4)
    np.testing.assert_array_equal(back.data, volume.data)
    assert back.axcodes == volume.axcodes
    header = nib.Nifti1Image.from_bytes(gzip.decompress(Layer(volume).nifti_bytes())).header
    assert int(header["sform_code"]) > 0  # NiiVue takes the sform
    assert header.get_xyzt_units()[0] == "mm"


def test_paths_of_every_format_core_reads(tmp_path: Path) -> None:
    image = samples.phantom(shape=(24, 28, 20), spacing=3.0)
    nifti = save_volume(image, tmp_path / "sub-01_T1w.nii.gz")
    mgz = save_volume(image, tmp_path / "sub-01_T1w.mgz")
    write_dicom_series(tmp_path / "dicom", image.data, image.affine)
    for source, label in (
        (nifti, "sub-01_T1w"),
        (mgz, "sub-01_T1w"),
        (tmp_path / "dicom", "dicom"),
    ):
        layer = Layer(source)
        assert layer.label(0) == label
        np.testing.assert_allclose(layer.volume.affine, image.affine, atol=1e-4)
        back = load_volume(layer.nifti_bytes())
        np.testing.assert_allclose(back.affine, image.affine, atol=1e-4)
        np.testing.assert_array_equal(back.data, image.data)


def test_a_file_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    with pytest.raises(UnsupportedFormatError, match=r"notes\.txt: unrecognised file content"):
        Layer(notes)
    with pytest.raises(BrrrrError, match=r"missing\.nii\.gz"):
        Layer(tmp_path / "missing.nii.gz")


def test_a_2d_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "slice.nii"
    nib.save(nib.Nifti1Image(np.ones((16, 12), dtype=np.int16), np.eye(4)), path)
    with pytest.raises(LayerError, match=r"slice\.nii: 2-D image \(shape \(16, 12, 1\)\)"):
        Layer(path)


def test_non_finite_voxels_are_refused_naming_the_file(tmp_path: Path) -> None:
    data = np.zeros((8, 9, 10), dtype=np.float32)
    data[1, 2, 3] = np.nan
    data[4, 5, 6] = np.inf
    path = save_volume(Volume(data, np.eye(4)), tmp_path / "stat.nii.gz")
    with pytest.raises(LayerError, match=r"stat\.nii\.gz: 2 of 720 voxels are NaN or infinite"):
        Layer(path)
    with pytest.raises(LayerError, match="NaN or infinite"):
        Layer(Volume(data, np.eye(4)))  # in memory: no file to name, still refused


def test_several_channels_are_refused() -> None:
    volume = Volume(np.zeros((2, 8, 8, 8), dtype=np.float32), np.eye(4), source="dwi.nii.gz")
    with pytest.raises(LayerError, match=r"dwi\.nii\.gz: volume has 2 channels"):
        Layer(volume)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colormap": "no-such-map"}, "unknown colormap 'no-such-map'"),
        ({"opacity": 1.5}, "opacity must be between 0 and 1"),
        ({"cal_min": 5.0, "cal_max": 1.0}, r"cal_min \(5.0\) must be below cal_max"),
        ({"threshold": float("nan")}, "threshold must be a finite number"),
    ],
)
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ViewerError, match=message):
        Layer(samples.phantom(shape=(8, 8, 8), spacing=4.0), **options)  # type: ignore[arg-type]


def test_not_a_volume_or_path() -> None:
    with pytest.raises(ViewerError, match="got ndarray"):
        Layer(np.zeros((4, 4, 4)))  # type: ignore[arg-type]


def test_display_range_defaults(phantom: tuple[Volume, Volume]) -> None:
    image, lesion = phantom
    low, high = Layer(image).display_range()
    assert low == float(image.data.min())
    assert high == pytest.approx(float(np.percentile(image.data, 99.5)))
    assert Layer(lesion).display_range() == (0.0, 1.0)  # a small mask: its maximum
    assert Layer(image, cal_min=100, cal_max=700).display_range() == (100.0, 700.0)
    constant = Volume(np.full((4, 4, 4), 7, dtype=np.int16), np.eye(4))
    assert Layer(constant).display_range() == (7.0, 8.0)


def test_threshold_hides_voxels_below_it(phantom: tuple[Volume, Volume]) -> None:
    image, _ = phantom
    layer = Layer(image, threshold=500.0, colormap="hot")
    assert layer.display_range()[0] == 500.0
    sent = layer.voxels()
    low = float(image.data.min())
    below = image.data < 500
    np.testing.assert_array_equal(sent[below], low)  # at or below cal_min: transparent
    np.testing.assert_array_equal(sent[~below], image.data[~below])


@pytest.mark.parametrize(
    ("dtype", "sent"),
    [
        ("bool", "uint8"),
        ("uint8", "uint8"),
        ("int16", "int16"),
        ("int64", "float32"),
        ("float64", "float32"),
    ],
)
def test_voxel_types_niivue_reads(dtype: str, sent: str) -> None:
    volume = Volume(np.arange(60).reshape(3, 4, 5).astype(dtype), np.eye(4))
    assert Layer(volume).voxels().dtype == np.dtype(sent)
    back = load_volume(Layer(volume).nifti_bytes())
    np.testing.assert_array_equal(back.data, volume.data.astype(sent))


def test_repr_and_labels(phantom: tuple[Volume, Volume]) -> None:
    _, lesion = phantom
    layer = Layer(lesion, colormap="red", opacity=0.5, name="lesion")
    assert repr(layer) == "Layer('lesion', shape=(64, 76, 64), colormap='red', opacity=0.5)"
    assert Layer(lesion).label(3) == "layer3"
    assert Layer(lesion).spec(1)["name"] == "layer1.nii.gz"
