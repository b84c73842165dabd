"""Training throughput of our 3D β-VAE and MONAI's ``VarAutoEncoder``, side by side, in one run.

For each model and each data feed the benchmark times ``--steps`` full training steps (forward,
loss, backward, AdamW) after ``--warmup`` steps and reports:

* images/s;
* peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak RSS on CPU
  (``ru_maxrss``, process-wide and monotone, so later rows include earlier ones);
* model FLOPs per image of one training step (forward + backward), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the real model at the real input size;
* model-FLOP utilisation ``MFU = images/s × FLOPs/image / peak`` against ``--peak-tflops``
  (default 790 TFLOP/s, an H100's dense bf16 figure used by issue 6).

Models (latent 128, both trained with a Gaussian reconstruction + KL objective):

* ``brrrr BetaVAE``: the default architecture (16–256 channels, GroupNorm, dilated residual
  blocks) on the grid ``--shape``;
* ``MONAI VarAutoEncoder``: channels 32, 64, 128, 256, strides 2 (the issue's reference).

Data feeds: ``resident`` (one batch already on the device, the upper bound) and ``cache`` (maps
read from a brrrr-preprocess ``MapCache`` in the grid layout through a ``DataLoader`` with
``--workers`` workers and pinned memory), so the cost of feeding from disk is measured.

The issue's target configuration needs a GPU (``--device cuda``, the defaults otherwise):
1×96×112×96, batch 16, bf16. On a CPU use small sizes, e.g.

    uv run python benchmarks/bench_vae_train.py --device cpu --shape 32 48 32 --batch 4 \\
        --steps 3 --warmup 1 --precision fp32
    uv run python benchmarks/bench_vae_train.py --device cuda --out benchmarks/results/bench_vae_train_h100.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from brrrr.models import BetaVAE, BetaVAEConfig, beta_vae_loss

LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def brrrr_vae(shape: tuple[int, int, int], latent: int) -> tuple[nn.Module, LossFn]:
    model = BetaVAE(BetaVAEConfig(grid_shape=shape, latent_dim=latent))

    def loss(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return beta_vae_loss(m(x), x, beta=1.0)["loss"]

    return model, loss


def monai_vae(shape: tuple[int, int, int], latent: int) -> tuple[nn.Module, LossFn]:
    from monai.networks.nets import VarAutoEncoder

    model = VarAutoEncoder(
        spatial_dims=3,
        in_shape=(1, *shape),
        out_channels=1,
        latent_size=latent,
        channels=(32, 64, 128, 256),
        strides=(2, 2, 2, 2),
    )

    def loss(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        recon, mu, logvar, _ = m(x)
        nll = 0.5 * (recon - x).square().flatten(1).sum(1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)
        return (nll + kl).mean()

    return model, loss


def autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def flops_per_image(model: nn.Module, loss: LossFn, x: torch.Tensor, precision: str) -> float:
    counter = FlopCounterMode(display=False)
    with counter, autocast(x.device, precision):
        loss(model, x).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / x.shape[0]


def build_cache(root: Path, shape: tuple[int, int, int], n_maps: int) -> Any:
    """A grid-layout MapCache of ``n_maps`` synthetic studies on a ``shape`` grid (2 mm)."""
    from brrrr.models.training.samples import synthetic_peaks
    from brrrr.preprocess.kernels import Gaussian, MapCache, Template

    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -np.asarray(shape) + 1.0  # centred on the origin
    template = Template(affine, shape, name="bench")
    peaks, _ = synthetic_peaks(n_studies=n_maps, analyses_per_study=1, seed=0)
    maps = MapCache(root).build(
        peaks, kernel=Gaussian(fwhm_mm=12), template=template, layout="grid", progress=False
    )
    return maps


def batches(
    feed: str, x: torch.Tensor, cache: Any, batch: int, workers: int
) -> Iterator[torch.Tensor]:
    if feed == "resident":
        while True:
            yield x
    dataset = _CacheDataset(cache)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=x.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    while True:
        for maps in loader:
            yield maps.to(x.device, non_blocking=True)


class _CacheDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, maps: Any) -> None:
        self.maps = maps

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.maps[index], dtype=np.float32))[None]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_training(
    model: nn.Module,
    loss: LossFn,
    feed: Iterator[torch.Tensor],
    *,
    steps: int,
    warmup: int,
    precision: str,
) -> tuple[float, float]:
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.995))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    images = 0
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, images = time.perf_counter(), 0
        x = next(feed)
        with autocast(device, precision):
            value = loss(model, x)
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        images += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images / (time.perf_counter() - start), peak_memory_mb(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 112, 96])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--precision",
        choices=["bf16", "fp32"],
        default=None,
        help="default: bf16 on cuda, fp32 on cpu",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=790.0,
        help="peak of the device for MFU (790: H100 dense bf16)",
    )
    parser.add_argument(
        "--feeds", nargs="+", default=["resident", "cache"], choices=["resident", "cache"]
    )
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument(
        "--cache-maps",
        type=int,
        default=None,
        help="maps in the benchmark cache (default: 4 batches)",
    )
    parser.add_argument(
        "--models", nargs="+", default=["brrrr", "monai"], choices=["brrrr", "monai"]
    )
    parser.add_argument("--channels-last", action="store_true", help="channels_last_3d memory")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    shape = tuple(args.shape)
    if "monai" in args.models and any(side % 16 for side in shape):
        parser.error(
            f"MONAI's VarAutoEncoder (4 stride-2 layers) needs sides divisible by 16, got {shape}"
        )
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, *shape, device=device)
    cache = None
    with tempfile.TemporaryDirectory() as tmp:
        if "cache" in args.feeds:
            started = time.perf_counter()
            cache = build_cache(Path(tmp), shape, args.cache_maps or 4 * args.batch)  # type: ignore[arg-type]
            print(
                f"map cache: {len(cache)} maps {shape} built in {time.perf_counter() - started:.1f} s"
            )
        builders = {
            "brrrr": ("brrrr BetaVAE", brrrr_vae),
            "monai": ("MONAI VarAutoEncoder", monai_vae),
        }
        rows = []
        for key in args.models:
            name, build = builders[key]
            model, loss = build(shape, args.latent)  # type: ignore[arg-type]
            model = model.to(device)
            if args.channels_last:
                model = model.to(memory_format=torch.channels_last_3d)
            flops = flops_per_image(model, loss, x, precision)
            params = sum(p.numel() for p in model.parameters())
            run_model = torch.compile(model) if args.compile else model
            for feed in args.feeds:
                rate, memory = time_training(
                    run_model,
                    loss,
                    batches(feed, x, cache, args.batch, args.workers),  # type: ignore[arg-type]
                    steps=args.steps,
                    warmup=args.warmup,
                    precision=precision,
                )
                mfu = rate * flops / (args.peak_tflops * 1e12)
                rows.append(
                    {
                        "model": name,
                        "feed": feed,
                        "images_per_s": rate,
                        "peak_memory_mb": memory,
                        "gflops_per_image": flops / 1e9,
                        "mfu": mfu,
                        "parameters": params,
                    }
                )
                print(
                    f"{name:22s} {feed:8s} {rate:9.2f} images/s  peak {memory:9.1f} MB  "
                    f"{flops / 1e9:8.2f} GFLOP/image  MFU {100 * mfu:.4f} % "
                    f"of {args.peak_tflops:g} TFLOP/s"
                )
    for model_name in {r["model"] for r in rows}:
        feeds = {r["feed"]: r["images_per_s"] for r in rows if r["model"] == model_name}
        if {"resident", "cache"} <= set(feeds):
            print(
                f"{model_name}: cache feed at {100 * feeds['cache'] / feeds['resident']:.1f} % "
                "of the resident-data rate"
            )
    result = {
        "benchmark": "bench_vae_train",
        "machine": {
            "device": str(device),
            "name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
        },
        "input": {
            "shape": [1, *shape],
            "batch": args.batch,
            "latent": args.latent,
            "precision": precision,
            "steps": args.steps,
            "warmup": args.warmup,
            "peak_tflops": args.peak_tflops,
            "compile": args.compile,
            "channels_last": args.channels_last,
        },
        "results": rows,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
