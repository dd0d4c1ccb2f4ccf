"""The worker processes' reports: written to files, read by ``serve`` for its metrics (kept
when a worker dies and its replacement counts from zero), for the links they hold, and to
share the carriers' throughput caps among them."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from pigeon.connectors.pacing import TokenBucket
from pigeon.telemetry import Snapshot, merge_snapshots
from pigeon.worker_reports import STALE_AFTER_SECONDS, WorkerReport, WorkerReports

STATUS = "pigeon_message_status_changes"


def _report(folder: Path, pid: int, delivered: float, links: dict[str, bool] | None = None) -> Path:
    """A report as worker ``pid`` writes it."""
    metrics = {STATUS: [[["delivered", "otp", "sim"], delivered]]}
    path = folder / f"worker-{pid}.json"
    path.write_text(json.dumps({"pid": pid, "metrics": metrics, "links": links or {}}))
    return path


def _delivered(snapshots: list[Snapshot]) -> float:
    merged = merge_snapshots(snapshots).get(STATUS, [])
    return sum(value for labels, value in merged if labels[0] == "delivered")


def test_a_report_written_is_read_back(tmp_path: Path) -> None:
    """``WorkerReport.write`` replaces the process's file with its metrics and links now, and
    ``WorkerReports`` returns them while the process lives."""
    taken: Snapshot = {STATUS: [[["sent", "marketing", "sim"], 3.0]]}
    links = {"carrier-a": False}
    report = WorkerReport(tmp_path, links=lambda: links, metrics=lambda: taken)
    report.write()
    taken = {STATUS: [[["sent", "marketing", "sim"], 4.0]]}
    links = {"carrier-a": True}
    report.write()
    assert [path.name for path in tmp_path.iterdir()] == [report.path.name]
    reports = WorkerReports(tmp_path, alive=lambda pid: True)
    assert merge_snapshots(reports()) == {STATUS: [[["sent", "marketing", "sim"], 4.0]]}
    assert reports.link_ready("carrier-a")
    assert not reports.link_ready("carrier-b")


def test_a_dead_workers_counts_are_kept_and_its_file_removed(tmp_path: Path) -> None:
    """When a worker has died, its last counts stay in the sums after its file is deleted,
    and its replacement's counts are added to them."""
    living = {101}
    reports = WorkerReports(tmp_path, alive=lambda pid: pid in living)
    _report(tmp_path, 101, 40)
    assert _delivered(reports()) == 40

    living = {202}  # 101 was killed; 202 replaces it and starts from zero
    _report(tmp_path, 202, 3)
    assert _delivered(reports()) == 43
    assert not (tmp_path / "worker-101.json").exists()
    _report(tmp_path, 202, 40)
    assert _delivered(reports()) == 80


def test_a_link_counts_as_ready_only_from_a_live_recent_report(tmp_path: Path) -> None:
    """A link is ready while some live worker's report says so and is recent; a dead
    worker's or a stale report says nothing."""
    now = time.time()
    living = {1, 2}
    reports = WorkerReports(tmp_path, alive=lambda pid: pid in living, clock=lambda: now)
    _report(tmp_path, 1, 0, {"carrier-a": True, "carrier-b": False})
    stale = _report(tmp_path, 2, 0, {"carrier-b": True})
    os.utime(stale, (now - STALE_AFTER_SECONDS - 1, now - STALE_AFTER_SECONDS - 1))
    assert reports.link_ready("carrier-a")
    assert not reports.link_ready("carrier-b")

    living = {2}
    now += 1  # past the reading interval: read again
    assert not reports.link_ready("carrier-a")


def test_unreadable_reports_and_a_missing_folder_count_nothing(tmp_path: Path) -> None:
    """A file that is not a report is skipped, and a folder that is gone gives no snapshot."""
    (tmp_path / "worker-1.json").write_text("{not json")
    (tmp_path / "worker-2.json").write_text(json.dumps({"pid": 2, "metrics": [1, 2]}))
    _report(tmp_path, 3, 5)
    assert _delivered(WorkerReports(tmp_path, alive=lambda pid: True)()) == 5
    gone = WorkerReports(tmp_path / "gone")
    assert _delivered(gone()) == 0
    assert not gone.link_ready("carrier-a")


async def test_a_running_report_writes_a_last_one_when_stopped(tmp_path: Path) -> None:
    """``run`` writes at once, then every interval, and once more when stopped, so the counts
    made just before stopping are in the file."""
    counts = {"delivered": 1.0}
    report = WorkerReport(
        tmp_path,
        interval=3600,
        metrics=lambda: {STATUS: [[["delivered", "otp", "sim"], counts["delivered"]]]},
    )
    stop = asyncio.Event()
    running = asyncio.create_task(report.run(stop))
    await asyncio.sleep(0.05)
    assert _delivered(WorkerReports(tmp_path, alive=lambda pid: True)()) == 1
    counts["delivered"] = 9.0
    stop.set()
    await asyncio.wait_for(running, 5)
    assert _delivered(WorkerReports(tmp_path, alive=lambda pid: True)()) == 9


def test_serve_shares_each_cap_by_use_and_the_workers_take_up_their_parts(
    tmp_path: Path,
) -> None:
    """Each worker reports how it used its pacer; serve shares the cap from the reports;
    at their next report the workers pace at their parts, which add up to the cap."""
    now = [1000.0]
    regular = TokenBucket(250, cap=500)
    otp = TokenBucket(250, cap=500)
    workers = [
        WorkerReport(tmp_path, pacers=lambda: {"carrier-a": regular}, clock=lambda: now[0], pid=11),
        WorkerReport(tmp_path, pacers=lambda: {"carrier-a": otp}, clock=lambda: now[0], pid=12),
    ]
    for worker in workers:
        worker.write()
    regular.taken, regular.waits = 250, 100  # a second of marketing, waiting for tokens
    now[0] += 1
    for worker in workers:
        worker.write()

    reports = WorkerReports(tmp_path, alive=lambda pid: pid in (11, 12))
    parts = reports.share_pacing()["carrier-a"]
    assert parts["12"] == pytest.approx(25)  # the idle OTP worker keeps its floor
    assert parts["11"] == pytest.approx(250)  # grows once the OTP worker has let go

    for worker in workers:
        worker.write()
    assert (regular.rate, otp.rate) == (pytest.approx(250), pytest.approx(25))
    regular.waits += 1  # still waiting
    now[0] += 1
    for worker in workers:
        worker.write()
    assert reports.share_pacing()["carrier-a"]["11"] == pytest.approx(475)
    for worker in workers:
        worker.write()
    assert (regular.rate, otp.rate) == (pytest.approx(475), pytest.approx(25))
    assert regular.rate + otp.rate == pytest.approx(regular.cap)


def test_a_worker_without_a_part_yet_keeps_its_rate(tmp_path: Path) -> None:
    """Before serve shares anything, or for a carrier it has not shared yet, a worker paces
    as it started."""
    pacer = TokenBucket(100, cap=200)
    WorkerReport(tmp_path, pacers=lambda: {"carrier-a": pacer}).write()
    assert pacer.rate == 100
    (tmp_path / "pacing.json").write_text(json.dumps({"rates": {"carrier-b": {"1": 5}}}))
    WorkerReport(tmp_path, pacers=lambda: {"carrier-a": pacer}).write()
    assert pacer.rate == 100
