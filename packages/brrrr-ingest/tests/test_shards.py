"""to_hf: byte-budget shards with embedded bytes that load back identically; manifest;
resume after an exception or a killed process without redoing finished shards."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Nifti, load_dataset

from brrrr.core.testing import write_nifti
from brrrr.ingest.bids import load_bids
from brrrr.ingest.errors import BidsError, ManifestError
from brrrr.ingest.manifest import Manifest
from brrrr.ingest.shards import parse_size, plan_shards, to_hf

OPTIONS = {"shard_bytes": "40KB", "row_group_bytes": "10KB", "progress": False}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(out: Path):  # type: ignore[no-untyped-def]
    return load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")


def test_round_trip_gives_the_same_rows_and_voxels(converted: Path, bids_root: Path) -> None:
    loaded = _load(converted)
    original = load_bids(bids_root)
    assert loaded.num_rows == original.num_rows == 28
    columns = [c for c in original.column_names if c != "image"]
    assert loaded.select_columns(columns).to_list() == original.select_columns(columns).to_list()
    assert isinstance(loaded.features["image"], Nifti)
    for row in loaded:
        np.testing.assert_array_equal(
            np.asarray(row["image"].dataobj), np.asarray(nib.load(bids_root / row["path"]).dataobj)
        )
    raw = loaded.cast_column("image", Nifti(decode=False))[0]["image"]
    assert raw["path"] == loaded[0]["path"]
    assert raw["bytes"] == (bids_root / loaded[0]["path"]).read_bytes()


def test_shards_follow_the_byte_budget_and_the_manifest_is_exact(
    converted: Path, bids_root: Path
) -> None:
    manifest = Manifest.load(converted)
    assert manifest.complete
    assert manifest.num_rows == 28
    assert manifest.num_shards == len(manifest.shards) > 3
    per_shard: dict[int, int] = {}
    for relpath, record in manifest.files.items():
        assert record.sha256 == _sha(bids_root / relpath)
        per_shard[record.shard] = per_shard.get(record.shard, 0) + record.bytes
    row_groups = 0
    for index, shard in manifest.shards.items():
        path = converted / shard.path
        assert shard.path == f"data/train-{index:05d}-of-{manifest.num_shards:05d}.parquet"
        assert (shard.sha256, shard.bytes) == (_sha(path), path.stat().st_size)
        metadata = pq.ParquetFile(path).metadata
        assert metadata.num_rows == shard.rows
        row_groups += metadata.num_row_groups
        assert per_shard[index] <= 40_000 or shard.rows == 1
    assert sum(s.rows for s in manifest.shards.values()) == 28
    assert len(manifest.files) == 28
    assert row_groups > manifest.num_shards  # row groups bound memory inside a shard
    assert not list((converted / "data").glob(".*"))


def test_session_rows_round_trip_with_lists_of_images(bids_root: Path, tmp_path: Path) -> None:
    to_hf(bids_root, tmp_path / "out", level="session", **OPTIONS)  # type: ignore[arg-type]
    loaded = _load(tmp_path / "out")
    assert loaded.num_rows == 4
    row = loaded[3]
    assert [f["path"] for f in row["T2w_files"]] == [
        "sub-02/ses-2/anat/sub-02_ses-2_run-1_T2w.nii.gz",
        "sub-02/ses-2/anat/sub-02_ses-2_run-2_T2w.nii.gz",
    ]
    for image, facts in zip(row["T2w"], row["T2w_files"], strict=True):
        source = nib.load(bids_root / facts["path"])
        np.testing.assert_array_equal(np.asarray(image.dataobj), np.asarray(source.dataobj))


class _Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_without_redoing_finished_shards(
    bids_root: Path, tmp_path: Path, converted: Path
) -> None:
    out = tmp_path / "out"

    def stop_after_two(manifest: Manifest, record: object, reused: bool) -> None:
        if len(manifest.shards) == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        to_hf(bids_root, out, on_shard=stop_after_two, **OPTIONS)  # type: ignore[arg-type]
    partial = Manifest.load(out)
    assert not partial.complete
    assert sorted(partial.shards) == [0, 1]
    finished = {i: (out / s.path).stat().st_mtime_ns for i, s in partial.shards.items()}

    result = to_hf(bids_root, out, **OPTIONS)  # type: ignore[arg-type]
    assert result.reused == [0, 1]
    assert result.written == list(range(2, result.manifest.num_shards))
    assert {
        i: (out / result.manifest.shards[i].path).stat().st_mtime_ns for i in (0, 1)
    } == finished
    # The resumed output is the same, byte for byte, as an uninterrupted run's.
    reference = Manifest.load(converted)
    assert [s.sha256 for s in result.manifest.shards.values()] == [
        s.sha256 for s in reference.shards.values()
    ]


_KILLER = """
import os, signal, sys
from brrrr.ingest.shards import to_hf

def die(manifest, record, reused):
    if record.index == 1:
        os.kill(os.getpid(), signal.SIGKILL)

