"""Quality figures per connector: counted in memory on the hot path, kept per minute in the store.

Three parts:

* ``RecordingQualityWindow`` is the routing ``QualityWindow`` that also counts each submit,
  outcome and error into a ``MinuteRollup`` and the Prometheus counters: in-memory dict and
  counter updates only, nothing per message reaches the database.
* ``ConnectorFigures`` flushes the rollup to the store every few seconds (one batched upsert),
  warms the quality window from the last 24 hours of stored figures at start (so routing and
  the gauges survive a restart), and prunes minutes nobody reads any more.
* ``ReadConnectorStats`` answers ``GET /v1/connectors/{id}/stats`` (operators only) from the
  stored figures plus what this process has not flushed yet: the figures of every process
  sharing the database, at one-minute resolution.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Gauge

from pigeon.domain.errors import NotFound
from pigeon.domain.quality import (
    DAY,
    FIVE_MINUTES,
    HOUR,
    MAX_ERROR_CODE_LENGTH,
    MinuteCounts,
    MinuteKey,
    MinuteRollup,
    QualityStats,
    QualityWindow,
    epoch_minute,
    window_start_minute,
)
from pigeon.ports import Clock
from pigeon.services.authenticate import Caller
from pigeon.telemetry import (
    CONNECTOR_DELIVERY_RATE,
    CONNECTOR_ERRORS,
    CONNECTOR_OUTCOMES,
    CONNECTOR_RECEIPT_LATENCY,
    CONNECTOR_RECEIPT_LATENCY_P90,
    CONNECTOR_SUBMITTED,
    Count,
    Timing,
)

log = logging.getLogger(__name__)

#: The windows the figures are given for, by their name in the API and in metric labels.
WINDOWS: dict[str, timedelta] = {"5m": FIVE_MINUTES, "1h": HOUR, "24h": DAY}
#: How often unflushed figures are written.
FLUSH_INTERVAL_SECONDS = 5.0
#: Stored minutes older than this are deleted (the longest window, with a margin).
RETENTION = timedelta(hours=48)
#: How often old minutes are pruned.
PRUNE_INTERVAL = timedelta(hours=1)


class ConnectorMinuteStore(Protocol):
    """Where per-minute figures are added up and read back (``store.connector_stats``)."""

    async def add_minutes(self, counts: Mapping[MinuteKey, int]) -> None: ...

    async def minutes_since(self, since_minute: int) -> list[tuple[MinuteKey, int]]: ...

    async def totals_since(self, connector_id: str, since_minute: int) -> MinuteCounts: ...

    async def has_figures(self, connector_id: str) -> bool: ...

    async def prune(self, before_minute: int) -> int: ...


class RecordingQualityWindow(QualityWindow):
    """The routing quality window that also counts every event for the durable figures and for
    Prometheus (``pigeon_connector_*``)."""

    def __init__(
        self,
        windows: Iterable[timedelta] = (FIVE_MINUTES, HOUR, DAY),
        *,
        rollup: MinuteRollup | None = None,
        buckets: int = 60,
        min_samples: int = 10,
        default_window: timedelta = HOUR,
    ) -> None:
        super().__init__(
            windows, buckets=buckets, min_samples=min_samples, default_window=default_window
        )
        self.rollup = rollup if rollup is not None else MinuteRollup()
        # Metric series by connector: ``labels()`` costs more than the update itself.
        self._submitted: dict[str, Count] = {}
        self._outcomes: dict[tuple[str, bool], Count] = {}
        self._latencies: dict[str, Timing] = {}

    def record_submits(
        self, connector_id: str, count: int, at: datetime, *, country: str | None = None
    ) -> None:
        """``count`` messages were handed to ``connector_id`` at ``at`` (``record_submit``
        is one of them)."""
        if count <= 0:
            return
        super().record_submits(connector_id, count, at, country=country)
        self.rollup.add_submit(connector_id, at, count)
        counter = self._submitted.get(connector_id)
        if counter is None:
            counter = self._submitted[connector_id] = CONNECTOR_SUBMITTED.labels(connector_id)
        counter.inc(count)

    def record_outcomes(
        self,
        connector_id: str,
        outcomes: Sequence[tuple[bool, float | None]],
        at: datetime,
        *,
        country: str | None = None,
    ) -> None:
        """Final receipts that arrived together at ``at``: (delivered, seconds after submit)."""
        super().record_outcomes(connector_id, outcomes, at, country=country)
        self.rollup.add_outcomes(connector_id, outcomes, at)
        delivered = sum(1 for ok, _ in outcomes if ok)
        for ok, count in ((True, delivered), (False, len(outcomes) - delivered)):
            if not count:
                continue
            counter = self._outcomes.get((connector_id, ok))
            if counter is None:
                outcome = "delivered" if ok else "undelivered"
                counter = CONNECTOR_OUTCOMES.labels(connector_id, outcome)
                self._outcomes[(connector_id, ok)] = counter
            counter.inc(count)
        histogram = None
        for _, latency_seconds in outcomes:
            if latency_seconds is not None and not math.isnan(latency_seconds):
                if histogram is None:
                    histogram = self._latencies.get(connector_id)
                    if histogram is None:
                        histogram = CONNECTOR_RECEIPT_LATENCY.labels(connector_id)
                        self._latencies[connector_id] = histogram
                histogram.observe(max(latency_seconds, 0.0))

    def record_error(
        self, connector_id: str, code: str, at: datetime, *, country: str | None = None
    ) -> None:
        """A submit to ``connector_id`` failed at ``at`` with error ``code``."""
        super().record_error(connector_id, code, at, country=country)
        self.rollup.add_error(connector_id, code, at)
        CONNECTOR_ERRORS.labels(connector_id, code[:MAX_ERROR_CODE_LENGTH] or "unknown").inc()


class ConnectorFigures:
    """Keeps the figures of a ``RecordingQualityWindow`` in the store: flush, warm-up, prune."""

    def __init__(
        self,
        store: ConnectorMinuteStore,
        quality: RecordingQualityWindow,
        clock: Clock,
        *,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
        retention: timedelta = RETENTION,
    ) -> None:
        self._store = store
        self._quality = quality
        self._clock = clock
        self._flush_interval = flush_interval
        self._retention = retention
        self._in_flight: dict[MinuteKey, int] = {}
        self._flushing = asyncio.Lock()
        self._pruned_at: datetime | None = None

    @property
    def store(self) -> ConnectorMinuteStore:
        """Where the figures are kept."""
        return self._store

    @property
    def quality(self) -> RecordingQualityWindow:
        """The window the figures come from (and that routing reads)."""
        return self._quality

    async def warm_up(self) -> int:
        """Load the last 24 hours of stored figures into the quality window (before traffic
        starts); returns how many stored counters were read."""
        now = self._clock.now()
        since = window_start_minute(now, max(self._quality.windows))
        by_minute: dict[tuple[str, int], MinuteCounts] = {}
        rows = await self._store.minutes_since(since)
        for key, count in rows:
            counts = by_minute.get((key.connector_id, key.minute))
            if counts is None:
                counts = by_minute[(key.connector_id, key.minute)] = MinuteCounts()
            counts.add(key.metric, key.key, count)
        for (connector_id, minute), counts in sorted(by_minute.items(), key=lambda i: i[0][1]):
            at = datetime.fromtimestamp(minute * 60, now.tzinfo)
            self._quality.record_counts(connector_id, min(at, now), counts)
        return len(rows)

    def unflushed(self) -> dict[MinuteKey, int]:
        """What this process counted and has not stored yet (pending and being written)."""
        counts = dict(self._in_flight)
        for key, count in self._quality.rollup.pending().items():
            counts[key] = counts.get(key, 0) + count
        return counts

    async def flush(self) -> int:
        """Write what was counted since the last flush in one batched upsert; returns how many
        counters. On failure the counts go back to the rollup for the next flush."""
        async with self._flushing:
            drained = self._quality.rollup.drain()
            if not drained:
                return 0
            self._in_flight = drained
            try:
                await self._store.add_minutes(drained)
            except BaseException:
                self._quality.rollup.restore(drained)
                raise
            finally:
                self._in_flight = {}
            return len(drained)

    async def prune(self) -> int:
        """Delete stored minutes older than the retention; returns how many rows."""
        now = self._clock.now()
        self._pruned_at = now
        return await self._store.prune(epoch_minute(now - self._retention))

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every few seconds (and prune hourly) until ``stop`` is set, then flush once
        more. Failures are logged and retried at the next flush."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._flush_interval)
            try:
                await self.flush()
                now = self._clock.now()
                if self._pruned_at is None or now - self._pruned_at >= PRUNE_INTERVAL:
                    await self.prune()
                self._quality.prune(now)
            except asyncio.CancelledError:
                raise
            except Exception:  # figures wait for the next flush; the gateway goes on
                log.exception("flushing connector figures failed; retrying later")


class ReadConnectorStats:
    """``GET /v1/connectors/{id}/stats``: a connector's figures over 5 min, 1 h and 24 h."""

    def __init__(
        self,
        store: ConnectorMinuteStore,
        figures: ConnectorFigures,
        clock: Clock,
        is_configured: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._figures = figures
        self._clock = clock
        self._is_configured = is_configured

    async def __call__(self, caller: Caller, connector_id: str) -> dict[str, Any]:
        """The figures of ``connector_id``; operator keys only, ``NotFound`` if the connector
        is neither configured nor has stored figures."""
        caller.require_operator()
        unflushed = {
            k: c for k, c in self._figures.unflushed().items() if k.connector_id == connector_id
        }
        if (
            not self._is_configured(connector_id)
            and not unflushed
            and not await self._store.has_figures(connector_id)
        ):
            raise NotFound(f"No connector {connector_id!r}.", code="connector_not_found")
        now = self._clock.now()
        windows = {
            name: figures_document(stats)
            for name, stats in (
                await stored_windows(self._store, self._figures, connector_id, now)
            ).items()
        }
        return {"connector_id": connector_id, "as_of": now.isoformat(), "windows": windows}


async def stored_windows(
    store: ConnectorMinuteStore, figures: ConnectorFigures, connector_id: str, now: datetime
) -> dict[str, QualityStats]:
    """``connector_id``'s figures over each window (``WINDOWS``) as stored by every process
    sharing the database, plus what this process has not flushed yet."""
    unflushed = [
        (key, count)
        for key, count in figures.unflushed().items()
        if key.connector_id == connector_id
    ]
    windows: dict[str, QualityStats] = {}
    for name, window in WINDOWS.items():
        since = window_start_minute(now, window)
        totals = await store.totals_since(connector_id, since)
        for key, count in unflushed:
            if key.minute >= since:
                totals.add(key.metric, key.key, count)
        windows[name] = totals.summary()
    return windows


def figures_document(stats: QualityStats) -> dict[str, Any]:
    """One window's figures as the API shows them."""
    return {
        "submitted": stats.submitted,
        "delivered": stats.delivered,
        "undelivered": stats.failed,
        "delivery_rate": stats.delivery_rate,
        "latency_p50_seconds": stats.p50_latency,
        "latency_p90_seconds": stats.p90_latency,
        "errors": dict(sorted(stats.errors_by_code.items())),
    }


def sample_quality_gauges(
    quality: QualityWindow, connector_ids: Iterable[str], now: datetime
) -> None:
    """Set ``pigeon_connector_delivery_rate`` and ``..._receipt_latency_p90_seconds`` for each
    connector and window from ``quality`` (what this process's routing sees); a window without
    receipts, or a connector gone from both, has no sample."""
    by_connector: dict[str, dict[str, QualityStats]] = {}
    for connector_id in sorted({*connector_ids, *quality.connector_ids()}):
        by_connector[connector_id] = {
            name: quality.stats(connector_id, now, window, min_samples=1)
            for name, window in WINDOWS.items()
            if window in quality.windows
        }
    set_quality_gauges(by_connector)


async def sample_stored_quality_gauges(
    store: ConnectorMinuteStore,
    figures: ConnectorFigures,
    connector_ids: Iterable[str],
    now: datetime,
) -> None:
    """``sample_quality_gauges`` from the figures every process stored (``stored_windows``):
    for a process whose own routing sees no receipts (``serve`` with worker processes)."""
    set_quality_gauges(
        {
            connector_id: await stored_windows(store, figures, connector_id, now)
            for connector_id in sorted(set(connector_ids))
        }
    )


def set_quality_gauges(by_connector: Mapping[str, Mapping[str, QualityStats]]) -> None:
    """The quality gauges, replaced by these figures (by connector, then window name)."""
    samples: list[tuple[Gauge, str, str, float]] = []
    for connector_id, windows in by_connector.items():
        for name, stats in windows.items():
            if stats.delivery_rate is not None:
                samples.append((CONNECTOR_DELIVERY_RATE, connector_id, name, stats.delivery_rate))
            if stats.p90_latency is not None:
                samples.append(
                    (CONNECTOR_RECEIPT_LATENCY_P90, connector_id, name, stats.p90_latency)
                )
    # Cleared and set with no await in between: a scrape sees the old samples or the new ones.
    CONNECTOR_DELIVERY_RATE.clear()
    CONNECTOR_RECEIPT_LATENCY_P90.clear()
    for gauge, connector_id, window_name, value in samples:
        gauge.labels(connector_id, window_name).set(value)
