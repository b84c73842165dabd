"""Load a volume, reorient it, resample it to 1 mm, and save it.

Run on your own file, or on the built-in sample when no path is given:

    uv run python scripts/reorient_and_resample.py [INPUT] [--out OUT.nii.gz]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from brrrr.core import load_volume, samples, save_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", type=Path, help="NIfTI/MGZ/DICOM file or DICOM folder")
    parser.add_argument("--out", type=Path, default=None, help="where to write the result")
    parser.add_argument("--spacing", type=float, default=1.0, help="target voxel size in mm")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = args.input
        if source is None:
            source = save_volume(samples.phantom(axcodes="LPS"), Path(tmp) / "phantom.nii.gz")
        volume = load_volume(source, dtype="float32")
        print("loaded     ", volume)
        ras = volume.reorient("RAS")
        print("reoriented ", ras)
        fine = ras.resample(spacing=args.spacing, interpolation="linear")
        print("resampled  ", fine)
        out = args.out or Path(tmp) / "resampled.nii.gz"
        save_volume(fine, out)
        print("saved      ", out, f"({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
