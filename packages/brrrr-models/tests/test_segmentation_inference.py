"""Sliding-window inference: equal to running the network on the whole image for a local
network, flip TTA equal to the hand-made mean over the 8 flips, no autocast on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brrrr.models.segmentation.inference import flip_axes, sliding_window_probabilities


def _image(shape: tuple[int, ...] = (2, 21, 26, 19)) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def test_local_network_equals_the_whole_image_pass() -> None:
    """A 1×1×1 conv sees one voxel, so stitched windows equal one pass over the image."""
    network = torch.nn.Conv3d(2, 3, 1)
    image = _image()
    out = sliding_window_probabilities(network, image, patch_size=(8, 12, 8), overlap=0.25)
    with torch.no_grad():
        whole = torch.softmax(network(torch.from_numpy(image)[None]), dim=1)[0].numpy()
    assert out.shape == (3, 21, 26, 19)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, whole, atol=1e-5)
    sigmoid = sliding_window_probabilities(
        network, image, patch_size=(32, 32, 32), activation="sigmoid"
    )
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.from_numpy(image)[None]))[0].numpy()
    np.testing.assert_allclose(sigmoid, expected, atol=1e-5)


def test_flip_tta_is_the_mean_over_the_eight_flips() -> None:
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv3d(2, 2, 3, padding=1), torch.nn.Conv3d(2, 2, 3, padding=1)
    )
    image = _image((2, 12, 16, 12))
    tensor = torch.from_numpy(image)[None]
    expected = torch.zeros(1, 2, 12, 16, 12)
    flips = flip_axes("flip")
    assert len(flips) == 8
    assert len(set(flips)) == 8
    with torch.no_grad():
        for axes in flips:
            view = tensor.flip(axes) if axes else tensor
            probs = torch.softmax(network(view), dim=1)
            expected += probs.flip(axes) if axes else probs
    expected /= 8
    out = sliding_window_probabilities(network, image, patch_size=(12, 16, 12), tta="flip")
    np.testing.assert_allclose(out, expected[0].numpy(), atol=1e-5)
    plain = sliding_window_probabilities(network, image, patch_size=(12, 16, 12))
    assert not np.allclose(plain, out, atol=1e-4)  # the network is not flip-symmetric
    with pytest.raises(ValueError, match="tta"):
        flip_axes("rotate")  # type: ignore[arg-type]


class _AutocastProbe(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 1)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        self.seen.append((torch.is_autocast_enabled("cuda"), out.dtype))
        return out


def test_cpu_runs_in_float32_without_autocast() -> None:
    probe = _AutocastProbe()
    sliding_window_probabilities(probe, _image((1, 8, 8, 8)), patch_size=(8, 8, 8), device="cpu")
    assert probe.seen == [(False, torch.float32)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_under_autocast() -> None:
    probe = _AutocastProbe().cuda()
    out = sliding_window_probabilities(
        probe, _image((1, 8, 8, 8)), patch_size=(8, 8, 8), device="cuda"
    )
    assert probe.seen == [(True, torch.float16)]
    assert out.dtype == np.float32
    probe.seen.clear()
    sliding_window_probabilities(
        probe, _image((1, 8, 8, 8)), patch_size=(8, 8, 8), device="cuda", mixed_precision=False
    )
    assert probe.seen == [(False, torch.float32)]
