"""Hot reads through ``sqlite3`` read back exactly what SQLAlchemy reads."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.messages import Category, MessageStatus
from pigeon.ports import NewJob
from pigeon.raw_sql import RawSelect, asyncpg_driver, asyncpg_in_transaction, pg_execute
from pigeon.store.database import PG_READ_POOL_SIZE
from pigeon.store.tables import jobs, message_parts, messages

if TYPE_CHECKING:
    from conftest import Factory, Stores


async def test_raw_rows_equal_sqlalchemy_rows(stores: Stores, factory: Factory) -> None:
    """Every column of a message joined with its parts converts as SQLAlchemy converts it."""
    database = stores.database
    tenant = await factory.tenant()
    now = stores.clock.now()
    message = factory.message(
        tenant,
        category=Category.OTP,
        status=MessageStatus.SENT,
        expires_at=now + timedelta(hours=1),
        price=1_000_001,
        currency="USD",
        is_test=True,
        parts=[factory.part(0, "0A1B", status=MessageStatus.SENT), factory.part(1)],
    )
    await stores.messages.accept(factory.acceptance(message))
    statement = (
        sa.select(messages, message_parts.c.part_index, message_parts.c.carrier_message_id)
        .select_from(messages.outerjoin(message_parts, message_parts.c.message_id == messages.c.id))
        .where(messages.c.id == sa.bindparam("id"))
        .order_by(message_parts.c.part_index)
        .limit(5)
    )
    async with database.read() as connection:
        expected = [tuple(row) for row in await connection.execute(statement, {"id": message.id})]
    raw = RawSelect(statement, database.read_engine.dialect)
    if database.sqlite_reads:
        with database.raw_read() as raw_connection:
            rows = raw.rows(raw_connection, {"id": message.id})
    else:  # PostgreSQL: through asyncpg under an autocommit read connection
        async with database.read() as connection:
            driver = await asyncpg_driver(connection)
            rows = await raw.fetch(driver, {"id": message.id})
    assert [tuple(row) for row in rows] == expected
    assert len(rows) == 2
    assert rows[0].expires_at == message.expires_at
    assert rows[0].is_test is True


async def test_find_by_carrier_id_matches_any_candidate_form(
    stores: Stores, factory: Factory
) -> None:
    """The compiled lookup finds a part by any of several candidate ids, newest message first."""
    tenant = await factory.tenant()
    older = factory.message(tenant, connector_id="c1", parts=[factory.part(0, "00ab")])
    newer = factory.message(tenant, connector_id="c1", parts=[factory.part(0, "AB")])
    for message in (older, newer):
        await stores.messages.accept(factory.acceptance(message))
    found = await stores.messages.find_by_carrier_id("c1", ["171", "ab", "0xab"])
    assert found == (newer.id, "AB")
    assert await stores.messages.find_by_carrier_id("c1", ["cd"]) is None
    assert await stores.messages.find_by_carrier_id("other", ["ab"]) is None


async def test_statements_sent_straight_to_asyncpg_roll_back_with_their_transaction(
    stores: Stores, factory: Factory
) -> None:
    """A writer transaction that fails after raw asyncpg statements leaves nothing behind,
    even when the raw statement was the transaction's first."""
    database = stores.database
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    async def raw_then_fail(connection: AsyncConnection) -> None:
        driver = await asyncpg_in_transaction(connection)
        if database.sqlite_reads:
            assert driver is None  # not PostgreSQL: nothing to bypass
            await connection.execute(sa.update(messages).values(body="changed"))
        else:
            await pg_execute(connection, driver, "UPDATE messages SET body = $1", ["changed"])
        raise RuntimeError("the caller's own failure")

    with pytest.raises(RuntimeError, match="own failure"):
        await database.write(raw_then_fail)
    stored = await stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.body == message.body


async def test_raw_asyncpg_errors_reach_callers_as_sqlalchemy_errors(
    stores: Stores, factory: Factory
) -> None:
    """A constraint violation sent straight to asyncpg raises SQLAlchemy's IntegrityError."""
    database = stores.database
    if database.sqlite_reads:
        pytest.skip("asyncpg only")
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    async def duplicate(connection: AsyncConnection) -> None:
        driver = await asyncpg_in_transaction(connection)
        await pg_execute(
            connection,
            driver,
            "INSERT INTO messages SELECT * FROM messages WHERE id = $1",
            [message.id],
        )

    with pytest.raises(sa.exc.IntegrityError):
        await database.write(duplicate)


async def test_no_asyncpg_connection_outside_a_transaction(stores: Stores) -> None:
    """Outside a transaction (autocommit reads) no raw connection is handed out for writes."""
    async with stores.database.read() as connection:
        assert await asyncpg_in_transaction(connection) is None


async def test_raw_pool_reads_json_columns_as_sqlalchemy_does(
    stores: Stores, factory: Factory
) -> None:
    """The asyncpg read pool decodes JSON (and every other column) as SQLAlchemy does."""
    database = stores.database
    if database.sqlite_reads:
        pytest.skip("PostgreSQL only")
    tenant = await factory.tenant()
    message = factory.message(tenant)
    job = NewJob(
        "dispatch:x",
        "dispatch",
        {"message_id": message.id, "n": [1, 2.5, None]},
        stores.clock.now(),
    )
    await stores.messages.accept(dataclasses.replace(factory.acceptance(message), jobs=[job]))
    statement = sa.select(jobs).where(jobs.c.id == sa.bindparam("id"))
    async with database.read() as connection:
        expected = [tuple(row) for row in await connection.execute(statement, {"id": job.id})]
    raw = RawSelect(statement, database.read_engine.dialect)
    async with database.raw_pg_read() as driver:
        rows = await raw.fetch(driver, {"id": job.id})
    assert [tuple(row) for row in rows] == expected
    assert rows[0].payload == {"message_id": message.id, "n": [1, 2.5, None]}


async def test_a_transaction_left_open_on_the_raw_pool_is_rolled_back_on_release(
    stores: Stores, factory: Factory
) -> None:
    """Without asyncpg's reset query at release, a connection still in a transaction is
    rolled back all the same: nothing it wrote survives, no later user finds it open."""
    database = stores.database
    if database.sqlite_reads:
        pytest.skip("PostgreSQL only")
    tenant = await factory.tenant()
    async with database.raw_pg_read() as driver:
        await driver.execute("BEGIN")
        await driver.execute("UPDATE tenants SET name = 'left open' WHERE id = $1", tenant.id)
        assert driver.is_in_transaction()
    for _ in range(PG_READ_POOL_SIZE + 1):  # every pooled connection, whichever comes back
        async with database.raw_pg_read() as driver:
            assert not driver.is_in_transaction()
    async with database.read() as connection:
        name = await connection.scalar(
            sa.text("SELECT name FROM tenants WHERE id = :id"), {"id": tenant.id}
        )
    assert name == tenant.name
