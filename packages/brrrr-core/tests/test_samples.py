"""Built-in sample data: phantoms and the MNI template."""

from __future__ import annotations

import numpy as np
import pytest

from brrrr.core import samples
from brrrr.core.errors import GeometryError
from brrrr.core.geometry import ALL_AXCODES


def test_phantom_is_deterministic() -> None:
    a = samples.phantom(shape=(24, 28, 24), spacing=8.0, seed=3)
    b = samples.phantom(shape=(24, 28, 24), spacing=8.0, seed=3)
    c = samples.phantom(shape=(24, 28, 24), spacing=8.0, seed=4)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert a.dtype == np.int16


@pytest.mark.parametrize("code", ["RAS", "LPS", "RPI", "AIL"])
def test_phantom_orientation_describes_the_same_head(code: str) -> None:
    ras = samples.phantom(shape=(20, 24, 20), spacing=10.0, noise=0.0)
    other = samples.phantom(shape=(20, 24, 20), spacing=10.0, axcodes=code, noise=0.0)
    assert other.axcodes == code
    # Reorienting the other phantom to RAS gives the RAS phantom whenever the axis
    # lengths line up (same shape per world axis).
    back = other.reorient("RAS")
    if back.shape == ras.shape:
        np.testing.assert_array_equal(back.data, ras.data)
        np.testing.assert_allclose(back.affine, ras.affine, atol=1e-9)


def test_phantom_centred_on_world_origin() -> None:
    volume = samples.phantom(shape=(21, 25, 21), spacing=9.0)
    centre = volume.affine @ np.array([10.0, 12.0, 10.0, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)


def test_lesion_phantom_mask_matches_image() -> None:
    image, mask = samples.lesion_phantom(shape=(48, 57, 48), spacing=4.0, noise=0.0)
    assert mask.dtype == np.uint8
    assert set(np.unique(mask.data)) == {0, 1}
    np.testing.assert_array_equal(mask.affine, image.affine)
    lesion_values = image.data[mask.data == 1]
    assert lesion_values.size > 0
    assert np.all(lesion_values == 330)
    # The lesion is in the left hemisphere (world x < 0).
    index = np.argwhere(mask.data == 1)
    world_x = image.affine[0, 0] * index[:, 0] + image.affine[0, 3]
    assert np.all(world_x < 0)


def test_ct_phantom_in_hounsfield_units() -> None:
    ct = samples.phantom(shape=(32, 38, 32), spacing=6.0, modality="ct", noise=0.0)
    assert ct.data.min() == -1000
    assert ct.data.max() == 1100


def test_phantom_refuses_bad_arguments() -> None:
    with pytest.raises(GeometryError):
        samples.phantom(shape=(0, 4, 4))
    with pytest.raises(GeometryError):
        samples.phantom(axcodes="XYZ")
    assert len(ALL_AXCODES) == 48


def test_mni_t1_from_nimare() -> None:
    pytest.importorskip("nimare")
    one = samples.mni_t1()
    assert one.shape == (182, 218, 182)
    assert one.axcodes == "RAS"
    two = samples.mni_t1(resolution_mm=2)
    assert two.shape == (91, 109, 91)
    np.testing.assert_allclose(two.spacing, (2.0, 2.0, 2.0))
