"""How well each connector delivers lately, learned from submits, receipts and errors.

``QualityWindow`` keeps, per connector (and per connector and country when a country is given),
sliding windows of fixed memory. Each window of length W is a ring of ``buckets`` time buckets
(W / 60 each by default) plus a running total, so recording and reading are O(1) and memory
never grows with traffic:

* **window edge**: a window covers the buckets of the last W, so it reaches between W minus one
  bucket and W into the past (within 1/60 of W by default: 5 s of 5 min, 1 min of 1 h).
* **latency percentiles** come from a log-scale histogram: a reported p50/p90 is within
  ``LATENCY_RELATIVE_ERROR`` (2^(1/8) - 1, about 9.05%) of the exact nearest-rank percentile
  for latencies from 0.1 s to ``LATENCY_CEILING`` (about 48.9 h); below 0.1 s it is within
  0.05 s, above the ceiling it reads as the ceiling.
* **error codes**: at most ``MAX_ERROR_CODES`` distinct codes per window; the rest count as
  ``"other"``.

Nothing here reads a clock: every call passes the (aware) time it stands for. Times should not
go backwards by more than a window: an event older than a window's reach is not counted there.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from types import MappingProxyType
from typing import NamedTuple

#: Latencies below this (seconds) fall into one bucket reported as half of it.
LATENCY_FLOOR = 0.1
#: Histogram bucket bounds grow by this factor (four buckets per doubling).
LATENCY_RATIO = 2 ** (1 / 4)
_BOUNDS: tuple[float, ...] = tuple(LATENCY_FLOOR * 2 ** (i / 4) for i in range(84))
#: Latencies at or above this (about 48.9 hours) are reported as this value.
LATENCY_CEILING = _BOUNDS[-1]
#: Worst relative error of a reported percentile between the floor and the ceiling.
LATENCY_RELATIVE_ERROR = 2 ** (1 / 8) - 1
_BINS = len(_BOUNDS) + 1
_REPRESENTATIVE: tuple[float, ...] = (
    LATENCY_FLOOR / 2,
    *(math.sqrt(low * high) for low, high in pairwise(_BOUNDS)),
    LATENCY_CEILING,
)

#: Distinct error codes kept per window before the rest are counted as ``OTHER_ERRORS``.
MAX_ERROR_CODES = 64
OTHER_ERRORS = "other"

FIVE_MINUTES = timedelta(minutes=5)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class QualityStats:
    """A connector's record over one window.

    ``delivery_rate`` is delivered / (delivered + failed) receipts, and the latencies are receipt
    latencies in seconds; each is ``None`` while there are fewer samples than the window's
    ``min_samples``.
    """

    submitted: int
    delivered: int
    failed: int
    delivery_rate: float | None
    p50_latency: float | None
    p90_latency: float | None
    errors_by_code: Mapping[str, int]

    @property
    def outcomes(self) -> int:
        """Receipts with a final outcome (delivered or failed) in the window."""
        return self.delivered + self.failed

    @property
    def errors(self) -> int:
        """Submit errors of every code in the window."""
        return sum(self.errors_by_code.values())


def latency_bin(seconds: float) -> int:
    """The histogram bin a latency falls into."""
    return bisect_right(_BOUNDS, seconds)


def bin_value(index: int) -> float:
    """The latency a histogram bin reports: the geometric middle of its bounds."""
    return _REPRESENTATIVE[index]


class _Bucket:
    """What happened during one bucket of time."""

    __slots__ = ("delivered", "errors", "failed", "index", "latencies", "submitted")

    def __init__(self, index: int) -> None:
        self.index = index
        self.submitted = 0
        self.delivered = 0
        self.failed = 0
        self.latencies: dict[int, int] = {}
        self.errors: dict[str, int] = {}


class _Ring:
    """One sliding window: a ring of buckets and the running total of the live ones."""

    __slots__ = (
        "cached",
        "delivered",
        "errors",
        "failed",
        "head",
        "latencies",
        "latency_samples",
        "min_samples",
        "resolution",
        "size",
        "slots",
        "submitted",
    )

    def __init__(self, window: timedelta, size: int, min_samples: int) -> None:
        self.resolution = window.total_seconds() / size
        self.size = size
        self.min_samples = min_samples
        self.slots: list[_Bucket | None] = [None] * size
        self.head: int | None = None
        self.cached: QualityStats | None = None
        self._reset_totals()

    def _reset_totals(self) -> None:
        self.submitted = 0
        self.delivered = 0
        self.failed = 0
        self.latencies = [0] * _BINS
        self.latency_samples = 0
        self.errors: dict[str, int] = {}

    def advance(self, index: int) -> None:
        """Move the head to bucket ``index``, dropping the buckets that leave the window."""
        head = self.head
        if head is None or index <= head:
            if head is None:
                self.head = index
            return
        if index - head >= self.size:
            self.slots = [None] * self.size
            self._reset_totals()
            self.cached = None
        else:
            slots = self.slots
            for expired in range(head + 1, index + 1):
                slot = expired % self.size
                bucket = slots[slot]
                if bucket is not None:
                    self._subtract(bucket)
                    slots[slot] = None
        self.head = index

    def _subtract(self, bucket: _Bucket) -> None:
        self.submitted -= bucket.submitted
        self.delivered -= bucket.delivered
        self.failed -= bucket.failed
        for index, count in bucket.latencies.items():
            self.latencies[index] -= count
            self.latency_samples -= count
        for code, count in bucket.errors.items():
            left = self.errors[code] - count
            if left:
                self.errors[code] = left
            else:
                del self.errors[code]
        self.cached = None

    def bucket(self, seconds: float) -> _Bucket | None:
        """The live bucket for an event at ``seconds``, or ``None`` if it is out of reach."""
        index = int(seconds // self.resolution)
        self.advance(index)
        head = self.head
        if head is not None and index <= head - self.size:
            return None
        slot = index % self.size
        found = self.slots[slot]
        if found is None or found.index != index:
            found = _Bucket(index)
            self.slots[slot] = found
        self.cached = None
        return found

    def error_key(self, code: str) -> str:
        """``code``, or ``OTHER_ERRORS`` once the window holds too many distinct codes."""
        if code in self.errors or len(self.errors) < MAX_ERROR_CODES:
            return code
        return OTHER_ERRORS

    def live(self) -> int:
        """How many buckets hold data."""
        return sum(1 for bucket in self.slots if bucket is not None)

    def stats(self, seconds: float, min_samples: int | None = None) -> QualityStats:
        """The totals of the window ending at ``seconds`` (rates and percentiles need
        ``min_samples`` samples, the ring's own floor when not given)."""
        self.advance(int(seconds // self.resolution))
        if min_samples is not None and min_samples != self.min_samples:
            return _summary(
                self.submitted,
                self.delivered,
                self.failed,
                self.latencies,
                self.latency_samples,
                self.errors,
                min_samples,
            )
        cached = self.cached
        if cached is not None:
            return cached
        cached = _summary(
            self.submitted,
            self.delivered,
            self.failed,
            self.latencies,
            self.latency_samples,
            self.errors,
            self.min_samples,
        )
        self.cached = cached
        return cached


def _summary(
    submitted: int,
    delivered: int,
    failed: int,
    latencies: Sequence[int],
    latency_samples: int,
    errors: Mapping[str, int],
    min_samples: int,
) -> QualityStats:
    """``QualityStats`` of raw totals; rates and percentiles need ``min_samples`` samples."""
    outcomes = delivered + failed
    rate = delivered / outcomes if outcomes and outcomes >= min_samples else None
    p50 = p90 = None
    if latency_samples and latency_samples >= min_samples:
        p50, p90 = _percentiles(latencies, latency_samples)
    return QualityStats(
        submitted=submitted,
        delivered=delivered,
        failed=failed,
        delivery_rate=rate,
        p50_latency=p50,
        p90_latency=p90,
        errors_by_code=MappingProxyType(dict(errors)),
    )


def _percentiles(histogram: Sequence[int], samples: int) -> tuple[float, float]:
    """Nearest-rank p50 and p90 of a latency histogram holding ``samples`` values."""
    rank50 = (samples + 1) // 2  # ceil(samples * 0.5), in integers
    rank90 = (samples * 9 + 9) // 10  # ceil(samples * 0.9)
    seen = 0
    p50: float | None = None
    for index, count in enumerate(histogram):
        if not count:
            continue
        seen += count
        if p50 is None and seen >= rank50:
            p50 = _REPRESENTATIVE[index]
        if seen >= rank90:
            return p50 if p50 is not None else _REPRESENTATIVE[index], _REPRESENTATIVE[index]
    raise AssertionError("histogram holds fewer values than its sample count")  # pragma: no cover


class _Series:
    """Every window of one connector (or one connector in one country)."""

    __slots__ = ("rings",)

    def __init__(self, windows: Sequence[timedelta], size: int, min_samples: int) -> None:
        self.rings = {window: _Ring(window, size, min_samples) for window in windows}


def _seconds(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("quality times must be aware datetimes (UTC)")
    return at.timestamp()


class QualityWindow:
    """Sliding-window delivery statistics per connector, optionally per connector and country.

    ``windows`` are the lengths that ``stats`` answers for (5 min, 1 h and 24 h by default);
    each is split into ``buckets`` buckets. Rates and percentiles need ``min_samples`` samples.
    As a ``QualitySource`` for routing it answers for ``default_window`` (1 h).
    """

    def __init__(
        self,
        windows: Iterable[timedelta] = (FIVE_MINUTES, HOUR, DAY),
        *,
        buckets: int = 60,
        min_samples: int = 10,
        default_window: timedelta = HOUR,
    ) -> None:
        self._windows = tuple(sorted(set(windows)))
        if not self._windows or any(w <= timedelta(0) for w in self._windows):
            raise ValueError("quality windows must be positive durations")
        if buckets < 1:
            raise ValueError("a window needs at least one bucket")
        if min_samples < 1:
            raise ValueError("min_samples must be at least 1")
        if default_window not in self._windows:
            raise ValueError(f"default window {default_window} is not one of {self._windows}")
        self._buckets = buckets
        self._min_samples = min_samples
        self._default = default_window
        self._series: dict[tuple[str, str | None], _Series] = {}
        # Routing asks for several connectors at one ``now``: convert it once.
        self._now: datetime | None = None
        self._now_seconds = 0.0

    @property
    def windows(self) -> tuple[timedelta, ...]:
        """The window lengths ``stats`` answers for, shortest first."""
        return self._windows

    def _targets(self, connector_id: str, country: str | None) -> list[_Series]:
        keys: list[tuple[str, str | None]] = [(connector_id, None)]
        if country is not None:
            keys.append((connector_id, country))
        targets = []
        for key in keys:
            series = self._series.get(key)
            if series is None:
                series = _Series(self._windows, self._buckets, self._min_samples)
                self._series[key] = series
            targets.append(series)
        return targets

    def record_submit(self, connector_id: str, at: datetime, *, country: str | None = None) -> None:
        """A message was handed to ``connector_id`` at ``at``."""
        self.record_submits(connector_id, 1, at, country=country)

    def record_submits(
        self, connector_id: str, count: int, at: datetime, *, country: str | None = None
    ) -> None:
        """``count`` messages were handed to ``connector_id`` at ``at`` (a wave of submits
        answered together: each window is looked up once, not once per message)."""
        if count <= 0:
            return
        seconds = _seconds(at)
        for series in self._targets(connector_id, country):
            for ring in series.rings.values():
                bucket = ring.bucket(seconds)
                if bucket is not None:
                    bucket.submitted += count
                    ring.submitted += count

    def record_outcome(
        self,
        connector_id: str,
        delivered: bool,
        latency_seconds: float | None,
        at: datetime,
        *,
        country: str | None = None,
    ) -> None:
        """A receipt with a final outcome arrived at ``at``, ``latency_seconds`` after submit.

        Negative latencies (clock skew between us and the carrier) count as zero; a latency
        that is not a number is ignored.
        """
        self.record_outcomes(connector_id, ((delivered, latency_seconds),), at, country=country)

    def record_outcomes(
        self,
        connector_id: str,
        outcomes: Sequence[tuple[bool, float | None]],
        at: datetime,
        *,
        country: str | None = None,
    ) -> None:
        """``record_outcome`` for each (delivered, latency) of ``outcomes``, all arrived at
        ``at`` (a carrier's receipts of one read): counted once per bucket, not per receipt."""
        if not outcomes:
            return
        seconds = _seconds(at)
        delivered = 0
        bins: dict[int, int] = {}
        for ok, latency_seconds in outcomes:
            if ok:
                delivered += 1
            if latency_seconds is not None and not math.isnan(latency_seconds):
                index = latency_bin(max(latency_seconds, 0.0))
                bins[index] = bins.get(index, 0) + 1
        failed = len(outcomes) - delivered
        sampled = sum(bins.values())
        for series in self._targets(connector_id, country):
            for ring in series.rings.values():
                bucket = ring.bucket(seconds)
                if bucket is None:
                    continue
                bucket.delivered += delivered
                ring.delivered += delivered
                bucket.failed += failed
                ring.failed += failed
                if bins:
                    latencies = bucket.latencies
                    for index, count in bins.items():
                        latencies[index] = latencies.get(index, 0) + count
                        ring.latencies[index] += count
                    ring.latency_samples += sampled

    def record_error(
        self, connector_id: str, code: str, at: datetime, *, country: str | None = None
    ) -> None:
        """A submit to ``connector_id`` failed at ``at`` with error ``code``.

        Errors are counted by code for dashboards and alerts; they do not change the delivery
        rate (record a failed outcome too when the error ended the message).
        """
        seconds = _seconds(at)
        for series in self._targets(connector_id, country):
            for ring in series.rings.values():
                bucket = ring.bucket(seconds)
                if bucket is None:
                    continue
                key = ring.error_key(code)
                bucket.errors[key] = bucket.errors.get(key, 0) + 1
                ring.errors[key] = ring.errors.get(key, 0) + 1

    def stats(
        self,
        connector_id: str,
        now: datetime,
        window: timedelta | None = None,
        *,
        country: str | None = None,
        min_samples: int | None = None,
    ) -> QualityStats:
        """The record of ``connector_id`` (in ``country`` if given) over ``window`` up to ``now``.

        ``window`` defaults to the default window (1 h); only configured windows are answered.
        An unknown connector has an empty record. ``min_samples`` overrides the sample floor of
        rates and percentiles for this call (e.g. 1 for dashboards).
        """
        window = self._default if window is None else window
        series = self._series.get((connector_id, country))
        if series is None:
            if window not in self._windows:
                raise ValueError(f"window {window} is not one of {self._windows}")
            return _EMPTY
        ring = series.rings.get(window)
        if ring is None:
            raise ValueError(f"window {window} is not one of {self._windows}")
        if now is not self._now:
            self._now_seconds = _seconds(now)
            self._now = now
        return ring.stats(self._now_seconds, min_samples)

    def record_counts(self, connector_id: str, at: datetime, counts: MinuteCounts) -> None:
        """Add many events of ``connector_id`` at once, all at ``at`` (warming up from stored
        figures): submits, outcomes with their latency histogram, and errors by code."""
        seconds = _seconds(at)
        for series in self._targets(connector_id, None):
            for ring in series.rings.values():
                bucket = ring.bucket(seconds)
                if bucket is None:
                    continue
                bucket.submitted += counts.submitted
                ring.submitted += counts.submitted
                bucket.delivered += counts.delivered
                ring.delivered += counts.delivered
                bucket.failed += counts.undelivered
                ring.failed += counts.undelivered
                for index, count in counts.latency_bins.items():
                    if not 0 <= index < _BINS or count <= 0:
                        continue
                    bucket.latencies[index] = bucket.latencies.get(index, 0) + count
                    ring.latencies[index] += count
                    ring.latency_samples += count
                for code, count in counts.errors.items():
                    if count <= 0:
                        continue
                    key = ring.error_key(code)
                    bucket.errors[key] = bucket.errors.get(key, 0) + count
                    ring.errors[key] = ring.errors.get(key, 0) + count

    def connector_ids(self) -> list[str]:
        """The connectors with a record (possibly empty until the next ``prune``), sorted."""
        return sorted({connector_id for connector_id, _ in self._series})

    def over(self, window: timedelta) -> WindowView:
        """This accumulator as a routing ``QualitySource`` answering for ``window``."""
        if window not in self._windows:
            raise ValueError(f"window {window} is not one of {self._windows}")
        return WindowView(self, window)

    def prune(self, now: datetime) -> int:
        """Forget connectors with nothing left in any window; returns how many were dropped."""
        seconds = _seconds(now)
        idle = []
        for key, series in self._series.items():
            for ring in series.rings.values():
                ring.advance(int(seconds // ring.resolution))
            if not any(ring.live() for ring in series.rings.values()):
                idle.append(key)
        for key in idle:
            del self._series[key]
        return len(idle)

    def bucket_count(self) -> int:
        """Buckets holding data, over every connector and window: the memory in use."""
        return sum(ring.live() for s in self._series.values() for ring in s.rings.values())


class WindowView:
    """A ``QualityWindow`` answering ``stats(connector_id, now)`` for one fixed window."""

    __slots__ = ("_source", "_window")

    def __init__(self, source: QualityWindow, window: timedelta) -> None:
        self._source = source
        self._window = window

    def stats(self, connector_id: str, now: datetime) -> QualityStats:
        """The record of ``connector_id`` over this view's window up to ``now``."""
        return self._source.stats(connector_id, now, self._window)


_EMPTY = QualityStats(0, 0, 0, None, None, None, MappingProxyType({}))


# Durable figures: per-minute counters that a store adds up and reads back.

#: The kinds of per-minute counters (``MinuteKey.metric``).
SUBMITTED = "submitted"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
ERROR = "error"
LATENCY = "latency"
METRICS = (SUBMITTED, DELIVERED, UNDELIVERED, ERROR, LATENCY)
#: Error codes longer than this are cut (a carrier's free text must not grow the store).
MAX_ERROR_CODE_LENGTH = 64


class MinuteKey(NamedTuple):
    """One counter of one connector in one minute (a tuple: cheap to build and hash).

    ``minute`` counts minutes since the Unix epoch (UTC); ``key`` is the error code for
    ``error``, the latency histogram bin (see ``latency_bin``) as text for ``latency``, and ""
    for the other metrics.
    """

    connector_id: str
    minute: int
    metric: str
    key: str = ""


def epoch_minute(at: datetime) -> int:
    """The minute ``at`` falls in, counted from the Unix epoch."""
    return int(_seconds(at) // 60)


class MinuteRollup:
    """Per-minute counters waiting to be written: adding is one dict update per counter.

    ``drain`` hands over everything counted so far and starts afresh; ``restore`` puts back
    counts that could not be written (they are added to whatever was counted meanwhile).
    """

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[MinuteKey, int] = {}

    def _add(self, key: MinuteKey, count: int = 1) -> None:
        counts = self._counts
        counts[key] = counts.get(key, 0) + count

    def add_submit(self, connector_id: str, at: datetime, count: int = 1) -> None:
        """A message (``count`` of them) was handed to ``connector_id``."""
        key = MinuteKey(connector_id, epoch_minute(at), SUBMITTED, "")
        counts = self._counts
        counts[key] = counts.get(key, 0) + count

    def add_outcome(
        self, connector_id: str, delivered: bool, latency_seconds: float | None, at: datetime
    ) -> None:
        """A final receipt: delivered or not, and its latency when known."""
        self.add_outcomes(connector_id, ((delivered, latency_seconds),), at)

    def add_outcomes(
        self, connector_id: str, outcomes: Sequence[tuple[bool, float | None]], at: datetime
    ) -> None:
        """``add_outcome`` for each (delivered, latency) of ``outcomes``, all at ``at``."""
        if not outcomes:
            return
        minute = epoch_minute(at)
        counts: dict[tuple[str, str], int] = {}
        for delivered, latency_seconds in outcomes:
            final = (DELIVERED if delivered else UNDELIVERED, "")
            counts[final] = counts.get(final, 0) + 1
            if latency_seconds is not None and not math.isnan(latency_seconds):
                latency = (LATENCY, str(latency_bin(max(latency_seconds, 0.0))))
                counts[latency] = counts.get(latency, 0) + 1
        for (metric, detail), count in counts.items():
            self._add(MinuteKey(connector_id, minute, metric, detail), count)

    def add_error(self, connector_id: str, code: str, at: datetime) -> None:
        """A submit failed with ``code``."""
        code = code[:MAX_ERROR_CODE_LENGTH] or "unknown"
        self._add(MinuteKey(connector_id, epoch_minute(at), ERROR, code))

    def drain(self) -> dict[MinuteKey, int]:
        """Everything counted since the last drain; the rollup is empty afterwards."""
        counts, self._counts = self._counts, {}
        return counts

    def restore(self, counts: Mapping[MinuteKey, int]) -> None:
        """Put back drained counts that were not written."""
        for key, count in counts.items():
            self._add(key, count)

    def pending(self) -> Mapping[MinuteKey, int]:
        """What is counted and not drained yet (a read-only view)."""
        return MappingProxyType(self._counts)

    def __len__(self) -> int:
        return len(self._counts)


@dataclass(slots=True)
class MinuteCounts:
    """The counters of one connector added up over some minutes."""

    submitted: int = 0
    delivered: int = 0
    undelivered: int = 0
    latency_bins: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, metric: str, key: str, count: int) -> None:
        """Add ``count`` to one counter; unknown metrics and bad bins are ignored."""
        if metric == SUBMITTED:
            self.submitted += count
        elif metric == DELIVERED:
            self.delivered += count
        elif metric == UNDELIVERED:
            self.undelivered += count
        elif metric == ERROR:
            self.errors[key] = self.errors.get(key, 0) + count
        elif metric == LATENCY:
            try:
                index = int(key)
            except ValueError:
                return
            if 0 <= index < _BINS:
                self.latency_bins[index] = self.latency_bins.get(index, 0) + count

    def summary(self, min_samples: int = 1) -> QualityStats:
        """These totals as ``QualityStats`` (rates and percentiles need ``min_samples``)."""
        histogram = [0] * _BINS
        for index, count in self.latency_bins.items():
            histogram[index] += count
        return _summary(
            self.submitted,
            self.delivered,
            self.undelivered,
            histogram,
            sum(histogram),
            self.errors,
            min_samples,
        )


def window_start_minute(now: datetime, window: timedelta) -> int:
    """The first minute a window of ``window`` ending at ``now`` covers in per-minute figures:
    the current minute and the whole minutes before it, ``window`` in all (so it reaches between
    ``window`` minus one minute and ``window`` into the past)."""
    minutes = max(1, math.ceil(window.total_seconds() / 60))
    return epoch_minute(now) - minutes + 1
