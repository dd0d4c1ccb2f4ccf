"""``bench/statement_costs.py``: the fast loop's SQL recorded and replayed by statement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]


def test_the_rows_of_each_message_are_replayed_and_a_dropped_index_compared() -> None:
    """Every kind of row the loop writes shows up with its rows per message (three events,
    two updates of the message), each COMMIT's pages are counted, and a variant without an
    index is replayed beside the recording as it is."""
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "statement_costs.py"),
            "--messages",
            "300",
            "--rounds",
            "1",
            "--without",
            "ix_events_message_id",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {
        cells[0]: cells[1:]
        for line in completed.stdout.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    assert rows["INSERT events"][0] == "3.00"
    assert rows["UPDATE messages"][0] == "2.00"
    assert rows["INSERT messages"][0] == "1.00"
    for name in ("INSERT events", "UPDATE messages", "INSERT messages"):
        per_row, per_message = (float(x) for x in rows[name][1].split(", "))
        assert per_row > 0
        assert per_message > 0
    commit = next(cells for name, cells in rows.items() if name.startswith("(transactions"))
    assert "pages per message" in commit[1]
    assert float(commit[1].split(", ")[1].split()[0]) > 0  # the COMMITs wrote pages
    assert "without ix_events_message_id / as is" in completed.stdout


def test_a_statement_is_named_by_its_verb_and_table() -> None:
    """Upserts, inserts that skip conflicts, updates, deletes and selects are told apart."""
    kind = bench_module("statement_costs").kind
    upsert = 'INSERT INTO "parts" ("a") VALUES (?) ON CONFLICT ("a") DO UPDATE SET "a" = 1'
    assert kind(upsert) == "UPSERT parts"
    assert kind('INSERT INTO "jobs" ("id") VALUES (?) ON CONFLICT DO NOTHING') == "INSERT jobs"
    assert kind('UPDATE "messages" SET "status" = ?2 WHERE "id" = ?1') == "UPDATE messages"
    assert kind("DELETE FROM jobs WHERE id IN (?, ?)") == "DELETE jobs"
    assert kind("SELECT messages.id\nFROM messages WHERE id = ?") == "SELECT messages"
