"""The thin HTTP layer of the fetchers: one client, and GETs with retries.

The retry rules are those of :mod:`brrrr.ingest.retry` (transport errors and
:data:`~brrrr.ingest.retry.RETRY_STATUSES`, waits that honour ``Retry-After``), shared
with the Hub uploads. Any other HTTP error fails at once with the URL and the status in
the message.
"""

from __future__ import annotations

import httpx

from brrrr.ingest.errors import FetchError
from brrrr.ingest.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

__all__ = ["make_client", "request_with_retries", "status_problem"]


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
