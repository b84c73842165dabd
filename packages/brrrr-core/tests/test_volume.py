"""Tests for brrrr.core.volume.Volume."""

from __future__ import annotations

import pathlib

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.affines import apply_affine

from brrrr.core import geometry
from brrrr.core.errors import GeometryError
from brrrr.core.resample import grid_for_spacing, resample
from brrrr.core.volume import Volume

EXAMPLE4D = pathlib.Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz"


def make_affine(
    spacing: tuple[float, float, float] = (2.0, 2.0, 3.0),
    origin: tuple[float, ...] = (-10.0, 5.0, 1.5),
) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def oblique_affine() -> np.ndarray:
    """LPS-ish affine with a small rotation, spacing (0.8, 1.1, 2.5)."""
    angle = np.deg2rad(10)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.8, -1.1, 2.5])
    affine[:3, 3] = (30.0, 20.0, -40.0)
    return affine


def ramp(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


# -- construction and derived properties ---------------------------------------------------------


def test_repr_shows_shape_dtype_spacing_axcodes_and_memory() -> None:
    vol = Volume(np.zeros((4, 5, 6), dtype="f4"), np.diag([2.0, 2.0, 3.0, 1.0]))
    assert repr(vol) == (
        "Volume(shape=(4, 5, 6), dtype=float32, spacing=(2, 2, 3) mm, axcodes='RAS', memory=480 B)"
    )
    big = Volume(
        np.zeros((3, 16, 16, 16), dtype="f8"), oblique_affine(), source="/data/sub-01/bold.nii.gz"
    )
    text = repr(big)
    for part in (
        "shape=(16, 16, 16)",
        "channels=3",
        "dtype=float64",
        "spacing=(0.8, 1.1, 2.5) mm",
        "axcodes='LPS'",
        "memory=96.0 KiB",
        "source='bold.nii.gz'",
    ):
        assert part in text, (part, text)


def test_derived_properties_come_from_the_affine() -> None:
    affine = oblique_affine()
    data = ramp((2, 5, 6, 7))
    vol = Volume(data, affine, metadata={"format": "test"}, source=pathlib.Path("x.nii"))
    assert vol.shape == (5, 6, 7)
    assert vol.channels == 2
    assert vol.dtype == np.float32
    assert vol.nbytes == data.nbytes
    assert vol.source == "x.nii"
    assert vol.metadata == {"format": "test"}
    assert vol.axcodes == geometry.axcodes(affine) == "LPS"
    np.testing.assert_allclose(vol.spacing, (0.8, 1.1, 2.5), rtol=1e-12)
    assert vol.origin == (30.0, 20.0, -40.0)
    assert all(isinstance(v, float) for v in (*vol.spacing, *vol.origin))
    assert vol.data is data
    assert vol.to_numpy() is data
    assert Volume(ramp((5, 6, 7)), affine).channels == 1


def test_affine_is_read_only_and_a_float64_copy() -> None:
    given = [[2, 0, 0, 1], [0, 2, 0, 2], [0, 0, 2, 3], [0, 0, 0, 1]]
    source = np.array(given, dtype=float)
    vol = Volume(np.zeros((2, 2, 2)), source)
    assert vol.affine.dtype == np.float64
    source[0, 0] = 99.0
    assert vol.affine[0, 0] == 2.0
    with pytest.raises(ValueError, match="read-only"):
        vol.affine[0, 0] = 5.0
    affine = vol.affine
    with pytest.raises(ValueError, match="WRITEABLE"):
        affine.flags.writeable = True
    assert vol.affine[0, 0] == 2.0
    with pytest.raises(AttributeError):
        vol.affine = np.eye(4)  # type: ignore[misc]
    assert Volume(np.zeros((2, 2, 2)), given).affine[2, 3] == 3.0


@pytest.mark.parametrize("shape", [(4, 4), (4,), (1, 2, 3, 4, 5), ()])
def test_rejects_arrays_that_are_not_3d_or_4d(shape: tuple[int, ...]) -> None:
    with pytest.raises(GeometryError, match=r"\(I, J, K\) or \(C, I, J, K\)"):
        Volume(np.zeros(shape), np.eye(4), source="bad.nii")


@pytest.mark.parametrize(
    "affine",
    [np.eye(3), np.diag([1.0, 0.0, 1.0, 1.0]), np.full((4, 4), np.nan), np.ones((4, 4)), "eye"],
)
def test_rejects_a_bad_affine(affine: object) -> None:
    with pytest.raises(GeometryError) as info:
        Volume(np.zeros((2, 2, 2)), affine, source="bad.nii")  # type: ignore[arg-type]
    assert info.value.path == "bad.nii"


def test_with_data_keeps_metadata_and_source_but_not_the_same_dict() -> None:
    vol = Volume(ramp((2, 3, 4)), make_affine(), metadata={"a": 1}, source="v.nii")
    other = vol.with_data(np.zeros((2, 3, 4)))
    assert other.metadata == {"a": 1}
    assert other.source == "v.nii"
    np.testing.assert_array_equal(other.affine, vol.affine)
    other.metadata["a"] = 2
    assert vol.metadata["a"] == 1
    moved = vol.with_data(np.zeros((4, 3, 2)), np.diag([1.0, 1.0, 1.0, 1.0]))
    assert moved.spacing == (1.0, 1.0, 1.0)


# -- torch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("shape", [(4, 5, 6), (2, 4, 5, 6)])
def test_to_torch_shares_memory(order: str, shape: tuple[int, ...]) -> None:
    data = np.asarray(ramp(shape), order=order)
    vol = Volume(data, make_affine())
    tensor = vol.to_torch()
    assert tuple(tensor.shape) == shape
    assert tensor.dtype == torch.float32
    tensor[(0,) * len(shape)] = -7.0
    assert data[(0,) * len(shape)] == -7.0
    data[(1,) * len(shape)] = 42.0
    assert float(tensor[(1,) * len(shape)]) == 42.0


def test_to_torch_of_a_flipped_view_copies_with_the_right_values() -> None:
    data = ramp((2, 4, 5, 6))
    vol = Volume(data, make_affine()).reorient("LPI")
    assert any(s < 0 for s in vol.data.strides)
    tensor = vol.to_torch()
    np.testing.assert_array_equal(tensor.numpy(), vol.data)
    tensor[0, 0, 0, 0] = -1.0  # a copy: the volume is untouched
    assert vol.data[0, 0, 0, 0] != -1.0


def test_to_torch_shares_memory_for_explicitly_little_endian_data() -> None:
    # Regression: nibabel hands out dtypes spelled "<i2"; they were copied needlessly.
    native = np.dtype("int16").newbyteorder("<" if np.little_endian else ">")
    data = np.zeros((3, 4, 5), dtype=native)
    tensor = Volume(data, np.eye(4)).to_torch()
    tensor[1, 2, 3] = 9
    assert data[1, 2, 3] == 9


def test_to_torch_converts_byte_swapped_data() -> None:
    swapped = np.dtype("float32").newbyteorder(">" if np.little_endian else "<")
    data = ramp((3, 4, 5)).astype(swapped)
    tensor = Volume(data, np.eye(4)).to_torch()
    assert tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.numpy(), data)


