"""Pacing submits to a carrier: a token bucket whose rate can change while it runs.

Both the SMPP and the HTTP carrier connectors pace with it when ``throughput_per_second`` is
set. With worker processes, each sending process paces with a part of that cap
(``pigeon.domain.pacing``, ``pigeon.worker_reports``): ``set_rate`` changes the part, and
``taken`` and ``waits`` tell how the pacer was used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_NOTHING = 1e-9
#: The longest a waiting taker sleeps before it looks at the rate again (seconds).
MAX_SLEEP = 0.25


class TokenBucket:
    """Paces takers to ``rate`` per second with a burst of a tenth of a second (at least 1).

    Takers reserve their token at once (the level may go negative) and sleep off the debt, so
    waiting takers are served in order without waking each other. ``now`` and ``sleep`` are
    injectable so the pacing can be checked on a fake clock.
    """

    def __init__(
        self,
        rate: float,
        *,
        cap: float | None = None,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        #: The connector's whole ``throughput_per_second``, of which ``rate`` is this
        #: process's part (all of it unless set otherwise).
        self.cap = rate if cap is None else cap
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self._level = self.capacity
        #: Tokens refilled since the start (the clock that waiting takers are due by).
        self._filled = 0.0
        self._updated: float | None = None
        self._now = now
        self._sleep = sleep
        #: Tokens taken, and how many of those takes had to wait, since the start.
        self.taken = 0
        self.waits = 0
        #: Passed by every take after its local token: the cap kept across processes and
        #: nodes (``pigeon.connectors.cluster_quota``, ADR 41); ``None``: this process alone.
        self.gate: Callable[[], Awaitable[None]] | None = None

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
        gained = (now - self._updated) * self.rate
        self._filled += gained
        self._level = min(self.capacity, self._level + gained)
        self._updated = now

    async def take(self) -> None:
        """Take one token, sleeping until it is due (then pass the ``gate``, if any)."""
        self._refill(self._now())
        self._level -= 1.0
        self.taken += 1
        if self._level >= 0:
            if self.gate is not None:
                await self.gate()
            return
        self.waits += 1
        await self._sleep_off_debt()
        if self.gate is not None:
            await self.gate()

    def try_take(self) -> bool:
        """Take one token if one is here now, without waiting (``False``: none is, nothing
        taken). Never with a ``gate`` (its round trip is awaited), and never ahead of a
        taker sleeping off its debt (the level is negative until that is paid)."""
        if self.gate is not None:
            return False
        self._refill(self._now())
        if self._level < 1.0:
            return False
        self._level -= 1.0
        self.taken += 1
        return True

    def refund(self) -> None:
        """Give back a token ``try_take`` took for a submit that was not written after all."""
        self._level = min(self.capacity, self._level + 1.0)
        self.taken -= 1

    async def _sleep_off_debt(self) -> None:
        # Due once the bucket has refilled the debt standing at this reservation; at most
        # ``MAX_SLEEP`` at a time, so that a higher rate set meanwhile serves it sooner.
        due = self._filled - self._level
        while True:
            remaining = due - self._filled
            if remaining <= _NOTHING:  # rounding: a clock's tick cannot pay less
                return
            await self._sleep(min(remaining / self.rate, MAX_SLEEP))
            self._refill(self._now())

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` from now on (what accrued so far at the old rate is kept; takers
        already sleeping keep their wake-up time)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._refill(self._now())
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self._level = min(self._level, self.capacity)
