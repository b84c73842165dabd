"""Training and evaluation plots (PNG, matplotlib ``Figure`` objects, no pyplot state).

Example:
    >>> plot_loss_curves("runs/atlas/logs/version_0/metrics.csv", "loss.png")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from brrrr.models.evaluation.calibration import CalibrationCurve

__all__ = ["plot_calibration", "plot_loss_curves", "plot_map_columns", "read_metrics_csv"]


def read_metrics_csv(path: str | os.PathLike[str]) -> dict[str, list[tuple[int, float]]]:
    """Read a Lightning ``CSVLogger`` ``metrics.csv``: ``{column: [(step, value), ...]}``."""
    series: dict[str, list[tuple[int, float]]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(row.get("step") or 0)
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def plot_loss_curves(
    metrics: str | os.PathLike[str] | Mapping[str, Sequence[tuple[int, float]]],
    path: str | os.PathLike[str],
    *,
    keys: Sequence[str] = ("train/loss", "val/loss", "train/reconstruction", "train/kl"),
) -> Path:
    """Plot logged curves against the step, one panel per key present.

    Args:
        metrics: A ``metrics.csv`` path or :func:`read_metrics_csv`'s result.
        path: PNG to write.
        keys: Columns to draw.

    Returns:
        The PNG path.
    """
    from matplotlib.figure import Figure

    series = metrics if isinstance(metrics, Mapping) else read_metrics_csv(metrics)
    present = [k for k in keys if series.get(k)]
    fig = Figure(figsize=(3.2 * max(1, len(present)), 2.8))
    axes = fig.subplots(1, max(1, len(present)), squeeze=False)[0]
    for ax, key in zip(axes, present, strict=False):
        steps, values = zip(*series[key], strict=True)
        ax.plot(steps, values, marker="." if len(steps) < 30 else None)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        if min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def plot_calibration(curves: Mapping[str, CalibrationCurve], path: str | os.PathLike[str]) -> Path:
    """Reliability diagram: observed against expected coverage, one line per prediction.

    Args:
        curves: Label → :class:`~brrrr.models.evaluation.calibration.CalibrationCurve`.
        path: PNG to write.

    Returns:
        The PNG path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6, 3.4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="ideal")
    for label, curve in curves.items():
        ece = curve.ece
        suffix = "" if math.isnan(ece) else f" (ECE {ece:.3f})"
        ax.plot(curve.expected.numpy(), curve.observed.numpy(), marker="o", label=label + suffix)
    ax.set_xlabel("expected coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def plot_map_columns(
    columns: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    axis: int = 2,
    title: str = "",
) -> Path:
    """Maps side by side: rows are samples, columns named maps, each column its own colour scale.

    Args:
        columns: Name → ``(N, I, J, K)`` maps (e.g. input, ensemble mean, epistemic variance).
        path: PNG to write.
        axis: Axis of the maximum-intensity projection (2: axial for RAS+ grids).
        title: Figure title.

    Returns:
        The PNG path.
    """
    from matplotlib.figure import Figure

    names = list(columns)
    n_rows = len(next(iter(columns.values())))
    fig = Figure(figsize=(2.0 * len(names) + 0.6, 1.9 * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, len(names), squeeze=False)
    for c, name in enumerate(names):
        projections = np.asarray(columns[name]).max(axis=1 + axis)
        vmin, vmax = float(projections.min()), float(projections.max())
        for r in range(n_rows):
            ax = axes[r, c]
            image = ax.imshow(projections[r].T, origin="lower", cmap="hot", vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
        fig.colorbar(image, ax=axes[:, c].tolist(), shrink=0.6)
    if title:
        fig.suptitle(title, fontsize=9)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out
