"""Load + prepare + tokenize a 256×256×180 ``.nii.gz`` T1: brrrr.preprocess vs MONAI vs gunzip.

Input: the MNI152 T1 that NiMARE ships (182×218×182, 1 mm), scaled to a 12-bit-like range,
centred in a 256×256×180 grid and given Rician noise everywhere (σ = 2 % of white matter), so it
compresses like a real scan (about 1.6:1) instead of like a zero-padded template. Written to a
temporary folder; the file sits in the page cache (every case runs once to warm up).

CPU mode (default), side by side in one run, medians of ``--repeats``:

* brrrr: ``load_and_prepare(path, mode="mri", slice_axis="axial", fit="pad")`` → ``tokenize``
  (numpy on the CPU). ``load_and_prepare`` is ``prepare_for_inference(load_image(path), ...)``
  with identical output, but it prepares each slab while a background thread is still
  inflating the rest of the file; the two-step call is timed too.
* MONAI: ``LoadImaged`` → ``EnsureChannelFirstd`` → ``Orientationd("RPI")`` →
  ``Spacingd((1, 1, 4))`` → ``ScaleIntensityRangePercentilesd(0.5, 99.5, 0, 1, clip=True)`` →
  ``DivisiblePadd((16, 16, 4))``, then the same ``tokenize`` of its output (equal work).
* gunzip only (ISA-L and zlib): reading the file and inflating it in one call, the floor for
  a serial reader; also ISA-L told the content's size up front (``bufsize``), which spares it
  growing its output buffer: a stricter floor.

The cases run in interleaved rounds (one call of each per round, after a warm-up call of each),
so that on a shared machine they all see the same load; the medians over the rounds are
reported.

The slice axis is given as axial because MONAI's ``Spacingd((1, 1, 4))`` puts 4 mm on the S-I
axis; our own rule would slice this isotropic volume sagittally, as NeuroVFM does. Both outputs
are checked to have the same grid size and to agree closely (correlation) before timing.

Device mode (``--device cpu|cuda``): volumes/s for prepare + tokenize from decoded int16 arrays
already on the device, in batches of ``--batch`` (``prepare_array`` on a ``(B, I, J, K)`` tensor,
then ``tokenize`` of the ``(B, 1, D, H, W)`` result), plus MONAI's Orientation + Spacing on the
same device per volume for reference.

Run:
    uv run python benchmarks/bench_prepare.py [--repeats 7] [--out benchmarks/results/bench_prepare.json]
    uv run python benchmarks/bench_prepare.py --device cuda --batch 32 --batches 20 [--out ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from isal import isal_zlib

from brrrr.core import Volume, load_volume, samples, save_volume
from brrrr.preprocess.neurovfm.prepare import (
    load_and_prepare,
    load_image,
    prepare_array,
    prepare_for_inference,
)
from brrrr.preprocess.neurovfm.settings import PrepareSettings
from brrrr.preprocess.neurovfm.tokenize import tokenize

SHAPE = (256, 256, 180)
PAD = PrepareSettings(fit="pad")


def make_input(folder: Path) -> Path:
    """The MNI T1 in a 256×256×180 grid at 1 mm with Rician noise, as int16 ``.nii.gz``."""
    template = samples.mni_t1()
    scaled = template.data.astype(np.float32) / 8.0  # 0…1250, a 12-bit-like range
    canvas = np.zeros(SHAPE, dtype=np.float32)
    starts = [(n - m) // 2 for n, m in zip(SHAPE, template.shape, strict=True)]
    src = tuple(
        slice(max(0, -s), max(0, -s) + min(n, m))
        for s, n, m in zip(starts, SHAPE, template.shape, strict=True)
    )
    dst = tuple(
        slice(max(0, s), max(0, s) + min(n, m))
        for s, n, m in zip(starts, SHAPE, template.shape, strict=True)
    )
    canvas[dst] = scaled[src]
    rng = np.random.default_rng(0)
    sigma = 0.02 * float(np.percentile(scaled[scaled > 0], 90))
    real = canvas + rng.normal(0.0, sigma, SHAPE).astype(np.float32)
    imag = rng.normal(0.0, sigma, SHAPE).astype(np.float32)
    voxels = np.round(np.sqrt(real * real + imag * imag)).astype(np.int16)
    affine = template.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(starts, dtype=np.float64)
    path = folder / "mni_t1_256x256x180.nii.gz"
    save_volume(Volume(voxels, affine), path)
    return path


def monai_pipeline() -> Any:
    from monai.transforms import (
        Compose,
        DivisiblePadd,
        EnsureChannelFirstd,
        LoadImaged,
        Orientationd,
        ScaleIntensityRangePercentilesd,
        Spacingd,
    )

    return Compose(
        [
            LoadImaged(keys="img"),
            EnsureChannelFirstd(keys="img"),
            Orientationd(keys="img", axcodes="RPI"),
            Spacingd(keys="img", pixdim=(1.0, 1.0, 4.0)),
            ScaleIntensityRangePercentilesd(
                keys="img", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True
            ),
            DivisiblePadd(keys="img", k=(16, 16, 4)),
        ]
    )


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def interleaved_medians(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each case over ``repeats`` rounds of one call of every case, after
    one warm-up call of each (page cache, lazy imports, allocator)."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def run_cpu(path: Path, repeats: int) -> dict[str, Any]:
    import monai
    import torch

    pipeline = monai_pipeline()

    def ours() -> Any:
        img, mask, _ = load_and_prepare(path, mode="mri", slice_axis="axial", settings=PAD)
        return img, tokenize(img, mask)

    def ours_two_step() -> Any:
        img, mask, _ = prepare_for_inference(
            load_image(path), mode="mri", slice_axis="axial", settings=PAD
        )
        return img, tokenize(img, mask)

    def theirs() -> Any:
        # MONAI's (C, I, J, K) RPI output is our (C, D, H, W) with the axes reversed.
        img = pipeline({"img": str(path)})["img"].as_tensor().permute(0, 3, 2, 1)
        return img, tokenize(img.contiguous(), None)

    ours_img = ours()[0]
    if not np.array_equal(ours_img, ours_two_step()[0]):
        raise SystemExit("load_and_prepare differs from prepare_for_inference(load_image(...))")
    theirs_img = theirs()[0].numpy()
    if ours_img.shape != theirs_img.shape:
        raise SystemExit(f"grids differ: brrrr {ours_img.shape}, MONAI {theirs_img.shape}")
    agreement = float(np.corrcoef(ours_img.ravel(), theirs_img.ravel())[0, 1])
    volume = load_volume(path)
    prepared = prepare_for_inference(volume, mode="mri", slice_axis="axial", settings=PAD)
    content = len(isal_zlib.decompress(path.read_bytes(), wbits=31))
    cases: dict[str, Callable[[], object]] = {
        "brrrr load + prepare + tokenize": ours,
        "MONAI pipeline + tokenize": theirs,
        "MONAI pipeline only": lambda: pipeline({"img": str(path)}),
        "brrrr two-step + tokenize": ours_two_step,
        "brrrr load only": lambda: load_image(path),
        "brrrr prepare only (decoded)": lambda: prepare_for_inference(
            volume, mode="mri", slice_axis="axial", settings=PAD
        ),
        "brrrr tokenize only": lambda: tokenize(prepared[0], prepared[1]),
        "gunzip only (ISA-L)": lambda: isal_zlib.decompress(path.read_bytes(), wbits=31),
        "gunzip only (ISA-L, sized)": lambda: isal_zlib.decompress(
            path.read_bytes(), wbits=31, bufsize=content
        ),
        "gunzip only (stdlib zlib)": lambda: gzip.decompress(path.read_bytes()),
    }
    results = interleaved_medians(cases, repeats)
    ours_s = results["brrrr load + prepare + tokenize"]
    ratios = {
        "MONAI / brrrr (target ≥ 3)": results["MONAI pipeline + tokenize"] / ours_s,
        "brrrr / gunzip ISA-L (target ≤ 1.3)": ours_s / results["gunzip only (ISA-L)"],
        "brrrr / gunzip ISA-L sized": ours_s / results["gunzip only (ISA-L, sized)"],
        "brrrr / gunzip stdlib": ours_s / results["gunzip only (stdlib zlib)"],
    }
    print(f"output (C, D, H, W) = {ours_img.shape}; correlation brrrr vs MONAI = {agreement:.4f}")
    print(
        f"MONAI {monai.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(f"{'case':<34} {'median s':>9} {'vs brrrr':>9}")
    for name, seconds in results.items():
        print(f"{name:<34} {seconds:9.4f} {seconds / ours_s:8.2f}×")
    for name, value in ratios.items():
        print(f"{name:<40} {value:6.2f}")
    return {
        "median_seconds": results,
        "ratios": ratios,
        "output_shape": list(ours_img.shape),
        "correlation_with_monai": agreement,
    }


def run_device(path: Path, device: str, batch: int, batches: int) -> dict[str, Any]:
    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    volume = load_volume(path)
    decoded = torch.from_numpy(np.stack([volume.data] * batch)).to(device)

    def step() -> Any:
        img, mask, _ = prepare_array(
            decoded, volume.affine, mode="mri", slice_axis="axial", settings=PAD
        )
        return tokenize(img, mask)

    step()
    sync()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    sync()
    ours_s = (time.perf_counter() - start) / (batches * batch)

    from monai.data import MetaTensor
    from monai.transforms import Orientation, Spacing

    orient, spacing = Orientation(axcodes="RPI"), Spacing(pixdim=(1.0, 1.0, 4.0))
    single = MetaTensor(decoded[0:1].float(), affine=torch.tensor(np.array(volume.affine)))
    spacing(orient(single))
    sync()
    count = max(2, min(batch, 8))
    start = time.perf_counter()
    for _ in range(count):
        spacing(orient(single))
    sync()
    monai_s = (time.perf_counter() - start) / count
    print(f"device {device}: batches of {batch} × {batches}, decoded int16 {SHAPE} on the device")
    print(f"brrrr prepare + tokenize   {1 / ours_s:9.1f} volumes/s  ({ours_s * 1e3:.2f} ms/volume)")
    print(
        f"MONAI Orientation+Spacing  {1 / monai_s:9.1f} volumes/s  ({monai_s * 1e3:.2f} ms/volume)"
    )
    return {
        "volumes_per_second": 1 / ours_s,
        "ms_per_volume": ours_s * 1e3,
        "monai_orientation_spacing_ms_per_volume": monai_s * 1e3,
        "batch": batch,
        "batches": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default=None, help="cpu or cuda: throughput mode")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    # MONAI warns about a changed default of Orientation's labels and a missing GPU codec.
    warnings.filterwarnings("ignore", category=FutureWarning, module="monai")
    warnings.filterwarnings("ignore", category=UserWarning, module="monai")

    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(Path(tmp))
        size = path.stat().st_size
        print(
            f"input: {SHAPE} int16 .nii.gz, {size / 1e6:.1f} MB on disk, "
            f"{np.prod(SHAPE) * 2 / 1e6:.1f} MB raw; {platform.machine()}, {os.cpu_count()} cores"
        )
        if args.device is None:
            figures = run_cpu(path, args.repeats)
        else:
            figures = run_device(path, args.device, args.batch, args.batches)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "benchmark": "bench_prepare",
            "mode": "cpu" if args.device is None else f"device:{args.device}",
            "machine": machine(args.device or "cpu"),
            "input": {"shape": SHAPE, "bytes_on_disk": size, "source": "MNI152 T1 (NiMARE)"},
            **figures,
        }
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
