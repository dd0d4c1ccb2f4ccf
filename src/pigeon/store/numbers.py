"""``ports.NumberStore`` on SQL: the numbers inventory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.addressing import SenderKind
from pigeon.domain.errors import ValidationError
from pigeon.domain.numbers import OwnedNumber
from pigeon.store.database import Database
from pigeon.store.tables import numbers


class SqlNumberStore:
    """Numbers and their owners; a number belongs to at most one tenant."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def add_number(self, number: OwnedNumber) -> None:
        """Store ``number``; ``ValidationError`` (``already_exists``) if it is owned already."""
        row = {
            "value": number.value,
            "tenant_id": number.tenant_id,
            "kind": number.kind.value,
            "created_at": number.created_at,
        }

        async def insert(connection: AsyncConnection) -> None:
            await connection.execute(sa.insert(numbers), row)

        try:
            await self._db.write(insert)
        except IntegrityError as exc:
            raise ValidationError(
                f"{number.value} is already in the inventory (or the tenant is unknown)",
                code="already_exists",
                field="number",
            ) from exc

    async def find_owner(self, values: Sequence[str]) -> OwnedNumber | None:
        """The owned number matching any of ``values``."""
        if not values:
            return None
        statement = sa.select(numbers).where(numbers.c.value.in_(list(values))).limit(1)
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
            return _number_from(row) if row is not None else None

    async def list_numbers(self, tenant_id: str) -> list[OwnedNumber]:
        """The tenant's numbers, in order."""
        statement = (
            sa.select(numbers).where(numbers.c.tenant_id == tenant_id).order_by(numbers.c.value)
        )
        async with self._db.read() as connection:
            return [_number_from(row) for row in await connection.execute(statement)]


def _number_from(row: sa.Row[Any]) -> OwnedNumber:
    return OwnedNumber(
        value=row.value,
        tenant_id=row.tenant_id,
        kind=SenderKind(row.kind),
        created_at=row.created_at,
    )
