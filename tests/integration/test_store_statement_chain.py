"""Bulk statements chained into one (``StatementChain``), on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from ulid import ULID

from pigeon.store import Database, normalise_url
from pigeon.store.bulk import BulkInsert, BulkUpdate, StatementChain, _renumbered
from pigeon.store.tables import api_keys, jobs, tenants

if TYPE_CHECKING:
    from conftest import Factory, Stores

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _chain(dialect: str) -> tuple[StatementChain, BulkInsert, BulkInsert]:
    insert_tenants = BulkInsert(tenants, dialect)
    insert_keys = BulkInsert(api_keys, dialect)
    return StatementChain((insert_tenants, insert_keys)), insert_tenants, insert_keys


def _rows(
    insert_tenants: BulkInsert, insert_keys: BulkInsert, tenant: str, digests: list[str]
) -> list[list[list[Any]]]:
    tenant_rows = [{"id": tenant, "name": tenant, "default_region": None, "created_at": NOW}]
    key_rows = [
        {
            "id": f"key_{tenant}_{n}",
            "tenant_id": tenant,
            "mode": "live",
            "role": "admin",
            "digest": digest,
            "prefix": "pk_live_",
            "created_at": NOW,
            "revoked": False,
        }
        for n, digest in enumerate(digests)
    ]
    return [insert_tenants.convert(tenant_rows), insert_keys.convert(key_rows)]


async def _ids(database: Database, table: sa.Table) -> set[str]:
    async with database.read() as connection:
        return set((await connection.scalars(sa.select(table.c.id))).all())


@pytest.fixture
async def postgres_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """A plain async engine on this test's PostgreSQL database (skips on SQLite)."""
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite writes a chain statement by statement")
    engine = create_async_engine(normalise_url(database.url))
    try:
        yield engine
    finally:
        await engine.dispose()


def test_parameters_are_renumbered_past_the_earlier_statements() -> None:
    """A later statement's ``$n`` become ``$(n + offset)``; the first statement's stay."""
    assert _renumbered("SELECT $1, $2, $10", 0) == "SELECT $1, $2, $10"
    assert _renumbered("SELECT $1, $2, $10", 7) == "SELECT $8, $9, $17"


async def test_a_chain_writes_rows_that_refer_to_each_other(database: Database) -> None:
    """A chain in a transaction stores every statement's rows, a child beside its parent."""
    chain, insert_tenants, insert_keys = _chain(database.dialect)
    rows = _rows(insert_tenants, insert_keys, "ten_chain", ["d1", "d2"])

    async def write(connection: AsyncConnection) -> None:
        await chain.write(connection, rows)

    await database.write(write)

    assert "ten_chain" in await _ids(database, tenants)
    assert {"key_ten_chain_0", "key_ten_chain_1"} <= await _ids(database, api_keys)


async def test_statements_without_rows_are_left_out(database: Database) -> None:
    """A chain whose first statement has no rows writes the others (and nothing at all is
    a no-op)."""
    chain, insert_tenants, insert_keys = _chain(database.dialect)
    parent = _rows(insert_tenants, insert_keys, "ten_parent", [])

    async def write_parent(connection: AsyncConnection) -> None:
        await chain.write(connection, parent)

    await database.write(write_parent)
    keys_only = [[], _rows(insert_tenants, insert_keys, "ten_parent", ["d9"])[1]]

    async def write_keys(connection: AsyncConnection) -> None:
        await chain.write(connection, keys_only)
        await chain.write(connection, [[], []])

    await database.write(write_keys)

    assert "key_ten_parent_0" in await _ids(database, api_keys)


async def test_alone_outside_a_transaction_the_chain_commits_by_itself(
    database: Database, postgres_engine: AsyncEngine
) -> None:
    """On PostgreSQL, ``alone`` and outside a transaction, the one statement commits itself:
    another connection sees its rows with no COMMIT sent."""
    chain, insert_tenants, insert_keys = _chain("postgresql")
    rows = _rows(insert_tenants, insert_keys, "ten_alone", ["a1"])

    async with postgres_engine.connect() as connection:
        await chain.write(connection, rows, alone=True)
        assert not connection.in_transaction()
        assert "ten_alone" in await _ids(database, tenants)
        assert "key_ten_alone_0" in await _ids(database, api_keys)


