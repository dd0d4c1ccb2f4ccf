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

``--functions N`` also lists the N C functions that executed the most of the difference
(cachegrind's per-function counts of the two runs, ``cg_diff``): the interpreter's loop, and
below it what no Python profiler sees, as SQLite's own locks and an exception raised and
cleared inside each NULL bound were (ADR 48).

``--path accept`` counts ``pigeon serve``'s REST accept instead: ``serve`` (its workers off, a
new SQLite file) runs under valgrind and answers ``--messages`` and then, in a second run,
``--messages`` + ``--more`` sends of ``POST /v1/messages`` from ``--concurrency`` keep-alive
clients in another process, which valgrind does not count. Every send has its own recipient, as
a campaign's do (``--messages`` + ``--more`` at most 10,000), so no number is found in the
accept's cache of classified numbers: ``+1415555`` and four digits, or with ``--recipients
every-region`` numbers of every region (``bench/number_classification.py``'s worldwide mix);
with ``--idempotency-keys`` each send carries a key of its own, as clients that retry do;
with ``--close-connections`` each send has a connection of its own, as clients without
keep-alive.
What a send costs ``serve`` is counted whole: HTTP parsing, the key, the body, the number and
the text, the rows and their group commit, the ``202`` answer and the loop around them. The
difference of the runs cancels the start, the migrations and the stop. Batches form as the
load comes (a slow ``serve`` under valgrind finds about ``--concurrency`` sends per turn in
both runs): two runs of one tree agree to about 0.2%.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from alternate import add_tree_option, tree_from
from harness import KEY, command_and_machine, free_port, quiet_collector
from number_classification import numbers_of

from pigeon.store.messages import HELD_KEPT

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
    #: ``--functions``: the C functions that did the most of it, (instructions per message,
    #: ``file:function``), most first.
    functions: tuple[tuple[float, str], ...] = ()


#: The most sends one ``--path accept`` run makes: each has a recipient of its own.
ACCEPT_RECIPIENTS = 10_000
#: What each send of ``--path accept`` says (its recipient aside).
ACCEPT_TEXT = "Your verification code is 123456"
#: ``--unicode``'s: Cyrillic, sent as UCS-2.
ACCEPT_UNICODE_TEXT = "Ваш код подтверждения 123456"


def _valgrind(out_file: str = "/dev/null") -> list[str]:
    """valgrind counting instructions only, its per-function counts written to ``out_file``
    (discarded unless ``--functions`` asks for them)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    return [valgrind, "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out_file}"]


def _tree_env(source: Path) -> dict[str, str]:
    """The environment of a counted run of tree ``source``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "PYTHONHASHSEED": "0",
    }


def instructions(source: Path, messages: int, out_file: str = "/dev/null") -> int:
    """The instructions one run of the fast loop on ``messages`` executes, tree ``source``."""
    done = subprocess.run(
        [*_valgrind(out_file), sys.executable, str(STATUS_CHANGES), "--messages", str(messages)],
        env=_tree_env(source),
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


@dataclass(frozen=True)
class AcceptLoad:
    """What ``--path accept`` sends: from how many clients at once, to whose numbers, and
    whether each send carries an ``Idempotency-Key`` of its own."""

    concurrency: int = 32
    recipients: str = "one-country"
    idempotency_keys: bool = False
    #: A new connection for each send (``Connection: close``), as clients without keep-alive.
    close_connections: bool = False
    #: Cyrillic texts (UCS-2) instead of GSM-7 ones.
    unicode: bool = False


def _send_all(url: str, recipients: list[str], load: AcceptLoad, out: Any) -> None:
    """The load of ``--path accept`` (its own process): a send to each of ``recipients`` from
    ``load.concurrency`` keep-alive clients; puts (answered 202, other answers)."""
    shared = {"sent": 0, "accepted": 0, "refused": 0}
    messages = len(recipients)

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1, force_close=load.close_connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            while shared["sent"] < messages:
                index = shared["sent"]
                shared["sent"] += 1
                text = ACCEPT_UNICODE_TEXT if load.unicode else ACCEPT_TEXT
                body = {"to": recipients[index], "body": text}
                headers = {"Authorization": f"Bearer {KEY}"}
                if load.idempotency_keys:
                    headers["Idempotency-Key"] = f"bench-{index:08d}"
                async with session.post(url, json=body, headers=headers) as reply:
                    await reply.read()
                    shared["accepted" if reply.status == 202 else "refused"] += 1

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(load.concurrency)))

    quiet_collector()
    asyncio.run(main())
    out.put((shared["accepted"], shared["refused"]))


