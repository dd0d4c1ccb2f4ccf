"""Python bytecodes executed per delivered message, function by function: the interpreter's own
work, counted exactly, where ``instructions.py`` counts the machine's and ``call_counts.py``
the calls.

    .venv/bin/python bench/bytecodes.py                                  # the worker's fast loop
    .venv/bin/python bench/bytecodes.py --path serve --messages 1000 --more 1000
    .venv/bin/python bench/bytecodes.py --path worker --messages 1000 --more 1000
    .venv/bin/python bench/bytecodes.py --tree base=@HEAD~1 --tree this=src --top 30

Each tree runs twice, with ``--messages`` and with ``--messages`` + ``--more`` messages, under
an opcode tracer (``sys.settrace`` with ``f_trace_opcodes``, which reports every bytecode the
interpreter executes); the difference over ``--more`` is per message, with the start, the
imports and the migrations cancelled out. ``--path fast-loop`` traces
``bench/status_changes.py`` (accept, dispatch with the ``sent`` change, receipts with the
``delivered`` change, in one process, with a stand-in carrier: ``instructions.py``'s fast
loop). ``--path serve`` and ``--path worker`` trace that command's processes in scenario c's
harness (``kannel_side_by_side.py --pigeon-only``; a ``sitecustomize`` on the path makes each
process whose command it is trace itself): ``serve``'s REST accept and webhooks, or the
workers' claims, routing, SMPP and receipts, summed over both worker processes. A tree is a
``src`` directory or ``@REV``, as in ``alternate.py``. Functions are compared between trees by
file and name (lines move with every edit).

The report gives each tree's bytecodes per message, the functions that execute the most (with
their calls per message) and, for a second tree, the functions whose counts moved most. It also
counts the records made (each dataclass's generated ``__init__``, by class), which the function
table lumps together as ``__create_fn__.<locals>.__init__``.

A bytecode is not a price: ``LOAD_FAST`` costs a nanosecond and a ``CALL`` of a C function
whatever the function does (a SHA-256, an SQLite statement), which this count does not see.
It finds where the interpreter spends its effort; it does not say that moving work into C
pays. Session 47 rewrote four places to execute fewer bytecodes and each ran slower in
``timeit``: an ``attrgetter`` of 16 fields (2x: 3.11's specialised attribute reads beat its
generic ones), a dict of the request headers (1.2x: hashing each name), a 202's head joined
with ``zip`` and ``chain`` (1.2x), a webhook head's lines by ``map(str.format, ...)`` (1.4x:
``format`` parses its pattern on every call, where an f-string is compiled). Time every such
change in ``timeit``, then count it in ``instructions.py`` and confirm it with
``alternate.py``. Tracing runs Python some fifty times slower: ``--path serve`` and
``--path worker`` keep to a few thousand messages, and ``--messages`` + ``--more`` under the
harness's 10,000 recipients (each then classified once).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import pickle
import runpy
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from alternate import SIDE_BY_SIDE, add_tree_option, tree_from
from harness import command_and_machine

ROOT = Path(__file__).resolve().parents[1]
STATUS_CHANGES = ROOT / "bench" / "status_changes.py"

#: A function in the counts: (file, first line, qualified name), or ("<record>", 0, class)
#: for the records a dataclass's generated ``__init__`` made.
Function = tuple[str, int, str]
#: What one traced process executed: per function, (bytecodes, calls).
Counts = dict[Function, tuple[int, int]]


# ----------------------------------------------------------------------------- the tracer


def start_tracing(out: str) -> None:
    """Count every bytecode this process executes from now on, and the records it makes;
    the counts are pickled to ``out`` when the process ends."""
    bytecodes: collections.Counter[CodeType] = collections.Counter()
    calls: collections.Counter[CodeType] = collections.Counter()
    records: collections.Counter[str] = collections.Counter()

    def each_bytecode(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            bytecodes[frame.f_code] += 1
        return each_bytecode

    def each_call(frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        code = frame.f_code
        frame.f_trace_opcodes = True
        calls[code] += 1
        if code.co_filename == "<string>" and code.co_name == "__init__":
            made = type(frame.f_locals.get("self"))
            records[f"{made.__module__}.{made.__qualname__}"] += 1
        return each_bytecode

    def dump() -> None:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]  # None stops tracing new threads
        counts: Counts = {}
        for code in calls.keys() | bytecodes.keys():
            key = (code.co_filename, code.co_firstlineno, code.co_qualname)
            done, made = counts.get(key, (0, 0))
            counts[key] = (done + bytecodes[code], made + calls[code])
        for name, made in records.items():
            counts[("<record>", 0, name)] = (0, made)
        with open(out, "wb") as written:
            pickle.dump(counts, written)

    atexit.register(dump)
    threading.settrace(each_call)
    sys.settrace(each_call)


def traced(out: str, target: list[str]) -> None:
    """Run ``target`` (a script and its arguments, or ``-m module ...``) under the opcode
    tracer (``start_tracing``)."""
    start_tracing(out)
    if target[0] == "-m":
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(target)
        sys.path.insert(0, str(Path(target[0]).resolve().parent))
        runpy.run_path(target[0], run_name="__main__")


#: The ``sitecustomize`` that traces ``pigeon serve`` or ``pigeon worker`` in the harness:
#: every Python process the harness starts imports it, and the one whose command line is
#: ``-m <command>`` (``sys.argv`` while the interpreter starts) traces itself.
SITE_CUSTOMIZE = """\
import os, sys
if sys.argv[:2] == ["-m", os.environ.get("PIGEON_BYTECODES_COMMAND")]:
    sys.path.insert(0, os.environ["PIGEON_BYTECODES_BENCH"])
    from bytecodes import start_tracing
    start_tracing(os.path.join(os.environ["PIGEON_BYTECODES_OUT"], f"{os.getpid()}.pickle"))
