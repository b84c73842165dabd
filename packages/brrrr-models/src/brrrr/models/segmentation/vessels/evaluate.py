"""Evaluate a trained vessel model on a dataset folder, and on drifted copies of it.

:func:`evaluate_vessels` prepares the folder's pairs at the model's voxel size (the same
preparation as training: µm from the sidecars, budgeted resampling, normalisation), runs
MONAI sliding-window inference over each whole volume, and scores the mask against the
label **on the model grid** with Dice, clDice and the Betti-0/1 errors.

:func:`evaluate_vessel_drift` makes drifted copies of the folder with
:func:`brrrr.preprocess.drift.generate_drifted_dataset` (one per kind and severity, the
severity constant over the volumes) and evaluates each: one :class:`DriftRow` per kind and
severity, after the undrifted row. What each kind changes (see :mod:`brrrr.preprocess.drift`):
``brighten``/``darken``/``noise``/``resolution`` the images, ``topology_erode``/
``topology_dilate`` the labels (the reference the model is scored against), ``spacing`` the
voxel size that headers and sidecars claim (so the same voxels are resampled to another grid).
:func:`drift_table_markdown` prints the rows as a Markdown table.

Example:
    >>> rows = evaluate_vessel_drift("runs/vessels", "test-volumes")  # doctest: +SKIP
    >>> print(drift_table_markdown(rows))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.metrics import MetricSummary
from brrrr.models.segmentation.vessels.metrics import (
    VESSEL_METRIC_NAMES,
    VesselMetrics,
    aggregate_vessel_metrics,
    vessel_metrics,
)

__all__ = [
    "DRIFT_KINDS",
    "DriftRow",
    "VesselEvaluation",
    "drift_table_markdown",
    "evaluate_vessel_drift",
    "evaluate_vessels",
    "load_vessel_model",
]

#: Every kind ``brrrr preprocess drift`` supports, in table order.
DRIFT_KINDS = (
    "brighten",
    "darken",
    "noise",
    "resolution",
    "topology_erode",
    "topology_dilate",
    "spacing",
)


def _clean(value: Any) -> Any:
    """NaN → ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def load_vessel_model(run_dir: str | os.PathLike[str], *, device: str = "cpu") -> tuple[Any, Any]:
    """The trained network (eval mode, on ``device``) and its config from a run folder.

    Args:
        run_dir: The folder ``brrrr train vessels`` wrote (``model.safetensors`` +
            ``model.json``), or the ``.safetensors`` file itself.
        device: Where the network runs.

    Returns:
        ``(network, NetworkConfig)``.

    Raises:
        SegmentationError: No weights or config, a config without a voxel size, or weights
            that do not fit the network.
    """
    from brrrr.models.segmentation.checkpoints import apply_state_dict, load_state_dict_file
    from brrrr.models.segmentation.members import build_network, load_network_config

    path = Path(run_dir)
    weights = path / "model.safetensors" if path.is_dir() else path
    if not weights.is_file():
        raise SegmentationError(
            "no model.safetensors: is this a run folder of brrrr train vessels?", path=weights
        )
    config = load_network_config(weights.with_suffix(".json"))
    if config.spacing_mm is None or config.channels != ("image",):
        raise SegmentationError(
            "not a vessel model config (needs one 'image' channel and spacing_mm)",
            path=weights.with_suffix(".json"),
        )
    network = build_network(config, source=weights)
    apply_state_dict(
        network, load_state_dict_file(weights), path=weights, network_name=config.network
    )
    return network.to(device).eval(), config


