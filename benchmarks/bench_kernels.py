"""Coordinate → map kernels: brrrr.preprocess.kernels vs NiMARE's kernel transformers.

Studyset mode (default, CPU): the 906 analyses (9492 foci) of NiMARE's bundled
``nback_vs_flanker_studyset_2026-07`` on its 2 mm brain mask (228,483 voxels). Both tools
make the same maps in one run: MKDA (r = 10 mm) and ALE, as a dense study × voxel float32
array (NiMARE's ``return_type="array"``) and as a CSR matrix (``"sparse"``), plus our uint8
MKDA. The maps are checked to be equal before anything is timed. ALE uses a sample size of 20
for every study: the studyset records sample sizes for only 2 of its 906 analyses, and
NiMARE's ``ALEKernel()`` gives the other 904 a one-voxel kernel.

Timing: one warm-up call per case, then the median of ``--repeats`` calls, the two tools
alternating; the previous output is freed before each call. Our time is
``peaks_to_maps(peaks, ...)`` from a ``PeakTable`` built once (its one-off cost from the
studyset is printed); NiMARE's is ``kernel.transform(studyset, ...)``.

Synthetic mode (``--studies N``): N studies resampled (seeded, with replacement) from the
real studies' peak sets, MKDA and ALE each timed on ``--device`` including the copy of the
whole (N, V) float32 array to host memory. The first 64 maps are checked against NiMARE.

Run:
    uv run python benchmarks/bench_kernels.py [--repeats 5] [--out benchmarks/results/bench_kernels.json]
    uv run python benchmarks/bench_kernels.py --device cuda --studies 14371 [--out ...]
    uv run python benchmarks/bench_kernels.py --device cpu --studies 1000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brrrr.preprocess.kernels import ALE, MKDA, Kernel, PeakTable, Template, peaks_to_maps

STUDYSET = "nback_vs_flanker_studyset_2026-07"
ALE_SAMPLE_SIZE = 20
TOLERANCE = 1e-5


def load_studyset() -> Any:
    from nimare.studyset import Studyset
    from nimare.utils import get_resource_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Studyset(Path(get_resource_path()) / STUDYSET)


def nimare_kernels() -> dict[str, tuple[Any, Kernel]]:
    from nimare.meta.kernel import ALEKernel, MKDAKernel

    return {
        "MKDA r=10": (MKDAKernel(r=10), MKDA(radius_mm=10)),
        f"ALE n={ALE_SAMPLE_SIZE}": (
            ALEKernel(sample_size=ALE_SAMPLE_SIZE),
            ALE(sample_size=ALE_SAMPLE_SIZE),
        ),
    }


def dense(result: Any) -> np.ndarray:
    if hasattr(result, "toarray"):
        return np.asarray(result.toarray())
    if isinstance(result, torch.Tensor):
        return result.cpu().numpy()
    return np.asarray(result)


def check_equal(ours: Any, theirs: Any, what: str) -> float:
    a, b = dense(ours).astype(np.float32), dense(theirs).astype(np.float32)
    if a.shape != b.shape:
        raise SystemExit(f"{what}: shapes differ, ours {a.shape} vs NiMARE {b.shape}")
    worst = float(np.abs(a - b).max(initial=0.0))
    if worst > TOLERANCE:
        raise SystemExit(f"{what}: maps differ by up to {worst} (> {TOLERANCE}); not timing")
    return worst


def time_alternating(
    cases: dict[str, Callable[[], object]], repeats: int
) -> dict[str, dict[str, float]]:
    """Warm each case up, then run them in turn ``repeats`` times; median and min seconds."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
        gc.collect()
    for _ in range(repeats):
        for name, fn in cases.items():
            gc.collect()
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            del result
    return {
        name: {"median_s": statistics.median(values), "min_s": min(values)}
        for name, values in times.items()
    }


