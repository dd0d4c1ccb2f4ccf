"""The job runner's prefetch on a real queue: a handler reads for a claimed batch at once,
before its jobs start, and a failed prefetch loses no job."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pigeon.ports import Job, NewJob
from pigeon.services.worker import JobRunner

if TYPE_CHECKING:
    from conftest import Stores


class _Recording:
    """Notes prefetched batches and handled jobs, in order."""

    def __init__(self, stores: Stores, log: list[str], *, fail: bool = False) -> None:
        self.stores = stores
        self.log = log
        self.fail = fail

    async def prefetch(self, jobs: Sequence[Job]) -> None:
        self.log.append("prefetch " + ",".join(sorted(job.id for job in jobs)))
        if self.fail:
            raise RuntimeError("the read failed")

    async def __call__(self, job: Job) -> None:
        self.log.append(f"run {job.id}")
        await self.stores.queue.complete(job.id, job.lease_owner)


async def _run(stores: Stores, *, fail: bool) -> list[str]:
    log: list[str] = []
    now = stores.clock.now()
    await stores.queue.enqueue(
        [NewJob(id=f"d{i}", kind="dispatch", payload={}, run_at=now) for i in range(4)]
        + [NewJob(id="w0", kind="webhook", payload={}, run_at=now)]
    )
    plain: list[str] = []

    async def webhook(job: Job) -> None:
        plain.append(job.id)
        await stores.queue.complete(job.id, job.lease_owner)

    runner = JobRunner(
        stores.queue,
        {"dispatch": _Recording(stores, log, fail=fail), "webhook": webhook},
        stores.clock,
        "w1",
        concurrency=16,
        batch=16,
        idle_seconds=0.05,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    for _ in range(500):
        if len(log) == 5 and plain:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert plain == ["w0"]
    return log


async def test_a_claimed_batch_is_prefetched_once_before_its_jobs_run(stores: Stores) -> None:
    """The four dispatch jobs of one claim are prefetched together, then each runs."""
    log = await _run(stores, fail=False)
    assert log[0] == "prefetch d0,d1,d2,d3"
    assert sorted(log[1:]) == ["run d0", "run d1", "run d2", "run d3"]


async def test_a_failed_prefetch_still_runs_every_job(stores: Stores) -> None:
    """When the prefetch raises, the jobs run all the same (they read for themselves)."""
    log = await _run(stores, fail=True)
    assert log[0] == "prefetch d0,d1,d2,d3"
    assert sorted(log[1:]) == ["run d0", "run d1", "run d2", "run d3"]
