"""``bench/alternate.py``: trees run end to end in alternation and compared pair by pair."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bench" / "alternate.py")


def _run(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *arguments],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_two_trees_alternate_and_the_second_is_compared_with_the_first() -> None:
    """Each tree runs once per round, in order, and the table compares the second with the
    first over the rounds' pairs, with positive figures from the runs' own measurements."""
    source = str(ROOT / "src")
    completed = _run(
        "--tree", f"first={source}", "--tree", f"second={source}", "--rounds", "2",
        "--messages", "300",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    runs = [line for line in completed.stdout.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in runs] == [
        "round 1 first",
        "round 1 second",
        "round 2 first",
        "round 2 second",
    ]
    for line in runs:
        rate = float(line.split(": ")[1].split(" callbacks/s")[0].replace(",", ""))
        cpu = float(line.split("the gateway ")[1].split(" ms")[0])
        assert rate > 0
        assert cpu > 0
    row = next(line for line in completed.stdout.splitlines() if line.startswith("| second |"))
    assert row.split("|")[2].strip() == "2"  # two pairs


def test_a_tree_that_is_not_label_and_place_is_refused() -> None:
    """A tree given without its label, or a directory with no ``pigeon`` package, is refused
    with a message before anything runs."""
    unlabelled = _run("--tree", str(ROOT / "src"), "--tree", "b=src", timeout=60)
    assert unlabelled.returncode != 0
    assert "LABEL=DIR or LABEL=@REV" in unlabelled.stderr
    empty = _run("--tree", f"a={ROOT / 'docs'}", "--tree", f"b={ROOT / 'src'}", timeout=60)
    assert empty.returncode != 0
    assert "holds no pigeon package" in empty.stderr


def test_a_revision_that_does_not_exist_is_refused() -> None:
    """``@REV`` naming no revision of the repository stops with git's reason."""
    completed = _run("--tree", "a=@no-such-revision", "--tree", f"b={ROOT / 'src'}", timeout=60)
    assert completed.returncode != 0
    assert "git archive no-such-revision" in completed.stderr


def _bench_databases() -> set[str]:
    url = os.environ.get("PIGEON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

    async def names() -> set[str]:
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'pigeon_bench_%'"
            )
        finally:
            await connection.close()
        return {str(row["datname"]) for row in rows}

    return asyncio.run(names())


def test_postgresql_runs_each_get_a_new_database_dropped_after() -> None:
    """With ``--database postgresql`` every run completes on a database of its own, and none
    of them is left on the server afterwards."""
    before = _bench_databases()
    source = str(ROOT / "src")
    completed = _run(
        "--tree", f"first={source}", "--tree", f"second={source}", "--rounds", "1",
        "--messages", "300", "--database", "postgresql",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    runs = [line for line in completed.stdout.splitlines() if line.startswith("round ")]
    assert len(runs) == 2
    assert _bench_databases() <= before
