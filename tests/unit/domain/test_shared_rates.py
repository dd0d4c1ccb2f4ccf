"""Sharing a carrier's throughput cap among the processes that send to it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.pacing import FLOOR, PacerUse, granted_rates, shared_rates

uses = st.builds(
    PacerUse,
    demand=st.floats(0, 10_000),
    waited=st.booleans(),
    rate=st.floats(0.01, 10_000),
)


@given(cap=st.floats(0.1, 10_000), by_process=st.dictionaries(st.integers(), uses, max_size=8))
def test_the_parts_add_up_to_the_cap_and_each_keeps_its_floor(
    cap: float, by_process: dict[int, PacerUse]
) -> None:
    """Whatever the processes did, their parts add up to the cap, and each keeps at least
    the floor of an even part."""
    parts = shared_rates(cap, by_process)
    assert set(parts) == set(by_process)
    if by_process:
        assert sum(parts.values()) == pytest.approx(cap)
        floor = cap * FLOOR / len(by_process)
        assert all(part >= floor * (1 - 1e-9) for part in parts.values())


def test_one_process_gets_the_whole_cap() -> None:
    """A cap paced by one process alone is all its own, however little it used."""
    assert shared_rates(500, {"w": PacerUse(3, False, 500)}) == {"w": pytest.approx(500)}


def test_a_waiting_process_takes_what_an_idle_one_leaves() -> None:
    """The regular worker, waiting for tokens, gets all but the idle OTP worker's floor."""
    parts = shared_rates(500, {"regular": PacerUse(250, True, 250), "otp": PacerUse(0, False, 250)})
    assert parts["otp"] == pytest.approx(500 * FLOOR / 2)
    assert parts["regular"] == pytest.approx(500 - 500 * FLOOR / 2)


def test_two_busy_processes_share_evenly_and_a_burst_grows_its_part() -> None:
    """Two processes both waiting split the cap; one whose use grows past its part (an OTP
    burst) gets more at the next sharing, up to an even part."""
    busy = shared_rates(500, {"a": PacerUse(450, True, 450), "b": PacerUse(25, True, 25)})
    assert busy["b"] == pytest.approx(50)  # twice what it had
    assert busy["a"] == pytest.approx(450)
    both = shared_rates(500, {"a": PacerUse(250, True, 250), "b": PacerUse(250, True, 250)})
    assert both == {"a": pytest.approx(250), "b": pytest.approx(250)}


def test_what_nobody_wants_is_spread_by_want() -> None:
    """With every want met, the rest goes in proportion to the wants."""
    parts = shared_rates(100, {"a": PacerUse(8, False, 50), "b": PacerUse(0, False, 50)})
    # wants: a 10 (8 x 1.25), b 5 (the floor); 85 left, two thirds to a
    assert parts["a"] == pytest.approx(10 + 85 * 10 / 15)
    assert parts["b"] == pytest.approx(5 + 85 * 5 / 15)


def test_no_process_no_parts() -> None:
    """Nobody pacing: nothing to share."""
    assert shared_rates(100, {}) == {}


@given(
    cap=st.floats(1, 10_000),
    pairs=st.dictionaries(
        st.integers(), st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)), max_size=8
    ),
)
def test_granted_parts_never_add_up_past_the_cap_with_the_parts_in_use(
    cap: float, pairs: dict[int, tuple[float, float]]
) -> None:
    """Moving from parts in use to new targets (each a set of parts within the cap), no
    mix of old and new parts exceeds the cap: rises come only out of what is unused now."""
    total_target = sum(t for t, _ in pairs.values()) or 1.0
    total_current = sum(c for _, c in pairs.values()) or 1.0
    targets = {k: cap * t / total_target for k, (t, _) in pairs.items()}
    current = {k: cap * c / total_current for k, (_, c) in pairs.items()}
    granted = granted_rates(cap, targets, current)
    for key in pairs:
        assert granted[key] <= max(targets[key], 0) * (1 + 1e-9)
    # Every process might still pace at its old part or already at its new one.
    worst = sum(max(granted[key], current[key]) for key in pairs)
    assert worst <= cap * (1 + 1e-9)


def test_a_rise_waits_for_the_fall_it_needs() -> None:
    """The regular worker's rise waits until the OTP worker has applied its fall; what is
    unused already is given at once."""
    assert granted_rates(500, {"r": 475, "o": 25}, {"r": 250, "o": 250}) == {"r": 250, "o": 25}
    assert granted_rates(500, {"r": 475, "o": 25}, {"r": 250, "o": 25}) == {"r": 475, "o": 25}
    assert granted_rates(500, {"r": 400, "o": 100}, {"r": 300, "o": 100}) == {"r": 400, "o": 100}
