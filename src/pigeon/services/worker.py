"""The job runner: claims due jobs and runs their handlers with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from pigeon.ports import Clock, Job, JobQueue

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]


@runtime_checkable
class Prefetching(Protocol):
    """A handler that reads what a claimed batch of its jobs needs in one go, before they
    start (instead of one read per job, each a round trip and a loop turn on PostgreSQL)."""

    async def prefetch(self, jobs: Sequence[Job]) -> None: ...


@runtime_checkable
class BatchRunning(Protocol):
    """A handler that runs a claim's jobs of its kind in one call and one task, instead of a
    task per job: the jobs it takes the usual way, each on its own, it hands back to the
    runner (``JobBatch.alone``)."""

    async def __call__(self, job: Job) -> None: ...

    async def run_each(self, batch: JobBatch) -> None: ...


class JobBatch:
    """The jobs of one claim a ``BatchRunning`` handler was given, with the slots they hold.

    The handler ends each job one of two ways: it completes or reschedules it itself, then
    says so (``finished``, which frees the job's slot at once), or it hands the job to a task
    of its own (``alone``: the handler's ``__call__``, or ``run``), which the runner watches
    as any other. A job the handler still holds when ``run_each`` raises is rescheduled with
    the crash backoff; one it still holds when ``run_each`` returns has its slot freed (its
    lease runs out unless the handler ended it without saying so).
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        start_alone: Callable[[Job, Callable[[], Awaitable[None]] | None], None],
        release: Callable[[int], None],
    ) -> None:
        self.jobs = jobs
        self._start_alone = start_alone
        self._release = release
        #: The jobs not yet ended or handed on, by id.
        self.held: dict[str, Job] = {job.id: job for job in jobs}

    def alone(self, job: Job, run: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``job`` in a task of its own from here on (``run``, or the handler's call)."""
        if self.held.pop(job.id, None) is not None:
            self._release(1)  # the task takes the slot over
            self._start_alone(job, run)

    def failed(self, job: Job, error: Exception) -> None:
        """``job`` failed with ``error``: rescheduled as a job whose handler raised it."""
        self.alone(job, functools.partial(_raise, error))

    def finished(self, job: Job) -> None:
        """``job`` has ended: free its slot."""
        if self.held.pop(job.id, None) is not None:
            self._release(1)


#: Waits after a handler crashed on a job, by how often the job was tried.
CRASH_DELAYS = (1, 5, 30, 120, 600)


async def _raise(error: Exception) -> None:
    raise error


class JobRunner:
    """Runs ``handlers`` (by job kind) on jobs claimed from ``queue``.

    A handler completes or reschedules its own job; when it raises, the job is rescheduled with
    a backoff and the error logged. The loop claims only as many jobs as it has free slots, so a
    slow carrier cannot make it lease work it will not start before the lease ends.

    The urgent lane: with ``urgent_priority`` set, a runner whose ``concurrency`` slots are all
    taken still claims jobs of at least that priority, into ``urgent_slots`` more, when it is
    nudged about one (``nudge(urgent=True)``) and at each idle poll. Otherwise an OTP accepted
    behind a marketing backlog would wait until enough marketing submits finished to free a
    claim's worth of slots (tens of milliseconds at a thousand submits a second).

    ``min_priority`` and ``max_priority`` bound every claim: an OTP worker process takes only
    the urgent jobs, the other workers leave them to it. With ``ceiling_grace`` those others
    still take the urgent jobs due for that long (their urgent lane then looks at those only):
    the OTP workers may be down, or unable to bind to the carrier.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        clock: Clock,
        owner: str,
        *,
        concurrency: int = 256,
        batch: int = 128,
        lease_seconds: float = 60.0,
        idle_seconds: float = 0.25,
        urgent_priority: int | None = None,
        urgent_slots: int = 32,
        min_priority: int | None = None,
        max_priority: int | None = None,
        ceiling_grace: timedelta | None = None,
        claims_alone: bool = True,
    ) -> None:
        self._queue = queue
        #: Whether claims must not wait for other writes (the runner's jobs may be OTPs);
        #: otherwise the store may claim in its next batch of writes.
        self._claims_alone = claims_alone
        self._handlers = dict(handlers)
        #: The kinds whose handler runs a claim's jobs in one call.
        self._batch_handlers = {
            kind: handler
            for kind, handler in self._handlers.items()
            if isinstance(handler, BatchRunning)
        }
        #: The kinds whose handler prefetches (decided once: a runtime protocol check walks
        #: the protocol's members, which cost every claim a few microseconds).
        self._prefetchers: dict[str, Prefetching] = {}
        for kind, each in self._handlers.items():
            handler: object = each  # a handler may also prefetch
            if isinstance(handler, Prefetching):
                self._prefetchers[kind] = handler
        self._clock = clock
        self._owner = owner
        self._concurrency = concurrency
        self._batch = batch
        self._lease = lease_seconds
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Jobs held by tasks (a batch's task holds several until it hands them on or ends).
        self._running = 0
        self._full = False
        self._min_priority = min_priority
        self._max_priority = max_priority
        self._ceiling_grace = ceiling_grace
        if (
            urgent_priority is not None
            and max_priority is not None
            and max_priority < urgent_priority
            and ceiling_grace is None
        ):
            urgent_priority = None  # this runner never takes urgent jobs
        if urgent_priority is not None and min_priority is not None:
            urgent_priority = max(urgent_priority, min_priority)
        self._urgent_priority = urgent_priority
        self._urgent_slots = urgent_slots if urgent_priority is not None else 0
        #: Takes urgent jobs only: a nudge about others (a marketing accept) is not for it.
        self._urgent_only = (
            min_priority is not None
            and urgent_priority is not None
            and min_priority >= urgent_priority
        )
        #: Whether the urgent lane should be looked at (set by urgent nudges and idle polls).
        self._urgent_wanted = False

    @property
    def owner(self) -> str:
        """The lease owner name of this runner."""
        return self._owner

    @property
    def claims_alone(self) -> bool:
        """Whether its claims go ahead of other writes (its jobs may be OTPs)."""
        return self._claims_alone

    def nudge(self, urgent: bool = False) -> None:
        """Wake the loop now (new work was just enqueued; ``urgent``: a job of the urgent lane's
        priority, which is claimed even when every regular slot is busy)."""
        if urgent:
            self._urgent_wanted = self._urgent_slots > 0
        elif self._urgent_only:
            return
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop`` is set, then wait for running jobs."""
        kinds = list(self._handlers)
        while not stop.is_set():
            free = self._free_slots()
            if free <= 0:
                spare = free + self._urgent_slots
                if self._urgent_wanted and spare > 0:
                    self._urgent_wanted = False
                    await self._claim(stop, kinds, min(spare, self._batch), self._urgent_priority)
                    continue
                self._full = True
                woken = await self._wait(stop, self._idle)
                # An idle poll looks at the urgent lane too: a job made by another node, or
                # whose wake datagram was lost, still skips the regular slots.
                self._urgent_wanted |= not woken and self._urgent_slots > 0
                continue
            self._urgent_wanted = False  # a regular claim takes the best jobs first anyway
            wanted = min(free, self._batch)
            if await self._claim(stop, kinds, wanted, self._min_priority) < wanted:
                await self._wait(stop, self._idle)
        while self._tasks:  # a batch may still hand jobs to tasks of their own
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim(
        self, stop: asyncio.Event, kinds: list[str], limit: int, min_priority: int | None
    ) -> int:
        """Claim up to ``limit`` jobs and start them; how many were claimed."""
        try:
            jobs = await self._queue.claim(
                kinds,
                limit,
                self._owner,
                self._lease,
                min_priority=min_priority,
                max_priority=self._max_priority,
                ceiling_grace=self._ceiling_grace,
                alone=self._claims_alone,
            )
        except Exception:
            log.exception("claiming jobs failed")
            await self._wait(stop, 1.0)
            return 0
        await self._prefetch(jobs)
        batches: dict[str, list[Job]] | None = None
        for job in jobs:
            if job.kind in self._batch_handlers:
                if batches is None:
                    batches = {}
                batches.setdefault(job.kind, []).append(job)
            else:
                self._start_alone(job, None)
        if batches is not None:
            for kind, of_kind in batches.items():
                self._start_batch(kind, of_kind)
        return len(jobs)

    def _start_alone(self, job: Job, run: Callable[[], Awaitable[None]] | None) -> None:
        self._running += 1
        task = asyncio.create_task(self._run_one(job, run))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _start_batch(self, kind: str, jobs: list[Job]) -> None:
        batch = JobBatch(jobs, self._start_alone, self._release)
        self._running += len(jobs)
        task = asyncio.create_task(self._run_batch(self._batch_handlers[kind], batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, handler: BatchRunning, batch: JobBatch) -> None:
        try:
            await handler.run_each(batch)
        except Exception as exc:  # a handler bug must not stop the runner: retry what it held
            log.exception("a batch of %d %s jobs failed", len(batch.jobs), batch.jobs[0].kind)
            for job in list(batch.held.values()):
                await self._retry_crashed(job, exc)
        finally:
            held = len(batch.held)
            batch.held.clear()
            self._release(held)

    async def _prefetch(self, jobs: list[Job]) -> None:
        """Let the handlers that prefetch read for their kind's jobs of this claim; a failed
        prefetch costs only the reads the jobs then make one by one."""
        kinds: dict[str, list[Job]] = {}
        for job in jobs:
            kinds.setdefault(job.kind, []).append(job)
        prefetchers = self._prefetchers
        for kind, batch in kinds.items():
            handler = prefetchers.get(kind)
            if handler is not None:
                try:
                    await handler.prefetch(batch)
                except Exception:
                    log.exception("prefetching %d %s jobs failed", len(batch), kind)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._release(1)

    def _release(self, jobs: int) -> None:
        self._running -= jobs
        # A full runner sleeps until slots free up: wake it once half a claim's worth is free
        # rather than after its idle poll.
        if self._full and self._free_slots() >= max(1, min(self._batch, self._concurrency) // 2):
            self._full = False
            self._wake.set()

    def _free_slots(self) -> int:
        return self._concurrency - self._running

    async def _wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait for a nudge, ``stop`` or ``seconds``; whether something woke it."""
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
            return bool(done)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _run_one(self, job: Job, run: Callable[[], Awaitable[None]] | None = None) -> None:
        try:
            await (self._handlers[job.kind](job) if run is None else run())
        except Exception as exc:  # a handler bug must not stop the runner: log and retry later
            log.exception("job %s (%s) failed", job.id, job.kind)
            await self._retry_crashed(job, exc)

    async def _retry_crashed(self, job: Job, exc: Exception) -> None:
        delay = CRASH_DELAYS[max(0, min(job.attempts, len(CRASH_DELAYS)) - 1)]
        with contextlib.suppress(Exception):
            await self._queue.retry(
                job.id,
                job.lease_owner,
                self._clock.now() + timedelta(seconds=delay),
                f"{type(exc).__name__}: {exc}"[:500],
            )
