"""OpenNeuro fetcher against a local S3 look-alike (ListObjectsV2 pages, globs, snapshot tag)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from brrrr.ingest.errors import FetchError, UnsafePathError
from brrrr.ingest.fetch.http import make_client
from brrrr.ingest.fetch.openneuro import fetch_openneuro, latest_snapshot, list_openneuro
from brrrr.ingest.fetch.testing import LISTING, FakeDataServer, Fault
from brrrr.ingest.retry import RetryPolicy

DS = "ds004884"
FILES = {
    "CHANGES": b"1.0.2 2024-01-02\n  - fixed sidecars\n\n1.0.1 2023-06-01\n  - first\n",
    "dataset_description.json": b'{"Name": "synthetic", "BIDSVersion": "1.8.0"}',
    "participants.tsv": b"participant_id\nsub-M2001\nsub-M2002\n",
    "sub-M2001/ses-1/anat/sub-M2001_ses-1_T1w.nii.gz": b"\x1f\x8b" + bytes(range(256)) * 40,
    "sub-M2001/ses-1/anat/sub-M2001_ses-1_T1w.json": b'{"EchoTime": 0.003}',
    "sub-M2001/ses-1/func/sub-M2001_ses-1_task-x_bold.nii.gz": b"\x1f\x8b" + b"b" * 3000,
    "sub-M2002/ses-2/anat/sub-M2002_ses-2_FLAIR.nii.gz": b"\x1f\x8b" + b"f" * 4000,
    "derivatives/lesion_masks/sub-M2001/ses-1/anat/mask.nii.gz": b"\x1f\x8b" + b"m" * 100,
}
FAST = RetryPolicy(attempts=4, backoff_s=0.001, max_delay_s=0.01, jitter=0.0)


@pytest.fixture
def server() -> Iterator[FakeDataServer]:
    with FakeDataServer(page_size=3) as srv:
        srv.s3["openneuro.org"] = {f"{DS}/{k}": v for k, v in FILES.items()}
        srv.s3["openneuro.org"]["ds000001/README"] = b"another dataset"
        yield srv


def _bucket(server: FakeDataServer) -> str:
    return f"{server.url}/openneuro.org"


def test_listing_follows_continuation_tokens(server: FakeDataServer) -> None:
    with make_client() as client:
        files = list_openneuro(DS, client=client, base_url=_bucket(server), retry=FAST)
    assert sorted(f.name for f in files) == sorted(FILES)
    assert {f.name: (f.size, f.md5) for f in files} == {
        k: (len(v), hashlib.md5(v).hexdigest()) for k, v in FILES.items()
    }
    assert server.count("list") == 3  # 8 keys, 3 a page


def test_include_globs_keep_root_files_and_resume(server: FakeDataServer, tmp_path: Path) -> None:
    server.add_faults(LISTING, Fault("status", status=503))
    server.add_faults(
        f"{DS}/sub-M2001/ses-1/anat/sub-M2001_ses-1_T1w.nii.gz", Fault("drop", fraction=0.5)
    )
    report = fetch_openneuro(
        DS,
        tmp_path,
        include=["sub-*/ses-*/anat/*"],
        base_url=_bucket(server),
        retry=FAST,
        progress=False,
    )
    expected = sorted(k for k in FILES if ("/anat/" in k and k.startswith("sub-")) or "/" not in k)
    assert sorted(report.downloaded) == expected
    for name in expected:
        assert (tmp_path / name).read_bytes() == FILES[name]
    assert not (tmp_path / "derivatives").exists()
    assert not list(tmp_path.rglob("*.part"))
    again = fetch_openneuro(
        DS, tmp_path, include=["sub-*/ses-*/anat/*"], base_url=_bucket(server), progress=False
    )
    assert again.downloaded == []
    only = fetch_openneuro(
        DS,
        tmp_path / "bare",
        include=["*.json"],
        with_root_files=False,
        base_url=_bucket(server),
        progress=False,
    )
    assert sorted(only.downloaded) == [
        "dataset_description.json",
        "sub-M2001/ses-1/anat/sub-M2001_ses-1_T1w.json",
    ]


def test_snapshot_tag_is_checked_against_changes(server: FakeDataServer, tmp_path: Path) -> None:
    assert latest_snapshot(FILES["CHANGES"].decode()) == "1.0.2"
    report = fetch_openneuro(
        DS, tmp_path, include=["CHANGES"], tag="1.0.2", base_url=_bucket(server), progress=False
    )
    assert report.downloaded == sorted(k for k in FILES if "/" not in k)
    with pytest.raises(FetchError, match=r"holds snapshot 1\.0\.2, not 1\.0\.1") as info:
        fetch_openneuro(DS, tmp_path / "old", tag="1.0.1", base_url=_bucket(server), progress=False)
    assert f"{DS}/CHANGES" in str(info.value)
    assert not (tmp_path / "old").exists()


def test_a_hostile_key_is_refused(server: FakeDataServer, tmp_path: Path) -> None:
    server.s3["openneuro.org"][f"{DS}/../../evil.sh"] = b"rm -rf"
    with pytest.raises(UnsafePathError, match=r"refused: a '\.\.' segment"):
        fetch_openneuro(DS, tmp_path / "out", base_url=_bucket(server), progress=False)
    assert server.count("content") == 0
    assert not list(tmp_path.rglob("evil.sh"))


def test_unknown_and_malformed_dataset_ids(server: FakeDataServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no files under this prefix"):
        fetch_openneuro("ds999999", tmp_path, base_url=_bucket(server), progress=False)
    with pytest.raises(FetchError, match="not an OpenNeuro dataset id"):
        fetch_openneuro("ds1/../x", tmp_path, base_url=_bucket(server), progress=False)
