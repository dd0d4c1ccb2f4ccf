"""``SqlPartStore``: parts of customers' long messages, kept until the message is whole.

Every part is written through the group-commit writer before the customer hears back, so a
part that got a ``submit_sm_resp`` survives a crash; the part that completes its set brings
back every part, and the caller accepts the message. Sets are looked up by (account, key);
on PostgreSQL a transaction-scoped advisory lock on that pair serialises two parts of one
set arriving at once on different connections or nodes, so they reserve one message id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.ports import PartProgress, PendingPart
from pigeon.store.database import Database
from pigeon.store.tables import smpp_parts


class SqlPartStore:
    """``ports.PartStore`` on a ``Database``."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._postgres = database.dialect == "postgresql"

    async def add_part(self, part: PendingPart) -> PartProgress:
        """Store ``part`` unless it is a retransmission; see ``ports.PartStore``."""
        table = smpp_parts
        where = (table.c.account_id == part.account_id, table.c.part_key == part.key)

        async def add(connection: AsyncConnection) -> PartProgress:
            if self._postgres:
                await connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
                    {"name": f"smpp_parts\x1f{part.account_id}\x1f{part.key}"},
                )
            rows = (
                await connection.execute(sa.select(table).where(*where).order_by(table.c.seqnum))
            ).all()
            held = [_part_from(row) for row in rows]
            same = next((row for row in rows if row.seqnum == part.seqnum), None)
            resent = same is not None and bytes(same.payload) == part.payload
            if rows and rows[0].accepted:
                if resent:
                    return PartProgress(rows[0].message_id, None, duplicate=True, accepted=True)
                # The sender reused the reference of a message already accepted: a new set.
                await connection.execute(sa.delete(table).where(*where))
                rows, held = [], []
            elif resent:
                # A retransmission of a part still waiting: the first copy stays.
                whole = held if len(held) == part.total else None
                return PartProgress(rows[0].message_id, whole, duplicate=True)
            elif same is not None:
                # Another text in a place already taken: the sender gave up on the waiting set
                # (a part of it was refused, say) and reused its reference. A new set.
                await connection.execute(sa.delete(table).where(*where))
                rows, held = [], []
            message_id = rows[0].message_id if rows else part.message_id
            await connection.execute(
                sa.insert(table),
                {
                    "account_id": part.account_id,
                    "part_key": part.key,
                    "seqnum": part.seqnum,
                    "total": part.total,
                    "message_id": message_id,
                    "payload": part.payload,
                    "pdu": part.pdu,
                    "received_at": part.received_at,
                    "accepted": False,
                },
            )
            stored = PendingPart(
                part.account_id,
                part.key,
                part.seqnum,
                part.total,
                message_id,
                part.payload,
                part.pdu,
                part.received_at,
            )
            held = sorted([*held, stored], key=lambda p: p.seqnum)
            return PartProgress(message_id, held if len(held) == part.total else None)

        return await self._db.write(add)

    async def mark_accepted(self, account_id: str, key: str) -> None:
        """Flag the set as accepted: its retransmitted parts are duplicates from now on."""
        table = smpp_parts
        statement = (
            sa.update(table)
            .where(table.c.account_id == account_id, table.c.part_key == key)
            .values(accepted=True)
        )

        async def update(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._db.write(update)

    async def expire_parts(self, before: datetime) -> int:
        """Delete parts received before ``before``; returns how many."""
        table = smpp_parts

        async def delete(connection: AsyncConnection) -> int:
            result = await connection.execute(sa.delete(table).where(table.c.received_at < before))
            return int(result.rowcount or 0)

        return await self._db.write(delete)


def _part_from(row: Any) -> PendingPart:
    return PendingPart(
        account_id=row.account_id,
        key=row.part_key,
        seqnum=row.seqnum,
        total=row.total,
        message_id=row.message_id,
        payload=bytes(row.payload),
        pdu=bytes(row.pdu),
        received_at=row.received_at,
    )
