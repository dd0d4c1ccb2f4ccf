"""The job runner: claims due jobs and runs their handlers with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from pigeon.ports import Clock, Job, JobQueue

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]

#: Waits after a handler crashed on a job, by how often the job was tried.
CRASH_DELAYS = (1, 5, 30, 120, 600)


class JobRunner:
    """Runs ``handlers`` (by job kind) on jobs claimed from ``queue``.

    A handler completes or reschedules its own job; when it raises, the job is rescheduled with
    a backoff and the error logged. The loop claims only as many jobs as it has free slots, so a
    slow carrier cannot make it lease work it will not start before the lease ends.
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
    ) -> None:
        self._queue = queue
        self._handlers = dict(handlers)
        self._clock = clock
        self._owner = owner
        self._concurrency = concurrency
        self._batch = batch
        self._lease = lease_seconds
        self._idle = idle_seconds
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._full = False

    @property
    def owner(self) -> str:
        """The lease owner name of this runner."""
        return self._owner

    def nudge(self) -> None:
        """Wake the loop now (new work was just enqueued in this process)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop`` is set, then wait for running jobs."""
        kinds = list(self._handlers)
        while not stop.is_set():
            free = self._free_slots()
            if free == 0:
                self._full = True
                await self._wait(stop, self._idle)
                continue
            try:
                jobs = await self._queue.claim(
                    kinds, min(free, self._batch), self._owner, self._lease
                )
            except Exception:
                log.exception("claiming jobs failed")
                await self._wait(stop, 1.0)
                continue
            for job in jobs:
                task = asyncio.create_task(self._run_one(job))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
            if len(jobs) < min(free, self._batch):
                await self._wait(stop, self._idle)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # A full runner sleeps until slots free up: wake it once half a claim's worth is free
        # rather than after its idle poll.
        if self._full and self._free_slots() >= max(1, min(self._batch, self._concurrency) // 2):
            self._full = False
            self._wake.set()

    def _free_slots(self) -> int:
        return self._concurrency - len(self._tasks)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter

    async def _run_one(self, job: Job) -> None:
        try:
            await self._handlers[job.kind](job)
        except Exception as exc:  # a handler bug must not stop the runner: log and retry later
            log.exception("job %s (%s) failed", job.id, job.kind)
            delay = CRASH_DELAYS[max(0, min(job.attempts, len(CRASH_DELAYS)) - 1)]
            with contextlib.suppress(Exception):
                await self._queue.retry(
                    job.id,
                    job.lease_owner,
                    self._clock.now() + timedelta(seconds=delay),
                    f"{type(exc).__name__}: {exc}"[:500],
                )
