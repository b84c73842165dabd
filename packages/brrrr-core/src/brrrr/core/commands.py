"""Core's subcommands: ``brrrr info`` and ``brrrr sample``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

__all__ = ["describe", "info", "sample"]


def _file_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def describe(path: str | os.PathLike[str], *, series_uid: str | None = None) -> dict[str, Any]:
    """The facts ``brrrr info`` prints, as a JSON-serialisable dict.

    Args:
        path: A NIfTI/MGZ/DICOM file or a DICOM folder.
        series_uid: Series to pick in a DICOM folder with several.
    """
    from brrrr.core.io import load_volume

    path = Path(path)
    volume = load_volume(path, series_uid=series_uid)
    data = volume.data
    finite = data if data.dtype.kind in "biu" else data[np.isfinite(data)]
    value_range = [float(finite.min()), float(finite.max())] if finite.size else [None, None]
    return {
        "path": str(path),
        "format": volume.metadata.get("format", "unknown"),
        "shape": list(volume.shape),
        "channels": volume.channels,
        "dtype": str(volume.dtype),
        "spacing_mm": [round(s, 6) for s in volume.spacing],
        "axcodes": volume.axcodes,
        "origin_mm": [round(o, 4) for o in volume.origin],
        "affine": [[round(float(v), 6) for v in row] for row in volume.affine],
        "file_bytes": _file_size(path),
        "memory_bytes": volume.nbytes,
        "value_range": value_range,
        "nonfinite_voxels": int(volume.metadata.get("nonfinite_voxels", 0)),
        "metadata": {k: v for k, v in volume.metadata.items() if _jsonable(v)},
    }


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _print_facts(facts: dict[str, Any]) -> None:
    rows = [
        ("path", facts["path"]),
        ("format", facts["format"]),
        (
            "shape",
            " × ".join(map(str, facts["shape"]))
            + (f"  ({facts['channels']} channels)" if facts["channels"] > 1 else ""),
        ),
        ("dtype", facts["dtype"]),
        ("spacing", " × ".join(f"{s:g}" for s in facts["spacing_mm"]) + " mm"),
        ("axcodes", facts["axcodes"]),
        (
            "value range",
            f"{facts['value_range'][0]:g} … {facts['value_range'][1]:g}"
            if facts["value_range"][0] is not None
            else "no finite voxel",
        ),
        ("file size", f"{facts['file_bytes']:,} bytes"),
        ("in memory", f"{facts['memory_bytes']:,} bytes"),
    ]
    if facts["nonfinite_voxels"]:
        rows.append(("non-finite", f"{facts['nonfinite_voxels']:,} voxels are NaN or Inf"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")
    typer.echo(
        f"{'affine':<{width}}  "
        + f"\n{'':<{width}}  ".join(" ".join(f"{v:10.4f}" for v in row) for row in facts["affine"])
    )


def info(
    path: Annotated[Path, typer.Argument(help="A NIfTI/MGZ/DICOM file or a DICOM folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    series_uid: Annotated[
        str | None, typer.Option(help="Series to read from a DICOM folder.")
    ] = None,
) -> None:
    """Print format, shape, dtype, spacing, orientation, affine, size and value range."""
    facts = describe(path, series_uid=series_uid)
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
    else:
        _print_facts(facts)


def sample(
    out: Annotated[Path, typer.Argument(help="Folder to write the sample into.")] = Path(
        "sample-data"
    ),
    spacing: Annotated[float, typer.Option(help="Voxel size of the phantom in mm.")] = 2.0,
) -> None:
    """Write the built-in sample (head phantom: NIfTI, MGZ, DICOM, CT) and read it back."""
    from brrrr.core import samples
    from brrrr.core.io import save_volume
    from brrrr.core.testing import write_dicom_series

    out.mkdir(parents=True, exist_ok=True)
    extent_mm = (192.0, 228.0, 192.0)
    shape = tuple(max(1, round(e / spacing)) for e in extent_mm)
    image, lesion = samples.lesion_phantom(shape=shape, spacing=spacing, axcodes="RAS")
    written = [
        save_volume(image, out / "phantom_T1w.nii.gz"),
        save_volume(lesion, out / "phantom_desc-lesion_mask.nii.gz"),
        save_volume(image.reorient("LIA"), out / "phantom_T1w.mgz"),
    ]
    dicom_dir = out / "phantom_dicom"
    if dicom_dir.exists():
        for old in dicom_dir.glob("*.dcm"):
            old.unlink()
    write_dicom_series(dicom_dir, image.reorient("LPS").data, image.reorient("LPS").affine)
    written.append(dicom_dir)
    ct = samples.phantom(shape=shape, spacing=spacing, modality="ct", lesion=True)
    written.append(save_volume(ct, out / "phantom_ct.nii.gz"))
    for path in written:
        facts = describe(path)
        typer.echo(
            f"{path.name:<34} {facts['format']:<7} {'×'.join(map(str, facts['shape'])):<12} "
            f"{facts['dtype']:<7} {facts['axcodes']}  {'×'.join(f'{s:g}' for s in facts['spacing_mm'])} mm  "
            f"range {facts['value_range'][0]:g}…{facts['value_range'][1]:g}"
        )
    typer.echo(
        f"wrote {len(written)} sample inputs to {out}; try: brrrr info {out / 'phantom_T1w.nii.gz'}"
    )
