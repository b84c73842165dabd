"""Controlled drift of volumes and datasets, for testing drift monitors.

:func:`apply_drift` corrupts one volume by a ``kind`` at a ``severity`` in [0, 1];
severity 0 returns the input unchanged (same voxels, dtype and affine). As in
TorchIO, the parameters are drawn first (:func:`drift_parameters`, recorded in the
manifest) and then applied by a deterministic function
(:func:`apply_drift_parameters`). Kinds, with their parameter at severity ``s``:

* ``"brighten"`` / ``"darken"``: add / subtract ``s · 0.5 · R`` to every voxel, where
  ``R`` is the volume's robust intensity range (99th − 1st percentile). Two kinds
  rather than a signed severity, so that every schedule runs from 0 to ``s``.
* ``"noise"``: add Gaussian noise of σ = ``s · 0.25 · R`` (seeded).
* ``"resolution"``: Gaussian anti-aliasing (σ = (f − 1) / 2 voxels), linear down-
  sampling by ``f = 1 + 3s`` along each axis, then linear up-sampling back to the
  same grid: the shape and affine stay, the detail is lost.
* ``"topology_erode"`` / ``"topology_dilate"``: ``ceil(3s)`` iterations of binary
  erosion / dilation (6-connected) of a mask's foreground. Erosion cuts thin
  vessels and necks (components split or vanish); dilation fuses vessels that run
  close (components merge). Masks only (bool or integer voxels); labels are kept.
  The iterations count in voxels of the finest axis: an axis whose voxels are ``k``
  times larger takes part in only the first ``round(iterations / k)`` of them, so
  the mask is eroded by about the same distance in mm along every axis (a
  volume with 5 µm slices and 1 µm pixels is not emptied along its slices).
* ``"spacing"``: covariate shift of the geometry: the voxels stay, the affine claims
  voxels ``1 + s`` times larger (about the centre of the field of view). In a
  dataset, the JSON sidecars' voxel sizes are scaled too.

Intensity kinds return float32 (float64 stays float64). :func:`generate_drifted_dataset`
applies a kind along a sequence of files with a gradual schedule (constant, linear,
exponential, step) and writes a :class:`DriftManifest` JSON.

Example:
    >>> import numpy as np
    >>> from brrrr.core import Volume
    >>> from brrrr.preprocess.drift import apply_drift
    >>> vol = Volume(np.arange(64, dtype="f4").reshape(4, 4, 4), np.eye(4))
    >>> round(float(apply_drift(vol, "brighten", 0.5, seed=0).data.mean() - vol.data.mean()), 2)
    15.43
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from tqdm import tqdm

from brrrr.core import Volume, load_volume
from brrrr.core.files import atomic_write
from brrrr.preprocess.errors import DriftError
from brrrr.preprocess.microscopy.dataset import discover_nifti_pairs, scale_sidecar_spacing

__all__ = [
    "DriftConfig",
    "DriftFileRecord",
    "DriftKind",
    "DriftManifest",
    "Schedule",
    "apply_drift",
    "apply_drift_parameters",
    "drift_parameters",
    "generate_drifted_dataset",
    "schedule_severities",
]

DriftKind = Literal[
    "brighten", "darken", "noise", "resolution", "topology_erode", "topology_dilate", "spacing"
]
Schedule = Literal["constant", "linear", "exponential", "step"]

#: Shift (brighten/darken) at severity 1, as a fraction of the robust intensity range.
MAX_SHIFT = 0.5
#: Noise σ at severity 1, as a fraction of the robust intensity range.
MAX_NOISE = 0.25
#: Down-sampling factor at severity 1.
MAX_FACTOR = 4.0
#: Erosion/dilation iterations at severity 1.
MAX_ITERATIONS = 3
#: Claimed voxel-size factor at severity 1 (spacing drift).
MAX_SPACING_FACTOR = 2.0

_IMAGE_KINDS = ("brighten", "darken", "noise", "resolution")
_MASK_KINDS = ("topology_erode", "topology_dilate")
MANIFEST_NAME = "drift_manifest.json"


def _check(kind: str, severity: float) -> None:
    if kind not in get_args(DriftKind):
        raise DriftError(f"unknown drift kind {kind!r}; choose from {get_args(DriftKind)}")
    if not (isinstance(severity, int | float) and 0.0 <= float(severity) <= 1.0):
        raise DriftError(f"severity must be a number in [0, 1], got {severity!r}")


def _robust_range(data: np.ndarray) -> float:
    """99th − 1st percentile of the finite voxels; the std, then 1, if that is 0."""
    values = np.asarray(data, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    low, high = np.percentile(values, (1, 99))
    spread = float(high - low) or float(values.std()) or 1.0
    return spread


def drift_parameters(
    volume: Volume, kind: DriftKind, severity: float, *, seed: int
) -> dict[str, Any]:
    """The parameters :func:`apply_drift` uses for ``kind`` at ``severity``.

    Args:
        volume: The volume to drift (intensity kinds scale with its range).
        kind: One of :data:`DriftKind`.
        severity: In [0, 1].
        seed: Seed of the random parts (the noise field).

    Returns:
        JSON-ready dict with ``kind``, ``severity``, ``seed`` and the kind's numbers
        (``shift``, ``sigma``, ``factor``, ``iterations`` or ``spacing_factor``).

    Raises:
        DriftError: Unknown kind or severity outside [0, 1].
    """
    _check(kind, severity)
    s = float(severity)
    params: dict[str, Any] = {"kind": kind, "severity": s, "seed": int(seed)}
    if kind in ("brighten", "darken", "noise"):
        spread = _robust_range(volume.data) if s > 0 else 0.0
        params["reference_range"] = spread
        if kind == "noise":
            params["sigma"] = s * MAX_NOISE * spread
        else:
            params["shift"] = (1.0 if kind == "brighten" else -1.0) * s * MAX_SHIFT * spread
    elif kind == "resolution":
        params["factor"] = 1.0 + s * (MAX_FACTOR - 1.0)
    elif kind in _MASK_KINDS:
        params["iterations"] = math.ceil(s * MAX_ITERATIONS)
    else:
        params["spacing_factor"] = 1.0 + s * (MAX_SPACING_FACTOR - 1.0)
    return params


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


def _float(data: np.ndarray) -> np.ndarray:
    return data.astype(_float_dtype(data.dtype))


def _channels(data: np.ndarray) -> np.ndarray:
    return data if data.ndim == 4 else data[None]


def _lower_resolution(data: np.ndarray, factor: float) -> np.ndarray:
    from scipy import ndimage

    out = np.empty(_channels(data).shape, dtype=_float_dtype(data.dtype))
    for c, channel in enumerate(_channels(_float(data))):
        shape = np.asarray(channel.shape)
        small = np.maximum(1, np.round(shape / factor)).astype(int)
        smooth = ndimage.gaussian_filter(channel, sigma=(factor - 1.0) / 2.0, mode="nearest")
        down = ndimage.zoom(smooth, small / shape, order=1, mode="nearest", grid_mode=True)
        ndimage.zoom(
            down,
            shape / np.asarray(down.shape),
            output=out[c],
            order=1,
            mode="nearest",
            grid_mode=True,
        )
    return out if data.ndim == 4 else out[0]


def _axis_steps(iterations: int, spacing: Sequence[float]) -> np.ndarray:
    """How many of the iterations each axis takes part in (all, on an isotropic grid)."""
    zooms = np.abs(np.asarray(spacing, dtype=np.float64))
    finest = zooms.min() if zooms.min() > 0 else 1.0
    return np.round(iterations * finest / np.maximum(zooms, finest)).astype(int)


def _cross(axes: np.ndarray) -> np.ndarray:
    """The 6-connected structuring element with arms along ``axes`` only."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1, 1, 1] = True
    for axis in np.flatnonzero(axes):
        index = [1, 1, 1]
        for end in (0, 2):
            index[axis] = end
            structure[tuple(index)] = True
    return structure


