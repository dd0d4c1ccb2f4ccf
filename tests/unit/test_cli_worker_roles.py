"""What ``serve`` tells each worker process it starts: its lane, kinds and writer tasks."""

from __future__ import annotations

from pathlib import Path

from pigeon.cli import URGENT_JOB_KINDS, worker_roles
from pigeon.config import load_settings


def test_regular_workers_write_one_transaction_at_a_time_and_otp_workers_four(
    tmp_path: Path,
) -> None:
    """Two regular workers take the regular lane with one writer transaction at a time; the
    OTP worker takes the urgent lane's dispatches with serve's four."""
    settings = load_settings(
        {"PIGEON_CONFIG": str(tmp_path / "absent.toml"), "PIGEON_WORKER_PROCESSES": "2"}
    )

    roles = worker_roles(settings)

    assert [role["PIGEON_JOB_LANE"] for role in roles] == ["regular", "regular", "urgent"]
    assert [role["PIGEON_WRITER_TASKS"] for role in roles] == ["1", "1", "4"]
    assert roles[2]["PIGEON_JOB_KINDS"] == URGENT_JOB_KINDS
    assert "PIGEON_JOB_KINDS" not in roles[0]


def test_without_otp_workers_the_workers_take_every_lane_with_serves_writer_tasks(
    tmp_path: Path,
) -> None:
    """With no OTP worker the workers send OTPs too, so their claims keep serve's four writer
    transactions at once."""
    settings = load_settings(
        {
            "PIGEON_CONFIG": str(tmp_path / "absent.toml"),
            "PIGEON_WORKER_PROCESSES": "1",
            "PIGEON_WORKER_URGENT_PROCESSES": "0",
        }
    )

    assert worker_roles(settings) == [{"PIGEON_JOB_LANE": "all", "PIGEON_WRITER_TASKS": "4"}]
