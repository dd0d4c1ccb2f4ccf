"""Fixtures for integration tests on real databases: a SQLite file and the local PostgreSQL.

Every fixture that touches a database is parametrised over both engines (ids ``sqlite`` and
``postgres``; the latter marked ``postgres``, so ``-m "not postgres"`` leaves it out, and it is
skipped when no server answers). Each test gets its own database:

- ``database_url``: a migrated database, empty when the test starts and used by no other test
  meanwhile (a copy of a migrated file for SQLite; for PostgreSQL the session's migrated
  database, emptied first), as a URL for ``pigeon.store.connect`` or the application's settings;
- ``blank_database_url``: the same, but never migrated;
- ``database``: a connected ``pigeon.store.Database`` on ``database_url``, closed afterwards;
- ``clock``: a ``FakeClock``; ``stores``: the message, account and webhook stores and the job
  queue on ``database`` and ``clock``; ``factory``: builds tenants, messages and acceptances;
  ``tenant``: a stored tenant.

PostgreSQL is reached at ``PIGEON_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); test databases are named ``pigeon_t_*`` and
dropped at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from pigeon.domain.accounts import Tenant
from pigeon.domain.messages import Category, Direction, Message, MessageStatus, Part
from pigeon.ids import UlidFactory
from pigeon.ports import Acceptance, EventRecord, IdempotencyRecord, NewJob
from pigeon.queue import SqlJobQueue
from pigeon.store import (
    Database,
    SqlAccountStore,
    SqlMessageStore,
    SqlWebhookStore,
    connect,
    migrate,
)
from pigeon.store.tables import metadata
from pigeon.testing import FakeClock

T = TypeVar("T")

POSTGRES_URL = os.environ.get(
    "PIGEON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private event loop in another thread (session
    fixtures run outside the tests' loops and must not disturb them)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _postgres_url(database: str) -> str:
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


async def _admin(*statements: str) -> None:
    connection = await asyncpg.connect(_postgres_url(make_url(POSTGRES_URL).database or "test"))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "pigeon.db"
    _run(migrate(f"sqlite:///{path}"))
    return path


async def _drop_abandoned() -> None:
    """Drop test databases left by sessions that died (their pid is in the name)."""
    connection = await asyncpg.connect(_postgres_url(make_url(POSTGRES_URL).database or "test"))
    try:
        names = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pigeon\\_t\\_%'"
        )
    finally:
        await connection.close()
    for (name,) in names:
        if _abandoned(name):
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _abandoned(name: str) -> bool:
    pid = name.split("_")[2]
    return pid.isdigit() and not Path(f"/proc/{pid}").exists()


def _database_name(suffix: str = "") -> str:
    return f"pigeon_t_{os.getpid()}_{secrets.token_hex(4)}{suffix}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The name of this session's migrated PostgreSQL database (tests empty it, see below)."""
    name = _database_name()
    try:
        _run(_drop_abandoned())
        _run(_admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    try:
        _run(migrate(_postgres_url(name)))
        yield name
    finally:
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty(url: str) -> None:
    """Delete every row of every table, children first (much faster than a new database)."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            for table in reversed(metadata.sorted_tables):
                await connection.execute(str(table.delete().compile(dialect=postgresql.dialect())))
    finally:
        await connection.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database, empty at the start of the test, that no other test uses meanwhile.

    SQLite: a copy of a migrated template file. PostgreSQL: the session's migrated database,
    emptied before each test (creating a database per test costs ~0.5 s here).
    """
    if request.param == "sqlite":
        path = tmp_path / "pigeon.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = _postgres_url(request.getfixturevalue("postgres_database"))
    await _empty(url)
    yield url


@pytest.fixture(params=BACKENDS)
async def blank_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A new database with no schema at all, as a URL (slow on PostgreSQL: use sparingly)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    name = _database_name("_blank")
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except OSError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    try:
        yield _postgres_url(name)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A connected ``Database`` on this test's migrated database."""
    db = await connect(database_url)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when the test says so."""
    return FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


@dataclass
class Stores:
    """Every store adapter and the queue, on one database and one clock."""

    database: Database
    clock: FakeClock
    messages: SqlMessageStore
    accounts: SqlAccountStore
    webhooks: SqlWebhookStore
    queue: SqlJobQueue


@pytest.fixture
def stores(database: Database, clock: FakeClock) -> Stores:
    """The stores and the queue on this test's database."""
    return Stores(
        database=database,
        clock=clock,
        messages=SqlMessageStore(database, clock),
        accounts=SqlAccountStore(database),
        webhooks=SqlWebhookStore(database),
        queue=SqlJobQueue(database, clock),
    )


#: One monotonic factory for the tests' ids: in order even within one millisecond.
_ULIDS = UlidFactory()


def new_id(prefix: str) -> str:
    """A prefixed, time-ordered id like the application's (``msg_01J...``)."""
    return f"{prefix}_{_ULIDS.ulid()}"


@dataclass
class Factory:
    """Builds domain objects for store tests, stamped with the fake clock."""

    clock: FakeClock
    accounts: SqlAccountStore
    _tenants: int = field(default=0)

    async def tenant(self, name: str | None = None) -> Tenant:
        """A stored tenant."""
        self._tenants += 1
        tenant = Tenant(
            id=new_id("ten"),
            name=name or f"tenant-{self._tenants}-{secrets.token_hex(3)}",
            default_region="GB",
            created_at=self.clock.now(),
        )
        await self.accounts.create_tenant(tenant)
        return tenant

    def message(self, tenant: Tenant | str, **changes: Any) -> Message:
        """An accepted outbound message (not stored)."""
        now = self.clock.now()
        values: dict[str, Any] = {
            "id": new_id("msg"),
            "tenant_id": tenant if isinstance(tenant, str) else tenant.id,
            "direction": Direction.MT,
            "to": "+447700900123",
            "sender": "Pigeon",
            "body": "Your code is 123456",
            "category": Category.OTP,
            "encoding": "gsm7",
            "segments": 1,
            "status": MessageStatus.QUEUED,
            "created_at": now,
            "updated_at": now,
            "country": "GB",
            "expires_at": now + timedelta(hours=1),
            "status_sequence": 1,
        }
        values.update(changes)
        return Message(**values)

    def acceptance(
        self,
        message: Message,
        *,
        idempotency_key: str | None = None,
        request_hash: str = "hash-1",
    ) -> Acceptance:
        """What accepting ``message`` writes: a queued event and a dispatch job."""
        now = self.clock.now()
        event = EventRecord(
            id=new_id("evt"),
            tenant_id=message.tenant_id,
            message_id=message.id,
            type="message.queued",
            status=message.status,
            sequence=message.status_sequence,
            at=now,
            detail=None,
            payload={"id": message.id, "status": str(message.status)},
        )
        job = NewJob(
            id=f"dispatch:{message.id}",
            kind="dispatch",
            payload={"message_id": message.id},
            run_at=now,
            priority=message.category.priority,
        )
        record = None
        if idempotency_key is not None:
            record = IdempotencyRecord(
                tenant_id=message.tenant_id,
                key=idempotency_key,
                request_hash=request_hash,
                message_id=message.id,
                created_at=now,
            )
        return Acceptance(message=message, events=[event], jobs=[job], idempotency=record)

    @staticmethod
    def part(index: int, carrier_id: str | None = None, **changes: Any) -> Part:
        """A message part."""
        return Part(index=index, carrier_message_id=carrier_id, **changes)


@pytest.fixture
def factory(stores: Stores) -> Factory:
    """Builds tenants (stored), messages and acceptances (not stored)."""
    return Factory(clock=stores.clock, accounts=stores.accounts)


@pytest.fixture
async def tenant(factory: Factory) -> Tenant:
    """A stored tenant."""
    return await factory.tenant()
