"""Prometheus metrics shared by the use cases and adapters (one registry per process).

The counters and histograms that the hot paths count are Pigeon's own (``CounterFamily``,
``HistogramFamily``): a count is a plain number added to, without prometheus_client's lock
and checks (about a sixth of its cost; every count is made on the event loop's thread).
``OwnMetrics`` hands them to the registry at each scrape, summed with the counts of the other
processes that report to this one (``add_peer_source``): ``pigeon serve``'s worker processes
report theirs through ``pigeon.process_metrics``, so one scrape of ``serve`` sees the work of
every process. The gauges, set at scrape time, stay prometheus_client's.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)

#: A bucket bound as prometheus_client writes it in ``le`` (``0.005``, ``1.0``, ``+Inf``).
_bound_text: Callable[[float], str] = floatToGoString

#: A series' label values, in the order of its family's label names.
Labels = tuple[str, ...]
#: Every family's series as plain data (``snapshot``): a counter's series is ``[labels,
#: value]``, a histogram's ``[labels, counts per bucket (not cumulative, +Inf last), sum]``.
Snapshot = dict[str, list[list[Any]]]


_Child = TypeVar("_Child", "Count", "Timing")


class Count:
    """One counter series: a number that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (not negative)."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class Timing:
    """One histogram series: observations counted by bucket, and their sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        #: Observations per bucket (``bounds``' and +Inf), not cumulative.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound is at least ``value``."""
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class _Family(Generic[_Child]):
    """Series by label values, each made at its first use."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[object, ...], _Child] = {}

    def _made(self) -> _Child:
        raise NotImplementedError

    def _start(self) -> None:
        if not self.labelnames:  # shown from the start, at zero, as prometheus_client does
            self.labels()
        FAMILIES.append(self)  # type: ignore[arg-type]  # only the two families below

    def labels(self, *values: object) -> _Child:
        """The series of these label values (made at the first call)."""
        child = self._children.get(values)
        if child is None:
            self._check(values)
            child = self._children[values] = self._made()
        return child

    def _check(self, values: Sequence[object]) -> Labels:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values!r}")
        return tuple(str(value) for value in values)


class CounterFamily(_Family[Count]):
    """A counter by labels (``labels(...).inc()``); without label names, ``inc()`` itself."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labelnames)
        self._start()

    def _made(self) -> Count:
        return Count()

    def inc(self, amount: float = 1.0) -> None:
        """Add to the family's one series (a family without labels)."""
        self.labels().inc(amount)

    def series(self) -> list[list[Any]]:
        """``[labels, value]`` of every series."""
        return [[list(self._check(key)), child.value] for key, child in self._children.items()]


class HistogramFamily(_Family[Timing]):
    """A histogram by labels (``labels(...).observe(x)``); without label names,
    ``observe(x)`` itself."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(sorted(float(bound) for bound in buckets))
        self._start()

    def _made(self) -> Timing:
        return Timing(self.bounds)

    def observe(self, value: float) -> None:
        """Count ``value`` in the family's one series (a family without labels)."""
        self.labels().observe(value)

    def series(self) -> list[list[Any]]:
        """``[labels, counts per bucket, sum]`` of every series."""
        return [
            [list(self._check(key)), list(child.counts), child.sum]
            for key, child in self._children.items()
        ]


#: Every own family of this process, in the order made.
FAMILIES: list[CounterFamily | HistogramFamily] = []


def snapshot() -> Snapshot:
    """This process's own counters and histograms as plain data (JSON-ready)."""
    return {family.name: family.series() for family in FAMILIES}


