"""Push a converted dataset to the Hugging Face Hub (or to a local folder, the same files).

:func:`push` converts and uploads together: each group of finished shards
(about ``commit_bytes``) is uploaded as soon as it is written, and with
``keep="manifest"`` deleted locally afterwards, so the work folder never holds
much more than one group — never the whole dataset. The manifest records which
shards each destination already holds, so a killed push resumes without
rewriting or re-uploading them. The README and the manifest go last: a
destination holding a complete manifest holds everything it lists.

The Hub-specific part is :class:`HubDestination`, a thin layer over
``huggingface_hub`` (``upload_large_folder`` where the installed version has it,
otherwise ``upload_folder``, which in huggingface_hub ≥ 1.0 is itself the
resumable multi-commit upload), with the retry rules of :mod:`brrrr.ingest.retry`
under :data:`HUB_RETRY`.
:class:`LocalFolderDestination` receives the same files: ``file:///path``.

Example:
    >>> from brrrr.ingest.hub import push
    >>> push("ds004884", "me/arc-aphasia", level="session")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from brrrr.ingest.errors import HubUploadError
from brrrr.ingest.manifest import MANIFEST_NAME, Manifest, ShardRecord
from brrrr.ingest.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from brrrr.ingest.shards import ConversionResult, parse_size, to_hf

__all__ = [
    "HUB_RETRY",
    "Destination",
    "HubDestination",
    "LocalFolderDestination",
    "PushResult",
    "destination_for",
    "push",
    "with_retries",
]

T = TypeVar("T")
DEFAULT_COMMIT_BYTES = 4 * 10**9

#: Retries of Hub calls: 2 s doubling, waits of up to 15 minutes. Longer than the
#: fetchers' (a minute): the Hub rate-limits commits per hour, and a shard group that
#: waits out a Retry-After of minutes beats a push that fails after an hour of work.
HUB_RETRY = RetryPolicy(attempts=6, backoff_s=2.0, max_delay_s=900.0, jitter=0.1)


class Destination(Protocol):
    """Where a converted dataset goes: a Hub repo, or a local folder in tests."""

    @property
    def id(self) -> str:
        """A stable name recorded in the manifest (``hf://datasets/…`` or ``file://…``)."""
        ...

    def upload(self, folder: Path, paths: Sequence[str], *, message: str) -> None:
        """Upload ``folder/path`` for each of ``paths`` (relative, ``/``-separated)."""
        ...


@dataclass(frozen=True)
class LocalFolderDestination:
    """A folder that receives exactly the files the Hub repo would.

    Attributes:
        folder: The destination folder (created on first upload).
    """

    folder: Path

    @property
    def id(self) -> str:
        return self.folder.resolve().as_uri()

    def upload(self, folder: Path, paths: Sequence[str], *, message: str) -> None:
        for relpath in paths:
            target = self.folder / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            os.close(fd)
            try:
                shutil.copyfile(folder / relpath, tmp)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


def _status(exc: BaseException) -> tuple[int | None, float | None]:
    """HTTP status and Retry-After seconds of an exception raised by huggingface_hub/httpx."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None)
    retry_after = None if headers is None else parse_retry_after(headers.get("Retry-After"))
    return (int(status) if status is not None else None), retry_after


def with_retries(call: Callable[[], T], *, what: str, retry: RetryPolicy = HUB_RETRY) -> T:
    """Run ``call``, retrying what :mod:`brrrr.ingest.retry` retries.

    Retried: an HTTP status in :data:`~brrrr.ingest.retry.RETRY_STATUSES` (rate limits,
    timeouts, 500/502/503/504) and errors without one (dropped connections), waiting
    ``retry.delay``: backoff, never shorter than ``Retry-After`` (seconds or an
    HTTP-date). Not retried: other client and server errors (bad token, missing repo,
    501…) and a ``ValueError``/``TypeError`` without a status (a bad argument).

    Args:
        call: What to run.
        what: Description for the error message.
        retry: Attempts and waits; :data:`HUB_RETRY` by default.

    Returns:
        What ``call`` returns.

    Raises:
        HubUploadError: Still failing after ``retry.attempts`` tries, or not retryable.
    """
    for attempt in range(1, retry.attempts + 1):
        try:
            return call()
        except Exception as exc:
            status, retry_after = _status(exc)
            retryable = status is None or status in RETRY_STATUSES
            if isinstance(exc, ValueError | TypeError) and status is None:
                retryable = False
            if not retryable or attempt == retry.attempts:
                tries = f"after {attempt} tries" if attempt > 1 else "(not retryable)"
                raise HubUploadError(f"{what} failed {tries}: {exc}") from exc
            retry.sleep(retry.delay(attempt, retry_after))
    raise AssertionError("unreachable")


@dataclass
class HubDestination:
    """A dataset repository on the Hugging Face Hub.

    Attributes:
        repo_id: ``owner/name``.
        private: Create the repository private.
        revision: Branch to commit to.
        token: Token, or ``None`` for the locally saved one.
        api: A ``huggingface_hub.HfApi`` (made on first use).
        retry: Attempts and waits of each Hub call (:data:`HUB_RETRY`).
    """

    repo_id: str
    private: bool = False
    revision: str | None = None
    token: str | None = None
    api: Any = None
    retry: RetryPolicy = HUB_RETRY
    _created: bool = field(default=False, repr=False)

    @property
    def id(self) -> str:
        return f"hf://datasets/{self.repo_id}"

    def _api(self) -> Any:
        if self.api is None:
            from huggingface_hub import HfApi

            self.api = HfApi(token=self.token)
        return self.api

    def upload(self, folder: Path, paths: Sequence[str], *, message: str) -> None:
        api = self._api()
        if not self._created:
            with_retries(
                lambda: api.create_repo(
                    self.repo_id, repo_type="dataset", private=self.private, exist_ok=True
                ),
                what=f"creating {self.id}",
                retry=self.retry,
            )
            self._created = True
        extra: dict[str, Any]
        if hasattr(api, "upload_large_folder"):  # huggingface_hub < 1.0
            upload, extra = api.upload_large_folder, {"print_report": False}
        else:
            upload, extra = api.upload_folder, {"commit_message": message}
        with_retries(
            lambda: upload(
                repo_id=self.repo_id,
                folder_path=folder,
                repo_type="dataset",
                revision=self.revision,
                allow_patterns=list(paths),
                **extra,
            ),
            what=f"uploading {len(paths)} files to {self.id}",
            retry=self.retry,
        )


def destination_for(target: str, *, private: bool = False, token: str | None = None) -> Destination:
    """``file:///path`` → :class:`LocalFolderDestination`; ``owner/name`` → :class:`HubDestination`."""
    if target.startswith("file://"):
        return LocalFolderDestination(Path(target.removeprefix("file://")))
    return HubDestination(target, private=private, token=token)


@dataclass
class PushResult:
    """What :func:`push` did.

    Attributes:
        destination: The destination id.
        conversion: The conversion's result (shards written or reused).
        uploaded: Shard indices uploaded by this run.
    """

    destination: str
    conversion: ConversionResult
    uploaded: list[int]


def _default_work_dir(target: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "brrrr" / "push" / target.replace("://", "_").replace("/", "__")


def push(
    root: str | os.PathLike[str],
    target: str | Destination,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    keep: Literal["all", "manifest"] = "manifest",
    commit_bytes: int | str = DEFAULT_COMMIT_BYTES,
    **convert: Any,
) -> PushResult:
    """Convert a BIDS dataset and upload it group by group, resumably.

    Args:
        root: BIDS dataset root.
        target: ``owner/name`` (Hub), ``file:///path`` (local folder) or a :class:`Destination`.
        work_dir: Where shards are written before upload (default under
            ``$XDG_CACHE_HOME/brrrr/push``); reuse it to resume.
        keep: ``"manifest"`` deletes each shard locally once uploaded (the
            manifest remembers it); ``"all"`` keeps a full local copy.
        commit_bytes: Upload once this many bytes of shards are ready.
        **convert: Options of :func:`brrrr.ingest.shards.to_hf` (``level``,
            ``shard_bytes``, ``on_error``, filters…).

    Returns:
        The :class:`PushResult`.

    Raises:
        BidsError: From the conversion.
        HubUploadError: An upload still fails after the retries.
    """
    destination = destination_for(target) if isinstance(target, str) else target
    out = Path(work_dir) if work_dir is not None else _default_work_dir(destination.id)
    budget = parse_size(commit_bytes)
    pending: list[ShardRecord] = []
    uploaded: list[int] = []

    def flush(manifest: Manifest) -> None:
        if not pending:
            return
        names = [r.path for r in pending]
        destination.upload(out, names, message=f"Add {len(names)} shards ({names[0]} …)")
        for record in pending:
            record.uploaded_to.append(destination.id)
            uploaded.append(record.index)
        manifest.save(out)
        if keep == "manifest":
            for record in pending:
                (out / record.path).unlink(missing_ok=True)
        pending.clear()

    def on_shard(manifest: Manifest, record: ShardRecord, reused: bool) -> None:
        if destination.id not in record.uploaded_to:
            pending.append(record)
        if sum(r.bytes for r in pending) >= budget:
            flush(manifest)

    repo_id = destination.repo_id if isinstance(destination, HubDestination) else None
    conversion = to_hf(
        root, out, on_shard=on_shard, uploaded_to=destination.id, repo_id=repo_id, **convert
    )
    flush(conversion.manifest)
    destination.upload(out, ["README.md", MANIFEST_NAME], message="Add dataset card and manifest")
    return PushResult(destination=destination.id, conversion=conversion, uploaded=uploaded)
