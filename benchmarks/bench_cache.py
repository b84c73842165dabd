"""Cache read throughput from one process: brrrr's memory-mapped uint8 .npy cache, side by side.

Builds a small dataset of distinct 256×256×180 1 mm T1 head phantoms (``.nii.gz``, one
study each), caches it with ``CacheManager.build`` and times, per volume, from one
process, with the files in the page cache (each case is run once to warm up):

* ``brrrr cache: open`` — ``CacheManager.load_image``: manifest look-up, two
  ``np.load(mmap_mode="r", allow_pickle=False)``, shape/dtype checks. What a
  training step pays before it reads the voxels it crops.
* ``brrrr cache: open + read all`` — the same, then every byte of image and mask
  copied into memory (an upper bound: crops read less).
* ``ImageDataset item`` — a whole training item from the cache: read, tokenise to
  ``(N, 1024)`` float32, coordinates and background flags.
* ``torch.load .pt`` — the same uint8 image and mask as NeuroVFM stores them
  (``torch.save`` pickles, ``torch.load(weights_only=True)``).
* ``NIfTI: load + prepare`` — ``load_image`` + ``prepare_for_inference`` from the
  ``.nii.gz`` every time, what a loader without a cache does.

Target (issue 4): ≥ 2000 volumes/s for memory-mapped reads of cached volumes + masks.

Run:  uv run python benchmarks/bench_cache.py [--volumes 8] [--repeats 7] [--out benchmarks/results/bench_cache.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from brrrr.core import samples, save_volume
from brrrr.preprocess.neurovfm.cache import CacheManager
from brrrr.preprocess.neurovfm.datasets import ImageDataset
from brrrr.preprocess.neurovfm.metadata import DatasetMetadata
from brrrr.preprocess.neurovfm.prepare import load_image, prepare_for_inference

SHAPE = (256, 256, 180)


def make_dataset(root: Path, volumes: int) -> list[tuple[str, str]]:
    """``volumes`` distinct phantoms (different noise seeds) under ``root/raw/<study>/t1.nii.gz``."""
    names = []
    for i in range(volumes):
        folder = root / "raw" / f"study{i:03d}"
        folder.mkdir(parents=True)
        volume = samples.phantom(shape=SHAPE, spacing=1.0, noise=0.03, seed=100 + i)
        save_volume(volume, folder / "t1.nii.gz")
        names.append((folder.name, "t1"))
    DatasetMetadata.from_directory(root, {"*": "mri"}).save(root / "metadata.json")
    return names


def throughput(
    fn: Callable[[str, str], object], names: Sequence[tuple[str, str]], repeats: int
) -> float:
    """Median over ``repeats`` passes of volumes per second (one warm-up pass first)."""
    for study, image in names:
        fn(study, image)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for study, image in names:
            fn(study, image)
        rates.append(len(names) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--volumes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the figures as JSON here"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = make_dataset(root, args.volumes)
        cache = CacheManager(root)
        start = time.perf_counter()
        cache.build(num_workers=args.workers)
        build_s = time.perf_counter() - start
        cache = CacheManager(root)
        first = cache.load_image(*names[0])
        shape = first.data.shape
        image_buf = np.empty(shape, np.uint8)
        mask_buf = np.empty(first.mask.shape, np.uint8)
        bytes_per_volume = image_buf.nbytes + mask_buf.nbytes

        pt = root / "pt"
        pt.mkdir()
        for study, image in names:
            entry = cache.load_image(study, image)
            torch.save(torch.from_numpy(np.array(entry.data)), pt / f"{study}_{image}.pt")
            torch.save(torch.from_numpy(np.array(entry.mask)), pt / f"{study}_{image}_mask.pt")

        def cache_open(study: str, image: str) -> object:
            return cache.load_image(study, image)

        def cache_read(study: str, image: str) -> object:
            entry = cache.load_image(study, image)
            np.copyto(image_buf, entry.data)
            np.copyto(mask_buf, entry.mask)
            return image_buf

        dataset = ImageDataset(root)
        index = {(r.study, r.image): i for i, r in enumerate(dataset.images)}

        def dataset_item(study: str, image: str) -> object:
            return dataset[index[study, image]]

        def torch_pt(study: str, image: str) -> object:
            img = torch.load(pt / f"{study}_{image}.pt", weights_only=True)
            mask = torch.load(pt / f"{study}_{image}_mask.pt", weights_only=True)
            return img, mask

        def from_nifti(study: str, image: str) -> object:
            volume = load_image(root / "raw" / study / f"{image}.nii.gz")
            return prepare_for_inference(volume, mode="mri")

        expected = np.rint(
            prepare_for_inference(load_image(root / "raw" / names[0][0] / "t1.nii.gz"), mode="mri")[
                0
            ]
            * 255
        )
        assert np.array_equal(np.asarray(cache_read(*names[0])), expected), "cache != preparation"

        cases = {
            "brrrr cache: open (mmap)": throughput(cache_open, names, args.repeats),
            "brrrr cache: open + read all": throughput(cache_read, names, args.repeats),
            "ImageDataset item (tokens)": throughput(dataset_item, names, args.repeats),
            "torch.load .pt (NeuroVFM)": throughput(torch_pt, names, args.repeats),
            "NIfTI: load + prepare": throughput(from_nifti, names, 1),
        }

    baseline = cases["NIfTI: load + prepare"]
    print(
        f"input: {args.volumes} distinct {SHAPE} int16 .nii.gz T1 phantoms → cached uint8 image "
        f"{shape} + mask, {bytes_per_volume / 1e6:.1f} MB per volume; build {build_s:.1f} s "
        f"with {args.workers} workers"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__}; one process, page cache warm"
    )
    print(f"{'reader':<30} {'volumes/s':>10} {'ms/volume':>10} {'GB/s':>7} {'vs NIfTI':>9}")
    for name, rate in cases.items():
        # Opening maps the files without reading them: no bytes/s to report.
        gbs = "—" if name.endswith("(mmap)") else f"{rate * bytes_per_volume / 1e9:.2f}"
        print(f"{name:<30} {rate:10.1f} {1000 / rate:10.3f} {gbs:>7} {rate / baseline:8.0f}×")
    target = cases["brrrr cache: open (mmap)"]
    print(
        f"memory-mapped open: {target:.0f} volumes/s (target ≥ 2000: {'met' if target >= 2000 else 'NOT met'})"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "benchmark": "bench_cache",
                    "machine": {
                        "arch": platform.machine(),
                        "cores": os.cpu_count(),
                        "python": platform.python_version(),
                        "torch": torch.__version__,
                    },
                    "input": {
                        "volumes": args.volumes,
                        "source_shape": SHAPE,
                        "cached_shape": list(shape),
                        "bytes_per_volume": bytes_per_volume,
                    },
                    "build_seconds": build_s,
                    "volumes_per_second": cases,
                    "speedup_vs_nifti": {k: v / baseline for k, v in cases.items()},
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
