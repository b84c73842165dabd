"""Batch token sequences of different lengths: padded, or packed for variable-length attention.

Each sample is a dict as :class:`~brrrr.preprocess.neurovfm.datasets.ImageDataset` returns it
with ``tokenize=True``: ``img (N_i, P)`` float tokens, ``coords (N_i, 3)``,
``filtered (N_i,)`` (1 = background), ``size (3,)``, plus ``path``, ``label``,
``study``, ``mode`` and ``window``. Two layouts:

* ``"padded"``: ``img (B, N_max, P)``, ``coords (B, N_max, 3)``, ``filtered
  (B, N_max)`` and ``padding_mask (B, N_max)`` (bool, ``True`` = padding, the
  ``key_padding_mask`` convention of ``torch.nn.MultiheadAttention``). Padding is
  zeros in ``img``/``coords`` and 1 (background) in ``filtered``.
* ``"packed"``: the sequences concatenated, ``img (ΣN_i, P)``, ``coords (ΣN_i, 3)``,
  ``filtered (ΣN_i,)``; no padding at all.

Both carry ``seqlens (B,)`` int32, ``cu_seqlens (B + 1,)`` int32 (``[0, N_0,
N_0 + N_1, …]``, the ``cu_seqlens_q/k`` of FlashAttention's varlen kernels) and
``max_seqlen`` (int). In the padded layout ``img[~padding_mask]`` is exactly the
packed ``img``, so ``cu_seqlens`` indexes it.

Example:
    >>> import torch
    >>> def sample(n):
    ...     return {"img": torch.ones(n, 4), "coords": torch.zeros(n, 3, dtype=torch.int32),
    ...             "filtered": torch.zeros(n, dtype=torch.uint8),
    ...             "size": torch.tensor([1, 1, n], dtype=torch.int32), "label": 0}
    >>> batch = collate_tokens([sample(2), sample(3)])
    >>> tuple(batch["img"].shape), batch["cu_seqlens"].tolist(), batch["padding_mask"].sum().item()
    ((2, 3, 4), [0, 2, 5], 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from brrrr.preprocess.errors import CollateError

__all__ = ["Layout", "collate_tokens"]

Layout = Literal["padded", "packed"]

_SEQUENCE_KEYS = ("img", "coords", "filtered")


def _labels(values: list[Any]) -> Any:
    import torch

    if any(v is None for v in values):
        return values
    try:
        return torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError):
        # Strings or ragged label lists: leave them as a list.
        return values


def collate_tokens(
    batch: Sequence[Mapping[str, Any]],
    *,
    layout: Layout = "padded",
    pad_to_multiple: int = 1,
) -> dict[str, Any]:
    """Batch tokenised samples of different lengths.

    Args:
        batch: Samples, each with ``img (N_i, P)``, ``coords (N_i, 3)``,
            ``filtered (N_i,)`` and ``size (3,)`` tensors.
        layout: ``"padded"`` (rectangular tensors and a padding mask) or
            ``"packed"`` (concatenated, for variable-length attention).
        pad_to_multiple: In the padded layout, round ``N_max`` up to a multiple of
            this (8 or 64 helps tensor cores); 1 for no rounding.

    Returns:
        The batched dict (see the module docstring for shapes). ``size`` is
        stacked to ``(B, 3)``; ``label`` becomes a tensor when the labels are
        numbers or equal-length number lists, else stays a list; other keys
        (``path``, ``study``, ``mode``, ``window``…) become lists.

    Raises:
        CollateError: The batch is empty, a sample lacks a token key, or token
            widths differ between samples.
    """
    import torch

    if not batch:
        raise CollateError("cannot collate an empty batch")
    for i, sample in enumerate(batch):
        missing = [k for k in (*_SEQUENCE_KEYS, "size") if k not in sample]
        if missing:
            raise CollateError(
                f"sample {i} has no {', '.join(missing)}: collate_tokens batches tokenised "
                "samples (ImageDataset(..., tokenize=True))"
            )
    widths = {tuple(s["img"].shape[1:]) for s in batch}
    if len(widths) != 1:
        raise CollateError(f"samples have tokens of different widths {sorted(widths)}")
    if pad_to_multiple < 1:
        raise CollateError(f"pad_to_multiple must be at least 1, got {pad_to_multiple}")

    lengths = [int(s["img"].shape[0]) for s in batch]
    seqlens = torch.tensor(lengths, dtype=torch.int32)
    cu_seqlens = torch.zeros(len(batch) + 1, dtype=torch.int32)
    torch.cumsum(seqlens, dim=0, out=cu_seqlens[1:])
    out: dict[str, Any] = {
        "seqlens": seqlens,
        "cu_seqlens": cu_seqlens,
        "max_seqlen": max(lengths),
        "size": torch.stack([torch.as_tensor(s["size"]) for s in batch]),
    }

    if layout == "packed":
        for key in _SEQUENCE_KEYS:
            out[key] = torch.cat([torch.as_tensor(s[key]) for s in batch])
    elif layout == "padded":
        n_max = -(-max(lengths) // pad_to_multiple) * pad_to_multiple
        bsz = len(batch)
        for key in _SEQUENCE_KEYS:
            first = torch.as_tensor(batch[0][key])
            fill = 1 if key == "filtered" else 0
            padded = torch.full((bsz, n_max, *first.shape[1:]), fill, dtype=first.dtype)
            for b, sample in enumerate(batch):
                padded[b, : lengths[b]] = torch.as_tensor(sample[key])
            out[key] = padded
        out["padding_mask"] = torch.arange(n_max)[None, :] >= seqlens[:, None]
    else:
        raise CollateError(f"layout must be 'padded' or 'packed', got {layout!r}")

    for key in batch[0]:
        if key in out or key in _SEQUENCE_KEYS:
            continue
        values = [s.get(key) for s in batch]
        out[key] = _labels(values) if key == "label" else values
    return out
