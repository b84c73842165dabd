"""One retry policy for every remote call of brrrr-ingest: fetcher downloads and Hub uploads.

Retried: transport errors (refused or dropped connections, timeouts) and HTTP 408,
425, 429, 500, 502, 503 and 504 (:data:`RETRY_STATUSES`). Each wait is exponential
backoff with jitter, never shorter than the server's ``Retry-After`` (delta-seconds or
an HTTP-date, :func:`parse_retry_after`) and never longer than
:attr:`RetryPolicy.max_delay_s`. Any other HTTP error fails at once.

The callers differ only in their policy, each chosen on purpose: the fetchers use
``RetryPolicy()`` (6 attempts, 1 s doubling, waits up to a minute: a download resumes
where it stopped, so retrying soon is cheap), and :mod:`brrrr.ingest.hub` uses
``HUB_RETRY`` (2 s doubling, waits up to 15 minutes: the Hub rate-limits commits and
may ask for minutes).

Example:
    >>> from brrrr.ingest.retry import RetryPolicy, parse_retry_after
    >>> RetryPolicy(backoff_s=1.0, jitter=0.0).delay(3)
    4.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    10.0
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

#: HTTP statuses worth another attempt: timeouts, "too early", rate limits, server trouble.
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

    Args:
        value: The header's value, or ``None`` when it is absent.
        now: The current time (``time.time()`` when ``None``), for an HTTP-date.

    Returns:
        The seconds to wait, never negative (a date in the past is 0), or ``None``
        for a missing or unreadable header.
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
