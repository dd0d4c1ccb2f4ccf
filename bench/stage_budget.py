"""Pigeon's CPU per delivered message, stage by stage, beside the Python floor's (ADR 24).

Runs ``kannel_side_by_side.py --pigeon-only --floor F`` (Pigeon, then the floor, each with its
own simulator and the same load), attaches ``py-spy record --gil`` to each busy gateway
process for a while once it is under load, and gives every sample to the first stage (in
order of precedence, ``STAGES``) with a marker in its stack. A stage's share of a process's
samples, times that process's CPU per delivered message over the whole phase, is the
stage's cost::

    .venv/bin/python bench/stage_budget.py [--messages 40000] [--seconds 10] [--floor features]
    .venv/bin/python bench/stage_budget.py --from-raw serve=0.62:serve.txt worker=0.79:w.txt
    .venv/bin/python bench/stage_budget.py --from-raw ... --detail "store writes" --below Writer.
    .venv/bin/python bench/stage_budget.py --from-raw ... --writer

``--writer`` splits the "store writes" stage by what the writers' batches do (``WRITER_WORK``):
the status changes' own logic (transitions, events, webhook jobs: the change callbacks a
mutation plan runs), the rest of the mutation plans (copies, checks, part diffs, rows, held
messages), the accepts' rows, job claims, webhook attempts, the statements, stamps and write
locks, and the transactions and answers around them.

py-spy must be installed (``pip install py-spy``) and allowed to attach (root, or
``kernel.yama.ptrace_scope`` 0). ``--gil`` keeps only samples that hold the GIL, i.e. the
process's own CPU, not its waits. The profile is sampled: a stage under ~2% of a process is
noise. ``--from-raw`` only attributes raw stack files written earlier (``py-spy -f raw``).

Two biases (session 28, docs/benchmarks.md): ``--gil`` leaves out SQLite's own work, which
runs with the GIL released (``perf`` gives ``libsqlite3`` 10-12% of each process); and py-spy
charges a runnable thread that the scheduler has preempted to the line it stopped at, most
often a system call (``asyncio.get_running_loop()`` calls ``getpid()``), so stages that make
system calls look larger than their CPU. ``perf record -p PID`` gives the CPU by library and
system call; ``bench/call_counts.py`` counts the calls per message.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import is_wal_sync

HERE = Path(__file__).resolve().parent

#: (marker, stage) in order of precedence: a sample belongs to the first stage one of whose
#: markers is anywhere in its stack. The markers are module paths and qualified names of
#: Pigeon and of the floor (whose SMPP callbacks are nested in ``Relay.run_link``).
STAGES: tuple[tuple[str, str], ...] = (
    ("Writer._loop", "store writes"),
    ("Writer._run_batch", "store writes"),
    ("concurrent/futures/thread.py", "store writes"),
    ("fast_accept", "HTTP accept"),
    ("HttpIn.", "HTTP accept"),
    ("httptools_impl", "HTTP accept"),
    ("webhooks/sender.py", "webhooks"),
    ("notify.py", "webhooks"),
    ("run_webhooks", "webhooks"),
    ("Relay.post", "webhooks"),
    ("Relay.notify", "webhooks"),
    ("ApplyReceipt", "receipts"),
    ("services/receipts.py", "receipts"),
    ("Relay.deliver", "receipts"),
    ("DispatchMessage", "dispatch and submit"),
    ("Relay.submit", "dispatch and submit"),
    ("services/worker.py", "claims"),
    ("queue/", "claims"),
    ("smpp_link.py", "SMPP in"),
    ("smpp_client.py", "SMPP in"),
    ("run_link", "SMPP in"),
)
OTHER = "the loop (timers, callbacks)"

#: How the run names each process's CPU (``Phase.cpu``), and how to find it to attach
#: (``pigeon worker 1`` is ``serve``'s first child but its WAL sync process).
PROCESSES = {
    "pigeon serve": r"-m pigeon serve",
    "pigeon worker 1": "",
    "python floor": r"python_floor\.py",
}


def stage_of(frames: list[str]) -> str:
    """The stage of one sample's stack."""
    stack = ";".join(frames)
    for marker, stage in STAGES:
        if marker in stack:
            return stage
    return OTHER


def stacks(raw: str) -> Iterator[tuple[list[str], int]]:
    """The stacks of a ``py-spy -f raw`` file's text (frames, root first) and their samples."""
    for line in raw.splitlines():
        line = line.strip()
        if line:
            stack, _, count = line.rpartition(" ")
            yield stack.split(";"), int(count)


def attribute(raw: str) -> tuple[collections.Counter[str], int]:
    """Samples per stage of a ``py-spy -f raw`` file's text, and the samples in all."""
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, samples in stacks(raw):
        total += samples
        stages[stage_of(frames)] += samples
    return stages, total


def budget(profiles: dict[str, tuple[float, str]]) -> dict[str, dict[str, float]]:
    """Milliseconds per message by stage and process: ``profiles`` maps a process's label to
    (its CPU ms per delivered message, its raw stack text)."""
    table: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for label, (ms, raw) in profiles.items():
        stages, total = attribute(raw)
        for stage, samples in stages.items():
            table[stage][label] = ms * samples / max(total, 1)
    return dict(table)


