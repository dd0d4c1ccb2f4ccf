"""``pigeon serve``'s CPU per accepted message: the REST accept alone, two trees alternated.

    .venv/bin/python bench/accept_cpu.py                        # this tree, 5 runs
    .venv/bin/python bench/accept_cpu.py --compare OLD/src      # OLD/src and this tree
    .venv/bin/python bench/accept_cpu.py --database-url postgresql://...

Each run starts ``pigeon serve`` with its workers off on a new SQLite file (or on the given
PostgreSQL database, used as it is: pass a new one, which both trees must be able to
migrate; its messages accumulate over the runs), warms it up for 2 s, then drives
``--seconds`` of closed-loop sends from ``--concurrency`` clients in a separate process
(``bench/run.py``'s load) and reads the server process's user + system CPU from ``/proc``
before and after. CPU per accepted message is steadier than the accept rate, which the
load generator on the same two cores moves as much as the server does. ``--compare``
alternates the trees run by run (each a ``PYTHONPATH``) and prints each run and the
medians: compare within one invocation, as the machine's speed drifts over minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import run as bench_run


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    source: str | None, seconds: float, concurrency: int, database_url: str | None
) -> tuple[float, float]:
    """(CPU ms per accepted message, accepted/s) of one ``pigeon serve`` run from ``source``
    (a tree's ``src``; ``None``: the installed package)."""
    if source is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = source
    with tempfile.TemporaryDirectory() as data:
        server = bench_run.Server(
            Path(data), workers=False, receipt_delay=0.1, database_url=database_url
        )
        with server:
            assert server.process is not None
            bench_run.drive(server.url, 2, concurrency // 2)
            before = process_cpu_seconds(server.process.pid)
            result = bench_run.drive(server.url, seconds, concurrency)
            spent = process_cpu_seconds(server.process.pid) - before
    return spent * 1000 / max(1, result["accepted"]), result["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", metavar="OLD_SRC", help="a tree's src to alternate with")
    parser.add_argument("--runs", type=int, default=5, help="runs per tree")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", help="PostgreSQL (default: a new SQLite file per run)")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = [("before", args.compare), ("after", here)] if args.compare else [("this", here)]
    found: dict[str, list[float]] = {name: [] for name, _ in trees}
    for index in range(args.runs):
        for name, source in trees:
            ms, rate = measure(source, args.seconds, args.concurrency, args.database_url)
            found[name].append(ms)
            print(f"run {index + 1} {name}: {ms:.4f} ms CPU per accept, {rate:,.0f}/s", flush=True)
    medians = {name: statistics.median(values) for name, values in found.items()}
    for name, median in medians.items():
        print(f"{name}: median {median:.4f} ms CPU per accepted message")
    if args.compare:
        print(f"after / before: {medians['after'] / medians['before']:.3f}")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
