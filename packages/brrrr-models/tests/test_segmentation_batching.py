"""Batched sliding windows: how many windows go through the network per pass
(``auto_batch_size``), and that batching changes the passes, not the probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.inference import auto_batch_size, sliding_window_probabilities


def test_auto_batch_size_of_the_documented_patch() -> None:
    """16 windows of 48³ per pass is the voxel target itself."""
    assert auto_batch_size((48, 48, 48)) == 16


@pytest.mark.parametrize("patch", [(1, 1, 1), (4, 4, 4), (8, 8, 8), (16, 16, 8), (24, 24, 24)])
def test_auto_batch_size_caps_small_patches_at_16(patch: tuple[int, int, int]) -> None:
    assert auto_batch_size(patch) == 16


@pytest.mark.parametrize("patch", [(96, 96, 96), (128, 128, 128), (512, 512, 64), (10**4,) * 3])
def test_auto_batch_size_never_drops_to_one_window(patch: tuple[int, int, int]) -> None:
    """However large the patch, at least 2 windows a pass (one sends CPU convolutions to the
    slow reference kernel)."""
    assert auto_batch_size(patch) == 2


def test_auto_batch_size_is_bounded_and_monotone_in_patch_size() -> None:
    sizes = [4, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160]
    for patch in itertools.product(sizes, repeat=3):
        assert 2 <= auto_batch_size(patch) <= 16, patch
    # along each axis, a larger window never gets more windows per pass
    for fixed in itertools.product(sizes, repeat=2):
        for axis in range(3):
            batches = [auto_batch_size((*fixed[:axis], size, *fixed[axis:])) for size in sizes]
            assert batches == sorted(batches, reverse=True), (fixed, axis, batches)
    # in between the bounds it aims at 16 windows of 48³ voxels per pass
    assert auto_batch_size((64, 64, 64)) == 16 * 48**3 // 64**3 == 6
    assert auto_batch_size((48, 48, 96)) == 8


class _Recorder(torch.nn.Module):
    """A small two-layer 3-D CNN (a 5³ receptive field) that records each pass's batch size."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv3d(1, 4, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv3d(4, 2, 3, padding=1),
        )
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(int(x.shape[0]))
        return self.net(x)


def _image() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(1, 20, 22, 14)).astype(np.float32)


def test_batched_windows_give_the_single_window_probabilities() -> None:
    network = _Recorder()
    image = _image()
    kwargs = {"patch_size": (8, 8, 8), "overlap": 0.5}
    single = sliding_window_probabilities(network, image, batch_size=1, **kwargs)  # type: ignore[arg-type]
    windows = len(network.batches)
    assert set(network.batches) == {1}
    assert windows > 16  # enough windows that batching groups them

    network.batches.clear()
    automatic = sliding_window_probabilities(network, image, **kwargs)  # type: ignore[arg-type]
    assert sum(network.batches) == windows
    assert max(network.batches) == auto_batch_size((8, 8, 8)) == 16
    assert len(network.batches) == -(-windows // 16)

    network.batches.clear()
    five = sliding_window_probabilities(network, image, batch_size=5, **kwargs)  # type: ignore[arg-type]
    assert sum(network.batches) == windows
    assert max(network.batches) == 5

    assert single.shape == (2, 20, 22, 14)
    for batched in (automatic, five):
        np.testing.assert_allclose(batched, single, atol=1e-4)
    # not a vacuous comparison: the probabilities vary over the image
    assert float(single[1].std()) > 1e-3


@pytest.mark.parametrize("batch_size", [0, -3])
def test_batch_size_below_one_is_refused(batch_size: int) -> None:
    with pytest.raises(SegmentationError, match=f"batch_size must be at least 1, got {batch_size}"):
        sliding_window_probabilities(
            _Recorder(), _image(), patch_size=(8, 8, 8), batch_size=batch_size
        )
    # still a ValueError, as it was before it joined the package's errors
    with pytest.raises(ValueError, match="batch_size"):
        sliding_window_probabilities(_Recorder(), _image(), patch_size=(8, 8, 8), batch_size=0)


def test_image_that_is_not_channel_first_3d_is_refused() -> None:
    with pytest.raises(SegmentationError, match=r"\(C, I, J, K\) image, got shape \(20, 22, 14\)"):
        sliding_window_probabilities(_Recorder(), _image()[0], patch_size=(8, 8, 8))


def test_read_only_image_gives_the_same_probabilities_without_a_warning() -> None:
    """A memory-mapped (read-only) image is copied before torch sees it, not warned about."""
    import warnings

    image = _image()
    expected = sliding_window_probabilities(_Recorder(), image, patch_size=(8, 8, 8))
    image.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        read_only = sliding_window_probabilities(_Recorder(), image, patch_size=(8, 8, 8))
    np.testing.assert_array_equal(read_only, expected)
