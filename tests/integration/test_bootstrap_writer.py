"""The gateway's group-commit writer as ``open_gateway`` sets it up from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pigeon.bootstrap import open_gateway
from pigeon.config import Settings


@pytest.mark.parametrize(("writer_tasks", "expected"), [(0, 4), (1, 1)])
async def test_the_gateways_writer_runs_the_transactions_at_once_it_is_set_to(
    tmp_path: Path, database_url: str, writer_tasks: int, expected: int
) -> None:
    """On PostgreSQL the writer runs ``writer_tasks`` transactions at once (0: 4, ``serve``'s
    default; a regular worker is started with 1); SQLite's writer always runs one."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        run_smpp=False,
        run_workers=False,
        writer_tasks=writer_tasks,
    )
    gateway = await open_gateway(settings)
    try:
        sqlite = database_url.startswith("sqlite")
        assert gateway.database.writer.task_count == (1 if sqlite else expected)
    finally:
        await gateway.close()


@pytest.mark.parametrize(
    ("job_lane", "job_kinds", "background"),
    [
        ("regular", "", True),  # a regular worker beside OTP workers
        ("all", "webhook,notify", True),  # serve beside its workers
        ("urgent", "dispatch", False),  # an OTP worker
        ("all", "", False),  # serve alone, or a worker without OTP workers: it takes OTPs
    ],
)
async def test_the_wal_syncs_are_background_work_where_no_otp_is_claimed(
    tmp_path: Path, job_lane: str, job_kinds: str, background: bool
) -> None:
    """A process syncs its WAL through a batch task (ADR 52) unless its runner claims OTPs,
    whose claims wait for those syncs."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'pigeon.db'}",
        run_smpp=False,
        run_workers=False,
        job_lane=job_lane,
        job_kinds=job_kinds,
    )
    gateway = await open_gateway(settings)
    try:
        assert gateway.database.writer.background_syncs is background
    finally:
        await gateway.close()
