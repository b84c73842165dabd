"""Microscopy volumes in the MiniVess layout: pairing, units, budgeted resampling, a report.

MiniVess (two-photon rodent cortex vasculature) ships NIfTI volumes of 512×512×(5–110)
voxels, mostly 0.99 or 0.62 µm in-plane and 5 µm between slices, with a per-volume JSON.
Two folder layouts are recognised by :func:`discover_nifti_pairs`::

    root/imagesTr/mv01.nii.gz   root/labelsTr/mv01.nii.gz     (same names)
    root/raw/mv01.nii.gz        root/seg/mv01_y.nii.gz        (labels end in ``_y``)
    root/json/mv01.json  or  root/metadata/mv01.json          (optional, either layout)

Units rule (:func:`resolve_spacing`): a voxel size stated by the per-volume JSON
wins (µm unless the JSON names another unit), because microscopy converters often
write µm numbers into headers that say "mm" or nothing. Without one, the header is
read in its declared unit (``brrrr.core`` already converted it to mm); a header with
no unit is read as ``unknown_unit`` (µm by default). The source used is recorded.

Preparation (:func:`prepare_dataset`) resamples images linearly and labels by nearest
neighbour to one voxel size under a memory budget (refused or tiled, see
:mod:`brrrr.preprocess.microscopy.budget`; resampling a 4.97 µm outlier to 1 µm
isotropic crashed the original project with a ≈ 7.9 GB array), and writes a
validation report JSON.

Example:
    >>> from brrrr.preprocess.microscopy.dataset import prepare_dataset
    >>> report = prepare_dataset("minivess", "prepared", target_spacing_um=1.0,
    ...                          memory_budget_bytes=2**30, over_budget="tile")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from brrrr.core import Volume, load_volume, save_volume
from brrrr.core.files import atomic_write
from brrrr.core.geometry import direction_cosines
from brrrr.preprocess.errors import PairingError, SidecarError
from brrrr.preprocess.microscopy.budget import (
    OutputPlan,
    OverBudget,
    WriteResult,
    check_budget,
    plan_output,
    write_resampled,
)

__all__ = [
    "NiftiPair",
    "SpacingDecision",
    "VolumeReport",
    "discover_nifti_pairs",
    "load_microscopy_volume",
    "prepare_dataset",
    "read_sidecar_spacing_um",
    "resolve_spacing",
    "scale_sidecar_spacing",
]

UnknownUnit = Literal["um", "mm"]
PrepareMode = Literal["in_memory", "tiled", "copied"]
SpacingSource = Literal["sidecar", "header", "header_assumed_um", "header_assumed_mm"]

_NIFTI = re.compile(r"^(?P<stem>.+?)(?P<ext>\.nii(?:\.gz)?)$", re.IGNORECASE)
_LAYOUTS = (("imagesTr", "labelsTr", ""), ("raw", "seg", "_y"))
_SIDECAR_DIRS = ("json", "metadata")
_UNIT_TO_UM = {
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "mm": 1e3,
}
# JSON keys (lower-cased, non-alphanumerics removed) holding a 3-vector or per-axis values.
_VECTOR_KEYS = ("voxelsizeum", "voxelsize", "spacingum", "spacing", "physicalsize")
_AXIS_PREFIXES = ("pixelsphysicalsize", "physicalsize", "voxelsize", "pixelsize", "spacing")
_UNIT_KEYS = (
    "voxelsizeunit",
    "spacingunit",
    "physicalsizeunit",
    "pixelsphysicalsizexunit",
    "physicalsizexunit",
    "unit",
    "units",
)


@dataclass(frozen=True)
class NiftiPair:
    """One image and its label, with the optional JSON sidecar.

    Attributes:
        image: Path of the image volume.
        label: Path of the label volume.
        id: Name shared by both, without extension or ``_y`` suffix (``"mv01"``).
        metadata: Path of ``json/<id>.json`` or ``metadata/<id>.json``, if present.
    """

    image: Path
    label: Path
    id: str
    metadata: Path | None = None


def _nifti_files(folder: Path, suffix: str) -> tuple[dict[str, Path], list[str]]:
    """Map id → path for the NIfTI files of ``folder``; also the problems found."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        match = _NIFTI.match(path.name)
        if path.name.startswith(".") or not path.is_file() or match is None:
            continue
        stem = match["stem"]
        if suffix and not stem.endswith(suffix):
            problems.append(f"{path}: label name does not end in {suffix!r}")
            continue
        key = stem[: len(stem) - len(suffix)] if suffix else stem
        if key in found:
            problems.append(f"{path}: duplicates {found[key].name}")
            continue
        found[key] = path
    return found, problems


