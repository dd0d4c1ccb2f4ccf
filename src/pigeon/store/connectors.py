"""``SqlConnectorStore``: connectors, the routing table and their version marker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.connectors import ConnectorRecord, RouteRecord
from pigeon.store.database import Database
from pigeon.store.tables import config_versions, connectors, routes

#: The ``config_versions`` row bumped by every change to connectors or routes.
ROUTING_VERSION = "routing"


class SqlConnectorStore:
    """``ports.ConnectorStore`` on a ``Database``.

    Every change bumps the ``routing`` version in the same transaction, so ``version()``
    (one indexed single-row read) tells a running gateway whether to reload.
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    async def list_connectors(self) -> list[ConnectorRecord]:
        """Every connector, by id."""
        async with self._db.read() as connection:
            rows = await connection.execute(sa.select(connectors).order_by(connectors.c.id))
            return [_connector_from(row._mapping) for row in rows]

    async def get_connector(self, connector_id: str) -> ConnectorRecord | None:
        """The connector with this id."""
        async with self._db.read() as connection:
            row = (
                await connection.execute(
                    sa.select(connectors).where(connectors.c.id == connector_id)
                )
            ).first()
            return None if row is None else _connector_from(row._mapping)

    async def put_connector(self, record: ConnectorRecord) -> None:
        """Create or replace the connector with ``record.id`` (its ``created_at`` is kept)."""
        values = {
            "type": record.type,
            "options": dict(record.options),
            "enabled": record.enabled,
            "prices_csv": record.prices_csv,
            "source": record.source,
            "updated_at": record.updated_at,
        }

        async def upsert(connection: AsyncConnection) -> None:
            exists = await connection.scalar(
                sa.select(connectors.c.id).where(connectors.c.id == record.id)
            )
            if exists is None:
                await connection.execute(
                    sa.insert(connectors),
                    {"id": record.id, "created_at": record.created_at, **values},
                )
            else:
                await connection.execute(
                    sa.update(connectors).where(connectors.c.id == record.id).values(**values)
                )
            await _bump(connection, record.updated_at)

        await self._db.write(upsert)

    async def delete_connector(self, connector_id: str, at: datetime) -> bool:
        """Remove the connector; whether it existed."""

        async def delete(connection: AsyncConnection) -> bool:
            result = await connection.execute(
                sa.delete(connectors).where(connectors.c.id == connector_id)
            )
            if result.rowcount:
                await _bump(connection, at)
            return bool(result.rowcount)

        return await self._db.write(delete)

    async def list_routes(self) -> list[RouteRecord]:
        """The routing table, in order."""
        async with self._db.read() as connection:
            rows = await connection.execute(sa.select(routes).order_by(routes.c.position))
            return [RouteRecord(id=row.id, options=dict(row.options)) for row in rows]

    async def replace_routes(self, table: Sequence[RouteRecord], at: datetime) -> None:
        """Replace the whole routing table with ``table``, in its order."""
        rows = [
            {"id": route.id, "position": position, "options": dict(route.options), "updated_at": at}
            for position, route in enumerate(table)
        ]

        async def replace(connection: AsyncConnection) -> None:
            await connection.execute(sa.delete(routes))
            if rows:
                await connection.execute(sa.insert(routes), rows)
            await _bump(connection, at)

        await self._db.write(replace)

    async def version(self) -> int:
        """The routing version: it changes with every change to connectors or routes."""
        async with self._db.read() as connection:
            found = await connection.scalar(
                sa.select(config_versions.c.version).where(
                    config_versions.c.name == ROUTING_VERSION
                )
            )
            return int(found or 0)


async def _bump(connection: AsyncConnection, at: datetime) -> None:
    updated = await connection.execute(
        sa.update(config_versions)
        .where(config_versions.c.name == ROUTING_VERSION)
        .values(version=config_versions.c.version + 1, updated_at=at)
    )
    if not updated.rowcount:
        await connection.execute(
            sa.insert(config_versions),
            {"name": ROUTING_VERSION, "version": 1, "updated_at": at},
        )


def _connector_from(row: Any) -> ConnectorRecord:
    return ConnectorRecord(
        id=row["id"],
        type=row["type"],
        options=dict(row["options"]),
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        prices_csv=row["prices_csv"],
        source=row["source"],
    )
