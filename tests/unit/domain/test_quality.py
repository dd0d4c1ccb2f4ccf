"""Quality windows: delivery rates and latency percentiles over sliding windows, bounded."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.domain.quality import (
    DAY,
    FIVE_MINUTES,
    HOUR,
    LATENCY_CEILING,
    LATENCY_FLOOR,
    LATENCY_RELATIVE_ERROR,
    MAX_ERROR_CODES,
    OTHER_ERRORS,
    MinuteRollup,
    QualityWindow,
    bin_value,
    latency_bin,
)
from pigeon.domain.routing import QualitySource

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def nearest_rank(values: list[float], fraction: float) -> float:
    """The exact nearest-rank percentile the histogram approximates."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[rank - 1]


def assert_close(reported: float | None, exact: float) -> None:
    """Within the documented error: relative above the floor, absolute below it."""
    assert reported is not None
    exact = min(exact, LATENCY_CEILING)
    if exact < LATENCY_FLOOR:
        assert abs(reported - exact) <= LATENCY_FLOOR / 2 + 1e-12
    else:
        assert abs(reported - exact) <= exact * LATENCY_RELATIVE_ERROR * (1 + 1e-9)


def test_delivery_rate_counts_delivered_among_outcomes() -> None:
    """Eight delivered and two failed receipts make a delivery rate of 0.8."""
    window = QualityWindow(min_samples=10)
    for i in range(10):
        window.record_submit("a", T0)
        window.record_outcome("a", i < 8, 2.0, T0)
    stats = window.stats("a", T0)
    assert (stats.submitted, stats.delivered, stats.failed, stats.outcomes) == (10, 8, 2, 10)
    assert stats.delivery_rate == pytest.approx(0.8)


def test_rate_and_percentiles_need_enough_samples() -> None:
    """Below min_samples the rate and latencies are unknown, not a guess from a few receipts."""
    window = QualityWindow(min_samples=5)
    for _ in range(4):
        window.record_outcome("a", True, 1.0, T0)
    few = window.stats("a", T0)
    assert (few.delivery_rate, few.p50_latency, few.p90_latency) == (None, None, None)
    window.record_outcome("a", True, 1.0, T0)
    assert window.stats("a", T0).delivery_rate == 1.0


def test_unknown_connector_has_an_empty_record() -> None:
    """A connector never heard of has zero counts and no rate."""
    stats = QualityWindow().stats("nobody", T0)
    assert (stats.submitted, stats.outcomes, stats.delivery_rate, stats.errors) == (0, 0, None, 0)


@settings(max_examples=200)
@given(
    st.lists(
        st.floats(min_value=0, max_value=500_000, allow_nan=False),
        min_size=1,
        max_size=400,
    )
)
def test_percentiles_are_within_the_documented_error(latencies: list[float]) -> None:
    """p50 and p90 are within 9.05% (or 0.05 s below 0.1 s) of the exact nearest-rank values."""
    window = QualityWindow(min_samples=1)
    for latency in latencies:
        window.record_outcome("a", True, latency, T0)
    stats = window.stats("a", T0)
    assert_close(stats.p50_latency, nearest_rank(latencies, 0.5))
    assert_close(stats.p90_latency, nearest_rank(latencies, 0.9))


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("uniform 1-10 s", lambda rng: rng.uniform(1, 10)),
        ("lognormal around 3 s", lambda rng: rng.lognormvariate(1.1, 0.8)),
        ("exponential, mean 20 s", lambda rng: rng.expovariate(1 / 20)),
        ("bimodal 2 s / 60 s", lambda rng: rng.choice((2.0, 60.0)) * rng.uniform(0.9, 1.1)),
    ],
)
def test_percentiles_on_known_distributions(name: str, draw: object) -> None:
    """On 10,000 latencies from common shapes, p50/p90 stay within the documented error."""
    rng = random.Random(name)
    values = [draw(rng) for _ in range(10_000)]  # type: ignore[operator]
    window = QualityWindow()
    for value in values:
        window.record_outcome("a", True, value, T0)
    stats = window.stats("a", T0)
    assert_close(stats.p50_latency, nearest_rank(values, 0.5))
    assert_close(stats.p90_latency, nearest_rank(values, 0.9))


