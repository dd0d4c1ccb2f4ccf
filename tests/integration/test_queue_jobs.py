"""SqlJobQueue on real SQLite and PostgreSQL: order, scheduling, leases, retries, concurrency."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pigeon.ports import Job, NewJob
from pigeon.queue import SqlJobQueue
from pigeon.queue.lease_owners import process_owner
from pigeon.store import connect

if TYPE_CHECKING:
    from conftest import Factory, Stores

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _job(
    stores: Stores,
    job_id: str,
    *,
    kind: str = "dispatch",
    priority: int = 0,
    run_at: datetime | None = None,
    payload: dict[str, object] | None = None,
) -> NewJob:
    return NewJob(
        id=job_id,
        kind=kind,
        payload={"id": job_id} if payload is None else payload,
        run_at=stores.clock.now() if run_at is None else run_at,
        priority=priority,
    )


async def test_claims_highest_priority_first_then_earliest(stores: Stores) -> None:
    """Priority 30 comes before 20 before 10; within a priority the earlier job first."""
    now = stores.clock.now()
    await stores.queue.enqueue(
        [
            _job(stores, "m1", priority=10, run_at=now - timedelta(seconds=9)),
            _job(stores, "t1", priority=20, run_at=now - timedelta(seconds=1)),
            _job(stores, "o2", priority=30, run_at=now - timedelta(seconds=1)),
            _job(stores, "o1", priority=30, run_at=now - timedelta(seconds=5)),
            _job(stores, "t0", priority=20, run_at=now - timedelta(seconds=2)),
        ]
    )

    first = await stores.queue.claim(["dispatch"], 3, "w1", 30)
    rest = await stores.queue.claim(["dispatch"], 10, "w1", 30)

    assert [job.id for job in first] == ["o1", "o2", "t0"]
    assert [job.id for job in rest] == ["t1", "m1"]
    assert first[0].run_at == now - timedelta(seconds=5)
    assert first[0].payload == {"id": "o1"}
    assert first[0].lease_owner == "w1"
    assert first[0].lease_until == now + timedelta(seconds=30)
    assert first[0].attempts == 0


async def test_future_jobs_wait_until_due(stores: Stores) -> None:
    """A job scheduled for later is not claimed before its time, and is right after."""
    await stores.queue.enqueue(
        [_job(stores, "later", run_at=stores.clock.now() + timedelta(seconds=60))]
    )

    assert await stores.queue.claim(["dispatch"], 10, "w1", 30) == []
    stores.clock.advance(59)
    assert await stores.queue.claim(["dispatch"], 10, "w1", 30) == []
    stores.clock.advance(1)
    assert [job.id for job in await stores.queue.claim(["dispatch"], 10, "w1", 30)] == ["later"]


async def test_claims_only_the_kinds_asked_for(stores: Stores) -> None:
    """A claim for one kind leaves the other kinds' jobs alone."""
    await stores.queue.enqueue(
        [_job(stores, "d", kind="dispatch"), _job(stores, "w", kind="webhook", priority=99)]
    )

    claimed = await stores.queue.claim(["dispatch"], 10, "w1", 30)
    both = await stores.queue.claim(["dispatch", "webhook"], 10, "w1", 30)

    assert [job.id for job in claimed] == ["d"]
    assert [job.id for job in both] == ["w"]


async def test_claims_across_kinds_in_priority_order(stores: Stores) -> None:
    """Claiming several kinds at once still takes the highest priorities first overall."""
    await stores.queue.enqueue(
        [
            _job(stores, "d10", priority=10),
            _job(stores, "d30", priority=30),
            _job(stores, "w20", kind="webhook", priority=20),
            _job(stores, "w0", kind="webhook"),
        ]
    )

    first = await stores.queue.claim(["webhook", "dispatch"], 2, "w1", 30)
    rest = await stores.queue.claim(["webhook", "dispatch"], 5, "w1", 30)

    assert [job.id for job in first] == ["d30", "w20"]
    assert [job.id for job in rest] == ["d10", "w0"]


