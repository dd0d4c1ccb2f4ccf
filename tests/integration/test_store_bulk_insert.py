"""``BulkInsert`` with many rows, on real SQLite and PostgreSQL: on SQLite the rows go in
chunks of several ``VALUES`` rows per statement (``MULTI_ROW_SIZES``), the rest one by one;
every row is written as given, conflicts handled as one row at a time would be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.store import Database
from pigeon.store.bulk import MULTI_ROW_SIZES, BulkInsert
from pigeon.store.tables import jobs, message_parts, messages, tenants

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def _job(n: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": f"job_{n:04d}",
        "kind": "dispatch",
        "payload": {"n": n, "text": 'a "quoted" \\ text'},
        "priority": n % 7,
        "run_at": NOW + timedelta(microseconds=n),
        "ready": n % 2 == 0,
        "attempts": 0,
        "lease_owner": None if n % 3 else f"owner-{n}",
        "lease_until": None,
        "last_error": None,
        "created_at": NOW,
    }
    return {**row, **changes}


async def _insert(database: Database, statement: BulkInsert, rows: list[dict[str, Any]]) -> None:
    converted = statement.convert(rows)

    async def write(connection: AsyncConnection) -> None:
        await statement.write(connection, converted)

    await database.write(write)


async def _stored_jobs(database: Database) -> list[tuple[Any, ...]]:
    async with database.read() as connection:
        found = await connection.execute(
            sa.select(
                jobs.c.id,
                jobs.c.payload,
                jobs.c.priority,
                jobs.c.run_at,
                jobs.c.ready,
                jobs.c.lease_owner,
            ).order_by(jobs.c.id)
        )
        return [tuple(row) for row in found]


@pytest.mark.parametrize("count", [1, 3, 4, 5, 17, 64, 64 + 16 + 4 + 3, 200])
async def test_every_row_is_written_as_given(database: Database, count: int) -> None:
    """Whatever the number of rows (below a chunk, chunks of each size, a remainder), each is
    stored once with its own values, NULLs and JSON included."""
    rows = [_job(n) for n in range(count)]
    await _insert(database, BulkInsert(jobs, database.dialect), rows)
    assert await _stored_jobs(database) == [
        (
            row["id"],
            row["payload"],
            row["priority"],
            row["run_at"],
            row["ready"],
            row["lease_owner"],
        )
        for row in rows
    ]


async def test_duplicates_are_skipped_within_a_chunk_and_against_stored_rows(
    database: Database,
) -> None:
    """``ignore_duplicates``: a row whose key is stored already, or came earlier in the same
    statement, is skipped; the first one stays."""
    statement = BulkInsert(jobs, database.dialect, ignore_duplicates=True)
    await _insert(database, statement, [_job(1, kind="first")])
    rows = [_job(n % 10, kind="second") for n in range(MULTI_ROW_SIZES[0] + 2)]
    await _insert(database, statement, rows)
    stored = await _stored_jobs(database)
    assert [row[0] for row in stored] == [f"job_{n:04d}" for n in range(10)]
    async with database.read() as connection:
        kinds = dict((await connection.execute(sa.select(jobs.c.id, jobs.c.kind))).all())
    assert kinds["job_0001"] == "first"
    assert {kinds[f"job_{n:04d}"] for n in range(10) if n != 1} == {"second"}


async def test_an_upsert_updates_stored_rows_and_inserts_new_ones(database: Database) -> None:
    """``upsert_on``: in chunks as one by one, a row whose key is stored updates it and the
    others are inserted (one statement never holds a key twice: PostgreSQL refuses that)."""
    await _insert(
        database,
        BulkInsert(tenants, database.dialect),
        [{"id": "ten_bulk", "name": "bulk", "default_region": None, "created_at": NOW}],
    )
    message = {
        "id": "msg_bulk",
        "tenant_id": "ten_bulk",
        "direction": "outbound",
        "recipient": "+14155550100",
        "sender": None,
        "body": "hi",
        "category": "transactional",
        "encoding": "GSM-7",
        "segments": 1,
        "status": "queued",
        "status_sequence": 0,
        "created_at": NOW,
        "updated_at": NOW,
        "country": "US",
        "client_ref": None,
        "callback_url": None,
        "send_at": None,
        "expires_at": None,
        "error_code": None,
        "connector_id": None,
        "price": None,
        "currency": None,
        "is_test": False,
        "attempts": 0,
        "origin": None,
        "origin_parts": 1,
        "receipt_request": "none",
        "receipt_due_at": None,
        "write_stamp": 0,
    }
    await _insert(database, BulkInsert(messages, database.dialect), [message])
    upsert = BulkInsert(message_parts, database.dialect, upsert_on=("message_id", "part_index"))

    def part(index: int, status: str) -> dict[str, Any]:
        return {
            "message_id": "msg_bulk",
            "part_index": index,
            "status": status,
            "carrier_message_id": f"c{index}",
            "carrier_id_normalised": f"c{index}",
            "connector_id": None,
            "error_code": None,
        }

    await _insert(database, upsert, [part(index, "queued") for index in range(4)])
    count = MULTI_ROW_SIZES[1] + MULTI_ROW_SIZES[2] + 1
    await _insert(database, upsert, [part(index, f"sent-{index}") for index in range(count)])
    async with database.read() as connection:
        parts = (
            await connection.execute(
                sa.select(message_parts.c.part_index, message_parts.c.status).order_by(
                    message_parts.c.part_index
                )
            )
        ).all()
    assert [tuple(found) for found in parts] == [(index, f"sent-{index}") for index in range(count)]


async def test_a_conflict_in_a_chunk_fails_the_write_and_leaves_nothing(
    database: Database,
) -> None:
    """Without a conflict clause, a duplicate key anywhere in the rows is an IntegrityError,
    and the writer's transaction writes none of them."""
    rows = [_job(n) for n in range(MULTI_ROW_SIZES[0] + 5)]
    rows[40] = _job(3)
    with pytest.raises(sa.exc.IntegrityError):
        await _insert(database, BulkInsert(jobs, database.dialect), rows)
    assert await _stored_jobs(database) == []