def test_latency_bins_report_their_geometric_middle() -> None:
    """Each bin's value lies within its bounds' error; odd inputs land in the end bins."""
    assert bin_value(latency_bin(0.0)) == LATENCY_FLOOR / 2
    assert bin_value(latency_bin(10 * LATENCY_CEILING)) == LATENCY_CEILING
    for seconds in (0.1, 0.5, 1, 3.3, 42, 3600, 86_400):
        assert_close(bin_value(latency_bin(seconds)), seconds)


def test_negative_and_missing_latencies() -> None:
    """Clock skew's negative latency counts as zero; None or NaN count the outcome only."""
    window = QualityWindow(min_samples=1)
    window.record_outcome("a", True, -3.0, T0)
    window.record_outcome("a", True, None, T0)
    window.record_outcome("a", False, float("nan"), T0)
    stats = window.stats("a", T0)
    assert stats.outcomes == 3
    assert stats.p90_latency == LATENCY_FLOOR / 2


def test_old_buckets_expire_from_each_window() -> None:
    """Outcomes leave the 5 min window after 5 min and the 1 h window after 1 h, not the 24 h."""
    window = QualityWindow(min_samples=1)
    for _ in range(10):
        window.record_outcome("a", False, 5.0, T0)
    later = T0 + timedelta(minutes=6)
    assert window.stats("a", later, FIVE_MINUTES).outcomes == 0
    assert window.stats("a", later, HOUR).outcomes == 10
    much_later = T0 + timedelta(minutes=61)
    assert window.stats("a", much_later, HOUR).outcomes == 0
    assert window.stats("a", much_later, DAY).outcomes == 10
    assert window.stats("a", T0 + timedelta(hours=25), DAY).outcomes == 0


def test_window_edge_is_within_one_bucket() -> None:
    """An event counts for between W minus one bucket and W (1/60 of W by default)."""
    window = QualityWindow(min_samples=1)
    window.record_outcome("a", True, 1.0, T0)
    assert window.stats("a", T0 + HOUR - timedelta(minutes=1, seconds=1)).outcomes == 1
    assert window.stats("a", T0 + HOUR + timedelta(seconds=1)).outcomes == 0


def test_late_events_count_while_their_bucket_is_in_the_window() -> None:
    """An out-of-order event still inside a window counts; one older than it does not."""
    window = QualityWindow(min_samples=1)
    window.record_submit("a", T0)
    window.record_submit("a", T0 - timedelta(minutes=30))
    window.record_submit("a", T0 - timedelta(hours=2))
    assert window.stats("a", T0, HOUR).submitted == 2
    assert window.stats("a", T0, DAY).submitted == 3


Event = tuple[int, int, bool]  # (seconds after T0, kind 0 submit / 1 outcome, delivered)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3 * 3600), st.integers(0, 1), st.booleans()),
        max_size=150,
    ).map(sorted),
    st.integers(0, 4 * 3600),
)
def test_running_totals_match_a_recount(events: list[Event], query_after: int) -> None:
    """After any stream of events, each window's totals equal a recount of its buckets."""
    window = QualityWindow(min_samples=1)
    for seconds, kind, delivered in events:
        at = T0 + timedelta(seconds=seconds)
        if kind == 0:
            window.record_submit("a", at)
        else:
            window.record_outcome("a", delivered, 1.0, at)
    last = events[-1][0] if events else 0
    now_seconds = last + query_after
    now = T0 + timedelta(seconds=now_seconds)
    for length in window.windows:
        resolution = length.total_seconds() / 60
        base = T0.timestamp()

        def live(seconds: int, resolution: float = resolution, base: float = base) -> bool:
            head = (base + now_seconds) // resolution
            return (base + seconds) // resolution > head - 60

        kept = [e for e in events if live(e[0])]
        stats = window.stats("a", now, length)
        assert stats.submitted == sum(1 for e in kept if e[1] == 0)
        assert stats.delivered == sum(1 for e in kept if e[1] == 1 and e[2])
        assert stats.failed == sum(1 for e in kept if e[1] == 1 and not e[2])