def _wait_ready(url: str, server: subprocess.Popen[str], timeout: float) -> None:
    """Return once ``serve`` at ``url`` answers ``/readyz`` with 200 (it starts slowly under
    valgrind)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"pigeon serve ended at its start\n{server.communicate()[1][-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"pigeon serve was not ready within {timeout:.0f} s")


def accept_instructions(
    source: Path, messages: int, load: AcceptLoad, out_file: str = "/dev/null"
) -> int:
    """The instructions ``pigeon serve`` of tree ``source`` executes in a run that answers
    ``messages`` sends of ``load`` (its start and stop included)."""
    mix = "every region" if load.recipients == "every-region" else "one country"
    numbers = numbers_of(mix, messages)
    with tempfile.TemporaryDirectory(prefix="pigeon-accept-") as name:
        data = Path(name)
        (data / "none.toml").write_text("")
        port = free_port()
        env = {
            **_tree_env(source),
            "PIGEON_DATA_DIR": str(data),
            "PIGEON_DATABASE_URL": f"sqlite:///{data / 'pigeon.db'}",
            "PIGEON_HTTP_PORT": str(port),
            "PIGEON_SMPP_PORT": str(free_port()),
            "PIGEON_BOOTSTRAP_API_KEY": KEY,
            "PIGEON_RUN_WORKERS": "false",
            "PIGEON_LOG_LEVEL": "WARNING",
            "PIGEON_CONFIG": str(data / "none.toml"),
        }
        server = subprocess.Popen(
            [*_valgrind(out_file), sys.executable, "-m", "pigeon", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server, 300)
        answers: Any = multiprocessing.Queue()
        load = multiprocessing.Process(
            target=_send_all, args=(f"{url}/v1/messages", numbers, load, answers)
        )
        load.start()
        accepted, refused = answers.get(timeout=600)
        load.join()
        server.send_signal(signal.SIGTERM)
        stderr = server.communicate(timeout=300)[1]
    found = _REFS.search(stderr)
    if found is None or server.returncode != 0:
        raise SystemExit(f"pigeon serve of {source} failed\n{stderr[-2000:]}")
    if accepted != messages:
        raise SystemExit(f"{source}: {accepted} of {messages} sends accepted, {refused} refused")
    return int(found.group(1).replace(",", ""))


def count(
    label: str,
    source: Path,
    messages: int,
    more: int,
    path: str = "worker",
    load: AcceptLoad | None = None,
    functions: int = 0,
) -> Counted:
    """``source``'s instructions per message: two runs, ``messages`` and ``messages + more``;
    with ``functions``, also that many C functions that did the most of the difference."""
    # Compiled first, so that neither run spends its instructions writing bytecode.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(source)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory(prefix="pigeon-cachegrind-") as folder:
        small_file, large_file = (
            (str(Path(folder) / "small.out"), str(Path(folder) / "large.out"))
            if functions
            else ("/dev/null", "/dev/null")
        )
        if path == "accept":
            load = load or AcceptLoad()
            small = accept_instructions(source, messages, load, small_file)
            large = accept_instructions(source, messages + more, load, large_file)
        else:
            small = instructions(source, messages, small_file)
            large = instructions(source, messages + more, large_file)
        top = _top_functions(small_file, large_file, more, functions) if functions else ()
    return Counted(label, small, large, (large - small) / more, top)


#: A line of ``cg_annotate``'s function table: the count, its share, ``file:function``.
_FUNCTION_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$")


def _top_functions(
    small_file: str, large_file: str, more: int, top: int
) -> tuple[tuple[float, str], ...]:
    """The ``top`` C functions of the difference of two runs' counts (``cg_diff``, then
    ``cg_annotate``), as instructions per message. Python code is counted where the
    interpreter runs it (``_PyEval_EvalFrameDefault``): this finds what no Python profiler
    sees, such as SQLite's locks or an exception raised and cleared inside a C call (ADR 48)."""
    diff = subprocess.run(
        ["cg_diff", small_file, large_file], capture_output=True, text=True, check=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".diff") as written:
        written.write(diff)
        written.flush()
        table = subprocess.run(
            ["cg_annotate", "--auto=no", written.name], capture_output=True, text=True, check=True
        ).stdout
    found: list[tuple[float, str]] = []
    for line in table.splitlines():
        match = _FUNCTION_LINE.match(line)
        if match is None or "PROGRAM TOTALS" in match.group(2):
            continue
        found.append((int(match.group(1).replace(",", "")) / more, match.group(2).strip()))
        if len(found) >= top:
            break
    return tuple(found)


