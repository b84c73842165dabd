"""Tests of brrrr.preprocess.drift on synthetic vessel volumes and masks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, stats

from brrrr.core import Volume, load_volume
from brrrr.preprocess.drift import (
    DriftConfig,
    DriftKind,
    DriftManifest,
    apply_drift,
    drift_parameters,
    generate_drifted_dataset,
    schedule_severities,
)
from brrrr.preprocess.errors import DriftError
from brrrr.preprocess.microscopy.dataset import load_microscopy_volume

KINDS: tuple[str, ...] = get_args(DriftKind)
MASK_KINDS = ("topology_erode", "topology_dilate")
SPACING_MM = (0.00099, 0.00099, 0.005)


def tubes_mask(shape: tuple[int, int, int] = (64, 64, 8)) -> np.ndarray:
    """Four separate tubes along I: thick (j=16), thin (j=32, radius 1), and two 1 voxel apart.

    Erosion removes the thin tube; dilation fuses the last two.
    """
    _, j, k = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    mask = np.zeros(shape, dtype=np.uint8)
    for j0, rj, rk in ((16, 4.0, 3.0), (32, 1.0, 1.0), (44, 3.0, 2.0), (50, 3.0, 2.0)):
        mask |= ((j - j0) ** 2 / rj**2 + (k - 3.5) ** 2 / rk**2 <= 1).astype(np.uint8)
    return mask


def vessel_image(seed: int = 0) -> Volume:
    mask = tubes_mask()
    noise = np.random.default_rng(seed).normal(0.0, 10.0, mask.shape)
    data = np.clip(100.0 + 300.0 * mask + noise, 0, None).astype(np.uint16)
    return Volume(data, np.diag([*SPACING_MM, 1.0]))


def betti0(mask: np.ndarray) -> int:
    return int(ndimage.label(mask != 0)[1])


@pytest.mark.parametrize("kind", KINDS)
def test_severity_zero_is_exactly_the_identity(kind: str) -> None:
    volume = vessel_image()
    if kind in MASK_KINDS:
        volume = volume.with_data(tubes_mask())
    drifted = apply_drift(volume, kind, 0.0, seed=7)  # type: ignore[arg-type]
    assert drifted.dtype == volume.dtype
    np.testing.assert_array_equal(drifted.data, volume.data)
    np.testing.assert_array_equal(drifted.affine, volume.affine)
    assert drifted.data is not volume.data


@pytest.mark.parametrize("kind", ["brighten", "darken"])
@pytest.mark.parametrize("severity", [0.3, 0.6, 1.0])
def test_intensity_drift_is_detected_by_ks(kind: str, severity: float) -> None:
    volume = vessel_image()
    drifted = apply_drift(volume, kind, severity, seed=0)  # type: ignore[arg-type]
    before, after = volume.data.ravel().astype(np.float64), drifted.data.ravel()
    assert stats.ks_2samp(before, after).pvalue < 0.05
    sign = 1 if kind == "brighten" else -1
    assert sign * (after.mean() - before.mean()) > 0


def test_intensity_drift_below_threshold_is_small() -> None:
    volume = vessel_image()
    drifted = apply_drift(volume, "brighten", 0.01, seed=0)
    shift = float(drifted.data.mean() - volume.data.mean())
    assert 0 < shift < 0.01 * 0.5 * 400


def test_noise_and_resolution_drift() -> None:
    volume = vessel_image()
    noisy = apply_drift(volume, "noise", 0.5, seed=3)
    assert np.std(noisy.data - volume.data) == pytest.approx(
        drift_parameters(volume, "noise", 0.5, seed=3)["sigma"], rel=0.05
    )
    blurred = apply_drift(volume, "resolution", 0.5, seed=0)
    assert blurred.shape == volume.shape
    np.testing.assert_array_equal(blurred.affine, volume.affine)
    detail = np.abs(np.diff(volume.data.astype(np.float64), axis=1)).mean()
    assert np.abs(np.diff(blurred.data, axis=1)).mean() < 0.7 * detail


@pytest.mark.parametrize(("kind", "expected"), [("topology_erode", 3), ("topology_dilate", 3)])
def test_topology_drift_changes_betti0(kind: str, expected: int) -> None:
    mask = Volume(tubes_mask(), np.diag([*SPACING_MM, 1.0]))
    assert betti0(mask.data) == 4
    for severity in (0.3, 0.6, 1.0):
        drifted = apply_drift(mask, kind, severity, seed=0)  # type: ignore[arg-type]
        assert drifted.dtype == np.uint8
        assert set(np.unique(drifted.data)) <= {0, 1}
        assert betti0(drifted.data) != 4
    assert betti0(apply_drift(mask, kind, 0.3, seed=0).data) == expected  # type: ignore[arg-type]


def test_topology_drift_needs_a_mask() -> None:
    with pytest.raises(DriftError, match="needs a mask"):
        apply_drift(
            vessel_image().with_data(np.zeros((4, 4, 4), "f4")), "topology_erode", 0.5, seed=0
        )


def test_spacing_drift_scales_affine_about_centre() -> None:
    volume = vessel_image()
    drifted = apply_drift(volume, "spacing", 0.5, seed=0)
    np.testing.assert_array_equal(drifted.data, volume.data)
    assert np.asarray(drifted.spacing) == pytest.approx(1.5 * np.asarray(volume.spacing))
    centre = (np.asarray(volume.shape) - 1) / 2
    world = [v.affine[:3, :3] @ centre + v.affine[:3, 3] for v in (volume, drifted)]
    np.testing.assert_allclose(world[0], world[1], atol=1e-12)


@pytest.mark.parametrize(
    ("kind", "severity", "problem"),
    [
        ("sharpen", 0.5, "unknown drift kind"),
        ("noise", 1.5, r"in \[0, 1\]"),
        ("noise", -0.1, r"in \[0, 1\]"),
    ],
)
def test_invalid_requests(kind: str, severity: float, problem: str) -> None:
    with pytest.raises(DriftError, match=problem):
        apply_drift(vessel_image(), kind, severity, seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("schedule", ["constant", "linear", "exponential", "step"])
def test_schedules_are_monotone(schedule: str) -> None:
    values = schedule_severities(9, severity=0.8, schedule=schedule)  # type: ignore[arg-type]
    assert values.shape == (9,)
    assert np.all(np.diff(values) >= 0)
    assert values[-1] == pytest.approx(0.8)
    if schedule in ("linear", "exponential"):
        assert values[0] == 0
        assert np.all(np.diff(values) > 0)
    if schedule == "step":
        assert values.tolist() == [0.0] * 4 + [0.8] * 5


def write_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    volume = vessel_image()
    for index in range(n):
        image = nib.Nifti1Image(volume.data, np.diag([0.99, 0.99, 5.0, 1.0]))
        image.header.set_xyzt_units(xyz="micron")
        nib.save(image, root / f"scan{index:02d}.nii.gz")
    return root


@pytest.mark.parametrize("schedule", ["linear", "exponential", "step"])
def test_gradual_drift_increases_along_the_sequence(tmp_path: Path, schedule: str) -> None:
    src = write_folder(tmp_path / "src", 5)
    config = {"kind": "darken", "severity": 1.0, "seed": 1, "schedule": schedule}
    manifest = generate_drifted_dataset(src, tmp_path / "out", config, progress="off")
    original = load_volume(src / "scan00.nii.gz").data.astype(np.float64)
    effect = [
        float(original.mean() - load_volume(tmp_path / "out" / r.path).data.mean())
        for r in manifest.files
    ]
    severities = [r.severity for r in manifest.files]
    assert np.all(np.diff(severities) >= 0)
    assert np.all(np.diff(effect) >= -1e-3)
    assert effect[0] == pytest.approx(0.0, abs=1e-3)
    assert effect[-1] > 50
    if schedule != "step":
        assert np.all(np.diff(effect) > 0)
    assert manifest.affected_files == [r.path for r in manifest.files if r.severity > 0]
    # Drifted files keep their header's unit (µm here); untouched files are byte copies.
    out = tmp_path / "out"
    header = nib.load(out / manifest.files[-1].path).header
    assert header.get_xyzt_units()[0] == "micron"  # type: ignore[attr-defined]
    assert (out / "scan00.nii.gz").read_bytes() == (src / "scan00.nii.gz").read_bytes()


def write_minivess(root: Path, n: int) -> Path:
    volume, mask = vessel_image(), tubes_mask()
    for index in range(n):
        for folder, name, data in (
            ("raw", f"mv{index:02d}", volume.data),
            ("seg", f"mv{index:02d}_y", mask),
        ):
            (root / folder).mkdir(parents=True, exist_ok=True)
            nib.save(
                nib.Nifti1Image(data, np.diag([0.99, 0.99, 5.0, 1.0])),
                root / folder / f"{name}.nii.gz",
            )
        (root / "json").mkdir(exist_ok=True)
        sidecar = {"VoxelSize": [0.99, 0.99, 5.0], "unit": "µm"}
        (root / "json" / f"mv{index:02d}.json").write_text(json.dumps(sidecar))
    return root


def test_manifest_round_trip_and_pairs(tmp_path: Path) -> None:
    src = write_minivess(tmp_path / "src", 4)
    config = DriftConfig(kind="topology_erode", severity=1.0, seed=5, schedule="linear")
    manifest = generate_drifted_dataset(src, tmp_path / "out", config, progress="off")
    loaded = DriftManifest.load(tmp_path / "out" / "drift_manifest.json")
    assert loaded == manifest
    document = json.loads((tmp_path / "out" / "drift_manifest.json").read_text())
    assert {"kind", "severity", "seed", "schedule", "files", "affected_files"} <= set(document)
    assert manifest.affected_files == [
        "seg/mv01_y.nii.gz",
        "seg/mv02_y.nii.gz",
        "seg/mv03_y.nii.gz",
    ]
    assert [r.parameters.get("iterations") for r in manifest.files if r.role == "label"] == [
        None,
        1,
        2,
        3,
    ]
    components = [
        betti0(load_volume(tmp_path / "out" / f"seg/mv{i:02d}_y.nii.gz").data) for i in range(4)
    ]
    assert components[0] == 4
    assert all(c != 4 for c in components[1:])
    for record in manifest.files:
        if record.role in ("image", "sidecar"):
            assert (tmp_path / "out" / record.path).read_bytes() == Path(record.source).read_bytes()


def test_spacing_drift_updates_sidecars(tmp_path: Path) -> None:
    src = write_minivess(tmp_path / "src", 2)
    config = {"kind": "spacing", "severity": 0.5, "seed": 0, "schedule": "constant"}
    generate_drifted_dataset(src, tmp_path / "out", config, progress="off")
    _, decision = load_microscopy_volume(
        tmp_path / "out" / "raw" / "mv01.nii.gz", sidecar=tmp_path / "out" / "json" / "mv01.json"
    )
    assert decision.spacing_um == pytest.approx((1.485, 1.485, 7.5))
    assert decision.header_agrees is True


@pytest.mark.parametrize("kind", ["noise", "resolution", "brighten"])
def test_determinism_with_a_seed(tmp_path: Path, kind: str) -> None:
    src = write_folder(tmp_path / "src", 3)
    config = {"kind": kind, "severity": 0.7, "seed": 11, "schedule": "linear"}
    runs = [
        generate_drifted_dataset(src, tmp_path / name, config, progress="off")
        for name in ("a", "b")
    ]
    assert runs[0] == runs[1]
    for record in runs[0].files:
        assert (tmp_path / "a" / record.path).read_bytes() == (
            tmp_path / "b" / record.path
        ).read_bytes()
    if kind == "noise":
        other = generate_drifted_dataset(
            src, tmp_path / "c", {**config, "seed": 12}, progress="off"
        )
        assert other.files[-1].seed != runs[0].files[-1].seed
        assert (tmp_path / "c" / "scan02.nii.gz").read_bytes() != (
            tmp_path / "a" / "scan02.nii.gz"
        ).read_bytes()


def test_bad_config_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(DriftError, match="unknown drift config keys"):
        DriftConfig.from_mapping({"kind": "noise", "severity": 0.5, "strength": 2})
    with pytest.raises(DriftError, match="unknown schedule"):
        DriftConfig(kind="noise", severity=0.5, schedule="cubic")  # type: ignore[arg-type]
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(DriftError, match="not a drift manifest"):
        DriftManifest.load(tmp_path / "m.json")


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_topology_drift_on_an_isotropic_grid_is_scipys_morphology(kind: str) -> None:
    mask = Volume(tubes_mask(), np.eye(4))
    iterations = 2  # ceil(3 * 0.5)
    drifted = apply_drift(mask, kind, 0.5, seed=0).data  # type: ignore[arg-type]
    cross = ndimage.generate_binary_structure(3, 1)
    if kind == "topology_erode":
        expected = ndimage.binary_erosion(mask.data != 0, cross, iterations, border_value=1)
    else:
        expected = ndimage.binary_dilation(mask.data != 0, cross, iterations)
    np.testing.assert_array_equal(drifted != 0, expected)


def test_topology_erosion_counts_in_mm_on_an_anisotropic_grid() -> None:
    # A sheet 3 slices thick, slices 4x thicker than the pixels (as in two-photon stacks).
    data = np.zeros((20, 20, 9), dtype=np.uint8)
    data[2:18, 2:18, 3:6] = 1
    sheet = Volume(data, np.diag([1.0, 1.0, 4.0, 1.0]))
    eroded = apply_drift(sheet, "topology_erode", 1.0, seed=0).data  # 3 iterations
    # Three pixels come off each side in-plane, one slice (round(3 / 4)) off each face.
    np.testing.assert_array_equal(np.argwhere(eroded).min(axis=0), [5, 5, 4])
    np.testing.assert_array_equal(np.argwhere(eroded).max(axis=0), [14, 14, 4])
    # Counting in voxels of every axis, the sheet would be gone.
    gone = ndimage.binary_erosion(
        data != 0, ndimage.generate_binary_structure(3, 1), 3, border_value=1
    )
    assert not gone.any()
