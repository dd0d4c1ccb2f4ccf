"""``Completions``: futures a batch waits on together, handed out as they complete."""

from __future__ import annotations

import asyncio
import contextlib

from pigeon.services.completions import Completions


async def test_futures_are_handed_out_once_in_the_order_they_complete() -> None:
    """Each watched future comes out of ``next`` once, after it completes, in the order the
    futures completed; one that completed before it was watched comes out too."""
    loop = asyncio.get_running_loop()
    completions = Completions()
    first, second, third = (loop.create_future() for _ in range(3))
    already: asyncio.Future[int] = loop.create_future()
    already.set_result(0)
    for future in (first, second, third, already):
        completions.watch(future)
    third.set_result(3)
    first.set_result(1)
    assert await completions.next() == [already, third, first]
    loop.call_later(0.01, second.set_result, 2)
    assert await completions.next() == [second]


async def test_a_wait_ends_at_its_timeout_and_the_late_future_comes_next() -> None:
    """With nothing complete, ``next`` waits at most its timeout and returns nothing then; a
    future completing afterwards is handed out by the following call."""
    loop = asyncio.get_running_loop()
    completions = Completions()
    late: asyncio.Future[str] = loop.create_future()
    completions.watch(late)
    assert await completions.next(0.01) == []
    late.set_result("late")
    assert await completions.next(0.01) == [late]


async def test_cancelled_futures_come_out_as_completed() -> None:
    """A cancelled future is complete too: the batch finds it among the completed ones."""
    loop = asyncio.get_running_loop()
    completions = Completions()
    given_up: asyncio.Future[None] = loop.create_future()
    completions.watch(given_up)
    given_up.cancel()
    done = await completions.next()
    assert done == [given_up]
    assert done[0].cancelled()


async def test_a_cancelled_wait_leaves_the_next_one_working() -> None:
    """Cancelling the task waiting in ``next`` ends its wait; a later ``next`` still gets
    the futures that complete afterwards."""
    loop = asyncio.get_running_loop()
    completions = Completions()
    future: asyncio.Future[int] = loop.create_future()
    completions.watch(future)
    waiting = asyncio.ensure_future(completions.next())
    await asyncio.sleep(0)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    future.set_result(7)
    assert await completions.next(1.0) == [future]
