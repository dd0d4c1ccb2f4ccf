"""The job runner's batches on a real queue: a batch-running handler gets a claim's jobs of its
kind in one call, the jobs it hands back run on their own, every slot comes back, and a batch
that crashes loses no job."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pigeon.ports import Job, NewJob
from pigeon.services.worker import JobBatch, JobRunner

if TYPE_CHECKING:
    from conftest import Stores


class _Halving:
    """Completes the even-numbered jobs of a batch itself and hands the others back."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.batches: list[list[str]] = []
        self.alone: list[str] = []
        self.done = asyncio.Event()
        self.completed = 0

    async def run_each(self, batch: JobBatch) -> None:
        self.batches.append([job.id for job in batch.jobs])
        for job in batch.jobs:
            if int(job.id[1:]) % 2:
                batch.alone(job)
            else:
                await self._complete(job)
                batch.finished(job)

    async def __call__(self, job: Job) -> None:
        self.alone.append(job.id)
        await self._complete(job)

    async def _complete(self, job: Job) -> None:
        await self.stores.queue.complete(job.id, job.lease_owner)
        self.completed += 1
        if self.completed == 40:
            self.done.set()


class _Crashing:
    """Ends the first job of a batch, then crashes with the others still held."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.crashed = asyncio.Event()

    async def run_each(self, batch: JobBatch) -> None:
        first = batch.jobs[0]
        await self.stores.queue.complete(first.id, first.lease_owner)
        batch.finished(first)
        self.crashed.set()
        raise RuntimeError("a bug in the batch")

    async def __call__(self, job: Job) -> None:
        raise AssertionError("never run alone")


async def _run_until(runner: JobRunner, done: asyncio.Event) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)


async def test_batches_hand_jobs_back_and_free_every_slot(stores: Stores) -> None:
    """40 jobs through 4 slots in claims of 4: each claim is one batch, the odd jobs run on
    their own, and the runner keeps claiming until all 40 are done (no slot is lost)."""
    now = stores.clock.now()
    await stores.queue.enqueue(
        [NewJob(id=f"d{i:02d}", kind="dispatch", payload={}, run_at=now) for i in range(40)]
    )
    handler = _Halving(stores)
    runner = JobRunner(
        stores.queue, {"dispatch": handler}, stores.clock, "w1", concurrency=4, batch=4
    )
    await _run_until(runner, handler.done)
    assert sum(map(len, handler.batches)) == 40
    assert all(len(batch) <= 4 for batch in handler.batches)
    assert sorted(handler.alone) == [f"d{i:02d}" for i in range(1, 40, 2)]
    assert await stores.queue.claim(["dispatch"], 100, "w2", 60) == []


async def test_a_crashing_batch_reschedules_the_jobs_it_held(stores: Stores) -> None:
    """A batch that raises: the job it had ended stays done, the others are put back with
    the crash backoff (a later run, one attempt counted), none is lost."""
    now = stores.clock.now()
    await stores.queue.enqueue(
        [NewJob(id=f"d{i}", kind="dispatch", payload={}, run_at=now) for i in range(3)]
    )
    handler = _Crashing(stores)
    runner = JobRunner(
        stores.queue, {"dispatch": handler}, stores.clock, "w1", concurrency=8, batch=8
    )
    await _run_until(runner, handler.crashed)  # the stop waits for the batch's task
    assert await stores.queue.claim(["dispatch"], 10, "w2", 60) == []  # not due yet
    stores.clock.advance(2)
    due = await stores.queue.claim(["dispatch"], 10, "w2", 60)
    assert sorted(job.id for job in due) == ["d1", "d2"]
    assert all(job.attempts == 1 for job in due)
