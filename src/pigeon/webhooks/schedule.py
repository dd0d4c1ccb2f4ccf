"""When to retry a webhook delivery, and whether to.

Attempts are numbered from 1. After attempt ``n`` fails, the next one is due
``retry_delay(n)`` later: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, then every 8 h.
The schedule is deterministic (no jitter): deliveries are spread out by the job queue anyway,
and a fixed schedule is easy to document and to reason about in the delivery log.

A delivery is tried at most ``MAX_ATTEMPTS`` times; the delays between them add up to about 31.7
hours, more than the 24 hours of retries Pigeon promises.

Which answers are retried follows Standard Webhooks practice: any ``2xx`` is a success; ``410
Gone`` means the receiver wants no more webhooks, so the caller disables the endpoint and stops;
everything else (network errors and timeouts, redirects, every other ``4xx`` and ``5xx``) is
retried, because a receiver's misconfiguration (a ``401``, ``404`` or ``500`` while it deploys)
is usually temporary and the events must not be lost.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["MAX_ATTEMPTS", "retry_delay", "should_retry"]

_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
)

MAX_ATTEMPTS = 12
"""The most attempts made at one delivery: the first one and 11 retries (about 31.7 hours)."""


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based) before the next one.

    The delays never decrease; after the table runs out they stay at 8 hours.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return _DELAYS[min(attempt, len(_DELAYS)) - 1]


def should_retry(status_code: int | None) -> bool:
    """Whether a delivery that got ``status_code`` (``None``: no answer) should be tried again.

    ``2xx`` is a success and ``410 Gone`` disables the endpoint: neither is retried. Anything
    else is. This does not look at the attempt count: compare it with ``MAX_ATTEMPTS``.
    """
    if status_code is None:
        return True
    if 200 <= status_code < 300:
        return False
    return status_code != 410
