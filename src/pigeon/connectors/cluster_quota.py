"""A carrier's throughput cap kept across processes and nodes, through Redis (ADR 41).

ADR 40 shares a cap among the worker processes one ``pigeon serve`` starts. Processes
started on their own (``pigeon worker`` on other machines, several ``serve`` on one
PostgreSQL) know nothing of each other, and each would send at its whole part. With
``redis_url`` set, every process also takes each submit's token from one bucket per
connector in Redis, so the gateway as a whole keeps the cap whatever its number of
processes and nodes:

- The bucket is a Lua script, atomic in Redis: it holds at most a tenth of a second of the
  cap (the local pacer's burst, at least one token), refills at the cap by Redis's own clock
  (``TIME``, so the nodes' clocks play no part) and answers how many of the tokens asked for
  it gives, and when the next one is due if it gives none.
- A process asks for a block of about ``BLOCK_SECONDS`` of the cap at a time (one round trip
  per block, not per submit) and spends it within ``BLOCK_SECONDS``: what is left by then is
  dropped, so a block taken early cannot be spent on top of later ones. The cap is a bound
  that is never passed; a process that takes tokens it then does not need leaves them unused.
- The takers of one connector in one process queue on one lock (one round trip in flight),
  and sleep until the due time the script gave (at most ``MAX_SLEEP``) before asking again.
- When Redis cannot be reached or fails, the process paces with its local pacer alone (its
  part of the cap under ADR 40, the whole cap on its own), logs it, and asks Redis again
  ``RETRY_SECONDS`` later: a message is never held up by the quota's own failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pigeon.telemetry import CLUSTER_QUOTA_FAILURES, CLUSTER_QUOTA_WAITS

__all__ = ["BLOCK_SECONDS", "MAX_SLEEP", "RETRY_SECONDS", "ClusterGate", "ClusterQuotas"]

log = logging.getLogger(__name__)

#: The share of a second of the cap a process takes from Redis at a time, and how long it
#: may spend it.
BLOCK_SECONDS = 0.02
#: The longest a taker sleeps before it asks Redis again (seconds).
MAX_SLEEP = 0.25
#: After Redis failed, how long a process paces alone before it asks Redis again (seconds).
RETRY_SECONDS = 5.0
#: A round trip to Redis that takes longer than this counts as a failure (seconds).
REDIS_TIMEOUT = 1.0

# KEYS[1]: the bucket. ARGV: the cap (tokens per second), the burst (most tokens held), the
# tokens wanted, and optionally the time in microseconds (tests; otherwise Redis's TIME).
# Returns {tokens given, microseconds until the next token when none was given}. The level
# is kept as text with its fraction; the key expires once a full bucket would have refilled.
_TAKE = """
local now
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1])
local at = tonumber(state[2])
if level == nil or at == nil then
  level = burst
  at = now
end
if now > at then
  level = math.min(burst, level + (now - at) * rate / 1000000)
  at = now
end
local given = math.min(want, math.floor(level))
if given < 0 then
  given = 0
end
level = level - given
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if given == 0 then
  wait = math.ceil((1 - level) * 1000000 / rate)
end
return {given, wait}
"""


class ClusterQuotas:
    """The Redis buckets of this process's capped connectors: one client for them all.

    ``now`` and ``sleep`` pace the blocks and the waits; ``redis_now`` (microseconds), when
    given, stands for Redis's clock in the script, so that tests can step the time.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pigeon:",
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        redis_now: Callable[[], int] | None = None,
    ) -> None:
        # Imported here: a gateway without ``redis_url`` never loads the client (about 7 MB).
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._redis_errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._client: Any = aioredis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._take_script: Any = self._client.register_script(_TAKE)
        self._prefix = prefix
        self._now = now
        self._sleep = sleep
        self._redis_now = redis_now
        #: Until when (``now``) Redis is not asked, after a failure.
        self._failed_until = -1.0
        #: Round trips that failed, since the start.
        self.failures = 0

    def key(self, connector_id: str) -> str:
        """The Redis key of ``connector_id``'s bucket."""
        return f"{self._prefix}cap:{connector_id}"

    def gate(self, connector_id: str, cap: float) -> ClusterGate:
        """The gate each of ``connector_id``'s submits passes, at ``cap`` per second."""
        return ClusterGate(self, connector_id, cap, now=self._now, sleep=self._sleep)

    async def take(self, connector_id: str, cap: float, want: int) -> tuple[int, float] | None:
        """Up to ``want`` tokens of ``connector_id``'s bucket at ``cap`` per second: how many
        it gave, and the seconds until the next one when it gave none. ``None`` when Redis is
        not to be asked (it failed lately, or fails now): pace alone."""
        if self._now() < self._failed_until:
            return None
        key = self.key(connector_id)
        burst = max(1.0, cap / 10)
        args: list[Any] = [repr(float(cap)), repr(burst), want]
        if self._redis_now is not None:
            args.append(self._redis_now())
        try:
            given, wait = await self._take_script(keys=[key], args=args)
        except self._redis_errors as exc:
            self.failures += 1
            CLUSTER_QUOTA_FAILURES.labels(connector_id).inc()
            self._failed_until = self._now() + RETRY_SECONDS
            log.warning(
                "redis quota %s unavailable (%s): pacing with this process's own part of "
                "the cap for %.0f s",
                key,
                exc,
                RETRY_SECONDS,
            )
            return None
        return int(given), int(wait) / 1_000_000

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()


class ClusterGate:
    """One connector's submits through its Redis bucket (``ClusterQuotas.gate``)."""

    def __init__(
        self,
        quotas: ClusterQuotas,
        connector_id: str,
        cap: float,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._quotas = quotas
        self._now = now
        self._sleep = sleep
        self.connector_id = connector_id
        self.key = quotas.key(connector_id)
        self.cap = cap
        #: Tokens asked for at a time: about ``BLOCK_SECONDS`` of the cap, at least one.
        self.block = max(1, int(cap * BLOCK_SECONDS))
        self._left = 0
        self._spend_by = 0.0
        self._lock = asyncio.Lock()
        #: Submits passed, and how many of those had to wait for Redis's next token.
        self.passed = 0
        self.waits = 0

    async def __call__(self) -> None:
        """Pass one submit: a token of the block in hand, else of a new block from Redis
        (sleeping until one is due); at once if Redis cannot be asked."""
        async with self._lock:
            waited = False
            while True:
                if self._left > 0 and self._now() < self._spend_by:
                    self._left -= 1
                    break
                self._left = 0
                taken = await self._quotas.take(self.connector_id, self.cap, self.block)
                if taken is None:
                    break
                given, wait = taken
                if given > 0:
                    self._left = given - 1
                    self._spend_by = self._now() + BLOCK_SECONDS
                    break
                waited = True
                await self._sleep(min(max(wait, 0.001), MAX_SLEEP))
            self.passed += 1
            if waited:
                self.waits += 1
                CLUSTER_QUOTA_WAITS.labels(self.connector_id).inc()
