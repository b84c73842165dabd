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
The training itself lives in ``brrrr.models.segmentation.training`` (also ``brrrr train lesion``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import yaml

from brrrr.models.segmentation.training import WEIGHTS_NAME, train_lesion_model

RECIPE = Path(__file__).resolve().parents[1] / "packages/brrrr-models/configs/lesion_segresnet.yaml"


def train(
    recipe: dict[str, Any],
    *,
    out: Path,
    steps: int | None,
    train_cases: int | None,
    val_cases: int | None,
) -> dict[str, Any]:
    """Train the recipe's network, save it to ``out`` and return the metrics."""
    return train_lesion_model(
        recipe,
        out=out,
        steps=steps,
        train_cases=train_cases,
        val_cases=val_cases,
        script="scripts/train_lesion_model.py",
        log=lambda line: print(line, flush=True),
    )


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
