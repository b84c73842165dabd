"""MONAI network members: the config and its round trip, the three architectures built and
run through the segmenter, the model-grid input (normalised on each channel's own grid,
missing optional channels as zeros)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks import nets

from brrrr.core.resample import resample
from brrrr.models.segmentation import SegmentationError
from brrrr.models.segmentation.members import (
    NetworkConfig,
    NetworkSegmenter,
    build_network,
    load_network_config,
    network_inputs,
)
from brrrr.models.segmentation.preprocessing import Normalization, normalize, same_grid
from brrrr.models.segmentation.synthetic import synthetic_stroke_case

SMALL = {"shape": (42, 51, 42), "spacing": 4.0}

CONFIGS = {
    "SegResNet": {"init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1]},
    "DynUNet": {
        "kernel_size": [3, 3, 3],
        "strides": [1, 2, 2],
        "upsample_kernel_size": [2, 2],
        "filters": [4, 8, 16],
    },
    "UNet": {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 1},
}


def _config(network: str = "SegResNet", **changes: object) -> NetworkConfig:
    fields: dict[str, object] = {
        "network": network,
        "channels": ["dwi", "adc"],
        "optional_channels": ["flair"],
        "kwargs": CONFIGS[network],
        "patch_size": [32, 32, 32],
        "spacing_mm": [5.0, 5.0, 5.0],
        **changes,
    }
    return NetworkConfig.from_dict(fields)


def test_config_round_trip_through_json_and_yaml(tmp_path: Path) -> None:
    config = _config(
        normalization={"adc": {"method": "zscore", "region": "all", "clip_percentiles": None}},
        metadata={"trained_on": "synthetic"},
        tta="flip",
    )
    assert config.in_channels == 3
    assert config.input_channels == ("dwi", "adc", "flair")
    assert config.normalization_of("adc") == Normalization(region="all", clip_percentiles=None)
    assert config.normalization_of("dwi") == Normalization()
    path = tmp_path / "model.json"
    path.write_text(json.dumps(config.to_dict()))
    assert load_network_config(path) == config
    yaml = pytest.importorskip("yaml")
    yaml_path = tmp_path / "model.yaml"
    yaml_path.write_text(yaml.safe_dump(config.to_dict()))
    assert load_network_config(yaml_path) == config


def test_bad_configs_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"network": "SegResNet", "channels": ["dwi"], "patchsize": 32}))
    with pytest.raises(
        SegmentationError, match=r"unknown network config field\(s\) \['patchsize'\]"
    ) as error:
        load_network_config(path)
    assert error.value.path == str(path)
    path.write_text(json.dumps({"network": "VNetX", "channels": ["dwi"]}))
    with pytest.raises(SegmentationError, match="unknown network 'VNetX'"):
        load_network_config(path)
    path.write_text("{not json")
    with pytest.raises(SegmentationError, match="cannot parse"):
        load_network_config(path)
    with pytest.raises(SegmentationError, match="lesion_index"):
        _config(out_channels=1, lesion_index=1)
    with pytest.raises(SegmentationError, match="normalization names channel"):
        _config(normalization={"t1": {}})
    with pytest.raises(SegmentationError, match="cannot build SegResNet"):
        build_network(_config(kwargs={"init_filter": 8}), source="model.json")


@pytest.mark.parametrize("network", sorted(CONFIGS))
def test_each_architecture_builds_and_segments_on_the_reference_grid(network: str) -> None:
    config = _config(network)
    model = build_network(config)
    assert isinstance(model, getattr(nets, network))
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32, 32))
    assert out.shape == (1, 2, 32, 32, 32)
    case = synthetic_stroke_case(1, **SMALL)
    result = NetworkSegmenter(config, model).segment(case.inputs())
    for volume in (result.probability, result.mask):
        assert same_grid(volume, case.dwi)
        assert np.array_equal(volume.affine, case.dwi.affine)
    assert result.probability.data.dtype == np.float32
    assert result.probability.data.min() >= 0
    assert result.probability.data.max() <= 1
    assert set(np.unique(result.mask.data)) <= {0, 1}
    np.testing.assert_array_equal(result.mask.data, result.probability.data >= 0.5)
    assert result.threshold == 0.5


def test_network_inputs_normalise_each_channel_on_its_own_grid() -> None:
    config = _config()
    case = synthetic_stroke_case(4, **SMALL)
    adc = case.adc.resample(spacing=3.0).reorient("LPS")
    volumes = {"dwi": case.dwi, "adc": adc}
    image, affine = network_inputs(config, volumes, reference=case.dwi)
    assert image.shape[0] == 3
    assert image.dtype == np.float32
    expected = resample(
        normalize(adc.data, Normalization()),
        adc.affine,
        target_shape=image.shape[1:],
        target_affine=affine,
    )
    np.testing.assert_array_equal(image[1], expected)
    assert (image[2] == 0).all()  # FLAIR not given: zeros, as in training
    np.testing.assert_allclose(np.abs(affine[:3, :3]).sum(axis=0), 5.0)


def test_brain_region_uses_a_given_brain_mask() -> None:
    config = _config(normalization={"dwi": {"region": "brain", "clip_percentiles": None}})
    segmenter = NetworkSegmenter(config, build_network(config))
    assert "brain" in segmenter.optional_channels
    case = synthetic_stroke_case(4, **SMALL)
    brain = case.dwi.with_data((case.dwi.data > 0).astype(np.uint8))
    half = brain.data.copy()
    half[: half.shape[0] // 2] = 0
    volumes = segmenter.prepare({**case.inputs(), "brain": brain.with_data(half)})
    image, _ = network_inputs(config, volumes, reference=case.dwi)
    plain, _ = network_inputs(config, segmenter.prepare(case.inputs()), reference=case.dwi)
    assert not np.allclose(image[0], plain[0])


def test_network_failure_is_a_segmentation_error_naming_the_source() -> None:
    config = _config()
    wrong = torch.nn.Conv3d(2, 2, 1)  # takes 2 channels, the config gives 3
    segmenter = NetworkSegmenter(config, wrong, source="weights.pt")
    case = synthetic_stroke_case(4, **SMALL)
    with pytest.raises(SegmentationError, match="network failed") as error:
        segmenter.segment(case.inputs())
    assert error.value.path == "weights.pt"


def test_with_options_changes_tta_and_threshold_only() -> None:
    config = _config()
    segmenter = NetworkSegmenter(config, build_network(config), source="w.pt")
    other = segmenter.with_options(tta="flip", threshold=0.7)
    assert other.config.tta == "flip"
    assert other.threshold == 0.7
    assert other.network is segmenter.network
    assert other.source == "w.pt"
    assert segmenter.config.tta == "none"
