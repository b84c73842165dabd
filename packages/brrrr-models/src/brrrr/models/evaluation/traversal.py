"""Latent traversals: decode a latent while one coordinate sweeps a range, and draw them.

:func:`latent_traversal` returns the decoded maps ``(D, S, I, J, K)`` for ``D`` latent
dimensions and ``S`` values; :func:`save_traversal_png` draws each map as its maximum-intensity
projection (or middle slice) along one axis (rows = dimensions, columns = values) with matplotlib (a ``Figure`` drawn by
the Agg canvas, no pyplot state).

Example:
    >>> maps = latent_traversal(model, dims=[0, 1], values=[-2, 0, 2])  # doctest: +SKIP
    >>> save_traversal_png(maps, "traversal.png", values=[-2, 0, 2], dims=[0, 1])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from brrrr.models.evaluation.ensemble import decode_maps, latent_size

__all__ = ["latent_traversal", "save_traversal_png"]


@torch.no_grad()
def latent_traversal(
    model: nn.Module,
    *,
    dims: Sequence[int],
    values: Sequence[float],
    z: torch.Tensor | None = None,
    metadata: torch.Tensor | None = None,
    metadata_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode ``z`` with ``z[d] = v`` for every dimension ``d`` and value ``v``.

    Args:
        model: A ``BetaVAE`` or ``HierarchicalVAE`` (top latent).
        dims: Latent dimensions to sweep.
        values: Values each is set to (in prior standard deviations).
        z: ``(L,)`` base latent (default: the prior mean, zeros).
        metadata: ``(M,)`` metadata for the decoder, or ``None``.
        metadata_mask: ``(M,)`` observed mask.

    Returns:
        ``(D, S, I, J, K)`` decoded means (first channel).
    """
    model.eval()
    base = torch.zeros(latent_size(model)) if z is None else z.detach().float().reshape(-1)
    rows = []
    for d in dims:
        batch = base.repeat(len(values), 1)
        batch[:, d] = torch.as_tensor(list(values), dtype=batch.dtype)
        meta = None if metadata is None else metadata.reshape(1, -1).expand(len(values), -1)
        mask = (
            None if metadata_mask is None else metadata_mask.reshape(1, -1).expand(len(values), -1)
        )
        mean, _ = decode_maps(model, batch, metadata=meta, metadata_mask=mask)
        rows.append(mean[:, 0])
    return torch.stack(rows)


def save_traversal_png(
    maps: torch.Tensor | np.ndarray,
    path: str | os.PathLike[str],
    *,
    dims: Sequence[int] | None = None,
    values: Sequence[float] | None = None,
    axis: int = 2,
    view: Literal["mip", "slice"] = "mip",
    title: str = "latent traversal",
) -> Path:
    """Draw a traversal grid as maximum-intensity projections.

    Args:
        maps: ``(D, S, I, J, K)`` maps from :func:`latent_traversal`.
        path: PNG file to write.
        dims: Row labels (latent dimensions).
        values: Column labels (latent values).
        axis: Projection axis of the ``(I, J, K)`` grid (2: axial view of a RAS+ grid).
        view: ``"mip"`` (maximum-intensity projection, for sparse maps) or ``"slice"`` (the
            middle slice along ``axis``, for smooth decoded maps).
        title: Figure title.

    Returns:
        The PNG path.
    """
    from matplotlib.figure import Figure

    data = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    n_rows, n_cols = data.shape[:2]
    if view == "mip":
        projections = data.max(axis=2 + axis)
    else:
        projections = np.take(data, data.shape[2 + axis] // 2, axis=2 + axis)
    vmin, vmax = float(projections.min()), float(projections.max())
    fig = Figure(figsize=(1.6 * n_cols, 1.8 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(projections[r, c].T, origin="lower", cmap="hot", vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"z[{dims[r] if dims is not None else r}]")
            if r == 0 and values is not None:
                ax.set_title(f"{values[c]:+.1f}", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out
