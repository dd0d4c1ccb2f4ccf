"""A connector's throughput cap kept across processes through the real Redis on 127.0.0.1
(ADR 41): the bucket's script, the blocks each process takes, and pacing alone when Redis
cannot be reached. Time is stepped by the tests (the script is given it) so that no figure
depends on the machine's speed."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from pigeon.connectors.cluster_quota import BLOCK_SECONDS, RETRY_SECONDS, ClusterQuotas
from pigeon.connectors.pacing import TokenBucket
from pigeon.telemetry import CLUSTER_QUOTA_FAILURES, CLUSTER_QUOTA_WAITS

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class SteppedTime:
    """One clock for every process of a test: sleeping moves it on."""

    seconds: float = 1_000.0
    slept: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.seconds

    def micros(self) -> int:
        return int(self.seconds * 1_000_000)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.seconds += seconds


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"pigeon-test-{secrets.token_hex(4)}:"
    yield name
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _quotas(prefix: str, time: SteppedTime, url: str = REDIS_URL) -> ClusterQuotas:
    return ClusterQuotas(url, prefix=prefix, now=time.now, sleep=time.sleep, redis_now=time.micros)


async def _take_all(gates: list[Callable[[], Awaitable[None]]], count: int) -> None:
    for n in range(count):
        await gates[n % len(gates)]()


async def test_two_processes_share_one_cap(prefix: str) -> None:
    """Two processes (two clients) taking turns at a cap of 100/s pass 400 submits in the
    time the cap allows for 400 less the burst, and no faster; both get their turns."""
    time = SteppedTime()
    first, second = _quotas(prefix, time), _quotas(prefix, time)
    try:
        gates = [first.gate("carrier-a", 100), second.gate("carrier-a", 100)]
        started = time.seconds
        await _take_all(list(gates), 400)
        elapsed = time.seconds - started
    finally:
        await first.close()
        await second.close()
    burst = 10  # a tenth of a second of the cap
    assert elapsed >= (400 - burst) / 100 - 1e-6
    assert elapsed <= (400 - burst) / 100 + 0.5  # blocks spent in their time: little waste
    assert [gate.passed for gate in gates] == [200, 200]
    assert gates[0].waits > 0
    assert gates[1].waits > 0
    waited = CLUSTER_QUOTA_WAITS.labels("carrier-a").value
    assert waited >= gates[0].waits + gates[1].waits  # in /metrics too


async def test_one_process_alone_has_the_whole_cap(prefix: str) -> None:
    """A single process at a cap of 100/s takes its tokens in blocks of two (20 ms of the
    cap, one round trip each) and passes 300 submits in (300 - burst) / 100 seconds."""
    time = SteppedTime()
    quotas = _quotas(prefix, time)
    try:
        gate = quotas.gate("carrier-b", 100)
        assert gate.block == int(100 * BLOCK_SECONDS) == 2
        started = time.seconds
        await _take_all([gate], 300)
        elapsed = time.seconds - started
        client = aioredis.from_url(REDIS_URL)
        try:
            ttl = await client.pttl(f"{prefix}cap:carrier-b")
        finally:
            await client.aclose()
    finally:
        await quotas.close()
    assert (300 - 10) / 100 - 1e-6 <= elapsed <= (300 - 10) / 100 + 0.5
    assert 0 < ttl <= 1_100  # the key goes once a full bucket would have refilled


async def test_a_block_not_spent_in_its_time_is_dropped(prefix: str) -> None:
    """Tokens of a block left unspent past ``BLOCK_SECONDS`` are not spent later: after a
    pause the next submit asks Redis again instead of using them."""
    time = SteppedTime()
    quotas = _quotas(prefix, time)
    try:
        gate = quotas.gate("carrier-c", 500)  # blocks of 10
        await gate()  # takes a block, spends one
        client = aioredis.from_url(REDIS_URL)
        try:
            key = f"{prefix}cap:carrier-c"
            level_after_block = float(await client.hget(key, "level") or 0)
            time.seconds += BLOCK_SECONDS * 2
            await gate()  # the nine left are dropped: a new block
            at_after = float(await client.hget(key, "at") or 0)
        finally:
            await client.aclose()
    finally:
        await quotas.close()
    assert level_after_block == pytest.approx(50 - 10)
    assert at_after == pytest.approx(time.micros())  # Redis was asked at the second submit


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_without_redis_a_process_paces_alone_and_asks_again_later(prefix: str) -> None:
    """Redis unreachable: submits pass at once (the local pacer is what paces them), the
    failure is counted once (and in ``/metrics``), Redis is not asked again for
    ``RETRY_SECONDS``, then it is."""
    time = SteppedTime()
    quotas = _quotas(prefix, time, url=f"redis://127.0.0.1:{_closed_port()}/0")
    connector = f"carrier-d-{prefix}"
    try:
        gate = quotas.gate(connector, 50)
        for _ in range(5):
            await gate()
        assert quotas.failures == 1
        assert CLUSTER_QUOTA_FAILURES.labels(connector).value == 1
        assert time.slept == []
        time.seconds += RETRY_SECONDS
        await gate()
        assert quotas.failures == 2
        assert gate.passed == 6
        assert gate.waits == 0
    finally:
        await quotas.close()


async def test_the_local_pacer_passes_its_gate_after_its_own_token(prefix: str) -> None:
    """A connector's pacer with a gate takes its own token first, then passes the gate: the
    Redis bucket sees every submit the pacer lets through."""
    time = SteppedTime()
    quotas = _quotas(prefix, time)
    try:
        bucket = TokenBucket(100, now=time.now, sleep=time.sleep)
        gate = quotas.gate("carrier-e", 100)
        bucket.gate = gate
        for _ in range(50):
            await bucket.take()
    finally:
        await quotas.close()
    assert bucket.taken == 50
    assert gate.passed == 50
