"""Tests of brrrr.preprocess.microscopy.dataset and brrrr.preprocess.microscopy.budget.

The data are synthetic two-photon-like volumes: three tubes (two straight, one
curved) in a noisy background, written in the MiniVess layout with JSON sidecars
giving the voxel size in µm (0.99 × 0.99 × 5 µm, and a 4.97 µm outlier).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from brrrr.core import Volume, load_volume
from brrrr.core.resample import resample
from brrrr.preprocess.errors import MemoryBudgetError, PairingError, SidecarError
from brrrr.preprocess.microscopy.budget import plan_output, resample_into, resample_to_spacing
from brrrr.preprocess.microscopy.dataset import (
    NiftiPair,
    discover_nifti_pairs,
    load_microscopy_volume,
    prepare_dataset,
    read_sidecar_spacing_um,
)

NORMAL_UM = (0.99, 0.99, 5.0)
OUTLIER_UM = (4.97, 4.97, 5.0)


def vessels(shape: tuple[int, int, int], *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(image uint16, label uint8): three separate tubes along I, one of them curved."""
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    nj, nk = shape[1], shape[2]
    centre_k = (nk - 1) / 2
    label = np.zeros(shape, dtype=np.uint8)
    for j0, radius in ((0.2 * nj, 3.0), (0.5 * nj, 2.0)):
        label |= ((j - j0) ** 2 / radius**2 + (k - centre_k) ** 2 / 2.0**2 <= 1).astype(np.uint8)
    curve = 0.8 * nj + 0.08 * nj * np.sin(2 * np.pi * i / shape[0])
    label |= ((j - curve) ** 2 / 2.5**2 + (k - centre_k) ** 2 / 2.0**2 <= 1).astype(np.uint8)
    rng = np.random.default_rng(seed)
    image = 100.0 + 300.0 * label + rng.normal(0, 10, size=shape)
    return np.clip(image, 0, None).astype(np.uint16), label


def write_nifti(path: Path, data: np.ndarray, spacing: tuple[float, ...], unit: str) -> Path:
    image = nib.Nifti1Image(data, np.diag([*spacing, 1.0]))
    image.header.set_xyzt_units(xyz=unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def write_minivess(
    root: Path,
    ids: tuple[str, ...] = ("mv01", "mv02", "mv03"),
    *,
    outlier: str | None = "mv04",
    shape: tuple[int, int, int] = (64, 64, 8),
) -> Path:
    """raw/ + seg/ (``_y``) + json/ sidecars; headers claim 'mm' with µm numbers."""
    for n, name in enumerate((*ids, outlier) if outlier else ids):
        um = OUTLIER_UM if name == outlier else NORMAL_UM
        size = (48, 48, 6) if name == outlier else shape
        image, label = vessels(size, seed=n)
        # The header states the µm numbers but says "mm": the JSON must win.
        write_nifti(root / "raw" / f"{name}.nii.gz", image, um, "mm")
        write_nifti(root / "seg" / f"{name}_y.nii.gz", label, um, "mm")
        (root / "json").mkdir(exist_ok=True)
        sidecar: dict[str, float | str] = {"PixelsPhysicalSizeX": um[0]}
        sidecar |= {"PixelsPhysicalSizeY": um[1], "PixelsPhysicalSizeZ": um[2]}
        sidecar |= {"PhysicalSizeXUnit": "µm"}
        (root / "json" / f"{name}.json").write_text(json.dumps(sidecar), encoding="utf-8")
    return root


def test_synthetic_vessels_have_known_topology() -> None:
    _, label = vessels((64, 64, 8), seed=0)
    assert ndimage.label(label)[1] == 3


def test_discover_minivess_layout(tmp_path: Path) -> None:
    root = write_minivess(tmp_path)
    pairs = discover_nifti_pairs(root)
    assert [p.id for p in pairs] == ["mv01", "mv02", "mv03", "mv04"]
    assert pairs[0] == NiftiPair(
        root / "raw/mv01.nii.gz", root / "seg/mv01_y.nii.gz", "mv01", root / "json/mv01.json"
    )


def test_discover_msd_layout(tmp_path: Path) -> None:
    image, label = vessels((16, 16, 4), seed=0)
    for name in ("b", "a"):
        write_nifti(tmp_path / "imagesTr" / f"{name}.nii.gz", image, NORMAL_UM, "micron")
        write_nifti(tmp_path / "labelsTr" / f"{name}.nii.gz", label, NORMAL_UM, "micron")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "a.json").write_text("{}", encoding="utf-8")
    (tmp_path / "imagesTr" / ".DS_Store").write_bytes(b"")
    pairs = discover_nifti_pairs(tmp_path)
    assert [(p.id, p.image.name, p.label.name) for p in pairs] == [
        ("a", "a.nii.gz", "a.nii.gz"),
        ("b", "b.nii.gz", "b.nii.gz"),
    ]
    assert pairs[0].metadata == tmp_path / "metadata" / "a.json"
    assert pairs[1].metadata is None


