"""Training of the small synthetic-data lesion model (``brrrr train lesion``).

**Synthetic data only.** The cases come from
:func:`~brrrr.models.segmentation.synthetic.synthetic_stroke_case` (DWI bright and ADC dark in
lesions, varied size, count, position, contrast and noise, with T2 shine-through mimics). The
model makes the built-in sample and the demos segment offline; it has never seen a real scan.

A recipe is a mapping with a ``model`` section (a
:class:`~brrrr.models.segmentation.members.NetworkConfig`) and a ``training`` section (the keys
of :data:`DEFAULT_TRAINING`); :func:`default_recipe` is the recipe of the shipped model
(``packages/brrrr-models/configs/lesion_segresnet.yaml`` in the repository). Half of the training
cases are acquired on random grids and reach the network through the segmenter's own
normalisation and resampling (``network_inputs``), so the model sees at training what it sees at
inference. The loop is plain torch, seeded and deterministic
(``torch.use_deterministic_algorithms``).

Held-out evaluation runs the full segmenter on fresh cases (seeds from
:data:`VALIDATION_SEED`) and reports the ISLES'22 Dice (mean over cases; 1 for a lesion-free
case predicted empty), with and without FLAIR and on random grids.

Output folder::

    lesion_segresnet_synthetic.safetensors   the weights
    lesion_segresnet_synthetic.json          the network config (run and scores in metadata)
    metrics.json                             held-out scores and the training run
    loss.csv                                 step, lr, loss of every optimiser step

Example:
    >>> metrics = train_lesion_model(out="run", steps=2, train_cases=2)  # doctest: +SKIP
    >>> load_segmenter("run/lesion_segresnet_synthetic.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brrrr.models.segmentation.checkpoints import save_network, shipped_weights
from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.members import (
    NetworkConfig,
    NetworkSegmenter,
    build_network,
    network_inputs,
)
from brrrr.models.segmentation.metrics import dice, lesion_f1
from brrrr.models.segmentation.synthetic import (
    DEFAULT_GRID,
    Grid,
    random_grid,
    synthetic_lesion_mask,
    synthetic_stroke_case,
)

__all__ = [
    "DEFAULT_TRAINING",
    "VALIDATION_SEED",
    "WEIGHTS_NAME",
    "default_recipe",
    "evaluate_lesion_model",
    "load_lesion_recipe",
    "train_lesion_model",
]

WEIGHTS_NAME = "lesion_segresnet_synthetic.safetensors"
VALIDATION_SEED = 100_000

#: The training run of the shipped model (the ``training`` section of its recipe).
DEFAULT_TRAINING: dict[str, Any] = {
    "seed": 0,
    "train_cases": 48,
    "val_cases": 16,
    "steps": 600,
    "batch_size": 2,
    "crop": [48, 48, 48],
    "varied_grid_probability": 0.5,
    "lesion_crop_probability": 0.6,
    "flair_dropout": 0.35,
    "learning_rate": 0.003,
    "weight_decay": 1.0e-5,
    "warmup_steps": 30,
}


def default_recipe() -> dict[str, Any]:
    """The recipe of the shipped model: its network config and :data:`DEFAULT_TRAINING`."""
    config = json.loads(shipped_weights().with_suffix(".json").read_text(encoding="utf-8"))
    for key in ("description", "metadata", "weights"):
        config.pop(key, None)
    return {"model": config, "training": dict(DEFAULT_TRAINING)}


def _check_recipe(recipe: Mapping[str, Any], *, path: Path | None) -> dict[str, Any]:
    if not isinstance(recipe, Mapping):
        raise SegmentationError("a lesion recipe is a mapping with model and training", path=path)
    missing = [name for name in ("model", "training") if not isinstance(recipe.get(name), Mapping)]
    if missing:
        raise SegmentationError(f"the lesion recipe lacks the section(s) {missing}", path=path)
    unknown = sorted(set(recipe["training"]) - set(DEFAULT_TRAINING))
    if unknown:
        raise SegmentationError(
            f"unknown training setting(s) {unknown}; known: {sorted(DEFAULT_TRAINING)}", path=path
        )
    return {"model": dict(recipe["model"]), "training": {**DEFAULT_TRAINING, **recipe["training"]}}


def load_lesion_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a recipe file (YAML or JSON) with ``model`` and ``training`` sections.

    Training settings the file leaves out take :data:`DEFAULT_TRAINING`'s values.

    Raises:
        SegmentationError: Missing or unreadable file, missing sections or unknown settings.
    """
    import yaml

    file = Path(path)
    try:
        recipe = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SegmentationError(
            f"cannot read the lesion recipe: {exc.strerror}", path=file
        ) from None
    except yaml.YAMLError as exc:
        raise SegmentationError(f"the lesion recipe is not YAML: {exc}", path=file) from None
    return _check_recipe(recipe, path=file)


