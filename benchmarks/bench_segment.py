"""End-to-end lesion segmentation, files in → mask file out: brrrr vs the plain MONAI pipeline.

Cases: synthetic stroke cases (DWI/ADC/FLAIR, :func:`write_stroke_sample`) drawn on an input
grid that is *not* the model's: 85×103×43 voxels of 2×2×4 mm stored LPS, while the shipped
lesion model runs RAS at 3 mm. Both pipelines therefore reorient and resample on the way in
and out; this input grid gives the same 57×69×57 model grid in both (brrrr's
``model_grid`` keeps the field of view's centre, MONAI's ``Spacingd`` its first voxel
centre; the two agree because the extent between voxel centres, 168×204×168 mm, is a
whole number of 3 mm voxels). The grids are checked before anything is timed.

Pipelines, per case, timed from the file paths to the mask written as ``.nii.gz``; the model
is loaded once, outside the timed loop, and both run the *same* ``nn.Module``:

* brrrr: ``segmenter.segment({"dwi": path, "adc": path, "flair": path})`` →
  ``save_volume(mask, out)``; sliding windows batched by ``auto_batch_size``.
* MONAI, the faithful dictionary equivalent: ``LoadImaged(image_only=False)`` →
  ``EnsureChannelFirstd`` → per channel, clip to the 0.5/99.5 percentiles of the channel's
  nonzero voxels (``Lambdad``: MONAI's own ``ClipIntensityPercentilesd`` takes percentiles
  over all voxels, background included) → ``NormalizeIntensityd(nonzero=True,
  channel_wise=True)`` → ``ConcatItemsd`` → ``Orientationd("RAS")`` →
  ``Spacingd(3 mm, bilinear, padding zeros)`` → ``sliding_window_inference`` (same roi,
  overlap, Gaussian mode) → softmax → lesion channel → ``Invertd`` (bilinear) →
  ``AsDiscreted(threshold=0.5)`` → ``SaveImage``. Two details follow brrrr's model config
  rather than MONAI's tutorials, because they change the mask: the intensities are
  normalised on each channel's own grid, *before* resampling (as the config declares and
  nnU-Net does), and the probability is brought back to the input grid before it is
  thresholded (thresholding on the model grid and inverting the mask with nearest
  neighbour moves the border by up to half a 3 mm voxel).
  MONAI runs at its default ``sw_batch_size=1`` and at brrrr's batch size, so the table
  shows how much of the difference is the batching of windows.

Check: the Dice between brrrr's and MONAI's masks, read back from the files (same grid), is at
least 0.999 for every case, or the benchmark exits non-zero after printing the table.

``--members 3`` times a three-member mean ensemble of the shipped model (three loaded copies);
MONAI then runs the three networks on one preprocessed image and averages the softmax.
``--device cuda`` runs the networks on the GPU (both under float16 autocast, as brrrr does).

Run:
    uv run python benchmarks/bench_segment.py [--cases 4 --repeats 3] [--json benchmarks/results/bench_segment_cpu.json]
    uv run python benchmarks/bench_segment.py --quick --json /tmp/bench_segment.json
    uv run python benchmarks/bench_segment.py --device cuda --members 3 --json benchmarks/results/bench_segment_cuda.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brrrr.core import load_volume, save_volume
from brrrr.models.segmentation import load_synthetic_lesion_model
from brrrr.models.segmentation.ensemble import EnsembleSegmenter
from brrrr.models.segmentation.inference import auto_batch_size
from brrrr.models.segmentation.members import NetworkConfig, NetworkSegmenter
from brrrr.models.segmentation.preprocessing import model_grid
from brrrr.models.segmentation.sample import SampleCase, write_stroke_sample
from brrrr.models.segmentation.segmenter import Segmenter
from brrrr.models.segmentation.synthetic import Grid

#: The input grid of every case: not the model's grid (3 mm RAS), so both pipelines resample.
INPUT_GRID = Grid((85, 103, 43), (2.0, 2.0, 4.0), "LPS")
#: Dice between the two pipelines' masks below which the benchmark fails.
MIN_DICE = 0.999

CaseRunner = Callable[[SampleCase, Path], Path]


# -- brrrr ----------------------------------------------------------------------------------
def brrrr_runner(segmenter: Segmenter) -> CaseRunner:
    """Files in, mask file out, with brrrr's segmenter."""

    def run(case: SampleCase, out: Path) -> Path:
        result = segmenter.segment(case.inputs())
        path = out / f"{case.case_id}.nii.gz"
        save_volume(result.mask, path)
        return path

    return run


