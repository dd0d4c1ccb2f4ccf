"""``SqlAccountStore``: tenants, their API keys and their SMPP accounts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.accounts import ApiKey, KeyMode, Role, SmppAccount, Tenant
from pigeon.domain.errors import ValidationError
from pigeon.store.database import Database
from pigeon.store.tables import api_keys, smpp_accounts, tenants


class SqlAccountStore:
    """``ports.AccountStore`` on a ``Database``.

    Tenant names and SMPP system ids are unique; a duplicate tenant (id or name), key (id or
    digest) or SMPP account (id or system_id), or a key or account for an unknown tenant, raises
    ``ValidationError`` with code ``already_exists`` or ``unknown_tenant``.
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create_tenant(self, tenant: Tenant) -> None:
        """Store a new tenant."""
        row = {
            "id": tenant.id,
            "name": tenant.name,
            "default_region": tenant.default_region,
            "created_at": tenant.created_at,
        }

        async def insert(connection: AsyncConnection) -> None:
            await connection.execute(sa.insert(tenants), row)

        try:
            await self._db.write(insert)
        except IntegrityError as exc:
            raise ValidationError(
                f"a tenant with id {tenant.id} or name {tenant.name!r} already exists",
                code="already_exists",
                field="name",
            ) from exc

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with this id."""
        return await self._tenant(tenants.c.id == tenant_id)

    async def find_tenant_by_name(self, name: str) -> Tenant | None:
        """The tenant with this exact name."""
        return await self._tenant(tenants.c.name == name)

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, oldest first."""
        async with self._db.read() as connection:
            rows = await connection.execute(sa.select(tenants).order_by(tenants.c.id))
            return [_tenant_from(row) for row in rows]

    async def create_api_key(self, key: ApiKey) -> None:
        """Store a new key (its digest only)."""
        row = {
            "id": key.id,
            "tenant_id": key.tenant_id,
            "mode": str(key.mode),
            "role": str(key.role),
            "digest": key.digest,
            "prefix": key.prefix,
            "created_at": key.created_at,
            "revoked": key.revoked,
        }

        async def insert(connection: AsyncConnection) -> None:
            if await connection.scalar(
                sa.select(tenants.c.id).where(tenants.c.id == key.tenant_id)
            ):
                await connection.execute(sa.insert(api_keys), row)
            else:
                raise LookupError(key.tenant_id)

        try:
            await self._db.write(insert)
        except LookupError as exc:
            raise ValidationError(
                f"no tenant {key.tenant_id}", code="unknown_tenant", field="tenant_id"
            ) from exc
        except IntegrityError as exc:
            raise ValidationError(
                f"an API key with id {key.id} or the same secret already exists",
                code="already_exists",
            ) from exc

    async def has_operator_key(self) -> bool:
        """Whether any unrevoked operator key exists."""
        statement = (
            sa.select(api_keys.c.id)
            .where(api_keys.c.role == str(Role.OPERATOR), api_keys.c.revoked.is_(sa.false()))
            .limit(1)
        )
        async with self._db.read() as connection:
            return (await connection.scalar(statement)) is not None

    async def find_api_key(self, digest: str) -> ApiKey | None:
        """The unrevoked key with this SHA-256 digest."""
        statement = sa.select(api_keys).where(
            api_keys.c.digest == digest, api_keys.c.revoked.is_(sa.false())
        )
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
        if row is None:
            return None
        return ApiKey(
            id=row.id,
            tenant_id=row.tenant_id,
            mode=KeyMode(row.mode),
            role=Role(row.role),
            digest=row.digest,
            prefix=row.prefix,
            created_at=row.created_at,
            revoked=bool(row.revoked),
        )

    async def create_smpp_account(self, account: SmppAccount) -> None:
        """Store a new SMPP account (its password hash only)."""
        row = {
            "id": account.id,
            "tenant_id": account.tenant_id,
            "system_id": account.system_id,
            "password_hash": account.password_hash,
            "max_binds": account.max_binds,
            "throughput_per_second": account.throughput_per_second,
            "mode": str(account.mode),
            "created_at": account.created_at,
        }

        async def insert(connection: AsyncConnection) -> None:
            if await connection.scalar(
                sa.select(tenants.c.id).where(tenants.c.id == account.tenant_id)
            ):
                await connection.execute(sa.insert(smpp_accounts), row)
            else:
                raise LookupError(account.tenant_id)

        try:
            await self._db.write(insert)
        except LookupError as exc:
            raise ValidationError(
                f"no tenant {account.tenant_id}", code="unknown_tenant", field="tenant_id"
            ) from exc
        except IntegrityError as exc:
            raise ValidationError(
                f"an SMPP account with id {account.id} or system_id {account.system_id!r} "
                "already exists",
                code="already_exists",
                field="system_id",
            ) from exc

    async def find_smpp_account(self, system_id: str) -> SmppAccount | None:
        """The account that binds with this exact ``system_id``."""
        statement = sa.select(smpp_accounts).where(smpp_accounts.c.system_id == system_id)
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else _smpp_account_from(row)

    async def list_smpp_accounts(self, tenant_id: str) -> list[SmppAccount]:
        """The tenant's SMPP accounts, oldest first."""
        statement = (
            sa.select(smpp_accounts)
            .where(smpp_accounts.c.tenant_id == tenant_id)
            .order_by(smpp_accounts.c.id)
        )
        async with self._db.read() as connection:
            rows = await connection.execute(statement)
            return [_smpp_account_from(row) for row in rows]

    async def _tenant(self, condition: sa.ColumnElement[bool]) -> Tenant | None:
        async with self._db.read() as connection:
            row = (await connection.execute(sa.select(tenants).where(condition))).first()
        return None if row is None else _tenant_from(row)


def _tenant_from(row: sa.Row[Any]) -> Tenant:
    return Tenant(
        id=row.id, name=row.name, default_region=row.default_region, created_at=row.created_at
    )


def _smpp_account_from(row: sa.Row[Any]) -> SmppAccount:
    return SmppAccount(
        id=row.id,
        tenant_id=row.tenant_id,
        system_id=row.system_id,
        password_hash=row.password_hash,
        created_at=row.created_at,
        max_binds=row.max_binds,
        throughput_per_second=row.throughput_per_second,
        mode=KeyMode(row.mode),
    )
