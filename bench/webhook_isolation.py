"""A slow webhook receiver beside a fast one: how long the fast one waits for its webhooks.

    .venv/bin/python bench/webhook_isolation.py [--messages 3000] [--slow-latency 1.0]
    .venv/bin/python bench/webhook_isolation.py --tree base=@HEAD~1 --tree this=src

One tenant, two webhook endpoints on ``message.delivered``, each a receiver of its own on
127.0.0.1 (two hosts, as two customers' servers): the fast one answers at once, the slow one
after ``--slow-latency`` seconds. ``pigeon serve`` (SQLite, its ``pigeon smsc-sim`` as the
carrier, receipts after 0.1 s) gets ``--messages`` sends from 16 keep-alive clients; every
delivered message makes one webhook job for each endpoint. The run waits until the fast
receiver has every webhook (or ``--timeout``) and reports, per tree, the seconds from the
first send to the fast receiver's last webhook and how many the slow one had by then; then
it waits for the slow one's last too (what its isolation costs it).

Without a share of the job slots per receiver (``webhook_slots_per_host``, ADR 47), the slow
receiver's deliveries take every slot of ``serve``'s job runner (256) for its answer time
each, and the fast receiver's webhooks wait behind them: it gets them at the slow one's
pace. With it, the slow one holds at most its share and the fast one's go out at once.
Each tree runs once, one after the other, in a new data directory (``@REV``: that revision,
written out and compiled, as ``bench/alternate.py`` does).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue as queues
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alternate import tree_from
from harness import (
    KEY,
    SOURCE,
    Processes,
    Receiver,
    Sim,
    command_and_machine,
    http_json,
    start_pigeon,
)
from kannel_side_by_side import _load

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Isolation:
    """One tree's run: what each receiver got, and when."""

    label: str
    accepted: int
    accept_seconds: float
    fast: int
    fast_seconds: float
    slow: int
    #: The slow receiver's webhooks in all, and the seconds to its last.
    slow_all: int = 0
    slow_seconds: float = 0.0


async def run_tree(label: str, source: Path, args: argparse.Namespace) -> Isolation:
    """Start ``pigeon serve`` from ``source`` with both endpoints, send, watch the receivers."""
    SOURCE[:] = [str(source)]
    fast, slow = Receiver(), Receiver(args.slow_latency)
    await fast.start()
    await slow.start()
    processes = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="pigeon-isolation-") as name:
            tmp = Path(name)
            sim = Sim(processes, tmp, "sim", 0.1)
            await asyncio.to_thread(sim.wait_ready)
            pigeon = await start_pigeon(processes, tmp, sim)
            auth = {"Authorization": f"Bearer {KEY}"}
            for receiver in (fast, slow):
                url = f"http://127.0.0.1:{receiver.port}/hook"
                await asyncio.to_thread(
                    http_json,
                    f"{pigeon.base}/v1/webhook-endpoints",
                    {"url": url, "events": ["message.delivered"]},
                    auth,
                )
            warm = {"to": "+14155550100", "body": "warm-up"}
            await asyncio.to_thread(http_json, f"{pigeon.base}/v1/messages", warm, auth)
            await fast.first(60)
            await slow.first(60)
            return await _watch(label, pigeon.base, fast, slow, args)
    finally:
        processes.stop_all()
        await fast.stop()
        await slow.stop()


async def _watch(
    label: str, base: str, fast: Receiver, slow: Receiver, args: argparse.Namespace
) -> Isolation:
    """Send ``--messages`` from a process of its own; wait for the fast receiver's last."""
    fast.count = slow.count = 0
    results: Any = multiprocessing.Queue()
    loader = multiprocessing.Process(
        target=_load,
        args=("pigeon", f"{base}/v1/messages", args.messages, 16, "", results),
    )
    loader.start()
    deadline = time.monotonic() + args.timeout
    result = None
    slow_by_then = 0
    try:
        while time.monotonic() < deadline:
            if result is None:
                try:
                    result = results.get_nowait()
                except queues.Empty:
                    result = None
            if result is not None and fast.count >= result[2]:
                slow_by_then = slow.count
                break
            await asyncio.sleep(0.05)
    finally:
        if loader.is_alive():
            loader.terminate()
        loader.join(timeout=10)
    if result is None:
        raise RuntimeError(f"{label}: the load did not finish in {args.timeout} s")
    started, accept_last, accepted = result[0], result[1], result[2]
    if fast.count < accepted:
        slow_by_then = slow.count
        print(f"  {label}: the fast receiver got {fast.count:,} of {accepted:,} in time")
    # The receiver's count is polled, as the side by side polls the sim's counters.
    while slow.count < accepted and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return Isolation(
        label,
        accepted,
        accept_last - started,
        fast.count,
        fast.last - started,
        slow_by_then,
        slow.count,
        slow.last - started,
    )


def report(runs: list[Isolation]) -> str:
    """The table of the runs, with each tree's fast-receiver time against the first's."""
    rows = [
        "| tree | sends accepted, s | fast receiver: webhooks, s to the last, per s "
        "| slow receiver by then | slow receiver: webhooks, s to the last "
        "| fast s / first tree's |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        rows.append(
            f"| {run.label} | {run.accepted:,} in {run.accept_seconds:.1f} "
            f"| {run.fast:,}, {run.fast_seconds:.1f}, {run.fast / max(run.fast_seconds, 1e-9):,.0f}"
            f" | {run.slow:,} | {run.slow_all:,}, {run.slow_seconds:.1f} "
            f"| {run.fast_seconds / max(runs[0].fast_seconds, 1e-9):.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument(
        "--slow-latency", type=float, default=1.0, help="seconds the slow receiver takes"
    )
    parser.add_argument("--timeout", type=float, default=180, help="bound of each run (s)")
    parser.add_argument(
        "--tree",
        action="append",
        metavar="LABEL=DIR|LABEL=@REV",
        help="a tree to run (default: this checkout's src)",
    )
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="pigeon-isolation-trees-") as scratch:
        trees = [tree_from(spec, Path(scratch)) for spec in args.tree or [f"this={ROOT / 'src'}"]]
        for tree in trees:
            print(f"{tree.label}: running...", file=sys.stderr, flush=True)
            runs.append(asyncio.run(run_tree(tree.label, tree.source, args)))
    print(report(runs))
    print()
    print(command_and_machine("webhook_isolation.py", argv))


if __name__ == "__main__":
    main()