@dataclass(frozen=True)
class VesselEvaluation:
    """Per-volume metrics of one dataset folder and their summary.

    Attributes:
        data_dir: The folder evaluated.
        per_volume: ``(id, VesselMetrics)`` in id order.
        summary: ``{metric: MetricSummary}`` over the volumes.
    """

    data_dir: Path
    per_volume: list[tuple[str, VesselMetrics]]
    summary: dict[str, MetricSummary] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as ``null``)."""
        return _clean(
            {
                "data_dir": str(self.data_dir),
                "per_volume": [{"id": i, **m.to_dict()} for i, m in self.per_volume],
                "aggregate": {k: v.to_dict() for k, v in self.summary.items()},
            }
        )


def evaluate_vessels(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    work_dir: str | os.PathLike[str] | None = None,
    memory_budget_bytes: int | None = 1 << 30,
    device: str = "cpu",
    model: tuple[Any, Any] | None = None,
) -> VesselEvaluation:
    """Score a trained model on every pair of a dataset folder (see the module docstring).

    Args:
        run_dir: The run folder of the model.
        data_dir: MiniVess-layout folder with labels.
        work_dir: Where the prepared volumes go; ``None`` uses a temporary folder, removed after.
        memory_budget_bytes: Largest array a resample may build in memory.
        device: Where the network runs.
        model: An already loaded ``(network, config)`` (from :func:`load_vessel_model`).

    Returns:
        The :class:`VesselEvaluation`.

    Raises:
        PairingError: Unmatched files or mismatched shapes.
        SegmentationError: No model, or a volume that is not 3-D.
    """
    from brrrr.models.segmentation.vessels.data import prepare_vessel_volumes
    from brrrr.models.segmentation.vessels.training import predict_mask

    network, config = model if model is not None else load_vessel_model(run_dir, device=device)
    spacing_um = [s * 1e3 for s in config.spacing_mm]
    temporary = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="brrrr-vessels-")) if temporary else Path(work_dir)  # type: ignore[arg-type]
    try:
        volumes = prepare_vessel_volumes(
            data_dir,
            work,
            spacing_um=spacing_um,
            memory_budget_bytes=memory_budget_bytes,
            progress="off",
        )
        per_volume = []
        for volume in volumes:
            _, mask = predict_mask(network, config, np.asarray(volume.image()), device=device)
            per_volume.append((volume.id, vessel_metrics(mask, np.asarray(volume.label()))))
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    return VesselEvaluation(
        Path(data_dir), per_volume, aggregate_vessel_metrics(m for _, m in per_volume)
    )


@dataclass(frozen=True)
class DriftRow:
    """The evaluation of one drifted copy (``kind="none"``: the original folder).

    Attributes:
        kind: Drift kind, or ``"none"``.
        severity: Its severity (0 for ``"none"``).
        evaluation: The metrics.
    """

    kind: str
    severity: float
    evaluation: VesselEvaluation = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"kind": self.kind, "severity": self.severity, **self.evaluation.to_dict()}


def evaluate_vessel_drift(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    kinds: Sequence[str] = DRIFT_KINDS,
    severities: Sequence[float] = (0.5, 1.0),
    seed: int = 0,
    work_dir: str | os.PathLike[str] | None = None,
    memory_budget_bytes: int | None = 1 << 30,
    device: str = "cpu",
) -> list[DriftRow]:
    """Evaluate a model on ``data_dir`` and on a drifted copy per kind and severity.

    Args:
        run_dir: The run folder of the model.
        data_dir: MiniVess-layout folder with labels.
        kinds: Drift kinds (default: all of :data:`DRIFT_KINDS`).
        severities: Severities in [0, 1], each applied to every volume (constant schedule).
        seed: Base seed of the drifts.
        work_dir: Where drifted copies go (kept); ``None``: a temporary folder, removed after.
        memory_budget_bytes: Largest array a resample may build in memory.
        device: Where the network runs.

    Returns:
        The undrifted row, then one row per kind and severity.

    Raises:
        DriftError: An unknown kind or a severity outside [0, 1].
    """
    from brrrr.preprocess.drift import DriftConfig, generate_drifted_dataset

    configs = [DriftConfig(kind=k, severity=float(s), seed=seed) for k in kinds for s in severities]  # type: ignore[arg-type]
    model = load_vessel_model(run_dir, device=device)
    temporary = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="brrrr-drift-")) if temporary else Path(work_dir)  # type: ignore[arg-type]
    common = {"memory_budget_bytes": memory_budget_bytes, "device": device, "model": model}
    try:
        rows = [DriftRow("none", 0.0, evaluate_vessels(run_dir, data_dir, **common))]  # type: ignore[arg-type]
        for config in configs:
            drifted = work / f"{config.kind}-{config.severity:g}"
            generate_drifted_dataset(data_dir, drifted, config, progress="off")
            evaluation = evaluate_vessels(run_dir, drifted, work_dir=drifted / "prepared", **common)  # type: ignore[arg-type]
            rows.append(DriftRow(config.kind, config.severity, evaluation))
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    return rows


_HEADINGS = {
    "dice": "Dice",
    "cldice": "clDice",
    "betti0_error": "Betti-0 err",
    "betti1_error": "Betti-1 err",
}


def drift_table_markdown(rows: Sequence[DriftRow]) -> str:
    """A Markdown table: one row per drift kind and severity, the mean of each metric."""
    lines = [
        "| drift | severity | " + " | ".join(_HEADINGS[n] for n in VESSEL_METRIC_NAMES) + " |",
        "|---|---:|" + "---:|" * len(VESSEL_METRIC_NAMES),
    ]
    for row in rows:
        summary = row.evaluation.summary
        cells = []
        for name in VESSEL_METRIC_NAMES:
            mean = summary[name].mean
            cells.append(
                "–"
                if math.isnan(mean)
                else (f"{mean:.3f}" if name in ("dice", "cldice") else f"{mean:.2f}")
            )
        label = "none (original)" if row.kind == "none" else row.kind
        lines.append(f"| {label} | {row.severity:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
