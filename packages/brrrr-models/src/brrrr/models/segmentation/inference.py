"""Sliding-window inference of a segmentation network, with flip test-time augmentation.

:func:`sliding_window_probabilities` runs ``monai.inferers.sliding_window_inference`` over a
channel-first image (Gaussian-weighted overlapping patches), turns the logits into
probabilities (softmax or sigmoid) and, with ``tta="flip"``, averages the probabilities over
the eight combinations of flipping the three spatial axes (each flipped back first), as
nnU-Net's mirroring does. On a CUDA device the network runs under ``torch.autocast``
(float16 mixed precision); on the CPU it runs in float32, so CPU results are reproducible.

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

if TYPE_CHECKING:
    import torch

__all__ = ["Activation", "TestTimeAugmentation", "flip_axes", "sliding_window_probabilities"]

#: How logits become probabilities: over the class axis (``"softmax"``) or per channel.
Activation = Literal["softmax", "sigmoid"]
#: ``"none"`` or ``"flip"`` (the mean over all 8 flips of the spatial axes).
TestTimeAugmentation = Literal["none", "flip"]


def flip_axes(tta: TestTimeAugmentation) -> list[tuple[int, ...]]:
    """The spatial-axis flips (axes of a ``(B, C, I, J, K)`` tensor) ``tta`` averages over."""
    if tta == "none":
        return [()]
    if tta == "flip":
        spatial = (2, 3, 4)
        return [c for n in range(4) for c in itertools.combinations(spatial, n)]
    raise ValueError(f"tta must be 'none' or 'flip', got {tta!r}")


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
    batch_size: int = 1,
    activation: Activation = "softmax",
    tta: TestTimeAugmentation = "none",
    device: str | torch.device | None = None,
    mixed_precision: bool = True,
) -> np.ndarray:
    """Probabilities of a network over a whole image, patch by patch.

    Args:
        network: ``(B, C, *patch) -> (B, K, *patch)`` logits.
        image: ``(C, I, J, K)`` float32 input (normalised as the network expects).
        patch_size: Spatial size of one window; images smaller than it are padded.
        overlap: Fraction of a window shared with its neighbour.
        batch_size: Windows per forward pass.
        activation: ``"softmax"`` or ``"sigmoid"``.
        tta: ``"none"`` or ``"flip"`` (8 passes).
        device: Where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``); windows are
            stitched on the same device.
        mixed_precision: Use ``torch.autocast`` in float16 when ``device`` is CUDA (ignored
            on the CPU).

    Returns:
        ``(K, I, J, K)`` float32 probabilities.

    Raises:
        MissingDependencyError: MONAI is not installed (extra ``brrrr-models[segmentation]``).
    """
    import torch

    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        raise MissingDependencyError(
            'sliding-window inference needs MONAI: pip install "brrrr-models[segmentation]"'
        ) from None
    if image.ndim != 4:
        raise ValueError(f"expected a (C, I, J, K) image, got shape {image.shape}")
    where = _device(device)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if where.type == "cuda" and mixed_precision
        else contextlib.nullcontext()
    )
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(where)
    roi = tuple(int(p) for p in patch_size)

    def predictor(patch: torch.Tensor) -> torch.Tensor:
        with autocast:
            logits = network(patch)
        return logits.float()

    total: torch.Tensor | None = None
    flips = flip_axes(tta)
    with torch.inference_mode():
        for axes in flips:
            view = tensor.flip(axes) if axes else tensor
            logits = sliding_window_inference(
                view,
                roi_size=roi,
                sw_batch_size=int(batch_size),
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
