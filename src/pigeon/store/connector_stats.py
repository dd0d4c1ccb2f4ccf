"""Per-connector quality figures on SQL: additive per-minute counters (``connector_minutes``).

Each row is one counter of one connector in one minute (see ``pigeon.domain.quality.MinuteKey``).
Writers add to a row's ``count`` with an upsert (``INSERT ... ON CONFLICT DO UPDATE SET count =
count + excluded.count``, the same statement on SQLite and PostgreSQL), so any number of
processes can flush into the same minute without reading first. Reads add rows up by metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.quality import MinuteCounts, MinuteKey
from pigeon.store.database import Database
from pigeon.store.tables import connector_minutes

#: Rows per upsert statement (executemany), to keep statements and locks short.
UPSERT_CHUNK = 500


def minute_time(minute: int) -> datetime:
    """The (aware, UTC) start of an epoch minute."""
    return datetime.fromtimestamp(minute * 60, UTC)


def time_minute(at: datetime) -> int:
    """The epoch minute a stored minute start stands for."""
    return int(at.timestamp() // 60)


class SqlConnectorStatsStore:
    """Adds, reads and prunes the per-minute figures of every connector."""

    def __init__(self, database: Database) -> None:
        self._db = database
        table = connector_minutes
        insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert
        statement = insert(table)
        self._upsert = statement.on_conflict_do_update(
            index_elements=[table.c.connector_id, table.c.minute, table.c.metric, table.c.key],
            set_={"count": table.c.count + statement.excluded.count},
        )

    async def add_minutes(self, counts: Mapping[MinuteKey, int]) -> None:
        """Add ``counts`` to the stored counters (creating the rows that do not exist)."""
        rows = [
            {
                "connector_id": key.connector_id,
                "minute": minute_time(key.minute),
                "metric": key.metric,
                "key": key.key,
                "count": count,
            }
            for key, count in sorted(
                counts.items(),
                # One order for every writer: concurrent upserts on PostgreSQL lock rows in the
                # same order, so they wait for each other instead of deadlocking.
                key=lambda item: (
                    item[0].connector_id,
                    item[0].minute,
                    item[0].metric,
                    item[0].key,
                ),
            )
            if count
        ]
        if not rows:
            return

        async def upsert(connection: AsyncConnection) -> None:
            for start in range(0, len(rows), UPSERT_CHUNK):
                await connection.execute(self._upsert, rows[start : start + UPSERT_CHUNK])

        await self._db.write(upsert)

    async def minutes_since(self, since_minute: int) -> list[tuple[MinuteKey, int]]:
        """Every stored counter from ``since_minute`` on (all connectors), oldest first."""
        table = connector_minutes
        statement = (
            sa.select(
                table.c.connector_id,
                table.c.minute,
                table.c.metric,
                table.c.key,
                table.c.count.label("amount"),
            )
            .where(table.c.minute >= minute_time(since_minute))
            .order_by(table.c.minute)
        )
        async with self._db.read() as connection:
            return [
                (
                    MinuteKey(row.connector_id, time_minute(row.minute), row.metric, row.key),
                    int(row.amount),
                )
                for row in await connection.execute(statement)
            ]

    async def totals_since(self, connector_id: str, since_minute: int) -> MinuteCounts:
        """The counters of ``connector_id`` added up from ``since_minute`` on."""
        table = connector_minutes
        statement = (
            sa.select(table.c.metric, table.c.key, sa.func.sum(table.c.count).label("total"))
            .where(
                table.c.connector_id == connector_id,
                table.c.minute >= minute_time(since_minute),
            )
            .group_by(table.c.metric, table.c.key)
        )
        totals = MinuteCounts()
        async with self._db.read() as connection:
            for row in await connection.execute(statement):
                totals.add(row.metric, row.key, int(row.total))
        return totals

    async def has_figures(self, connector_id: str) -> bool:
        """Whether any figure of ``connector_id`` is stored."""
        table = connector_minutes
        statement = sa.select(sa.literal(1)).where(table.c.connector_id == connector_id).limit(1)
        async with self._db.read() as connection:
            return (await connection.execute(statement)).first() is not None

    async def prune(self, before_minute: int) -> int:
        """Delete the figures of minutes before ``before_minute``; returns how many rows."""
        table = connector_minutes
        statement = sa.delete(table).where(table.c.minute < minute_time(before_minute))

        async def delete(connection: AsyncConnection) -> int:
            result: Any = await connection.execute(statement)
            return int(result.rowcount or 0)

        return await self._db.write(delete)