async def test_an_expired_lease_is_taken_over(stores: Stores) -> None:
    """An expired lease passes to another owner, counts as an attempt, and locks the first out."""
    await stores.queue.enqueue([_job(stores, "j")])
    [held] = await stores.queue.claim(["dispatch"], 10, "crashed", 30)

    assert await stores.queue.claim(["dispatch"], 10, "w2", 30) == []
    stores.clock.advance(29)
    assert await stores.queue.claim(["dispatch"], 10, "w2", 30) == []
    stores.clock.advance(1)
    [taken] = await stores.queue.claim(["dispatch"], 10, "w2", 30)

    assert taken.id == held.id
    assert taken.lease_owner == "w2"
    assert taken.attempts == 1
    await stores.queue.complete("j", "crashed")
    assert await stores.queue.pending() == {"dispatch": 1}
    await stores.queue.complete("j", "w2")
    assert await stores.queue.pending() == {}


def _ended_process_owner() -> str:
    """The lease owner name of a process that ran on this machine and has ended."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pigeon.queue.lease_owners import process_owner as o; print(o())",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    return done.stdout.strip()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
async def test_the_leases_of_an_ended_process_are_taken_over_at_once(stores: Stores) -> None:
    """Jobs leased by a process of this machine that has ended are due at once (an expired
    lease: the takeover counts the try); a live owner's leases and those of owners it cannot
    judge (another machine, an older name) are left to expire."""
    gone, alive = _ended_process_owner(), process_owner()
    await stores.queue.enqueue([_job(stores, name) for name in ("a", "b", "c", "d", "e")])
    for job_id, owner in (("a", gone), ("b", gone), ("c", alive), ("d", "host:1:abc")):
        [held] = await stores.queue.claim(["dispatch"], 1, owner, 3600)
        assert held.id == job_id
    woken: list[int] = []
    stores.queue.on_due_jobs = lambda: woken.append(1)

    assert await stores.queue.release_gone_leases() == [gone]
    assert woken == [1]
    taken = await stores.queue.claim(["dispatch"], 10, "w2", 7200)

    assert sorted((job.id, job.attempts) for job in taken) == [("a", 1), ("b", 1), ("e", 0)]
    assert await stores.queue.release_gone_leases() == []
    stores.clock.advance(3600)
    later = await stores.queue.claim(["dispatch"], 10, "w2", 30)
    assert sorted(job.id for job in later) == ["c", "d"]


async def test_retry_reschedules_with_one_more_attempt(stores: Stores, database_url: str) -> None:
    """A retried job comes back at its new time with attempts + 1 and the error recorded."""
    await stores.queue.enqueue([_job(stores, "j")])
    [job] = await stores.queue.claim(["dispatch"], 10, "w1", 30)

    await stores.queue.retry("j", "someone-else", stores.clock.now(), "not mine")
    await stores.queue.retry("j", "w1", stores.clock.now() + timedelta(seconds=120), "timeout")

    assert await stores.queue.claim(["dispatch"], 10, "w1", 30) == []
    stores.clock.advance(119)
    assert await stores.queue.claim(["dispatch"], 10, "w1", 30) == []
    stores.clock.advance(1)
    [again] = await stores.queue.claim(["dispatch"], 10, "w2", 30)
    assert again.attempts == job.attempts + 1
    async with stores.database.read() as connection:
        table = stores.database.metadata.tables["jobs"]
        row = (await connection.execute(table.select())).one()
    assert row.last_error == "timeout"


async def test_postponed_jobs_come_back_at_their_times_untried(stores: Stores) -> None:
    """Postponed jobs are due again each at its own time with their attempts unchanged; a
    job whose lease another owner holds is left as it is; one postponed to a time already
    passed is claimable at once."""
    await stores.queue.enqueue([_job(stores, name) for name in ("a", "b", "c", "d")])
    claimed = {job.id: job for job in await stores.queue.claim(["dispatch"], 2, "w1", 30)}
    claimed |= {job.id: job for job in await stores.queue.claim(["dispatch"], 2, "w2", 30)}
    assert set(claimed) == {"a", "b", "c", "d"}
    now = stores.clock.now()
    mine = sorted(job_id for job_id, job in claimed.items() if job.lease_owner == "w1")
    theirs = sorted(job_id for job_id, job in claimed.items() if job.lease_owner == "w2")
    await stores.queue.postpone(
        [
            (mine[0], "w1", now + timedelta(seconds=5)),
            (mine[1], "w1", now),
            (theirs[0], "w1", now),  # not w1's: untouched
        ]
    )
    [at_once] = await stores.queue.claim(["dispatch"], 10, "w3", 30)
    assert (at_once.id, at_once.attempts) == (mine[1], 0)
    stores.clock.advance(5)
    [later] = await stores.queue.claim(["dispatch"], 10, "w3", 30)
    assert (later.id, later.attempts) == (mine[0], 0)
    stores.clock.advance(60)  # the others' leases (30 s) ran out: due again as any crash
    assert sorted(job.id for job in await stores.queue.claim(["dispatch"], 10, "w4", 30)) == (
        sorted([*theirs, mine[1], mine[0]])
    )


async def test_an_immediate_retry_is_claimable_at_once(stores: Stores) -> None:
    """Retrying with a time already passed makes the job ready straight away."""
    await stores.queue.enqueue([_job(stores, "j")])
    await stores.queue.claim(["dispatch"], 10, "w1", 30)

    await stores.queue.retry("j", "w1", stores.clock.now(), "again")

    assert [job.attempts for job in await stores.queue.claim(["dispatch"], 10, "w1", 30)] == [1]


async def test_enqueueing_an_existing_id_is_ignored(stores: Stores) -> None:
    """A duplicate job id neither fails nor replaces the first job."""
    await stores.queue.enqueue([_job(stores, "j", payload={"v": 1})])

    await stores.queue.enqueue([_job(stores, "j", payload={"v": 2}), _job(stores, "k")])
    await stores.queue.enqueue([_job(stores, "j"), _job(stores, "j")])

    claimed = await stores.queue.claim(["dispatch"], 10, "w1", 30)
    assert sorted((job.id, job.payload.get("v")) for job in claimed) == [("j", 1), ("k", None)]


async def test_pending_counts_jobs_by_kind(stores: Stores) -> None:
    """Pending counts every job not completed yet, per kind."""
    later = stores.clock.now() + timedelta(hours=1)
    await stores.queue.enqueue(
        [
            _job(stores, "a"),
            _job(stores, "b", run_at=later),
            _job(stores, "c", kind="webhook"),
        ]
    )
    await stores.queue.claim(["dispatch"], 1, "w1", 30)

    assert await stores.queue.pending() == {"dispatch": 2, "webhook": 1}


async def test_probe_reads_the_queue_and_changes_nothing(stores: Stores) -> None:
    """The readiness probe answers on an empty queue and behind a backlog, and moves no job."""
    await stores.queue.probe()
    await stores.queue.enqueue([_job(stores, f"p{index}") for index in range(50)])
    await stores.queue.claim(["dispatch"], 5, "w1", 30)

    await stores.queue.probe()

    assert await stores.queue.pending() == {"dispatch": 50}
    assert len(await stores.queue.claim(["dispatch"], 100, "w2", 30)) == 45


async def test_probe_raises_when_the_jobs_cannot_be_read(stores: Stores) -> None:
    """With the jobs table out of reach the probe raises, which readiness reports as not
    ready."""

    def renamed(old: str, new: str) -> Any:
        async def rename(connection: Any) -> None:
            await connection.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")

        return rename

    await stores.database.write(renamed("jobs", "jobs_away"))
    try:
        with pytest.raises(Exception, match="jobs"):
            await stores.queue.probe()
    finally:
        await stores.database.write(renamed("jobs_away", "jobs"))
    await stores.queue.probe()


async def test_accepted_messages_jobs_are_claimable(stores: Stores, factory: Factory) -> None:
    """Jobs written by accept (the outbox) are the queue's jobs."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    [job] = await stores.queue.claim(["dispatch"], 10, "w1", 30)

    assert job.id == f"dispatch:{message.id}"
    assert job.priority == 30


