"""The worker processes' metric reports: written to files, read and summed by ``serve``, and
kept when a worker dies and its replacement counts from zero."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pigeon.process_metrics import MetricsReport, PeerMetrics
from pigeon.telemetry import Snapshot, merge_snapshots

STATUS = "pigeon_message_status_changes"


def _report(folder: Path, pid: int, delivered: float) -> None:
    """A report as worker ``pid`` writes it."""
    metrics = {STATUS: [[["delivered", "otp", "sim"], delivered]]}
    (folder / f"worker-{pid}.json").write_text(json.dumps({"pid": pid, "metrics": metrics}))


def _delivered(snapshots: list[Snapshot]) -> float:
    merged = merge_snapshots(snapshots).get(STATUS, [])
    return sum(value for labels, value in merged if labels[0] == "delivered")


def test_a_report_written_is_read_back_by_the_peer_reader(tmp_path: Path) -> None:
    """``MetricsReport.write`` replaces the process's file with what ``take`` gives, and
    ``PeerMetrics`` returns it while the process lives."""
    taken: Snapshot = {STATUS: [[["sent", "marketing", "sim"], 3.0]]}
    report = MetricsReport(tmp_path, take=lambda: taken)
    report.write()
    taken = {STATUS: [[["sent", "marketing", "sim"], 4.0]]}
    report.write()
    assert [path.name for path in tmp_path.iterdir()] == [report.path.name]
    peers = PeerMetrics(tmp_path, alive=lambda pid: True)
    assert merge_snapshots(peers()) == {STATUS: [[["sent", "marketing", "sim"], 4.0]]}


def test_a_dead_workers_counts_are_kept_and_its_file_removed(tmp_path: Path) -> None:
    """When a worker has died, its last counts stay in the sums after its file is deleted,
    and its replacement's counts are added to them."""
    living = {101}
    peers = PeerMetrics(tmp_path, alive=lambda pid: pid in living)
    _report(tmp_path, 101, 40)
    assert _delivered(peers()) == 40

    living = {202}  # 101 was killed; 202 replaces it and starts from zero
    _report(tmp_path, 202, 3)
    assert _delivered(peers()) == 43
    assert not (tmp_path / "worker-101.json").exists()
    _report(tmp_path, 202, 40)
    assert _delivered(peers()) == 80


def test_unreadable_reports_and_a_missing_folder_count_nothing(tmp_path: Path) -> None:
    """A file that is not a report is skipped, and a folder that is gone gives no snapshot."""
    (tmp_path / "worker-1.json").write_text("{not json")
    (tmp_path / "worker-2.json").write_text(json.dumps({"pid": 2, "metrics": [1, 2]}))
    _report(tmp_path, 3, 5)
    assert _delivered(PeerMetrics(tmp_path, alive=lambda pid: True)()) == 5
    assert _delivered(PeerMetrics(tmp_path / "gone")()) == 0


async def test_a_running_report_writes_a_last_snapshot_when_stopped(tmp_path: Path) -> None:
    """``run`` writes at once, then every interval, and once more when stopped, so the counts
    made just before stopping are in the file."""
    counts = {"delivered": 1.0}
    report = MetricsReport(
        tmp_path,
        interval=3600,
        take=lambda: {STATUS: [[["delivered", "otp", "sim"], counts["delivered"]]]},
    )
    stop = asyncio.Event()
    running = asyncio.create_task(report.run(stop))
    await asyncio.sleep(0.05)
    assert _delivered(PeerMetrics(tmp_path, alive=lambda pid: True)()) == 1
    counts["delivered"] = 9.0
    stop.set()
    await asyncio.wait_for(running, 5)
    assert _delivered(PeerMetrics(tmp_path, alive=lambda pid: True)()) == 9
