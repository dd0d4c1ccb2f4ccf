"""Alembic migrations on real SQLite and PostgreSQL: they apply, repeat safely, match tables.py."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pigeon.store import current_revision, head_revision, migrate
from pigeon.store.database import normalise_url, postgresql_engine, sqlite_engine
from pigeon.store.tables import metadata


async def _inspect(url: str, look: Any) -> Any:
    sa_url = normalise_url(url)
    engine = (
        sqlite_engine(sa_url, role="reader")
        if sa_url.get_backend_name() == "sqlite"
        else postgresql_engine(sa_url, pool_size=1)
    )
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


async def test_migrate_builds_every_table_and_is_idempotent(blank_database_url: str) -> None:
    """Migrating a blank database builds every table at head; migrating again changes nothing."""
    assert await current_revision(blank_database_url) is None

    await migrate(blank_database_url)
    await migrate(blank_database_url)

    assert await current_revision(blank_database_url) == head_revision() == "0007"
    names = await _inspect(
        blank_database_url, lambda connection: set(sa.inspect(connection).get_table_names())
    )
    assert set(metadata.tables) <= names


async def test_concurrent_migrations_both_succeed(blank_database_url: str) -> None:
    """Two migrations racing on one blank database both finish, and the schema is built once."""
    await asyncio.gather(migrate(blank_database_url), migrate(blank_database_url))

    assert await current_revision(blank_database_url) == head_revision()


async def test_migrations_match_the_table_definitions(database_url: str) -> None:
    """The migrated schema is exactly what tables.py describes (no autogenerate diff)."""

    def differences(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    assert await _inspect(database_url, differences) == []
