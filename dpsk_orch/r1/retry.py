"""Retry decisions as small pure functions: what may be retried, and how long to wait."""

from __future__ import annotations

import random

import httpx

from dpsk_orch.constants import BACKOFF_BASE_S, BACKOFF_CAP_S, RETRY_AFTER_CAP_S
from dpsk_orch.r1.errors import R1Error

RETRYABLE_READ_STATUSES = frozenset({429, 502, 503, 504})

# Errors raised before a single byte of the request left this machine: safe to re-send even a write.
NEVER_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RetryableStatus(R1Error):
    """A response that a retry may cure; carries the server's Retry-After, if any."""

    def __init__(self, action: str, status: int, code: str, message: str, retry_after_s: float | None) -> None:
        super().__init__(action, status, code, message)
        self.retry_after_s = retry_after_s


def should_retry(error: BaseException, is_read: bool) -> bool:
    """Whether a failed call may be sent again: reads on 429/502/503/504 and transport errors; writes
    only on 429 or when the request surely never reached RuckusONE (there is no idempotency key)."""
    if isinstance(error, RetryableStatus):
        return is_read or error.status == 429
    if isinstance(error, NEVER_SENT_ERRORS):
        return True
    return is_read and isinstance(error, httpx.TransportError)


def is_retryable_status(status: int, is_read: bool) -> bool:
    """Whether a response status is worth a retry for this kind of call."""
    return status == 429 or (is_read and status in RETRYABLE_READ_STATUSES)


def parse_retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), capped; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def retry_wait_s(attempt: int, retry_after_s: float | None, jitter: float | None = None) -> float:
    """How long to wait before attempt `attempt + 1`: Retry-After when given, else jittered backoff."""
    if retry_after_s is not None:
        return retry_after_s
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    fraction = random.uniform(0.5, 1.0) if jitter is None else jitter
    return ceiling * fraction
