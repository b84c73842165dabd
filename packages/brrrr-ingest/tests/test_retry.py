"""The one retry policy: backoff doubling, capped, never shorter than Retry-After (seconds or
HTTP-date); the fetchers and the Hub uploads use the same class."""

from __future__ import annotations

import inspect

import pytest

from brrrr.ingest import fetch, hub, retry
from brrrr.ingest.fetch import download, http
from brrrr.ingest.retry import RetryPolicy, parse_retry_after


def test_retry_delay_doubles_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(backoff_s=1.0, max_delay_s=10.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=99.0) == 10.0
    jittered = RetryPolicy(backoff_s=1.0, jitter=0.5)
    assert all(1.0 <= jittered.delay(1) <= 1.5 for _ in range(50))


def test_a_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_the_fetchers_and_the_hub_use_the_same_policy_class() -> None:
    assert fetch.RetryPolicy is retry.RetryPolicy  # the one export kept for users
    assert not {"RETRY_STATUSES", "RetryPolicy", "parse_retry_after"} & set(http.__all__)
    assert isinstance(hub.HUB_RETRY, RetryPolicy)
    assert inspect.signature(hub.with_retries).parameters["retry"].default is hub.HUB_RETRY
    assert hub.HubDestination("me/ds").retry is hub.HUB_RETRY
    for function in (http.request_with_retries, download.download_files):
        assert "RetryPolicy" in str(inspect.signature(function).parameters["retry"].annotation)


def test_the_hub_waits_longer_than_the_fetchers() -> None:
    # Deliberate: the Hub rate-limits commits and may ask for minutes.
    fetchers = RetryPolicy()
    assert (fetchers.attempts, fetchers.backoff_s, fetchers.max_delay_s) == (6, 1.0, 60.0)
    assert (hub.HUB_RETRY.attempts, hub.HUB_RETRY.backoff_s, hub.HUB_RETRY.max_delay_s) == (
        6,
        2.0,
        900.0,
    )
