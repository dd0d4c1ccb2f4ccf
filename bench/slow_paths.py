"""What the running gateway does on the interpreter's slow paths, counted with gdb.

    .venv/bin/python bench/slow_paths.py --count calls            # callables on the slow path
    .venv/bin/python bench/slow_paths.py --count exceptions       # exceptions set in C
    .venv/bin/python bench/slow_paths.py --count functions --where 2   # function objects made
    .venv/bin/python bench/slow_paths.py --pigeon-src /tmp/old/src     # another tree

Runs scenario c's harness (``kannel_side_by_side.py --pigeon-only``, SQLite) and attaches
``gdb`` to ``pigeon serve`` and its first worker ``--settle`` seconds after the worker starts
(past their start-up; the harness sends once ``serve`` is ready). A breakpoint on one of the
interpreter's exported C functions counts, per process, what each call was about, until the
process ends; the report gives the counts per delivered message (the stop included, and
whatever start-up was left: keep ``--messages`` large). What is counted (``--count``):

- ``calls``: ``_PyObject_MakeTpCall``, the generic path for a callable without vectorcall:
  a Python class made (``type_call``, then ``__init__``), a bound method-wrapper (a slot
  such as ``EnumType.__getattribute__``), a builtin that takes keywords (``max``,
  ``bytes.find``), ``int(...)``. Each costs several times a specialised call.
- ``exceptions``: ``PyErr_Format``, ``PyErr_SetString``, ``PyErr_SetObject``,
  ``PyErr_SetNone``: exceptions that C code sets, most of them caught again without any
  Python profiler seeing them (a ``GeneratorExit`` closing a generator that ``any()`` left,
  ``bytes.__contains__``'s ``TypeError``).
- ``functions``: ``PyFunction_NewWithQualName``, a function object made at run time (a
  comprehension, a generator expression, a closure, a lambda), by its code.

``--where N`` adds the Python location of the first ``--where-hits`` events (N frames, by
calling the interpreter's ``PyEval_GetFrame`` from gdb; slower, so only for those). Such a
call needs the kernel to let gdb write the registers' extended state, which some machines
refuse ("Couldn't write extended state status"; gdb then hangs in the call): ``--where``
probes for it first and stops with that reason. The counts themselves never call into the
process: a code object's name and file are read from its fields. gdb's
breakpoints slow the processes down many times: the figures are counts, never times, and
whatever the slowness itself causes shows too (timeouts that fire, connections opened again:
``ipaddress`` parsing a webhook host, log records of late answers), so check a lead in a
normal run (``bench/call_counts.py``) before acting on it. It found
session 46's cuts (docs/benchmarks.md, ADR 49); ``bench/instructions.py --functions`` prices
them. Needs gdb (``apt-get install -y gdb``) and the right to attach (root, or
``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import command_and_machine

HERE = Path(__file__).resolve().parent
SIDE_BY_SIDE = HERE / "kannel_side_by_side.py"

#: The C functions each ``--count`` breaks on.
BREAKPOINTS: dict[str, tuple[str, ...]] = {
    "calls": ("_PyObject_MakeTpCall",),
    "exceptions": ("PyErr_Format", "PyErr_SetString", "PyErr_SetObject", "PyErr_SetNone"),
    "functions": ("PyFunction_NewWithQualName",),
}

#: gdb without the interpreter's debug information (``python3.11-dbg`` installs it) and the
#: scripts that come with it: the breakpoints and the gdb script need only the exported
#: symbols, and reading the DWARF when it attaches took gdb longer than a short run lasts.
GDB_QUICK = (
    "-iex",
    "set debug-file-directory /nonexistent",
    "-iex",
    "set auto-load python-scripts off",
)

#: Run inside gdb (its Python). Names an event from the registers at the breakpoint (x86-64
#: System V: arguments in rdi, rsi, rdx, rcx) and CPython 3.11's object layouts (``ob_type`` at
#: 8, ``tp_name`` at 24, a compact ASCII string's characters at 48), and writes one line per
#: key when the process ends: ``count<TAB>key<TAB>where``.
GDB_SCRIPT = r"""
import collections, os
import gdb