# -- MONAI ----------------------------------------------------------------------------------
class ClipNonzeroPercentiles:
    """Clip a channel to percentiles of its nonzero voxels, leaving the zeros at zero.

    brrrr's ``Normalization(clip_percentiles=(0.5, 99.5), region="nonzero")`` takes the
    percentiles over the region only; MONAI's ``ClipIntensityPercentiles`` would take them over
    the background too (and clip the background's zeros up to the low percentile, which then
    looks nonzero to ``NormalizeIntensity(nonzero=True)``).
    """

    def __init__(self, low: float, high: float) -> None:
        self.q = (low / 100.0, high / 100.0)

    def __call__(self, image: Any) -> Any:
        import torch

        inside = image != 0
        values = image[inside]
        if values.numel() == 0:
            return image
        # numpy's percentile, as brrrr computes it (torch.quantile caps its input size).
        voxels = np.asarray(values.detach().cpu().numpy(), dtype=np.float32)
        low, high = np.percentile(voxels, [100 * q for q in self.q])
        return torch.where(inside, image.clamp(float(low), float(high)), image)


def monai_preprocessing(config: NetworkConfig, channels: Sequence[str]) -> Any:
    """The MONAI dictionary pipeline that prepares ``image`` for the network."""
    from monai.transforms import (
        Compose,
        ConcatItemsd,
        EnsureChannelFirstd,
        Lambdad,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        Spacingd,
    )

    keys = list(channels)
    clips: list[Callable[[Any], Any]] = []
    for name in keys:
        spec = config.normalization_of(name)
        if spec.method != "zscore" or spec.region != "nonzero" or spec.clip_percentiles is None:
            raise SystemExit(
                f"the MONAI side reproduces a percentile clip + z-score over nonzero voxels "
                f"only; the model's {name} normalisation is {spec}"
            )
        clips.append(ClipNonzeroPercentiles(*spec.clip_percentiles))
    assert config.spacing_mm is not None
    return Compose(
        [
            LoadImaged(keys=keys, image_only=False),
            EnsureChannelFirstd(keys=keys),
            Lambdad(keys=keys, func=clips),
            NormalizeIntensityd(keys=keys, nonzero=True, channel_wise=True),
            ConcatItemsd(keys=keys, name="image"),
            Orientationd(keys="image", axcodes=config.orientation, labels=None),
            Spacingd(keys="image", pixdim=config.spacing_mm, mode="bilinear", padding_mode="zeros"),
        ]
    )


class MonaiRunner:
    """Files in, mask file out, with MONAI's transforms and sliding-window inference.

    Args:
        networks: The networks (brrrr's own ``nn.Module`` objects); several are averaged.
        config: Their shared config (channels, normalisation, grid, window, activation).
        sw_batch_size: Windows per forward pass.
        device: Where the networks run.
    """

    def __init__(
        self,
        networks: Sequence[Any],
        config: NetworkConfig,
        *,
        sw_batch_size: int,
        device: str,
    ) -> None:
        from monai.transforms import AsDiscreted, Compose, Invertd, SaveImage

        self.networks = list(networks)
        self.config = config
        self.sw_batch_size = sw_batch_size
        self.device = device
        self.channels = list(config.input_channels)
        self.pre = monai_preprocessing(config, self.channels)
        self.post = Compose(
            [
                Invertd(keys="pred", transform=self.pre, orig_keys="image", nearest_interp=False),
                AsDiscreted(keys="pred", threshold=config.threshold),
            ]
        )
        self.save = SaveImage(
            output_ext=".nii.gz",
            output_dtype=np.uint8,
            resample=False,
            separate_folder=False,
            print_log=False,
        )
        #: The model grid of the last case (shape, affine), for the grid check.
        self.last_grid: tuple[tuple[int, ...], np.ndarray] | None = None

    def __call__(self, case: SampleCase, out: Path) -> Path:
        import torch
        from monai.inferers import sliding_window_inference

        inputs = case.inputs()
        missing = [c for c in self.channels if c not in inputs]
        if missing:
            raise SystemExit(f"{case.case_id}: no {missing} file for the MONAI pipeline")
        data = self.pre({c: str(inputs[c]) for c in self.channels})
        image = data["image"]
        self.last_grid = (tuple(image.shape[1:]), np.asarray(image.affine, dtype=np.float64))
        where = torch.device(self.device)
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.float16)
            if where.type == "cuda"
            else contextlib.nullcontext()
        )
        config = self.config
        total = None
        with torch.no_grad(), autocast:
            batch = image[None].to(where)
            for network in self.networks:
                logits = sliding_window_inference(
                    batch,
                    roi_size=config.patch_size,
                    sw_batch_size=self.sw_batch_size,
                    predictor=network,
                    overlap=config.overlap,
                    mode="gaussian",
                )
                assert isinstance(logits, torch.Tensor)
                logits = logits.float()
                probs = (
                    torch.softmax(logits, dim=1)
                    if config.activation == "softmax"
                    else torch.sigmoid(logits)
                )
                total = probs if total is None else total + probs
        assert total is not None
        lesion = (total / len(self.networks))[0, config.lesion_index : config.lesion_index + 1]
        data["pred"] = lesion.cpu()
        data = self.post(data)
        path = out / f"{case.case_id}"
        self.save(data["pred"], filename=path)
        return path.with_name(path.name + ".nii.gz")