def merge_snapshots(snapshots: Iterable[Mapping[str, Sequence[Sequence[Any]]]]) -> Snapshot:
    """The sum of ``snapshots`` by family and labels. A series that does not fit its family
    here (another version's buckets, a malformed report) is left out rather than miscounted."""
    known = {family.name: family for family in FAMILIES}
    counters: dict[str, dict[Labels, float]] = {}
    histograms: dict[str, dict[Labels, tuple[list[int], float]]] = {}
    for one in snapshots:
        for name, series in one.items():
            family = known.get(name)
            if family is None:
                continue
            for entry in series:
                try:
                    labels = tuple(str(value) for value in entry[0])
                    if len(labels) != len(family.labelnames):
                        continue
                    if isinstance(family, CounterFamily):
                        by_labels = counters.setdefault(name, {})
                        by_labels[labels] = by_labels.get(labels, 0.0) + float(entry[1])
                        continue
                    counts = [int(count) for count in entry[1]]
                    if len(counts) != len(family.bounds) + 1:
                        continue
                    held = histograms.setdefault(name, {})
                    before = held.get(labels)
                    if before is not None:
                        counts = [a + b for a, b in zip(before[0], counts, strict=True)]
                    held[labels] = (counts, (before[1] if before else 0.0) + float(entry[2]))
                except (TypeError, ValueError, IndexError):
                    continue
    merged: Snapshot = {}
    for name, values in counters.items():
        merged[name] = [[list(labels), value] for labels, value in values.items()]
    for name, held_values in histograms.items():
        merged[name] = [
            [list(labels), counts, total] for labels, (counts, total) in held_values.items()
        ]
    return merged


#: Where the counts of other processes come from (``add_peer_source``).
_PEER_SOURCES: list[Callable[[], Iterable[Snapshot]]] = []


def add_peer_source(source: Callable[[], Iterable[Snapshot]]) -> None:
    """Sum the snapshots ``source()`` gives at each scrape into this process's figures."""
    _PEER_SOURCES.append(source)


def remove_peer_source(source: Callable[[], Iterable[Snapshot]]) -> None:
    """Stop summing ``source``'s snapshots (it was given to ``add_peer_source``)."""
    if source in _PEER_SOURCES:
        _PEER_SOURCES.remove(source)


class OwnMetrics(Collector):
    """The own families for the registry: this process's series plus its peers'."""

    def collect(self) -> Iterator[Metric]:
        """One metric family per own family, its series summed over the processes."""
        sources: list[Snapshot] = [snapshot()]
        for source in list(_PEER_SOURCES):
            sources.extend(source())
        merged = merge_snapshots(sources)
        for family in FAMILIES:
            series = merged.get(family.name, [])
            if isinstance(family, CounterFamily):
                counter = CounterMetricFamily(
                    family.name, family.documentation, labels=family.labelnames
                )
                for labels, value in series:
                    counter.add_metric(labels, value)
                yield counter
                continue
            histogram = HistogramMetricFamily(
                family.name, family.documentation, labels=family.labelnames
            )
            bounds = [*(_bound_text(bound) for bound in family.bounds), "+Inf"]
            for labels, counts, total in series:
                cumulative: list[tuple[str, float]] = []
                running = 0
                for bound, count in zip(bounds, counts, strict=True):
                    running += count
                    cumulative.append((bound, running))
                histogram.add_metric(labels, cumulative, total)
            yield histogram


