"""Volume.resample (brrrr.core's one resampler) against scipy, nibabel and MONAI, side by side.

Input: the MNI152 T1 that NiMARE ships (182×218×182 int16, 1 mm, LAS-like affine), decoded once.
Cases, each in the same run, medians of interleaved rounds (every tool sees the same load):

* ``1 mm → 1.5 mm`` (linear): a change of voxel size on the same axes.
* ``→ RPI at 1 × 1 × 4 mm`` (linear): another orientation and voxel size at once (NeuroVFM's
  grid). Before the one-resampler change, brrrr took its oblique path here (a coordinate per
  voxel); now the axis permutation is folded into the separable passes.
* ``labels 1 mm → 2 mm`` (nearest, uint8).

Reference tools, on the identical target grid: ``scipy.ndimage.affine_transform`` (order 1 /
order 0, ``mode="grid-constant"``: the same sampling rule), ``nibabel.processing.resample_from_to``
(which calls scipy with ``mode="constant"``) and MONAI's ``SpatialResample`` (torch
``grid_sample``). Every output is checked against scipy before timing (max abs difference).

Run:
    uv run python benchmarks/bench_resample.py [--repeats 7] [--out benchmarks/results/bench_resample_cpu.json]
"""

from __future__ import annotations

import argparse
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

from brrrr.core import Volume, geometry, samples
from brrrr.core.resample import grid_for_spacing


def _grids(volume: Volume) -> dict[str, tuple[tuple[int, int, int], np.ndarray, str]]:
    iso = grid_for_spacing(volume.shape, volume.affine, 1.5)
    plan = geometry.reorientation(volume.affine, "RPI", shape=volume.shape)
    rpi_shape, rpi_affine = grid_for_spacing(
        plan.output_shape, plan.transform_affine(volume.affine), (1.0, 1.0, 4.0)
    )
    labels = grid_for_spacing(volume.shape, volume.affine, 2.0)
    return {
        "1 mm -> 1.5 mm (linear)": (iso[0], iso[1], "linear"),
        "-> RPI at 1x1x4 mm (linear)": (rpi_shape, rpi_affine, "linear"),
        "labels 1 mm -> 2 mm (nearest)": (labels[0], labels[1], "nearest"),
    }


def _scipy(data: np.ndarray, affine: np.ndarray, shape: Any, target: np.ndarray, order: int) -> Any:
    from scipy import ndimage

    vox2vox = np.linalg.inv(affine) @ target
    return ndimage.affine_transform(
        data.astype(np.float32) if order else data,
        vox2vox[:3, :3],
        offset=vox2vox[:3, 3],
        output_shape=tuple(shape),
        order=order,
        mode="grid-constant",
        cval=0.0,
    )


def _nibabel(
    data: np.ndarray, affine: np.ndarray, shape: Any, target: np.ndarray, order: int
) -> Any:
    import nibabel as nib
    from nibabel.processing import resample_from_to

    image = nib.Nifti1Image(data.astype(np.float32) if order else data, affine)
    return np.asarray(resample_from_to(image, (tuple(shape), target), order=order).dataobj)


def _monai(data: np.ndarray, affine: np.ndarray, shape: Any, target: np.ndarray, order: int) -> Any:
    import torch
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    resampler = SpatialResample(mode="bilinear" if order else "nearest", padding_mode="zeros")
    image = MetaTensor(
        torch.from_numpy(data.astype(np.float32))[None], affine=torch.from_numpy(affine)
    )
    out = resampler(
        image,
        dst_affine=torch.from_numpy(target),
        spatial_size=tuple(int(n) for n in shape),
    )
    return np.asarray(out[0])


def interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import monai
    import torch

    t1 = samples.mni_t1()
    labels = Volume((t1.data > np.percentile(t1.data, 80)).astype(np.uint8), t1.affine)
    print(
        f"input: {t1.shape} {t1.dtype}, {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), MONAI {monai.__version__}"
    )
    report: dict[str, Any] = {"benchmark": "bench_resample", "cases": {}}
    for name, (shape, target, interpolation) in _grids(t1).items():
        volume = labels if interpolation == "nearest" else t1
        order = 0 if interpolation == "nearest" else 1
        data, affine = volume.data, volume.affine
        like = Volume(np.zeros(shape, np.uint8), target)
        tools: dict[str, Callable[[], Any]] = {
            "brrrr Volume.resample": lambda v=volume, like=like, i=interpolation: (
                v.resample(like=like, interpolation=i).data
            ),
            "scipy affine_transform": lambda d=data, a=affine, s=shape, t=target, o=order: _scipy(
                d, a, s, t, o
            ),
            "nibabel resample_from_to": lambda d=data, a=affine, s=shape, t=target, o=order: (
                _nibabel(d, a, s, t, o)
            ),
            "MONAI SpatialResample": lambda d=data, a=affine, s=shape, t=target, o=order: _monai(
                d, a, s, t, o
            ),
        }
        reference = np.asarray(tools["scipy affine_transform"](), dtype=np.float64)
        agree = {}
        for tool, fn in tools.items():
            out = np.asarray(fn(), dtype=np.float64)
            agree[tool] = (
                float(np.abs(out - reference).max()) if out.shape == reference.shape else None
            )
        medians = interleaved(tools, args.repeats)
        ours = medians["brrrr Volume.resample"]
        print(f"\n{name}: output {tuple(shape)}")
        print(f"{'tool':28s} {'median s':>9s} {'vs brrrr':>9s} {'max |diff| vs scipy':>20s}")
        for tool, seconds in medians.items():
            diff = agree[tool]
            print(
                f"{tool:28s} {seconds:9.4f} {seconds / ours:8.2f}× {'shape differs' if diff is None else f'{diff:.3g}':>20s}"
            )
        report["cases"][name] = {
            "output_shape": list(shape),
            "median_seconds": medians,
            "ratio_vs_brrrr": {tool: s / ours for tool, s in medians.items()},
            "max_abs_diff_vs_scipy": agree,
        }
    report["machine"] = {
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