async def test_concurrent_claimers_never_share_a_job(stores: Stores, database_url: str) -> None:
    """Claimers on two Databases (like two nodes), any kinds, claim each job exactly once."""
    await stores.queue.enqueue(
        [_job(stores, f"j{i:04d}", kind=("dispatch", "webhook")[i % 2]) for i in range(600)]
    )
    other = await connect(database_url)
    try:
        queues = [stores.queue, SqlJobQueue(other, stores.clock)]
        kinds = [["dispatch"], ["dispatch", "webhook"], ["webhook"]]

        async def drain(queue: SqlJobQueue, owner: str, wanted: list[str]) -> list[Job]:
            got: list[Job] = []
            while batch := await queue.claim(wanted, 25, owner, 300):
                got.extend(batch)
            return got

        results = await asyncio.gather(
            *(drain(queues[i % 2], f"w{i}", kinds[i % 3]) for i in range(12)),
        )
    finally:
        await other.close()

    claimed = [job.id for batch in results for job in batch]
    assert len(claimed) == 600
    assert len(set(claimed)) == 600
    assert sum(1 for batch in results if batch) > 1


async def test_claiming_thousands_of_jobs_takes_few_transactions(stores: Stores) -> None:
    """Five thousand jobs are claimed 500 at a time and their completions share transactions:
    a few dozen commits, not one per job."""
    await stores.queue.enqueue([_job(stores, f"j{i:05d}", priority=i % 3) for i in range(5000)])
    writer = stores.database.writer
    transactions_before = writer.stats.transactions

    claimed = 0
    claims = 0
    while batch := await stores.queue.claim(["dispatch"], 500, "w1", 60):
        claims += 1
        claimed += len(batch)
        await asyncio.gather(*(stores.queue.complete(job.id, "w1") for job in batch))

    assert claimed == 5000
    assert claims == 10
    assert writer.stats.transactions - transactions_before < 100
    assert await stores.queue.pending() == {}