def machine() -> dict[str, Any]:
    import nimare

    return {
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nimare": nimare.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def studyset_mode(args: argparse.Namespace) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        studyset = load_studyset()
        template = Template.mni152(mask="brain")
        start = time.perf_counter()
        peaks = PeakTable.from_nimare(studyset)
        table_s = time.perf_counter() - start
        n = peaks.n_studies
        print(
            f"input: {STUDYSET}: {n} analyses, {peaks.n_peaks} foci; "
            f"template {template.shape}, {template.n_voxels} mask voxels"
        )
        print(f"PeakTable.from_nimare (once): {table_s:.3f} s")

        rows: list[dict[str, Any]] = []
        cases: dict[str, Callable[[], object]] = {}
        pairs: list[tuple[str, str, str]] = []
        for label, (theirs, ours) in nimare_kernels().items():
            for output in ("array", "sparse"):
                theirs_name, ours_name = f"nimare {label} {output}", f"brrrr {label} {output}"
                cases[theirs_name] = lambda k=theirs, o=output: k.transform(studyset, return_type=o)
                cases[ours_name] = lambda k=ours, o=output: peaks_to_maps(
                    peaks,
                    kernel=k,
                    template=template,
                    output="dense" if o == "array" else "sparse",
                )
                pairs.append((f"{label} {output} float32", theirs_name, ours_name))
                diff = check_equal(cases[ours_name](), cases[theirs_name](), ours_name)
                print(f"verified {label} {output}: max |ours - NiMARE| = {diff:g} over {n} maps")
        uint8_name = "brrrr MKDA r=10 array uint8"
        cases[uint8_name] = lambda: peaks_to_maps(
            peaks, kernel=MKDA(radius_mm=10), template=template, dtype="uint8"
        )
        check_equal(cases[uint8_name](), cases["nimare MKDA r=10 array"](), uint8_name)
        pairs.append(
            ("MKDA r=10 array uint8 (ours) vs float32", "nimare MKDA r=10 array", uint8_name)
        )
        gc.collect()
        timings = time_alternating(cases, args.repeats)

    print(f"{'case':<44} {'NiMARE maps/s':>14} {'brrrr maps/s':>13} {'ratio':>7}")
    for label, theirs_name, ours_name in pairs:
        theirs_rate = n / timings[theirs_name]["median_s"]
        ours_rate = n / timings[ours_name]["median_s"]
        rows.append(
            {
                "case": label,
                "nimare_maps_per_s": theirs_rate,
                "brrrr_maps_per_s": ours_rate,
                "ratio": ours_rate / theirs_rate,
                "nimare_median_s": timings[theirs_name]["median_s"],
                "brrrr_median_s": timings[ours_name]["median_s"],
                "brrrr_min_s": timings[ours_name]["min_s"],
                "nimare_min_s": timings[theirs_name]["min_s"],
            }
        )
        print(f"{label:<44} {theirs_rate:14.0f} {ours_rate:13.0f} {ours_rate / theirs_rate:6.1f}×")
    return {
        "mode": "studyset",
        "input": {"studyset": STUDYSET, "studies": n, "foci": peaks.n_peaks},
        "peak_table_seconds": table_s,
        "repeats": args.repeats,
        "results": rows,
    }


def synthetic_peaks(real: PeakTable, n_studies: int, seed: int) -> PeakTable:
    """``n_studies`` copies of real studies' peak sets, drawn with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, real.n_studies, size=n_studies)
    counts = real.peaks_per_study[chosen]
    first = np.repeat(real.study_starts[chosen], counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    width = len(str(n_studies))
    return PeakTable(
        [f"synthetic-{i:0{width}d}" for i in range(n_studies)],
        real.coords_mm[first + within],
        np.repeat(np.arange(n_studies), counts),
    )


def verify_sample(peaks: PeakTable, template: Template, device: str, studyset: Any) -> float:
    """The first 64 synthetic maps on ``device`` against NiMARE (DataFrame input)."""
    import pandas as pd

    sample = peaks.select(range(min(64, peaks.n_studies)))
    frame = pd.DataFrame(sample.coords_mm, columns=["x", "y", "z"])
    frame["id"] = sample.study_ids[sample.study_index]
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, (theirs, ours) in nimare_kernels().items():
            reference = theirs.transform(frame, masker=studyset.masker, return_type="array")
            mine = peaks_to_maps(sample, kernel=ours, template=template, device=device)
            worst = max(worst, check_equal(mine, reference, f"{label} on {device}"))
    return worst


def synthetic_mode(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    studyset = load_studyset()
    template = Template.mni152(mask="brain")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = PeakTable.from_nimare(studyset)
    peaks = synthetic_peaks(real, args.studies, args.seed)
    gigabytes = peaks.n_studies * template.n_voxels * 4 / 1e9
    print(
        f"input: {peaks.n_studies} studies resampled (seed {args.seed}) from {real.n_studies} "
        f"real ones, {peaks.n_peaks} foci; output {gigabytes:.1f} GB float32 per kernel; "
        f"device {device}"
    )
    worst = verify_sample(peaks, template, args.device, studyset)
    print(f"verified the first 64 maps against NiMARE: max |diff| = {worst:g}")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rows = []
    total = 0.0
    for label, (_, kernel) in nimare_kernels().items():
        seconds = []
        for repeat in range(args.repeats + 1):  # the first call warms up
            gc.collect()
            sync()
            start = time.perf_counter()
            maps = peaks_to_maps(peaks, kernel=kernel, template=template, device=device)
            host = maps.cpu() if device.type == "cuda" else maps
            sync()
            elapsed = time.perf_counter() - start
            del maps, host
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if repeat:
                seconds.append(elapsed)
        median = statistics.median(seconds)
        total += median
        rows.append(
            {
                "kernel": label,
                "median_s_including_transfer": median,
                "maps_per_s": peaks.n_studies / median,
            }
        )
        print(
            f"{label:<12} {median:8.3f} s  {peaks.n_studies / median:10.0f} maps/s (incl. to host)"
        )
    print(
        f"both kernels: {total:.3f} s for {peaks.n_studies} studies each (target on an H100: ≤ 10 s)"
    )
    return {
        "mode": "synthetic",
        "device": str(device),
        "input": {"studies": peaks.n_studies, "foci": peaks.n_peaks, "seed": args.seed},
        "verified_max_abs_diff": worst,
        "repeats": args.repeats,
        "results": rows,
        "both_kernels_seconds": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--studies", type=int, default=None, help="synthetic mode: resample this many studies"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic resampling")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()

    if args.studies is None and args.device != "cpu":
        raise SystemExit("NiMARE runs on CPU only: use --studies N with --device cuda")
    result = studyset_mode(args) if args.studies is None else synthetic_mode(args)
    result = {"benchmark": "bench_kernels", "machine": machine(), **result}
    print(
        f"machine: {result['machine']['cores']} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), NiMARE {result['machine']['nimare']}"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
