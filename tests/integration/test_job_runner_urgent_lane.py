"""The job runner's urgent lane on a real queue: OTP-priority jobs start while every regular
slot is busy with a backlog."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pigeon.bootstrap import open_gateway
from pigeon.config import Settings
from pigeon.ports import Job, NewJob
from pigeon.services.worker import JobRunner

if TYPE_CHECKING:
    from conftest import Stores

URGENT = 30


class _Blocking:
    """A handler that holds every backlog job until released and notes each urgent job."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.urgent_ran = asyncio.Event()

    async def __call__(self, job: Job) -> None:
        self.started.append(job.id)
        if job.priority >= URGENT:
            self.urgent_ran.set()
        else:
            await self.release.wait()
        await self.stores.queue.complete(job.id, job.lease_owner)


async def _run_backlog(stores: Stores, urgent_slots: int, *, nudge: bool) -> _Blocking:
    handler = _Blocking(stores)
    now = stores.clock.now()
    backlog = [
        NewJob(id=f"m{i:02}", kind="dispatch", payload={}, run_at=now, priority=10)
        for i in range(6)
    ]
    await stores.queue.enqueue(backlog)
    runner = JobRunner(
        stores.queue,
        {"dispatch": handler},
        stores.clock,
        "w1",
        concurrency=2,
        batch=2,
        idle_seconds=60 if nudge else 0.05,
        urgent_priority=URGENT,
        urgent_slots=urgent_slots,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(3000):  # up to 30 s on a busy machine
            if len(handler.started) == 2:
                break
            await asyncio.sleep(0.01)
        assert handler.started == ["m00", "m01"]
        otp = NewJob(id="otp", kind="dispatch", payload={}, run_at=now, priority=URGENT)
        await stores.queue.enqueue([otp])
        if nudge:
            runner.nudge(urgent=True)
        # Where the OTP should run, a slow claim has long enough; where it should not, 2 s
        # without it is the proof.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handler.urgent_ran.wait(), timeout=30 if urgent_slots else 2)
        started_while_full = list(handler.started)
    finally:
        handler.release.set()
        stop.set()
        runner.nudge()
        await asyncio.wait_for(running, timeout=10)
    handler.started = started_while_full
    return handler


async def test_an_urgent_nudge_starts_the_otp_while_the_backlog_holds_every_slot(
    stores: Stores,
) -> None:
    """With both regular slots held, an urgent nudge claims the OTP into a spare slot at
    once (the idle poll is a minute away)."""
    handler = await _run_backlog(stores, urgent_slots=1, nudge=True)
    assert handler.started == ["m00", "m01", "otp"]


async def test_the_idle_poll_looks_at_the_urgent_lane_too(stores: Stores) -> None:
    """Without a nudge (a lost datagram, another node's job), a full runner's idle poll still
    claims the OTP."""
    handler = await _run_backlog(stores, urgent_slots=1, nudge=False)
    assert handler.started == ["m00", "m01", "otp"]


@pytest.mark.parametrize("nudge", [True, False])
async def test_without_urgent_slots_the_otp_waits_for_the_backlog(
    stores: Stores, nudge: bool
) -> None:
    """With no urgent slots the full runner claims nothing more: the OTP waits."""
    handler = await _run_backlog(stores, urgent_slots=0, nudge=nudge)
    assert handler.started == ["m00", "m01"]


class _Counting:
    """The real queue, counting the claims made through it."""

    def __init__(self, stores: Stores) -> None:
        self.queue = stores.queue
        self.claims = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.queue, name)

    async def claim(self, *args: object, **kwargs: object) -> list[Job]:
        self.claims += 1
        return await self.queue.claim(*args, **kwargs)  # type: ignore[arg-type]