#: ``py-spy``'s frame text: ``function (path:line)``.
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<path>.*?)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    """A frame without its line, its path cut to the package: the lines of one function and
    the same function reached twice count together."""
    found = _FRAME.match(frame)
    if found is None:
        return frame
    path = found["path"]
    for root in ("pigeon/", "site-packages/", "python3.11/"):
        if root in path:
            path = path.rsplit(root, 1)[1]
            break
    return f"{found['name']} ({path})"


def detail(
    raw: str, stage: str, depth: int, below: str | None = None
) -> tuple[collections.Counter[str], int]:
    """Samples of ``stage`` by where they are below its marker: the ``depth`` frames under the
    first frame that holds one of the stage's markers (the marker frame itself first), and
    the samples in all. Answers which call paths make a stage's cost. ``below``: start under
    the deepest frame whose function name starts with it instead, where there is one (e.g.
    ``Writer.``: what the writer's batches run, without the writer's own frames)."""
    markers = [marker for marker, name in STAGES if name == stage]
    paths: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, samples in stacks(raw):
        total += samples
        if stage_of(frames) != stage:
            continue
        under = [i for i, f in enumerate(frames) if below and f.startswith(below)]
        if under:
            start = under[-1] + 1
        elif markers:
            start = next(i for i, f in enumerate(frames) if any(m in f for m in markers))
        else:  # the loop: below the event loop's run, where nothing marked it
            runs = [i for i, f in enumerate(frames) if f.startswith("Runner.run ")]
            start = runs[-1] + 1 if runs else 0
        paths[" > ".join(_frame_name(f) for f in frames[start : start + depth + 1])] += samples
    return paths, total


