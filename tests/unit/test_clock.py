"""The clocks: a turn of the event loop reads the time once (``TurnClock``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pigeon.clock import SystemClock, TurnClock


class CountingClock:
    """A clock a second later at every read, counting its reads."""

    def __init__(self) -> None:
        self.reads = 0
        self._start = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.reads += 1
        return self._start + timedelta(seconds=self.reads)


def test_the_system_clock_is_aware_utc() -> None:
    """The system clock's time carries UTC as its zone."""
    assert SystemClock().now().tzinfo is UTC


async def test_a_turn_reads_its_clock_once_and_the_next_turn_again() -> None:
    """Within one turn of the loop every ``now`` is the same instant, read once; after the
    loop has turned, the clock is read afresh."""
    counting = CountingClock()
    clock = TurnClock(counting)
    first = clock.now()
    assert clock.now() is first
    assert clock.now() is first
    assert counting.reads == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = clock.now()
    assert later > first
    assert counting.reads == 2
    assert clock.now() is later


async def test_callbacks_of_one_turn_share_their_instant() -> None:
    """Callbacks the loop runs in one turn see one instant; those of a later turn another."""
    counting = CountingClock()
    clock = TurnClock(counting)
    loop = asyncio.get_running_loop()
    seen: list[datetime] = []
    await asyncio.sleep(0)
    for _ in range(3):
        loop.call_soon(lambda: seen.append(clock.now()))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    seen.append(clock.now())
    assert seen[0] is seen[1] is seen[2]
    assert seen[3] > seen[0]


def test_without_a_running_loop_every_read_is_fresh() -> None:
    """Outside a running loop there is no turn to share: each ``now`` reads the clock."""
    counting = CountingClock()
    clock = TurnClock(counting)
    assert clock.now() < clock.now()
    assert counting.reads == 2