async def test_a_failing_statement_writes_nothing_of_the_chain(
    database: Database, postgres_engine: AsyncEngine
) -> None:
    """On PostgreSQL, alone outside a transaction, a later statement's failure (a duplicate
    key) leaves the earlier statements' rows unwritten too."""
    chain, insert_tenants, insert_keys = _chain("postgresql")
    async with postgres_engine.connect() as connection:
        await chain.write(connection, _rows(insert_tenants, insert_keys, "ten_first", ["dup"]))
        await connection.commit()

        with pytest.raises(sa.exc.IntegrityError):
            await chain.write(
                connection, _rows(insert_tenants, insert_keys, "ten_second", ["dup"]), alone=True
            )

    assert "ten_second" not in await _ids(database, tenants)
    assert "ten_first" in await _ids(database, tenants)


async def test_accepts_alone_in_a_batch_begin_no_transaction_on_postgresql(
    stores: Stores, factory: Factory
) -> None:
    """Concurrent accepts (a batch of accepts only) are written as one statement each batch on
    PostgreSQL, none on SQLite, and every message is stored either way."""
    tenant = await factory.tenant()
    stats = stores.database.writer.stats
    before = stats.single_statements
    messages = [factory.message(tenant) for _ in range(40)]

    await asyncio.gather(*(stores.messages.accept(factory.acceptance(m)) for m in messages))

    for message in messages:
        assert await stores.messages.get_message(message.id, tenant.id) is not None
    if stores.database.dialect == "postgresql":
        assert stats.single_statements > before
    else:
        assert stats.single_statements == before


# Text as the store may hold it: any code point PostgreSQL's text takes (not NUL, no lone
# surrogate), JSON-special characters included.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=40,
    deadline=None,
    # One database serves every example on purpose: each example writes its own row.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kind=_TEXT, payload=_JSON, error=st.none() | _TEXT, later=_JSON)
async def test_bulk_rows_round_trip_any_text_and_json(
    database: Database, kind: str, payload: Any, error: str | None, later: Any
) -> None:
    """Any text and JSON value a bulk INSERT, then a bulk UPDATE, writes reads back as it
    was (PostgreSQL takes the rows as one JSON document: quotes, backslashes, control
    characters and emoji must survive it)."""
    insert = BulkInsert(jobs, database.dialect)
    update = BulkUpdate(jobs, database.dialect, key="id", columns=("payload", "last_error"))
    job_id = f"job_{ULID()}"
    row = {
        "id": job_id,
        "kind": kind,
        "payload": {"value": payload},
        "priority": -(2**31),
        "run_at": NOW,
        "ready": False,
        "attempts": 2**31 - 1,
        "lease_owner": None,
        "lease_until": None,
        "last_error": error,
        "created_at": NOW,
    }

    async def write_row(connection: AsyncConnection) -> None:
        await insert(connection, [row])

    await database.write(write_row)
    async with database.read() as connection:
        stored = (await connection.execute(sa.select(jobs).where(jobs.c.id == job_id))).one()
    assert (stored.kind, stored.payload, stored.last_error) == (kind, {"value": payload}, error)
    assert (stored.priority, stored.attempts, stored.ready) == (-(2**31), 2**31 - 1, False)
    assert stored.run_at == NOW

    async def update_row(connection: AsyncConnection) -> None:
        await update(connection, [{"id": job_id, "payload": [later], "last_error": kind}])

    await database.write(update_row)
    async with database.read() as connection:
        stored = (await connection.execute(sa.select(jobs).where(jobs.c.id == job_id))).one()
    assert (stored.payload, stored.last_error) == ([later], kind)
