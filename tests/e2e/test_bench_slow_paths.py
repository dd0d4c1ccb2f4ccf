"""``bench/slow_paths.py``: gdb counts what a process does on the interpreter's slow paths, by
what each event was about. No count is asserted but what a known program must make."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from support.bench import bench_module, run_bench, table_rows

needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")

#: A program whose slow-path events are known, each made ``ROUNDS`` times.
ROUNDS = 50
_PROGRAM = textwrap.dedent(
    f"""
    import enum

    class Shade(enum.Enum):
        RED = 1

    class Point:
        def __init__(self, x):
            self.x = x

    for _ in range({ROUNDS}):
        any(n > 0 for n in (1, 2))  # a generator closed early: GeneratorExit
        b"u" in b"abc"  # bytes.__contains__ tries the needle as an int first: TypeError
        Point(1)  # a Python class made through the generic call path
        Shade.RED  # EnumType.__getattr__ (3.11) sends this through a method-wrapper
    """
)


@pytest.fixture(scope="module")
def slow_paths() -> ModuleType:
    """The script as a module."""
    return bench_module("slow_paths")


def _counted(slow_paths: ModuleType, kind: str, tmp_path: Path) -> dict[str, int]:
    """Run the known program under gdb with the script's breakpoints for ``kind``."""
    return {key: number for number, key, _ in _rows(slow_paths, kind, tmp_path)}


def _rows(
    slow_paths: ModuleType, kind: str, tmp_path: Path, where: int = 0
) -> list[tuple[int, str, str]]:
    """The known program's rows (count, key, place) for ``kind``, ``where`` frames each."""
    program = tmp_path / "program.py"
    program.write_text(_PROGRAM)
    script = tmp_path / "count.py"
    script.write_text(slow_paths.GDB_SCRIPT)
    out = tmp_path / "counts.tsv"
    env = slow_paths.script_env(out, kind, where, 1000000)  # every event: start-up's first
    subprocess.run(
        [
            "gdb",
            "-batch",
            "-x",
            str(script),
            "-ex",
            "run",
            "--args",
            sys.executable,
            "-S",
            str(program),
        ],
        env=env,
        capture_output=True,
        timeout=600,
        check=True,
    )
    rows: list[tuple[int, str, str]] = slow_paths.read_counts(out)
    assert rows, "gdb wrote no counts"
    return rows


@pytest.mark.slow
@needs_gdb
def test_exceptions_set_in_c_are_named_by_type_and_message(
    slow_paths: ModuleType, tmp_path: Path
) -> None:
    """A generator that ``any()`` leaves is closed with ``GeneratorExit``, and ``in`` on bytes
    sets a ``TypeError`` first: each counted once per round, by name."""
    counts = _counted(slow_paths, "exceptions", tmp_path)
    assert counts.get("GeneratorExit", 0) >= ROUNDS
    integer = [key for key in counts if key.startswith("TypeError") and "integer" in key]
    assert integer
    assert counts[integer[0]] >= ROUNDS


@pytest.mark.slow
@needs_gdb
def test_where_names_the_python_frames_of_an_event(slow_paths: ModuleType, tmp_path: Path) -> None:
    """With ``where``, an event gets the Python frames it happened in, innermost first, as the
    script calls into the stopped process for them: the ``GeneratorExit`` that closes the
    generator ``any()`` left is set in the program's own frame, on that line."""
    if not slow_paths.calls_into_processes():
        pytest.skip("gdb cannot call into a process on this machine (extended state refused)")
    rows = _rows(slow_paths, "exceptions", tmp_path, where=2)
    places = {key: place for _, key, place in rows}
    assert "GeneratorExit" in places
    line = 1 + _PROGRAM.splitlines().index(
        "    any(n > 0 for n in (1, 2))  # a generator closed early: GeneratorExit"
    )
    assert places["GeneratorExit"].startswith("<module> (")
    assert places["GeneratorExit"].endswith(f"/program.py):{line}")


@pytest.mark.slow
@needs_gdb
def test_slow_calls_are_named_by_what_was_called(slow_paths: ModuleType, tmp_path: Path) -> None:
    """A Python class made and an enum member read through ``EnumType``'s hook both take the
    generic call path, named as a class and as a method-wrapper."""
    counts = _counted(slow_paths, "calls", tmp_path)
    assert counts.get("class Point", 0) >= ROUNDS
    if sys.version_info < (3, 12):  # the hook ADR 49 drops in Pigeon's processes
        assert counts.get("method-wrapper EnumType.__getattribute__", 0) >= ROUNDS


def test_report_gives_counts_per_message_most_frequent_first(slow_paths: ModuleType) -> None:
    """The report divides each count by the delivered messages, keeping the order."""
    counted = [
        slow_paths.Counted("serve", [(300, "class Point", "f (a.py):3"), (100, "builtin max", "")]),
        slow_paths.Counted("worker 1", [(50, "GeneratorExit", "")]),
    ]
    text = slow_paths.report("calls", counted, 100, 10)
    assert "serve: 4.00 calls per message" in text
    assert "worker 1: 0.50 calls per message" in text
    rows = table_rows(text)
    assert ["3.000", "`class Point`", "f (a.py):3"] in rows
    assert rows.index(["3.000", "`class Point`", "f (a.py):3"]) < rows.index(
        ["1.000", "`builtin max`", ""]
    )


@pytest.mark.slow
@needs_gdb
def test_counts_the_running_gateway_per_delivered_message() -> None:
    """The whole script: scenario c's harness runs, gdb counts ``serve`` and its worker until
    they stop, and each gets a table of the function objects it made per delivered message.
    (Enough messages that the load still runs when gdb attaches, three seconds after the
    worker starts: a fast machine sends a few hundred in less. Functions, not calls: each
    message stops the processes at fewer breakpoints, so the run takes a third of the time;
    the calls' naming is proven on a known program above.)"""
    done = run_bench("slow_paths.py", *("--count", "functions", "--messages", "6000"), timeout=900)
    assert "serve:" in done.stdout
    assert "worker 1:" in done.stdout
    rows = [row for row in table_rows(done.stdout) if row[0] != "per message"]
    # Comprehensions, at least: each makes a function object in 3.11, named by its file.
    assert any(row[1].startswith("`function <listcomp> (") for row in rows)
    assert "command: python bench/slow_paths.py" in done.stdout