def _morphology(
    data: np.ndarray, kind: str, iterations: int, spacing: Sequence[float]
) -> np.ndarray:
    from scipy import ndimage

    steps = _axis_steps(iterations, spacing)
    out = np.empty_like(_channels(data))
    for c, channel in enumerate(_channels(data)):
        if kind == "topology_erode":
            kept = channel != 0
            for step in range(iterations):
                # border_value=1: the world goes on past the field of view, so vessels
                # crossing its edge are not eaten from the edge.
                kept = ndimage.binary_erosion(kept, _cross(steps > step), border_value=1)
            out[c] = np.where(kept, channel, 0)
            continue
        grown = channel.astype(np.int64)
        for step in range(iterations):
            footprint = _cross(steps > step)
            grown = np.where(grown != 0, grown, ndimage.grey_dilation(grown, footprint=footprint))
        out[c] = grown.astype(channel.dtype)
    return out if data.ndim == 4 else out[0]


def _scale_about_centre(affine: np.ndarray, shape: Sequence[int], factor: float) -> np.ndarray:
    centre_voxel = (np.asarray(shape[-3:], dtype=np.float64) - 1.0) / 2.0
    centre = affine[:3, :3] @ centre_voxel + affine[:3, 3]
    scaled = np.array(affine, dtype=np.float64)
    scaled[:3, :3] *= factor
    scaled[:3, 3] = centre - scaled[:3, :3] @ centre_voxel
    return scaled


