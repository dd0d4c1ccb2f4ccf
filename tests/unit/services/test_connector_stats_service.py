"""Connector figures: hot-path counting, batched flushes, warm-up and the operator read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant
from pigeon.domain.errors import Forbidden, NotFound
from pigeon.domain.quality import HOUR, MinuteCounts, MinuteKey, window_start_minute
from pigeon.services.authenticate import Caller
from pigeon.services.connector_stats import (
    ConnectorFigures,
    ReadConnectorStats,
    RecordingQualityWindow,
    sample_quality_gauges,
    sample_stored_quality_gauges,
)
from pigeon.telemetry import REGISTRY
from pigeon.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MemoryMinuteStore:
    """An in-memory ``ConnectorMinuteStore``."""

    def __init__(self) -> None:
        self.rows: dict[MinuteKey, int] = {}
        self.fail_next = False
        self.writes = 0

    async def add_minutes(self, counts: Mapping[MinuteKey, int]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("database down")
        self.writes += 1
        for key, count in counts.items():
            self.rows[key] = self.rows.get(key, 0) + count

    async def minutes_since(self, since_minute: int) -> list[tuple[MinuteKey, int]]:
        return sorted(
            ((k, c) for k, c in self.rows.items() if k.minute >= since_minute),
            key=lambda item: item[0].minute,
        )

    async def totals_since(self, connector_id: str, since_minute: int) -> MinuteCounts:
        totals = MinuteCounts()
        for key, count in self.rows.items():
            if key.connector_id == connector_id and key.minute >= since_minute:
                totals.add(key.metric, key.key, count)
        return totals

    async def has_figures(self, connector_id: str) -> bool:
        return any(key.connector_id == connector_id for key in self.rows)

    async def prune(self, before_minute: int) -> int:
        old = [key for key in self.rows if key.minute < before_minute]
        for key in old:
            del self.rows[key]
        return len(old)


def _caller(role: Role) -> Caller:
    tenant = Tenant("ten_1", "demo", None, T0)
    key = ApiKey("key_1", tenant.id, KeyMode.LIVE, role, "digest", "pk_live_xxxx", T0)
    return Caller(tenant, key)


def _traffic(quality: RecordingQualityWindow, connector_id: str, at: datetime) -> None:
    for _ in range(4):
        quality.record_submit(connector_id, at)
    quality.record_outcome(connector_id, True, 2.0, at)
    quality.record_outcome(connector_id, True, 4.0, at)
    quality.record_outcome(connector_id, False, 8.0, at)
    quality.record_error(connector_id, "throttled", at)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_submits_recorded_together_reach_the_window_the_rollup_and_prometheus() -> None:
    """``record_submits`` counts a wave of submits once for all: the routing window, the
    minute rollup and the Prometheus counter each grow by the wave's size."""
    before = _metric("pigeon_connector_submitted_total", connector="unit-wave")
    quality = RecordingQualityWindow(min_samples=1)
    quality.record_submits("unit-wave", 7, T0)
    quality.record_submits("unit-wave", 0, T0)
    assert quality.stats("unit-wave", T0).submitted == 7
    assert sum(quality.rollup.pending().values()) == 7
    assert _metric("pigeon_connector_submitted_total", connector="unit-wave") == before + 7


