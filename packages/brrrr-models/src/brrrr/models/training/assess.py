"""Score a finished map-model run on its held-out split: the atlas metrics.

:func:`evaluate_run` reads a run folder written by :func:`~brrrr.models.training.train`
(``run.json``, ``model/``, ``snapshots/`` when there are any), rebuilds its data from the same
settings (the map cache is reused, nothing is recomputed), and scores the model on the
``test`` (or ``val``) split with :func:`~brrrr.models.evaluation.evaluate_maps`:

* reconstruction MSE, MAE and Pearson r against predicting every map by the training split's
  mean map (the baseline a model must beat to have learned anything);
* calibration (ECE) of the aleatoric decoder, and of the snapshot ensemble when there is one;
* improved precision/recall in latent space and in a PCA feature space of the training maps.

It also returns one row per held-out map (analysis, study, r and MSE of model and baseline),
which ``brrrr train evaluate --csv`` writes for DVC plots.

Example:
    >>> result = evaluate_run("runs/atlas-vae")  # doctest: +SKIP
    >>> result.metrics["versus_baseline"]["correlation_gain"]  # doctest: +SKIP
    0.21
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from brrrr.models.errors import ModelConfigError
from brrrr.models.evaluation import (
    CalibrationCurve,
    PCAFeatures,
    evaluate_maps,
    load_ensemble,
    load_model,
    reconstruction_error,
)
from brrrr.models.training.config import run_config_from_dict
from brrrr.models.training.datamodules import MapDataModule
from brrrr.models.training.run import build_datamodule
from brrrr.preprocess.kernels import CachedMaps

__all__ = ["RunEvaluation", "evaluate_run"]

#: Most principal components of the feature space of precision/recall.
PCA_COMPONENTS = 16


@dataclass(frozen=True)
class RunEvaluation:
    """What :func:`evaluate_run` measured.

    Attributes:
        metrics: JSON-ready metrics (see the module docstring).
        per_map: One dict per held-out map: ``analysis``, ``study``, ``correlation``,
            ``baseline_correlation``, ``mse``, ``baseline_mse``.
        curves: The calibration curves by label (``plot_calibration`` draws them).
    """

    metrics: dict[str, Any]
    per_map: list[dict[str, Any]]
    curves: dict[str, CalibrationCurve]


def _read_run(run_dir: Path) -> tuple[str, Any]:
    path = run_dir / "run.json"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ModelConfigError(
            f"not a training run folder ({exc.strerror or exc})", path=path
        ) from None
    except ValueError as exc:
        raise ModelConfigError(f"unreadable run file: {exc}", path=path) from None
    if not isinstance(data, dict) or "kind" not in data:
        raise ModelConfigError("a run file names its kind (vae, hvae, pointvae)", path=path)
    kind = str(data.pop("kind"))
    try:
        return kind, run_config_from_dict(data)
    except ModelConfigError as exc:
        raise ModelConfigError(exc.message, path=path) from None


def _stack(dataset: Any) -> dict[str, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@torch.no_grad()
def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    split: Literal["test", "val"] = "test",
    seed: int = 0,
) -> RunEvaluation:
    """The atlas metrics of a trained ``vae``/``hvae`` run on its held-out split.

    Args:
        run_dir: The run folder (``output_dir`` of the run).
        split: ``"test"`` (the default) or ``"val"``.
        seed: Seed of the posterior and prior draws of precision/recall.

    Returns:
        The :class:`RunEvaluation`.

    Raises:
        ModelConfigError: Not a finished run folder, a point-cloud run, an unknown split, or
            a split without maps.
    """
    root = Path(run_dir)
    if split not in ("test", "val"):
        raise ModelConfigError(f"split must be test or val, got {split!r}")
    kind, config = _read_run(root)
    if kind not in ("vae", "hvae"):
        raise ModelConfigError(
            f"atlas metrics score map models (vae, hvae), not a {kind!r} run", path=root
        )
    model = load_model(root / "model").eval()
    nuisance = ("year",) if int(config.model.get("nuisance_dim", 0)) > 0 else ()
    datamodule = build_datamodule(kind, config, nuisance=nuisance)  # type: ignore[arg-type]
    assert isinstance(datamodule, MapDataModule)
    held_out, training = datamodule.dataset(split), datamodule.dataset("train")
    if len(held_out) == 0 or len(training) == 0:
        raise ModelConfigError(
            f"the run's {split} or train split holds no maps ({datamodule.split_sizes()}); "
            "raise data.test_fraction / data.val_fraction",
            path=root,
        )
    test, train_maps = _stack(held_out), _stack(training)["x"]
    template_mask = datamodule.template.mask
    mask = (
        None
        if template_mask is None
        else torch.from_numpy(np.ascontiguousarray(template_mask, dtype=np.float32))[None, None]
    )
    mean_map = train_maps.mean(dim=0, keepdim=True)
    components = min(PCA_COMPONENTS, len(train_maps) - 1)
    features = (
        PCAFeatures.fit(train_maps, n_components=components, mask=mask) if components else None
    )
    snapshots = sorted(p for p in (root / "snapshots").glob("snapshot-*") if p.is_dir())
    ensemble = load_ensemble(snapshots) if len(snapshots) >= 2 else []
    meta: dict[str, Any] = {
        "metadata": test.get("metadata"),
        "metadata_mask": test.get("metadata_mask"),
    }
    metrics, curves = evaluate_maps(
        model,
        test["x"],
        metadata=meta["metadata"],
        metadata_mask=meta["metadata_mask"],
        voxel_mask=mask,
        ensemble=ensemble,
        baseline=mean_map,
        features=features,
        seed=seed,
    )
    model_errors = reconstruction_error(
        model(test["x"], **meta).reconstruction, test["x"], mask=mask
    )
    base_errors = reconstruction_error(mean_map.expand_as(test["x"]), test["x"], mask=mask)
    rows = test["index"].tolist()
    maps = datamodule.maps
    ids = maps.study_ids if isinstance(maps, CachedMaps) else [str(i) for i in range(len(maps))]
    per_map = [
        {
            "analysis": str(ids[row]),
            "study": str(datamodule.groups[row]),
            "correlation": float(model_errors["correlation"][i]),
            "baseline_correlation": float(base_errors["correlation"][i]),
            "mse": float(model_errors["mse"][i]),
            "baseline_mse": float(base_errors["mse"][i]),
        }
        for i, row in enumerate(rows)
    ]
    metrics = {
        "run": str(root),
        "kind": kind,
        "split": split,
        "splits": datamodule.split_sizes(),
        "grid": list(datamodule.template.shape),
        **metrics,
    }
    return RunEvaluation(metrics=metrics, per_map=per_map, curves=curves)