def detail_markdown(
    profiles: dict[str, tuple[float, str]],
    stage: str,
    depth: int,
    top: int,
    below: str | None = None,
) -> str:
    """For each process, ``stage``'s ``top`` costliest call paths (``detail``) in ms per
    message and in per cent of the process's samples."""
    blocks = []
    for label, (ms, raw) in profiles.items():
        paths, total = detail(raw, stage, depth, below)
        if not paths:
            continue
        lines = [
            f"{label}, {stage}:",
            "",
            "| call path | ms | % of the process |",
            "|---|---|---|",
        ]
        for path, samples in paths.most_common(top):
            share = samples / max(total, 1)
            lines.append(f"| {path} | {ms * share:.4f} | {100 * share:.1f} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def markdown(table: dict[str, dict[str, float]], labels: list[str], rows_are: str = "stage") -> str:
    """One row per stage (or per what ``rows_are`` names), one column per process, the
    costliest first."""
    rows = sorted(table.items(), key=lambda item: -sum(item[1].values()))
    lines = [
        f"| {rows_are} | " + " | ".join(f"{label} (ms)" for label in labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for stage, costs in rows:
        cells = " | ".join(f"{costs[label]:.3f}" if label in costs else "" for label in labels)
        lines.append(f"| {stage} | {cells} |")
    totals = " | ".join(f"{sum(c.get(label, 0.0) for c in table.values()):.3f}" for label in labels)
    lines.append(f"| **all** | {totals} |")
    return "\n".join(lines)


#: What the writers' batches do (``--writer``): (markers, kind) in order of precedence, for the
#: samples of the "store writes" stage. A change callback is found by a frame of Pigeon's
#: services or domain below the plan that runs it (``CALLBACK``). The floor's commit thread
#: (``Store.commit``) and its claims (``Store._claim``) are marked as the same kinds.
WRITER_WORK: tuple[tuple[tuple[str, ...], str], ...] = (
    (("SqlMessageStore._plan", "_prepare_mutations", "SqlMessageStore._hold"), "mutation plans"),
    (("_accept_rows", "_prepare_accepts"), "accept rows"),
    (("SqlJobQueue.claim", "Store._claim"), "job claims"),
    (("_attempts_batch",), "webhook attempts"),
    (("_Statement.", "StatementChain.", "(pigeon/raw_sql.py", "Store.commit"), "statements"),
    (
        ("_RawReads.stamps", "pg_lock_stamps", "try_write_lock", "_wait_for_write_lock"),
        "stamps and locks",
    ),
)
CALLBACK = "status changes' own logic"
WRITER_OTHER = "transactions and answers"


def writer_work_of(frames: list[str]) -> str:
    """The kind of writer work of one "store writes" sample's stack."""
    stack = ";".join(frames)
    plan = next((i for i, f in enumerate(frames) if "SqlMessageStore._plan" in f), None)
    if plan is not None and plan + 1 < len(frames):
        called = frames[plan + 1]  # the change itself, or the plan's own step
        if "pigeon/services/" in called or "pigeon/domain/" in called:
            return CALLBACK
    for markers, kind in WRITER_WORK:
        if any(marker in stack for marker in markers):
            return kind
    return WRITER_OTHER


def writer_work(profiles: dict[str, tuple[float, str]]) -> dict[str, dict[str, float]]:
    """Milliseconds per message of the "store writes" stage by kind of work and process."""
    table: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for label, (ms, raw) in profiles.items():
        kinds: collections.Counter[str] = collections.Counter()
        total = 0
        for frames, samples in stacks(raw):
            total += samples
            if stage_of(frames) == "store writes":
                kinds[writer_work_of(frames)] += samples
        for kind, samples in kinds.items():
            table[kind][label] = ms * samples / max(total, 1)
    return dict(table)


def _pids(pattern: str) -> list[int]:
    done = subprocess.run(
        ["pgrep", "-f", "--", pattern], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in done.stdout.split()]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_per_message(output: str) -> dict[str, float]:
    """Each process's CPU ms per delivered message, from the run's ``Phase(...)`` lines."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        callbacks = re.search(r"callbacks=(\d+)", line)
        cpu = re.search(r"cpu=\{([^}]*)\}", line)
        if not callbacks or not cpu:
            continue
        for label, seconds in re.findall(r"'([^']+)': ([0-9.]+)", cpu.group(1)):
            if label in PROCESSES:
                found[label] = 1000 * float(seconds) / max(int(callbacks.group(1)), 1)
    return found


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[float, str]]:
    """Run the side by side and profile each gateway process once it is under load."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    command = [
        *(sys.executable, str(HERE / "kannel_side_by_side.py"), "--pigeon-only"),
        *("--messages", str(args.messages), "--floor", args.floor),
        *(("--pigeon-src", args.pigeon_src) if args.pigeon_src else ()),
    ]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    spies: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for group in (("pigeon serve", "pigeon worker 1"), ("python floor",)):
            deadline = time.monotonic() + args.timeout
            pids: dict[str, int] = {}
            while len(pids) < len(group) and time.monotonic() < deadline and run.poll() is None:
                for label in group:
                    if label == "pigeon worker 1":
                        found = (
                            [c for c in _children(pids["pigeon serve"]) if not is_wal_sync(c)]
                            if "pigeon serve" in pids
                            else []
                        )
                    else:
                        found = _pids(PROCESSES[label])
                    if found:
                        pids[label] = found[0]
                time.sleep(0.2)
            if len(pids) < len(group):
                missing = ", ".join(label for label in group if label not in pids)
                raise SystemExit(f"no {missing} process to profile")
            time.sleep(args.warmup)  # the warm-up message, then the load
            for label, pid in pids.items():
                out = tmp / f"{label.replace(' ', '-')}.txt"
                record = ["record", "--gil", "-r", "200", "-d", str(args.seconds), "-f", "raw"]
                spies[label] = subprocess.Popen(
                    [spy, *record, "-o", str(out), "-p", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            for label in pids:
                spies[label].wait(args.seconds + 60)
        output, _ = run.communicate(timeout=args.timeout)
    finally:
        if run.poll() is None:
            run.kill()
    if run.returncode:
        raise SystemExit(f"the run failed:\n{output[-3000:]}")
    cpu = _cpu_per_message(output)
    profiles = {}
    for label in spies:
        out = tmp / f"{label.replace(' ', '-')}.txt"
        if label in cpu and out.exists():
            profiles[label] = (cpu[label], out.read_text())
    return profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--seconds", type=int, default=10, help="of each profile")
    parser.add_argument("--warmup", type=float, default=4.0, help="s under load before profiling")
    parser.add_argument("--floor", default="features", help="the floor's rung (--floor of the run)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", metavar="DIR", help="keep the raw profiles there")
    parser.add_argument(
        "--pigeon-src",
        metavar="DIR",
        help="run pigeon from DIR (PYTHONPATH), e.g. a snapshot's src, to compare two trees",
    )
    parser.add_argument(
        "--from-raw",
        nargs="+",
        metavar="LABEL=MS:FILE",
        help="attribute these raw profiles (CPU ms per message of each process) and stop",
    )
    parser.add_argument(
        "--detail",
        metavar="STAGE",
        help="also break STAGE (a row of the table) down by call path below its marker",
    )
    parser.add_argument(
        "--writer",
        action="store_true",
        help="also split the store writes by what the writers' batches do",
    )
    parser.add_argument("--depth", type=int, default=2, help="frames of each --detail path")
    parser.add_argument("--top", type=int, default=15, help="--detail paths shown per process")
    parser.add_argument(
        "--below",
        metavar="NAME",
        help="--detail paths start under the deepest frame whose function starts with NAME",
    )
    args = parser.parse_args()
    if args.from_raw:
        profiles = {}
        for spec in args.from_raw:
            label, _, rest = spec.partition("=")
            ms, _, path = rest.partition(":")
            profiles[label] = (float(ms), Path(path).read_text())
    else:
        tmp = Path(args.keep or tempfile.mkdtemp(prefix="pigeon-stage-budget-"))
        tmp.mkdir(parents=True, exist_ok=True)
        profiles = measure(args, tmp)
    print(markdown(budget(profiles), list(profiles)))
    if args.writer:
        print()
        print(markdown(writer_work(profiles), list(profiles), "store writes by kind of work"))
    if args.detail:
        print()
        print(detail_markdown(profiles, args.detail, args.depth, args.top, args.below))
    print(f"\ncommand: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
