"""Tests of brrrr.preprocess.neurovfm.metadata and brrrr.preprocess.neurovfm.cache on tiny synthetic heads."""

from __future__ import annotations

import json
import mmap
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import brrrr.preprocess.neurovfm.prepare as prepare_api
from brrrr.core import samples, save_volume
from brrrr.core.io.nifti import NiftiStream
from brrrr.core.testing import write_broken_nifti, write_dicom_series
from brrrr.preprocess.errors import (
    CacheBuildError,
    CacheCorruptError,
    CacheError,
    CacheMissError,
    MetadataError,
)
from brrrr.preprocess.neurovfm import _cache_entry
from brrrr.preprocess.neurovfm.cache import CacheManager, entry_key, hash_source, settings_for_mode
from brrrr.preprocess.neurovfm.metadata import DatasetMetadata
from brrrr.preprocess.neurovfm.prepare import load_image, prepare_for_inference
from brrrr.preprocess.neurovfm.settings import PrepareSettings, View

SHAPE = (16, 16, 8)
SPACING = (4.0, 4.0, 8.0)
MODES = {"s2": "ct", "s3/ct_series": "ct", "*": "mri"}
NAMES = ["s1/flair", "s1/t1", "s2/head_ct", "s3/ct_series"]


def make_dataset(root: Path) -> Path:
    """Two MRI and two CT images in three studies (one CT a DICOM folder), plus clutter."""
    raw = root / "raw"
    for study in ("s1", "s2", "s3"):
        (raw / study).mkdir(parents=True)
    t1 = samples.phantom(shape=SHAPE, spacing=SPACING, seed=1)
    save_volume(t1, raw / "s1" / "t1.nii.gz")
    flair = samples.phantom(shape=SHAPE, spacing=SPACING, axcodes="LPS", seed=2)
    save_volume(flair, raw / "s1" / "flair.nii.gz")
    ct = samples.phantom(shape=SHAPE, spacing=SPACING, modality="ct", seed=3)
    save_volume(ct, raw / "s2" / "head_ct.nii.gz")
    ct2 = samples.phantom(shape=SHAPE, spacing=SPACING, modality="ct", seed=4)
    write_dicom_series(
        raw / "s3" / "ct_series", ct2.data, ct2.affine, modality="CT", rescale_intercept=-1024
    )
    (raw / "s3" / "notes.txt").write_text("not an image")
    (raw / "s1" / "t1.json").write_text("{}")
    DatasetMetadata.from_directory(root, MODES).save(root / "metadata.json")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_dataset(tmp_path_factory.mktemp("built"))
    report = CacheManager(root).build(num_workers=0, progress="none")
    assert sorted(report.built) == NAMES
    return root


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "copy"))


# -- metadata ---------------------------------------------------------------------------
def test_metadata_layout_modes_and_json_roundtrip(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    meta = DatasetMetadata.load(root / "metadata.json")
    assert [r.name for r in meta.images] == NAMES
    assert {r.name: r.mode for r in meta.images} == {
        "s1/flair": "mri",
        "s1/t1": "mri",
        "s2/head_ct": "ct",
        "s3/ct_series": "ct",
    }
    assert meta.get("s3", "ct_series").path == "raw/s3/ct_series"
    assert list(meta.studies) == ["s1", "s2", "s3"]
    assert DatasetMetadata.from_directory(root, MODES) == meta
    by_callable = DatasetMetadata.from_directory(
        root, lambda study, name: "ct" if "ct" in name else "mri"
    )
    assert by_callable == meta


def test_metadata_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="raw/"):
        DatasetMetadata.from_directory(tmp_path, MODES)
    root = make_dataset(tmp_path / "d")
    with pytest.raises(MetadataError, match=r"flair\.nii\.gz: no mode_mapping key"):
        DatasetMetadata.from_directory(root, {"s2": "ct", "s3": "ct"})
    with pytest.raises(MetadataError, match="'pet'"):
        DatasetMetadata.from_directory(root, {"*": "pet"})
    save_volume(samples.phantom(shape=SHAPE, spacing=SPACING), root / "raw" / "s1" / "t1.nii")
    with pytest.raises(MetadataError, match="two images named 't1'"):
        DatasetMetadata.from_directory(root, MODES)
    with pytest.raises(MetadataError, match="not found"):
        DatasetMetadata.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(MetadataError, match="regenerate"):
        DatasetMetadata.load(tmp_path / "bad.json")


