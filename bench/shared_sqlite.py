"""Two processes writing to one SQLite file at once, as ``pigeon serve`` and its worker do:
what the shared write lock and the disk's sync cost them, without HTTP or SMPP around.

    .venv/bin/python bench/shared_sqlite.py                      # this tree
    .venv/bin/python bench/shared_sqlite.py --compare OLD/src    # OLD/src and this tree

Each of ``--processes`` processes opens the same migrated file with Pigeon's store
(``connect``: WAL, ``synchronous=FULL``, the group-commit writer) and accepts messages through
``SqlMessageStore.accept`` from ``--callers`` concurrent callers for ``--seconds``, all
starting together. Reported: accepts per second of all processes together, their CPU per
accept (user and system time of the processes, from ``resource``), and per process the
writer's transactions, the ones that found the lock held by the other process, and its WAL
syncs after COMMIT (ADR 30). ``--compare`` runs the two trees alternately, ``--runs`` times
each (``PYTHONPATH``), and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store_sqlite import make_acceptance
from ulid import ULID

HERE = Path(__file__).resolve().parent


async def one_process(url: str, start_at: float, seconds: float, callers: int) -> dict[str, Any]:
    """Accept from ``callers`` callers from ``start_at`` (wall clock) for ``seconds``."""
    from pigeon.clock import SystemClock
    from pigeon.domain.accounts import Tenant
    from pigeon.store import SqlAccountStore, SqlMessageStore, connect

    clock = SystemClock()
    database = await connect(url)
    try:
        messages = SqlMessageStore(database, clock)
        tenant_id = f"ten_{ULID()}"
        tenant = Tenant(id=tenant_id, name=tenant_id, default_region="GB", created_at=clock.now())
        await SqlAccountStore(database).create_tenant(tenant)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        writer = database.writer.stats
        before = (writer.transactions, writer.lock_waits, getattr(writer, "wal_syncs", 0))
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        deadline = time.monotonic() + seconds
        accepted = 0

        async def caller() -> None:
            nonlocal accepted
            while time.monotonic() < deadline:
                await messages.accept(make_acceptance(tenant.id, clock.now()))
                accepted += 1

        await asyncio.gather(*(caller() for _ in range(callers)))
        used = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "accepted": accepted,
            "cpu": used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime,
            "transactions": writer.transactions - before[0],
            "lock_waits": writer.lock_waits - before[1],
            "wal_syncs": getattr(writer, "wal_syncs", 0) - before[2],
        }
    finally:
        await database.close()


def run_once(source: str | None, processes: int, seconds: float, callers: int) -> dict[str, Any]:
    """One round: a fresh file, ``processes`` processes of the tree at ``source``."""
    env = {**os.environ, "PYTHONPATH": source} if source else dict(os.environ)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'shared.db'}"
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import asyncio; from pigeon.store import migrate; asyncio.run(migrate({url!r}))",
            ],
            env=env,
            check=True,
        )
        start_at = time.time() + 3.0
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    url,
                    "--start-at",
                    str(start_at),
                    "--seconds",
                    str(seconds),
                    "--callers",
                    str(callers),
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        results = [
            json.loads(child.communicate()[0].strip().splitlines()[-1]) for child in children
        ]
    accepted = sum(r["accepted"] for r in results)
    return {
        "accepts_per_second": accepted / seconds,
        "cpu_us_per_accept": sum(r["cpu"] for r in results) / accepted * 1e6,
        "processes": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--compare", metavar="OLD_SRC")
    parser.add_argument("--runs", type=int, default=3, help="rounds per tree (--compare)")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(one_process(args.child, args.start_at, args.seconds, args.callers))
        print(json.dumps(result))
        return
    print(f"machine: {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if not args.compare:
        print(json.dumps(run_once(None, args.processes, args.seconds, args.callers), indent=1))
        return
    trees = {"before": args.compare, "after": str(HERE.parent / "src")}
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_number in range(args.runs):
        for name, source in trees.items():
            result = run_once(source, args.processes, args.seconds, args.callers)
            found[name].append(result)
            waits = "/".join(str(p["lock_waits"]) for p in result["processes"])
            txns = "/".join(str(p["transactions"]) for p in result["processes"])
            print(
                f"round {round_number + 1} {name}: {result['accepts_per_second']:,.0f} accepts/s, "
                f"{result['cpu_us_per_accept']:.1f} us CPU per accept, transactions {txns}, "
                f"lock waits {waits}",
                flush=True,
            )
    print(f"| median of {args.runs} | before ({args.compare}) | after | after / before |")
    print("|---|---|---|---|")
    for key in ("accepts_per_second", "cpu_us_per_accept"):
        old = statistics.median(r[key] for r in found["before"])
        new = statistics.median(r[key] for r in found["after"])
        print(f"| {key} | {old:,.1f} | {new:,.1f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()