class _Noting:
    """A handler that completes each job and notes its id."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.started: list[str] = []
        self.changed = asyncio.Event()

    async def __call__(self, job: Job) -> None:
        self.started.append(job.id)
        await self.stores.queue.complete(job.id, job.lease_owner)
        self.changed.set()


async def _until(handler: _Noting, ids: set[str]) -> None:
    async with asyncio.timeout(5):
        while not ids <= set(handler.started):
            handler.changed.clear()
            await handler.changed.wait()


async def test_an_urgent_only_runner_takes_urgent_jobs_and_ignores_regular_nudges(
    stores: Stores,
) -> None:
    """A runner of the urgent lane only (an OTP worker process) does not claim on a regular
    nudge, claims an OTP on an urgent one, and never takes the marketing job."""
    handler = _Noting(stores)
    queue = _Counting(stores)
    runner = JobRunner(
        queue,  # type: ignore[arg-type]
        {"dispatch": handler},
        stores.clock,
        "otp-worker",
        idle_seconds=60,
        urgent_priority=URGENT,
        urgent_slots=4,
        min_priority=URGENT,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    now = stores.clock.now()
    try:
        for _ in range(3000):  # the first claim, at start (up to 30 s on a busy machine)
            if queue.claims:
                break
            await asyncio.sleep(0.01)
        first = queue.claims
        await stores.queue.enqueue(
            [NewJob(id="m10", kind="dispatch", payload={}, run_at=now, priority=10)]
        )
        runner.nudge()
        await asyncio.sleep(0.2)
        assert queue.claims == first
        await stores.queue.enqueue(
            [NewJob(id="otp", kind="dispatch", payload={}, run_at=now, priority=URGENT)]
        )
        runner.nudge(urgent=True)
        await _until(handler, {"otp"})
    finally:
        stop.set()
        runner.nudge(urgent=True)
        await asyncio.wait_for(running, timeout=10)
    assert handler.started == ["otp"]
    left = await stores.queue.claim(["dispatch"], 10, "w2", 30)
    assert [job.id for job in left] == ["m10"]


async def test_a_regular_lane_runner_leaves_urgent_jobs_to_the_otp_workers(
    stores: Stores,
) -> None:
    """A runner capped below the urgent priority (the other worker processes) runs the
    marketing jobs, with free slots and through an urgent nudge alike, but never the OTP."""
    handler = _Noting(stores)
    now = stores.clock.now()
    await stores.queue.enqueue(
        [
            NewJob(id="otp", kind="dispatch", payload={}, run_at=now, priority=URGENT),
            *(
                NewJob(id=f"m{i}", kind="dispatch", payload={}, run_at=now, priority=10)
                for i in range(3)
            ),
        ]
    )
    runner = JobRunner(
        stores.queue,
        {"dispatch": handler},
        stores.clock,
        "worker",
        concurrency=1,
        batch=1,
        idle_seconds=0.05,
        urgent_priority=URGENT,
        urgent_slots=4,
        max_priority=URGENT - 1,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        runner.nudge(urgent=True)
        await _until(handler, {"m0", "m1", "m2"})
        await asyncio.sleep(0.2)  # idle polls, which look at the urgent lane when it has one
    finally:
        stop.set()
        runner.nudge()
        await asyncio.wait_for(running, timeout=10)
    assert sorted(handler.started) == ["m0", "m1", "m2"]
    left = await stores.queue.claim(["dispatch"], 10, "w2", 30)
    assert [job.id for job in left] == ["otp"]


async def test_a_regular_lane_runner_takes_over_an_otp_left_waiting(stores: Stores) -> None:
    """With a ceiling grace, the capped runner's urgent lane takes an OTP due for longer than
    the grace (its OTP workers are down) even while the backlog holds every regular slot,
    and leaves a fresh one until it too has waited that long."""
    handler = _Blocking(stores)
    now = stores.clock.now()
    await stores.queue.enqueue(
        [
            *(
                NewJob(id=f"m{i:02}", kind="dispatch", payload={}, run_at=now, priority=10)
                for i in range(4)
            ),
            NewJob(id="fresh", kind="dispatch", payload={}, run_at=now, priority=URGENT),
            NewJob(
                id="stale",
                kind="dispatch",
                payload={},
                run_at=now - timedelta(seconds=5),
                priority=URGENT,
            ),
        ]
    )
    runner = JobRunner(
        stores.queue,
        {"dispatch": handler},
        stores.clock,
        "worker",
        concurrency=2,
        batch=2,
        idle_seconds=60,
        urgent_priority=URGENT,
        urgent_slots=2,
        max_priority=URGENT - 1,
        ceiling_grace=timedelta(seconds=2),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(3000):  # up to 30 s on a busy machine
            if len(handler.started) == 3:
                break
            await asyncio.sleep(0.01)
        # The first claim took the stale OTP and the oldest marketing job; the OTP done, the
        # next marketing job. The fresh OTP, inside the grace, stays for the OTP workers even
        # through an urgent nudge with every regular slot held.
        assert handler.started == ["stale", "m00", "m01"]
        runner.nudge(urgent=True)
        await asyncio.sleep(0.2)
        assert handler.started == ["stale", "m00", "m01"]
        # Once it has waited the grace too, the full runner's urgent lane takes it.
        handler.urgent_ran.clear()
        stores.clock.advance(2.5)
        runner.nudge(urgent=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handler.urgent_ran.wait(), timeout=30)
        assert handler.started == ["stale", "m00", "m01", "fresh"]
    finally:
        handler.release.set()
        stop.set()
        runner.nudge()
        await asyncio.wait_for(running, timeout=10)


class _NotingClaims(_Counting):
    """The real queue, noting whether each claim was asked to run alone."""

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self.alone: list[object] = []

    async def claim(self, *args: object, **kwargs: object) -> list[Job]:
        self.alone.append(kwargs.get("alone"))
        return await super().claim(*args, **kwargs)


@pytest.mark.parametrize("claims_alone", [True, False])
async def test_a_runner_claims_alone_unless_told_its_jobs_are_never_urgent(
    stores: Stores, claims_alone: bool
) -> None:
    """Claims run alone by default (they may take an OTP); a runner of jobs that are never
    urgent (``serve``'s webhooks) lets the store claim with its other writes."""
    handler = _Noting(stores)
    queue = _NotingClaims(stores)
    runner = JobRunner(
        queue,  # type: ignore[arg-type]
        {"webhook": handler},
        stores.clock,
        "webhooks",
        idle_seconds=60,
        claims_alone=claims_alone,
    )
    await stores.queue.enqueue(
        [NewJob(id="w1", kind="webhook", payload={}, run_at=stores.clock.now(), priority=5)]
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        await _until(handler, {"w1"})
    finally:
        stop.set()
        runner.nudge()
        await asyncio.wait_for(running, 10)
    assert queue.alone
    assert set(queue.alone) == {claims_alone}


@pytest.mark.parametrize(
    ("job_kinds", "alone"),
    [("", True), ("dispatch,receipt,expire", True), ("dispatch", True), ("webhook,notify", False)],
)
async def test_only_a_runner_without_dispatch_jobs_claims_with_the_writes(
    tmp_path: Path, job_kinds: str, alone: bool
) -> None:
    """The gateway's runner claims alone when it takes dispatch jobs (OTPs among them), and
    with the other writes when it does not (``serve`` beside worker processes: webhooks)."""
    settings = Settings(data_dir=tmp_path, run_smpp=False, run_workers=False, job_kinds=job_kinds)
    gateway = await open_gateway(settings)
    try:
        assert gateway.runner.claims_alone is alone
    finally:
        await gateway.close()
