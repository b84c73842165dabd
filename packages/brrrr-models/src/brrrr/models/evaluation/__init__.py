"""Evaluation of the generative atlas models (no Lightning needed).

Modules:
    reconstruction: per-map MSE, MAE and Pearson r over a mask.
    calibration: ECE of Gaussian predictions (aleatoric, ensemble) and binned binary ECE.
    precision_recall: improved precision/recall (Kynkäänniemi et al. 2019) in a feature space.
    features: a fixed, model-free feature space for maps (PCA of the training maps).
    ensemble: load saved models and snapshot ensembles; mean and epistemic variance maps.
    traversal: latent traversals and their PNG grids.
    plots: loss curves, reliability diagrams and map panels (PNG).
    report: every metric of a map model on held-out maps (``evaluate_maps``).
"""

from brrrr.models.evaluation.calibration import (
    CalibrationCurve,
    expected_calibration_error,
    gaussian_calibration_curve,
    gaussian_calibration_error,
)
from brrrr.models.evaluation.ensemble import (
    EnsemblePrediction,
    decode_maps,
    ensemble_predict,
    latent_size,
    load_ensemble,
    load_model,
)
from brrrr.models.evaluation.features import PCAFeatures
from brrrr.models.evaluation.plots import (
    plot_calibration,
    plot_loss_curves,
    plot_map_columns,
    read_metrics_csv,
)
from brrrr.models.evaluation.precision_recall import (
    PrecisionRecall,
    improved_precision_recall,
    knn_radii,
    manifold_coverage,
)
from brrrr.models.evaluation.reconstruction import reconstruction_error
from brrrr.models.evaluation.report import evaluate_maps
from brrrr.models.evaluation.traversal import latent_traversal, save_traversal_png

__all__ = [
    "CalibrationCurve",
    "EnsemblePrediction",
    "PCAFeatures",
    "PrecisionRecall",
    "decode_maps",
    "ensemble_predict",
    "evaluate_maps",
    "expected_calibration_error",
    "gaussian_calibration_curve",
    "gaussian_calibration_error",
    "improved_precision_recall",
    "knn_radii",
    "latent_size",
    "latent_traversal",
    "load_ensemble",
    "load_model",
    "manifold_coverage",
    "plot_calibration",
    "plot_loss_curves",
    "plot_map_columns",
    "read_metrics_csv",
    "reconstruction_error",
    "save_traversal_png",
]