def test_recording_window_counts_for_routing_rollup_and_prometheus() -> None:
    """One event updates the routing window, the minute rollup and the Prometheus counters."""
    before_submitted = _metric("pigeon_connector_submitted_total", connector="unit-a")
    before_errors = _metric("pigeon_connector_errors_total", connector="unit-a", code="throttled")
    before_undelivered = _metric(
        "pigeon_connector_outcomes_total", connector="unit-a", outcome="undelivered"
    )
    before_latencies = _metric("pigeon_connector_receipt_latency_seconds_count", connector="unit-a")
    quality = RecordingQualityWindow(min_samples=1)

    _traffic(quality, "unit-a", T0)

    stats = quality.stats("unit-a", T0)
    assert (stats.submitted, stats.delivered, stats.failed) == (4, 2, 1)
    assert sum(quality.rollup.pending().values()) == 4 + 3 + 3 + 1
    assert _metric("pigeon_connector_submitted_total", connector="unit-a") == before_submitted + 4
    assert (
        _metric("pigeon_connector_errors_total", connector="unit-a", code="throttled")
        == before_errors + 1
    )
    assert (
        _metric("pigeon_connector_outcomes_total", connector="unit-a", outcome="undelivered")
        == before_undelivered + 1
    )
    assert (
        _metric("pigeon_connector_receipt_latency_seconds_count", connector="unit-a")
        == before_latencies + 3
    )


async def test_flush_writes_once_and_keeps_counts_when_the_store_fails() -> None:
    """A flush is one batched write; a failed one leaves the counts for the next flush."""
    store = MemoryMinuteStore()
    quality = RecordingQualityWindow()
    figures = ConnectorFigures(store, quality, FakeClock(T0))
    _traffic(quality, "a", T0)
    store.fail_next = True

    with pytest.raises(OSError, match="database down"):
        await figures.flush()
    assert store.rows == {}
    assert sum(figures.unflushed().values()) == 11

    assert await figures.flush() == 7
    assert store.writes == 1
    assert sum(store.rows.values()) == 11
    assert figures.unflushed() == {}
    assert await figures.flush() == 0
    assert store.writes == 1


async def test_warm_up_restores_what_routing_saw_before_a_restart() -> None:
    """A new process warmed from the stored figures sees the record the old one had."""
    store = MemoryMinuteStore()
    clock = FakeClock(T0)
    before = RecordingQualityWindow(min_samples=1)
    _traffic(before, "a", T0 - timedelta(minutes=30))
    _traffic(before, "a", T0 - timedelta(hours=3))
    await ConnectorFigures(store, before, clock).flush()

    after = RecordingQualityWindow(min_samples=1)
    read = await ConnectorFigures(store, after, clock).warm_up()

    assert read == len(store.rows)
    for window in after.windows:
        old, new = before.stats("a", T0, window), after.stats("a", T0, window)
        assert (new.submitted, new.delivered, new.failed) == (
            old.submitted,
            old.delivered,
            old.failed,
        )
        assert new.p90_latency == old.p90_latency
        assert new.errors_by_code == old.errors_by_code
    assert after.rollup.pending() == {}


async def test_prune_deletes_minutes_past_the_retention() -> None:
    """Pruning drops stored minutes older than the retention and keeps the rest."""
    store = MemoryMinuteStore()
    clock = FakeClock(T0)
    quality = RecordingQualityWindow()
    figures = ConnectorFigures(store, quality, clock, retention=timedelta(hours=48))
    _traffic(quality, "a", T0 - timedelta(hours=49))
    _traffic(quality, "a", T0 - timedelta(hours=47))
    await figures.flush()

    assert await figures.prune() == 7
    assert all(key.minute >= window_start_minute(T0, timedelta(hours=48)) for key in store.rows)


async def test_stats_add_stored_and_unflushed_figures_per_window() -> None:
    """The read adds stored and not yet flushed figures, each window over its own minutes."""
    store = MemoryMinuteStore()
    clock = FakeClock(T0)
    quality = RecordingQualityWindow()
    figures = ConnectorFigures(store, quality, clock)
    _traffic(quality, "a", T0 - timedelta(hours=2))
    await figures.flush()
    _traffic(quality, "a", T0)
    read = ReadConnectorStats(store, figures, clock, lambda connector_id: connector_id == "a")

    answer = await read(_caller(Role.OPERATOR), "a")

    assert answer["connector_id"] == "a"
    five, hour, day = answer["windows"]["5m"], answer["windows"]["1h"], answer["windows"]["24h"]
    assert (five["submitted"], five["delivered"], five["undelivered"]) == (4, 2, 1)
    assert hour == five
    assert (day["submitted"], day["delivered"], day["undelivered"]) == (8, 4, 2)
    assert day["errors"] == {"throttled": 2}
    assert day["delivery_rate"] == pytest.approx(4 / 6)
    assert day["latency_p50_seconds"] is not None
    assert day["latency_p90_seconds"] is not None


