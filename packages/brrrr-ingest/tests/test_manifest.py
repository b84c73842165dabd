"""The manifest round-trips through JSON and refuses what is not a manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from brrrr.ingest.errors import ManifestError
from brrrr.ingest.manifest import FileRecord, Manifest, ShardRecord


def test_round_trip(tmp_path: Path) -> None:
    manifest = Manifest(
        source={"root": "/data/ds", "name": "ds"},
        options={"level": "file"},
        num_shards=1,
        num_rows=2,
        shards={0: ShardRecord(0, "data/train-00000-of-00001.parquet", 2, 10, "ab", "cd")},
        files={"sub-01/anat/x.nii.gz": FileRecord("ef", 5, 0, 1, "image")},
        skipped=[{"path": "sub-02/anat/y.nii.gz", "reason": "empty"}],
        complete=True,
    )
    manifest.save(tmp_path)
    assert Manifest.load(tmp_path) == manifest


@pytest.mark.parametrize(
    "text", ["not json", '{"format": "other"}', '{"format": "brrrr-ingest-manifest", "version": 1}']
)
def test_refuses_what_is_not_a_manifest(tmp_path: Path, text: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=r"manifest\.json: not a valid brrrr-ingest manifest"):
        Manifest.load(tmp_path)


def test_missing_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="brrrr bids to-hf"):
        Manifest.load(tmp_path)
