"""The thin HTTP layer of the fetchers: one client, retry rules, ``Retry-After``.

Retried: transport errors (refused or dropped connections, timeouts) and HTTP
408, 425, 429, 500, 502, 503 and 504. Each wait is exponential backoff with
jitter, never shorter than the server's ``Retry-After`` and never longer than
:attr:`RetryPolicy.max_delay_s`. Any other HTTP error fails at once with the
URL and the status in the message.

Example:
    >>> from brrrr.ingest.fetch.http import RetryPolicy
    >>> RetryPolicy(backoff_s=1.0, jitter=0.0).delay(3)
    4.0
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from brrrr.ingest.fetch.errors import FetchError

__all__ = [
    "RETRY_STATUSES",
    "RetryPolicy",
    "make_client",
    "parse_retry_after",
    "request_with_retries",
    "status_problem",
]

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts at one request.

    Args:
        attempts: Attempts per request, the first included.
        backoff_s: Wait before the second attempt; doubles after each failure.
        max_delay_s: Cap on any wait, ``Retry-After`` included.
        jitter: Random extra fraction (0.25: up to 25 % longer) on backoff waits,
            so parallel clients do not retry in lockstep.
        sleep: The function that waits; tests inject a fast or recording one.
    """

    attempts: int = 6
    backoff_s: float = 1.0
    max_delay_s: float = 60.0
    jitter: float = 0.25
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Exponential backoff with jitter, never less than ``retry_after`` (the
        server's ``Retry-After``), and never more than :attr:`max_delay_s`.
        """
        backoff = self.backoff_s * 2 ** (attempt - 1) * (1 + random.uniform(0, self.jitter))
        return min(max(backoff, retry_after or 0.0), self.max_delay_s)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP-date).

    Returns ``None`` for a missing or unreadable header, never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def make_client(
    *,
    timeout_s: float = 60.0,
    concurrency: int = 4,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for the fetchers: redirects followed, pool sized to the threads.

    Args:
        timeout_s: Connect/read/write timeout of each request, in seconds.
        concurrency: Parallel downloads the pool must serve.
        headers: Extra headers, e.g. ``Authorization``. httpx drops
            ``Authorization`` when a redirect leaves the origin.
    """
    return httpx.Client(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=max(concurrency, 1) + 2),
        headers={"User-Agent": "brrrr-ingest", **(headers or {})},
    )


def status_problem(response: httpx.Response) -> str:
    """``HTTP 404 Not Found``, with a hint for 401/403."""
    problem = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if response.status_code in (401, 403):
        problem += " (needs a valid access token, or accepting the dataset's terms of use)"
    return problem


def request_with_retries(
    client: httpx.Client,
    url: str,
    *,
    params: dict[str, str | int] | None = None,
    retry: RetryPolicy | None = None,
) -> httpx.Response:
    """GET a small document (a listing page) with the same retry rules as downloads.

    Raises:
        FetchError: An HTTP error that is not worth retrying, or retries exhausted;
            the message names the URL and the last problem.
    """
    retry = retry or RetryPolicy()
    last = "no attempt made"
    for attempt in range(1, retry.attempts + 1):
        retry_after = None
        try:
            response = client.get(url, params=params)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 400:
                return response
            last = status_problem(response)
            if response.status_code not in RETRY_STATUSES:
                raise FetchError(last, path=str(response.request.url))
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if attempt < retry.attempts:
            retry.sleep(retry.delay(attempt, retry_after))
    raise FetchError(f"failed after {retry.attempts} attempts; last: {last}", path=url)
