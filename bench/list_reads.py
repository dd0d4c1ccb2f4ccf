"""``GET /v1/messages`` as the store grows: each shape of listing timed on an empty store and on
one holding ``--stored`` delivered messages, on SQLite and PostgreSQL.

    .venv/bin/python bench/list_reads.py                                # 1M stored, both
    .venv/bin/python bench/list_reads.py --database sqlite --stored 200000
    .venv/bin/python bench/list_reads.py --tree base=OLD/src --tree this=src

Each store is seeded once (``bench/seed.py``: delivered messages of the last 30 days, to
10,000 recipients), then ``pigeon serve`` (workers off) runs on it from each ``--tree`` in
turn, and each listing is asked ``--repeat`` times: the median wall time of the request is
reported, with its rows and whether it gave a ``next_cursor``. The shapes:

- ``all``: no filter (the tenant's messages by id, newest first);
- ``delivered``: a status most messages are in; ``failed``: one listed through the events'
  partial index (ADR 26); ``queued`` and ``sent``: statuses no index serves that no stored
  message is in, the walk's worst case;
- ``to``: one recipient (``(tenant_id, recipient, id)``);
- ``window``: one day, two weeks back (``created_after`` / ``created_before``), and
  ``window page 2``: its next page; ``window queued``: that day filtered by such a status.

A listing whose time grows with the store reads rows the page does not need; flat ones read
an index range. Compare the stored column with the empty one, within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from harness import (
    KEY,
    SOURCE,
    Processes,
    add_store_options,
    command_and_machine,
    fresh_database,
    scratch,
    start_pigeon,
    trees_and_databases,
)
from seed import seed

#: One day two weeks back: the seed spreads its messages over the last 30 days.
_DAY = (datetime.now(UTC) - timedelta(days=14)).replace(hour=0, minute=0, second=0, microsecond=0)
_WINDOW = {
    "created_after": _DAY.isoformat().replace("+00:00", "Z"),
    "created_before": (_DAY + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
}

#: Each shape's query parameters (``limit`` 50 each).
SHAPES: dict[str, dict[str, str]] = {
    "all": {},
    "delivered": {"status": "delivered"},
    "failed": {"status": "failed"},
    "queued": {"status": "queued"},
    "sent": {"status": "sent"},
    "to": {"to": "+14155550123"},
    "window": dict(_WINDOW),
    "window queued": {**_WINDOW, "status": "queued"},
}


async def _timed(
    session: aiohttp.ClientSession, url: str, params: dict[str, str], repeat: int
) -> tuple[float, dict[str, Any]]:
    """The median ms of ``repeat`` GETs of ``url`` (after one unmeasured), and the last body."""
    body: dict[str, Any] = {}
    times = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        async with session.get(url, params={**params, "limit": "50"}) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{url} {params}: {response.status} {body}")
        if attempt:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), body


async def probe(base: str, repeat: int) -> dict[str, tuple[float, int, bool]]:
    """Each shape's (median ms, rows, whether a next page follows)."""
    found: dict[str, tuple[float, int, bool]] = {}
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{base}/v1/messages"
        for name, params in SHAPES.items():
            ms, body = await _timed(session, url, params, repeat)
            found[name] = (ms, len(body["data"]), body["next_cursor"] is not None)
            if name == "window" and body["next_cursor"]:
                ms, body = await _timed(
                    session, url, {**params, "cursor": body["next_cursor"]}, repeat
                )
                found["window page 2"] = (ms, len(body["data"]), body["next_cursor"] is not None)
    return found


async def measure(
    kind: str, stored: int, trees: Sequence[tuple[str, str | None]], repeat: int
) -> dict[tuple[str, int], dict[str, tuple[float, int, bool]]]:
    """Every tree's figures on an empty store and on ``stored`` messages of database ``kind``."""
    results: dict[tuple[str, int], dict[str, tuple[float, int, bool]]] = {}
    for size in (0, stored):
        with scratch("pigeon-list-reads-") as tmp, fresh_database(kind, tmp) as url:
            data = tmp / "pigeon-data"
            data.mkdir()
            await seed(url or f"sqlite:///{data / 'pigeon.db'}", stored=size)
            for label, source in trees:
                SOURCE[:] = [source] if source else []
                processes = Processes()
                try:
                    pigeon = await start_pigeon(
                        processes, tmp, None, database_url=url, workers=False
                    )
                    results[(label, size)] = await probe(pigeon.base, repeat)
                finally:
                    await asyncio.to_thread(processes.stop_all)
    return results


def report(
    kind: str,
    stored: int,
    trees: Sequence[tuple[str, str | None]],
    results: dict[tuple[str, int], dict[str, tuple[float, int, bool]]],
) -> str:
    """A Markdown table per database: each shape's ms on the empty and the stored store."""
    labels = [label for label, _ in trees]
    head = " | ".join(f"{label}: empty | {label}: {stored:,}" for label in labels)
    lines = [
        f"{kind}: median ms per request (rows, + when a next page follows at {stored:,})",
        "",
        f"| listing | {head} |",
        "|---|" + "---|---|" * len(labels),
    ]
    shapes = list(results[(labels[0], stored)])
    for shape in shapes:
        cells = []
        for label in labels:
            empty = results[(label, 0)].get(shape)
            full = results[(label, stored)].get(shape)
            cells.append(f"{empty[0]:.2f}" if empty else "")
            cells.append(f"{full[0]:.2f} ({full[1]}{'+' if full[2] else ''})" if full else "")
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    add_store_options(parser)
    args = parser.parse_args(argv)
    trees, databases = trees_and_databases(args)
    for kind in databases:
        results = asyncio.run(measure(kind, args.stored, trees, args.repeat))
        print(report(kind, args.stored, trees, results))
        print()
    print(command_and_machine("list_reads.py", argv))


if __name__ == "__main__":
    main()
