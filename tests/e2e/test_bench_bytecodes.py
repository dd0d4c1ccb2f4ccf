"""``bench/bytecodes.py``: the bytecodes a traced process executes, per function and per
message, and the records it makes. No count is asserted but what a known program makes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from support.bench import ROOT, bench_module, run_bench, table_rows

#: A program whose calls are known: ``ROUNDS`` of one function and one record each.
ROUNDS = 40
_PROGRAM = textwrap.dedent(
    f"""
    from dataclasses import dataclass

    @dataclass
    class Pair:
        left: int
        right: int

    def add(a, b):
        total = a + b
        return total

    for n in range({ROUNDS}):
        add(n, 1)
        Pair(n, n)
    """
)


@pytest.fixture(scope="module")
def bytecodes() -> ModuleType:
    """The script as a module."""
    return bench_module("bytecodes")


def test_the_tracer_counts_each_functions_bytecodes_calls_and_records(tmp_path: Path) -> None:
    """A traced program's function is counted once per call with the same bytecodes each
    time, and the dataclass it makes is counted by class."""
    program = tmp_path / "program.py"
    program.write_text(_PROGRAM)
    out = tmp_path / "counts.pickle"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bytecodes.py"),
            "--traced",
            str(out),
            "--",
            str(program),
        ],
        capture_output=True,
        timeout=300,
        check=True,
    )
    with out.open("rb") as read:
        counts = pickle.load(read)  # noqa: S301 - the tool's own output
    (add,) = [value for key, value in counts.items() if key[2] == "add"]
    assert add[1] == ROUNDS
    assert add[0] > 0
    assert add[0] % ROUNDS == 0
    records = {key[2]: value[1] for key, value in counts.items() if key[0] == "<record>"}
    assert records == {"__main__.Pair": ROUNDS}


def test_a_harness_process_whose_command_matches_traces_itself(
    bytecodes: ModuleType, tmp_path: Path
) -> None:
    """With the tool's ``sitecustomize`` on the path, a process started as ``-m <module>
    <command>`` (as ``-m pigeon serve``) writes its counts when it ends, and a process started
    otherwise writes none."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(bytecodes.SITE_CUSTOMIZE)
    (site / "job.py").write_text(_PROGRAM)
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "PIGEON_BYTECODES_COMMAND": "go",
        "PIGEON_BYTECODES_BENCH": str(ROOT / "bench"),
        "PIGEON_BYTECODES_OUT": str(out),
    }
    subprocess.run([sys.executable, "-m", "job", "stay"], env=env, cwd=site, check=True)
    assert not list(out.glob("*.pickle"))
    subprocess.run(
        [sys.executable, "-m", "job", "go"], env=env, cwd=site, capture_output=True, check=True
    )
    (written,) = out.glob("*.pickle")
    with written.open("rb") as read:
        counts = pickle.load(read)  # noqa: S301 - the tool's own output
    (add,) = [value for key, value in counts.items() if key[2] == "add"]
    assert add[1] == ROUNDS


def test_difference_and_report_are_per_message(bytecodes: ModuleType) -> None:
    """The larger run's excess over the smaller, per added message, is what the report gives,
    most executed first, with the records made and a second tree's movements."""
    f = ("/x/src/pigeon/a.py", 3, "f")
    g = ("/x/src/pigeon/b.py", 9, "g")
    record = ("<record>", 0, "pigeon.ports.NewJob")
    small = {f: (1_000, 10), g: (500, 50), record: (0, 5)}
    large = {f: (3_000, 30), g: (700, 70), record: (0, 25)}
    base = bytecodes.Counted("base", bytecodes.difference(small, large, 10))
    f, g = ("pigeon/a.py", 0, "f"), ("pigeon/b.py", 0, "g")  # keyed alike in every tree
    assert base.per_message[f] == (200.0, 2.0)
    assert base.bytecodes == 220.0
    other = bytecodes.Counted("this", {f: (100.0, 2.0), g: (20.0, 2.0), record: (0.0, 2.0)})
    text = bytecodes.report([base, other], 5)
    rows = table_rows(text)
    assert ["base", "220", "1.0000"] in rows
    assert ["this", "120", "0.5455"] in rows
    assert ["200.0", "90.9%", "2.00", "`f (pigeon/a.py)`"] in rows
    assert "records made per message: pigeon.ports.NewJob 2.00" in text
    assert "-    -100.0  f (pigeon/a.py)" in text


@pytest.mark.slow
def test_counts_the_worker_fast_loop_per_message() -> None:
    """The whole script on the fast loop: the status changes' own functions are counted at
    the rate each message calls them."""
    done = run_bench("bytecodes.py", "--messages", "60", "--more", "60", "--top", "400")
    rows = {row[3]: row for row in table_rows(done.stdout) if len(row) == 4}
    record = [row for name, row in rows.items() if name.startswith("`EventRecorder.record (")]
    assert record, done.stdout
    assert float(record[0][2]) == pytest.approx(2.0, abs=0.1)  # the sent and delivered changes
    assert "pigeon.domain.messages.StatusChange" in done.stdout
