"""``SqlWebhookStore``: webhook endpoints and the log of delivery attempts."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.ports import WebhookAttempt, WebhookEndpoint
from pigeon.store.bulk import BulkDelete, BulkInsert
from pigeon.store.database import Database
from pigeon.store.tables import jobs, webhook_attempts, webhook_endpoints


def _attempt_row(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "event_id": attempt.event_id,
        "endpoint_id": attempt.endpoint_id,
        "url": attempt.url,
        "attempt": attempt.attempt,
        "at": attempt.at,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }


class SqlWebhookStore:
    """``ports.WebhookStore`` on a ``Database``. Deleting an endpoint keeps its attempts (their
    ``endpoint_id`` becomes ``None``): the delivery log outlives the endpoint."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._insert_attempts = BulkInsert(webhook_attempts, database.dialect)
        self._complete_jobs = BulkDelete(jobs, database.dialect, key=("id", "lease_owner"))
        # Bound once: the writer groups batched items by this callable.
        self._attempts_run = self._attempts_batch

    async def create_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store a new endpoint."""
        row = {
            "id": endpoint.id,
            "tenant_id": endpoint.tenant_id,
            "url": endpoint.url,
            "events": list(endpoint.events),
            "secret": endpoint.secret,
            "created_at": endpoint.created_at,
            "disabled_at": endpoint.disabled_at,
        }

        async def insert(connection: AsyncConnection) -> None:
            await connection.execute(sa.insert(webhook_endpoints), row)

        await self._db.write(insert)

    async def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        """The tenant's endpoints, disabled ones included, oldest first."""
        statement = (
            sa.select(webhook_endpoints)
            .where(webhook_endpoints.c.tenant_id == tenant_id)
            .order_by(webhook_endpoints.c.id)
        )
        async with self._db.read() as connection:
            return [_endpoint_from(row) for row in await connection.execute(statement)]

    async def get_endpoint(
        self, endpoint_id: str, tenant_id: str | None = None
    ) -> WebhookEndpoint | None:
        """The endpoint; ``None`` when absent or owned by another tenant."""
        statement = sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        if tenant_id is not None:
            statement = statement.where(webhook_endpoints.c.tenant_id == tenant_id)
        async with self._db.read() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else _endpoint_from(row)

    async def delete_endpoint(self, endpoint_id: str, tenant_id: str) -> bool:
        """Delete the tenant's endpoint; ``False`` when it has none with this id."""
        statement = sa.delete(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.tenant_id == tenant_id
        )
        # What ``ON DELETE SET NULL`` did before ADR 35 (SQLite's foreign key still does it).
        orphans = (
            sa.update(webhook_attempts)
            .where(webhook_attempts.c.endpoint_id == endpoint_id)
            .values(endpoint_id=None)
        )

        async def delete(connection: AsyncConnection) -> bool:
            if (await connection.execute(statement)).rowcount == 0:
                return False
            await connection.execute(orphans)
            return True

        return await self._db.write(delete)

    async def disable_endpoint(self, endpoint_id: str, at: datetime) -> None:
        """Mark the endpoint disabled from ``at`` (an earlier disable time is kept)."""
        statement = (
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.disabled_at.is_(None))
            .values(disabled_at=at)
        )

        async def disable(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._db.write(disable)

    async def record_attempt(
        self, attempt: WebhookAttempt, *, complete_job: tuple[str, str] | None = None
    ) -> None:
        """Append one delivery attempt to the log; with ``complete_job`` (job id, lease
        owner), complete that job in the same transaction (as ``JobQueue.complete``)."""
        # Batched: concurrent deliveries log their attempts in one multi-row INSERT, and
        # complete their jobs with one DELETE.
        await self._db.write_batched(self._attempts_run, (_attempt_row(attempt), complete_job))

    async def record_attempt_each(
        self, attempts: Sequence[tuple[WebhookAttempt, tuple[str, str] | None]]
    ) -> list[Exception | None]:
        """``record_attempt`` for each (attempt, job to complete), submitted to the writer
        together (its next batch, as concurrent calls would share); per attempt ``None`` or
        the exception that failed it."""
        write = self._db.write_batched
        run = self._attempts_run
        waiting: list[Awaitable[None] | Exception] = []
        for attempt, complete_job in attempts:
            try:
                waiting.append(write(run, (_attempt_row(attempt), complete_job)))
            except Exception as exc:  # the writer is closed: this one and the rest fail
                waiting.append(exc)
        outcomes: list[Exception | None] = []
        for pending in waiting:
            if isinstance(pending, Exception):
                outcomes.append(pending)
                continue
            try:
                await pending
            except Exception as exc:  # its batch failed
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def _attempts_batch(
        self,
        connection: AsyncConnection,
        items: Sequence[tuple[dict[str, Any], tuple[str, str] | None]],
    ) -> list[None]:
        await self._insert_attempts(connection, [row for row, _ in items])
        done = [{"id": job[0], "lease_owner": job[1]} for _, job in items if job is not None]
        if done:
            await self._complete_jobs(connection, done)
        return [None] * len(items)

    async def attempts_for(self, event_id: str) -> list[WebhookAttempt]:
        """Every attempt to deliver the event, oldest first."""
        statement = (
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.event_id == event_id)
            .order_by(webhook_attempts.c.at, webhook_attempts.c.attempt, webhook_attempts.c.id)
        )
        async with self._db.read() as connection:
            rows = await connection.execute(statement)
            return [_attempt_from(row) for row in rows]


def _endpoint_from(row: sa.Row[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        events=tuple(row.events),
        secret=row.secret,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def _attempt_from(row: sa.Row[Any]) -> WebhookAttempt:
    return WebhookAttempt(
        id=row.id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        url=row.url,
        attempt=row.attempt,
        at=row.at,
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
    )
