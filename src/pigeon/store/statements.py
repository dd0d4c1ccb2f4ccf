"""Small SQL building blocks that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.ports import NewJob
from pigeon.store.tables import jobs


def one_of(column: sa.ColumnElement[Any], values: Collection[Any], dialect: str) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``, one statement whatever
    the number of values (so the prepared-statement cache is not churned by list lengths)."""
    if dialect == "postgresql":
        array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column == sa.any_(array)
    return column.in_(list(values))


def upsert(table: sa.Table, dialect: str, keys: Sequence[str], update: Sequence[str]) -> sa.Insert:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET`` the ``update`` columns."""
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=list(keys), set_={name: pg.excluded[name] for name in update}
        )
    lite = sqlite.insert(table)
    return lite.on_conflict_do_update(
        index_elements=list(keys), set_={name: lite.excluded[name] for name in update}
    )


def insert_ignoring_duplicates(table: sa.Table, dialect: str) -> sa.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: rows whose key exists are skipped."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def job_row(job: NewJob, now: datetime) -> dict[str, Any]:
    """The ``jobs`` row for a new job; due jobs are ``ready`` at once (see ``pigeon.queue``)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "payload": job.payload,
        "priority": job.priority,
        "run_at": job.run_at,
        "ready": job.run_at <= now,
        "attempts": 0,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
        "created_at": now,
    }


async def insert_jobs(
    connection: AsyncConnection, dialect: str, new_jobs: Sequence[NewJob], now: datetime
) -> None:
    """Enqueue ``new_jobs`` in the current transaction; ids already present are ignored."""
    if new_jobs:
        rows = [job_row(job, now) for job in new_jobs]
        await connection.execute(insert_ignoring_duplicates(jobs, dialect), rows)


async def execute_many(
    connection: AsyncConnection, statement: sa.Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run ``statement`` once per row (executemany); nothing when ``rows`` is empty."""
    if rows:
        await connection.execute(statement, list(rows))


def rowcount(result: CursorResult[Any]) -> int:
    """Rows touched by an UPDATE or DELETE."""
    return int(result.rowcount)