def test_unmatched_files_are_all_listed(tmp_path: Path) -> None:
    image, label = vessels((16, 16, 4), seed=0)
    for name in ("mv01", "mv02"):
        write_nifti(tmp_path / "raw" / f"{name}.nii.gz", image, NORMAL_UM, "micron")
    for name in ("mv01_y", "mv03_y", "mv04"):
        write_nifti(tmp_path / "seg" / f"{name}.nii.gz", label, NORMAL_UM, "micron")
    with pytest.raises(PairingError) as info:
        discover_nifti_pairs(tmp_path)
    message = str(info.value)
    assert "3 unmatched or misnamed" in message
    assert "raw/mv02.nii.gz: no label seg/mv02_y" in message
    assert "seg/mv03_y.nii.gz: no image raw/mv03" in message
    assert "seg/mv04.nii.gz: label name does not end in '_y'" in message


def test_no_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PairingError, match=r"no imagesTr/ \+ labelsTr/ or raw/ \+ seg/"):
        discover_nifti_pairs(tmp_path)


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        ({"VoxelSize": [0.99, 0.99, 5.0]}, (0.99, 0.99, 5.0)),
        ({"voxel_size_um": [0.62, 0.62, 5]}, (0.62, 0.62, 5.0)),
        (
            {"PixelsPhysicalSizeX": 0.99, "PixelsPhysicalSizeY": 0.99, "PixelsPhysicalSizeZ": 5},
            (0.99, 0.99, 5.0),
        ),
        (
            {
                "image": {
                    "PhysicalSizeX": 620,
                    "PhysicalSizeY": 620,
                    "PhysicalSizeZ": 5000,
                    "PhysicalSizeXUnit": "nm",
                }
            },
            (0.62, 0.62, 5.0),
        ),
        ({"spacing": [0.00099, 0.00099, 0.005], "unit": "mm"}, (0.99, 0.99, 5.0)),
        ({"Objective": "25x"}, None),
    ],
)
def test_sidecar_voxel_size_forms(tmp_path: Path, sidecar: dict, expected: tuple | None) -> None:
    path = tmp_path / "mv.json"
    path.write_text(json.dumps(sidecar), encoding="utf-8")
    got = read_sidecar_spacing_um(path)
    assert got == pytest.approx(expected) if expected else got is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "cannot read"),
        ('{"VoxelSize": [1, 1, 5], "unit": "furlong"}', "unit"),
        ('{"VoxelSize": [1, 0, 5]}', "3 positive"),
    ],
)
def test_bad_sidecar_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "mv09.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SidecarError, match=problem) as info:
        read_sidecar_spacing_um(path)
    assert "mv09.json" in str(info.value)