def test_memory_stays_bounded_over_days_of_traffic() -> None:
    """Three days of steady traffic keep at most buckets x windows buckets per connector."""
    window = QualityWindow(min_samples=1)
    rng = random.Random(7)
    for step in range(3 * 24 * 60 * 2):  # every 30 s for three days
        at = T0 + timedelta(seconds=30 * step)
        window.record_submit("a", at)
        window.record_outcome("a", rng.random() < 0.9, rng.uniform(0.5, 600), at)
        window.record_error("a", f"code{rng.randrange(3)}", at)
    assert window.bucket_count() <= 60 * len(window.windows)
    assert window.stats("a", at, DAY).submitted <= 24 * 60 * 2


def test_prune_forgets_idle_connectors() -> None:
    """A connector silent for longer than the longest window is dropped by prune."""
    window = QualityWindow()
    window.record_submit("old", T0)
    window.record_submit("busy", T0 + timedelta(hours=23))
    assert window.prune(T0 + timedelta(hours=25)) == 1
    assert window.bucket_count() > 0
    assert window.prune(T0 + timedelta(hours=48)) == 1
    assert window.bucket_count() == 0


def test_errors_are_counted_by_code_with_a_cap() -> None:
    """Submit errors count per code; past MAX_ERROR_CODES distinct codes the rest are 'other'."""
    window = QualityWindow()
    for n in range(MAX_ERROR_CODES + 5):
        window.record_error("a", f"e{n}", T0)
    window.record_error("a", "e0", T0)
    stats = window.stats("a", T0)
    assert stats.errors_by_code["e0"] == 2
    assert stats.errors_by_code[OTHER_ERRORS] == 5
    assert stats.errors == MAX_ERROR_CODES + 6
    assert stats.delivery_rate is None
    later = window.stats("a", T0 + timedelta(hours=2))
    assert dict(later.errors_by_code) == {}


def test_country_stats_are_kept_beside_connector_stats() -> None:
    """Outcomes with a country count for that country and for the connector as a whole."""
    window = QualityWindow(min_samples=1)
    window.record_outcome("a", True, 1.0, T0, country="GB")
    window.record_outcome("a", False, 1.0, T0, country="FR")
    window.record_submit("a", T0, country="GB")
    window.record_error("a", "x", T0, country="GB")
    assert window.stats("a", T0).outcomes == 2
    gb = window.stats("a", T0, country="GB")
    assert (gb.delivery_rate, gb.submitted, gb.errors) == (1.0, 1, 1)
    assert window.stats("a", T0, country="FR").delivery_rate == 0.0


def test_it_is_a_quality_source_for_routing() -> None:
    """stats(connector_id, now) answers for the default 1 h window; over() picks another."""
    window = QualityWindow(min_samples=1)
    window.record_outcome("a", True, 1.0, T0)
    source: QualitySource = window
    five: QualitySource = window.over(FIVE_MINUTES)
    later = T0 + timedelta(minutes=10)
    stats = source.stats("a", later)
    assert stats is not None
    assert stats.outcomes == 1
    short = five.stats("a", later)
    assert short is not None
    assert short.outcomes == 0


def test_stats_are_cached_until_something_changes() -> None:
    """Asking twice without new events returns the same snapshot; a new event refreshes it."""
    window = QualityWindow(min_samples=1)
    window.record_outcome("a", True, 1.0, T0)
    first = window.stats("a", T0)
    assert window.stats("a", T0) is first
    window.record_outcome("a", False, 1.0, T0)
    assert window.stats("a", T0).outcomes == 2


