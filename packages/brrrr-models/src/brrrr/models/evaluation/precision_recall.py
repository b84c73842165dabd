"""Improved precision and recall of a generative model (Kynkäänniemi et al. 2019).

The real and the generated samples are points in a feature space (here: the VAE's latent
means, or any embedding). Each set's *manifold* is the union of balls around its points, a
point's radius being the distance to its ``k``-th nearest neighbour in the same set (itself
excluded). Then

* precision = share of generated points inside the real manifold (are samples realistic?);
* recall = share of real points inside the generated manifold (is the data covered?).

Identical sets give 1 and 1; sets further apart than any radius give 0 and 0.

Example:
    >>> import torch
    >>> x = torch.randn(20, 4)
    >>> result = improved_precision_recall(x, x, k=3)
    >>> result.precision, result.recall
    (1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PrecisionRecall", "improved_precision_recall", "knn_radii", "manifold_coverage"]


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall, each in ``[0, 1]``."""

    precision: float
    recall: float


def knn_radii(features: torch.Tensor, *, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance from each point to its ``k``-th nearest other point.

    Args:
        features: ``(N, D)`` points, ``N > k``.
        k: Neighbour rank.
        chunk: Rows per distance block (memory ``chunk × N``).

    Returns:
        ``(N,)`` float64 radii.
    """
    x = features.detach().double()
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} points, got {x.shape[0]}")
    radii = []
    for start in range(0, x.shape[0], chunk):
        dist = torch.cdist(x[start : start + chunk], x)
        # The smallest distance is the point to itself (0); rank k is the k-th other point.
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_coverage(
    points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, *, chunk: int = 1024
) -> torch.Tensor:
    """Whether each point lies in some ball ``|p − m| ≤ radius(m)`` of the manifold.

    Args:
        points: ``(Q, D)`` query points.
        manifold: ``(N, D)`` manifold points.
        radii: ``(N,)`` their radii.
        chunk: Query rows per block.

    Returns:
        ``(Q,)`` bool.
    """
    m = manifold.detach().double()
    inside = []
    for start in range(0, points.shape[0], chunk):
        dist = torch.cdist(points[start : start + chunk].detach().double(), m)
        inside.append((dist <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def improved_precision_recall(
    real: torch.Tensor, generated: torch.Tensor, *, k: int = 3
) -> PrecisionRecall:
    """Improved precision and recall of ``generated`` against ``real``.

    Args:
        real: ``(N, D)`` features of real samples.
        generated: ``(M, D)`` features of generated samples.
        k: Neighbour rank of the radii (the paper uses 3).

    Returns:
        The :class:`PrecisionRecall`.
    """
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"expected (N, D) and (M, D) features, got {tuple(real.shape)}, {tuple(generated.shape)}"
        )
    precision = manifold_coverage(generated, real, knn_radii(real, k=k))
    recall = manifold_coverage(real, generated, knn_radii(generated, k=k))
    return PrecisionRecall(
        precision=float(precision.double().mean()), recall=float(recall.double().mean())
    )