# -- checks and timing ----------------------------------------------------------------------
def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def compare_masks(ours: Path, theirs: Path) -> float:
    """Dice of two mask files on the same grid; exits when the grids differ."""
    a, b = load_volume(ours), load_volume(theirs)
    data_b = np.asarray(b.data)
    if data_b.ndim == 4 and data_b.shape[0] == 1:
        data_b = data_b[0]
    if a.shape != data_b.shape[-3:] or not np.allclose(a.affine, b.affine, atol=1e-4):
        raise SystemExit(
            f"the masks are on different grids: {ours} {a.shape} {a.affine.round(3).tolist()} "
            f"vs {theirs} {data_b.shape} {b.affine.round(3).tolist()}"
        )
    return dice(np.asarray(a.data), data_b)


def check_grids(
    monai: MonaiRunner, case: SampleCase, config: NetworkConfig, out: Path
) -> dict[str, Any]:
    """Run MONAI once and check that its model grid is brrrr's ``model_grid``."""
    monai(case, out)
    assert monai.last_grid is not None
    shape, affine = model_grid(
        load_volume(case.dwi), spacing_mm=config.spacing_mm, orientation=config.orientation
    )
    theirs_shape, theirs_affine = monai.last_grid
    if tuple(shape) != theirs_shape or not np.allclose(affine, theirs_affine, atol=1e-4):
        raise SystemExit(
            f"model grids differ: brrrr {shape} {affine.round(3).tolist()}, "
            f"MONAI {theirs_shape} {theirs_affine.round(3).tolist()}"
        )
    return {"shape": list(shape), "affine": affine.round(6).tolist()}


def interleaved_medians(
    runners: dict[str, CaseRunner], cases: Sequence[SampleCase], outs: dict[str, Path], repeats: int
) -> dict[str, dict[str, float]]:
    """Median seconds per runner and case over ``repeats`` rounds, after one warm-up of each.

    Every round runs every runner on every case in turn, so that on a shared machine they all
    see the same load.
    """
    for name, run in runners.items():
        run(cases[0], outs[name])
    times: dict[str, dict[str, list[float]]] = {
        name: {case.case_id: [] for case in cases} for name in runners
    }
    for _ in range(repeats):
        for case in cases:
            for name, run in runners.items():
                start = time.perf_counter()
                run(case, outs[name])
                times[name][case.case_id].append(time.perf_counter() - start)
    return {
        name: {case: statistics.median(values) for case, values in per_case.items()}
        for name, per_case in times.items()
    }


