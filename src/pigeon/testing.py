"""Test doubles for the ports that are not our store: a settable clock, a scripted carrier,
and a batch of jobs for calling a batch-running handler without a runner.

Our own store is never faked: tests run it on real SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pigeon.domain.errors import CarrierError
from pigeon.domain.messages import Message
from pigeon.ports import Job, SubmitResult
from pigeon.services.worker import JobBatch

#: What a batch hands back with a job: the call to run it with (``None``: the handler's own).
HandedRun = Callable[[], Awaitable[None]] | None


@dataclass
class BatchRecord:
    """Stands in for the job runner around a ``JobBatch``: records the jobs the handler hands
    back (``alone``, with their ``run``) and counts the slots it gives up (one per job
    finished or handed back)."""

    alone: list[tuple[Job, HandedRun]] = field(default_factory=list)
    released: int = 0

    def batch(self, jobs: Sequence[Job]) -> JobBatch:
        """A batch of ``jobs`` reporting here."""
        return JobBatch(jobs, self._start_alone, self._release)

    def _start_alone(self, job: Job, run: HandedRun) -> None:
        self.alone.append((job, run))

    def _release(self, count: int) -> None:
        self.released += count


class FakeClock:
    """``ports.Clock`` that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        """The current fake time."""
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move time forward and return the new time."""
        self._now += timedelta(seconds=seconds)
        return self._now


class SequentialIds:
    """``ports.IdFactory`` giving ``prefix_000001``-style ids, in order."""

    def __init__(self) -> None:
        self._next = 0

    def new(self, prefix: str) -> str:
        """The next id for ``prefix``."""
        self._next += 1
        return f"{prefix}_{self._next:026d}"


class FakeConnector:
    """``ports.Connector`` that records submits and answers as scripted.

    ``script`` maps a message to either an exception to raise or ``None`` for success.
    """

    def __init__(
        self,
        connector_id: str = "fake",
        script: Callable[[Message], CarrierError | None] | None = None,
    ) -> None:
        self._id = connector_id
        self._script = script
        self.submitted: list[Message] = []
        self._counter = 0
        self._ready = False

    @property
    def id(self) -> str:
        """The connector id."""
        return self._id

    @property
    def ready(self) -> bool:
        """Whether ``start`` was called."""
        return self._ready

    async def start(self) -> None:
        """Become ready."""
        self._ready = True

    async def stop(self) -> None:
        """Stop being ready."""
        self._ready = False

    async def submit(self, message: Message) -> SubmitResult:
        """Record the message, then fail or answer with one carrier id per segment."""
        self.submitted.append(message)
        if self._script is not None:
            error = self._script(message)
            if error is not None:
                raise error
        ids = []
        for _ in range(max(1, message.segments)):
            self._counter += 1
            ids.append(f"{self._id}-{self._counter:08X}")
        return SubmitResult(carrier_message_ids=tuple(ids))
