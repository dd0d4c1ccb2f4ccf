"""Bring a database's schema up to date: ``await migrate(url)``.

Alembic is configured here, in code (no ``alembic.ini`` needed). The whole upgrade runs in one
transaction, which PostgreSQL and SQLite both allow for DDL: it applies completely or not at
all. Two processes may migrate at once: on PostgreSQL they queue on an advisory lock, on SQLite
on the write lock (``BEGIN IMMEDIATE``); the second finds the schema current and does nothing.

To write a new revision, add ``versions/NNNN_what.py`` by hand (copy the newest one), or let
Alembic draft it against a migrated scratch database::

    python -c "from pigeon.store.migrate import autogenerate; import asyncio; \
asyncio.run(autogenerate('sqlite:///scratch.db', 'add something'))"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from pigeon.store.database import (
    dialect_of,
    normalise_url,
    postgresql_engine,
    prepare_sqlite_file,
    sqlite_engine,
)

if TYPE_CHECKING:
    # Alembic (about 11 MB) is imported where a migration runs, not with the store: the worker
    # processes ``serve`` starts after migrating never load it.
    from alembic.config import Config

_Action = Callable[["Config"], None]

MIGRATIONS: Final = Path(__file__).with_name("migrations")

#: ``pg_advisory_xact_lock`` key that serialises concurrent migrations ("pigeon" in ASCII).
_LOCK_KEY: Final = 0x706967656F6E


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration pointing at Pigeon's migrations (and ``url`` if given)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    if url is not None:
        rendered = normalise_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def migrate(url: str | URL) -> None:
    """Upgrade the schema at ``url`` to the newest revision; a current schema is left alone."""
    from alembic import command

    await _run(url, lambda config: command.upgrade(config, "head"))


async def current_revision(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    found: list[str | None] = []

    def read(connection: Connection) -> None:
        found.append(MigrationContext.configure(connection).get_current_revision())

    engine = _engine(normalise_url(url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(read)
    finally:
        await engine.dispose()
    return found[0]


async def autogenerate(url: str | URL, message: str) -> None:  # pragma: no cover - dev tool
    """Draft a new revision from the difference between ``tables.py`` and the database."""
    from alembic import command

    def draft(config: Config) -> None:
        command.revision(config, message, autogenerate=True)

    await _run(url, draft)


async def _run(url: str | URL, action: _Action) -> None:
    sa_url = normalise_url(url)
    config = alembic_config(sa_url)
    if dialect_of(sa_url) == "sqlite":
        await prepare_sqlite_file(sa_url)
    engine = _engine(sa_url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        action(config)

    try:
        async with engine.connect() as connection, connection.begin():
            if dialect_of(sa_url) == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                )
            await connection.run_sync(run)
            if dialect_of(sa_url) == "sqlite":
                problems = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if problems:
                    raise RuntimeError(f"migration broke foreign keys: {problems[:5]}")
    finally:
        await engine.dispose()


def _engine(url: URL) -> AsyncEngine:
    if dialect_of(url) == "sqlite":
        return sqlite_engine(url, role="migrator")
    return postgresql_engine(url, pool_size=1)
