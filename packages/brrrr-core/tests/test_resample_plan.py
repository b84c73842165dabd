"""The separable plan of brrrr.core.resample: permuted grids, the two boundaries, slabs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from brrrr.core import Volume, samples
from brrrr.core.errors import GeometryError
from brrrr.core.resample import SlabResampler, plan_resample, resample


def _random_grid(
    rng: np.random.Generator, in_shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A target affine (input voxel frame = world) whose axes permute, flip and scale the
    input's, and its shape."""
    perm = rng.permutation(3)
    vox2vox = np.eye(4)[[*perm, 3]].T.copy()
    vox2vox[:3, :3] *= rng.choice([-1.0, 1.0], 3) * rng.uniform(0.4, 2.5, 3)
    vox2vox[:3, 3] = [
        (n - 1) if vox2vox[a, :3].sum() < 0 else rng.uniform(-1.0, 1.0)
        for a, n in enumerate(in_shape)
    ]
    shape = tuple(int(n) for n in rng.integers(5, 30, 3))
    return vox2vox, (shape[0], shape[1], shape[2])


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("boundary", ["blend", "extent"])
@pytest.mark.parametrize("dtype", ["int16", "float32", "float64"])
def test_slabs_equal_the_whole_volume(interpolation: str, boundary: str, dtype: str) -> None:
    rng = np.random.default_rng(0)
    data = (rng.normal(100.0, 40.0, size=(2, 30, 26, 20))).astype(dtype)
    for _ in range(6):
        target, shape = _random_grid(rng, data.shape[1:])
        plan = plan_resample(
            np.eye(4),
            in_shape=data.shape[1:],
            target_affine=target,
            target_shape=shape,
            interpolation=interpolation,  # type: ignore[arg-type]
            boundary=boundary,  # type: ignore[arg-type]
            fill=-7.0,
        )
        whole = plan.apply(data)
        slabs = SlabResampler(data, plan)
        out = np.zeros_like(whole)
        for o in slabs.order:
            index = [slice(None)] * 4
            index[slabs.axis + 1] = slice(o, o + 1)
            slabs.slab(o, out=out[tuple(index)])
        assert out.dtype == whole.dtype == plan.compute_dtype(data.dtype)
        assert np.array_equal(out, whole)


def test_permuted_grids_take_the_separable_path_and_equal_scipy() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(17, 13, 11)).astype(np.float64)
    for _ in range(8):
        target, shape = _random_grid(rng, data.shape)
        ours = resample(data, np.eye(4), target_shape=shape, target_affine=target, fill=2.5)
        ref = ndimage.affine_transform(
            data,
            target[:3, :3],
            offset=target[:3, 3],
            output_shape=shape,
            order=1,
            mode="grid-constant",
            cval=2.5,
        )
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
        nearest = resample(
            data, np.eye(4), target_shape=shape, target_affine=target, interpolation="nearest"
        )
        ref_nearest = ndimage.affine_transform(
            data,
            target[:3, :3],
            offset=target[:3, 3],
            output_shape=shape,
            order=0,
            mode="grid-constant",
            cval=0.0,
        )
        # scipy rounds ties to even; ours rounds them up: compare away from ties.
        pos = target[:3, :3] @ np.indices(shape).reshape(3, -1) + target[:3, 3:4]
        away = (np.abs(pos - np.floor(pos) - 0.5) > 1e-6).all(axis=0).reshape(shape)
        np.testing.assert_array_equal(nearest[away], ref_nearest[away])


def test_resampling_onto_a_reoriented_grid_is_the_exact_reorientation() -> None:
    volume = samples.phantom(shape=(24, 20, 16), spacing=(1.0, 1.5, 2.0))
    for code in ("LPS", "SAL", "PIR", "IRP"):
        reoriented = volume.reorient(code)
        out = volume.resample(like=reoriented)
        assert out.axcodes == code
        np.testing.assert_array_equal(out.data, reoriented.data.astype(np.float32))


def test_extent_takes_the_edge_value_within_half_a_voxel() -> None:
    data = np.arange(4, dtype=np.float32).reshape(4, 1, 1) + 10.0
    target = np.eye(4)
    target[0, 0], target[0, 3] = 0.25, -0.75  # samples at -0.75, -0.5, ..., 3.75
    shape = (19, 1, 1)
    extent = resample(
        data, np.eye(4), target_shape=shape, target_affine=target, boundary="extent", fill=-1.0
    )[:, 0, 0]
    blend = resample(data, np.eye(4), target_shape=shape, target_affine=target, fill=-1.0)[:, 0, 0]
    pos = 0.25 * np.arange(19) - 0.75
    assert (extent[pos < -0.5] == -1.0).all()
    assert (extent[(pos >= -0.5) & (pos <= 0.0)] == 10.0).all()
    assert (extent[(pos >= 3.0) & (pos <= 3.5)] == 13.0).all()
    assert (extent[pos > 3.5] == -1.0).all()
    np.testing.assert_allclose(blend[pos == -0.5], 0.5 * 10.0 + 0.5 * -1.0)
    inside = (pos >= 0) & (pos <= 3)
    np.testing.assert_allclose(extent[inside], blend[inside])
    np.testing.assert_allclose(extent[inside], 10.0 + pos[inside], atol=1e-6)


def test_a_plan_refuses_oblique_grids_and_the_wrong_input() -> None:
    turn = np.eye(4)
    c, s = np.cos(0.3), np.sin(0.3)
    turn[:2, :2] = [[c, -s], [s, c]]
    with pytest.raises(GeometryError, match="oblique"):
        plan_resample(np.eye(4), in_shape=(8, 8, 8), target_affine=turn, target_shape=(8, 8, 8))
    with pytest.raises(GeometryError, match="extent"):
        resample(
            np.zeros((8, 8, 8)),
            np.eye(4),
            target_shape=(8, 8, 8),
            target_affine=turn,
            boundary="extent",
        )
    plan = plan_resample(
        np.eye(4), in_shape=(8, 8, 8), target_affine=np.eye(4), target_shape=(8, 8, 8)
    )
    with pytest.raises(GeometryError, match=r"input shape \(8, 8, 8\)"):
        plan.apply(np.zeros((8, 8, 9)))
    with pytest.raises(GeometryError, match="boundary"):
        resample(
            np.zeros((8, 8, 8)),
            np.eye(4),
            target_shape=(8, 8, 8),
            target_affine=np.eye(4),
            boundary="wrap",  # type: ignore[arg-type]
        )


def test_the_same_grid_is_an_exact_copy_never_a_view() -> None:
    data = np.random.default_rng(1).normal(size=(2, 6, 5, 4)).astype(np.float32)
    out = Volume(data, np.diag([2.0, 2.0, 2.0, 1.0])).resample(spacing=2.0).data
    assert np.array_equal(out, data)
    assert not np.shares_memory(out, data)
