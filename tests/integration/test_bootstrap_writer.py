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
