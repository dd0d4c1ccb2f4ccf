"""The connectors' pacer: a token bucket whose rate changes while it runs, and its counts."""

from __future__ import annotations

import asyncio

import pytest

from pigeon.connectors.pacing import TokenBucket


class FakeTime:
    """A monotonic clock that moves only when someone sleeps on it (or the test moves it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_token_bucket_paces_takers_to_the_rate() -> None:
    """At 10/s with a burst of 1, 21 back-to-back takes span 2 seconds of (fake) time."""
    fake = FakeTime()
    bucket = TokenBucket(10, now=fake, sleep=fake.sleep)

    for _ in range(21):
        await bucket.take()

    assert fake.now - 100.0 == pytest.approx(2.0)
    assert bucket.waits == 20


async def test_token_bucket_allows_a_burst_of_a_tenth_of_a_second() -> None:
    """At 100/s the first 10 takes go through without sleeping, the 11th waits."""
    fake = FakeTime()
    bucket = TokenBucket(100, now=fake, sleep=fake.sleep)

    for _ in range(10):
        await bucket.take()
    assert bucket.waits == 0
    await bucket.take()
    assert bucket.waits == 1
    assert fake.now == pytest.approx(100.01)


async def test_a_new_rate_paces_the_takes_that_follow() -> None:
    """At 10/s, 11 takes span a second; at 20/s the next 20 span another second."""
    fake = FakeTime()
    bucket = TokenBucket(10, now=fake, sleep=fake.sleep)
    for _ in range(11):
        await bucket.take()
    assert fake.now == pytest.approx(101.0)
    bucket.set_rate(20)
    for _ in range(20):
        await bucket.take()
    assert fake.now == pytest.approx(102.0)
    assert (bucket.rate, bucket.cap, bucket.capacity) == (20, 10, 2.0)


async def test_the_pacer_counts_its_takes_and_those_that_waited() -> None:
    """``taken`` counts every take and ``waits`` those that had to sleep; a part of a cap
    keeps the cap it is part of."""
    fake = FakeTime()
    bucket = TokenBucket(5, cap=50, now=fake, sleep=fake.sleep)
    for _ in range(4):
        await bucket.take()
    assert (bucket.taken, bucket.waits, bucket.cap) == (4, 3, 50)
    fake.now += 10  # idle: the bucket refills to its burst only
    await bucket.take()
    assert (bucket.taken, bucket.waits) == (5, 3)


def test_rates_must_be_positive() -> None:
    """A rate of zero or less is refused, at the start and later."""
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(1).set_rate(-1)


async def test_a_taker_waiting_when_the_rate_rises_is_served_at_the_new_rate() -> None:
    """A taker due in a second at 1/s is served a quarter of a second in when the rate rises
    to 100/s then (it looks at the rate again as it waits), not a second in."""
    fake = YieldingTime()
    bucket = TokenBucket(1, now=fake, sleep=fake.sleep)
    await bucket.take()  # the burst
    waiting = asyncio.ensure_future(bucket.take())
    await asyncio.sleep(0)  # it reserved its token and sleeps its first quarter second
    bucket.set_rate(100)
    await waiting
    assert fake.now - 100.0 < 0.3


class YieldingTime(FakeTime):
    """``FakeTime`` whose sleep lets other tasks run, as a real sleep does."""

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_try_take_takes_only_tokens_at_hand() -> None:
    """At 100/s the burst of 10 is taken without waiting, the 11th try finds none; a token
    refunded is there again; the one refilled 10 ms later goes to a ``take`` made first, and
    a try after it finds none until the next has refilled."""
    fake = FakeTime()
    bucket = TokenBucket(100, now=fake, sleep=fake.sleep)
    assert all(bucket.try_take() for _ in range(10))
    assert not bucket.try_take()
    assert bucket.taken == 10
    bucket.refund()
    assert bucket.taken == 9
    assert bucket.try_take()
    fake.now += 0.01
    debtor = asyncio.ensure_future(bucket.take())  # reserves the refilled token
    await asyncio.sleep(0)
    assert not bucket.try_take()
    await debtor
    fake.now += 0.01
    assert bucket.try_take()
    assert bucket.waits == 0


def test_try_take_never_passes_a_gate() -> None:
    """A bucket with a gate (the cluster's bucket in Redis) is never taken from without
    awaiting it: ``try_take`` says no."""

    async def gate() -> None:
        return None

    bucket = TokenBucket(100)
    bucket.gate = gate
    assert not bucket.try_take()
    assert bucket.taken == 0
