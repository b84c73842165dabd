"""Study metadata with missing values: an embedding for conditioning, and an imputation head.

A metadata vector holds ``M`` numbers per study, already scaled by the caller (e.g. standardised
publication year, log sample size, one-hot task category). A mask says which are observed
(``True``/1) and which are missing; missing values may be NaN. The encoder sees the values with
missing ones zeroed *and* the mask, so "missing" is never confused with "zero".

Training the imputation head: hide some observed values from the input
(:func:`hold_out_metadata`) and score the head only on those (``masked_mse`` with the held-out
mask). Scoring values the encoder saw would teach the head to copy its input.

Example:
    >>> import torch
    >>> values = torch.tensor([[0.5, float("nan")]])
    >>> mask = torch.tensor([[True, False]])
    >>> MetadataEncoder(2, embedding_dim=4)(values, mask).shape
    torch.Size([1, 4])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MetadataEncoder", "MetadataImputationHead", "hold_out_metadata"]


def _observed(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.isfinite(values)
    return mask.to(torch.bool) & torch.isfinite(values)


class MetadataEncoder(nn.Module):
    """Embed a metadata vector and its missing-value mask.

    Args:
        metadata_dim: Number ``M`` of metadata entries.
        embedding_dim: Size ``E`` of the embedding.
        hidden_dim: Hidden width of the two-layer MLP (defaults to ``embedding_dim``).
    """

    def __init__(
        self, metadata_dim: int, *, embedding_dim: int, hidden_dim: int | None = None
    ) -> None:
        super().__init__()
        hidden = hidden_dim or embedding_dim
        self.mlp = nn.Sequential(
            nn.Linear(2 * metadata_dim, hidden), nn.SiLU(), nn.Linear(hidden, embedding_dim)
        )

    def forward(self, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Embed the observed values.

        Args:
            values: ``(B, M)`` metadata; missing entries may hold anything, NaN included.
            mask: ``(B, M)`` bool or 0/1, true where observed. ``None``: observed where finite.

        Returns:
            ``(B, E)`` embedding.
        """
        observed = _observed(values, mask)
        clean = torch.where(observed, values, torch.zeros_like(values))
        return self.mlp(torch.cat([clean, observed.to(values.dtype)], dim=-1))


class MetadataImputationHead(nn.Module):
    """Predict every metadata entry from image features (to fill in missing ones).

    Args:
        in_features: Size of the input features.
        metadata_dim: Number ``M`` of metadata entries.
        hidden_dim: Hidden width.
    """

    def __init__(self, in_features: int, *, metadata_dim: int, hidden_dim: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, metadata_dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predict metadata.

        Args:
            features: ``(B, in_features)``.

        Returns:
            ``(B, M)`` predicted metadata, in the caller's scaling.
        """
        return self.mlp(features)


def hold_out_metadata(
    mask: torch.Tensor, *, rate: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random share of the observed metadata from the model's input.

    Args:
        mask: ``(B, M)`` observed mask.
        rate: Probability that an observed entry is hidden.
        generator: Optional random generator.

    Returns:
        ``(input_mask, held_out_mask)``, both ``(B, M)`` bool: what the model may see, and the
        observed entries hidden from it (the targets of the imputation loss).
    """
    observed = mask.to(torch.bool)
    draw = torch.rand(mask.shape, generator=generator, device=mask.device)
    held_out = observed & (draw < rate)
    return observed & ~held_out, held_out