OUT = os.environ["SLOW_PATHS_OUT"]
WHERE = int(os.environ.get("SLOW_PATHS_WHERE", "0"))
WHERE_HITS = int(os.environ.get("SLOW_PATHS_WHERE_HITS", "300"))
CODE_NAME, CODE_FILENAME = map(int, os.environ["SLOW_PATHS_CODE_FIELDS"].split(","))
inferior = gdb.selected_inferior()
counts = collections.Counter()
places = collections.defaultdict(collections.Counter)
hits = [0]
codes = {}

def word(address):
    return int.from_bytes(inferior.read_memory(address, 8).tobytes(), "little")

def text(address, size=120):
    try:
        return inferior.read_memory(address, size).tobytes().split(b"\0")[0].decode("latin-1")
    except Exception:
        return "?"

def type_name(obj):
    return text(word(word(obj + 8) + 24))

def call(expression):
    return int(gdb.parse_and_eval(expression))

def string(obj):
    # A str's text from its layout: the state's bits (kind 2-4, compact 5, ascii 6) at 32; a
    # compact ASCII string's characters at 48, a compact Latin-1 one's at 72.
    state = int.from_bytes(inferior.read_memory(obj + 32, 4).tobytes(), "little")
    if state & 0x40:
        return text(obj + 48, 300)
    if state & 0x20 and (state >> 2) & 7 == 1:
        return text(obj + 72, 300)
    return "?"

def code_name(code):
    # Read from the code object itself, not asked of the process: calling into it (its repr)
    # hangs gdb where the kernel refuses it the registers' extended state.
    name = codes.get(code)
    if name is None:
        path = string(word(code + CODE_FILENAME))
        name = codes[code] = f"{string(word(code + CODE_NAME))} ({'/'.join(path.split('/')[-2:])})"
    return name

def where():
    frames = []
    frame = call("(long)PyEval_GetFrame()")
    for _ in range(WHERE):
        if not frame:
            break
        code = call(f"(long)PyFrame_GetCode((void*){frame})")
        line = call(f"(int)PyFrame_GetLineNumber((void*){frame})")
        frames.append(f"{code_name(code)}:{line}")
        frame = call(f"(long)PyFrame_GetBack((void*){frame})")
    return " < ".join(frames)

def called(obj):
    kind = type_name(obj)
    if kind == "method-wrapper":
        descriptor = word(obj + 16)
        return f"method-wrapper {type_name(word(obj + 24))}.{text(word(descriptor + 24) + 48)}"
    if kind == "wrapper_descriptor":
        return f"slot wrapper {text(word(word(obj + 16) + 24))}.{text(word(obj + 24) + 48)}"
    if kind == "builtin_function_or_method":
        return f"builtin {text(word(word(obj + 16)))}"
    if kind == "type" or kind.endswith("Meta") or kind == "EnumType":
        return f"class {text(word(obj + 24))}"
    return f"instance of {kind}"

def key_of(function, frame):
    rdi = int(frame.read_register("rdi"))
    rsi = int(frame.read_register("rsi"))
    if function == "_PyObject_MakeTpCall":
        return called(rsi)
    if function == "PyFunction_NewWithQualName":
        return "function " + code_name(rdi)
    exception = text(word(rdi + 24)) if rdi else "?"
    if function == "PyErr_Format":
        shown = text(rsi)
        if shown.startswith("'%.50s' object has no attribute"):
            rdx = int(frame.read_register("rdx"))
            rcx = int(frame.read_register("rcx"))
            return f"{exception}: {text(rdx)} has no attribute {text(rcx + 48)}"
        return f"{exception}: {shown}"
    if function == "PyErr_SetString":
        return f"{exception}: {text(rsi)}"
    if function == "PyErr_SetObject":
        return f"{exception} ({type_name(rsi) if rsi else 'no value'})"
    return exception