def apply_drift_parameters(volume: Volume, parameters: Mapping[str, Any]) -> Volume:
    """Apply parameters from :func:`drift_parameters` (deterministic given them).

    Args:
        volume: ``(I, J, K)`` or ``(C, I, J, K)`` volume.
        parameters: As returned by :func:`drift_parameters` or read from a manifest.

    Returns:
        A new volume; the input is not modified. Severity 0 gives an exact copy.

    Raises:
        DriftError: Invalid parameters, or a topology kind on non-mask voxels.
    """
    kind, severity = parameters.get("kind"), parameters.get("severity")
    _check(str(kind), severity)  # type: ignore[arg-type]
    if severity == 0:
        return Volume(
            volume.data.copy(), volume.affine, metadata=volume.metadata, source=volume.source
        )
    data = volume.data
    if kind in ("brighten", "darken"):
        out = _float(data)
        out += out.dtype.type(parameters["shift"])
    elif kind == "noise":
        rng = np.random.default_rng(int(parameters["seed"]))
        out = _float(data)
        out += rng.normal(0.0, float(parameters["sigma"]), size=data.shape).astype(out.dtype)
    elif kind == "resolution":
        out = _lower_resolution(data, float(parameters["factor"]))
    elif kind in _MASK_KINDS:
        if data.dtype.kind not in "biu":
            raise DriftError(
                f"{kind} drift needs a mask (bool or integer voxels), got {data.dtype}",
                path=volume.source,
            )
        out = _morphology(data, str(kind), int(parameters["iterations"]), volume.spacing)
    else:
        affine = _scale_about_centre(
            volume.affine, volume.shape, float(parameters["spacing_factor"])
        )
        return Volume(data.copy(), affine, metadata=volume.metadata, source=volume.source)
    return Volume(out, volume.affine, metadata=volume.metadata, source=volume.source)


def apply_drift(volume: Volume, kind: DriftKind, severity: float, *, seed: int) -> Volume:
    """Drift one volume by ``kind`` at ``severity`` (see the module docstring).

    Args:
        volume: ``(I, J, K)`` or ``(C, I, J, K)`` volume; a mask for topology kinds.
        kind: One of :data:`DriftKind`.
        severity: In [0, 1]; 0 returns an exact copy.
        seed: Seed of the random parts; the same seed gives the same output.

    Returns:
        The drifted volume.

    Raises:
        DriftError: Unknown kind, severity outside [0, 1], or non-mask topology input.
    """
    return apply_drift_parameters(volume, drift_parameters(volume, kind, severity, seed=seed))


# -- datasets ------------------------------------------------------------------------
def schedule_severities(
    n: int, *, severity: float, schedule: Schedule, step_at: float = 0.5, rate: float = 5.0
) -> np.ndarray:
    """Severity of each of ``n`` files in sequence, at position ``t = i / (n - 1)``.

    * ``constant``: ``severity`` everywhere.
    * ``linear``: ``severity · t``, from 0 to ``severity``.
    * ``exponential``: ``severity · (e^{rate·t} − 1) / (e^{rate} − 1)``: slow, then fast.
    * ``step``: 0 before ``t = step_at``, ``severity`` from there on.

    All are non-decreasing; linear and exponential strictly increase when severity > 0.

    Returns:
        ``(n,)`` float64 in [0, severity].
    """
    if schedule not in get_args(Schedule):
        raise DriftError(f"unknown schedule {schedule!r}; choose from {get_args(Schedule)}")
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.ones(n)
    if schedule == "constant":
        fraction = np.ones(n)
    elif schedule == "linear":
        fraction = t
    elif schedule == "exponential":
        fraction = np.expm1(rate * t) / np.expm1(rate)
    else:
        fraction = (t >= step_at).astype(np.float64)
    return np.clip(float(severity) * fraction, 0.0, float(severity))


