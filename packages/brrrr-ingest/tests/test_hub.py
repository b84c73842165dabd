"""push to a local folder destination (the files the Hub would get), resume after a failed
upload, retries that honour Retry-After (seconds and HTTP-dates), and the thin Hub layer
against a fake API."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from brrrr.ingest.errors import HubUploadError
from brrrr.ingest.hub import (
    HubDestination,
    LocalFolderDestination,
    destination_for,
    push,
    with_retries,
)
from brrrr.ingest.manifest import Manifest
from brrrr.ingest.retry import RetryPolicy
from brrrr.ingest.verify import verify

OPTIONS = {"shard_bytes": "40KB", "row_group_bytes": "10KB", "progress": False}


def test_push_to_a_folder_gives_the_files_of_a_conversion(
    bids_root: Path, converted: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    result = push(bids_root, f"file://{dest}", work_dir=tmp_path / "work", keep="all", **OPTIONS)
    names = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert names == sorted(
        p.relative_to(converted).as_posix() for p in converted.rglob("*") if p.is_file()
    )
    reference = Manifest.load(converted)
    pushed = Manifest.load(dest)
    assert [s.sha256 for s in pushed.shards.values()] == [
        s.sha256 for s in reference.shards.values()
    ]
    assert all(s.uploaded_to == [result.destination] for s in pushed.shards.values())
    assert (dest / "README.md").read_text() == (converted / "README.md").read_text()
    assert verify(dest, progress=False).ok


@dataclass
class _Flaky:
    """A local destination whose upload number ``fail_at`` fails."""

    inner: LocalFolderDestination
    fail_at: int
    calls: list[list[str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.inner.id

    def upload(self, folder: Path, paths: Sequence[str], *, message: str) -> None:
        self.calls.append(list(paths))
        if len(self.calls) == self.fail_at:
            raise HubUploadError("simulated outage")
        self.inner.upload(folder, paths, message=message)


def test_a_failed_push_resumes_without_rewriting_or_reuploading(
    bids_root: Path, tmp_path: Path
) -> None:
    dest, work = tmp_path / "dest", tmp_path / "work"
    flaky = _Flaky(LocalFolderDestination(dest), fail_at=3)
    with pytest.raises(HubUploadError, match="simulated outage"):
        push(bids_root, flaky, work_dir=work, commit_bytes="1B", **OPTIONS)
    # Uploaded shards were deleted locally (keep="manifest"); the manifest remembers them.
    partial = Manifest.load(work)
    uploaded = sorted(i for i, s in partial.shards.items() if s.uploaded_to)
    assert uploaded == [0, 1]
    assert not any((work / partial.shards[i].path).exists() for i in uploaded)
    assert (work / partial.shards[2].path).exists()  # written, its upload failed

    again = _Flaky(LocalFolderDestination(dest), fail_at=0)
    result = push(bids_root, again, work_dir=work, commit_bytes="1B", **OPTIONS)
    total = result.conversion.manifest.num_shards
    assert result.conversion.reused == [0, 1, 2]
    assert result.uploaded == list(range(2, total))
    assert again.calls[0] == [partial.shards[2].path]
    assert again.calls[-1] == ["README.md", "manifest.json"]
    assert not list((work / "data").glob("*.parquet"))
    assert verify(dest, progress=False).ok


class _HTTPError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = httpx.Response(status, headers=headers)


def _failing(errors: list[Exception]) -> Any:
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "done"

    return call


def _recording(sleeps: list[float], *, attempts: int = 6) -> RetryPolicy:
    """HUB_RETRY's waits from a 1 s backoff, recorded instead of slept."""
    return RetryPolicy(
        attempts=attempts, backoff_s=1.0, max_delay_s=900.0, jitter=0.1, sleep=sleeps.append
    )


def test_retries_honour_retry_after_then_back_off() -> None:
    sleeps: list[float] = []
    call = _failing([_HTTPError(429, {"Retry-After": "7"}), _HTTPError(503), _HTTPError(503)])
    assert with_retries(call, what="upload", retry=_recording(sleeps)) == "done"
    # Retry-After, then 1 s × 2**attempt, each with up to 10 % jitter.
    for slept, base in zip(sleeps, [7.0, 2.0, 4.0], strict=True):
        assert base <= slept <= 1.1 * base


def test_an_http_date_retry_after_is_honoured() -> None:
    sleeps: list[float] = []
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    call = _failing(
        [_HTTPError(503, {"Retry-After": later}), _HTTPError(429, {"Retry-After": past})]
    )
    assert with_retries(call, what="upload", retry=_recording(sleeps)) == "done"
    assert 115.0 <= sleeps[0] <= 120.0  # the date, read from the exception's response
    assert 2.0 <= sleeps[1] <= 2.2  # a date in the past: backoff alone


def test_client_errors_and_unlisted_server_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    for status in (401, 404, 501):
        with pytest.raises(
            HubUploadError, match=rf"upload failed \(not retryable\): HTTP {status}"
        ):
            with_retries(_failing([_HTTPError(status)]), what="upload", retry=_recording(sleeps))
    assert sleeps == []


def test_retries_give_up_after_the_last_attempt() -> None:
    errors: list[Exception] = [ConnectionError("reset")] * 3
    with pytest.raises(HubUploadError, match="failed after 3 tries: reset"):
        with_retries(_failing(errors), what="upload", retry=_recording([], attempts=3))


class _FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures = [_HTTPError(429, {"Retry-After": "0"})]

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", kwargs))
        if self.failures:
            raise self.failures.pop()


def test_hub_destination_creates_the_repo_once_and_retries(tmp_path: Path) -> None:
    api = _FakeApi()
    sleeps: list[float] = []
    dest = HubDestination("me/ds", private=True, api=api, retry=_recording(sleeps))
    assert dest.id == "hf://datasets/me/ds"
    dest.upload(tmp_path, ["data/a.parquet"], message="Add a")
    dest.upload(tmp_path, ["README.md"], message="Add card")
    kinds = [name for name, _ in api.calls]
    assert kinds == ["create_repo", "upload_folder", "upload_folder", "upload_folder"]
    assert len(sleeps) == 1  # the 429 was retried, with the destination's policy
    assert api.calls[0][1] == {
        "repo_id": "me/ds",
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
    }
    upload = api.calls[-1][1]
    assert (upload["repo_id"], upload["repo_type"], upload["allow_patterns"]) == (
        "me/ds",
        "dataset",
        ["README.md"],
    )


def test_destination_for() -> None:
    assert destination_for("file:///tmp/x") == LocalFolderDestination(Path("/tmp/x"))
    hub = destination_for("me/ds", private=True)
    assert isinstance(hub, HubDestination)
    assert hub.repo_id == "me/ds"
    assert hub.private