# The functions called into the process (a code object's repr, the frames) run with the other
# threads stopped, and the breakpoints they hit themselves are not counted. gdb resumes every
# thread for a call by default: another thread could then stop at a breakpoint inside the call,
# whose stop() would call again while the first call had not returned (runs hung there).
busy = [False]
gdb.execute("set unwindonsignal on")

class Counting(gdb.Breakpoint):
    def stop(self):
        if busy[0]:
            return False
        busy[0] = True
        gdb.execute("set scheduler-locking on", to_string=True)
        try:
            frame = gdb.selected_frame()
            key = key_of(self.location, frame)
            counts[key] += 1
            hits[0] += 1
            if WHERE and hits[0] <= WHERE_HITS:
                places[key][where()] += 1
        finally:
            gdb.execute("set scheduler-locking replay", to_string=True)
            busy[0] = False
        return False

def report(_event=None):
    with open(OUT, "w") as out:
        for key, count in counts.most_common():
            place = places[key].most_common(1)[0][0] if places[key] else ""
            clean = [" ".join(part.split()) for part in (key, place)]
            out.write(f"{count}\t{clean[0]}\t{clean[1]}\n")

for name in os.environ["SLOW_PATHS_BREAK"].split(","):
    Counting(name)
gdb.events.exited.connect(report)
"""


def code_fields() -> str:
    """Where this interpreter keeps a code object's ``co_name`` and ``co_filename`` (byte
    offsets, "NAME,FILENAME"), found by looking for them in one (the gateway runs this same
    interpreter, the venv's)."""

    def probe() -> None:
        """A code object whose name and file are objects of their own."""

    code = probe.__code__
    words = (ctypes.c_uint64 * 32).from_address(id(code))
    offsets = {}
    for wanted in ("co_name", "co_filename"):
        found = [8 * i for i, value in enumerate(words) if value == id(getattr(code, wanted))]
        if not found:
            raise SystemExit(f"no {wanted} in this interpreter's code objects")
        offsets[wanted] = found[0]
    return f"{offsets['co_name']},{offsets['co_filename']}"


def script_env(out: Path, kind: str, where: int, where_hits: int) -> dict[str, str]:
    """The environment the gdb script reads: where to write, what to break on and how."""
    return {
        **os.environ,
        "SLOW_PATHS_OUT": str(out),
        "SLOW_PATHS_BREAK": ",".join(BREAKPOINTS[kind]),
        "SLOW_PATHS_WHERE": str(where),
        "SLOW_PATHS_WHERE_HITS": str(where_hits),
        "SLOW_PATHS_CODE_FIELDS": code_fields(),
    }


def calls_into_processes(timeout: float = 60) -> bool:
    """Whether gdb can call a function inside a stopped process here (``--where`` does). Some
    kernels refuse gdb the registers' extended state ("Couldn't write extended state status")
    and gdb then hangs in the call: a short run tells."""
    try:
        done = subprocess.run(
            [
                *("gdb", *GDB_QUICK, "-batch"),
                *("-ex", "break PyFunction_NewWithQualName", "-ex", "run"),
                *("-ex", "print (int)Py_IsInitialized()", "-ex", "kill"),
                *("--args", sys.executable, "-S", "-c", "(lambda: 0)()"),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False
    return "$1 = " in done.stdout


@dataclass
class Counted:
    """One process's counts: (count, key, where) rows, most frequent first."""

    process: str
    rows: list[tuple[int, str, str]] = field(default_factory=list)


def read_counts(path: Path) -> list[tuple[int, str, str]]:
    """The rows the gdb script wrote (none if the process left no report)."""
    if not path.exists():
        return []
    rows: list[tuple[int, str, str]] = []
    for line in path.read_text().splitlines():
        count, key, place = [*line.split("\t"), "", ""][:3]
        rows.append((int(count), key, place))
    return rows


def _parent(pid: int) -> int:
    """``pid``'s parent (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pids(harness: int, timeout: float) -> tuple[int, int]:
    """The process ids of the ``pigeon serve`` that ``harness`` started and of its first
    worker, once both exist (other gateways running on the machine are left alone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["pgrep", "-f", "-a", "pigeon (serve|worker)"], capture_output=True, text=True
        ).stdout.splitlines()
        serve = [
            int(line.split()[0])
            for line in found
            if "pigeon serve" in line and _parent(int(line.split()[0])) == harness
        ]
        workers = [
            int(line.split()[0])
            for line in found
            if serve and "pigeon worker" in line and _parent(int(line.split()[0])) == serve[0]
        ]
        if serve and workers:
            return serve[0], min(workers)
        time.sleep(0.05)
    raise SystemExit("pigeon serve and its worker did not start")


def count(
    kind: str, messages: int, where: int, where_hits: int, source: str = "", settle: float = 3.0
) -> list[Counted]:
    """Run the harness (Pigeon from ``source``, a tree's ``src``, if given) and count ``kind``
    in ``serve`` and its first worker."""
    if shutil.which("gdb") is None:
        raise SystemExit("gdb is not installed (apt-get install -y gdb)")
    if where and not calls_into_processes():
        raise SystemExit(
            "--where calls into the process from gdb, which cannot do it on this machine"
            " (its kernel refuses gdb the registers' extended state); count without --where"
        )
    with tempfile.TemporaryDirectory(prefix="pigeon-slow-paths-") as name:
        folder = Path(name)
        script = folder / "count.py"
        script.write_text(GDB_SCRIPT)
        harness = subprocess.Popen(
            [
                sys.executable,
                str(SIDE_BY_SIDE),
                "--pigeon-only",
                *("--messages", str(messages)),
                *("--timeout", "1800", "--stall", "600"),
                *(("--pigeon-src", source) if source else ()),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        counted: list[Counted] = []
        debuggers: list[subprocess.Popen[bytes]] = []
        try:
            serve, worker = _pids(harness.pid, 120)
            # Past the worker's start-up (imports, migrations checked, binds), which under
            # breakpoints would take minutes and count what no message does.
            time.sleep(settle)
            for process, pid in (("serve", serve), ("worker 1", worker)):
                out = folder / f"{pid}.tsv"
                env = script_env(out, kind, where, where_hits)
                debuggers.append(
                    subprocess.Popen(
                        [
                            *("gdb", *GDB_QUICK, "-p", str(pid), "-batch", "-x", str(script)),
                            *("-ex", "continue"),
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                counted.append(Counted(process, [(0, str(out), "")]))
            output, _ = harness.communicate(timeout=3600)
            if harness.returncode != 0:
                raise SystemExit(f"the harness failed\n{output[-3000:]}")
            for debugger in debuggers:
                debugger.wait(timeout=300)
        finally:
            harness.kill()
            for debugger in debuggers:
                debugger.kill()
        return [Counted(c.process, read_counts(Path(c.rows[0][1]))) for c in counted]


def report(kind: str, counted: list[Counted], messages: int, top: int) -> str:
    """Per process, the ``top`` keys by count per delivered message."""
    lines: list[str] = []
    for process in counted:
        total = sum(row[0] for row in process.rows)
        lines.append(f"\n{process.process}: {total / messages:.2f} {kind} per message\n")
        lines.append("| per message | what | where (first frames) |")
        lines.append("|---|---|---|")
        for number, key, place in process.rows[:top]:
            lines.append(f"| {number / messages:.3f} | `{key}` | {place} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", choices=sorted(BREAKPOINTS), default="calls")
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--where", type=int, default=0, help="Python frames of each place")
    parser.add_argument("--where-hits", type=int, default=300, help="events given a place")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pigeon-src", default="", help="run Pigeon from this tree's src")
    parser.add_argument("--settle", type=float, default=3.0, help="s after the worker starts")
    args = parser.parse_args(argv)
    counted = count(
        args.count, args.messages, args.where, args.where_hits, args.pigeon_src, args.settle
    )
    totals = collections.Counter({c.process: sum(r[0] for r in c.rows) for c in counted})
    if not all(totals.values()):
        raise SystemExit(f"a process reported nothing: {dict(totals)}")
    print(report(args.count, counted, args.messages, args.top))
    print()
    print(command_and_machine("slow_paths.py", argv))


if __name__ == "__main__":
    main()