@dataclass(frozen=True)
class DriftConfig:
    """What :func:`generate_drifted_dataset` does.

    Attributes:
        kind: One of :data:`DriftKind`.
        severity: Final (or constant) severity in [0, 1].
        seed: Base seed; file ``i`` uses a seed derived from ``(seed, i)``.
        schedule: ``"constant"``, ``"linear"``, ``"exponential"`` or ``"step"``.
        step_at: Where the step happens, as a fraction of the sequence (step only).
        rate: Steepness of the exponential schedule (> 0).
    """

    kind: DriftKind
    severity: float
    seed: int = 0
    schedule: Schedule = "constant"
    step_at: float = 0.5
    rate: float = 5.0

    def __post_init__(self) -> None:
        _check(self.kind, self.severity)
        if self.schedule not in get_args(Schedule):
            raise DriftError(
                f"unknown schedule {self.schedule!r}; choose from {get_args(Schedule)}"
            )
        if not (0.0 <= self.step_at <= 1.0 and self.rate > 0):
            raise DriftError(
                f"step_at must be in [0, 1] and rate > 0, got {self.step_at}, {self.rate}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DriftConfig:
        """Build from a dict (``params.yaml``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise DriftError(f"unknown drift config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(values))


@dataclass(frozen=True)
class DriftFileRecord:
    """One file of a drifted dataset.

    Attributes:
        path: Path of the written file, relative to the output folder.
        source: Path of the original file.
        index: Position in the sequence (a pair's image and label share it).
        role: ``"image"``, ``"label"``, ``"sidecar"`` or ``"volume"`` (plain folder).
        severity: This file's severity from the schedule.
        seed: This file's seed.
        affected: Whether the file was changed (severity > 0 and the kind applies).
        parameters: The drift parameters applied (empty when not affected).
    """

    path: str
    source: str
    index: int
    role: Literal["image", "label", "sidecar", "volume"]
    severity: float
    seed: int
    affected: bool
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftManifest:
    """What was drifted, how, and where: the JSON written beside a drifted dataset."""

    kind: DriftKind
    severity: float
    seed: int
    schedule: Schedule
    step_at: float
    rate: float
    source: str
    files: list[DriftFileRecord]
    version: int = 1

    @property
    def affected_files(self) -> list[str]:
        """Relative paths of the files that were changed."""
        return [record.path for record in self.files if record.affected]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``affected_files`` included for readers)."""
        return {**asdict(self), "affected_files": self.affected_files}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as JSON, atomically."""
        return atomic_write(path, json.dumps(self.to_dict(), indent=2).encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DriftManifest:
        """Read a manifest written by :meth:`save`.

        Raises:
            DriftError: Not a readable drift manifest.
        """
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
            values.pop("affected_files", None)
            values["files"] = [DriftFileRecord(**record) for record in values["files"]]
            return cls(**values)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DriftError(f"not a drift manifest: {exc}", path=path) from None


def _file_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _applies(kind: str, role: str) -> bool:
    if role == "volume" or kind == "spacing":
        return True
    return (role == "image" and kind in _IMAGE_KINDS) or (role == "label" and kind in _MASK_KINDS)


def _save_like(volume: Volume, original: Path, destination: Path, spacing_factor: float) -> None:
    """Write drifted voxels with the original file's header (units, codes, descrip kept)."""
    import nibabel as nib

    image: Any = nib.load(original)
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise DriftError(
            f"only NIfTI files can be drifted, got {type(image).__name__}", path=original
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    if spacing_factor != 1.0:
        affine = _scale_about_centre(affine, volume.shape, spacing_factor)
    data = volume.data if volume.data.ndim == 3 else np.moveaxis(volume.data, 0, -1)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    header = image.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_slope_inter(1.0, 0.0)
    drifted = type(image)(data, affine, header=header)
    # The constructor only updates the codes it must; write this affine into both forms.
    drifted.set_sform(affine, code=int(header["sform_code"]) or 2)
    drifted.set_qform(affine, code=int(header["qform_code"]) or 1)
    payload = drifted.to_bytes()
    if destination.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    atomic_write(destination, payload)


def _sequence(src: Path) -> list[list[tuple[Path, str]]]:
    """Files per step of the sequence: a pair (image, label, sidecar) or one volume."""
    if any((src / name).is_dir() for name in ("imagesTr", "raw")):
        steps = []
        for pair in discover_nifti_pairs(src):
            step = [(pair.image, "image"), (pair.label, "label")]
            steps.append(step + ([] if pair.metadata is None else [(pair.metadata, "sidecar")]))
        return steps
    files = sorted(p for p in src.iterdir() if p.name.lower().endswith((".nii", ".nii.gz")))
    if not files:
        raise DriftError("no NIfTI files (and no imagesTr/ or raw/ folder) found", path=src)
    return [[(path, "volume")] for path in files]


def generate_drifted_dataset(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: DriftConfig | Mapping[str, Any],
    *,
    progress: Literal["bar", "off"] = "bar",
) -> DriftManifest:
    """Write a drifted copy of a dataset, the drift growing along the file sequence.

    The sequence is the folder's NIfTI files sorted by name, or its image/label pairs
    sorted by id (layouts of :func:`brrrr.preprocess.microscopy.discover_nifti_pairs`).
    Step ``i`` gets severity ``schedule_severities(n, …)[i]`` and a seed derived from
    ``(config.seed, i)``. Intensity, noise and resolution kinds change images, topology
    kinds change labels, spacing changes both (and the sidecars' voxel sizes); other
    files are copied byte for byte. Drifted files keep their original header (units,
    codes) except for the voxel dtype and, for spacing, the affine.

    Args:
        src: Folder of NIfTI files, or a MiniVess/MSD-layout dataset.
        out: Output folder (created); files keep their relative paths.
        config: A :class:`DriftConfig` or a mapping of its fields.
        progress: ``"bar"`` shows a tqdm bar over the sequence.

    Returns:
        The manifest, also written atomically to ``out/drift_manifest.json``.

    Raises:
        DriftError: Invalid config, no files, or a topology kind on non-mask voxels.
        PairingError: Unmatched images and labels.
    """
    cfg = config if isinstance(config, DriftConfig) else DriftConfig.from_mapping(config)
    src, out = Path(src), Path(out)
    steps = _sequence(src)
    severities = schedule_severities(
        len(steps), severity=cfg.severity, schedule=cfg.schedule, step_at=cfg.step_at, rate=cfg.rate
    )
    records: list[DriftFileRecord] = []
    for index, step in enumerate(
        tqdm(steps, desc=f"drift {cfg.kind}", unit="step", disable=progress == "off")
    ):
        severity, seed = float(severities[index]), _file_seed(cfg.seed, index)
        factor = 1.0 + severity * (MAX_SPACING_FACTOR - 1.0) if cfg.kind == "spacing" else 1.0
        for path, role in step:
            relative = path.relative_to(src)
            destination = out / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            affected = severity > 0 and _applies(cfg.kind, role)
            parameters: dict[str, Any] = {}
            if not affected:
                atomic_write(destination, path.read_bytes())
            elif role == "sidecar":
                document = json.loads(path.read_text(encoding="utf-8"))
                parameters = {"kind": cfg.kind, "severity": severity, "spacing_factor": factor}
                scaled = scale_sidecar_spacing(document, factor)
                atomic_write(destination, json.dumps(scaled, indent=2).encode())
            else:
                volume = load_volume(path)
                parameters = drift_parameters(volume, cfg.kind, severity, seed=seed)
                drifted = apply_drift_parameters(volume, parameters)
                _save_like(drifted, path, destination, factor)
            records.append(
                DriftFileRecord(
                    relative.as_posix(),
                    str(path),
                    index,
                    role,
                    severity,
                    seed,
                    affected,
                    parameters,
                )
            )
    manifest = DriftManifest(
        cfg.kind, cfg.severity, cfg.seed, cfg.schedule, cfg.step_at, cfg.rate, str(src), records
    )
    manifest.save(out / MANIFEST_NAME)
    return manifest
