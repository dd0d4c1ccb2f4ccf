"""Two or more Pigeon trees end to end in alternated runs: callbacks/s and the gateway's CPU per
message, each tree against the first, pair by pair.

    .venv/bin/python bench/alternate.py --tree base=@HEAD~1 --tree this=src --rounds 5
    .venv/bin/python bench/alternate.py --tree base=/tmp/base/src --tree probe=/tmp/probe/src \\
        --database postgresql

Each run is ``kannel_side_by_side.py --pigeon-only --pigeon-src DIR`` in a process of its own
(Pigeon alone, on the same harness as scenario c), the trees one after the other in every
round, each on a new, empty database (``--database postgresql``: one made on the server of
``PIGEON_BENCH_POSTGRES_URL`` for the run and dropped after it; a database used twice would
hold the last run's webhook endpoint, whose receiver is gone). ``--receipt-delay`` is the
carrier simulator's wait before each receipt (0.1 s by default, as scenario c; carriers send
theirs seconds later, which decides what the worker still holds, ADR 45); ``--parts``,
``--carrier-latency`` and ``--throughput`` are the side by side's (long messages, a carrier
slow to answer, a carrier's cap). A tree is a directory holding the ``pigeon`` package (a
``src``), or ``@REV``: that revision of this repository, written to a temporary directory and
compiled first.

The machines here are shared and their speed drifts by tens of per cent within minutes, so
absolute figures of runs minutes apart say little. A tree is compared with the first only
within a round (the runs next to each other), and the table gives the median of those
pair-by-pair ratios and how many pairs went each way. A change of a few per cent needs ten
pairs or more to stand out of the noise; ``docs/benchmarks.md`` uses this form throughout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness import fresh_database

ROOT = Path(__file__).resolve().parents[1]
SIDE_BY_SIDE = ROOT / "bench" / "kannel_side_by_side.py"


@dataclass
class Tree:
    """A tree to run, and the figures of its runs in round order."""

    label: str
    source: Path
    callbacks_per_s: list[float] = field(default_factory=list)
    gateway_cpu_ms: list[float] = field(default_factory=list)


def tree_from(spec: str, scratch: Path) -> Tree:
    """``LABEL=DIR`` or ``LABEL=@REV`` as a ``Tree`` (a revision is written out and compiled)."""
    label, sep, where = spec.partition("=")
    if not sep or not label or not where:
        raise SystemExit(f"a tree is LABEL=DIR or LABEL=@REV, not {spec!r}")
    if not where.startswith("@"):
        source = Path(where).resolve()
        if not (source / "pigeon" / "__init__.py").is_file():
            raise SystemExit(f"{source} holds no pigeon package")
        return Tree(label, source)
    revision = where[1:]
    target = scratch / label
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(target / "src")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return Tree(label, target / "src")


def add_tree_option(parser: argparse.ArgumentParser) -> None:
    """``--tree LABEL=DIR|LABEL=@REV``, repeatable, for the counting tools that compare trees
    (``instructions.py``, ``bytecodes.py``); ``tree_from`` reads each."""
    parser.add_argument(
        "--tree",
        action="append",
        metavar="LABEL=DIR|LABEL=@REV",
        help="a tree to count (repeatable; default: this checkout's src); the first is the base",
    )


def run_once(tree: Tree, args: argparse.Namespace, scratch: Path) -> tuple[float, float]:
    """One ``--pigeon-only`` run of ``tree``: callbacks/s and the gateway's CPU ms per
    message."""
    output = scratch / f"{tree.label}.json"
    command = [
        sys.executable,
        str(SIDE_BY_SIDE),
        "--pigeon-only",
        "--messages",
        str(args.messages),
        "--pigeon-src",
        str(tree.source),
        "--receipt-delay",
        str(args.receipt_delay),
        "--parts",
        str(args.parts),
        "--carrier-latency",
        str(args.carrier_latency),
        "--throughput",
        str(args.throughput),
        "--json",
        str(output),
    ]
    with fresh_database(args.database, scratch) as database_url:
        if database_url is not None:
            command += ["--database-url", database_url]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{tree.label}: the run failed\n{completed.stdout}\n{completed.stderr}")
    pigeon = json.loads(output.read_text())["pigeon"]
    return float(pigeon["callback_rate"]), float(pigeon["gateway_cpu_ms"])


@dataclass(frozen=True)
class Comparison:
    """One tree against the first, over the rounds both completed."""

    label: str
    pairs: int
    callbacks_ratio: float
    callbacks_above: int
    cpu_ratio: float
    cpu_below: int


def compare(first: Tree, other: Tree) -> Comparison:
    """The median of ``other``'s pair-by-pair ratios to ``first``, and how many pairs had
    ``other`` ahead (more callbacks/s, less CPU)."""
    callbacks = [b / a for a, b in zip(first.callbacks_per_s, other.callbacks_per_s, strict=False)]
    cpu = [b / a for a, b in zip(first.gateway_cpu_ms, other.gateway_cpu_ms, strict=False)]
    return Comparison(
        other.label,
        len(callbacks),
        statistics.median(callbacks),
        sum(ratio > 1 for ratio in callbacks),
        statistics.median(cpu),
        sum(ratio < 1 for ratio in cpu),
    )


def table(trees: list[Tree]) -> str:
    """The Markdown table of every tree against the first."""
    first = trees[0]
    lines = [
        f"| tree | pairs with {first.label} | callbacks/s, tree / {first.label} "
        f"| gateway CPU per message, tree / {first.label} | medians: callbacks/s, CPU ms |",
        "|---|---|---|---|---|",
        f"| {first.label} | | | | {statistics.median(first.callbacks_per_s):,.0f}, "
        f"{statistics.median(first.gateway_cpu_ms):.3f} |",
    ]
    for tree in trees[1:]:
        c = compare(first, tree)
        lines.append(
            f"| {tree.label} | {c.pairs} | {c.callbacks_ratio:.3f} ({c.callbacks_above} above 1) "
            f"| {c.cpu_ratio:.3f} ({c.cpu_below} below 1) "
            f"| {statistics.median(tree.callbacks_per_s):,.0f}, "
            f"{statistics.median(tree.gateway_cpu_ms):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree",
        action="append",
        required=True,
        metavar="LABEL=DIR|LABEL=@REV",
        help="a tree to run (twice or more; the first is the one the others are compared with)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=15000)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store of every run, new for each run",
    )
    parser.add_argument(
        "--receipt-delay",
        type=float,
        default=0.1,
        help="seconds the carrier simulator waits before each receipt (as the side by side)",
    )
    parser.add_argument(
        "--parts", type=int, default=1, help="segments of each message (as the side by side)"
    )
    parser.add_argument(
        "--carrier-latency",
        type=float,
        default=0.0,
        help="seconds the carrier simulator takes to answer each submit_sm",
    )
    parser.add_argument(
        "--throughput",
        type=int,
        default=0,
        help="the connector's throughput_per_second (0: none), as the side by side's",
    )
    args = parser.parse_args()
    if len(args.tree) < 2:
        parser.error("give at least two trees")
    with tempfile.TemporaryDirectory(prefix="pigeon-alternate-") as scratch_name:
        scratch = Path(scratch_name)
        trees = [tree_from(spec, scratch / "trees") for spec in args.tree]
        for round_number in range(1, args.rounds + 1):
            for tree in trees:
                callbacks, cpu = run_once(tree, args, scratch)
                tree.callbacks_per_s.append(callbacks)
                tree.gateway_cpu_ms.append(cpu)
                print(
                    f"round {round_number} {tree.label}: {callbacks:,.0f} callbacks/s, "
                    f"the gateway {cpu:.3f} ms per message",
                    flush=True,
                )
    print(table(trees))
    print(f"\ncommand: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
