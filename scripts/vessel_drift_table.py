"""Drift table of a small vessel model: how each kind of drift moves Dice, clDice and Betti errors.

**Synthetic data only.** The volumes come from
``brrrr.models.segmentation.vessels.synthetic`` (two-photon-like vessel trees in the MiniVess
layout, the files ``brrrr segment vessels-sample`` writes). The model is tiny and trained for
a minute or two on the CPU, so the table shows how each drift kind moves the metrics, not how
good a vessel model can be. To run the same steps on MiniVess, fetch it (``brrrr fetch``) and
use ``brrrr train vessels`` and ``brrrr segment vessels-evaluate --drift all``.

Steps, each through the Python API:

1. write ``--volumes`` training volumes (seeds from ``--seed``) and ``--test-volumes`` held-out
   volumes (seeds from ``--seed + 1000``), ``write_synthetic_vessels``;
2. train a MONAI UNet with Lightning on the training volumes at ``--spacing-um``
   (``train_vessels``; one volume in four is held out for validation);
3. write a drifted copy of the held-out folder for every kind ``brrrr preprocess drift``
   offers and every ``--severity`` (``generate_drifted_dataset``, through
   ``evaluate_vessel_drift``) and score the model on the original folder and on each copy:
   Dice, clDice, Betti-0 error and Betti-1 error on the model grid.

Writes to ``OUT`` (default: a new temporary folder): ``train/``, ``test/`` (the synthetic
volumes), ``run/`` (the model, ``metrics.json``), ``drifted/`` (the drifted copies and their
manifests), ``drift_table.md`` and ``drift_table.json`` (every row, per volume):

    uv run python scripts/vessel_drift_table.py OUT [--volumes 4] [--epochs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from brrrr.models.segmentation.vessels import (
    DRIFT_KINDS,
    drift_table_markdown,
    evaluate_vessel_drift,
    train_vessels,
    write_synthetic_vessels,
)

#: Field of view of every synthetic volume (µm); MiniVess's voxel sizes alternate inside it.
FIELD_UM = (96.0, 96.0, 120.0)
#: Seed offset of the held-out volumes, so they never repeat a training volume.
TEST_SEED_OFFSET = 1000


def _triple(text: str) -> tuple[float, float, float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 positive numbers, got {text!r}")
    return values[0], values[1], values[2]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "out", nargs="?", type=Path, default=None, help="output folder (default: a temp folder)"
    )
    parser.add_argument("--volumes", type=_positive, default=4, help="training volumes (>= 2)")
    parser.add_argument("--test-volumes", type=_positive, default=2, help="held-out volumes")
    parser.add_argument("--epochs", type=_positive, default=2, help="training epochs")
    parser.add_argument(
        "--samples-per-volume",
        type=_positive,
        default=48,
        help="training patches per volume and epoch (steps = that x volumes / batch)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of volumes, model and drifts")
    parser.add_argument(
        "--spacing-um", type=_triple, default=(2.0, 2.0, 5.0), help="model voxel size, 'x,y,z'"
    )
    parser.add_argument(
        "--severity",
        type=float,
        action="append",
        default=None,
        help="drift severity in [0, 1] (repeatable; default 0.5 and 1)",
    )
    args = parser.parse_args(argv)
    if args.volumes < 2:
        parser.error("--volumes must be at least 2 (one is held out for validation)")
    return args


def main(argv: list[str] | None = None) -> None:
    """Write the volumes, train, evaluate every drift and write the table."""
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="vessel-drift-"))
    out.mkdir(parents=True, exist_ok=True)
    severities = args.severity or [0.5, 1.0]
    started = time.perf_counter()

    train_ids = write_synthetic_vessels(
        out / "train", volumes=args.volumes, seed=args.seed, field_um=FIELD_UM
    )
    test_ids = write_synthetic_vessels(
        out / "test",
        volumes=args.test_volumes,
        seed=args.seed + TEST_SEED_OFFSET,
        field_um=FIELD_UM,
    )
    print(f"wrote {len(train_ids)} training and {len(test_ids)} held-out synthetic volumes")

    result = train_vessels(
        out / "train",
        out / "run",
        spacing_um=args.spacing_um,
        patch=(32, 32, 8),
        max_epochs=args.epochs,
        channels=(8, 16, 32),
        batch_size=4,
        samples_per_volume=args.samples_per_volume,
        seed=args.seed,
        accelerator="cpu",
        progress=False,
    )
    train_seconds = result.metrics["train_seconds"]
    print(f"trained {result.metrics['parameters']:,} parameters in {train_seconds:.0f} s")

    rows = evaluate_vessel_drift(
        result.run_dir,
        out / "test",
        kinds=DRIFT_KINDS,
        severities=severities,
        seed=args.seed,
        work_dir=out / "drifted",
    )
    table = drift_table_markdown(rows)
    command = "python scripts/vessel_drift_table.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, {platform.system()}"
    total_seconds = time.perf_counter() - started
    (out / "drift_table.md").write_text(table + "\n", encoding="utf-8")
    document = {
        "command": command.strip(),
        "machine": machine,
        "synthetic": True,
        "settings": {
            "volumes": args.volumes,
            "test_volumes": args.test_volumes,
            "epochs": args.epochs,
            "samples_per_volume": args.samples_per_volume,
            "seed": args.seed,
            "spacing_um": list(args.spacing_um),
            "severities": severities,
            "field_um": list(FIELD_UM),
        },
        "train_seconds": train_seconds,
        "total_seconds": round(total_seconds, 1),
        "rows": [row.to_dict() for row in rows],
    }
    (out / "drift_table.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(table)
    print(f"{total_seconds:.0f} s on {machine}; wrote {out / 'drift_table.md'} and .json")


if __name__ == "__main__":
    main()