MESSAGE_STATUS = CounterFamily(
    "pigeon_message_status_changes",
    "Status changes of messages, by the status reached, category and connector.",
    ["status", "category", "connector"],
)
ACCEPT_SECONDS = HistogramFamily(
    "pigeon_accept_seconds",
    "Time to durably accept one message (validation, group commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
STORE_WRITE_SECONDS = HistogramFamily(
    "pigeon_store_write_seconds",
    "Time of each committed write transaction of this process's group-commit writer, from its"
    " start until it is durable, at the end of its COMMIT or of the WAL's sync after it"
    " (waiting for SQLite's write lock and the disk's sync included): a slow or stalled disk"
    " shows here first.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DELIVERY_SECONDS = HistogramFamily(
    "pigeon_delivery_seconds",
    "Time from acceptance to a delivered receipt.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
SUBMIT_ERRORS = CounterFamily(
    "pigeon_submit_errors",
    "Carrier submit failures, by connector and kind (temporary, throttled, permanent).",
    ["connector", "kind"],
)
WEBHOOK_ATTEMPTS = CounterFamily(
    "pigeon_webhook_attempts",
    "Webhook delivery attempts, by outcome (ok, failed, disabled).",
    ["outcome"],
)
WEBHOOK_POSTPONED = CounterFamily(
    "pigeon_webhook_postponed",
    "Webhook deliveries given back untried: their receiver held its share of the job slots.",
    [],
)
CLUSTER_QUOTA_WAITS = CounterFamily(
    "pigeon_cluster_quota_waits",
    "Submits that waited for the next token of their connector's Redis bucket (ADR 41).",
    ["connector"],
)
CLUSTER_QUOTA_FAILURES = CounterFamily(
    "pigeon_cluster_quota_failures",
    "Round trips to a connector's Redis bucket that failed: the process paced alone (ADR 41).",
    ["connector"],
)
_Read = TypeVar("_Read")


class ScrapeSample(Generic[_Read]):
    """What a gauge sampled at scrape time reads (``read``), shared by the scrapes: a reading
    is reused for ``max_age`` seconds, and scrapes that come while one is made wait for it
    instead of making their own. So two Prometheus servers, or a scrape interval shorter
    than the read, cost one read per ``max_age`` at most. A failed read is raised to every
    scrape that waited for it and the next scrape reads again."""

    def __init__(
        self,
        read: Callable[[], Awaitable[_Read]],
        max_age: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._max_age = max_age
        self._monotonic = monotonic
        self._reading: tuple[float, _Read] | None = None
        self._running: asyncio.Future[_Read] | None = None

    async def get(self) -> _Read:
        """The last reading if it is younger than ``max_age``, else a new one."""
        reading = self._reading
        if reading is not None and self._monotonic() - reading[0] < self._max_age:
            return reading[1]
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._refresh())
        # Shielded: a scrape that gives up (its client gone) leaves the read to the others.
        return await asyncio.shield(running)

    async def _refresh(self) -> _Read:
        try:
            started = self._monotonic()
            value = await self._read()
            self._reading = (started, value)
            return value
        finally:
            self._running = None


#: How long a count of the queued jobs serves the scrapes (``ScrapeSample``): at a million
#: jobs a count takes 60-150 ms (docs/benchmarks.md, session 40).
JOB_COUNT_MAX_AGE = 5.0

JOBS_PENDING = Gauge(
    "pigeon_jobs_pending",
    f"Jobs waiting in the queue, by kind (counted at scrape; a count serves the scrapes of "
    f"{JOB_COUNT_MAX_AGE:g} s).",
    ["kind"],
    registry=REGISTRY,
)

# Quality figures per connector (see docs/connectors.md, "Quality figures").
CONNECTOR_SUBMITTED = CounterFamily(
    "pigeon_connector_submitted",
    "Messages a connector's carrier accepted.",
    ["connector"],
)
CONNECTOR_OUTCOMES = CounterFamily(
    "pigeon_connector_outcomes",
    "Final receipts of a connector's messages, by outcome (delivered, undelivered).",
    ["connector", "outcome"],
)
CONNECTOR_ERRORS = CounterFamily(
    "pigeon_connector_errors",
    "Submit errors of a connector, by error code.",
    ["connector", "code"],
)
CONNECTOR_RECEIPT_LATENCY = HistogramFamily(
    "pigeon_connector_receipt_latency_seconds",
    "Time from a carrier accepting a message to its final receipt, per connector.",
    ["connector"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200, 21600, 86400),
)
CONNECTOR_DELIVERY_RATE = Gauge(
    "pigeon_connector_delivery_rate",
    "Delivered among final receipts over a sliding window (5m, 1h, 24h), sampled at scrape; "
    "absent while the window holds no receipt.",
    ["connector", "window"],
    registry=REGISTRY,
)
CONNECTOR_RECEIPT_LATENCY_P90 = Gauge(
    "pigeon_connector_receipt_latency_p90_seconds",
    "90th percentile of receipt latency over a sliding window (5m, 1h, 24h), sampled at "
    "scrape; absent while the window holds no latency.",
    ["connector", "window"],
    registry=REGISTRY,
)


REGISTRY.register(OwnMetrics())
