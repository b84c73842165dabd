"""verify: an intact output passes; each kind of damage is reported with the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from brrrr.core.testing import write_nifti
from brrrr.ingest.manifest import Manifest
from brrrr.ingest.verify import verify


@pytest.fixture
def out(converted: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(converted, tmp_path / "out"))


def test_an_intact_output_passes_against_manifest_and_source(
    converted: Path, bids_root: Path
) -> None:
    report = verify(converted, progress=False)
    assert report.ok, report.problems
    assert report.source == str(bids_root)
    manifest = Manifest.load(converted)
    assert report.shards_checked == report.shards_hashed == manifest.num_shards
    assert report.files_checked == 28


def test_a_sample_checks_fewer_files_reproducibly(converted: Path) -> None:
    first = verify(converted, sample=5, seed=1, source="none", progress=False)
    assert first.ok
    assert first.files_checked == 5
    assert first.source is None
    assert first.shards_hashed <= 5
    again = verify(converted, sample=5, seed=1, source="none", progress=False)
    assert again.shards_hashed == first.shards_hashed


def test_a_damaged_shard_is_reported(out: Path, bids_root: Path) -> None:
    manifest = Manifest.load(out)
    relpath = next(path for path, record in manifest.files.items() if record.shard == 1)
    shard = out / manifest.shards[1].path
    data = bytearray(shard.read_bytes())
    offset = data.find((bids_root / relpath).read_bytes())
    assert offset > 0  # embedded unchanged and uncompressed
    data[offset + 100] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = verify(out, progress=False).problems
    assert f"{relpath}: embedded bytes differ from the manifest's SHA-256" in problems
    assert any(p.startswith(f"{manifest.shards[1].path}: SHA-256") for p in problems)


def test_missing_and_unlisted_shards_are_reported(out: Path) -> None:
    shard = next((out / "data").glob("train-00002-*.parquet"))
    shard.rename(out / "data" / "train-99999-of-99999.parquet")
    problems = verify(out, source="none", progress=False).problems
    assert f"data/{shard.name}: missing" in problems
    assert "data/train-99999-of-99999.parquet: a shard the manifest does not list" in problems


def test_a_changed_source_is_reported(out: Path, private_copy: Path) -> None:
    relpath = "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"
    write_nifti(private_copy / relpath, shape=(4, 4, 4))
    problems = verify(out, source=private_copy, progress=False).problems
    assert problems == [f"{relpath}: the source file differs from the embedded bytes"]


def test_no_manifest_no_card(out: Path) -> None:
    (out / "README.md").unlink()
    assert verify(out, progress=False).problems == ["README.md: missing (the dataset card)"]
    (out / "manifest.json").unlink()
    [problem] = verify(out, progress=False).problems
    assert problem.startswith("manifest.json: cannot read it")