def test_to_torch_of_a_real_file_shares_memory() -> None:
    vol = Volume.from_nibabel(nib.load(EXAMPLE4D))
    tensor = vol.to_torch()
    assert tuple(tensor.shape) == (2, 128, 96, 24)
    assert np.shares_memory(tensor.numpy(), vol.data)


# -- nibabel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 5, 6), (3, 4, 5, 6)])
@pytest.mark.parametrize("dtype", ["float32", "int16", "uint8", "float64"])
def test_nibabel_round_trip_in_memory(shape: tuple[int, ...], dtype: str) -> None:
    vol = Volume(ramp(shape, dtype=dtype), oblique_affine(), metadata={"descrip": "hello"})
    image = vol.to_nibabel()
    assert isinstance(image, nib.Nifti1Image)
    spatial = shape[-3:]
    assert image.shape == (spatial if len(shape) == 3 else (*spatial, shape[0]))
    assert image.header.get_xyzt_units() == ("mm", "sec")
    assert image.header["descrip"].tobytes().rstrip(b"\0") == b"hello"
    assert int(image.header["sform_code"]) == 2
    assert int(image.header["qform_code"]) == 1
    np.testing.assert_array_equal(image.affine, vol.affine)
    back = Volume.from_nibabel(image)
    assert back.data.shape == shape
    assert back.data.dtype == vol.data.dtype
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_array_equal(back.affine, vol.affine)
    assert back.metadata["format"] == "Nifti1Image"


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [("int64", "int64"), ("uint64", "uint64"), ("bool", "uint8"), ("float16", "float32")],
)
def test_to_nibabel_handles_dtypes_nifti_lacks_or_nibabel_refuses(dtype: str, stored: str) -> None:
    # Regression: int64 raised ValueError in nibabel and bool/float16 HeaderDataError.
    data = (ramp((3, 4, 5), dtype="float64") % 2).astype(dtype)
    image = Volume(data, make_affine()).to_nibabel()
    assert image.get_data_dtype() == np.dtype(stored)
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), data.astype(stored))


