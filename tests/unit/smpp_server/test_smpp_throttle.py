"""The token bucket behind per-account SMPP throughput."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.smpp_server.throttle import TokenBucket


def test_a_burst_gets_the_rate_then_refusals() -> None:
    """At 5/s a burst at one instant gets 5 tokens, then is refused."""
    bucket = TokenBucket(5, now=0.0)
    assert [bucket.take(0.0) for _ in range(7)] == [True] * 5 + [False] * 2


def test_tokens_come_back_with_time() -> None:
    """After 0.4 s at 5/s, two more submits fit."""
    bucket = TokenBucket(5, now=0.0)
    for _ in range(5):
        bucket.take(0.0)
    assert [bucket.take(0.4) for _ in range(3)] == [True, True, False]


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=1, max_value=20))
def test_over_whole_seconds_at_most_rate_times_seconds_plus_burst(rate: int, seconds: int) -> None:
    """Whatever the pattern, n seconds admit at most rate * n + burst submits."""
    bucket = TokenBucket(rate, now=0.0)
    taken = 0
    steps = 10
    for step in range(seconds * steps + 1):
        now = step / steps
        while bucket.take(now):
            taken += 1
    assert taken <= rate * seconds + bucket.burst


def test_rate_must_be_positive() -> None:
    """A zero rate is a configuration error."""
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
