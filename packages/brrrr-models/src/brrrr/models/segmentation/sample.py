"""The built-in stroke sample: synthetic cases written as NIfTI files, ready to segment and score.

**Synthetic data, not patients** (see :mod:`brrrr.models.segmentation.synthetic`). The sample
is what the demos, the DVC pipeline and the tutorials segment offline. Layout::

    OUT/images/case-000_dwi.nii.gz    DWI (b = 1000), float32
    OUT/images/case-000_adc.nii.gz    ADC (10⁻⁶ mm²/s), float32
    OUT/images/case-000_flair.nii.gz  FLAIR, float32
    OUT/labels/case-000.nii.gz        lesion mask, uint8 (0/1), on the DWI grid
    OUT/sample.json                   what was drawn (seeds, grid, lesion counts)

``brrrr segment batch OUT/images --out PRED`` segments every case of ``images/`` and
``brrrr segment evaluate PRED OUT/labels`` scores them: the case ids pair by the rule of
:mod:`brrrr.models.segmentation.evaluate`.

A complete earlier sample with the same settings is reused as it is; anything else in ``OUT``
is replaced only when ``OUT`` holds an earlier sample (its ``sample.json``) or nothing. The
sample is drawn in a temporary folder beside ``OUT`` and renamed into place, so ``OUT`` is
never left half written.

Example:
    >>> sample = write_stroke_sample("stroke-sample", cases=2)  # doctest: +SKIP
    >>> [case.case_id for case in sample.cases]  # doctest: +SKIP
    ['case-000', 'case-001']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brrrr.models.segmentation.errors import SegmentationError
from brrrr.models.segmentation.synthetic import Grid, synthetic_stroke_case

__all__ = [
    "CHANNELS",
    "SAMPLE_GRID",
    "SampleCase",
    "StrokeSample",
    "find_cases",
    "write_stroke_sample",
]

#: The channels written per case, in the file-name suffix order.
CHANNELS = ("dwi", "adc", "flair")

#: The grid of the sample: the shipped model's 3 mm grid stored LPS (as many DWI series are),
#: so the segmenter reorients on the way in and back out.
SAMPLE_GRID = Grid((56, 68, 56), (3.0, 3.0, 3.0), "LPS")

_MANIFEST = "sample.json"
_FORMAT = "brrrr-stroke-sample/1"


@dataclass(frozen=True)
class SampleCase:
    """The files of one case of the sample.

    Attributes:
        case_id: ``case-000``, ``case-001``…
        dwi: DWI file.
        adc: ADC file.
        flair: FLAIR file, or None when a folder of cases has none for this case.
        mask: Ground-truth mask file, or None when it is not known.
    """

    case_id: str
    dwi: Path
    adc: Path
    flair: Path | None
    mask: Path | None

    def inputs(self) -> dict[str, Path]:
        """The named inputs of a segmenter: ``dwi``, ``adc`` (and ``flair`` when present)."""
        named = {"dwi": self.dwi, "adc": self.adc}
        if self.flair is not None:
            named["flair"] = self.flair
        return named


@dataclass(frozen=True)
class StrokeSample:
    """A written sample.

    Attributes:
        root: The sample folder.
        cases: Its cases, in case-id order.
        reused: True when a complete earlier sample was kept as it was.
    """

    root: Path
    cases: tuple[SampleCase, ...]
    reused: bool = False

    @property
    def images_dir(self) -> Path:
        """The folder of input channels (``brrrr segment batch`` reads it)."""
        return self.root / "images"

    @property
    def labels_dir(self) -> Path:
        """The folder of ground-truth masks (``brrrr segment evaluate`` reads it)."""
        return self.root / "labels"


def _settings(cases: int, seed: int, grid: Grid) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "cases": cases,
        "seed": seed,
        "shape": list(grid.shape),
        "spacing_mm": [float(grid.spacing)] * 3
        if isinstance(grid.spacing, float | int)
        else [float(s) for s in grid.spacing],
        "axcodes": grid.axcodes,
    }


def _case_files(root: Path, case_id: str) -> SampleCase:
    images = root / "images"
    return SampleCase(
        case_id=case_id,
        dwi=images / f"{case_id}_dwi.nii.gz",
        adc=images / f"{case_id}_adc.nii.gz",
        flair=images / f"{case_id}_flair.nii.gz",
        mask=root / "labels" / f"{case_id}.nii.gz",
    )


def _complete(root: Path, settings: dict[str, Any]) -> StrokeSample | None:
    """The sample already in ``root`` when it was written with ``settings`` and is whole."""
    try:
        manifest = json.loads((root / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("settings") != settings:
        return None
    cases = tuple(_case_files(root, entry["case_id"]) for entry in manifest.get("cases", []))
    files = [path for case in cases for path in (case.dwi, case.adc, case.flair, case.mask)]
    if len(cases) != settings["cases"] or not all(p is not None and p.is_file() for p in files):
        return None
    return StrokeSample(root, cases, reused=True)


def _replaceable(root: Path) -> bool:
    return not root.exists() or (
        root.is_dir() and (not any(root.iterdir()) or (root / _MANIFEST).is_file())
    )


def write_stroke_sample(
    out: str | os.PathLike[str],
    *,
    cases: int = 3,
    seed: int = 0,
    grid: Grid = SAMPLE_GRID,
) -> StrokeSample:
    """Write (or reuse) the synthetic stroke sample in ``out``.

    Args:
        out: The sample folder (created; see the module docstring for the layout).
        cases: How many cases (case ``i`` is drawn from seed ``seed + i``).
        seed: Seed of the first case.
        grid: The DWI/ADC/FLAIR grid of every case.

    Returns:
        The :class:`StrokeSample`.

    Raises:
        SegmentationError: ``cases`` < 1, ``seed`` < 0, or ``out`` holds files that are not
            an earlier sample (nothing is deleted then).
    """
    from brrrr.core.io import save_volume

    root = Path(out)
    if cases < 1:
        raise SegmentationError(f"a stroke sample needs at least one case, not {cases}", path=root)
    if seed < 0:
        raise SegmentationError(f"the seed of a stroke sample is >= 0, not {seed}", path=root)
    settings = _settings(int(cases), int(seed), grid)
    earlier = _complete(root, settings)
    if earlier is not None:
        return earlier
    if not _replaceable(root):
        raise SegmentationError(
            f"exists and is not a stroke sample (no {_MANIFEST}); pick an empty or new folder",
            path=root,
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the sample is not
        (staging / "images").mkdir()
        (staging / "labels").mkdir()
        written: list[SampleCase] = []
        entries: list[dict[str, Any]] = []
        for index in range(int(cases)):
            case_id = f"case-{index:03d}"
            drawn = synthetic_stroke_case(
                int(seed) + index, shape=grid.shape, spacing=grid.spacing, axcodes=grid.axcodes
            )
            files = _case_files(staging, case_id)
            for channel, path in zip(CHANNELS, (files.dwi, files.adc, files.flair), strict=True):
                assert path is not None
                save_volume(getattr(drawn, channel), path)
            assert files.mask is not None
            save_volume(drawn.mask, files.mask)
            written.append(_case_files(root, case_id))
            entries.append(
                {
                    "case_id": case_id,
                    "seed": drawn.seed,
                    "lesions_drawn": drawn.n_lesions,
                    "lesion_voxels": int(drawn.mask.data.sum()),
                }
            )
        manifest = {"settings": settings, "cases": entries, "synthetic": True}
        (staging / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StrokeSample(root, tuple(written))


def _case_id(name: str, suffix: str) -> str | None:
    for extension in (".nii.gz", ".nii"):
        if name.endswith(extension):
            stem = name[: -len(extension)]
            if stem.lower().endswith(f"_{suffix}"):
                return stem[: -len(suffix) - 1]
    return None


def find_cases(
    images_dir: str | os.PathLike[str], *, channels: Sequence[str] = ("dwi", "adc")
) -> list[SampleCase]:
    """The cases of a folder of channel files ``<case>_<channel>.nii[.gz]``.

    A case is any ``<case>_dwi.nii[.gz]``; its other required ``channels`` must be there too,
    ``<case>_flair`` is used when present. Masks are not looked for (``mask`` is None).

    Args:
        images_dir: The folder (for example a sample's ``images/``).
        channels: Channels every case must have.

    Returns:
        The cases, sorted by case id.

    Raises:
        SegmentationError: The folder is missing or holds no ``*_dwi`` file, or a case lacks
            a required channel (the file expected is named).
    """
    folder = Path(images_dir)
    if not folder.is_dir():
        raise SegmentationError("not a folder of case images", path=folder)
    by_channel: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        for channel in {*channels, "dwi", "flair"}:
            case_id = _case_id(path.name, channel)
            if case_id is not None:
                by_channel.setdefault(channel, {})[case_id] = path
    dwi = by_channel.get("dwi", {})
    if not dwi:
        raise SegmentationError(
            "holds no <case>_dwi.nii.gz file (expected <case>_dwi, <case>_adc and "
            "optionally <case>_flair per case)",
            path=folder,
        )
    found = []
    for case_id in sorted(dwi):
        for channel in channels:
            if case_id not in by_channel.get(channel, {}):
                missing = folder / f"{case_id}_{channel}.nii.gz"
                raise SegmentationError(
                    f"case {case_id} has no {channel} image (this file is missing)", path=missing
                )
        found.append(
            SampleCase(
                case_id=case_id,
                dwi=dwi[case_id],
                adc=by_channel.get("adc", {}).get(case_id, folder / f"{case_id}_adc.nii.gz"),
                flair=by_channel.get("flair", {}).get(case_id),
                mask=None,
            )
        )
    return found
