"""Pigeon's own counters and histograms: counting, the Prometheus exposition, and sums with
other processes' snapshots."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import generate_latest

from pigeon.telemetry import (
    REGISTRY,
    CounterFamily,
    HistogramFamily,
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
