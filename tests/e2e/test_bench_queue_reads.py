"""``bench/queue_reads.py``: the queue's readiness probe and count timed behind a backlog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_probe_and_count_are_timed_on_each_database_with_jit_compared() -> None:
    """Each database gets a row with the probe and the count timed; PostgreSQL's also has the
    count with JIT on and off."""
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "queue_reads.py"),
            "--backlog",
            "300",
            "--repeat",
            "2",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:3] == ["database", "probe", "pending"]
    rows = {
        cells[0]: cells[1:]
        for line in lines[1:]
        if (cells := [cell.strip() for cell in line.strip("|").split("|")])
    }
    assert float(rows["sqlite"][0]) > 0
    assert float(rows["sqlite"][1]) > 0
    if "postgresql" in rows:  # skipped (and said on stderr) only when the server is down
        assert header[3:] == ["count, jit on", "count, jit off"]
        assert all(float(cell) > 0 for cell in rows["postgresql"])
    else:
        assert "PostgreSQL skipped" in completed.stderr
    assert "with 300 jobs queued" in completed.stdout