"""


# ----------------------------------------------------------------------------- the runs


@dataclass
class Counted:
    """A tree's counts per message: the difference of its two runs over ``more``."""

    label: str
    per_message: dict[Function, tuple[float, float]] = field(default_factory=dict)

    @property
    def bytecodes(self) -> float:
        """Bytecodes per message, all functions."""
        return sum(done for done, _ in self.per_message.values())


def comparable(function: Function) -> Function:
    """``function`` keyed the same in every tree: its file from its package on, without its
    line, which moves with every edit above it (same-named functions of one file, such as
    comprehensions, count together)."""
    file, _, name = function
    return function if file == "<record>" else (_short(file), 0, name)


def difference(small: Counts, large: Counts, more: int) -> dict[Function, tuple[float, float]]:
    """Per message, what ``large`` executed beyond ``small`` (``more`` messages more), by
    ``comparable`` function."""
    result: dict[Function, tuple[float, float]] = {}
    for counts, sign in ((large, 1), (small, -1)):
        for function, (done, calls) in counts.items():
            key = comparable(function)
            was_done, was_calls = result.get(key, (0.0, 0.0))
            result[key] = (was_done + sign * done / more, was_calls + sign * calls / more)
    return result


def _environment(source: Path) -> dict[str, str]:
    path = os.pathsep.join([str(source), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), "PYTHONHASHSEED": "0"}


