"""A fixed, model-free feature space for maps: principal components of reference maps.

Improved precision/recall (Kynkäänniemi et al. 2019) compare two sets of points in a feature
space; the paper uses a fixed pretrained network so that every model is measured with the same
ruler. For brain maps, :class:`PCAFeatures` plays that role: the leading principal components
of reference maps (the *training* split, never the maps being scored), over the brain mask.
Unlike the model's own encoder it does not change with the model, and it accepts any map,
real or decoded.

Example:
    >>> import torch
    >>> maps = torch.rand(30, 1, 4, 5, 4)
    >>> features = PCAFeatures.fit(maps, n_components=3)
    >>> features(maps[:2]).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PCAFeatures"]


@dataclass(frozen=True)
class PCAFeatures:
    """Coordinates of maps on the leading principal components of reference maps.

    Attributes:
        mean: ``(V,)`` mean of the reference maps over the selected voxels.
        components: ``(D, V)`` orthonormal principal axes, largest variance first.
        voxels: ``(P,)`` bool over the flattened map (``P = C·I·J·K``): the voxels used.
    """

    mean: torch.Tensor
    components: torch.Tensor
    voxels: torch.Tensor

    @classmethod
    def fit(
        cls, maps: torch.Tensor, *, n_components: int = 16, mask: torch.Tensor | None = None
    ) -> PCAFeatures:
        """Principal axes of ``maps`` over the voxels where ``mask`` is non-zero.

        Args:
            maps: ``(N, ...)`` reference maps (e.g. ``(N, 1, I, J, K)``), ``N ≥ 2``.
            n_components: Axes kept (at most ``min(N, V)``).
            mask: Broadcastable to one map (e.g. ``(1, 1, I, J, K)``); ``None`` uses every voxel.

        Returns:
            The fitted :class:`PCAFeatures`.
        """
        if maps.shape[0] < 2:
            raise ValueError(f"PCA needs at least 2 reference maps, got {maps.shape[0]}")
        shape = maps.shape[1:]
        if mask is None:
            voxels = torch.ones(shape.numel(), dtype=torch.bool)
        else:
            voxels = torch.broadcast_to(mask.detach() != 0, (1, *shape)).flatten()
        data = maps.detach().double().flatten(start_dim=1)[:, voxels]
        mean = data.mean(dim=0)
        _, _, vh = torch.linalg.svd(data - mean, full_matrices=False)
        return cls(mean=mean, components=vh[: min(n_components, vh.shape[0])], voxels=voxels)

    @property
    def dim(self) -> int:
        """Number ``D`` of features."""
        return int(self.components.shape[0])

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        """Project maps onto the principal axes.

        Args:
            maps: ``(B, ...)`` maps of the reference maps' shape.

        Returns:
            ``(B, D)`` float64 coordinates.
        """
        data = maps.detach().double().flatten(start_dim=1)[:, self.voxels.to(maps.device)]
        return (data - self.mean.to(data.device)) @ self.components.to(data.device).T