to_hf(sys.argv[1], sys.argv[2], shard_bytes="40KB", row_group_bytes="10KB", on_shard=die, progress=False)
"""


def test_a_killed_process_resumes(bids_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _KILLER, str(bids_root), str(out)], check=False)
    assert done.returncode == -9
    assert sorted(Manifest.load(out).shards) == [0, 1]
    result = to_hf(bids_root, out, **OPTIONS)  # type: ignore[arg-type]
    assert result.reused == [0, 1]
    assert result.manifest.complete


def test_a_read_failing_mid_shard_leaves_finished_shards_and_no_partial_file(
    bids_root: Path, tmp_path: Path, converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import brrrr.ingest._shard_writer as shards

    # A file of shard 2 fails to read, in the thread that reads ahead of the writer.
    target = next(p for p, r in Manifest.load(converted).files.items() if r.shard == 2)
    real = shards._read_column

    def failing(entries, *, root):  # type: ignore[no-untyped-def]
        if any(path.endswith(target) for _, _, path in entries):
            raise BidsError("the disk went away", path=target)
        return real(entries, root=root)

    out = tmp_path / "out"
    monkeypatch.setattr(shards, "_read_column", failing)
    with pytest.raises(BidsError, match="the disk went away"):
        to_hf(bids_root, out, **OPTIONS)  # type: ignore[arg-type]
    partial = Manifest.load(out)
    assert sorted(partial.shards) == [0, 1]
    assert not partial.complete
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        Path(partial.shards[i].path).name for i in (0, 1)
    ]
    monkeypatch.setattr(shards, "_read_column", real)
    result = to_hf(bids_root, out, **OPTIONS)  # type: ignore[arg-type]
    assert result.reused == [0, 1]
    reference = Manifest.load(converted)
    assert [s.sha256 for s in result.manifest.shards.values()] == [
        s.sha256 for s in reference.shards.values()
    ]


_FILE_SIZE_LIMIT = """
import resource, signal, sys
from brrrr.ingest.errors import OutputError
from brrrr.ingest.shards import to_hf

# A write past RLIMIT_FSIZE then fails with EFBIG (File too large), as on a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
try:
    to_hf(sys.argv[1], sys.argv[2], shard_bytes="40KB", row_group_bytes="10KB", progress=False)
except OutputError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_shard_that_cannot_be_written_is_named_and_leaves_no_partial_file(
    bids_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT, str(bids_root), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.match(r"OutputError \S+/data/train-00000-of-\d+\.parquet: cannot write", done.stdout)
    assert "too large" in done.stdout.lower()
    assert list((out / "data").iterdir()) == []  # no shard, no .part


def test_a_source_file_that_vanishes_mid_run_is_named(
    private_copy: Path, converted: Path, tmp_path: Path
) -> None:
    # Same tree and options as `converted`: the same plan. A file of shard 2 is deleted once
    # shard 0 is written, before the reader (one row group ahead) gets to it.
    victim = next(p for p, r in Manifest.load(converted).files.items() if r.shard == 2)

    def remove(manifest: Manifest, record: object, reused: bool) -> None:
        if getattr(record, "index", None) == 0:
            (private_copy / victim).unlink()

    with pytest.raises(BidsError, match=re.escape(victim) + ": cannot read: No such file"):
        to_hf(private_copy, tmp_path / "out", on_shard=remove, **OPTIONS)  # type: ignore[arg-type]
    assert not list((tmp_path / "out" / "data").glob("*.part"))


def test_conversion_does_not_import_datasets(bids_root: Path, tmp_path: Path) -> None:
    # datasets (with pandas, pydicom…) costs seconds of start-up; shards need only pyarrow.
    code = (
        "import sys\n"
        "from brrrr.ingest import to_hf\n"
        f"to_hf({str(bids_root)!r}, {str(tmp_path / 'out')!r}, progress=False)\n"
        "assert 'datasets' not in sys.modules, 'datasets was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_changed_source_file_redoes_only_its_shard(private_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = to_hf(private_copy, out, **OPTIONS)  # type: ignore[arg-type]
    relpath = "sub-02/ses-2/anat/sub-02_ses-2_FLAIR.nii.gz"
    write_nifti(private_copy / relpath, shape=(12, 14, 12), seed=5)
    again = to_hf(private_copy, out, **OPTIONS)  # type: ignore[arg-type]
    changed = again.manifest.files[relpath].shard
    assert first.manifest.num_shards == again.manifest.num_shards
    assert again.written == [changed]
    assert again.manifest.files[relpath].sha256 == _sha(private_copy / relpath)


def test_other_options_need_overwrite(converted: Path, bids_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    to_hf(bids_root, out, suffixes=["T1w"], **OPTIONS)  # type: ignore[arg-type]
    options = {**OPTIONS, "shard_bytes": "1MB"}
    with pytest.raises(ManifestError, match=r"other options \(shard_bytes\).*overwrite"):
        to_hf(bids_root, out, suffixes=["T1w"], **options)  # type: ignore[arg-type]
    result = to_hf(bids_root, out, suffixes=["T1w"], mode="overwrite", **options)  # type: ignore[arg-type]
    assert result.manifest.num_shards == 1
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert json.loads((out / "manifest.json").read_text())["num_rows"] == 4


def test_plan_shards() -> None:
    assert plan_shards([10, 10, 10, 10], shard_bytes=20) == [range(0, 2), range(2, 4)]
    assert plan_shards([50, 5, 5], shard_bytes=20) == [range(0, 1), range(1, 3)]
    assert plan_shards([5, 50, 5], shard_bytes=20) == [range(0, 1), range(1, 2), range(2, 3)]
    assert plan_shards([], shard_bytes=20) == [range(0, 0)]


@pytest.mark.parametrize(
    ("text", "expected"), [("500MB", 500 * 10**6), ("2 GiB", 2 << 30), ("1e3", 1000), (7, 7)]
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1MB", "0", "5XB"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)
