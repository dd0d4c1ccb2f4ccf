"""Per-minute quality figures: the rollup the hot path counts into, and adding minutes up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pigeon.domain.quality import (
    DAY,
    DELIVERED,
    ERROR,
    FIVE_MINUTES,
    HOUR,
    LATENCY,
    LATENCY_RELATIVE_ERROR,
    SUBMITTED,
    UNDELIVERED,
    MinuteCounts,
    MinuteKey,
    MinuteRollup,
    QualityWindow,
    epoch_minute,
    latency_bin,
    window_start_minute,
)

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
MINUTE = epoch_minute(T0)


def test_rollup_counts_each_event_in_its_minute() -> None:
    """Submits, outcomes, latencies and errors land on per-minute keys of their connector."""
    rollup = MinuteRollup()
    rollup.add_submit("a", T0)
    rollup.add_submit("a", T0 + timedelta(seconds=10))
    rollup.add_submit("a", T0 + timedelta(seconds=40))
    rollup.add_outcome("a", True, 2.0, T0)
    rollup.add_outcome("a", False, None, T0)
    rollup.add_error("b", "throttled", T0)

    assert rollup.drain() == {
        MinuteKey("a", MINUTE, SUBMITTED): 2,
        MinuteKey("a", MINUTE + 1, SUBMITTED): 1,
        MinuteKey("a", MINUTE, DELIVERED): 1,
        MinuteKey("a", MINUTE, UNDELIVERED): 1,
        MinuteKey("a", MINUTE, LATENCY, str(latency_bin(2.0))): 1,
        MinuteKey("b", MINUTE, ERROR, "throttled"): 1,
    }


def test_drain_empties_and_restore_adds_back() -> None:
    """A drain hands everything over; restored counts add to what was counted meanwhile."""
    rollup = MinuteRollup()
    rollup.add_submit("a", T0)
    drained = rollup.drain()
    assert len(rollup) == 0
    rollup.add_submit("a", T0)
    rollup.restore(drained)
    assert dict(rollup.pending()) == {MinuteKey("a", MINUTE, SUBMITTED): 2}


def test_long_error_codes_are_cut_and_empty_ones_named() -> None:
    """Error codes are bounded in length, and an empty code is counted as ``unknown``."""
    rollup = MinuteRollup()
    rollup.add_error("a", "x" * 500, T0)
    rollup.add_error("a", "", T0)
    keys = {key.key for key in rollup.drain()}
    assert keys == {"x" * 64, "unknown"}


def test_minute_counts_summarise_rate_percentiles_and_errors() -> None:
    """Added-up minutes give the delivery rate, p50/p90 latency and errors by code."""
    counts = MinuteCounts()
    counts.add(SUBMITTED, "", 10)
    counts.add(DELIVERED, "", 8)
    counts.add(UNDELIVERED, "", 2)
    counts.add(LATENCY, str(latency_bin(1.0)), 5)
    counts.add(LATENCY, str(latency_bin(10.0)), 5)
    counts.add(ERROR, "throttled", 3)
    counts.add(ERROR, "throttled", 1)

    stats = counts.summary()

    assert (stats.submitted, stats.delivered, stats.failed) == (10, 8, 2)
    assert stats.delivery_rate == pytest.approx(0.8)
    assert stats.p50_latency == pytest.approx(1.0, rel=LATENCY_RELATIVE_ERROR)
    assert stats.p90_latency == pytest.approx(10.0, rel=LATENCY_RELATIVE_ERROR)
    assert dict(stats.errors_by_code) == {"throttled": 4}


def test_minute_counts_without_receipts_have_no_rate() -> None:
    """Without receipts the rate and the latencies are unknown, not zero."""
    counts = MinuteCounts()
    counts.add(SUBMITTED, "", 3)
    counts.add(LATENCY, "not-a-bin", 1)
    counts.add(LATENCY, "99999", 1)
    counts.add("something-else", "", 1)

    stats = counts.summary()

    assert stats.submitted == 3
    assert (stats.delivery_rate, stats.p50_latency, stats.p90_latency) == (None, None, None)


@pytest.mark.parametrize(("window", "minutes"), [(FIVE_MINUTES, 5), (HOUR, 60), (DAY, 1440)])
def test_window_covers_the_current_minute_and_those_before(window: timedelta, minutes: int) -> None:
    """A window of N minutes covers the current minute and the N - 1 whole minutes before."""
    assert window_start_minute(T0, window) == MINUTE - minutes + 1


def test_record_counts_equals_recording_each_event() -> None:
    """Warming a window from added-up counts gives the record that the events themselves give."""
    one_by_one = QualityWindow(min_samples=1)
    at = T0.replace(second=0)
    counts = MinuteCounts()
    for latency in (1.0, 2.0, 3.0, 30.0):
        one_by_one.record_outcome("a", True, latency, at)
        counts.add(DELIVERED, "", 1)
        counts.add(LATENCY, str(latency_bin(latency)), 1)
    one_by_one.record_outcome("a", False, None, at)
    counts.add(UNDELIVERED, "", 1)
    for _ in range(6):
        one_by_one.record_submit("a", at)
    counts.add(SUBMITTED, "", 6)
    one_by_one.record_error("a", "e1", at)
    counts.add(ERROR, "e1", 1)
    warmed = QualityWindow(min_samples=1)

    warmed.record_counts("a", at, counts)

    now = at + timedelta(minutes=2)
    for window in (FIVE_MINUTES, HOUR, DAY):
        assert warmed.stats("a", now, window) == one_by_one.stats("a", now, window)
    assert warmed.connector_ids() == ["a"]


def test_min_samples_can_be_lowered_per_call() -> None:
    """A read may lower the sample floor (dashboards) without changing what routing sees."""
    quality = QualityWindow(min_samples=10)
    quality.record_outcome("a", True, 1.0, T0)

    assert quality.stats("a", T0).delivery_rate is None
    assert quality.stats("a", T0, min_samples=1).delivery_rate == 1.0
    assert quality.stats("a", T0).delivery_rate is None
