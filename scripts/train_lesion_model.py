"""Train the small synthetic-data lesion model shipped with brrrr-models, on the CPU.

**Synthetic data only.** The cases come from
``brrrr.models.segmentation.synthetic.synthetic_stroke_case`` (DWI bright and ADC dark in
lesions, varied size, count, position, contrast and noise, with T2 shine-through mimics).
The resulting model makes the built-in sample and the demos segment offline; it has never
seen a real scan. To segment real data, plug in a real checkpoint
(``brrrr segment stroke --model PATH``; see packages/brrrr-models/README.md).

The recipe is ``packages/brrrr-models/configs/lesion_segresnet.yaml``: a MONAI SegResNet
(init_filters 8, three levels) on the 3 mm model grid, inputs ``dwi``, ``adc`` and an optional
``flair`` (dropped in a third of the training crops, so the model also works without it),
Dice + cross-entropy loss, AdamW with warm-up and cosine decay, 48³ crops (60 % centred on a
lesion voxel) with random flips and intensity jitter. Half of the training cases are acquired
on random grids (2–4 mm voxels, thick slices, other orientations, the FLAIR on a grid of its
own) and reach the network through the segmenter's own normalisation and resampling
(``network_inputs``), so the model sees at training what it sees at inference. The loop is plain torch, seeded and
deterministic (``torch.use_deterministic_algorithms``).

Held-out evaluation runs the full segmenter (load, resample to the model grid, normalise,
sliding window, back to the input grid) on fresh cases (seeds from 100000) and reports the
ISLES'22 Dice (mean over cases; 1 for a lesion-free case predicted empty), with and without
FLAIR.

Writes to ``--out`` (default: a new temporary folder): ``lesion_segresnet_synthetic.safetensors``
and ``.json`` (the network config, with the run and the held-out scores in ``metadata``) and
``metrics.json``. To update the shipped model:

    uv run python scripts/train_lesion_model.py --out packages/brrrr-models/src/brrrr/models/segmentation/weights

Options ``--steps``, ``--train-cases``, ``--val-cases`` shrink the run (tests use a few steps).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from brrrr.models.segmentation.checkpoints import save_network
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

RECIPE = Path(__file__).resolve().parents[1] / "packages/brrrr-models/configs/lesion_segresnet.yaml"
WEIGHTS_NAME = "lesion_segresnet_synthetic.safetensors"
VALIDATION_SEED = 100_000


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
    model = Grid(image.shape[1:], config.spacing_mm, config.orientation)  # type: ignore[arg-type]
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


def evaluate(segmenter: NetworkSegmenter, seeds: list[int]) -> dict[str, Any]:
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


def train(
    recipe: dict[str, Any],
    *,
    out: Path,
    steps: int | None,
    train_cases: int | None,
    val_cases: int | None,
) -> dict[str, Any]:
    """Train the recipe's network, save it to ``out`` and return the metrics."""
    settings = dict(recipe["training"])
    for key, value in (("steps", steps), ("train_cases", train_cases), ("val_cases", val_cases)):
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
        for group in optimiser.param_groups:
            group["lr"] = _learning_rate(
                step,
                total=total,
                warmup=int(settings["warmup_steps"]),
                peak=float(settings["learning_rate"]),
            )
        x = torch.from_numpy(np.stack(images))
        y = torch.from_numpy(np.stack(labels))
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(network(x), y)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == total - 1:
            recent = float(np.mean(losses[-50:]))
            print(
                f"step {step:4d}/{total}  loss {recent:.4f}  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    train_s = time.perf_counter() - started - data_s
    network.eval()

    segmenter = NetworkSegmenter(config, network)
    seeds = [VALIDATION_SEED + i for i in range(int(settings["val_cases"]))]
    held_out = evaluate(segmenter, seeds) if seeds else {"seeds": []}
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
            "script": "scripts/train_lesion_model.py",
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    save_network(network, final, out / WEIGHTS_NAME)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--train-cases", type=int, default=None)
    parser.add_argument("--val-cases", type=int, default=None)
    args = parser.parse_args(argv)
    recipe = yaml.safe_load(args.recipe.read_text(encoding="utf-8"))
    out = args.out or Path(tempfile.mkdtemp(prefix="lesion-model-"))
    metrics = train(
        recipe, out=out, steps=args.steps, train_cases=args.train_cases, val_cases=args.val_cases
    )
    held = metrics["held_out"]
    if not held["seeds"]:
        print(f"no held-out cases; training {metrics['training']['train_seconds']:.0f} s")
    else:
        print(
            f"held-out Dice {held['dice']['mean']:.3f} (without FLAIR "
            f"{held['dice_no_flair']['mean']:.3f}, on random grids "
            f"{held['dice_varied_grid']['mean']:.3f}, lesion F1 {held['lesion_f1']['mean']:.3f}) "
            f"on {len(held['seeds'])} fresh synthetic cases; "
            f"training {metrics['training']['train_seconds']:.0f} s"
        )
    print(f"wrote {out / WEIGHTS_NAME} and {out / 'metrics.json'}")


if __name__ == "__main__":
    main()
