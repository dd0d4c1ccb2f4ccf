"""``bench/instructions.py``: the worker's fast loop, or ``serve``'s REST accept, under valgrind,
instructions per message by the difference of two runs, for one tree or several. No count is
asserted but its sign."""

from __future__ import annotations

import shutil
from types import ModuleType

import pytest

from support.bench import ROOT, bench_module, run_bench, table_rows


@pytest.fixture(scope="module")
def instructions() -> ModuleType:
    """The script as a module."""
    return bench_module("instructions")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_the_instructions_of_two_runs_and_their_difference_per_message() -> None:
    """A tree's larger run executes more instructions than its smaller one, and the count per
    message is their difference over the messages added; ``--functions`` adds the C functions
    that did the most of it, the interpreter's loop among them."""
    done = run_bench(
        "instructions.py",
        *("--tree", f"this={ROOT / 'src'}", "--messages", "40", "--more", "60"),
        *("--functions", "5"),
        timeout=600,
    )
    counts, functions = done.stdout.split("this, by C function:")
    top = table_rows(functions)[1:]
    assert len(top) == 5
    assert any("_PyEval_EvalFrameDefault" in name for _, name in top)
    assert all(int(value.replace(",", "")) > 0 for value, _ in top)
    (row,) = table_rows(counts)[1:]
    small, large, per_message = (int(cell.replace(",", "")) for cell in row[1:4])
    assert row[0] == "this"
    assert large > small > 0
    assert per_message == pytest.approx((large - small) / 60, abs=1)
    assert row[4] == "1.0000"
    assert "command: python bench/instructions.py" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_serves_accept_by_the_sends_it_answered() -> None:
    """``--path accept`` runs ``serve`` under valgrind twice, answering every send of each run
    (the script stops otherwise; here sends to every region's numbers, each with a key of its
    own), and reports the difference per send."""
    done = run_bench(
        "instructions.py",
        *("--path", "accept", "--messages", "20", "--more", "30", "--concurrency", "4"),
        *("--recipients", "every-region", "--idempotency-keys"),
        timeout=900,
    )
    assert "serve's REST accept:" in done.stdout
    (row,) = table_rows(done.stdout)[1:]
    small, large, per_message = (int(cell.replace(",", "")) for cell in row[1:4])
    assert large > small > 0
    assert per_message == pytest.approx((large - small) / 30, abs=1)


def test_accept_sends_are_limited_to_numbers_of_their_own(instructions: ModuleType) -> None:
    """``--path accept`` refuses more sends than it has distinct recipients for."""
    with pytest.raises(SystemExit):
        instructions.main(["--path", "accept", "--messages", "5000", "--more", "5001"])


def test_each_tree_is_reported_against_the_first(instructions: ModuleType) -> None:
    """A tree that executes 1.1M instructions per message against a first of 1.0M is 1.1000."""
    counted = [
        instructions.Counted("base", 5_000, 2_005_000, 1_000_000.0),
        instructions.Counted("probe", 5_000, 2_205_000, 1_100_000.0),
    ]
    rows = table_rows(instructions.report(counted, 2))
    assert rows[1] == ["base", "5,000", "2,005,000", "1,000,000", "1.0000"]
    assert rows[2] == ["probe", "5,000", "2,205,000", "1,100,000", "1.1000"]


def test_the_c_functions_of_each_tree_follow_the_table(instructions: ModuleType) -> None:
    """A tree counted with ``--functions`` gets a table of its own after the counts: the
    instructions per message of each function, rounded, in the order counted."""
    counted = [
        instructions.Counted(
            "base", 5_000, 2_005_000, 1_000_000.0, ((600_000.4, "???:_PyEval"), (2_000.6, "x:y"))
        )
    ]
    report = instructions.report(counted, 2)
    assert "base, by C function:" in report
    rows = table_rows(report.split("by C function:")[1])
    assert rows[1:] == [["600,000", "`???:_PyEval`"], ["2,001", "`x:y`"]]