async def test_a_claim_that_need_not_be_alone_shares_the_next_transaction(
    stores: Stores, database_url: str
) -> None:
    """Without ``alone`` a SQLite claim is written with the writes queued beside it, in one
    transaction; alone it has one of its own. PostgreSQL claims outside the writer."""
    await stores.queue.enqueue([_job(stores, f"j{i}", kind="webhook") for i in range(4)])
    writer = stores.database.writer
    sqlite = database_url.startswith("sqlite")
    for alone, transactions in ((False, 1), (True, 2 if sqlite else 1)):
        before = writer.stats.transactions
        claimed, _ = await asyncio.gather(
            stores.queue.claim(["webhook"], 2, f"w-{alone}", 30, alone=alone),
            stores.queue.enqueue([_job(stores, f"beside-{alone}", kind="dispatch")]),
        )
        assert len(claimed) == 2
        assert writer.stats.transactions - before == transactions


async def test_a_claim_with_nothing_to_lease_takes_no_transaction(
    stores: Stores, database_url: str
) -> None:
    """On SQLite a claim that could lease nothing (no job ready of its kinds or band, none
    waiting whose time has come) reads the indexes and takes no write transaction; a job
    waiting for a later time, another kind's and one below the band's floor change nothing,
    and the claim still wakes and leases a job whose time has come."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL claims in one statement outside the writer")
    now = stores.clock.now()
    await stores.queue.enqueue(
        [
            _job(stores, "later", run_at=now + timedelta(seconds=30)),
            _job(stores, "other-kind", kind="webhook"),
            _job(stores, "low", priority=5),
        ]
    )
    writer = stores.database.writer
    before = writer.stats.transactions
    assert await stores.queue.claim(["dispatch"], 10, "w1", 30, min_priority=10) == []
    assert await stores.queue.claim(["notify"], 10, "w1", 30) == []
    assert writer.stats.transactions == before
    stores.clock.advance(30)
    claimed = await stores.queue.claim(["dispatch"], 10, "w1", 30, min_priority=0)
    assert [job.id for job in claimed] == ["low", "later"]
    assert writer.stats.transactions == before + 1


async def test_a_priority_floor_claims_only_jobs_at_or_above_it(stores: Stores) -> None:
    """``min_priority`` leaves lower-priority jobs ready, for one kind and across kinds."""
    await stores.queue.enqueue(
        [
            _job(stores, "m10", priority=10),
            _job(stores, "o30", priority=30),
            _job(stores, "o40", priority=40),
            _job(stores, "w25", kind="webhook", priority=25),
            _job(stores, "w30", kind="webhook", priority=30),
        ]
    )

    one_kind = await stores.queue.claim(["dispatch"], 10, "w1", 30, min_priority=30)
    kinds = await stores.queue.claim(["dispatch", "webhook"], 10, "w1", 30, min_priority=30)
    rest = await stores.queue.claim(["dispatch", "webhook"], 10, "w1", 30)

    assert [job.id for job in one_kind] == ["o40", "o30"]
    assert [job.id for job in kinds] == ["w30"]
    assert [job.id for job in rest] == ["w25", "m10"]


async def test_a_priority_ceiling_claims_only_jobs_at_or_below_it(stores: Stores) -> None:
    """``max_priority`` leaves higher-priority jobs (OTPs) ready, for one kind and across
    kinds; with ``min_priority`` it claims a band."""
    await stores.queue.enqueue(
        [
            _job(stores, "m10", priority=10),
            _job(stores, "m29", priority=29),
            _job(stores, "o30", priority=30),
            _job(stores, "w25", kind="webhook", priority=25),
            _job(stores, "w40", kind="webhook", priority=40),
        ]
    )

    one_kind = await stores.queue.claim(["dispatch"], 10, "w1", 30, max_priority=29)
    band = await stores.queue.claim(
        ["dispatch", "webhook"], 10, "w1", 30, min_priority=20, max_priority=29
    )
    rest = await stores.queue.claim(["dispatch", "webhook"], 10, "w1", 30)

    assert [job.id for job in one_kind] == ["m29", "m10"]
    assert [job.id for job in band] == ["w25"]
    assert [job.id for job in rest] == ["w40", "o30"]


async def test_a_ceiling_grace_takes_the_urgent_jobs_left_waiting(stores: Stores) -> None:
    """With ``ceiling_grace``, a capped claim also takes jobs above the ceiling that have been
    due that long (an OTP its workers did not take), first by priority; fresher ones stay."""
    now = stores.clock.now()
    await stores.queue.enqueue(
        [
            _job(stores, "m10", priority=10, run_at=now - timedelta(seconds=30)),
            _job(stores, "old-otp", priority=30, run_at=now - timedelta(seconds=3)),
            _job(stores, "new-otp", priority=30, run_at=now - timedelta(seconds=1)),
        ]
    )
    grace = timedelta(seconds=2)

    capped = await stores.queue.claim(
        ["dispatch"], 10, "w1", 30, max_priority=29, ceiling_grace=grace
    )
    only_overdue = await stores.queue.claim(
        ["dispatch"], 10, "w1", 30, min_priority=30, max_priority=29, ceiling_grace=grace
    )
    stores.clock.advance(1.5)
    later = await stores.queue.claim(
        ["dispatch"], 10, "w1", 30, min_priority=30, max_priority=29, ceiling_grace=grace
    )

    assert [job.id for job in capped] == ["old-otp", "m10"]
    assert only_overdue == []
    assert [job.id for job in later] == ["new-otp"]


async def test_claims_and_wakes_read_their_own_partial_index(stores: Stores) -> None:
    """The claim's and the wake's reads use ``ix_jobs_claim`` and ``ix_jobs_wake`` (each holds
    only its half of the jobs, ADR 28), in order: neither scans the table nor sorts."""
    queue: Any = stores.queue
    if queue._raw is not None:  # SQLite: the statements the queue runs, as compiled
        ready_sql, wake_sql = queue._raw._ready.sql, queue._raw._wake.sql
        waiting_sql = queue._raw._waiting.sql
        async with stores.database.read() as connection:

            async def plan(sql: str) -> str:
                count = sql.count("?")
                rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("x",) * count)
                return " ".join(str(row[-1]) for row in rows)

            ready, wake = await plan(ready_sql), await plan(wake_sql)
            waiting = await plan(waiting_sql)
        assert "USING INDEX ix_jobs_claim (kind=?" in ready
        assert "USING INDEX ix_jobs_wake (run_at<?)" in wake
        assert "USING INDEX ix_jobs_wake (run_at<?)" in waiting
        assert "TEMP B-TREE" not in ready + wake + waiting
        return
    ready_jobs = (
        "SELECT id FROM jobs WHERE jobs.ready IS true AND kind = 'dispatch' "
        "ORDER BY priority DESC, run_at LIMIT 10"
    )
    waiting = "SELECT id FROM jobs WHERE jobs.ready IS false AND run_at <= now() ORDER BY run_at"
    async with stores.database.read() as connection:
        plans = []
        for sql in (ready_jobs, waiting):
            rows = await connection.exec_driver_sql(f"EXPLAIN {sql}")
            plans.append(" ".join(str(row[0]) for row in rows))
    assert "ix_jobs_claim" in plans[0]
    assert "ix_jobs_wake" in plans[1]
    assert "Sort" not in plans[0] + plans[1]