def test_units_from_sidecar_win_over_header(tmp_path: Path) -> None:
    root = write_minivess(tmp_path, ("mv01",), outlier=None)
    pair = discover_nifti_pairs(root)[0]
    assert load_volume(pair.image).spacing == pytest.approx((0.99, 0.99, 5.0))  # "mm" header
    volume, decision = load_microscopy_volume(pair.image, sidecar=pair.metadata)
    assert volume.spacing == pytest.approx((0.00099, 0.00099, 0.005))
    assert decision.source == "sidecar"
    assert decision.header_unit == "mm"
    assert decision.header_agrees is False
    assert decision.spacing_um == pytest.approx(NORMAL_UM)


@pytest.mark.parametrize(
    ("unit", "unknown_unit", "source", "spacing_mm"),
    [
        ("micron", "um", "header", 0.00099),
        ("unknown", "um", "header_assumed_um", 0.00099),
        ("unknown", "mm", "header_assumed_mm", 0.99),
        ("mm", "um", "header", 0.99),
    ],
)
def test_units_from_header_without_sidecar(
    tmp_path: Path, unit: str, unknown_unit: str, source: str, spacing_mm: float
) -> None:
    path = write_nifti(tmp_path / "a.nii.gz", np.zeros((4, 4, 2), np.uint16), NORMAL_UM, unit)
    volume, decision = load_microscopy_volume(path, unknown_unit=unknown_unit)  # type: ignore[arg-type]
    assert decision.source == source
    assert volume.spacing[0] == pytest.approx(spacing_mm)
    assert volume.spacing[2] / volume.spacing[0] == pytest.approx(5.0 / 0.99)


def outlier_volume(*, channels: int = 0) -> tuple[Volume, Volume]:
    image, label = vessels((48, 48, 6), seed=3)
    affine = np.diag([*(np.asarray(OUTLIER_UM) / 1e3), 1.0])
    affine[:3, 3] = (0.01, -0.02, 0.003)
    data = np.stack([image] * channels) if channels else image
    return Volume(data, affine, source="mv04.nii.gz"), Volume(label, affine)


def test_memory_budget_refuses_with_projected_shape_and_size() -> None:
    image, _ = outlier_volume()
    with pytest.raises(MemoryBudgetError) as info:
        resample_to_spacing(image, 1.0, memory_budget_bytes=1 << 20)
    message = str(info.value)
    assert message.startswith("mv04.nii.gz: ")
    assert "(239, 239, 30) float32" in message
    assert "6.54 MiB" in message
    assert "1.00 MiB" in message


@pytest.mark.parametrize("channels", [0, 2])
def test_tiled_resample_equals_untiled_exactly(tmp_path: Path, channels: int) -> None:
    image, label = outlier_volume(channels=channels)
    whole = resample_to_spacing(image, 1.0)
    plan = plan_output(image, 1.0, interpolation="linear")
    mapped = np.lib.format.open_memmap(tmp_path / "out.npy", "w+", plan.dtype, plan.shape)
    tiled = resample_to_spacing(image, 1.0, memory_budget_bytes=2 << 20, out=mapped)
    assert np.shares_memory(tiled.data, mapped)
    np.testing.assert_array_equal(np.asarray(tiled.data), whole.data)
    np.testing.assert_array_equal(tiled.affine, whole.affine)
    for depth in (1, 7):
        out = np.empty(plan.shape, plan.dtype)
        assert resample_into(image, plan, out=out, slab_depth=depth) == -(-plan.shape[-1] // depth)
        np.testing.assert_array_equal(out, whole.data)
    # The values are brrrr.core's trilinear resample, bit for bit: it is the same resampler.
    reference = resample(
        image.data, image.affine, target_shape=plan.shape[-3:], target_affine=plan.affine
    )
    np.testing.assert_array_equal(whole.data, reference)
    # Labels: nearest, dtype kept, identical to brrrr.core.
    label_plan = plan_output(label, 1.0, interpolation="nearest")
    out = np.empty(label_plan.shape, label_plan.dtype)
    resample_into(label, label_plan, out=out, slab_depth=4)
    nearest = resample(
        label.data,
        label.affine,
        target_shape=label_plan.shape,
        target_affine=label_plan.affine,
        interpolation="nearest",
    )
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, nearest)


