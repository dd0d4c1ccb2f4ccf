"""Python function calls per delivered message, process by process: a count of Pigeon's work
that does not drift with the machine's speed.

    .venv/bin/python bench/call_counts.py [--messages 20000] [--tree base=@HEAD~1 --tree this=src]
    .venv/bin/python bench/call_counts.py --floor features    # and the Python floor's calls

Each tree runs ``kannel_side_by_side.py --pigeon-only --pigeon-src DIR`` (scenario c's
harness, SQLite) with ``PIGEON_PROFILE_DIR`` set, so that ``pigeon serve`` and its workers run
under ``cProfile`` and write their statistics when they stop. The report gives, per process,
the calls per delivered message (every Python function and every C function called from
Python), and the functions whose count per message changed most between the first tree and
each other one.

CPU per message moves by tens of per cent within minutes on these shared machines; a count of
calls moves only with what the code does (and a little with how the load falls into batches).
It is a proxy, not a price: a call of ``len`` and a call that builds a row count the same.

``--floor RUNG`` runs the Python floor (``python_floor.py``, ADR 24) after the first tree, as
``kannel_side_by_side.py --floor`` does, under ``cProfile`` too: the calls of the same work
done plainly, beside Pigeon's. Only each process's loop thread is profiled (the floor's
commit thread, like Pigeon's WAL sync processes, is not).
Compare the CPU too (``bench/alternate.py``) before calling a change faster.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alternate import SIDE_BY_SIDE, tree_from

#: A function in the report: (file, line, name).
Function = tuple[str, int, str]


@dataclass
class Counted:
    """One tree's run: calls per message, in all and by function, for each process."""

    label: str
    messages: int
    by_process: dict[str, dict[Function, float]] = field(default_factory=dict)

    def total(self, process: str) -> float:
        """Calls per message of ``process``."""
        return sum(self.by_process[process].values())

    def gateway(self) -> dict[Function, float]:
        """Calls per message of every process together, by function."""
        summed: collections.Counter[Function] = collections.Counter()
        for calls in self.by_process.values():
            summed.update(calls)
        return dict(summed)


def count(
    label: str, source: Path, messages: int, scratch: Path, floor: str | None = None
) -> list[Counted]:
    """Run one tree profiled and read its processes' statistics; with ``floor`` (a rung of
    ``kannel_side_by_side.py --floor``) the Python floor runs after it, profiled the same way,
    and is counted apart (its processes are no part of the tree's gateway)."""
    folder = scratch / f"profiles-{label}"
    env = {**os.environ, "PIGEON_PROFILE_DIR": str(folder)}
    argv = [
        sys.executable,
        str(SIDE_BY_SIDE),
        "--pigeon-only",
        "--messages",
        str(messages),
        "--pigeon-src",
        str(source),
    ]
    if floor is not None:
        argv += ["--floor", floor]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{label}: the run failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return read_profiles(label, folder, messages, floor)


def read_profiles(label: str, folder: Path, messages: int, floor: str | None) -> list[Counted]:
    """The statistics in ``folder`` (``<command>-<pid>.pstats``), per delivered message: the
    tree's gateway processes as one run labelled ``label``, and the floor's (``floor-*``),
    when ``floor`` names its rung, as another."""
    counted = Counted(label, messages)
    floor_counted = Counted(f"floor ({floor})", messages)
    files = sorted(folder.glob("*.pstats"), key=lambda path: int(path.stem.split("-")[1]))
    seen: collections.Counter[str] = collections.Counter()
    for path in files:
        command = path.stem.split("-")[0]
        seen[command] += 1
        if command == "floor":
            target, name = floor_counted, f"python floor {seen[command]}"
        else:
            target = counted
            name = command if command == "serve" else f"{command} {seen[command]}"
        stats = pstats.Stats(str(path))
        raw = stats.stats  # type: ignore[attr-defined]
        calls: collections.Counter[Function] = collections.Counter()
        for function, row in raw.items():
            if row[1]:
                calls[comparable(function)] += row[1] / messages
        target.by_process[name] = dict(calls)
    if not counted.by_process:
        raise SystemExit(f"{label}: no statistics were written to {folder}")
    if floor is None:
        return [counted]
    if not floor_counted.by_process:
        raise SystemExit(f"the floor ({floor}) wrote no statistics to {folder}")
    return [counted, floor_counted]


def comparable(function: Function) -> Function:
    """``function`` keyed the same in every tree: its file shortened (``where``) and without
    its line, which moves with every edit above it (same-named functions of one file, such as
    comprehensions, count together)."""
    file, line, name = function
    if not line:
        return function
    return (_short(file), 0, name)


def _short(file: str) -> str:
    """A source file's path from its package on."""
    for marker in ("site-packages/", "/src/", "python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def where(function: Function) -> str:
    """A function as ``name (file)`` (``name (file:line)`` with a line), the file shortened;
    a built-in as its name."""
    file, line, name = function
    if file == "~":
        return name
    return f"{name} ({_short(file)}:{line})" if line else f"{name} ({_short(file)})"


def report(runs: list[Counted], top: int) -> str:
    """The markdown report of ``runs`` (the first is the base of every comparison)."""
    processes = sorted({p for run in runs for p in run.by_process})
    lines = [
        "| tree | " + " | ".join(processes) + " | all |",
        "|---|" + "---|" * (len(processes) + 1),
    ]
    for run in runs:
        cells = [f"{run.total(p):,.0f}" if p in run.by_process else "" for p in processes]
        all_calls = sum(run.gateway().values())
        lines.append(f"| {run.label} | " + " | ".join(cells) + f" | {all_calls:,.0f} |")
    lines.append("")
    base = runs[0].gateway()
    if len(runs) == 1:
        lines.append(f"Most calls per message ({runs[0].label}, all processes):")
        lines.append("")
        for function, calls in sorted(base.items(), key=lambda item: -item[1])[:top]:
            lines.append(f"- {calls:7.2f}  {where(function)}")
        return "\n".join(lines)
    for run in runs[1:]:
        other = run.gateway()
        changes = {
            function: other.get(function, 0.0) - base.get(function, 0.0)
            for function in base.keys() | other.keys()
        }
        moved = sorted(changes.items(), key=lambda item: -abs(item[1]))[:top]
        lines.append(f"Calls per message, {run.label} against {runs[0].label} (all processes):")
        lines.append("")
        for function, change in moved:
            lines.append(f"- {change:+8.2f}  {where(function)}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=DIR|LABEL=@REV",
        help="a tree to count (default: this one's src)",
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument(
        "--floor",
        metavar="RUNG",
        help="also count the Python floor of this rung (e.g. features), run with the first "
        "tree; it is compared with that tree like another tree",
    )
    args = parser.parse_args()
    specs = args.tree or [f"this={Path(__file__).resolve().parents[1] / 'src'}"]
    with tempfile.TemporaryDirectory(prefix="pigeon-calls-") as scratch:
        runs: list[Counted] = []
        for index, spec in enumerate(specs):
            tree = tree_from(spec, Path(scratch))
            floor = args.floor if index == 0 else None
            runs += count(tree.label, tree.source, args.messages, Path(scratch), floor)
        print(report(runs, args.top))
    print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
