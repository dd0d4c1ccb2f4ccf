"""``bench/status_changes.py``: the worker's status changes run for real and are counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_every_message_is_sent_and_delivered_and_its_cpu_reported(database: str) -> None:
    """Each message goes through dispatch and its receipt: it ends delivered with its one
    ``message.delivered`` webhook job, and both phases report a CPU cost per message, the
    part of it spent in the store's plans, the part of those in the changes' own logic (and
    on PostgreSQL the server's backends' too)."""
    script = str(ROOT / "bench" / "status_changes.py")
    # The backends' CPU is read in clock ticks (10 ms): enough messages that each phase
    # spends several (300 spent about one, and at times none, on a fast machine).
    messages = 2000 if database == "postgresql" else 300
    completed = subprocess.run(
        [sys.executable, script, "--messages", str(messages), "--database", database, "--json"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["delivered"] == messages
    assert results["webhook_jobs"] == messages
    assert results["dispatch_sent"] > 0
    assert results["receipt_delivered"] > 0
    for phase in ("dispatch_sent", "receipt_delivered"):  # the plans are a part of the phase
        assert 0 < results[f"{phase}_plan"] < results[phase]
        # The callbacks run inside the plans; the store's machinery around them costs too.
        assert 0 < results[f"{phase}_logic"] < results[f"{phase}_plan"]
    if database == "postgresql":  # the server's backends did the SQL work: their CPU counts
        assert results["dispatch_sent_server"] > 0
        assert results["receipt_delivered_server"] > 0


def test_a_tree_that_delivers_less_is_flagged_in_a_comparison() -> None:
    """``--compare`` warns about a tree whose runs left messages undelivered (a broken
    probe costs less because it does less), and about none when every run delivered all."""
    short_runs = bench_module("status_changes").short_runs
    whole = {"delivered": 300.0, "webhook_jobs": 300.0}
    found = {"before": [whole, {"delivered": 120.0, "webhook_jobs": 120.0}], "after": [whole]}
    warnings = short_runs(found, 300)
    assert len(warnings) == 1
    assert warnings[0].startswith("WARNING: before delivered 120 of 300")
    assert short_runs({"before": [whole], "after": [whole]}, 300) == []
