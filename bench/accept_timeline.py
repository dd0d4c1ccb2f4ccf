"""Scenario a's paced load with each request's time kept: where in the run the slow ones are.

    .venv/bin/python bench/accept_timeline.py --database postgresql [--closed 15] [--seconds 40]

Starts ``pigeon serve`` (workers off) on a fresh SQLite or PostgreSQL database, warms it up
for 2 s, optionally drives the closed loop of scenario a for ``--closed`` seconds first, then
offers ``--rate`` requests/s for ``--seconds`` from another process. Prints p50/p99/max and
every 100 ms window whose slowest request took more than ``--slow`` ms, with the window's
p50: a stall (every request in a window slow at once) looks different from a queue (p50
rising slowly). Session 13 found PostgreSQL's commits stalled this way by the kernel's
writeback of what an earlier closed loop had written (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import run as rest
from harness import KEY, fresh_database, quiet_collector

WINDOW = 0.1


def _paced(url: str, rate: float, seconds: float, out: Any) -> None:
    rows: list[tuple[float, float]] = []

    async def one(session: aiohttp.ClientSession, origin: float) -> None:
        started = time.perf_counter()
        headers = {"Authorization": f"Bearer {KEY}"}
        async with session.post(f"{url}/v1/messages", json=rest.BODY, headers=headers) as reply:
            await reply.read()
        rows.append((started - origin, time.perf_counter() - started))

    async def main() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
            start, origin = time.monotonic(), time.perf_counter()
            pending: set[asyncio.Task[None]] = set()
            for n in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
                task = asyncio.create_task(one(session, origin))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)

    quiet_collector()
    asyncio.run(main())
    out.put(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--closed", type=float, default=0.0, help="closed loop first (s)")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--slow", type=float, default=30.0, help="report windows above (ms)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(args.database, Path(tmp)) as url,
        rest.Server(
            Path(tmp) / "data", workers=False, receipt_delay=0.1, database_url=url
        ) as server,
    ):
        rest.drive(server.url, 2, 8)
        if args.closed:
            closed = rest.drive(server.url, args.closed, 64)
            print(f"closed loop: {closed['rate']:,.0f}/s")
        queue: Any = multiprocessing.Queue()
        loader = multiprocessing.Process(
            target=_paced, args=(server.url, args.rate, args.seconds, queue)
        )
        loader.start()
        rows: list[tuple[float, float]] = queue.get()
        loader.join()
    latencies = sorted(latency for _, latency in rows)

    def pick(share: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * share))]

    print(f"p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {1000 * latencies[-1]:.1f} ms")
    windows: dict[int, list[float]] = defaultdict(list)
    for started, latency in rows:
        windows[int(started / WINDOW)].append(latency)
    for window in sorted(windows):
        found = sorted(windows[window])
        if 1000 * found[-1] > args.slow:
            print(
                f"t={window * WINDOW:6.1f} s  requests {len(found):4d}  "
                f"max {1000 * found[-1]:6.1f} ms  p50 {1000 * found[len(found) // 2]:6.1f} ms"
            )


if __name__ == "__main__":
    main()