def discover_nifti_pairs(root: str | os.PathLike[str]) -> list[NiftiPair]:
    """Find image/label pairs under ``root`` in the MSD or the MiniVess layout.

    Args:
        root: Folder holding ``imagesTr/`` + ``labelsTr/`` (labels named like their
            images) and/or ``raw/`` + ``seg/`` (label of ``raw/mv01.nii.gz`` is
            ``seg/mv01_y.nii.gz``); optional sidecars in ``json/`` or ``metadata/``.

    Returns:
        Pairs sorted by id. Sidecar JSONs without an image are ignored.

    Raises:
        PairingError: No layout found, or files without a partner, misnamed or
            duplicated (all listed in one message).
    """
    root = Path(root)
    if not root.is_dir():
        raise PairingError("folder does not exist", path=root)
    sidecars: dict[str, Path] = {}
    for name in _SIDECAR_DIRS:
        if (root / name).is_dir():
            for path in sorted((root / name).glob("*.json")):
                sidecars.setdefault(path.stem, path)
    pairs: dict[str, NiftiPair] = {}
    problems: list[str] = []
    used = [layout for layout in _LAYOUTS if (root / layout[0]).is_dir()]
    if not used:
        raise PairingError(
            "no imagesTr/ + labelsTr/ or raw/ + seg/ folders found (see "
            "brrrr.preprocess.microscopy.dataset for the layouts)",
            path=root,
        )
    for image_dir, label_dir, suffix in used:
        if not (root / label_dir).is_dir():
            problems.append(f"{root / image_dir}: no {label_dir}/ folder beside it")
            continue
        images, bad_images = _nifti_files(root / image_dir, "")
        labels, bad_labels = _nifti_files(root / label_dir, suffix)
        problems += bad_images + bad_labels
        problems += [
            f"{images[k]}: no label {label_dir}/{k}{suffix}.nii[.gz]"
            for k in sorted(images.keys() - labels.keys())
        ]
        problems += [
            f"{labels[k]}: no image {image_dir}/{k}.nii[.gz]"
            for k in sorted(labels.keys() - images.keys())
        ]
        for key in sorted(images.keys() & labels.keys()):
            if key in pairs:
                problems.append(f"{images[key]}: id {key!r} also in {pairs[key].image}")
                continue
            pairs[key] = NiftiPair(images[key], labels[key], key, sidecars.get(key))
    if problems:
        listing = "\n  ".join(problems)
        raise PairingError(
            f"{len(problems)} unmatched or misnamed file(s):\n  {listing}", path=root
        )
    if not pairs:
        raise PairingError("the image and label folders hold no NIfTI files", path=root)
    return [pairs[key] for key in sorted(pairs)]


# -- units ---------------------------------------------------------------------------
def _normalise(key: str) -> str:
    return re.sub(r"[^0-9a-zµμ]", "", key.lower())


def _find_spacing(document: dict[str, Any]) -> tuple[dict[str, Any], list[str], str | None] | None:
    """Where a sidecar states its voxel size: (owning object, its keys, unit key)."""
    keys = {_normalise(k): k for k in document}
    unit_key = next((keys[k] for k in _UNIT_KEYS if k in keys), None)
    for name in _VECTOR_KEYS:
        if name in keys and isinstance(document[keys[name]], list | tuple):
            return document, [keys[name]], None if name.endswith("um") else unit_key
    for prefix in _AXIS_PREFIXES:
        if all(prefix + axis in keys for axis in "xyz"):
            return document, [keys[prefix + axis] for axis in "xyz"], unit_key
    for value in document.values():
        if isinstance(value, dict) and (inner := _find_spacing(value)) is not None:
            return inner
    return None


def _sidecar_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"cannot read the JSON sidecar: {exc}", path=path) from None
    if not isinstance(document, dict):
        raise SidecarError("the JSON sidecar is not an object", path=path)
    return document


