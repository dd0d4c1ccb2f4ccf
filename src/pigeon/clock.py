"""The real clock: timezone-aware UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pigeon.ports import Clock


class SystemClock:
    """``ports.Clock`` reading the system time in UTC."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class TurnClock:
    """``ports.Clock`` whose time stands still for the rest of the event loop's turn: the
    first ``now`` of a turn reads ``clock``, the others of that turn get the same instant.

    What one turn handles happens at once as far as a caller can tell (a turn takes well
    under a millisecond), and the same ``datetime`` object lets every later step of that
    work find its stored and public forms already made (``store.bulk``'s and
    ``representation``'s caches): a turn's accepts share their times instead of formatting
    three new ones each. Outside a running loop every ``now`` reads ``clock``."""

    __slots__ = ("_clock", "_now")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._now: datetime | None = None

    def now(self) -> datetime:
        """The turn's instant (read from the wrapped clock once per turn)."""
        now = self._now
        if now is None:
            now = self._clock.now()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: no turn to share it with
                return now
            self._now = now
            # Runs with the next turn's callbacks (those queued during a turn wait for it).
            loop.call_soon(self._forget)
        return now

    def _forget(self) -> None:
        self._now = None
