"""The segmenter interface: outputs on the reference input's grid, world position preserved
(a reoriented copy gives the same mask back exactly, a resampled and reoriented copy nearly
the same), channels on other grids, thresholds, registration on the way in."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from brrrr.core import Volume
from brrrr.core.geometry import reorientation
from brrrr.models.segmentation import (
    SegmentationError,
    Segmenter,
    dice,
    load_synthetic_lesion_model,
    synthetic_stroke_case,
)
from brrrr.models.segmentation.preprocessing import same_grid


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_synthetic_lesion_model()


@pytest.fixture(scope="module")
def case():  # type: ignore[no-untyped-def]
    return synthetic_stroke_case(200_001)


@pytest.fixture(scope="module")
def original(model, case):  # type: ignore[no-untyped-def]
    return model.segment(case.inputs())


def test_outputs_are_on_the_reference_grid(original, case) -> None:  # type: ignore[no-untyped-def]
    assert same_grid(original.mask, case.dwi)
    assert same_grid(original.probability, case.dwi)
    assert original.mask.data.dtype == np.uint8
    assert original.probability.data.dtype == np.float32
    assert dice(original.mask.data > 0, case.mask.data > 0) > 0.9


@pytest.mark.parametrize("code", ["LPS", "PIL", "SAR"])
def test_reoriented_copy_gives_the_same_mask_back_exactly(model, case, original, code: str) -> None:  # type: ignore[no-untyped-def]
    copy = {name: volume.reorient(code) for name, volume in case.inputs().items()}
    result = model.segment(copy)
    assert result.mask.axcodes == code
    assert same_grid(result.mask, copy["dwi"])
    back = reorientation(result.mask.affine, "RAS", shape=result.mask.shape)
    np.testing.assert_allclose(
        back.transform_affine(result.mask.affine), case.dwi.affine, atol=1e-9
    )
    np.testing.assert_array_equal(back.apply(result.mask.data), original.mask.data)
    np.testing.assert_allclose(
        back.apply(result.probability.data), original.probability.data, atol=1e-6
    )


def test_resampled_and_reoriented_copy_maps_back_to_the_same_mask(model, case, original) -> None:  # type: ignore[no-untyped-def]
    copy = {name: v.resample(spacing=2.5).reorient("LPS") for name, v in case.inputs().items()}
    result = model.segment(copy)
    assert result.mask.shape == (67, 82, 67)
    assert result.mask.axcodes == "LPS"
    back = result.mask.resample(like=case.dwi, interpolation="nearest")
    # Measured 0.89 against the original prediction (two interpolations of the inputs).
    assert dice(back.data > 0, original.mask.data > 0) > 0.8
    assert dice(back.data > 0, case.mask.data > 0) > 0.8


def test_channels_on_other_grids_are_aligned_by_world_position(model, case, original) -> None:  # type: ignore[no-untyped-def]
    inputs = {
        **case.inputs(),
        "adc": case.adc.resample(spacing=2.0).reorient("LPI"),
        "flair": case.flair.resample(spacing=(2.0, 2.0, 5.0)),
    }
    result = model.segment(inputs)
    assert same_grid(result.mask, case.dwi)
    assert dice(result.mask.data > 0, original.mask.data > 0) > 0.8  # measured 0.9


def test_threshold_and_missing_optional_channel(model, case, original) -> None:  # type: ignore[no-untyped-def]
    strict = model.segment(case.inputs(), threshold=0.9)
    np.testing.assert_array_equal(strict.mask.data, original.probability.data >= 0.9)
    assert strict.threshold == 0.9
    assert strict.mask.data.sum() <= original.mask.data.sum()
    without = model.segment(case.inputs(flair=False))
    assert dice(without.mask.data > 0, case.mask.data > 0) > 0.8
    with pytest.raises(SegmentationError, match=r"needs the channel\(s\) adc") as error:
        model.segment({"dwi": case.dwi, "flair": case.flair})
    assert error.value.path == model.source
    with pytest.raises(SegmentationError, match="threshold"):
        model.segment(case.inputs(), threshold=1.5)


def test_registration_on_the_way_in(model, case, original) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("SimpleITK")
    registered = model.segment(case.inputs(), register=("flair",))
    assert dice(registered.mask.data > 0, original.mask.data > 0) > 0.9
    with pytest.raises(SegmentationError, match="cannot register 't2'"):
        model.segment(case.inputs(), register=("t2",))


class _Coarse(Segmenter):
    """Answers on a 2× coarser grid: the base class brings it back onto the reference."""

    def predict(self, volumes: Mapping[str, Volume], *, reference: Volume) -> Volume:
        coarse = reference.resample(spacing=2 * np.asarray(reference.spacing))
        return coarse.with_data((coarse.data > np.percentile(coarse.data, 90)).astype(np.float32))


def test_member_answers_on_another_grid_are_brought_back() -> None:
    case = synthetic_stroke_case(3, shape=(42, 51, 42), spacing=4.0)
    result = _Coarse(["dwi"], name="coarse").segment(case.inputs())
    assert same_grid(result.mask, case.dwi)
    assert same_grid(result.probability, case.dwi)
    assert result.probability.metadata["segmenter"] == "coarse"


def test_interface_checks() -> None:
    with pytest.raises(SegmentationError, match="at least one"):
        _Coarse([])
    with pytest.raises(SegmentationError, match="reference channel 'adc'"):
        _Coarse(["dwi"], reference="adc")
    with pytest.raises(SegmentationError, match="both required and optional"):
        _Coarse(["dwi"], optional_channels=["dwi"])
    assert "channels=['dwi']" in repr(_Coarse(["dwi"], name="c"))
