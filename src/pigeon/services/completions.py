"""Futures a batch waits on together, taken as they complete.

A batch of dispatches or webhook deliveries starts many requests and handles their answers
in waves, as they come. ``asyncio.wait(..., return_when=FIRST_COMPLETED)`` in a loop adds a
done callback to every future still pending at every wave, and removes it again after (with
a scan of each future's callbacks), and first builds a set of them and checks each for a
coroutine: work that grows with the batch at every wave. ``Completions`` gives each future
one callback for its whole life, and a wave takes what completed since the last one.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Completions:
    """The futures given to ``watch``, handed out by ``next`` in the order they complete."""

    __slots__ = ("_done", "_waiter")

    def __init__(self) -> None:
        self._done: list[asyncio.Future[Any]] = []
        self._waiter: asyncio.Future[None] | None = None

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Hand ``future`` out once it is done (at once if it already is: from the next
        ``next``)."""
        future.add_done_callback(self._completed)

    def _completed(self, future: asyncio.Future[Any]) -> None:
        self._done.append(future)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, timeout: float | None = None) -> list[asyncio.Future[Any]]:
        """The watched futures that completed since the last call, in the order they did;
        if none has, waits for the first for at most ``timeout`` seconds (``None``: for as
        long as it takes), and returns an empty list if none came by then."""
        if not self._done:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, _time_up, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        done, self._done = self._done, []
        return done


def _time_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
