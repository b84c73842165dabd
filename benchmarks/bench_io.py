"""Load a 256×256×180 ``.nii.gz`` to float32: brrrr.core vs nibabel vs MONAI, side by side.

Also times just gunzipping the same file (stdlib zlib and ISA-L), the floor for
any reader. Every loader starts from the path and ends with a float32 array in
memory; the file sits in the page cache (each is run once to warm up). The
arrays are checked to be equal to nibabel's before anything is timed.

Run:  uv run python benchmarks/bench_io.py [--repeats 15] [--out benchmarks/results/bench_io.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from _timing import median_seconds
from isal import isal_zlib

from brrrr.core import load_volume, samples, save_volume

SHAPE = (256, 256, 180)


def make_input(folder: Path) -> Path:
    """A 1 mm head phantom with Rician noise everywhere, as MRI has: it compresses
    like a real T1 (about 2:1), unlike a noiseless or zero-padded image."""
    path = folder / "t1_256x256x180.nii.gz"
    volume = samples.phantom(shape=SHAPE, spacing=1.0, noise=0.03, seed=1)
    save_volume(volume, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the figures as JSON here"
    )
    args = parser.parse_args()

    from monai.transforms import LoadImage

    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(Path(tmp))
        raw = path.read_bytes()
        monai_loader = LoadImage(image_only=True, dtype=np.float32)

        def brrrr_load() -> np.ndarray:
            return load_volume(path, dtype="float32").data

        def nibabel_load() -> np.ndarray:
            return nib.load(path).get_fdata(dtype=np.float32)

        def monai_load() -> np.ndarray:
            return np.asarray(monai_loader(str(path)))

        expected = nibabel_load()
        assert np.array_equal(brrrr_load(), expected), "brrrr and nibabel disagree"
        assert np.array_equal(monai_load(), expected), "MONAI and nibabel disagree"

        cases: dict[str, Callable[[], object]] = {
            "brrrr.core load_volume": brrrr_load,
            "nibabel get_fdata(float32)": nibabel_load,
            "MONAI LoadImage": monai_load,
            "gunzip only (stdlib zlib)": lambda: gzip.decompress(path.read_bytes()),
            "gunzip only (ISA-L)": lambda: isal_zlib.decompress(path.read_bytes(), wbits=31),
        }
        results = {name: median_seconds(fn, args.repeats) for name, fn in cases.items()}

    ours = results["brrrr.core load_volume"]
    uncompressed_mb = np.prod(SHAPE) * 2 / 1e6
    print(
        f"input: {SHAPE} int16 .nii.gz, {len(raw) / 1e6:.1f} MB on disk, {uncompressed_mb:.1f} MB raw"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, nibabel {nib.__version__}"
    )
    print(f"{'loader':<30} {'median s':>9} {'MB/s':>8} {'vs brrrr':>9}")
    for name, seconds in results.items():
        print(f"{name:<30} {seconds:9.4f} {uncompressed_mb / seconds:8.0f} {seconds / ours:8.2f}×")
    ratios = {
        "nibabel / brrrr (target ≥ 1.5)": results["nibabel get_fdata(float32)"] / ours,
        "MONAI / brrrr (target ≥ 2)": results["MONAI LoadImage"] / ours,
        "brrrr / gunzip ISA-L (target ≤ 1.3)": ours / results["gunzip only (ISA-L)"],
        "brrrr / gunzip stdlib": ours / results["gunzip only (stdlib zlib)"],
    }
    for name, value in ratios.items():
        print(f"{name:<40} {value:6.2f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "benchmark": "bench_io",
                    "machine": {
                        "arch": platform.machine(),
                        "cores": os.cpu_count(),
                        "python": platform.python_version(),
                    },
                    "input": {"shape": SHAPE, "bytes_on_disk": len(raw)},
                    "median_seconds": results,
                    "ratios": ratios,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
