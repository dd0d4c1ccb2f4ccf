"""The SQLite store in-process: sequential latency of the hot calls and group-commit rates.

    .venv/bin/python bench/store_sqlite.py                     # this tree
    .venv/bin/python bench/store_sqlite.py --compare OLD/src   # OLD/src and this tree, side by side

Measures, on a fresh migrated SQLite file (WAL, ``synchronous=FULL``) holding ``--seed``
messages: ``get_message``, ``find_by_carrier_id`` (a miss on the indexed column), a no-op
``mutate`` and ``accept`` one call at a time, then accepts/s with 64 and 500 concurrent
callers. ``--compare`` runs each tree in its own process (``PYTHONPATH``), alternating, and
prints the median of the rounds per tree and after/before ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ulid import ULID

LATENCY = ("get_message", "find_by_carrier_id", "mutate_noop", "accept")
RATES = ("accept_c64", "accept_c500")


def make_acceptance(tenant_id: str, now: datetime) -> Any:
    """One OTP's ``Acceptance`` (the message, its ``queued`` event and its dispatch job), as
    the accept use case hands it to the store."""
    from pigeon.domain.messages import Category, Direction, Message, MessageStatus
    from pigeon.ports import Acceptance, EventRecord, NewJob

    message = Message(
        id=f"msg_{ULID()}",
        tenant_id=tenant_id,
        direction=Direction.MT,
        to="+447700900123",
        sender="Pigeon",
        body="Your code is 123456",
        category=Category.OTP,
        encoding="gsm7",
        segments=1,
        status=MessageStatus.QUEUED,
        created_at=now,
        updated_at=now,
        country="GB",
        expires_at=now + timedelta(hours=1),
        status_sequence=1,
    )
    event = EventRecord(
        id=f"evt_{ULID()}",
        tenant_id=tenant_id,
        message_id=message.id,
        type="message.queued",
        status=message.status,
        sequence=1,
        at=now,
        detail=None,
        payload={"id": message.id, "status": "queued"},
    )
    job = NewJob(
        id=f"dispatch:{message.id}",
        kind="dispatch",
        payload={"message_id": message.id},
        run_at=now,
        priority=message.category.priority,
    )
    return Acceptance(message=message, events=[event], jobs=[job], idempotency=None)


async def measure(seed: int, rounds: int) -> dict[str, float]:
    from pigeon.domain.accounts import Tenant
    from pigeon.ports import Acceptance
    from pigeon.store import SqlAccountStore, SqlMessageStore, connect, migrate
    from pigeon.testing import FakeClock

    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        await migrate(url)
        database = await connect(url)
        try:
            messages = SqlMessageStore(database, clock)
            accounts = SqlAccountStore(database)
            tenant = Tenant(
                id=f"ten_{ULID()}", name="bench", default_region="GB", created_at=clock.now()
            )
            await accounts.create_tenant(tenant)

            def acceptance() -> Acceptance:
                return make_acceptance(tenant.id, clock.now())

            async def concurrent_accepts(callers: int, total: int) -> float:
                items = [acceptance() for _ in range(total)]
                queue = iter(items)

                async def caller() -> None:
                    for item in queue:
                        await messages.accept(item)

                started = time.perf_counter()
                await asyncio.gather(*(caller() for _ in range(callers)))
                return total / (time.perf_counter() - started)

            await concurrent_accepts(64, seed)  # the seed messages
            known = (await messages.accept(acceptance())).message.id

            async def timed(call: Callable[[], Awaitable[Any]], count: int) -> float:
                for _ in range(min(count, 50)):  # warm up
                    await call()
                started = time.perf_counter()
                for _ in range(count):
                    await call()
                return (time.perf_counter() - started) / count * 1e6

            results: dict[str, float] = {}
            samples: dict[str, list[float]] = {name: [] for name in LATENCY + RATES}
            for _ in range(rounds):
                samples["get_message"].append(
                    await timed(lambda: messages.get_message(known, tenant.id), 2000)
                )
                samples["find_by_carrier_id"].append(
                    await timed(lambda: messages.find_by_carrier_id("sim", ["ffff0000"]), 2000)
                )
                samples["mutate_noop"].append(
                    await timed(lambda: messages.mutate(known, lambda _m: None), 300)
                )
                samples["accept"].append(await timed(lambda: messages.accept(acceptance()), 300))
                samples["accept_c64"].append(await concurrent_accepts(64, 5000))
                samples["accept_c500"].append(await concurrent_accepts(500, 10000))
            for name, values in samples.items():
                results[name] = statistics.median(values)
            return results
        finally:
            await database.close()


def compare(before: str, seed: int, rounds: int, runs: int) -> None:
    trees = {"before": before, "after": str(Path(__file__).resolve().parent.parent / "src")}
    found: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(runs):
        for name, source in trees.items():
            output = subprocess.run(
                [sys.executable, __file__, "--json", "--seed", str(seed), "--rounds", str(rounds)],
                env={**os.environ, "PYTHONPATH": source},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            found[name].append(json.loads(output.strip().splitlines()[-1]))
    print(f"| measure | before ({before}) | after | after/before |")
    print("|---|---|---|---|")
    for key in LATENCY + RATES:
        old = statistics.median(run[key] for run in found["before"])
        new = statistics.median(run[key] for run in found["after"])
        unit = "µs" if key in LATENCY else "msg/s"
        ratio = old / new if key in LATENCY else new / old
        print(f"| {key} | {old:,.0f} {unit} | {new:,.0f} {unit} | {ratio:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2, help="processes per tree (--compare)")
    parser.add_argument("--compare", metavar="OLD_SRC")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.seed, args.rounds, args.runs)
        return
    results = asyncio.run(measure(args.seed, args.rounds))
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            unit = "µs" if key in LATENCY else "msg/s"
            print(f"{key:20} {value:12,.0f} {unit}")


if __name__ == "__main__":
    main()
