"""Pigeon's own counters and histograms: counting, the Prometheus exposition, and sums with
other processes' snapshots; the samples that scrapes share."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prometheus_client import generate_latest

from pigeon.telemetry import (
    REGISTRY,
    CounterFamily,
    HistogramFamily,
    ScrapeSample,
    add_peer_source,
    merge_snapshots,
    remove_peer_source,
    snapshot,
)

_names = itertools.count()


def _name(kind: str) -> str:
    return f"pigeon_test_{kind}_{next(_names)}"


def test_a_counter_counts_by_labels_and_shows_as_a_total() -> None:
    """Each label set is its own series, exposed as ``<name>_total`` with its labels."""
    name = _name("counter")
    family = CounterFamily(name, "A test counter.", ["status", "connector"])
    family.labels("sent", "sim").inc()
    family.labels("sent", "sim").inc(2)
    family.labels("delivered", "sim").inc()
    assert REGISTRY.get_sample_value(f"{name}_total", {"status": "sent", "connector": "sim"}) == 3
    assert (
        REGISTRY.get_sample_value(f"{name}_total", {"status": "delivered", "connector": "sim"}) == 1
    )
    text = generate_latest(REGISTRY).decode()
    assert f"# TYPE {name}_total counter" in text
    assert f"# HELP {name}_total A test counter." in text


def test_a_counter_refuses_to_go_down_and_wrong_labels() -> None:
    """A negative amount and a label count other than the family's raise ``ValueError``."""
    family = CounterFamily(_name("counter"), "A test counter.", ["outcome"])
    with pytest.raises(ValueError, match="only goes up"):
        family.labels("ok").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        family.labels("ok", "extra")


def test_a_family_without_labels_shows_at_zero_from_the_start() -> None:
    """An unlabelled counter and histogram are exposed before anything is counted."""
    counter = _name("counter")
    histogram = _name("histogram")
    CounterFamily(counter, "Nothing yet.")
    HistogramFamily(histogram, "Nothing yet.", buckets=(1.0,))
    assert REGISTRY.get_sample_value(f"{counter}_total") == 0
    assert REGISTRY.get_sample_value(f"{histogram}_count") == 0
    assert REGISTRY.get_sample_value(f"{histogram}_bucket", {"le": "+Inf"}) == 0


def test_a_histogram_counts_each_value_in_its_cumulative_buckets() -> None:
    """A value on a bound counts in that bucket; above every bound only in +Inf; the sum and
    count follow."""
    name = _name("histogram")
    family = HistogramFamily(name, "A test histogram.", buckets=(0.5, 0.005, 1))
    for value in (0.001, 0.005, 0.3, 1.0, 7.0):
        family.observe(value)

    def bucket(le: str) -> float | None:
        return REGISTRY.get_sample_value(f"{name}_bucket", {"le": le})

    assert [bucket(le) for le in ("0.005", "0.5", "1.0", "+Inf")] == [2, 3, 4, 5]
    assert REGISTRY.get_sample_value(f"{name}_count") == 5
    assert REGISTRY.get_sample_value(f"{name}_sum") == pytest.approx(8.306)


def test_merged_snapshots_sum_by_family_and_labels_and_leave_out_what_does_not_fit() -> None:
    """Counters and histogram buckets add up per label set; a series with other buckets or
    the wrong labels, and unknown families, are left out."""
    counter = CounterFamily(_name("counter"), "Merged.", ["connector"])
    histogram = HistogramFamily(_name("histogram"), "Merged.", buckets=(1.0, 2.0))
    first = {
        counter.name: [[["a"], 2.0], [["b"], 1.0]],
        histogram.name: [[[], [1, 0, 2], 5.5]],
        "pigeon_unknown": [[["x"], 9.0]],
    }
    second = {
        counter.name: [[["a"], 3.0], [["a", "extra"], 100.0]],
        histogram.name: [[[], [0, 1, 0], 1.5], [[], [1, 1], 9.0]],
    }
    merged = merge_snapshots([first, second])
    assert sorted(merged[counter.name]) == [[["a"], 5.0], [["b"], 1.0]]
    assert merged[histogram.name] == [[[], [1, 1, 2], 7.0]]
    assert "pigeon_unknown" not in merged