async def test_stats_of_an_idle_connector_have_null_rates() -> None:
    """A configured connector without traffic answers zeros and null rates."""
    store = MemoryMinuteStore()
    clock = FakeClock(T0)
    figures = ConnectorFigures(store, RecordingQualityWindow(), clock)
    read = ReadConnectorStats(store, figures, clock, lambda connector_id: True)

    answer = await read(_caller(Role.OPERATOR), "idle")

    assert answer["windows"]["1h"] == {
        "submitted": 0,
        "delivered": 0,
        "undelivered": 0,
        "delivery_rate": None,
        "latency_p50_seconds": None,
        "latency_p90_seconds": None,
        "errors": {},
    }


async def test_stats_are_for_operators_and_known_connectors_only() -> None:
    """Tenant keys are refused; a connector neither configured nor with figures is not found."""
    store = MemoryMinuteStore()
    clock = FakeClock(T0)
    figures = ConnectorFigures(store, RecordingQualityWindow(), clock)
    read = ReadConnectorStats(store, figures, clock, lambda connector_id: False)

    with pytest.raises(Forbidden):
        await read(_caller(Role.TENANT), "a")
    with pytest.raises(NotFound) as raised:
        await read(_caller(Role.OPERATOR), "nope")
    assert raised.value.code == "connector_not_found"


def test_gauges_follow_the_window_and_vanish_without_receipts() -> None:
    """Rate and p90 gauges are set per window from the quality window, and removed when empty."""
    quality = RecordingQualityWindow(min_samples=10)
    _traffic(quality, "unit-g", T0)

    sample_quality_gauges(quality, ["unit-idle"], T0)

    rate = _metric("pigeon_connector_delivery_rate", connector="unit-g", window="1h")
    assert rate == pytest.approx(2 / 3)
    assert REGISTRY.get_sample_value(
        "pigeon_connector_receipt_latency_p90_seconds", {"connector": "unit-g", "window": "5m"}
    )
    assert (
        REGISTRY.get_sample_value(
            "pigeon_connector_delivery_rate", {"connector": "unit-idle", "window": "1h"}
        )
        is None
    )

    sample_quality_gauges(quality, [], T0 + HOUR * 25)

    assert (
        REGISTRY.get_sample_value(
            "pigeon_connector_delivery_rate", {"connector": "unit-g", "window": "24h"}
        )
        is None
    )


async def test_stored_gauges_add_every_process_figures_to_this_ones_unflushed() -> None:
    """A process that applies no receipts sets the gauges from what the others stored plus
    what it has not flushed yet, per window."""
    store = MemoryMinuteStore()
    clock = FakeClock(T0)
    elsewhere = ConnectorFigures(store, RecordingQualityWindow(), clock)
    here = ConnectorFigures(store, RecordingQualityWindow(), clock)
    _traffic(elsewhere.quality, "unit-s", T0)  # 2 delivered, 1 undelivered
    await elsewhere.flush()
    here.quality.record_outcome("unit-s", True, 1.0, T0)  # not flushed

    await sample_stored_quality_gauges(store, here, ["unit-s", "unit-none"], T0)

    assert _metric("pigeon_connector_delivery_rate", connector="unit-s", window="5m") == 0.75
    assert REGISTRY.get_sample_value(
        "pigeon_connector_receipt_latency_p90_seconds", {"connector": "unit-s", "window": "24h"}
    )
    assert (
        REGISTRY.get_sample_value(
            "pigeon_connector_delivery_rate", {"connector": "unit-none", "window": "1h"}
        )
        is None
    )