def test_to_nibabel_keeps_the_float64_affine_and_the_codes(tmp_path: pathlib.Path) -> None:
    # Regression: image.set_sform replaced image.affine by its float32 header copy.
    vol = Volume(ramp((3, 4, 5)), oblique_affine(), metadata={"sform_code": 4, "qform_code": 1})
    image = vol.to_nibabel()
    np.testing.assert_array_equal(image.affine, vol.affine)
    nib.save(image, tmp_path / "codes.nii")
    header = nib.load(tmp_path / "codes.nii").header
    assert (int(header["sform_code"]), int(header["qform_code"])) == (4, 1)


@pytest.mark.parametrize("shape", [(4, 5, 6), (3, 4, 5, 6)])
def test_nibabel_round_trip_through_a_file(tmp_path: pathlib.Path, shape: tuple[int, ...]) -> None:
    vol = Volume(ramp(shape, dtype="int16"), oblique_affine(), metadata={"repetition_time_s": 2.5})
    path = tmp_path / "vol.nii.gz"
    nib.save(vol.to_nibabel(), path)
    back = Volume.from_nibabel(nib.load(path))
    assert back.source == str(path)
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert back.axcodes == vol.axcodes
    if len(shape) == 4:
        assert nib.load(path).header.get_zooms()[3] == pytest.approx(2.5)


def test_from_nibabel_example4d_puts_time_first() -> None:
    image = nib.load(EXAMPLE4D)
    vol = Volume.from_nibabel(image)
    assert vol.data.shape == (2, 128, 96, 24)
    assert vol.shape == (128, 96, 24)
    assert vol.axcodes == "LAS"
    assert vol.source == str(EXAMPLE4D)
    np.testing.assert_array_equal(vol.data[1], np.asanyarray(image.dataobj)[..., 1])
    np.testing.assert_array_equal(vol.affine, image.affine)
    np.testing.assert_allclose(vol.spacing, image.header.get_zooms()[:3], rtol=1e-6)


def test_from_nibabel_flattens_extra_axes_and_pads_2d() -> None:
    five = np.arange(2 * 3 * 4 * 2 * 3, dtype=np.float32).reshape(2, 3, 4, 2, 3)
    vol = Volume.from_nibabel(nib.Nifti1Image(five, np.eye(4)))
    assert vol.data.shape == (6, 2, 3, 4)
    # Extra axes flatten in Fortran order (4th axis fastest), like the NIfTI reader: c = t + 2 * u.
    np.testing.assert_array_equal(vol.data[4], five[:, :, :, 0, 2])
    np.testing.assert_array_equal(vol.data[1], five[:, :, :, 1, 0])
    flat = Volume.from_nibabel(nib.Nifti1Image(np.ones((3, 4), dtype=np.float32), np.eye(4)))
    assert flat.data.shape == (3, 4, 1)


# -- geometry ------------------------------------------------------------------------------------


def test_reorient_matches_nibabel_as_closest_canonical() -> None:
    image = nib.load(EXAMPLE4D)
    ras = Volume.from_nibabel(image).reorient("RAS")
    canonical = nib.as_closest_canonical(image)
    assert ras.axcodes == "RAS"
    np.testing.assert_array_equal(np.moveaxis(ras.data, 0, -1), np.asanyarray(canonical.dataobj))
    np.testing.assert_allclose(ras.affine, canonical.affine, atol=1e-9)


