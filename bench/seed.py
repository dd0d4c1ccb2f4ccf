"""Fill a fresh Pigeon database fast: stored history and a queued backlog, before a gateway runs.

    .venv/bin/python bench/seed.py sqlite:///tmp/x/pigeon.db --stored 1000000 --backlog 100000

Migrates the database, creates the ``demo`` tenant (``pigeon serve`` with a bootstrap key then
adds its key to it), and writes rows through the store's multi-row INSERT
(``pigeon.store.bulk.BulkInsert``: SQLite ``executemany``, PostgreSQL ``unnest``) in
transactions of ``--chunk`` messages on the group-commit writer:

- ``stored``: delivered messages of the last 30 days (ids time-ordered as the gateway makes
  them), each with its part (a carrier id on connector ``sim``, outside the range the simulator
  hands out) and its ``message.delivered`` event: what a store holds after that much traffic;
- ``backlog``: queued marketing messages, each with its due dispatch job (priority of the
  marketing category): what an accepted campaign leaves for the workers.

On PostgreSQL a ``VACUUM ANALYZE`` and a ``CHECKPOINT`` follow, so the measurement after them
does not overlap the autovacuum, statistics and dirty-page flushing a 3-million-row load
leaves pending.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.messages import Category
from pigeon.store import connect, migrate
from pigeon.store.bulk import BulkInsert
from pigeon.store.messages import RECEIPT_SWEEP
from pigeon.store.tables import events, jobs, message_parts, messages, sweep_marks, tenants

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Carrier ids of seeded parts start here (the simulator's start at 0xA1B2C300).
CARRIER_ID_BASE = 0x10000000


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def ulid_at(moment: datetime, counter: int) -> str:
    """A ULID of ``moment`` whose random part is ``counter`` (increasing, like the gateway's)."""
    return _base32(int(moment.timestamp() * 1000), 10) + _base32(counter, 16)


def _message(
    message_id: str, tenant_id: str, index: int, at: datetime, **changes: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": message_id,
        "tenant_id": tenant_id,
        "direction": "mt",
        "recipient": f"+1415555{index % 10_000:04d}",
        "sender": None,
        "body": f"Seeded message {index}",
        "category": "transactional",
        "encoding": "gsm7",
        "segments": 1,
        "status": "delivered",
        "status_sequence": 4,
        "created_at": at,
        "updated_at": at,
        "country": "US",
        "client_ref": None,
        "callback_url": None,
        "send_at": None,
        "expires_at": at + timedelta(days=2),
        "error_code": None,
        "connector_id": "sim",
        "price": None,
        "currency": None,
        "is_test": False,
        "attempts": 1,
        "origin": None,
        "origin_parts": 1,
        "receipt_request": "none",
        # As the gateway sets it at accept: the validity's end plus the receipt grace.
        "receipt_due_at": at + timedelta(days=2, minutes=10),
        "write_stamp": 0,
    }
    row.update(changes)
    return row


async def seed(
    database_url: str,
    *,
    stored: int = 0,
    backlog: int = 0,
    chunk: int = 20_000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Migrate ``database_url``, create the demo tenant, write ``stored`` delivered messages and
    a ``backlog`` of queued marketing messages; figures: rows and seconds."""
    started = time.monotonic()
    await migrate(database_url)
    database = await connect(database_url)
    dialect = database.dialect
    insert_messages = BulkInsert(messages, dialect)
    insert_parts = BulkInsert(message_parts, dialect)
    insert_events = BulkInsert(events, dialect)
    insert_jobs = BulkInsert(jobs, dialect)
    now = datetime.now(UTC)
    tenant_id = "ten_" + ulid_at(now - timedelta(days=31), 0)
    counter = os.getpid() << 40

    def write(
        *batches: tuple[BulkInsert, Sequence[dict[str, Any]]],
    ) -> Callable[[AsyncConnection], Awaitable[None]]:
        async def run(connection: AsyncConnection) -> None:
            for statement, rows in batches:
                await statement(connection, rows)

        return run

    try:
        tenant = {"id": tenant_id, "name": "demo", "default_region": None, "created_at": now}
        await database.write(write((BulkInsert(tenants, dialect), [tenant])))
        span = timedelta(days=30)
        done = 0
        while done < stored:
            size = min(chunk, stored - done)
            rows, parts, delivered = [], [], []
            for index in range(done, done + size):
                at = now - span + span * (index / max(stored, 1))
                counter += 1
                message_id = "msg_" + ulid_at(at, counter)
                rows.append(_message(message_id, tenant_id, index, at))
                carrier_id = f"{CARRIER_ID_BASE + index:x}"
                parts.append(
                    {
                        "message_id": message_id,
                        "part_index": 0,
                        "status": "delivered",
                        "carrier_message_id": carrier_id,
                        "carrier_id_normalised": carrier_id,
                        "connector_id": "sim",
                        "error_code": None,
                    }
                )
                delivered.append(
                    {
                        "id": "evt_" + ulid_at(at, counter),
                        "tenant_id": tenant_id,
                        "message_id": message_id,
                        "type": "message.delivered",
                        "status": "delivered",
                        "sequence": 4,
                        "at": at,
                        "detail": None,
                        "payload": {"id": message_id, "status": "delivered"},
                    }
                )
            await database.write(
                write((insert_messages, rows), (insert_parts, parts), (insert_events, delivered))
            )
            done += size
            if progress is not None and (done // chunk) % 10 == 0:
                progress(f"seeded {done:,} / {stored:,} stored messages")
        done = 0
        while done < backlog:
            size = min(chunk, backlog - done)
            rows, due = [], []
            for index in range(done, done + size):
                counter += 1
                message_id = "msg_" + ulid_at(now, counter)
                rows.append(
                    _message(
                        message_id,
                        tenant_id,
                        index,
                        now,
                        body=f"Campaign {index}: 20% off this week, reply STOP to opt out",
                        category="marketing",
                        status="queued",
                        status_sequence=1,
                        connector_id=None,
                        attempts=0,
                    )
                )
                due.append(
                    {
                        "id": f"dispatch:{message_id}",
                        "kind": "dispatch",
                        "payload": {"message_id": message_id},
                        "priority": Category.MARKETING.priority,
                        "run_at": now,
                        "ready": True,
                        "attempts": 0,
                        "lease_owner": None,
                        "lease_until": None,
                        "last_error": None,
                        "created_at": now,
                    }
                )
            await database.write(write((insert_messages, rows), (insert_jobs, due)))
            done += size
        if stored:
            # A running gateway's sweep has walked the deadlines already past (ADR 26).
            swept = [{"name": RECEIPT_SWEEP, "due_at": now, "message_id": "msg_" + ulid_at(now, 0)}]
            await database.write(write((BulkInsert(sweep_marks, dialect), swept)))
    finally:
        await database.close()
    if dialect == "postgresql" and (stored or backlog):
        await _vacuum_analyze(database_url)
    return {
        "tenant_id": tenant_id,
        "stored": stored,
        "backlog": backlog,
        "seconds": time.monotonic() - started,
    }


async def _vacuum_analyze(database_url: str) -> None:
    """``VACUUM ANALYZE`` then ``CHECKPOINT`` after the bulk load, as autovacuum and the
    checkpointer would have done in time on a server that grew to this size: fresh planner
    statistics and visibility map, no dirty pages of the load left to flush."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await connection.execute("VACUUM ANALYZE")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--stored", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=20_000)
    args = parser.parse_args()
    figures = asyncio.run(
        seed(
            args.database_url,
            stored=args.stored,
            backlog=args.backlog,
            chunk=args.chunk,
            progress=print,
        )
    )
    rows = figures["stored"] + figures["backlog"]
    print(f"{figures} ({rows / figures['seconds']:,.0f} messages/s)")


if __name__ == "__main__":
    main()
