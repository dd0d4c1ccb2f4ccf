"""``bench/row_building.py``: the store's hot rows timed, and two trees' rows compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bench" / "row_building.py")


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *arguments],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_each_kind_of_row_is_timed_and_shown() -> None:
    """Every kind of row gets a positive time per row, and the rows it made are reported."""
    completed = _run("--number", "200", "--repeat", "2", "--json")
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    for kind in ("message_update", "event", "job"):
        assert results[kind] > 0
        assert "msg_01JD3" in results["rows"][kind] or "evt_01JD3" in results["rows"][kind]


def test_compare_finds_this_tree_equal_to_itself() -> None:
    """Compared with its own source, the tree makes equal rows and says so."""
    completed = _run("--number", "200", "--repeat", "2", "--compare", str(ROOT / "src"))
    assert completed.returncode == 0, completed.stderr
    assert "| message_update |" in completed.stdout
    assert "the rows made by both trees are equal" in completed.stdout
