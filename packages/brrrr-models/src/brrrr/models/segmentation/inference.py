"""Sliding-window inference of a segmentation network, with flip test-time augmentation.

:func:`sliding_window_probabilities` runs ``monai.inferers.sliding_window_inference`` over a
channel-first image (Gaussian-weighted overlapping patches), turns the logits into
probabilities (softmax or sigmoid) and, with ``tta="flip"``, averages the probabilities over
the eight combinations of flipping the three spatial axes (each flipped back first), as
nnU-Net's mirroring does. On a CUDA device the network runs under ``torch.autocast``
(float16 mixed precision); on the CPU it runs in float32, so CPU results are reproducible.

Speed: the windows go through the network in batches (``batch_size=None`` picks
:func:`auto_batch_size`): on the CPU, PyTorch runs a 3D convolution of a single window with
few channels through its slow reference kernel instead of oneDNN, so one window at a time
(MONAI's default) is several times slower for the same windows and the same outputs (float
rounding aside). ``channels_last=True`` feeds the windows in ``channels_last_3d`` memory
order, which oneDNN convolves faster when the network's weights are in that order too
(:class:`~brrrr.models.segmentation.members.NetworkSegmenter` converts its network).

The network is any callable mapping a ``(B, C, *patch)`` float tensor to ``(B, K, *patch)``
logits: an ``nn.Module``, a TorchScript module, or an ONNX session wrapped by
:mod:`brrrr.models.segmentation.checkpoints`.

Example:
    >>> import numpy as np, torch
    >>> net = torch.nn.Conv3d(2, 2, 1)
    >>> image = np.zeros((2, 20, 24, 20), dtype=np.float32)
    >>> sliding_window_probabilities(net, image, patch_size=(16, 16, 16)).shape
    (2, 20, 24, 20)
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from brrrr.core.errors import MissingDependencyError
from brrrr.models.segmentation.errors import SegmentationError

if TYPE_CHECKING:
    import torch

__all__ = [
    "Activation",
    "TestTimeAugmentation",
    "auto_batch_size",
    "flip_axes",
    "sliding_window_probabilities",
]

#: Voxels of input per forward pass that :func:`auto_batch_size` aims for (16 windows of 48³).
_BATCH_VOXELS = 16 * 48**3
#: Most windows per forward pass that :func:`auto_batch_size` picks.
_MAX_BATCH = 16

#: How logits become probabilities: over the class axis (``"softmax"``) or per channel.
Activation = Literal["softmax", "sigmoid"]
#: ``"none"`` or ``"flip"`` (the mean over all 8 flips of the spatial axes).
TestTimeAugmentation = Literal["none", "flip"]


def flip_axes(tta: TestTimeAugmentation) -> list[tuple[int, ...]]:
    """The spatial-axis flips (axes of a ``(B, C, I, J, K)`` tensor) ``tta`` averages over.

    Raises:
        SegmentationError: ``tta`` is neither ``"none"`` nor ``"flip"``.
    """
    if tta == "none":
        return [()]
    if tta == "flip":
        spatial = (2, 3, 4)
        return [c for n in range(4) for c in itertools.combinations(spatial, n)]
    raise SegmentationError(f"tta must be 'none' or 'flip', got {tta!r}")


def auto_batch_size(patch_size: Sequence[int]) -> int:
    """Windows per forward pass for a patch size: about 1.8 M voxels per batch, 2 to 16.

    Never one window: a batch of one sends small 3D convolutions on the CPU to PyTorch's
    slow reference kernel. MONAI's sliding window takes at most the number of windows there
    are, so a small image costs no padding.
    """
    voxels = int(np.prod([int(p) for p in patch_size]))
    return int(min(_MAX_BATCH, max(2, _BATCH_VOXELS // max(1, voxels))))


def _device(device: str | torch.device | None) -> torch.device:
    import torch

    if device is None:
        return torch.device("cpu")
    return torch.device(device)


def sliding_window_probabilities(
    network: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    *,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    batch_size: int | None = None,
    activation: Activation = "softmax",
    tta: TestTimeAugmentation = "none",
    device: str | torch.device | None = None,
    mixed_precision: bool = True,
    channels_last: bool = False,
) -> np.ndarray:
    """Probabilities of a network over a whole image, patch by patch.

    Args:
        network: ``(B, C, *patch) -> (B, K, *patch)`` logits.
        image: ``(C, I, J, K)`` float32 input (normalised as the network expects).
        patch_size: Spatial size of one window; images smaller than it are padded.
        overlap: Fraction of a window shared with its neighbour.
        batch_size: Windows per forward pass (``None``: :func:`auto_batch_size`).
        activation: ``"softmax"`` or ``"sigmoid"``.
        tta: ``"none"`` or ``"flip"`` (8 passes).
        device: Where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); windows are
            stitched on the same device.
        mixed_precision: Use ``torch.autocast`` in float16 when ``device`` is CUDA (ignored
            on the CPU).
        channels_last: Give the network its windows in ``torch.channels_last_3d`` memory
            order (faster on the CPU for a network whose weights are in that order).

    Returns:
        ``(K, I, J, K)`` float32 probabilities.

    Raises:
        MissingDependencyError: MONAI is not installed (extra ``brrrr-models[segmentation]``).
        SegmentationError: An image that is not ``(C, I, J, K)``, or ``batch_size`` < 1.
    """
    import torch

    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        raise MissingDependencyError(
            'sliding-window inference needs MONAI: pip install "brrrr-models[segmentation]"'
        ) from None
    if image.ndim != 4:
        raise SegmentationError(f"expected a (C, I, J, K) image, got shape {image.shape}")
    where = _device(device)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if where.type == "cuda" and mixed_precision
        else contextlib.nullcontext()
    )
    array = np.ascontiguousarray(image, dtype=np.float32)
    if not array.flags.writeable:
        # torch.from_numpy warns on a read-only (memory-mapped) array; the copy is one image
        array = array.copy()
    tensor = torch.from_numpy(array)[None].to(where)
    roi = tuple(int(p) for p in patch_size)
    windows = auto_batch_size(roi) if batch_size is None else int(batch_size)
    if windows < 1:
        raise SegmentationError(f"batch_size must be at least 1, got {batch_size}")

    def predictor(patch: torch.Tensor) -> torch.Tensor:
        if channels_last:
            patch = patch.contiguous(memory_format=torch.channels_last_3d)
        with autocast:
            logits = network(patch)
        return logits.float().contiguous()

    total: torch.Tensor | None = None
    flips = flip_axes(tta)
    with torch.inference_mode():
        for axes in flips:
            view = tensor.flip(axes) if axes else tensor
            logits = sliding_window_inference(
                view,
                roi_size=roi,
                sw_batch_size=windows,
                predictor=predictor,
                overlap=float(overlap),
                mode="gaussian",
                sw_device=where,
                device=where,
            )
            assert isinstance(logits, torch.Tensor)
            probs = (
                torch.softmax(logits, dim=1) if activation == "softmax" else torch.sigmoid(logits)
            )
            if axes:
                probs = probs.flip(axes)
            total = probs if total is None else total + probs
    assert total is not None
    return (total[0] / len(flips)).float().cpu().numpy()
