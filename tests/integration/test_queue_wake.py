"""``JobQueue.wake``: jobs of one owner made due now, on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from pigeon.ports import NewJob

if TYPE_CHECKING:
    from conftest import Stores


def _job(stores: Stores, job_id: str, delay: float) -> NewJob:
    return NewJob(
        id=job_id,
        kind="smpp_deliver",
        payload={"n": job_id},
        run_at=stores.clock.now() + timedelta(seconds=delay),
    )


async def test_wake_makes_the_prefixed_jobs_due_now(stores: Stores) -> None:
    """Jobs waiting for later whose id starts with the prefix become claimable at once."""
    queue = stores.queue
    await queue.enqueue(
        [
            _job(stores, "smpp_deliver:sma_A:msg_1:4", 30),
            _job(stores, "smpp_deliver:sma_A:msg_2:4", 3600),
            _job(stores, "smpp_deliver:sma_B:msg_3:4", 30),
        ]
    )
    assert await queue.claim(["smpp_deliver"], 10, "w", 60) == []

    woken = await queue.wake("smpp_deliver:sma_A:")
    claimed = await queue.claim(["smpp_deliver"], 10, "w", 60)

    assert woken == 2
    assert sorted(job.id for job in claimed) == [
        "smpp_deliver:sma_A:msg_1:4",
        "smpp_deliver:sma_A:msg_2:4",
    ]


async def test_wake_treats_underscores_and_percents_literally(stores: Stores) -> None:
    """LIKE wildcards in the prefix match only themselves."""
    queue = stores.queue
    await queue.enqueue([_job(stores, "smpp_deliver:smaXA:1", 60), _job(stores, "a%b:1", 60)])

    assert await queue.wake("smpp_deliver:sma_A:") == 0
    assert await queue.wake("a%") == 1
    assert await queue.wake("a_") == 0


async def test_wake_leaves_leased_jobs_alone(stores: Stores) -> None:
    """A job someone holds keeps its lease; only the free ones are touched."""
    queue = stores.queue
    await queue.enqueue([_job(stores, "smpp_deliver:sma_A:held", 0)])
    (held,) = await queue.claim(["smpp_deliver"], 10, "w1", 60)
    await queue.enqueue([_job(stores, "smpp_deliver:sma_A:free", 60)])

    woken = await queue.wake("smpp_deliver:sma_A:")
    claimed = await queue.claim(["smpp_deliver"], 10, "w2", 60)

    assert woken == 1
    assert [job.id for job in claimed] == ["smpp_deliver:sma_A:free"]
    await queue.complete(held.id, "w1")
    assert await queue.pending() == {"smpp_deliver": 1}


async def test_wake_needs_a_prefix(stores: Stores) -> None:
    """An empty prefix would wake every job: refused."""
    with pytest.raises(ValueError, match="prefix"):
        await stores.queue.wake("")
