"""Alembic migrations on real SQLite and PostgreSQL: they apply, repeat safely, match tables.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pigeon.store import current_revision, head_revision, migrate
from pigeon.store.database import connect, normalise_url, postgresql_engine, sqlite_engine
from pigeon.store.messages import SqlMessageStore
from pigeon.store.migrate import _run as run_alembic
from pigeon.store.tables import compared_on, metadata
from pigeon.testing import FakeClock


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

    assert await current_revision(blank_database_url) == head_revision() == "0012"
    names = await _inspect(
        blank_database_url, lambda connection: set(sa.inspect(connection).get_table_names())
    )
    assert set(metadata.tables) <= names


#: The foreign keys of the rows every message writes, which only SQLite keeps (ADR 35).
HOT_FOREIGN_KEYS = {
    "messages": "tenants",
    "message_parts": "messages",
    "events": "messages",
    "webhook_attempts": "webhook_endpoints",
}


async def test_the_rows_every_message_writes_check_foreign_keys_on_sqlite_only(
    database_url: str,
) -> None:
    """At head, SQLite keeps the hot tables' foreign keys; PostgreSQL has none of them."""

    def parents(connection: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(connection)
        return {
            table: {key["referred_table"] for key in inspector.get_foreign_keys(table)}
            for table in HOT_FOREIGN_KEYS
        }

    found = await _inspect(database_url, parents)

    if normalise_url(database_url).get_backend_name() == "sqlite":
        assert found == {table: {parent} for table, parent in HOT_FOREIGN_KEYS.items()}
    else:
        assert found == {table: set() for table in HOT_FOREIGN_KEYS}


async def test_concurrent_migrations_both_succeed(blank_database_url: str) -> None:
    """Two migrations racing on one blank database both finish, and the schema is built once."""
    await asyncio.gather(migrate(blank_database_url), migrate(blank_database_url))

    assert await current_revision(blank_database_url) == head_revision()


async def test_migrations_match_the_table_definitions(database_url: str) -> None:
    """The migrated schema is exactly what tables.py describes (no autogenerate diff)."""

    def differences(connection: sa.Connection) -> list[Any]:
        include = compared_on(connection.dialect.name)
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include}
        )
        return list(compare_metadata(context, metadata))

    assert await _inspect(database_url, differences) == []


async def test_0008_gives_messages_not_sent_yet_their_receipt_deadline(
    blank_database_url: str,
) -> None:
    """0008 sets the deadline (validity's end + 10 min, to the microsecond) of messages not yet
    sent, keeps a sent message's, and leaves final and inbound messages without one."""
    await run_alembic(blank_database_url, lambda config: command.upgrade(config, "0007"))
    url = normalise_url(blank_database_url)
    sqlite = url.get_backend_name() == "sqlite"
    expires = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    sent_due = datetime(2026, 1, 1, tzinfo=UTC)

    def stored(moment: datetime) -> object:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment

    rows = [  # id, direction, status, receipt_due_at
        ("msg_queued", "mt", "queued", None),
        ("msg_sending", "mt", "sending", None),
        ("msg_sent", "mt", "sent", stored(sent_due)),
        ("msg_done", "mt", "delivered", None),
        ("msg_reply", "mo", "received", None),
    ]
    engine = sqlite_engine(url, role="writer") if sqlite else postgresql_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'old', :at)"),
                {"at": stored(expires)},
            )
            for message_id, direction, status, due in rows:
                await connection.execute(
                    sa.text(
                        "INSERT INTO messages (id, tenant_id, direction, recipient, body,"
                        " category, encoding, segments, status, created_at, updated_at,"
                        " expires_at, receipt_due_at) VALUES (:id, 'ten_1', :direction,"
                        " '+447911123456', 'hi', 'transactional', 'gsm7', 1, :status, :at, :at,"
                        " :at, :due)"
                    ),
                    {
                        "id": message_id,
                        "direction": direction,
                        "status": status,
                        "at": stored(expires),
                        "due": due,
                    },
                )
    finally:
        await engine.dispose()

    await migrate(blank_database_url)
    database = await connect(blank_database_url)
    try:
        store = SqlMessageStore(database, FakeClock())
        found = await store.get_messages([row[0] for row in rows])
    finally:
        await database.close()

    deadline = expires + timedelta(minutes=10)
    assert {message_id: message.receipt_due_at for message_id, message in found.items()} == {
        "msg_queued": deadline,
        "msg_sending": deadline,
        "msg_sent": sent_due,
        "msg_done": None,
        "msg_reply": None,
    }


#: An event row as the hot paths insert it.
_EVENT_INSERT = (
    "INSERT INTO events (id, tenant_id, message_id, type, status, sequence, at, detail, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _temporary_btrees(connection: sa.Connection) -> int:
    """How many temporary B-trees SQLite's program for one event INSERT opens."""
    program = connection.exec_driver_sql(f"EXPLAIN {_EVENT_INSERT}", (None,) * 9).all()
    return sum(1 for row in program if row[1] == "OpenEphemeral")


async def test_0012_stores_an_event_without_a_temporary_btree(blank_database_url: str) -> None:
    """Before 0012 an event INSERT built a temporary B-tree for the partial index's ``IN`` list;
    at head it builds none, and 0012 goes down and up again (on PostgreSQL too)."""
    sqlite = normalise_url(blank_database_url).get_backend_name() == "sqlite"
    await run_alembic(blank_database_url, lambda config: command.upgrade(config, "0011"))
    if sqlite:
        assert await _inspect(blank_database_url, _temporary_btrees) == 1

    await migrate(blank_database_url)
    if sqlite:
        assert await _inspect(blank_database_url, _temporary_btrees) == 0
    await run_alembic(blank_database_url, lambda config: command.downgrade(config, "0011"))
    await migrate(blank_database_url)

    assert await current_revision(blank_database_url) == "0012"
