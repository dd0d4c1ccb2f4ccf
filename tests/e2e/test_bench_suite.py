"""``bench/suite.py`` (what ``make bench`` runs), tiny and on SQLite only: it runs, it measures
what went through, and it writes every field of its JSON result. No timing is asserted."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {
    "scenario",
    "name",
    "database",
    "messages",
    "seconds",
    "msg_per_s",
    "p50_ms",
    "p99_ms",
    "peak_rss_mb",
    "errors",
    "extra",
    "skipped",
}


def _run_suite(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``bench/suite.py ARGS --output FILE`` from ``tmp_path`` without PIGEON_ settings: the
    finished run (it exited 0) and its JSON result."""
    output = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIGEON_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "suite.py"), *args, "--output", str(output)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        # Each scenario starts with os.sync(), which waits for whatever else writes the disk.
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(output.read_text())


@pytest.mark.slow
def test_quick_suite_measures_rest_accept_and_end_to_end_on_sqlite(tmp_path: Path) -> None:
    """A tiny --quick run of scenarios a and c exits 0 and records delivered webhooks."""
    done, document = _run_suite(
        tmp_path,
        *("--quick", "--scenarios", "a,c", "--databases", "sqlite", "--no-kannel"),
        *("--seconds", "1", "--messages", "100", "--offered-rate", "100"),
        *("--concurrency", "8"),
    )
    assert {"command", "machine", "config", "results", "kannel_ratio", "targets"} <= set(document)
    assert {"cpu", "cores", "python", "sqlite"} <= set(document["machine"])
    rows = {(row["scenario"], row["database"]): row for row in document["results"]}
    for row in rows.values():
        assert set(row) == FIELDS
    accept = rows[("a", "sqlite")]
    assert accept["messages"] > 0
    assert accept["msg_per_s"] > 0
    assert accept["peak_rss_mb"] > 0
    assert accept["extra"]["paced_accepted_per_s"] > 0
    end_to_end = rows[("c", "sqlite")]
    assert end_to_end["messages"] == 100  # delivered webhooks, one per message
    assert end_to_end["extra"]["submits"] == 100
    assert end_to_end["errors"] == 0
    assert rows[("c", "-")]["skipped"] == "--no-kannel"
    assert "| c: end to end, Pigeon | sqlite | 100 |" in done.stdout


KANNEL = all(
    shutil.which(name) or os.access(f"/usr/sbin/{name}", os.X_OK)
    for name in ("bearerbox", "smsbox")
)