def test_peer_snapshots_are_summed_into_the_registry_until_removed() -> None:
    """What a peer source gives is added to this process's own series at each scrape."""
    family = CounterFamily(_name("counter"), "Peers.", ["status"])
    family.labels("sent").inc(2)
    source = lambda: [{family.name: [[["sent"], 5.0], [["delivered"], 4.0]]}]  # noqa: E731
    add_peer_source(source)
    try:
        assert REGISTRY.get_sample_value(f"{family.name}_total", {"status": "sent"}) == 7
        assert REGISTRY.get_sample_value(f"{family.name}_total", {"status": "delivered"}) == 4
    finally:
        remove_peer_source(source)
    assert REGISTRY.get_sample_value(f"{family.name}_total", {"status": "sent"}) == 2
    assert REGISTRY.get_sample_value(f"{family.name}_total", {"status": "delivered"}) is None


def test_a_snapshot_holds_every_series_as_plain_data() -> None:
    """``snapshot`` gives each family's series as lists and numbers (JSON-ready)."""
    family = HistogramFamily(_name("histogram"), "Snapshot.", ["connector"], buckets=(1.0,))
    family.labels("sim").observe(0.5)
    assert snapshot()[family.name] == [[["sim"], [1, 0], 0.5]]


class _Counts:
    """A read of counts that records how often it ran, held until ``release`` is set."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def __call__(self) -> dict[str, int]:
        self.reads += 1
        await self.release.wait()
        if self.fail:
            raise OSError("the store is gone")
        return {"dispatch": self.reads}


async def test_a_scrape_sample_is_reused_until_it_is_max_age_old() -> None:
    """Scrapes within max_age get the reading made for the first; a later one reads again."""
    now = [100.0]
    counts = _Counts()
    sample = ScrapeSample(counts, 5.0, monotonic=lambda: now[0])
    assert await sample.get() == {"dispatch": 1}
    now[0] = 104.9
    assert await sample.get() == {"dispatch": 1}
    now[0] = 105.0
    assert await sample.get() == {"dispatch": 2}
    assert counts.reads == 2


async def test_scrapes_during_a_read_wait_for_it_instead_of_reading_again() -> None:
    """Three scrapes that come while a count runs share that one count."""
    counts = _Counts()
    counts.release.clear()
    sample = ScrapeSample(counts, 5.0)
    scrapes = [asyncio.ensure_future(sample.get()) for _ in range(3)]
    await asyncio.sleep(0)
    counts.release.set()
    assert await asyncio.gather(*scrapes) == [{"dispatch": 1}] * 3
    assert counts.reads == 1


async def test_a_failed_read_fails_its_scrapes_and_the_next_scrape_reads_again() -> None:
    """A read that raises reaches every scrape waiting for it; nothing stale is kept from it."""
    counts = _Counts()
    counts.fail = True
    sample = ScrapeSample(counts, 5.0)
    with pytest.raises(OSError, match="the store is gone"):
        await sample.get()
    counts.fail = False
    assert await sample.get() == {"dispatch": 2}


async def test_a_scrape_that_gives_up_leaves_the_read_to_the_others() -> None:
    """A scrape cancelled while the count runs does not cancel the count another waits for."""
    counts = _Counts()
    counts.release.clear()
    sample = ScrapeSample(counts, 5.0)
    leaving = asyncio.ensure_future(sample.get())
    staying = asyncio.ensure_future(sample.get())
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    counts.release.set()
    assert await staying == {"dispatch": 1}
    assert leaving.cancelled()
    assert counts.reads == 1
