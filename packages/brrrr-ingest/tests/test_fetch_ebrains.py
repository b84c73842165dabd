"""EBRAINS data-proxy fetcher against a local look-alike of the API (paging, redirects, faults)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from brrrr.ingest.errors import ChecksumError, FetchError, UnsafePathError
from brrrr.ingest.fetch.ebrains import fetch_ebrains, list_ebrains
from brrrr.ingest.fetch.http import make_client
from brrrr.ingest.fetch.testing import LISTING, FakeDataServer, Fault
from brrrr.ingest.retry import RetryPolicy

DATASET = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
FILES = {
    f"{folder}/f{i}.bin": random.Random(i).randbytes(5_000 + 997 * i)
    for i, folder in enumerate(["raw", "raw", "seg", "seg", "json", "json", "docs"])
}
FAST = RetryPolicy(attempts=4, backoff_s=0.001, max_delay_s=0.01, jitter=0.0)


@pytest.fixture
def server() -> Iterator[FakeDataServer]:
    with FakeDataServer() as srv:
        srv.ebrains[DATASET] = dict(FILES)
        yield srv


def _api(server: FakeDataServer) -> str:
    return f"{server.url}/api/v1"


def test_listing_follows_marker_pages(server: FakeDataServer) -> None:
    with make_client() as client:
        files = list_ebrains(DATASET, client=client, base_url=_api(server), page_size=3, retry=FAST)
    assert [f.name for f in files] == sorted(FILES)
    assert {f.name: (f.size, f.md5) for f in files} == {
        name: (len(data), hashlib.md5(data).hexdigest()) for name, data in FILES.items()
    }
    assert server.count("list") == 4  # 3 + 3 + 1, then an empty page ends the listing


def test_listing_retries_server_errors(server: FakeDataServer) -> None:
    server.add_faults(LISTING, Fault("status", status=502), Fault("status", status=429))
    with make_client() as client:
        files = list_ebrains(DATASET, client=client, base_url=_api(server), retry=FAST)
    assert len(files) == len(FILES)
    assert server.count("list") == 4


def test_fetch_is_byte_identical_through_redirects_and_faults(
    server: FakeDataServer, tmp_path: Path
) -> None:
    server.add_faults("raw/f0.bin", Fault("drop", fraction=0.3))
    server.add_faults("seg/f2.bin", Fault("status", status=500))
    server.add_faults("json/f4.bin", Fault("status", status=429, retry_after="1"))
    report = fetch_ebrains(
        DATASET, tmp_path, base_url=_api(server), retry=FAST, page_size=4, progress=False
    )
    assert sorted(report.downloaded) == sorted(FILES)
    for name, data in FILES.items():
        assert (tmp_path / name).read_bytes() == data
    assert not list(tmp_path.rglob("*.part"))
    assert server.count("stat") == 1
    assert server.count("redirect") == server.count("content") == len(FILES) + 3


def test_a_resumed_run_fetches_only_what_is_missing(server: FakeDataServer, tmp_path: Path) -> None:
    fetch_ebrains(DATASET, tmp_path, base_url=_api(server), retry=FAST, progress=False)
    assert server.count("content") == len(FILES)
    (tmp_path / "seg/f3.bin").unlink()
    (tmp_path / "raw/f1.bin.part").write_bytes(b"")  # left over by a killed run
    report = fetch_ebrains(DATASET, tmp_path, base_url=_api(server), retry=FAST, progress=False)
    assert report.downloaded == ["seg/f3.bin"]
    assert len(report.present) == len(FILES) - 1
    assert server.count("content") == len(FILES) + 1
    assert not list(tmp_path.rglob("*.part"))


def test_a_wrong_listed_checksum_is_refused(server: FakeDataServer, tmp_path: Path) -> None:
    server.listed_md5["docs/f6.bin"] = "f" * 32
    with pytest.raises(ChecksumError, match=r"checksum mismatch: MD5 [0-9a-f]{32}, the listing"):
        fetch_ebrains(DATASET, tmp_path, base_url=_api(server), retry=FAST, progress=False)
    assert not (tmp_path / "docs/f6.bin").exists()
    assert not list(tmp_path.rglob("*.part"))
    assert (tmp_path / "raw/f0.bin").read_bytes() == FILES["raw/f0.bin"]  # the others finished
    assert server.count("content", name="docs/f6.bin") == FAST.attempts


def test_include_and_exclude(server: FakeDataServer, tmp_path: Path) -> None:
    report = fetch_ebrains(
        DATASET,
        tmp_path,
        include=["raw/*", "seg/*"],
        exclude=["*/f3.bin"],
        base_url=_api(server),
        retry=FAST,
        progress=False,
    )
    assert report.downloaded == ["raw/f0.bin", "raw/f1.bin", "seg/f2.bin"]


def test_a_hostile_name_in_the_listing_is_refused(server: FakeDataServer, tmp_path: Path) -> None:
    server.ebrains[DATASET]["../evil.txt"] = b"pwned"
    out = tmp_path / "out"
    with pytest.raises(UnsafePathError, match=r"\.\./evil\.txt: refused") as info:
        fetch_ebrains(
            DATASET, out, include=["raw/*"], base_url=_api(server), retry=FAST, progress=False
        )
    assert f"{DATASET}/../evil.txt" in str(info.value)  # names the URL it came from
    assert not (tmp_path / "evil.txt").exists()
    assert not out.exists()
    assert server.count("content") == 0


def test_the_token_is_sent_as_a_bearer_header(server: FakeDataServer, tmp_path: Path) -> None:
    fetch_ebrains(
        DATASET,
        tmp_path,
        include=["docs/*"],
        token="secret",
        base_url=_api(server),
        retry=FAST,
        progress=False,
    )
    assert {r.authorization for r in server.requests} == {"Bearer secret"}


def test_unknown_dataset_and_bad_ids_are_clear_errors(
    server: FakeDataServer, tmp_path: Path
) -> None:
    with pytest.raises(FetchError, match="HTTP 404") as info:
        fetch_ebrains("nope", tmp_path, base_url=_api(server), retry=FAST, progress=False)
    assert "/datasets/nope" in str(info.value)
    with pytest.raises(FetchError, match="not an EBRAINS dataset id"):
        fetch_ebrains("../x", tmp_path, base_url=_api(server), retry=FAST, progress=False)