def test_one_slab_over_budget_is_refused() -> None:
    image, _ = outlier_volume()
    plan = plan_output(image, 1.0, interpolation="linear")
    out = np.empty(plan.shape, plan.dtype)
    with pytest.raises(MemoryBudgetError, match="one output slice"):
        resample_to_spacing(image, 1.0, memory_budget_bytes=100_000, out=out)


def test_prepare_dataset_tiles_the_outlier_and_reports(tmp_path: Path) -> None:
    root = write_minivess(tmp_path / "minivess")
    tiled = prepare_dataset(
        root,
        tmp_path / "tiled",
        target_spacing_um=1.0,
        memory_budget_bytes=2 << 20,
        over_budget="tile",
        progress="off",
    )
    whole = prepare_dataset(
        root, tmp_path / "whole", target_spacing_um=1.0, memory_budget_bytes=None, progress="off"
    )
    assert [r.mode for r in tiled] == ["in_memory"] * 3 + ["tiled"]
    assert tiled[3].slabs > 1
    assert [r.mode for r in whole] == ["in_memory"] * 4
    for folder in ("imagesTr", "labelsTr"):
        a = load_volume(tmp_path / "tiled" / folder / "mv04.nii.gz")
        b = load_volume(tmp_path / "whole" / folder / "mv04.nii.gz")
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_allclose(a.affine, b.affine, atol=1e-9)
        assert a.shape == (239, 239, 30)
        assert a.spacing == pytest.approx((0.001, 0.001, 0.001))
        assert a.dtype == (np.float32 if folder == "imagesTr" else np.uint8)

    report = json.loads((tmp_path / "tiled" / "validation_report.json").read_text())
    assert report["target_spacing_um"] == [1.0, 1.0, 1.0]
    assert report["over_budget"] == "tile"
    entries = {entry["id"]: entry for entry in report["volumes"]}
    normal, outlier = entries["mv01"], entries["mv04"]
    assert normal["shape"] == [64, 64, 8]
    assert normal["spacing_um"] == pytest.approx(NORMAL_UM)
    assert normal["spacing_source"] == "sidecar"
    assert normal["header_unit"] == "mm"
    assert normal["prepared_shape"] == [63, 63, 40]
    assert outlier["spacing_um"] == pytest.approx(OUTLIER_UM)
    assert outlier["projected_bytes"] == 239 * 239 * 30 * 4
    assert [e["spacing_outlier"] for e in entries.values()] == [False, False, False, True]

    image, label = vessels((64, 64, 8), seed=0)
    stats = normal["intensity"]
    assert stats["min"] == image.min()
    assert stats["max"] == image.max()
    assert stats["mean"] == pytest.approx(image.mean())
    assert stats["std"] == pytest.approx(image.std())
    assert stats["percentiles"]["p50"] == pytest.approx(np.percentile(image, 50))
    assert list(stats["percentiles"].values()) == sorted(stats["percentiles"].values())
    assert normal["foreground_fraction"] == pytest.approx(label.mean())
    assert normal["prepared_foreground_fraction"] == pytest.approx(label.mean(), abs=0.02)


def test_prepare_dataset_refuses_before_writing_the_pair(tmp_path: Path) -> None:
    root = write_minivess(tmp_path / "minivess", ("mv01",))
    with pytest.raises(MemoryBudgetError, match=r"mv04\.nii\.gz.*\(239, 239, 30\) float32"):
        prepare_dataset(
            root,
            tmp_path / "out",
            target_spacing_um=1.0,
            memory_budget_bytes=2 << 20,
            progress="off",
        )
    assert (tmp_path / "out" / "imagesTr" / "mv01.nii.gz").is_file()
    assert not (tmp_path / "out" / "imagesTr" / "mv04.nii.gz").exists()
    assert not (tmp_path / "out" / "labelsTr" / "mv04.nii.gz").exists()
    assert not list((tmp_path / "out").rglob(".*.part"))
