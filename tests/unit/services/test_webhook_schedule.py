"""The webhook retry schedule: exponential backoff spanning at least 24 hours."""

from __future__ import annotations

from datetime import timedelta

from pigeon.services.notify import MAX_WEBHOOK_ATTEMPTS, webhook_delay


def test_schedule_starts_with_the_documented_delays() -> None:
    """The first delays are 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h."""
    expected = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800]
    assert [webhook_delay(n).total_seconds() for n in range(1, 10)] == expected


def test_schedule_is_non_decreasing_and_capped() -> None:
    """Delays never shrink from one attempt to the next and stay at 8 h once reached."""
    delays = [webhook_delay(n) for n in range(1, 3 * MAX_WEBHOOK_ATTEMPTS)]
    assert delays == sorted(delays)
    assert max(delays) == timedelta(hours=8)


def test_schedule_spans_at_least_24_hours() -> None:
    """The waits between the first and the last attempt add up to at least 24 hours."""
    span = sum((webhook_delay(n) for n in range(1, MAX_WEBHOOK_ATTEMPTS)), timedelta())
    assert span >= timedelta(hours=24)