def machine(device: str) -> dict[str, Any]:
    import monai
    import torch

    info: dict[str, Any] = {
        "arch": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_model(members: int, device: str) -> tuple[Segmenter, list[Any], NetworkConfig]:
    """brrrr's segmenter (one model or a mean ensemble of copies) and its networks."""
    models = [load_synthetic_lesion_model(device=device) for _ in range(members)]
    config = models[0].config
    segmenter: Segmenter = models[0] if members == 1 else EnsembleSegmenter(models, method="mean")
    networks: list[Any] = []
    for model in models:
        assert isinstance(model, NetworkSegmenter)
        networks.append(model.network)
    return segmenter, networks, config


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    sample = write_stroke_sample(folder / "sample", cases=args.cases, grid=INPUT_GRID)
    cases = list(sample.cases)
    segmenter, networks, config = load_model(args.members, args.device)
    batch = auto_batch_size(config.patch_size)
    monai_1 = MonaiRunner(networks, config, sw_batch_size=1, device=args.device)
    monai_b = MonaiRunner(networks, config, sw_batch_size=batch, device=args.device)
    names = {
        "brrrr": "brrrr",
        "monai_sw1": "MONAI sw_batch=1",
        f"monai_sw{batch}": f"MONAI sw_batch={batch}",
    }
    runners: dict[str, CaseRunner] = {
        "brrrr": brrrr_runner(segmenter),
        "monai_sw1": monai_1,
        f"monai_sw{batch}": monai_b,
    }
    outs = {name: folder / "out" / name for name in runners}
    for out in outs.values():
        out.mkdir(parents=True, exist_ok=True)
    grid = check_grids(monai_b, cases[0], config, outs[f"monai_sw{batch}"])
    print(
        f"{len(cases)} case(s) on {INPUT_GRID.shape} at {INPUT_GRID.spacing} mm "
        f"{INPUT_GRID.axcodes} → model grid {tuple(grid['shape'])} at {config.spacing_mm} mm "
        f"{config.orientation}; {args.members} member(s); device {args.device}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    medians = interleaved_medians(runners, cases, outs, args.repeats)
    rows: list[dict[str, Any]] = []
    for case in cases:
        ours = outs["brrrr"] / f"{case.case_id}.nii.gz"
        dices = {
            name: compare_masks(ours, outs[name] / f"{case.case_id}.nii.gz")
            for name in runners
            if name != "brrrr"
        }
        rows.append(
            {
                "case": case.case_id,
                "median_seconds": {name: medians[name][case.case_id] for name in runners},
                "dice_vs_brrrr": dices,
                "lesion_voxels_brrrr": int(np.count_nonzero(load_volume(ours).data)),
            }
        )
    overall = {name: statistics.median(medians[name].values()) for name in runners}
    ratios = {
        "monai_sw1_over_brrrr": overall["monai_sw1"] / overall["brrrr"],
        "monai_swbatch_over_brrrr": overall[f"monai_sw{batch}"] / overall["brrrr"],
        "monai_sw1_over_monai_swbatch": overall["monai_sw1"] / overall[f"monai_sw{batch}"],
    }
    min_dice = min(d for row in rows for d in row["dice_vs_brrrr"].values())

    header = f"{'case':<10}" + "".join(f"{names[n]:>20}" for n in runners)
    header += f"{'sw1/brrrr':>11}{f'sw{batch}/brrrr':>12}"
    header += f"{'Dice sw1':>10}{f'Dice sw{batch}':>11}{'lesion vox':>11}"
    print(f"median seconds per case (load → mask written), {args.repeats} repeat(s)")
    print(header)
    for row in rows:
        seconds = row["median_seconds"]
        line = f"{row['case']:<10}" + "".join(f"{seconds[n]:20.3f}" for n in runners)
        line += f"{seconds['monai_sw1'] / seconds['brrrr']:10.2f}×"
        line += f"{seconds[f'monai_sw{batch}'] / seconds['brrrr']:11.2f}×"
        line += f"{row['dice_vs_brrrr']['monai_sw1']:10.4f}"
        line += f"{row['dice_vs_brrrr'][f'monai_sw{batch}']:11.4f}"
        line += f"{row['lesion_voxels_brrrr']:11d}"
        print(line)
    line = f"{'median':<10}" + "".join(f"{overall[n]:20.3f}" for n in runners)
    line += f"{ratios['monai_sw1_over_brrrr']:10.2f}×{ratios['monai_swbatch_over_brrrr']:11.2f}×"
    print(line)
    print(
        f"MONAI sw_batch=1 / brrrr = {ratios['monai_sw1_over_brrrr']:.2f}× (target ≥ 2), "
        f"MONAI sw_batch={batch} / brrrr = {ratios['monai_swbatch_over_brrrr']:.2f}×, "
        f"min Dice = {min_dice:.5f} (required ≥ {MIN_DICE})"
    )
    return {
        "benchmark": "bench_segment",
        "mode": "cpu" if args.device == "cpu" else f"device:{args.device}",
        "machine": machine(args.device),
        "input": {
            "cases": len(cases),
            "grid_shape": list(INPUT_GRID.shape),
            "grid_spacing_mm": list(np.broadcast_to(INPUT_GRID.spacing, 3).tolist()),
            "grid_axcodes": INPUT_GRID.axcodes,
            "source": "brrrr.models.segmentation.sample.write_stroke_sample (synthetic)",
        },
        "model": {
            "name": config.name,
            "members": args.members,
            "model_grid": grid,
            "patch_size": list(config.patch_size),
            "overlap": config.overlap,
            "brrrr_batch_size": batch,
        },
        "repeats": args.repeats,
        "cases": rows,
        "median_seconds": overall,
        "ratios": ratios,
        "min_dice": min_dice,
        "dice_ok": min_dice >= MIN_DICE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 case, 1 repeat (smoke test)")
    parser.add_argument("--members", type=int, default=1, help="mean ensemble of N copies")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.repeats = 1, 1
    if args.cases < 1 or args.repeats < 1 or args.members < 1:
        parser.error("--cases, --repeats and --members must be at least 1")
    # MONAI warns about a changed default of Orientation's labels and a missing GPU codec.
    warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
    warnings.filterwarnings("ignore", category=UserWarning, module="monai")

    with tempfile.TemporaryDirectory() as tmp:
        figures = run(args, Path(tmp))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not figures["dice_ok"]:
        bad = [
            f"{row['case']} {name} {value:.5f}"
            for row in figures["cases"]
            for name, value in row["dice_vs_brrrr"].items()
            if value < MIN_DICE
        ]
        sys.exit(f"masks disagree (Dice < {MIN_DICE}): {', '.join(bad)}")


if __name__ == "__main__":
    main()