def test_reorient_is_a_view_and_identity_returns_self() -> None:
    vol = Volume(ramp((2, 3, 4, 5)), make_affine(), metadata={"k": "v"})
    assert vol.reorient("RAS") is vol
    assert vol.reorient("ras") is vol
    lps = vol.reorient("LPS")
    assert lps.axcodes == "LPS"
    assert np.shares_memory(lps.data, vol.data)
    assert lps.metadata == {"k": "v"}
    back = lps.reorient("RAS")
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-12)
    with pytest.raises(GeometryError, match="invalid orientation code"):
        vol.reorient("RAX")


def test_resample_to_a_spacing() -> None:
    data = ramp((20, 16, 12), dtype="float32")
    affine = oblique_affine()
    vol = Volume(data, affine, metadata={"k": 1})
    out = vol.resample(2.0)
    shape, target = grid_for_spacing(vol.shape, affine, 2.0)
    assert out.shape == shape == (8, 9, 15)
    np.testing.assert_allclose(out.spacing, (2.0, 2.0, 2.0), rtol=1e-12)
    np.testing.assert_array_equal(out.affine, target)
    assert out.axcodes == vol.axcodes
    assert out.metadata == {"k": 1}
    np.testing.assert_array_equal(
        out.data, resample(data, affine, target_shape=shape, target_affine=target)
    )
    centre = apply_affine(affine, (np.asarray(vol.shape) - 1) / 2)
    np.testing.assert_allclose(
        apply_affine(out.affine, (np.asarray(out.shape) - 1) / 2), centre, atol=1e-9
    )

    per_axis = vol.resample((1.0, 2.0, 5.0), interpolation="nearest")
    np.testing.assert_allclose(per_axis.spacing, (1.0, 2.0, 5.0), rtol=1e-12)
    assert per_axis.dtype == np.float32
    assert set(np.unique(per_axis.data)) <= set(np.unique(data)) | {0.0}


def test_resample_like_another_volume() -> None:
    data = ramp((2, 10, 9, 8), dtype="float64")
    vol = Volume(data, oblique_affine())
    like = Volume(
        np.zeros((7, 6, 5), dtype=np.uint8), make_affine((1.5, 1.5, 2.0), (20.0, 10.0, -35.0))
    )
    out = vol.resample(like=like, interpolation="linear", fill=-1.0)
    assert out.data.shape == (2, 7, 6, 5)
    assert out.shape == like.shape
    np.testing.assert_array_equal(out.affine, like.affine)
    np.testing.assert_array_equal(
        out.data,
        resample(data, vol.affine, target_shape=like.shape, target_affine=like.affine, fill=-1.0),
    )
    on_cpu = vol.resample(like=like, fill=-1.0, device="cpu")
    assert isinstance(on_cpu.data, np.ndarray)
    np.testing.assert_allclose(on_cpu.data, out.data, rtol=1e-12, atol=1e-12)
    same = vol.resample(like=vol)
    np.testing.assert_array_equal(same.data, vol.data)


def test_resample_needs_exactly_one_of_spacing_and_like() -> None:
    vol = Volume(np.zeros((4, 4, 4)), np.eye(4), source="v.nii")
    with pytest.raises(GeometryError, match="exactly one"):
        vol.resample()
    with pytest.raises(GeometryError, match="exactly one"):
        vol.resample(2.0, like=vol)
    with pytest.raises(GeometryError, match="spacing"):
        vol.resample(0.0)


def test_repr_html_without_a_viewer_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # With no package registered under brrrr.html_repr, Jupyter falls back to the plain repr.
    from brrrr.core import volume as volume_module

    monkeypatch.setattr(volume_module, "_html_renderers", lambda: ())
    assert Volume(np.zeros((2, 3, 4), np.float32), np.eye(4))._repr_html_() is None


def test_repr_html_skips_a_failing_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    from brrrr.core import volume as volume_module

    def broken(volume: Volume) -> str:
        raise RuntimeError("no display here")

    monkeypatch.setattr(
        volume_module, "_html_renderers", lambda: (broken, lambda v: f"<b>{v.shape}</b>")
    )
    assert Volume(np.zeros((2, 3, 4), np.float32), np.eye(4))._repr_html_() == "<b>(2, 3, 4)</b>"
