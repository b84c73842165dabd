"""The Atlas explorer's 3-D scatter plot of sampled peaks (plotly when installed, else matplotlib)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from brrrr.core.errors import MissingDependencyError

__all__ = ["brain_outline", "peaks_figure"]

_STEP = 4  # outline points every 4 voxels (8 mm on the 2 mm grid)


def brain_outline(mask: np.ndarray, affine: np.ndarray, *, step: int = _STEP) -> np.ndarray:
    """``(P, 3)`` world mm of the mask's surface voxels, on a lattice every ``step`` voxels.

    Args:
        mask: ``(I, J, K)`` bool brain mask.
        affine: ``(4, 4)`` voxel→world of the mask.
        step: Keep one voxel in ``step`` along each axis.
    """
    coarse = np.asarray(mask, dtype=bool)[::step, ::step, ::step]
    padded = np.pad(coarse, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    surface = np.argwhere(coarse & ~inner).astype(np.float64) * step
    return surface @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def peaks_figure(points: np.ndarray, *, outline: np.ndarray | None = None, title: str = "") -> Any:
    """A 3-D scatter of peaks, one colour per sampled cloud, over a faint brain outline.

    Args:
        points: ``(S, N, 3)`` peaks in MNI mm (``S`` clouds of ``N`` peaks).
        outline: ``(P, 3)`` outline points in mm (:func:`brain_outline`), or ``None``.
        title: Figure title.

    Returns:
        A ``plotly.graph_objects.Figure`` when plotly is installed, else a matplotlib
        ``Figure`` (both are what ``gr.Plot`` shows).

    Raises:
        MissingDependencyError: Neither plotly nor matplotlib is installed.
    """
    clouds = np.asarray(points, dtype=np.float64).reshape(-1, *np.shape(points)[-2:])
    if importlib.util.find_spec("plotly") is not None:
        return _plotly(clouds, outline, title)
    if importlib.util.find_spec("matplotlib") is not None:
        return _matplotlib(clouds, outline, title)
    raise MissingDependencyError(
        "the peaks plot needs plotly or matplotlib: pip install plotly (or matplotlib)"
    )


def _plotly(clouds: np.ndarray, outline: np.ndarray | None, title: str) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    if outline is not None and len(outline):
        figure.add_trace(
            go.Scatter3d(
                x=outline[:, 0],
                y=outline[:, 1],
                z=outline[:, 2],
                mode="markers",
                marker={"size": 1.5, "color": "#9a9a9a", "opacity": 0.25},
                name="brain (MNI mask)",
                hoverinfo="skip",
            )
        )
    for s, cloud in enumerate(clouds):
        figure.add_trace(
            go.Scatter3d(
                x=cloud[:, 0],
                y=cloud[:, 1],
                z=cloud[:, 2],
                mode="markers",
                marker={"size": 4, "opacity": 0.9},
                name=f"sample {s}",
            )
        )
    figure.update_layout(
        title=title or None,
        scene={
            "xaxis_title": "x (mm, R+)",
            "yaxis_title": "y (mm, A+)",
            "zaxis_title": "z (mm, S+)",
            "aspectmode": "data",
        },
        margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0},
        height=480,
    )
    return figure


def _matplotlib(clouds: np.ndarray, outline: np.ndarray | None, title: str) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 5.0))
    axes: Any = figure.add_subplot(projection="3d")
    if outline is not None and len(outline):
        axes.scatter(*outline.T, s=1, c="0.6", alpha=0.2, label="brain (MNI mask)")
    for s, cloud in enumerate(clouds):
        axes.scatter(*cloud.T, s=12, label=f"sample {s}")
    axes.set_xlabel("x (mm, R+)")
    axes.set_ylabel("y (mm, A+)")
    axes.set_zlabel("z (mm, S+)")
    axes.legend(loc="upper left", fontsize="small")
    if title:
        axes.set_title(title)
    return figure