# -- cache contents ---------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_entries_are_the_prepared_volumes_in_uint8(built: Path, name: str) -> None:
    cache = CacheManager(built)
    study, image = name.split("/")
    record = cache.metadata.get(study, image)
    img, mask, view = prepare_for_inference(load_image(built / record.path), mode=record.mode)
    entry = cache.load_image(study, image, verify="checksum")
    base: object = entry.data
    while isinstance(base, np.ndarray | memoryview):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    assert isinstance(base, mmap.mmap), "the data is mapped, not read"
    assert entry.data.dtype == np.uint8
    assert not entry.data.flags.writeable
    np.testing.assert_array_equal(entry.data, np.rint(img * 255).astype(np.uint8))
    np.testing.assert_array_equal(entry.mask, mask.astype(np.uint8))
    assert entry.view == view
    np.testing.assert_allclose(entry.view.affine, view.affine)
    if record.mode == "ct":
        assert entry.windows == ("brain", "blood", "bone")
        blood = cache.load_image(study, image, window="blood")
        np.testing.assert_array_equal(blood.data, entry.data[1])
    else:
        assert entry.windows == ("mri",)
        assert cache.load_image(study, image, window="mri").data.ndim == 3
        with pytest.raises(CacheError, match="'bone'"):
            cache.load_image(study, image, window="bone")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_entries_equal_those_of_load_image_then_prepare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """Entries are built by the streaming load_and_prepare; the two-step route writes the
    same bytes."""
    for study, name, modality in (("s1", "t1", "t1"), ("s2", "head_ct", "ct")):
        (tmp_path / "raw" / study).mkdir(parents=True)
        volume = samples.phantom(shape=SHAPE, spacing=SPACING, modality=modality, axcodes="LPS")
        save_volume(volume, tmp_path / "raw" / study / f"{name}{suffix}")
    DatasetMetadata.from_directory(tmp_path, MODES).save(tmp_path / "metadata.json")
    streamed: list[str] = []
    stream = prepare_api.prepare_stream

    def spy(nifti: NiftiStream, **kwargs: Any) -> tuple[Any, Any, View]:
        streamed.append(Path(nifti.source).name)
        return stream(nifti, **kwargs)

    monkeypatch.setattr(prepare_api, "prepare_stream", spy)
    CacheManager(tmp_path).build(num_workers=0, progress="none")
    assert sorted(streamed) == [f"head_ct{suffix}", f"t1{suffix}"]
    entries = tmp_path / "cache" / "entries"
    one_call = {p.relative_to(entries): p.read_bytes() for p in entries.rglob("*") if p.is_file()}

    def two_steps(path: str, **kwargs: Any) -> tuple[Any, Any, View]:
        return prepare_for_inference(load_image(path), **kwargs)

    monkeypatch.setattr(_cache_entry, "load_and_prepare", two_steps)
    report = CacheManager(tmp_path).build(num_workers=0, force=True, progress="none")
    assert sorted(report.rebuilt) == ["s1/t1", "s2/head_ct"]
    two_step = {p.relative_to(entries): p.read_bytes() for p in entries.rglob("*") if p.is_file()}
    assert len(one_call) == 6
    assert one_call == two_step


def test_files_are_plain_npy_and_a_json_manifest(built: Path) -> None:
    folder = built / "cache"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["images"]) == NAMES
    for record in manifest["images"].values():
        entry = folder / "entries" / record["key"]
        assert sorted(p.name for p in entry.iterdir()) == ["entry.json", "image.npy", "mask.npy"]
        for name in ("image.npy", "mask.npy"):
            array = np.load(entry / name, allow_pickle=False)
            assert array.dtype == np.uint8
    assert not list(folder.rglob("*.part")), "no temporary files left behind"


def test_stats_and_missing_image(built: Path) -> None:
    cache = CacheManager(built)
    stats = cache.stats()
    assert (stats.images, stats.cached, stats.missing, stats.failed) == (4, 4, 0, 0)
    assert stats.entries == 4
    assert stats.orphaned == 0
    assert stats.bytes > 0
    with pytest.raises(CacheMissError, match="s9/x is not in the cache"):
        cache.load_image("s9", "x")
    d, h, w = cache.record("s1", "t1")["shape"][1:]
    assert cache.token_counts()["s1/t1"] == d // 4 * (h // 16) * (w // 16)


# -- keys and rebuild rules -------------------------------------------------------------
def test_second_build_reuses_everything(copy: Path) -> None:
    report = CacheManager(copy).build(num_workers=0, progress="none")
    assert sorted(report.reused) == NAMES
    assert report.built == report.rebuilt == []


def test_key_depends_on_content_mode_and_relevant_settings(built: Path) -> None:
    digest = hash_source(built / "raw" / "s1" / "t1.nii.gz")
    base = PrepareSettings()
    key = entry_key(digest, "mri", settings_for_mode(base, "mri"))
    assert key == CacheManager(built).record("s1", "t1")["key"]
    assert key != entry_key(digest, "ct", settings_for_mode(base, "ct"))
    ct_change = PrepareSettings(foreground_hu=-300.0)
    assert key == entry_key(digest, "mri", settings_for_mode(ct_change, "mri"))
    assert key != entry_key(digest, "mri", settings_for_mode(PrepareSettings(fit="pad"), "mri"))


