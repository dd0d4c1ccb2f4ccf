"""Connector figures on real SQLite and PostgreSQL: additive upserts, reads, and restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant
from pigeon.domain.quality import (
    DELIVERED,
    ERROR,
    HOUR,
    SUBMITTED,
    MinuteKey,
    epoch_minute,
)
from pigeon.services.authenticate import Caller
from pigeon.services.connector_stats import (
    ConnectorFigures,
    ReadConnectorStats,
    RecordingQualityWindow,
)
from pigeon.store import Database, connect
from pigeon.store.connector_stats import SqlConnectorStatsStore
from pigeon.testing import FakeClock

NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
MINUTE = epoch_minute(NOW)
OPERATOR = Caller(
    Tenant("ten_1", "demo", None, NOW),
    ApiKey("key_1", "ten_1", KeyMode.LIVE, Role.OPERATOR, "digest", "pk_live_xxxx", NOW),
)


def _traffic(quality: RecordingQualityWindow, at: datetime) -> None:
    for _ in range(5):
        quality.record_submit("carrier-a", at)
    for latency in (1.0, 2.0, 3.0):
        quality.record_outcome("carrier-a", True, latency, at)
    quality.record_outcome("carrier-a", False, 20.0, at)
    quality.record_error("carrier-a", "throttled", at)
    quality.record_error("carrier-a", "invalid_destination", at)


async def test_upserts_add_up_in_the_same_minute(database: Database) -> None:
    """Two writes of the same counter add up; totals and reads go by minute."""
    store = SqlConnectorStatsStore(database)
    submitted = MinuteKey("carrier-a", MINUTE, SUBMITTED)
    await store.add_minutes({submitted: 2, MinuteKey("carrier-a", MINUTE, ERROR, "e1"): 1})
    await store.add_minutes({submitted: 3, MinuteKey("carrier-a", MINUTE - 90, DELIVERED): 4})

    rows = dict(await store.minutes_since(MINUTE - 10))
    hour = await store.totals_since("carrier-a", MINUTE - 59)
    day = await store.totals_since("carrier-a", MINUTE - 1439)

    assert rows == {submitted: 5, MinuteKey("carrier-a", MINUTE, ERROR, "e1"): 1}
    assert (hour.submitted, hour.delivered, hour.errors) == (5, 0, {"e1": 1})
    assert (day.submitted, day.delivered) == (5, 4)
    assert await store.has_figures("carrier-a")
    assert not await store.has_figures("carrier-b")


async def test_prune_deletes_old_minutes_only(database: Database) -> None:
    """Pruning deletes the minutes before the cut and keeps the others."""
    store = SqlConnectorStatsStore(database)
    await store.add_minutes(
        {
            MinuteKey("carrier-a", MINUTE - 3000, SUBMITTED): 1,
            MinuteKey("carrier-a", MINUTE, SUBMITTED): 1,
        }
    )

    assert await store.prune(MINUTE - 2880) == 1
    assert [key.minute for key, _ in await store.minutes_since(0)] == [MINUTE]


async def test_concurrent_flushes_into_one_minute_add_up(database: Database) -> None:
    """Flushes of several processes into the same minutes lose no count."""
    store = SqlConnectorStatsStore(database)
    key = MinuteKey("carrier-a", MINUTE, SUBMITTED)

    await asyncio.gather(*(store.add_minutes({key: 1}) for _ in range(20)))

    assert dict(await store.minutes_since(MINUTE)) == {key: 20}


async def test_figures_survive_a_restart(database_url: str) -> None:
    """Figures flushed by one process are what a new process reads and warms routing with."""
    clock = FakeClock(NOW)
    first = await connect(database_url)
    try:
        quality = RecordingQualityWindow(min_samples=1)
        figures = ConnectorFigures(SqlConnectorStatsStore(first), quality, clock)
        _traffic(quality, NOW - timedelta(minutes=20))
        _traffic(quality, NOW - timedelta(hours=5))
        await figures.flush()
        read = ReadConnectorStats(figures.store, figures, clock, lambda _: True)
        before = await read(OPERATOR, "carrier-a")
        routing_before = quality.stats("carrier-a", NOW, HOUR)
    finally:
        await first.close()

    second = await connect(database_url)
    try:
        warmed = RecordingQualityWindow(min_samples=1)
        figures = ConnectorFigures(SqlConnectorStatsStore(second), warmed, clock)
        assert await figures.warm_up() > 0
        read = ReadConnectorStats(figures.store, figures, clock, lambda _: False)
        after = await read(OPERATOR, "carrier-a")
        routing_after = warmed.stats("carrier-a", NOW, HOUR)
    finally:
        await second.close()

    assert after["windows"] == before["windows"]
    hour = after["windows"]["1h"]
    assert (hour["submitted"], hour["delivered"], hour["undelivered"]) == (5, 3, 1)
    assert hour["errors"] == {"invalid_destination": 1, "throttled": 1}
    assert hour["delivery_rate"] == 0.75
    assert after["windows"]["24h"]["submitted"] == 10
    assert after["windows"]["5m"]["submitted"] == 0
    assert (routing_after.submitted, routing_after.delivered, routing_after.failed) == (5, 3, 1)
    assert routing_after.p90_latency == routing_before.p90_latency
    assert routing_after.errors_by_code == routing_before.errors_by_code
