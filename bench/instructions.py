"""Instructions per message of the worker's fast loop, counted by valgrind: a measure of CPU
work that the machine's noise does not move.

    .venv/bin/python bench/instructions.py                                  # this tree
    .venv/bin/python bench/instructions.py --tree base=@HEAD~1 --tree this=src

Each tree runs ``bench/status_changes.py`` (accept, dispatch with the ``sent`` change,
receipts with the ``delivered`` change and its webhook job, on a SQLite file: the store path
of the worker, ADR 25) under ``valgrind --tool=cachegrind --cache-sim=no``, which counts the
instructions the process executes (``I refs``), twice: with ``--messages`` messages and with
``--messages`` + ``--more``. The difference over ``--more`` is the instructions per message,
with the interpreter's start, the imports and the migrations cancelled out. A tree is a
directory holding the ``pigeon`` package (a ``src``), or ``@REV`` (``bench/alternate.py``'s
form). Every run has ``PYTHONHASHSEED=0``, so that dicts and sets iterate alike.

Timings on these shared machines drift by tens of per cent within minutes (a change of a
few per cent needs ten alternated pairs end to end, ``bench/alternate.py``). The count
does not drift: two runs of one tree differ by well under 0.1%. It counts instructions, not
time: a cache miss or a system call costs more than its instructions say, and the WAL sync
process and anything else the loop starts are not counted. Read it as the work a change saves
or adds in the worker's store path, and confirm a change worth keeping end to end. A run
takes about a minute per tree (valgrind runs Python some twelve times slower).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alternate import tree_from
from harness import command_and_machine

ROOT = Path(__file__).resolve().parents[1]
STATUS_CHANGES = ROOT / "bench" / "status_changes.py"
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


@dataclass(frozen=True)
class Counted:
    """A tree's instruction counts: the smaller run, the larger, and per message."""

    label: str
    small: int
    large: int
    per_message: float


def instructions(source: Path, messages: int) -> int:
    """The instructions one run of the fast loop on ``messages`` executes, tree ``source``."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "PYTHONHASHSEED": "0",
    }
    done = subprocess.run(
        [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            str(STATUS_CHANGES),
            "--messages",
            str(messages),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(
            f"the run of {source} failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    if "delivered 0," in done.stdout:
        raise SystemExit(f"the run of {source} delivered nothing\n{done.stdout[-2000:]}")
    return int(found.group(1).replace(",", ""))


def count(label: str, source: Path, messages: int, more: int) -> Counted:
    """``source``'s instructions per message: two runs, ``messages`` and ``messages + more``."""
    # Compiled first, so that neither run spends its instructions writing bytecode.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(source)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    small = instructions(source, messages)
    large = instructions(source, messages + more)
    return Counted(label, small, large, (large - small) / more)


def report(counted: list[Counted], more: int) -> str:
    """The Markdown table: each tree's counts, per message, and its ratio to the first."""
    first = counted[0].per_message
    lines = [
        "| tree | instructions, small run | instructions, large run | per message | / first |",
        "|---|---|---|---|---|",
    ]
    for tree in counted:
        ratio = f"{tree.per_message / first:.4f}" if first else "-"
        lines.append(
            f"| {tree.label} | {tree.small:,} | {tree.large:,} | {tree.per_message:,.0f} "
            f"| {ratio} |"
        )
    lines.append(f"\n(per message: the difference of the two runs over {more:,} messages)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree",
        action="append",
        metavar="LABEL=DIR|LABEL=@REV",
        help="a tree to count (repeatable; default: this checkout's src); the first is the base",
    )
    parser.add_argument("--messages", type=int, default=1000, help="of the smaller run")
    parser.add_argument("--more", type=int, default=2000, help="messages the larger run adds")
    args = parser.parse_args(argv)
    if args.messages + args.more > 8192:
        parser.error("--messages + --more must stay under the store's HELD_KEPT (8,192)")
    with tempfile.TemporaryDirectory(prefix="pigeon-instructions-") as name:
        trees = [tree_from(spec, Path(name)) for spec in args.tree or [f"this={ROOT / 'src'}"]]
        counted = []
        for tree in trees:
            print(f"{tree.label}: counting...", file=sys.stderr, flush=True)
            counted.append(count(tree.label, tree.source, args.messages, args.more))
    print(report(counted, args.more))
    print()
    print(command_and_machine("instructions.py", argv))


if __name__ == "__main__":
    main()