@pytest.mark.parametrize(
    "build",
    [
        lambda: QualityWindow(windows=()),
        lambda: QualityWindow(windows=(timedelta(0),)),
        lambda: QualityWindow(buckets=0),
        lambda: QualityWindow(min_samples=0),
        lambda: QualityWindow(windows=(HOUR,), default_window=DAY),
    ],
)
def test_bad_configuration_is_rejected(build: object) -> None:
    """Empty or non-positive windows, no buckets, zero min_samples or a stray default fail."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails for its own reason
        build()  # type: ignore[operator]


def test_times_must_be_aware_and_windows_configured() -> None:
    """Naive datetimes and windows that are not configured are refused."""
    window = QualityWindow()
    with pytest.raises(ValueError, match="aware"):
        window.record_submit("a", datetime(2026, 1, 1))
    window.record_submit("a", T0)
    with pytest.raises(ValueError, match="not one of"):
        window.stats("a", T0, timedelta(minutes=7))
    with pytest.raises(ValueError, match="not one of"):
        window.stats("nobody", T0, timedelta(minutes=7))
    with pytest.raises(ValueError, match="not one of"):
        window.over(timedelta(minutes=7))


_OUTCOMES = st.lists(
    st.tuples(
        st.booleans(),
        st.one_of(
            st.none(),
            st.just(float("nan")),
            st.floats(min_value=-10, max_value=200_000, allow_nan=False),
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(outcomes=_OUTCOMES, offset=st.integers(min_value=0, max_value=3 * 86_400))
def test_outcomes_recorded_together_count_as_recorded_one_by_one(
    outcomes: list[tuple[bool, float | None]], offset: int
) -> None:
    """``record_outcomes`` of a batch leaves every window's figures as ``record_outcome`` of
    each does, whatever came before (a receipt a while ago rolls the windows on)."""
    together, one_by_one = QualityWindow(min_samples=1), QualityWindow(min_samples=1)
    for window in (together, one_by_one):
        window.record_outcome("a", True, 3.0, T0)
    at = T0 + timedelta(seconds=offset)
    together.record_outcomes("a", outcomes, at, country="NL")
    for delivered, latency in outcomes:
        one_by_one.record_outcome("a", delivered, latency, at, country="NL")
    for window_length in (FIVE_MINUTES, HOUR, DAY):
        assert together.stats("a", at, window_length) == one_by_one.stats("a", at, window_length)
        assert together.stats("a", at, window_length, country="NL") == one_by_one.stats(
            "a", at, window_length, country="NL"
        )


@settings(max_examples=200, deadline=None)
@given(outcomes=_OUTCOMES)
def test_a_rollup_of_outcomes_together_counts_as_one_by_one(
    outcomes: list[tuple[bool, float | None]],
) -> None:
    """``MinuteRollup.add_outcomes`` counts what ``add_outcome`` of each counts."""
    together, one_by_one = MinuteRollup(), MinuteRollup()
    together.add_outcomes("a", outcomes, T0)
    for delivered, latency in outcomes:
        one_by_one.add_outcome("a", delivered, latency, T0)
    assert together.drain() == one_by_one.drain()


@given(
    counts=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6),
    minutes=st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=6),
)
def test_submits_recorded_together_count_as_many_recorded_one_by_one(
    counts: list[int], minutes: list[int]
) -> None:
    """``record_submits(c, n, at)`` leaves every window and the rollup as ``n`` calls of
    ``record_submit(c, at)`` do (zero changes nothing)."""
    together, alone = QualityWindow(), QualityWindow()
    rollup_together, rollup_alone = MinuteRollup(), MinuteRollup()
    for count, minute in zip(counts, minutes, strict=False):
        at = T0 + timedelta(minutes=minute)
        together.record_submits("a", count, at)
        rollup_together.add_submit("a", at, count)
        for _ in range(count):
            alone.record_submit("a", at)
            rollup_alone.add_submit("a", at)
    end = T0 + timedelta(minutes=max(minutes))
    for window in (FIVE_MINUTES, HOUR, DAY):
        assert together.stats("a", end, window) == alone.stats("a", end, window)
    assert {k: v for k, v in rollup_together.pending().items() if v} == rollup_alone.pending()