def test_changing_a_ct_setting_rebuilds_only_ct(copy: Path) -> None:
    settings = PrepareSettings(foreground_hu=-300.0)
    report = CacheManager(copy, settings=settings).build(num_workers=0, progress="none")
    assert sorted(report.built) == ["s2/head_ct", "s3/ct_series"]
    assert sorted(report.reused) == ["s1/flair", "s1/t1"]
    cache = CacheManager(copy, settings=settings)
    assert cache.stats().orphaned == 2
    with pytest.raises(CacheMissError, match="other preparation settings"):
        CacheManager(copy).load_image("s2", "head_ct")
    CacheManager(copy).load_image("s1", "t1")  # MRI entries serve both
    assert cache.prune() == 2
    assert cache.stats().cached == 4


def test_editing_a_source_rebuilds_that_image_only(copy: Path) -> None:
    other = samples.phantom(shape=SHAPE, spacing=SPACING, seed=9)
    save_volume(other, copy / "raw" / "s1" / "t1.nii.gz")
    report = CacheManager(copy).build(num_workers=0, progress="none")
    assert report.built == ["s1/t1"]
    assert sorted(report.reused) == ["s1/flair", "s2/head_ct", "s3/ct_series"]


# -- robustness -------------------------------------------------------------------------
def test_corrupted_entry_is_detected_and_rebuilt(copy: Path) -> None:
    cache = CacheManager(copy)
    path = copy / "cache" / "entries" / cache.record("s2", "head_ct")["key"] / "image.npy"
    good = path.read_bytes()
    blob = bytearray(good)
    blob[-100] ^= 0xFF  # one voxel flipped: same size, same header
    path.write_bytes(bytes(blob))
    with pytest.raises(CacheCorruptError, match=r"image\.npy: image\.npy does not match"):
        cache.load_image("s2", "head_ct", verify="checksum")
    report = CacheManager(copy).build(num_workers=0, progress="none")
    assert report.rebuilt == ["s2/head_ct"]
    assert len(report.reused) == 3
    assert path.read_bytes() == good
    path.write_bytes(good[: len(good) // 2])  # truncated: caught even without checksums
    with pytest.raises(CacheCorruptError, match="rebuild"):
        CacheManager(copy).load_image("s2", "head_ct")


def test_killed_build_resumes_with_only_the_missing_entries(tmp_path: Path) -> None:
    root = make_dataset(tmp_path)
    helper = Path(__file__).with_name("cache_kill_worker.py")
    proc = subprocess.run(
        [sys.executable, str(helper), str(root), "3"], capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()
    entries = root / "cache" / "entries"
    complete = sorted(p.name for p in entries.iterdir() if (p / "entry.json").exists())
    assert len(complete) == 2
    assert not (root / "cache" / "manifest.json").exists()
    report = CacheManager(root).build(num_workers=0, progress="none")
    assert len(report.reused) == 2
    assert len(report.built) == 2
    assert report.rebuilt == []
    cache = CacheManager(root)
    assert cache.stats().cached == 4
    assert {cache.record(*n.split("/"))["key"] for n in report.reused} == set(complete)
    for name in NAMES:
        cache.load_image(*name.split("/"), verify="checksum")


def test_failed_images_are_reported_and_the_rest_cached(copy: Path) -> None:
    broken = copy / "raw" / "s4" / "bad.nii.gz"
    broken.parent.mkdir()
    write_broken_nifti(broken, "truncated_gzip")
    DatasetMetadata.from_directory(copy, MODES).save(copy / "metadata.json")
    with pytest.raises(CacheBuildError, match=r"1 of 5 images(.|\n)*s4/bad:"):
        CacheManager(copy).build(num_workers=0, progress="none")
    cache = CacheManager(copy)
    stats = cache.stats()
    assert (stats.cached, stats.missing, stats.failed) == (4, 1, 1)
    with pytest.raises(CacheMissError, match="last build failed"):
        cache.load_image("s4", "bad")
    save_volume(samples.phantom(shape=SHAPE, spacing=SPACING), broken)
    report = CacheManager(copy).build(num_workers=0, progress="none", on_error="record")
    assert report.built == ["s4/bad"]
    assert report.failed == {}


def test_parallel_build_equals_serial_build(built: Path, copy: Path) -> None:
    report = CacheManager(copy).build(num_workers=2, force=True, progress="none")
    assert sorted(report.rebuilt) == NAMES
    serial, parallel = CacheManager(built), CacheManager(copy)
    for name in NAMES:
        a, b = serial.record(*name.split("/")), parallel.record(*name.split("/"))
        assert a["key"] == b["key"]
        assert a["files"] == b["files"]