def report(counted: list[Counted], more: int, path: str = "worker") -> str:
    """The Markdown table: each tree's counts, per message, and its ratio to the first."""
    first = counted[0].per_message
    what = "serve's REST accept" if path == "accept" else "the worker's fast loop"
    lines = [
        f"{what}:",
        "",
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
    for tree in counted:
        if tree.functions:
            lines += [
                "",
                f"{tree.label}, by C function:",
                "",
                "| instructions per message | file:function |",
                "|---|---|",
            ]
            lines += [f"| {value:,.0f} | `{name}` |" for value, name in tree.functions]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_tree_option(parser)
    parser.add_argument(
        "--path",
        choices=("worker", "accept"),
        default="worker",
        help="worker: the worker's store path (the fast loop); accept: serve's REST accept",
    )
    parser.add_argument("--messages", type=int, default=1000, help="of the smaller run")
    parser.add_argument("--more", type=int, default=2000, help="messages the larger run adds")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="--path accept: clients sending at once"
    )
    parser.add_argument(
        "--recipients",
        choices=("one-country", "every-region"),
        default="one-country",
        help="--path accept: +1415555 numbers, or every region's (bench/number_classification.py)",
    )
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="--path accept: each send with an Idempotency-Key of its own",
    )
    parser.add_argument(
        "--close-connections",
        action="store_true",
        help="--path accept: a new connection for each send (Connection: close)",
    )
    parser.add_argument(
        "--unicode", action="store_true", help="--path accept: Cyrillic texts (UCS-2)"
    )
    parser.add_argument(
        "--functions",
        type=int,
        default=0,
        metavar="N",
        help="also the N C functions that executed the most instructions per message "
        "(cachegrind's counts of the two runs, cg_diff)",
    )
    args = parser.parse_args(argv)
    if args.path == "worker" and args.messages + args.more > HELD_KEPT:
        parser.error(f"--messages + --more must stay under the store's HELD_KEPT ({HELD_KEPT:,})")
    if args.path == "accept" and args.messages + args.more > ACCEPT_RECIPIENTS:
        parser.error(f"--path accept: --messages + --more at most {ACCEPT_RECIPIENTS:,}")
    with tempfile.TemporaryDirectory(prefix="pigeon-instructions-") as name:
        trees = [tree_from(spec, Path(name)) for spec in args.tree or [f"this={ROOT / 'src'}"]]
        counted = []
        for tree in trees:
            print(f"{tree.label}: counting...", file=sys.stderr, flush=True)
            counted.append(
                count(
                    tree.label,
                    tree.source,
                    args.messages,
                    args.more,
                    args.path,
                    AcceptLoad(
                        args.concurrency,
                        args.recipients,
                        args.idempotency_keys,
                        args.close_connections,
                        args.unicode,
                    ),
                    args.functions,
                )
            )
    print(report(counted, args.more, args.path))
    print()
    print(command_and_machine("instructions.py", argv))


if __name__ == "__main__":
    main()
