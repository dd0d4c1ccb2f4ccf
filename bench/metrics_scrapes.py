"""REST accept latency while ``/metrics`` is scraped, behind a queued backlog.

    .venv/bin/python bench/metrics_scrapes.py                        # SQLite and PostgreSQL
    .venv/bin/python bench/metrics_scrapes.py --backlog 1000000 --database sqlite
    .venv/bin/python bench/metrics_scrapes.py --tree base=OLD/src --tree this=src

A scrape of ``/metrics`` samples the jobs waiting, by kind: a count of the whole queue, which
a marketing campaign can make a million rows long. Each database is seeded once with
``--backlog`` queued messages and their dispatch jobs (``bench/seed.py``); then, for each
``--tree``, ``pigeon serve`` runs on it with its workers off (the backlog stays), and a paced
load of ``--rate`` sends a second for ``--seconds`` is posted twice: alone, then with
``/metrics`` scraped every second (a busy Prometheus; the default is 15 to 60 s). Reported:
the accept p50 and p99 of each phase and the median time of a scrape. On SQLite ``serve``
reads on its event loop, so a scrape that reads long holds every accept back for as long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Sequence

import aiohttp
from harness import (
    SOURCE,
    Processes,
    add_store_options,
    command_and_machine,
    fresh_database,
    scratch,
    start_pigeon,
    trees_and_databases,
)
from latency import post_messages
from seed import seed


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def _scrape(base: str, stop: asyncio.Event, times: list[float]) -> None:
    """GET ``/metrics`` every second until ``stop``, timing each."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(f"{base}/metrics") as response:
                await response.read()
            times.append((time.perf_counter() - started) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def _phase(
    base: str, label: str, rate: float, seconds: float, scrape: bool
) -> dict[str, float]:
    """One paced load of accepts, with or without scrapes: p50 / p99 ms (and the scrapes')."""
    stop = asyncio.Event()
    scrapes: list[float] = []
    scraper = asyncio.create_task(_scrape(base, stop, scrapes)) if scrape else None
    timed = await post_messages(base, label, int(rate * seconds), concurrency=64, rate=rate)
    stop.set()
    if scraper is not None:
        await scraper
    accepts = [latency * 1000 for latency in timed.accept]
    found = {
        "p50": statistics.median(accepts),
        "p99": _percentile(accepts, 0.99),
        "errors": float(timed.errors),
    }
    if scrapes:
        found["scrape"] = statistics.median(scrapes)
    return found


async def measure(
    kind: str, backlog: int, trees: Sequence[tuple[str, str | None]], rate: float, seconds: float
) -> dict[str, dict[str, dict[str, float]]]:
    """Each tree's two phases on one database of ``kind`` seeded with ``backlog``."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    with scratch("pigeon-metrics-scrapes-") as tmp, fresh_database(kind, tmp) as url:
        data = tmp / "pigeon-data"
        data.mkdir()
        await seed(url or f"sqlite:///{data / 'pigeon.db'}", backlog=backlog)
        for label, source in trees:
            SOURCE[:] = [source] if source else []
            processes = Processes()
            try:
                pigeon = await start_pigeon(processes, tmp, None, database_url=url, workers=False)
                await post_messages(pigeon.base, f"warm-{label}", 200, concurrency=8)
                results[label] = {
                    "alone": await _phase(pigeon.base, f"a-{label}", rate, seconds, False),
                    "scraped": await _phase(pigeon.base, f"s-{label}", rate, seconds, True),
                }
            finally:
                await asyncio.to_thread(processes.stop_all)
    return results


def report(
    kind: str, backlog: int, rate: float, results: dict[str, dict[str, dict[str, float]]]
) -> str:
    """A Markdown table: per tree, the accept percentiles alone and scraped, and a scrape."""
    lines = [
        f"{kind}, {backlog:,} jobs queued, {rate:,.0f} sends/s (ms):",
        "",
        "| tree | accept p50 / p99, alone | accept p50 / p99, scraped every second | a scrape |",
        "|---|---|---|---|",
    ]
    for label, phases in results.items():
        alone, scraped = phases["alone"], phases["scraped"]
        errors = int(alone["errors"] + scraped["errors"])
        lines.append(
            f"| {label} | {alone['p50']:.1f} / {alone['p99']:.1f} | "
            f"{scraped['p50']:.1f} / {scraped['p99']:.1f} | {scraped.get('scrape', 0.0):.1f} |"
            + (f" ({errors} errors)" if errors else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=500_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    add_store_options(parser)
    args = parser.parse_args(argv)
    trees, databases = trees_and_databases(args)
    for kind in databases:
        results = asyncio.run(measure(kind, args.backlog, trees, args.rate, args.seconds))
        print(report(kind, args.backlog, args.rate, results))
        print()
    print(command_and_machine("metrics_scrapes.py", argv))


if __name__ == "__main__":
    main()
