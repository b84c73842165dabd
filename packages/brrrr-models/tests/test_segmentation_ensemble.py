"""Ensembles: the combining functions against hand-made answers (STAPLE against a numpy EM of
Warfield et al. 2004), and ensembles whose members run on different grids (two networks at
other voxel sizes and an external command) combined on the reference grid."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brrrr.models.segmentation import (
    EnsembleSegmenter,
    ExternalCommandSegmenter,
    NetworkConfig,
    NetworkSegmenter,
    SegmentationError,
    build_network,
    majority_vote,
    mean_probability,
    staple,
    synthetic_stroke_case,
)
from brrrr.models.segmentation.preprocessing import same_grid


def test_mean_probability_weighted_and_checked() -> None:
    a, b = np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.5, 0.0])
    np.testing.assert_allclose(mean_probability([a, b]), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(mean_probability([a, b], weights=[3, 1]), [0.25, 0.5, 0.75])
    with pytest.raises(SegmentationError, match="weights"):
        mean_probability([a, b], weights=[1, -1])
    with pytest.raises(SegmentationError, match="different shapes"):
        mean_probability([a, b[:2]])
    with pytest.raises(SegmentationError, match="no probability maps"):
        mean_probability([])


def test_majority_vote_ties_are_background() -> None:
    masks = [np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])]
    fraction, mask = majority_vote(masks)
    np.testing.assert_allclose(fraction, [1.0, 0.5, 0.5, 0.0])
    assert mask.tolist() == [1, 0, 0, 0]
    _, three = majority_vote([*masks, np.array([0, 1, 1, 0])])
    assert three.tolist() == [1, 1, 1, 0]


def _staple_em(masks: list[np.ndarray], iterations: int = 500) -> np.ndarray:
    """Binary STAPLE by EM (Warfield 2004), with ITK's global prior and start."""
    decisions = np.stack([m.ravel() for m in masks]).astype(np.float64)
    prior = decisions.mean()
    sensitivity = np.full(len(masks), 0.99999)
    specificity = np.full(len(masks), 0.99999)
    for _ in range(iterations):
        fg = prior * np.prod(
            np.where(decisions == 1, sensitivity[:, None], 1 - sensitivity[:, None]), 0
        )
        bg = (1 - prior) * np.prod(
            np.where(decisions == 0, specificity[:, None], 1 - specificity[:, None]), 0
        )
        weight = fg / (fg + bg)
        sensitivity = (decisions * weight).sum(1) / weight.sum()
        specificity = ((1 - decisions) * (1 - weight)).sum(1) / (1 - weight).sum()
    return weight.reshape(masks[0].shape)


def test_staple_equals_the_em_of_warfield() -> None:
    pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(0)
    truth = np.zeros((18, 20, 22), dtype=bool)
    truth[4:12, 6:15, 3:17] = True  # anisotropic, so a transposition would show
    masks = [(truth ^ (rng.random(truth.shape) < p)).astype(np.uint8) for p in (0.02, 0.05, 0.15)]
    np.testing.assert_allclose(staple(masks, spacing_mm=(1, 2, 3)), _staple_em(masks), atol=1e-5)
    same = [truth.astype(np.uint8)] * 3
    np.testing.assert_array_equal(staple(same) >= 0.5, truth)
    assert (staple([np.zeros((3, 3, 3))] * 2) == 0).all()


# -- ensembles of segmenters -----------------------------------------------------------------
SMALL = {"shape": (42, 51, 42), "spacing": 4.0}

TOOL = r"""
import sys
import numpy as np
from brrrr.core import Volume, load_volume, save_volume
dwi = load_volume(sys.argv[1], dtype="float32")
brain = dwi.data > 0
mask = dwi.data > 1.4 * np.median(dwi.data[brain])
save_volume(Volume(mask.astype(np.uint8), dwi.affine), sys.argv[2])
"""


def _network(spacing: float, seed: int) -> NetworkSegmenter:
    torch.manual_seed(seed)
    config = NetworkConfig.from_dict(
        {
            "network": "SegResNet",
            "channels": ["dwi", "adc"],
            "kwargs": {"init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1]},
            "patch_size": [32, 32, 32],
            "spacing_mm": [spacing] * 3,
            "name": f"net-{spacing:g}mm",
        }
    )
    return NetworkSegmenter(config, build_network(config))


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list:  # type: ignore[type-arg]
    tool = tmp_path_factory.mktemp("tool") / "bright.py"
    tool.write_text(TOOL)
    external = ExternalCommandSegmenter(
        [sys.executable, str(tool), "{dwi}", "{output}"], channels=("dwi",), name="bright"
    )
    return [_network(5.0, 1), _network(3.0, 2), external]


@pytest.mark.parametrize(
    "method", ["mean", "majority", pytest.param("staple", marks=pytest.mark.slow)]
)
def test_members_on_different_grids_combine_on_the_reference_grid(members, method: str) -> None:  # type: ignore[no-untyped-def]
    if method == "staple":
        pytest.importorskip("SimpleITK")
    case = synthetic_stroke_case(2, **SMALL)
    inputs = {**case.inputs(), "dwi": case.dwi.reorient("LPI")}
    ensemble = EnsembleSegmenter(members, method=method)
    assert ensemble.channels == ("dwi", "adc")
    result = ensemble.segment(inputs)
    reference = inputs["dwi"]
    assert same_grid(result.mask, reference)
    assert same_grid(result.probability, reference)
    assert len(result.members) == 3
    for member in result.members:
        assert same_grid(member.mask, reference)
    probabilities = [m.probability.data for m in result.members]
    masks = [m.mask.data for m in result.members]
    if method == "mean":
        np.testing.assert_allclose(
            result.probability.data, np.mean(probabilities, axis=0), atol=1e-6
        )
        np.testing.assert_array_equal(result.mask.data, np.mean(probabilities, axis=0) >= 0.5)
    elif method == "majority":
        np.testing.assert_array_equal(result.mask.data, majority_vote(masks)[1])
    else:
        np.testing.assert_allclose(result.probability.data, staple(masks), atol=1e-6)
    assert result.mask.metadata["method"] == method


def test_ensemble_checks(members) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SegmentationError, match="at least one member"):
        EnsembleSegmenter([])
    with pytest.raises(SegmentationError, match="method"):
        EnsembleSegmenter(members, method="max")  # type: ignore[arg-type]
    with pytest.raises(SegmentationError, match="2 weights for 3 members"):
        EnsembleSegmenter(members, weights=[1, 2])
    adc_first = ExternalCommandSegmenter(["x", "{adc}", "{output}"], channels=("adc",))
    with pytest.raises(SegmentationError, match="share their reference"):
        EnsembleSegmenter([members[0], adc_first])
    case = synthetic_stroke_case(2, **SMALL)
    with pytest.raises(SegmentationError, match=r"needs the channel\(s\) adc"):
        EnsembleSegmenter(members).segment({"dwi": case.dwi})


def test_weighted_mean_of_two_networks(members, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    case = synthetic_stroke_case(2, **SMALL)
    result = EnsembleSegmenter(members[:2], weights=[3, 1]).segment(case.inputs())
    a, b = (m.probability.data for m in result.members)
    np.testing.assert_allclose(result.probability.data, 0.75 * a + 0.25 * b, atol=1e-6)