def read_sidecar_spacing_um(path: str | os.PathLike[str]) -> tuple[float, float, float] | None:
    """The voxel size (µm, axes i, j, k) stated by a MiniVess-style JSON sidecar.

    Recognised (case and punctuation ignored, searched in nested objects too): a
    3-vector under ``VoxelSize``/``voxel_size_um``/``spacing``/``PhysicalSize``, or per-axis ``PixelsPhysicalSizeX/Y/Z`` (OME names, as the MiniVess
    converter reads them), ``PhysicalSizeX/Y/Z``, ``VoxelSizeX/Y/Z``…; a unit under
    ``unit``/``VoxelSizeUnit``/``PhysicalSizeXUnit``… (µm, nm or mm), µm when absent.

    Returns:
        ``(si, sj, sk)`` in µm, or ``None`` when the JSON states no voxel size.

    Raises:
        SidecarError: Unreadable JSON, an unknown unit, or non-positive sizes.
    """
    path = Path(path)
    document = _sidecar_document(path)
    found = _find_spacing(document)
    if found is None:
        return None
    owner, keys, unit_key = found
    raw = owner[keys[0]] if len(keys) == 1 else [owner[k] for k in keys]
    unit = "um" if unit_key is None else str(owner.get(unit_key, "um")).strip().lower()
    if unit not in _UNIT_TO_UM:
        raise SidecarError(f"unknown voxel-size unit {unit!r} (use µm, nm or mm)", path=path)
    try:
        values = np.asarray(raw, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise SidecarError(f"voxel size {raw!r} is not numeric", path=path) from None
    if values.size < 3 or not (np.isfinite(values[:3]).all() and (values[:3] > 0).all()):
        raise SidecarError(f"voxel size {raw!r} is not 3 positive numbers", path=path)
    um = values[:3] * _UNIT_TO_UM[unit]
    return (float(um[0]), float(um[1]), float(um[2]))


def scale_sidecar_spacing(document: dict[str, Any], factor: float) -> dict[str, Any]:
    """A copy of a sidecar document with its stated voxel size multiplied by ``factor``."""
    copy = json.loads(json.dumps(document))
    found = _find_spacing(copy)
    if found is not None:
        owner, keys, _ = found
        for key in keys:
            value = owner[key]
            owner[key] = (
                [float(v) * factor for v in value]
                if isinstance(value, list | tuple)
                else float(value) * factor
            )
    return copy


@dataclass(frozen=True)
class SpacingDecision:
    """Which voxel size was used for a volume, and why.

    Attributes:
        spacing_um: The voxel size used, µm along ``(I, J, K)``.
        source: ``"sidecar"`` (the JSON), ``"header"`` (its declared unit), or
            ``"header_assumed_um"``/``"header_assumed_mm"`` (a header without unit).
        header_unit: The header's spatial unit (``"micron"``, ``"mm"``, ``"unknown"``…).
        header_spacing_um: The header's voxel size as its unit (or the assumption) reads.
        sidecar_spacing_um: The JSON's voxel size, if it states one.
        header_agrees: Whether header and JSON agree within 0.1 % (``None`` without JSON).
    """

    spacing_um: tuple[float, float, float]
    source: SpacingSource
    header_unit: str
    header_spacing_um: tuple[float, float, float]
    sidecar_spacing_um: tuple[float, float, float] | None = None
    header_agrees: bool | None = None


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def resolve_spacing(
    volume: Volume,
    *,
    sidecar: str | os.PathLike[str] | None = None,
    unknown_unit: UnknownUnit = "um",
) -> tuple[Volume, SpacingDecision]:
    """Apply the units rule (module docstring) to a volume read by ``load_volume``.

    Args:
        volume: As loaded; its affine is in mm per the header's declared unit.
        sidecar: The volume's JSON sidecar, if any.
        unknown_unit: How to read a header whose spatial unit is ``"unknown"``.

    Returns:
        ``(volume, decision)``: the volume with an affine whose voxel size is the one
        decided (direction kept; origin scaled like the voxel size), and the decision.

    Raises:
        SidecarError: The sidecar is unreadable or invalid.
    """
    unit = str(volume.metadata.get("spatial_unit_on_disk", "unknown"))
    loaded_mm = np.asarray(volume.spacing)
    header_um = loaded_mm * (1.0 if unit == "unknown" and unknown_unit == "um" else 1e3)
    source: SpacingSource = "header"
    if unit == "unknown":
        source = "header_assumed_um" if unknown_unit == "um" else "header_assumed_mm"
    stated = None if sidecar is None else read_sidecar_spacing_um(sidecar)
    chosen_um = header_um if stated is None else np.asarray(stated)
    agrees = None if stated is None else bool(np.allclose(header_um, stated, rtol=1e-3))
    if stated is not None:
        source = "sidecar"
    decision = SpacingDecision(_triple(chosen_um), source, unit, _triple(header_um), stated, agrees)
    ratio = chosen_um / 1e3 / loaded_mm
    if np.allclose(ratio, 1.0, rtol=1e-12):
        return volume, decision
    affine = volume.affine.copy()
    affine[:3, :3] = direction_cosines(affine) * (chosen_um / 1e3)
    affine[:3, 3] *= float(np.median(ratio))
    return volume.with_data(volume.data, affine), decision


def load_microscopy_volume(
    path: str | os.PathLike[str],
    *,
    sidecar: str | os.PathLike[str] | None = None,
    unknown_unit: UnknownUnit = "um",
) -> tuple[Volume, SpacingDecision]:
    """``load_volume`` followed by :func:`resolve_spacing`."""
    return resolve_spacing(load_volume(path), sidecar=sidecar, unknown_unit=unknown_unit)


# -- preparation and report -----------------------------------------------------------
def _intensity_statistics(data: np.ndarray) -> dict[str, Any]:
    values = np.asarray(data, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"finite_voxels": 0, "nonfinite_voxels": int(values.size)}
    q = np.percentile(finite, (1, 5, 25, 50, 75, 95, 99))
    return {
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "percentiles": {
            f"p{p}": float(v) for p, v in zip((1, 5, 25, 50, 75, 95, 99), q, strict=True)
        },
        "nonfinite_voxels": int(values.size - finite.size),
    }


def _fraction(nonzero: int, shape: Sequence[int]) -> float:
    return nonzero / max(1, int(np.prod(shape, dtype=np.int64)))


def _write(
    volume: Volume,
    plan: OutputPlan | None,
    path: Path,
    *,
    budget: int | None,
    over_budget: OverBudget,
) -> WriteResult:
    if plan is None:
        save_volume(Volume(volume.data, volume.affine, source=volume.source), path)
        return WriteResult("in_memory", 1, int(np.count_nonzero(volume.data)))
    return write_resampled(volume, plan, path, memory_budget_bytes=budget, over_budget=over_budget)


@dataclass(frozen=True)
class VolumeReport:
    """Validation facts about one prepared pair: one entry of the report JSON.

    Shapes are array shapes; voxel sizes are µm; ``intensity`` describes the source
    image and the foreground fractions the label before and after resampling (see
    :func:`prepare_dataset` for every field).
    """

    id: str
    image: str
    label: str
    metadata: str | None
    shape: list[int]
    spacing_um: list[float]
    spacing_source: str
    header_unit: str
    header_spacing_um: list[float]
    sidecar_spacing_um: list[float] | None
    header_agrees_with_sidecar: bool | None
    prepared_shape: list[int]
    prepared_spacing_um: list[float]
    projected_bytes: int
    mode: PrepareMode
    slabs: int
    intensity: dict[str, Any]
    foreground_fraction: float
    prepared_foreground_fraction: float
    label_header_matches_image: bool
    spacing_outlier: bool = False


def _prepare_pair(
    pair: NiftiPair,
    out: Path,
    *,
    target_spacing_um: float | Sequence[float] | None,
    budget: int | None,
    over_budget: OverBudget,
    unknown_unit: UnknownUnit,
) -> VolumeReport:
    raw_image = load_volume(pair.image)
    image, decision = resolve_spacing(raw_image, sidecar=pair.metadata, unknown_unit=unknown_unit)
    raw_label = load_volume(pair.label)
    if raw_label.shape != image.shape:
        raise PairingError(
            f"label shape {raw_label.shape} differs from image shape {image.shape} ({pair.image})",
            path=pair.label,
        )
    label = raw_label.with_data(raw_label.data, image.affine)
    plans: tuple[OutputPlan | None, OutputPlan | None] = (None, None)
    if target_spacing_um is not None:
        plans = (
            plan_output(image, target_spacing_um, interpolation="linear"),
            plan_output(label, target_spacing_um, interpolation="nearest"),
        )
        # Both checked before writing either, so a refusal never leaves half a pair.
        for volume, plan in zip((image, label), plans, strict=True):
            assert plan is not None
            check_budget(volume, plan, memory_budget_bytes=budget, over_budget=over_budget)
    written = [
        _write(
            volume, plan, out / folder / f"{pair.id}.nii.gz", budget=budget, over_budget=over_budget
        )
        for volume, plan, folder in zip(
            (image, label), plans, ("imagesTr", "labelsTr"), strict=True
        )
    ]
    prepared = plans[0]
    prepared_shape = list(image.data.shape if prepared is None else prepared.shape)
    prepared_spacing = decision.spacing_um if prepared is None else prepared.spacing_um
    mode: PrepareMode = "copied" if prepared is None else written[0].mode
    if any(w.mode == "tiled" for w in written):
        mode = "tiled"
    return VolumeReport(
        id=pair.id,
        image=str(pair.image),
        label=str(pair.label),
        metadata=None if pair.metadata is None else str(pair.metadata),
        shape=list(image.data.shape),
        spacing_um=list(decision.spacing_um),
        spacing_source=decision.source,
        header_unit=decision.header_unit,
        header_spacing_um=list(decision.header_spacing_um),
        sidecar_spacing_um=None
        if decision.sidecar_spacing_um is None
        else list(decision.sidecar_spacing_um),
        header_agrees_with_sidecar=decision.header_agrees,
        prepared_shape=prepared_shape,
        prepared_spacing_um=list(prepared_spacing),
        projected_bytes=0 if prepared is None else prepared.nbytes,
        mode=mode,
        slabs=max(w.slabs for w in written),
        intensity=_intensity_statistics(image.data),
        foreground_fraction=_fraction(int(np.count_nonzero(raw_label.data)), raw_label.shape),
        prepared_foreground_fraction=_fraction(written[1].nonzero_voxels, prepared_shape[-3:]),
        label_header_matches_image=bool(np.allclose(raw_label.affine, raw_image.affine, atol=1e-6)),
    )


def prepare_dataset(
    source: str | os.PathLike[str] | Sequence[NiftiPair],
    out: str | os.PathLike[str],
    *,
    target_spacing_um: float | Sequence[float] | None,
    memory_budget_bytes: int | None = 2 << 30,
    over_budget: OverBudget = "refuse",
    unknown_unit: UnknownUnit = "um",
    progress: Literal["bar", "off"] = "bar",
) -> list[VolumeReport]:
    """Prepare every pair to one voxel size and write a validation report.

    Writes ``out/imagesTr/<id>.nii.gz`` (linear, float32), ``out/labelsTr/<id>.nii.gz``
    (nearest, label dtype) and ``out/validation_report.json`` (atomically): the settings
    and, per volume, the fields of :class:`VolumeReport`: shape, voxel size and its
    source, header/sidecar voxel sizes, prepared shape and size, how it was computed
    (in memory or tiled, and in how many slabs), intensity statistics of the source
    image (min/max/mean/std, percentiles 1–99), label foreground fraction before and
    after, and ``spacing_outlier`` (an axis more than 25 % off the dataset median).

    Args:
        source: A dataset folder (see :func:`discover_nifti_pairs`) or its pairs.
        out: Output folder (created).
        target_spacing_um: Voxel size in µm (one number or three); ``None`` keeps
            each volume's grid and only fixes its units.
        memory_budget_bytes: Largest output array allowed in memory (2 GiB default);
            ``None`` for no limit.
        over_budget: ``"refuse"`` raises :class:`MemoryBudgetError`; ``"tile"`` writes
            the output through a memory map in slabs that fit the budget.
        unknown_unit: How to read headers without a spatial unit.
        progress: ``"bar"`` shows a tqdm bar over volumes.

    Returns:
        The per-volume reports, in id order.

    Raises:
        PairingError: Unmatched files, or a label whose shape differs from its image.
        MemoryBudgetError: An output over budget with ``over_budget="refuse"``.
        SidecarError: An unreadable or invalid JSON sidecar.
    """
    pairs = discover_nifti_pairs(source) if isinstance(source, str | os.PathLike) else list(source)
    out = Path(out)
    for name in ("imagesTr", "labelsTr"):
        (out / name).mkdir(parents=True, exist_ok=True)
    reports = [
        _prepare_pair(
            pair,
            out,
            target_spacing_um=target_spacing_um,
            budget=memory_budget_bytes,
            over_budget=over_budget,
            unknown_unit=unknown_unit,
        )
        for pair in tqdm(pairs, desc="prepare microscopy", unit="volume", disable=progress == "off")
    ]
    if reports:
        spacings = np.asarray([r.spacing_um for r in reports])
        median = np.median(spacings, axis=0)
        outlier = (np.abs(spacings - median) > 0.25 * median).any(axis=1)
        reports = [
            replace(r, spacing_outlier=bool(o)) for r, o in zip(reports, outlier, strict=True)
        ]
    document = {
        "target_spacing_um": None
        if target_spacing_um is None
        else list(np.broadcast_to(np.asarray(target_spacing_um, dtype=float), (3,)).tolist()),
        "memory_budget_bytes": memory_budget_bytes,
        "over_budget": over_budget,
        "unknown_unit": unknown_unit,
        "volumes": [asdict(r) for r in reports],
    }
    atomic_write(out / "validation_report.json", json.dumps(document, indent=2).encode())
    return reports
