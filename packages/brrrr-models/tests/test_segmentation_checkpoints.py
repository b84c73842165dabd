"""Checkpoints: every weight format gives the in-memory network's probabilities; state dicts
that do not fit are errors naming the file; load_segmenter's routes; the shipped synthetic
lesion model (size, provenance, and its Dice on fresh synthetic cases)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from brrrr.models.segmentation import (
    NetworkConfig,
    SegmentationError,
    build_network,
    dice,
    load_network_segmenter,
    load_segmenter,
    load_synthetic_lesion_model,
    save_network,
    synthetic_stroke_case,
)
from brrrr.models.segmentation.checkpoints import (
    BUILTIN_MODELS,
    load_state_dict_file,
    shipped_weights,
)
from brrrr.models.segmentation.members import NetworkSegmenter

SMALL = {"shape": (42, 51, 42), "spacing": 4.0}
#: The shipped model's mean Dice on the fresh cases below must stay above this; measured
#: 0.890 (per case 0.85, 0.90, 1.00, 0.55, 0.87, 0.99, 1.00 lesion-free, 0.96).
SHIPPED_MIN_MEAN_DICE = 0.8
FRESH_SEEDS = tuple(range(300_000, 300_008))


def _config(**kwargs: object) -> NetworkConfig:
    return NetworkConfig.from_dict(
        {
            "network": "SegResNet",
            "channels": ["dwi", "adc"],
            "kwargs": {"init_filters": 8, "blocks_down": [1, 1], "blocks_up": [1], **kwargs},
            "patch_size": [32, 32, 32],
            "spacing_mm": [5.0, 5.0, 5.0],
        }
    )


@pytest.fixture(scope="module")
def trained() -> tuple[torch.nn.Module, NetworkConfig, dict[str, np.ndarray]]:
    """A tiny network (random weights, moved off zero) and its probability on one case."""
    torch.manual_seed(3)
    config = _config()
    network = build_network(config).eval()
    case = synthetic_stroke_case(1, **SMALL)
    reference = NetworkSegmenter(config, network).segment(case.inputs()).probability.data
    return (
        network,
        config,
        {"probability": reference, **{k: v.data for k, v in case.inputs().items()}},
    )


def _case():  # type: ignore[no-untyped-def]
    return synthetic_stroke_case(1, **SMALL)


def _write_config(config: NetworkConfig, path: Path) -> None:
    path.write_text(json.dumps(config.to_dict()))


def test_safetensors_and_sidecar_config(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, config, expected = trained
    weights = save_network(network, config, tmp_path / "model.safetensors")
    assert (tmp_path / "model.json").is_file()
    segmenter = load_network_segmenter(weights)
    assert segmenter.config == config
    assert segmenter.source == str(weights)
    out = segmenter.segment(_case().inputs()).probability.data
    np.testing.assert_allclose(out, expected["probability"], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "wrap"),
    [
        ("plain.pt", lambda s: s),
        (
            "lightning.ckpt",
            lambda s: {"state_dict": {f"model.{k}": v for k, v in s.items()}, "epoch": 3},
        ),
        ("parallel.pth", lambda s: {f"module.{k}": v for k, v in s.items()}),
        ("nnunet_style.pth", lambda s: {"network_weights": s, "trainer_name": "x"}),
    ],
)
def test_torch_state_dicts(trained, tmp_path: Path, name: str, wrap) -> None:  # type: ignore[no-untyped-def]
    network, config, expected = trained
    path = tmp_path / name
    torch.save(wrap(network.state_dict()), path)
    _write_config(config, path.with_suffix(".json"))
    out = load_network_segmenter(path).segment(_case().inputs()).probability.data
    np.testing.assert_allclose(out, expected["probability"], atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, config, expected = trained
    traced = torch.jit.trace(network, torch.zeros(1, 2, 32, 32, 32))
    path = tmp_path / "scripted.pt"
    torch.jit.save(traced, str(path))
    _write_config(config, path.with_suffix(".json"))
    segmenter = load_network_segmenter(path)
    assert isinstance(segmenter.network, torch.jit.ScriptModule)
    out = segmenter.segment(_case().inputs()).probability.data
    # The module runs its windows batched (oneDNN), TorchScript one at a time (reference
    # kernel): the same windows, float rounding apart.
    np.testing.assert_allclose(out, expected["probability"], atol=1e-4)


def test_onnx_through_onnxruntime(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    network, config, expected = trained
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        network,
        (torch.zeros(1, 2, 32, 32, 32),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    _write_config(config, path.with_suffix(".json"))
    out = load_network_segmenter(path).segment(_case().inputs()).probability.data
    np.testing.assert_allclose(out, expected["probability"], atol=1e-4)
    # A config whose patch does not fit the graph's fixed input is refused up front.
    other = NetworkConfig.from_dict({**config.to_dict(), "patch_size": [48, 48, 48]})
    with pytest.raises(SegmentationError, match="fixed input size") as error:
        load_network_segmenter(path, config=other)
    assert error.value.path == str(path)


def test_state_dict_that_does_not_fit_names_the_checkpoint(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, config, _ = trained
    path = tmp_path / "model.pt"
    torch.save(network.state_dict(), path)
    wider = _config(init_filters=16)
    with pytest.raises(SegmentationError, match=r"shape mismatch\(es\)") as error:
        load_network_segmenter(path, config=wider)
    assert error.value.path == str(path)
    assert "does not fit the SegResNet network" in str(error.value)
    deeper = _config(blocks_down=[1, 1, 1], blocks_up=[1, 1])
    with pytest.raises(SegmentationError, match=r"missing tensor\(s\)"):
        load_network_segmenter(path, config=deeper)
    extra = dict(network.state_dict())
    extra["head.weight"] = torch.zeros(3)
    torch.save(extra, path)
    with pytest.raises(SegmentationError, match=r"1 unexpected tensor\(s\) \(head.weight\)"):
        load_network_segmenter(path, config=config)


def test_unreadable_or_unconfigured_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(SegmentationError, match="holds no state dict"):
        load_state_dict_file(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    with pytest.raises(SegmentationError, match="safetensors"):
        load_state_dict_file(junk)
    lonely = tmp_path / "lonely.pt"
    torch.save({}, lonely)
    with pytest.raises(SegmentationError, match="no network config next to the weights") as error:
        load_network_segmenter(lonely)
    assert error.value.path == str(lonely)
    with pytest.raises(SegmentationError, match="no such weights file"):
        load_network_segmenter(tmp_path / "missing.pt")


def test_load_segmenter_routes(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, config, _ = trained
    weights = save_network(network, config, tmp_path / "weights" / "net.safetensors")
    spec = tmp_path / "my_model.json"
    spec.write_text(json.dumps({**config.to_dict(), "weights": "weights/net.safetensors"}))
    assert isinstance(load_segmenter(spec), NetworkSegmenter)
    assert isinstance(load_segmenter(weights), NetworkSegmenter)
    with pytest.raises(SegmentationError, match="built-in: synthetic-lesion"):
        load_segmenter("no-such-model")
    spec.write_text(json.dumps(config.to_dict()))
    with pytest.raises(SegmentationError, match="no 'weights' field"):
        load_segmenter(spec)


# -- the shipped model -----------------------------------------------------------------------
def test_shipped_weights_are_small_package_data_with_provenance() -> None:
    path = shipped_weights()
    assert path.is_file()
    assert path.stat().st_size < 2_000_000
    assert path.parent.name == "weights"
    assert path.parent.parent.name == "segmentation"
    assert list(BUILTIN_MODELS) == ["synthetic-lesion"]
    config = json.loads(path.with_suffix(".json").read_text())
    assert "SYNTHETIC" in config["description"]
    assert config["metadata"]["held_out_dice"] > 0.8
    # Not ignored by git, so hatch puts it in the wheel with the code.
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=path.parent, check=False)
    assert ignored.returncode == 1


@pytest.mark.slow
def test_shipped_model_segments_fresh_synthetic_cases() -> None:
    model = load_synthetic_lesion_model()
    assert model.channels == ("dwi", "adc")
    assert model.optional_channels == ("flair",)
    scores = []
    for seed in FRESH_SEEDS:
        case = synthetic_stroke_case(seed)
        result = model.segment(case.inputs())
        assert result.mask.shape == case.dwi.shape
        scores.append(dice(result.mask.data > 0, case.mask.data > 0))
    assert float(np.mean(scores)) > SHIPPED_MIN_MEAN_DICE, scores
