"""What the queue's operational reads cost behind a backlog: the readiness probe, the count by
kind that ``/metrics`` samples, and, on PostgreSQL, that count with and without JIT.

    .venv/bin/python bench/queue_reads.py                     # SQLite and PostgreSQL
    .venv/bin/python bench/queue_reads.py --backlog 100000 --database sqlite

Seeds a new database with ``--backlog`` queued messages and their due dispatch jobs
(``bench/seed.py``), then times, ``--repeat`` times each, through Pigeon's own queue
(``SqlJobQueue``, Pigeon's session settings):

- ``probe``: what ``/readyz`` asks of the queue (at most one job read);
- ``pending``: the count by kind that ``/metrics`` samples at each scrape (and that readiness
  asked before session 40: the whole table, at every probe).

On PostgreSQL it also runs the count on a plain ``asyncpg`` session with Pigeon's planner
settings and JIT on, then off: those settings price a full scan at over 10^10, above every
``jit_*_above_cost``, so with JIT on the server compiles such a statement with LLVM at each
execution. The figures are the median wall time per call (the server's time included) and
the machine; compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from harness import command_and_machine, fresh_database, scratch, trees_and_databases
from seed import seed

from pigeon.store import connect
from pigeon.store.database import PG_SESSION_SETTINGS

#: The count ``SqlJobQueue.pending`` runs, as SQL for a plain session.
COUNT_BY_KIND = "SELECT kind, count(*) FROM jobs GROUP BY kind"


async def _median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """The median wall time of ``call`` in milliseconds, after one unmeasured call."""
    await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _through_pigeon(url: str, repeat: int) -> dict[str, float]:
    """``probe`` and ``pending`` of Pigeon's queue on ``url``."""
    from pigeon.clock import SystemClock
    from pigeon.queue import SqlJobQueue

    database = await connect(url)
    try:
        queue = SqlJobQueue(database, SystemClock())
        return {
            "probe": await _median_ms(queue.probe, repeat),
            "pending": await _median_ms(queue.pending, repeat),
        }
    finally:
        await database.close()


async def _count_with_jit(url: str, repeat: int) -> dict[str, float]:
    """The count by kind on plain asyncpg sessions with Pigeon's planner settings, JIT on and
    off."""
    import asyncpg

    found = {}
    for jit in ("on", "off"):
        settings = {**PG_SESSION_SETTINGS, "jit": jit}
        connection = await asyncpg.connect(url.replace("+asyncpg", ""), server_settings=settings)
        try:
            found[f"count, jit {jit}"] = await _median_ms(
                lambda c=connection: c.fetch(COUNT_BY_KIND), repeat
            )
        finally:
            await connection.close()
    return found


async def measure(kind: str, backlog: int, repeat: int) -> dict[str, float]:
    """Every figure on a new database of ``kind`` seeded with ``backlog`` queued messages."""
    with scratch("pigeon-queue-reads-") as tmp, fresh_database(kind, tmp) as url:
        url = url or f"sqlite:///{tmp / 'pigeon.db'}"
        await seed(url, stored=0, backlog=backlog)
        found = await _through_pigeon(url, repeat)
        if kind == "postgresql":
            found.update(await _count_with_jit(url, repeat))
        return found


def report(backlog: int, rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the figures, one row per database."""
    names: list[str] = []
    for figures in rows.values():
        names.extend(name for name in figures if name not in names)
    lines = [
        f"Median ms per call with {backlog:,} jobs queued:",
        "",
        "| database | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for kind, figures in rows.items():
        cells = [f"{figures[name]:.2f}" if name in figures else "" for name in names]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql"), action="append", help="default: both"
    )
    args = parser.parse_args(argv)
    args.tree = None
    _, databases = trees_and_databases(args)
    rows = {kind: asyncio.run(measure(kind, args.backlog, args.repeat)) for kind in databases}
    print(report(args.backlog, rows))
    print()
    print(command_and_machine("queue_reads.py", argv))


if __name__ == "__main__":
    main()