def _case_arrays(
    seed: int, config: NetworkConfig, *, varied_grid_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """A training case as the segmenter feeds it to the network, and its mask on that grid.

    With probability ``varied_grid_p`` the case is acquired on a random grid (voxel size,
    slice thickness, orientation; the FLAIR on another one) and goes through the same
    normalisation and resampling as at inference (``network_inputs``), so the network learns
    on interpolated images; otherwise it is drawn on the model grid itself.
    """
    rng = np.random.default_rng([seed, 0x7A1])
    grid, flair_grid = DEFAULT_GRID, None
    if rng.random() < varied_grid_p:
        grid = random_grid(seed)
        flair_grid = random_grid(seed + 1_000_003) if rng.random() < 0.5 else None
    case = synthetic_stroke_case(
        seed, shape=grid.shape, spacing=grid.spacing, axcodes=grid.axcodes, flair_grid=flair_grid
    )
    image, affine = network_inputs(config, case.inputs(), reference=case.dwi)
    assert config.spacing_mm is not None
    model = Grid(image.shape[1:], config.spacing_mm, config.orientation)
    label = synthetic_lesion_mask(seed, grid=model)
    assert np.allclose(label.affine, affine, atol=1e-4), "the model grid is centred on the head"
    return image, label.data.astype(np.int64)


def _crop(
    image: np.ndarray,
    label: np.ndarray,
    size: tuple[int, ...],
    rng: np.random.Generator,
    *,
    lesion_p: float,
) -> tuple[np.ndarray, np.ndarray]:
    shape = np.asarray(label.shape)
    extent = np.asarray(size)
    padding = np.maximum(extent - shape, 0)
    if padding.any():
        pads = [(0, 0)] + [(int(p // 2), int(p - p // 2)) for p in padding]
        image = np.pad(image, pads)
        label = np.pad(label, pads[1:])
        shape = np.asarray(label.shape)
    lesion = np.argwhere(label > 0)
    if lesion.size and rng.random() < lesion_p:
        centre = lesion[rng.integers(len(lesion))]
        start = np.clip(centre - extent // 2 + rng.integers(-8, 9, 3), 0, shape - extent)
    else:
        start = np.asarray([rng.integers(0, s - e + 1) for s, e in zip(shape, extent, strict=True)])
    box = tuple(slice(int(a), int(a + e)) for a, e in zip(start, extent, strict=True))
    return image[(slice(None), *box)], label[box]


def _augment(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    *,
    flair_index: int | None,
    flair_dropout: float,
) -> tuple[np.ndarray, np.ndarray]:
    for axis in range(3):
        if rng.random() < 0.5:
            image = np.flip(image, axis=axis + 1)
            label = np.flip(label, axis=axis)
    image = image.copy()
    for channel in range(image.shape[0]):
        inside = image[channel] != 0
        image[channel][inside] = image[channel][inside] * rng.uniform(0.9, 1.1) + rng.uniform(
            -0.1, 0.1
        )
    if flair_index is not None and rng.random() < flair_dropout:
        image[flair_index] = 0.0
    return image, np.ascontiguousarray(label)


def _learning_rate(step: int, *, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def evaluate_lesion_model(segmenter: NetworkSegmenter, seeds: list[int]) -> dict[str, Any]:
    """ISLES'22 Dice and lesion F1 of ``segmenter`` on fresh cases.

    ``dice``: cases on the default 3 mm grid, with FLAIR; ``dice_no_flair``: the same
    without FLAIR; ``dice_varied_grid``: the same seeds acquired on random grids
    (``random_grid``, the FLAIR on another one), scored on the DWI grid.
    """
    scores: dict[str, list[float]] = {
        "dice": [],
        "dice_no_flair": [],
        "dice_varied_grid": [],
        "lesion_f1": [],
    }
    for seed in seeds:
        case = synthetic_stroke_case(seed)
        truth = case.mask.data > 0
        with_flair = segmenter.segment(case.inputs()).mask.data > 0
        without = segmenter.segment(case.inputs(flair=False)).mask.data > 0
        scores["dice"].append(dice(with_flair, truth))
        scores["dice_no_flair"].append(dice(without, truth))
        scores["lesion_f1"].append(lesion_f1(with_flair, truth))
        grid = random_grid(seed)
        varied = synthetic_stroke_case(
            seed,
            shape=grid.shape,
            spacing=grid.spacing,
            axcodes=grid.axcodes,
            flair_grid=random_grid(seed + 1_000_003),
        )
        predicted = segmenter.segment(varied.inputs()).mask.data > 0
        scores["dice_varied_grid"].append(dice(predicted, varied.mask.data > 0))
    summary: dict[str, Any] = {
        name: {
            "mean": float(np.mean(v)),
            "median": float(np.median(v)),
            "min": float(np.min(v)),
            "per_case": [round(x, 4) for x in v],
        }
        for name, v in scores.items()
    }
    summary["seeds"] = seeds
    return summary


def train_lesion_model(
    recipe: Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike[str],
    steps: int | None = None,
    train_cases: int | None = None,
    val_cases: int | None = None,
    seed: int | None = None,
    script: str = "brrrr train lesion",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the recipe's network, save it to ``out`` and return the metrics.

    Args:
        recipe: ``model`` and ``training`` sections (default: :func:`default_recipe`).
        out: Output folder (see the module docstring).
        steps: Optimiser steps (overrides the recipe).
        train_cases: Training cases, seeds ``0 .. train_cases - 1`` (overrides the recipe).
        val_cases: Held-out cases, seeds from :data:`VALIDATION_SEED` (overrides the recipe).
        seed: Seed of the network's initialisation and of the crops (overrides the recipe).
        script: What trained the model, recorded in the config's metadata.
        log: Receives a progress line every 50 steps.

    Returns:
        The content of ``metrics.json``.

    Raises:
        SegmentationError: A recipe without ``model``/``training`` or with unknown settings.
    """
    recipe = _check_recipe(default_recipe() if recipe is None else recipe, path=None)
    out = Path(out)
    settings = dict(recipe["training"])
    overrides = (
        ("steps", steps),
        ("train_cases", train_cases),
        ("val_cases", val_cases),
        ("seed", seed),
    )
    for key, value in overrides:
        if value is not None:
            settings[key] = value
    config = NetworkConfig.from_dict(recipe["model"])
    seed = int(settings["seed"])
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # Tiny gradients of a sparse lesion loss reach denormal floats, which are slow on CPUs.
    torch.set_flush_denormal(True)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()

    cases = [
        _case_arrays(s, config, varied_grid_p=float(settings["varied_grid_probability"]))
        for s in range(int(settings["train_cases"]))
    ]
    data_s = time.perf_counter() - started
    from monai.losses import DiceCELoss

    network = build_network(config)
    parameters = sum(p.numel() for p in network.parameters())
    optimiser = torch.optim.AdamW(
        network.parameters(),
        lr=float(settings["learning_rate"]),
        weight_decay=float(settings["weight_decay"]),
    )
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    flair_index = config.input_channels.index("flair") if "flair" in config.input_channels else None
    crop = tuple(int(c) for c in settings["crop"])
    total = int(settings["steps"])
    batch_size = int(settings["batch_size"])
    losses: list[float] = []
    rates: list[float] = []
    network.train()
    for step in range(total):
        images, labels = [], []
        for _ in range(batch_size):
            image, label = cases[int(rng.integers(len(cases)))]
            image, label = _crop(
                image, label, crop, rng, lesion_p=float(settings["lesion_crop_probability"])
            )
            image, label = _augment(
                image,
                label,
                rng,
                flair_index=flair_index,
                flair_dropout=float(settings["flair_dropout"]),
            )
            images.append(image)
            labels.append(label[None])
        rate = _learning_rate(
            step,
            total=total,
            warmup=int(settings["warmup_steps"]),
            peak=float(settings["learning_rate"]),
        )
        for group in optimiser.param_groups:
            group["lr"] = rate
        rates.append(rate)
        x = torch.from_numpy(np.stack(images))
        y = torch.from_numpy(np.stack(labels))
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == total - 1:
            recent = float(np.mean(losses[-50:]))
            log(
                f"step {step:4d}/{total}  loss {recent:.4f}  ({time.perf_counter() - started:.0f} s)"
            )
    train_s = time.perf_counter() - started - data_s
    network.eval()

    segmenter = NetworkSegmenter(config, network)
    seeds = [VALIDATION_SEED + i for i in range(int(settings["val_cases"]))]
    held_out = evaluate_lesion_model(segmenter, seeds) if seeds else {"seeds": []}
    metrics = {
        "held_out": held_out,
        "training": {
            **settings,
            "parameters": parameters,
            "data_seconds": round(data_s, 1),
            "train_seconds": round(train_s, 1),
            "final_loss": float(np.mean(losses[-50:])),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    description = (
        "SegResNet lesion model trained on SYNTHETIC DWI/ADC/FLAIR cases only "
        "(brrrr.models.segmentation.synthetic); for the sample data and demos, not for real scans."
    )
    final = replace(
        config,
        description=description,
        metadata={
            "trained_on": "synthetic_stroke_case seeds 0.." + str(int(settings["train_cases"]) - 1),
            **{
                f"held_out_{name}": round(held_out[name]["mean"], 4)
                for name in ("dice", "dice_no_flair", "dice_varied_grid")
                if name in held_out
            },
            "held_out_seeds": [seeds[0], seeds[-1]] if seeds else [],
            "steps": total,
            "train_seconds": round(train_s, 1),
            "script": script,
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    save_network(network, final, out / WEIGHTS_NAME)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    with (out / "loss.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "lr", "loss"])
        writer.writerows(
            [step, f"{rate:.6g}", f"{loss:.6f}"]
            for step, (rate, loss) in enumerate(zip(rates, losses, strict=True))
        )
    return metrics