@pytest.mark.slow
@pytest.mark.skipif(not KANNEL, reason="Kannel is not installed (apt-get install -y kannel)")
def test_end_to_end_alternates_kannel_and_pigeon_and_reports_the_median_round(
    tmp_path: Path,
) -> None:
    """Scenario c with Kannel runs both gateways and the Python floor once per round and
    reports, per database, their rows of the median round and the median of each ratio; a
    pair at matched durability (ADR 44) is reported apart."""
    _, document = _run_suite(
        tmp_path,
        *("--quick", "--scenarios", "c", "--databases", "sqlite", "--c-rounds", "3"),
        *("--c-matched-rounds", "1"),
        # 600 messages: enough CPU time for Kannel to register above the 10 ms clock tick
        *("--messages", "600", "--concurrency", "8"),
    )
    rows = {row["name"]: row for row in document["results"]}
    kannel, pigeon = rows["end to end, Kannel 1.4.5"], rows["end to end, Pigeon"]
    assert kannel["database"] == pigeon["database"] == "sqlite"
    assert kannel["messages"] == pigeon["messages"] == 600
    rounds = pigeon["extra"]["rounds"]
    assert len(rounds) == 3
    ratios = sorted(r["callbacks_per_s_ratio"] for r in rounds)
    median = rounds[pigeon["extra"]["median_round"] - 1]
    assert median["callbacks_per_s_ratio"] == ratios[1]
    assert median["pigeon_callbacks_per_s"] == pigeon["extra"]["callbacks_per_s"]
    assert median["kannel_callbacks_per_s"] == kannel["extra"]["callbacks_per_s"]
    assert document["kannel_ratio"]["sqlite"]["callbacks_per_s"] == ratios[1]
    assert document["kannel_ratio"]["sqlite"] == pigeon["extra"]["ratio_to_kannel"]
    gateway_ratios = sorted(r["gateway_cpu_ratio"] for r in rounds)
    assert gateway_ratios[0] > 0
    assert pigeon["extra"]["cpu_ratios"]["gateway_cpu_ratio"] == gateway_ratios[1]
    assert all(r["cpu_bound_ratio"] > 0 for r in rounds)
    assert pigeon["extra"]["gateway_cpu_ms_per_message"] > 0
    floor = rows["end to end, Python floor (SQLite, Pigeon's rows and per-message work)"]
    assert floor["messages"] == 600
    assert floor["errors"] == 0
    assert all(r["floor_callbacks_per_s"] > 0 and r["floor_cpu_ms_per_message"] > 0 for r in rounds)
    over_floor = sorted(r["pigeon_cpu_over_floor"] for r in rounds)
    assert floor["extra"]["floor"]["pigeon_cpu_over_floor"] == over_floor[1]
    floor_allowed = sorted(r["floor_cpu_bound_ratio"] for r in rounds)
    assert floor_allowed[0] > 0
    assert floor["extra"]["floor"]["floor_cpu_bound_ratio"] == floor_allowed[1]
    matched = rows["end to end, Pigeon (matched durability)"]
    matched_kannel = rows["end to end, Kannel 1.4.5 (matched durability)"]
    assert matched["messages"] == matched_kannel["messages"] == 600
    assert len(matched["extra"]["rounds"]) == 1
    assert (matched["extra"]["durability"], matched_kannel["extra"]["store"]) == ("matched", "file")
    assert (pigeon["extra"]["durability"], kannel["extra"]["store"]) == ("strict", "none")
    # Without synchronous_commit Pigeon's writers start no WAL sync process (ADR 36).
    assert any(name.startswith("pigeon wal sync") for name in pigeon["extra"]["cpu_share"])
    assert not any(name.startswith("pigeon wal sync") for name in matched["extra"]["cpu_share"])
    by_matched = document["kannel_ratio"]["sqlite, matched durability"]
    assert by_matched == matched["extra"]["ratio_to_kannel"]
    judged = {(t["target"], t["database"]) for t in document["targets"]}
    assert ("end to end >= Kannel (receipt callbacks/s)", "sqlite, matched durability") in judged
    assert ("end to end >= Kannel (receipt callbacks/s)", "sqlite") in judged


@pytest.mark.slow
@pytest.mark.skipif(not KANNEL, reason="Kannel is not installed (apt-get install -y kannel)")
def test_mixed_traffic_runs_both_gateways_and_judges_its_ratio_beside_scenario_c(
    tmp_path: Path,
) -> None:
    """Scenario f sends the realistic mix through Kannel and Pigeon: every message is
    submitted and called back on both (undelivered ones too), and its ratio is reported and
    judged as "sqlite, mixed traffic"."""
    done, document = _run_suite(
        tmp_path,
        *("--quick", "--scenarios", "f", "--databases", "sqlite", "--f-rounds", "1"),
        *("--messages", "400", "--concurrency", "8"),
    )
    rows = {row["name"]: row for row in document["results"]}
    kannel, pigeon = rows["mixed traffic, Kannel 1.4.5"], rows["mixed traffic, Pigeon"]
    for row in (kannel, pigeon):
        assert row["scenario"] == "f"
        assert row["messages"] == 400  # callbacks, delivered or not
        assert row["extra"]["submits"] == 400  # messages, whatever their segments
        assert row["errors"] == 0
        assert "5% UNDELIV" in row["extra"]["mix"]
    assert len(pigeon["extra"]["rounds"]) == 1
    assert document["kannel_ratio"]["sqlite, mixed traffic"] == pigeon["extra"]["ratio_to_kannel"]
    judged = {(t["target"], t["database"]) for t in document["targets"]}
    assert ("end to end >= Kannel (receipt callbacks/s)", "sqlite, mixed traffic") in judged
    assert "| f: mixed traffic, Pigeon | sqlite | 400 |" in done.stdout


@pytest.mark.slow
def test_seed_writes_stored_messages_and_a_backlog_the_schema_reads_back(tmp_path: Path) -> None:
    """``bench/seed.py`` (scenarios d and e) writes every column the schema has: a small
    store and backlog on SQLite, then read back through the store."""
    database = tmp_path / "seed.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIGEON_")}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "seed.py"),
            f"sqlite:///{database}",
            *("--stored", "50", "--backlog", "20", "--chunk", "16"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with sqlite3.connect(database) as connection:
        counts = dict(connection.execute("SELECT status, count(*) FROM messages GROUP BY status"))
    assert counts == {"delivered": 50, "queued": 20}