def run_traced(path: str, source: Path, messages: int, scratch: Path, name: str) -> Counts:
    """One traced run of tree ``source`` on ``messages``: the traced processes' counts
    (summed, for the worker processes)."""
    out = scratch / name
    out.mkdir()
    env = _environment(source)
    if path == "fast-loop":
        command = [
            *(sys.executable, str(Path(__file__).resolve()), "--traced", str(out / "0.pickle")),
            *("--", str(STATUS_CHANGES), "--messages", str(messages)),
        ]
    else:
        site = scratch / f"{name}-site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITE_CUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
        env["PIGEON_BYTECODES_COMMAND"] = path
        env["PIGEON_BYTECODES_BENCH"] = str(ROOT / "bench")
        env["PIGEON_BYTECODES_OUT"] = str(out)
        command = [
            *(sys.executable, str(SIDE_BY_SIDE), "--pigeon-only", "--messages", str(messages)),
            *("--pigeon-src", str(source), "--timeout", "1800"),
        ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    written = sorted(out.glob("*.pickle"))
    if done.returncode != 0 or not written:
        raise SystemExit(
            f"the traced run of {source} failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    counts: Counts = {}
    for one in written:
        with one.open("rb") as read:
            for function, (done_here, calls) in pickle.load(read).items():  # noqa: S301 - ours
                was_done, was_calls = counts.get(function, (0, 0))
                counts[function] = (was_done + done_here, was_calls + calls)
    return counts


def count(label: str, path: str, source: Path, messages: int, more: int, scratch: Path) -> Counted:
    """Tree ``source``'s bytecodes per message on ``path``."""
    small = run_traced(path, source, messages, scratch, f"{label}-small")
    large = run_traced(path, source, messages + more, scratch, f"{label}-large")
    return Counted(label, difference(small, large, more))


# ----------------------------------------------------------------------------- the report


def _short(file: str) -> str:
    for marker in ("/src/", "site-packages/", "python3.11/", "/bench/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def where(function: Function) -> str:
    """A function as ``name (file)``, its file from its package on."""
    file, _, name = function
    return f"{name} ({_short(file)})"


def report(runs: list[Counted], top: int) -> str:
    """The Markdown report of ``runs`` (the first is the base of every comparison)."""
    first = runs[0].bytecodes
    lines = ["| tree | bytecodes per message | / first |", "|---|---|---|"]
    for run in runs:
        ratio = f"{run.bytecodes / first:.4f}" if first else "-"
        lines.append(f"| {run.label} | {run.bytecodes:,.0f} | {ratio} |")
    for run in runs:
        functions = [(k, v) for k, v in run.per_message.items() if k[0] != "<record>"]
        lines += [
            "",
            f"{run.label}: the functions that execute the most",
            "",
            "| bytecodes per message | share | calls per message | function |",
            "|---|---|---|---|",
        ]
        total = run.bytecodes or 1.0
        for function, (done, calls) in sorted(functions, key=lambda item: -item[1][0])[:top]:
            lines.append(
                f"| {done:,.1f} | {100 * done / total:.1f}% | {calls:.2f} | `{where(function)}` |"
            )
        records = sorted(
            ((k[2], v[1]) for k, v in run.per_message.items() if k[0] == "<record>"),
            key=lambda item: -item[1],
        )
        made = ", ".join(f"{name} {calls:.2f}" for name, calls in records if calls >= 0.01)
        lines += ["", f"{run.label}: records made per message: {made or 'none'}"]
    base = runs[0].per_message
    for run in runs[1:]:
        moved = {
            function: run.per_message.get(function, (0.0, 0.0))[0]
            - base.get(function, (0.0, 0.0))[0]
            for function in base.keys() | run.per_message.keys()
            if function[0] != "<record>"
        }
        lines += [
            "",
            f"{run.label} against {runs[0].label}: bytecodes per message that moved most",
            "",
        ]
        for function, change in sorted(moved.items(), key=lambda item: -abs(item[1]))[:top]:
            lines.append(f"- {change:+9.1f}  {where(function)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--traced"]:  # the tracer itself, in the traced process
        out, separator, *target = arguments[1:]
        if separator != "--" or not target:
            raise SystemExit("--traced OUT -- SCRIPT|-m MODULE [ARGS...]")
        traced(out, target)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_tree_option(parser)
    parser.add_argument(
        "--path",
        choices=("fast-loop", "serve", "worker"),
        default="fast-loop",
        help="fast-loop: status_changes.py; serve, worker: that command's processes in "
        "scenario c's harness",
    )
    parser.add_argument("--messages", type=int, default=300, help="of the smaller run")
    parser.add_argument("--more", type=int, default=300, help="messages the larger run adds")
    parser.add_argument("--top", type=int, default=40, help="functions listed")
    args = parser.parse_args(arguments)
    with tempfile.TemporaryDirectory(prefix="pigeon-bytecodes-") as name:
        scratch = Path(name)
        trees = [tree_from(spec, scratch) for spec in args.tree or [f"this={ROOT / 'src'}"]]
        runs = []
        for tree in trees:
            print(f"{tree.label}: counting...", file=sys.stderr, flush=True)
            runs.append(
                count(tree.label, args.path, tree.source, args.messages, args.more, scratch)
            )
    print(report(runs, args.top))
    print()
    print(command_and_machine("bytecodes.py", argv))


if __name__ == "__main__":
    main()
