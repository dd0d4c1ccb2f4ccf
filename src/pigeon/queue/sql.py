"""``SqlJobQueue``: a lease queue in the ``jobs`` table, next to the messages (an outbox).

Because jobs live in the same database as messages, "message accepted" and "dispatch job
enqueued" commit together: no dual write, nothing to reconcile after a crash.

How a job moves:

- **enqueue** inserts it (a duplicate id is ignored). A job already due is ``ready``.
- **claim** first *wakes* waiting jobs that came due (``ready = true``, oldest first, a bounded
  number per claim), then leases up to ``limit`` ready jobs of the wanted kinds, highest
  ``priority`` first, then earliest ``run_at``: they get ``lease_owner``, ``lease_until`` and stop
  being ready, and their ``run_at`` moves to ``lease_until``. So an abandoned lease needs no
  sweeper: at its expiry the job is simply due again, and the next claim, by anyone, takes it
  over. A claim only ever reads ready rows, one kind at a time, through ``ix_jobs_claim``
  (kind, priority DESC, run_at; the ready jobs only, ADR 28): an index range already in claim
  order, however many jobs are scheduled for later, leased, or waiting in a backlog. The wake
  reads ``ix_jobs_wake`` (run_at; the others only). Both statements write ``ready IS true`` /
  ``IS false``, the indexes' own conditions, which is what lets the databases use them.
  PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers on several nodes
  never wait for nor get the same job; on SQLite the single writer already serialises claims.
- **complete** deletes the job if ``owner`` still holds its lease (even past its expiry, as long
  as nobody took it over); otherwise it does nothing: the new holder decides.
- **retry** gives the job back (same owner check), due at ``run_at``, with ``attempts + 1`` and
  ``last_error``.
- **wake** makes every job whose id starts with a prefix and that nobody holds due now (an
  SMPP customer that binds again gets the receipts kept for it at once, whatever their backoff).
- **release_gone_leases** makes the jobs leased by processes of this machine that have
  ended (``pigeon.queue.lease_owners``) due now, as if their leases had expired: a gateway
  restarted after a crash, or a worker process that replaces a killed one, takes them over at
  once instead of after ``lease_seconds``.

``attempts`` counts tries that ended without ``complete``: each ``retry`` and each lease that
expired (a worker that crashed or hung). A job's first claim sees ``attempts == 0``.
``Job.run_at`` is when the claimed job was due.

The queue does not import the store (they are independent adapters): it works on any database
object with the ``QueueDatabase`` shape, which ``pigeon.store.Database`` has.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.value_objects import value_object
from pigeon.ports import Clock, Job, NewJob
from pigeon.queue.lease_owners import owner_gone
from pigeon.raw_sql import RawSelect, asyncpg_driver, sqlite_driver

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: How many waiting jobs one claim wakes at most (the rest wake at the next claims).
WAKE_BATCH: Final = 5_000

#: Below every priority a job can have (``priority`` is a 32-bit integer column): the floor of
#: a claim that takes any job.
LOWEST_PRIORITY: Final = -(2**31)

#: Above every priority a job can have: the ceiling of a claim that takes any job.
HIGHEST_PRIORITY: Final = 2**31 - 1

#: Before every job's due time: the ``overdue`` of a claim whose ceiling has no exception.
NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)


@value_object
class Band:
    """The priorities a claim takes: ``floor`` to ``ceiling``, and above the ceiling the jobs
    due since ``overdue`` or earlier (those the processes they were left to did not take)."""

    floor: int
    ceiling: int
    overdue: datetime

    def values(self) -> dict[str, Any]:
        """The claim statements' parameters."""
        return {"floor": self.floor, "ceiling": self.ceiling, "overdue": self.overdue}


#: PostgreSQL: how often (clock time) a claim first makes the jobs due by now claimable.
PG_WAKE_INTERVAL: Final = timedelta(milliseconds=50)


class QueueDatabase(Protocol):
    """What the queue needs from a database (``pigeon.store.Database`` provides it)."""

    @property
    def dialect(self) -> str: ...

    @property
    def metadata(self) -> sa.MetaData: ...

    async def write(
        self,
        operation: Callable[[AsyncConnection], Awaitable[T]],
        *,
        urgent: bool = False,
        alone: bool = False,
    ) -> T: ...

    def write_batched(
        self,
        run: Callable[[AsyncConnection, Sequence[ItemT]], Awaitable[Sequence[ResultT | Exception]]],
        item: ItemT,
    ) -> Awaitable[ResultT]: ...

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    async def scan(self, statement: sa.Executable) -> list[Any]: ...

    def raw_pg_read(self) -> AbstractAsyncContextManager[Any]: ...

    @property
    def sqlite_reads(self) -> bool: ...

    def raw_read(self) -> AbstractContextManager[sqlite3.Connection]: ...


class SqlJobQueue:
    """``ports.JobQueue`` on the database's ``jobs`` table, written through its writer."""

    def __init__(self, database: QueueDatabase, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._postgres = database.dialect == "postgresql"
        self._jobs = database.metadata.tables["jobs"]
        # On SQLite the claim and completion statements skip SQLAlchemy (``pigeon.raw_sql``).
        self._raw = None if self._postgres else _RawSqliteQueue(self._jobs)
        self._pg_raw = _RawPostgresQueue(self._jobs) if self._postgres else None
        #: PostgreSQL: when due jobs were last woken (by this process's clock).
        self._woken_at: datetime | None = None
        #: Called once enqueued jobs that are due now are durable (wakes this process's runner).
        self.on_due_jobs: Callable[[], None] | None = None
        # Bound once: the writer groups the completions of a batch by this callable.
        self._complete_run = self._complete_batch

    async def enqueue(self, jobs: Sequence[NewJob]) -> None:
        """Add jobs durably; ids already present are ignored (enqueueing is idempotent)."""
        if not jobs:
            return
        now = self._clock.now()
        rows = [_job_row(job, now) for job in jobs]
        table = self._jobs
        statement = (
            postgresql.insert(table).on_conflict_do_nothing()
            if self._postgres
            else sqlite.insert(table).on_conflict_do_nothing()
        )

        async def insert(connection: AsyncConnection) -> None:
            await connection.execute(statement, rows)

        await self._db.write(insert)
        if self.on_due_jobs is not None and any(job.run_at <= now for job in jobs):
            self.on_due_jobs()

    async def claim(
        self,
        kinds: Sequence[str],
        limit: int,
        owner: str,
        lease_seconds: float,
        *,
        min_priority: int | None = None,
        max_priority: int | None = None,
        ceiling_grace: timedelta | None = None,
        alone: bool = True,
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs, highest priority first, then earliest ``run_at``
        (only jobs of at least ``min_priority`` and at most ``max_priority``, when given: the
        runners' urgent lane, the OTP worker processes and the others). With
        ``ceiling_grace``, jobs above ``max_priority`` that have been due that long are taken
        too: the OTPs an OTP worker process did not take (it is down, or cannot bind).

        Without ``alone`` the claim joins the writer's next batch of writes on SQLite (no
        transaction, commit and WAL sync of its own); PostgreSQL's claim is one statement
        outside the writer either way."""
        if not kinds or limit < 1:
            return []
        now = self._clock.now()
        until = now + timedelta(seconds=lease_seconds)
        kinds = list(dict.fromkeys(kinds))
        band = Band(
            LOWEST_PRIORITY if min_priority is None else min_priority,
            HIGHEST_PRIORITY if max_priority is None else max_priority,
            NEVER if ceiling_grace is None else now - ceiling_grace,
        )
        if self._pg_raw is not None:
            return await self._pg_claim(kinds, limit, owner, now, until, band)
        if self._raw is not None and self._db.sqlite_reads:
            # Most claims that find nothing were woken for jobs an earlier claim took (61%
            # of ``serve``'s webhook claims in scenario c): read first, without the write
            # lock, and spare those a transaction, the lock's turn and a WAL sync.
            with self._db.raw_read() as driver:
                if not self._raw.claimable(driver, kinds, now, band):
                    return []

        async def claim(connection: AsyncConnection) -> list[Job]:
            driver = None if self._raw is None else await sqlite_driver(connection)
            if driver is not None and self._raw is not None:
                rows: Sequence[Any] = self._raw.claim(driver, kinds, limit, owner, now, until, band)
            else:
                rows = await self._claim(connection, kinds, limit, owner, now, until, band)
            return _claimed_jobs(rows, owner, until)

        # Alone: the runner waits on it with free slots, and what it claims first (an OTP)
        # should not sit behind the mutations already queued for the writer, nor wait for a
        # batch of them to be worked out and written with it (that took ~30 ms a claim
        # behind a marketing backlog: most of an OTP's time to its carrier). Jobs that are
        # never urgent (webhooks) are claimed in the next batch instead: a transaction, a
        # commit and a WAL sync fewer per claim.
        return await self._db.write(claim, alone=alone)

    async def _pg_claim(
        self,
        kinds: list[str],
        limit: int,
        owner: str,
        now: datetime,
        until: datetime,
        band: Band,
    ) -> list[Job]:
        """PostgreSQL: the claim as one statement in autocommit, outside the writer.

        Through the writer a claim was a transaction of five or six statements (BEGIN, the
        wake, one SELECT per kind, the UPDATE, COMMIT), each an await on a busy event loop:
        50-130 ms behind a marketing backlog, most of an OTP's way to its carrier. One
        ``UPDATE ... FROM (the best jobs of each kind, FOR UPDATE SKIP LOCKED) RETURNING`` is
        atomic on its own; the wake runs at most every ``PG_WAKE_INTERVAL`` of clock time
        (a job due later, a retry, an expired lease waits that much longer at most).
        """
        assert self._pg_raw is not None
        async with self._db.raw_pg_read() as driver:
            if self._woken_at is None or now - self._woken_at >= PG_WAKE_INTERVAL:
                await self._pg_raw.wake(driver, now)
                self._woken_at = now
            rows = await self._pg_raw.claim_at_once(driver, kinds, limit, owner, until, band)
        return _claimed_jobs(rows, owner, until)

    async def _claim(
        self,
        connection: AsyncConnection,
        kinds: list[str],
        limit: int,
        owner: str,
        now: datetime,
        until: datetime,
        band: Band,
    ) -> Sequence[Any]:
        """The claim through SQLAlchemy (PostgreSQL; SQLite under another driver)."""
        # Through SQLAlchemy first: its asyncpg adapter begins the transaction lazily, at the
        # first statement; only after it may statements go to asyncpg directly.
        await connection.execute(self._wake(now))
        if self._postgres and len(kinds) == 1:
            statement = self._claim_in_one_statement(kinds[0], limit, owner, until, band)
            return (await connection.execute(statement)).all()
        if self._pg_raw is not None:
            driver = await asyncpg_driver(connection)
            if driver is not None:
                return await self._pg_raw.claim(driver, kinds, limit, owner, until, band)
        return await self._claim_by_kind(connection, kinds, limit, owner, until, band)

    async def complete(self, job_id: str, owner: str) -> None:
        """Delete the job if ``owner`` still holds it; otherwise do nothing."""
        await self._db.write_batched(self._complete_run, (job_id, owner))

    async def _complete_batch(
        self, connection: AsyncConnection, items: Sequence[tuple[str, str]]
    ) -> list[None]:
        # One DELETE per owner in the batch (usually one or two), not one per job.
        by_owner: dict[str, list[str]] = {}
        for job_id, owner in items:
            by_owner.setdefault(owner, []).append(job_id)
        driver = None if self._raw is None else await sqlite_driver(connection)
        table = self._jobs
        for owner, ids in by_owner.items():
            if driver is not None and self._raw is not None:
                self._raw.complete(driver, owner, ids)
                continue
            await connection.execute(
                sa.delete(table).where(table.c.lease_owner == owner, self._one_of(table.c.id, ids))
            )
        return [None] * len(items)

    async def retry(self, job_id: str, owner: str, run_at: datetime, error: str) -> None:
        """Give the job back, due again at ``run_at``; its ``attempts`` grows by one."""
        table = self._jobs
        statement = (
            sa.update(table)
            .where(table.c.id == job_id, table.c.lease_owner == owner)
            .values(
                run_at=run_at,
                ready=run_at <= self._clock.now(),
                lease_owner=None,
                lease_until=None,
                attempts=table.c.attempts + 1,
                last_error=error,
            )
        )

        async def update(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._db.write(update)

    async def postpone(self, jobs: Sequence[tuple[str, str, datetime]]) -> None:
        """Give jobs back untried, each due again at its ``run_at`` (``attempts`` kept), in
        one transaction; a job whose lease ``owner`` lost is left alone."""
        if not jobs:
            return
        table = self._jobs
        statement = (
            sa.update(table)
            .where(
                table.c.id == sa.bindparam("b_id"), table.c.lease_owner == sa.bindparam("b_owner")
            )
            .values(
                run_at=sa.bindparam("b_run_at"),
                ready=sa.bindparam("b_ready"),
                lease_owner=None,
                lease_until=None,
            )
        )
        now = self._clock.now()
        rows = [
            {"b_id": job_id, "b_owner": owner, "b_run_at": run_at, "b_ready": run_at <= now}
            for job_id, owner, run_at in jobs
        ]

        async def update(connection: AsyncConnection) -> None:
            await connection.execute(statement, rows)

        await self._db.write(update)

    async def wake(self, id_prefix: str) -> int:
        """Make every not-leased job whose id starts with ``id_prefix`` due now; returns how
        many jobs that touched (jobs already due count too: their ``run_at`` becomes now)."""
        if not id_prefix:
            raise ValueError("wake needs a non-empty id prefix")
        now = self._clock.now()
        table = self._jobs
        statement = (
            sa.update(table)
            .where(
                # autoescape: ids are full of ``_``, a LIKE wildcard.
                table.c.id.startswith(id_prefix, autoescape=True),
                table.c.lease_owner.is_(None),
            )
            .values(run_at=now, ready=True)
        )

        async def update(connection: AsyncConnection) -> int:
            result = await connection.execute(statement)
            return int(result.rowcount or 0)

        return await self._db.write(update)

    async def release_gone_leases(self) -> list[str]:
        """Make the jobs leased by owners that have surely ended (``owner_gone``: processes of
        this machine that died) due now, as if their leases had expired: the next claim takes
        them over and counts the try (``attempts``). Returns those owners.

        A job is leased while it is not ready and has an owner; one whose expired lease was
        woken already is ready and needs nothing."""
        table = self._jobs
        leased = (
            sa.select(table.c.lease_owner)
            .where(table.c.lease_owner.is_not(None), table.c.ready.is_(sa.false()))
            .distinct()
        )
        async with self._db.read() as connection:
            owners = list((await connection.execute(leased)).scalars())
        gone = sorted(owner for owner in owners if owner_gone(owner))
        if not gone:
            return []
        now = self._clock.now()
        statement = (
            sa.update(table)
            .where(table.c.lease_owner.in_(gone), table.c.ready.is_(sa.false()))
            # What the wake does to a lease that expired: ready, its owner kept, so that the
            # claim that takes it over counts the try.
            .values(ready=True, run_at=now, lease_until=now)
        )

        async def update(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._db.write(update)
        if self.on_due_jobs is not None:
            self.on_due_jobs()
        return gone

    async def pending(self) -> dict[str, int]:
        """How many jobs wait, by kind: every job not yet completed (due, scheduled for later,
        or leased)."""
        table = self._jobs
        # Ready jobs counted through ``ix_jobs_claim`` and the others (leased or scheduled)
        # through ``ix_jobs_wake``, each index holding one half: a quarter of the time of a
        # read of the table, whose rows hold the payloads (ADR 28). Still every job, which
        # ``/metrics`` samples at each scrape: off the event loop.
        halves = [
            sa.select(table.c.kind, sa.func.count())
            .where(table.c.ready.is_(ready))
            .group_by(table.c.kind)
            for ready in (sa.true(), sa.false())
        ]
        counts: dict[str, int] = {}
        for row in await self._db.scan(sa.union_all(*halves)):
            counts[str(row[0])] = counts.get(str(row[0]), 0) + int(row[1])
        return counts

    async def probe(self) -> None:
        """Read at most one job (``pending`` counts them all: a scan of the whole table, which
        a readiness check repeated every few seconds behind a backlog should not cost)."""
        statement = sa.select(self._jobs.c.id).limit(1)
        async with self._db.read() as connection:
            await connection.execute(statement)

    # --- statements -----------------------------------------------------------------------

    def _one_of(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> Any:
        # ``= ANY(array)`` on PostgreSQL: one prepared statement whatever the number of values.
        if self._postgres:
            array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
            return column == sa.any_(array)
        return column.in_(list(values))

    def _wake(self, now: datetime) -> sa.Update:
        return wake_due_jobs(self._jobs, now, skip_locked=self._postgres)

    def _lease_values(self, owner: str, until: datetime) -> dict[str, Any]:
        return lease_values(self._jobs, owner, until)

    def _ready(self, kind: str, limit: int, band: Band) -> sa.Select[Any]:
        # One kind at a time: an index range of ix_jobs_claim already in claim order.
        statement = ready_jobs(self._jobs, kind, band.floor, band.ceiling, band.overdue, limit)
        if self._postgres:
            statement = statement.with_for_update(skip_locked=True)
        return statement

    def _claim_in_one_statement(
        self, kind: str, limit: int, owner: str, until: datetime, band: Band
    ) -> sa.Update:
        # PostgreSQL, one kind: UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING.
        table = self._jobs
        picked = self._ready(kind, limit, band).subquery("picked")
        return (
            sa.update(table)
            .where(table.c.id == picked.c.id)
            .values(self._lease_values(owner, until))
            .returning(
                table.c.id,
                table.c.kind,
                table.c.payload,
                table.c.priority,
                table.c.attempts,
                picked.c.due_at,
            )
        )

    async def _claim_by_kind(
        self,
        connection: AsyncConnection,
        kinds: list[str],
        limit: int,
        owner: str,
        until: datetime,
        band: Band,
    ) -> list[Any]:
        # The best ``limit`` jobs of each kind (each an index range, locked with SKIP LOCKED on
        # PostgreSQL), merged here: the best ``limit`` overall are among them. Sorting every
        # ready job of several kinds in SQL would cost as much as the backlog is long. SQLite
        # runs this too, as its RETURNING cannot see the due times of a FROM table; the
        # writer's transaction makes these statements one atomic step.
        candidates = []
        for kind in kinds:
            candidates.extend((await connection.execute(self._ready(kind, limit, band))).all())
        if not candidates:
            return []
        candidates.sort(key=lambda row: (-row.priority, row.due_at, row.id))
        due = {row.id: row.due_at for row in candidates[:limit]}
        table = self._jobs
        statement = (
            sa.update(table)
            .where(self._one_of(table.c.id, list(due)))
            .values(self._lease_values(owner, until))
            .returning(
                table.c.id, table.c.kind, table.c.payload, table.c.priority, table.c.attempts
            )
        )
        rows = (await connection.execute(statement)).all()
        return [_Claimed(row, due[row.id]) for row in rows]


def ready_jobs(
    table: sa.FromClause,
    kind: Any,
    floor: Any,
    ceiling: Any,
    overdue: Any,
    limit: Any,
) -> sa.Select[Any]:
    """The best ``limit`` ready jobs of ``kind`` in a band (id, priority, due_at), in claim
    order: an index range of ``ix_jobs_claim``. The arguments are values or SQL expressions
    (bound parameters of a statement compiled once, a LATERAL's column)."""
    jobs = table.c
    return (
        sa.select(jobs.id, jobs.priority, jobs.run_at.label("due_at"))
        .where(
            jobs.ready.is_(sa.true()),
            jobs.kind == kind,
            jobs.priority >= floor,
            sa.or_(jobs.priority <= ceiling, jobs.run_at <= overdue),
        )
        .order_by(jobs.priority.desc(), jobs.run_at)
        .limit(limit)
    )


def _bound_band(table: sa.Table) -> tuple[Any, Any, Any, Any]:
    """A band's parameters and the limit as the statements compiled once bind them
    (``Band.values`` and ``limit``)."""
    return (
        sa.bindparam("floor", type_=sa.Integer),
        sa.bindparam("ceiling", type_=sa.Integer),
        sa.bindparam("overdue", type_=table.c.run_at.type),
        sa.bindparam("limit", type_=sa.Integer),
    )


def wake_due_jobs(table: sa.Table, now: Any, *, skip_locked: bool) -> sa.Update:
    """Make up to ``WAKE_BATCH`` waiting jobs due by ``now`` (a value or an expression)
    claimable, earliest first; ``skip_locked`` (PostgreSQL) passes over rows others hold."""
    waiting = (
        sa.select(table.c.id)
        .where(table.c.ready.is_(sa.false()), table.c.run_at <= now)
        .order_by(table.c.run_at)
        .limit(WAKE_BATCH)
    )
    if skip_locked:
        waiting = waiting.with_for_update(skip_locked=True)
    return sa.update(table).where(table.c.id.in_(waiting.scalar_subquery())).values(ready=True)


def lease_values(table: sa.Table, owner: Any, until: Any) -> dict[str, Any]:
    """The values a lease writes: held by ``owner`` until ``until`` (values or expressions),
    due again then, and one attempt more when it takes over an expired lease (the previous
    try failed)."""
    return {
        "ready": False,
        "lease_owner": owner,
        "lease_until": until,
        "run_at": until,
        "attempts": table.c.attempts + sa.case((table.c.lease_owner.is_(None), 0), else_=1),
    }


class _Claimed:
    """A claimed row plus its due time, shaped like the single-statement RETURNING row."""

    __slots__ = ("attempts", "due_at", "id", "kind", "payload", "priority")

    def __init__(self, row: Any, due_at: datetime) -> None:
        self.id = row.id
        self.kind = row.kind
        self.payload = row.payload
        self.priority = row.priority
        self.attempts = row.attempts
        self.due_at = due_at


def _claimed_jobs(rows: Sequence[Any], owner: str, until: datetime) -> list[Job]:
    """The jobs of claimed rows (id, kind, payload, priority, attempts, due_at), in claim
    order: highest priority first, then earliest due."""
    # By position (id, kind, payload, priority, run_at, attempts, lease_owner, lease_until):
    # half the cost of keywords, for every job claimed.
    found = [
        Job(row.id, row.kind, row.payload, row.priority, row.due_at, row.attempts, owner, until)
        for row in rows
    ]
    found.sort(key=lambda job: (-job.priority, job.run_at, job.id))
    return found


def _job_row(job: NewJob, now: datetime) -> dict[str, Any]:
    # Keep in step with ``pigeon.store.statements.JOB_ROW`` (the store enqueues in its own
    # transactions; the two adapters may not import each other).
    return {
        "id": job.id,
        "kind": job.kind,
        "payload": job.payload,
        "priority": job.priority,
        "run_at": job.run_at,
        "ready": job.run_at <= now,
        "attempts": 0,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
        "created_at": now,
    }


class _RawSqliteQueue:
    """The claim and completion statements compiled once for ``sqlite3`` (the same SQL the
    SQLAlchemy path emits, with bound parameters instead of values built in)."""

    def __init__(self, table: sa.Table) -> None:
        self._table = table
        # Payloads read back through msgspec, as the engines read them (``json.loads`` took a
        # few per cent of a process's CPU end to end).
        self._dialect = SQLiteDialect_pysqlite(json_deserializer=msgspec.json.decode)
        now = sa.bindparam("now", type_=table.c.run_at.type)
        self._wake = RawSelect(
            wake_due_jobs(table, now, skip_locked=False), self._dialect, columns=()
        )
        self._ready = RawSelect(
            ready_jobs(table, sa.bindparam("kind"), *_bound_band(table)), self._dialect
        )
        # One waiting job due by ``now``: what the claim's wake would make ready.
        self._waiting = RawSelect(
            sa.select(table.c.id)
            .where(table.c.ready.is_(sa.false()), table.c.run_at <= now)
            .order_by(table.c.run_at)
            .limit(1),
            self._dialect,
        )
        self._lease: dict[int, RawSelect] = {}
        self._complete: dict[int, RawSelect] = {}

    def claimable(
        self, driver: sqlite3.Connection, kinds: Sequence[str], now: datetime, band: Band
    ) -> bool:
        """Whether a claim now could lease anything: a waiting job due by ``now`` (its wake
        would make it ready) or a ready one of ``kinds`` in ``band``. Index reads that need
        no write lock (``driver``: a read connection)."""
        if self._waiting.raw_rows(driver, {"now": now}):
            return True
        values = band.values()
        for kind in kinds:
            if self._ready.raw_rows(driver, {"kind": kind, "limit": 1, **values}):
                return True
        return False

    def claim(
        self,
        driver: sqlite3.Connection,
        kinds: Sequence[str],
        limit: int,
        owner: str,
        now: datetime,
        until: datetime,
        band: Band,
    ) -> list[Any]:
        """Wake due jobs, then lease the best ``limit`` ready ones of ``kinds`` (of at least
        ``band``)."""
        self._wake.rows(driver, {"now": now})
        candidates: list[Any] = []
        for kind in kinds:
            wanted = {"kind": kind, "limit": limit, **band.values()}
            candidates.extend(self._ready.rows(driver, wanted))
        if not candidates:
            return []
        candidates.sort(key=lambda row: (-row.priority, row.due_at, row.id))
        due = {row.id: row.due_at for row in candidates[:limit]}
        ids = _padded(list(due))
        lease = self._lease_statement(len(ids))
        values: dict[str, Any] = {f"id_{i}": job_id for i, job_id in enumerate(ids)}
        values.update(owner=owner, until=until)
        return [_Claimed(row, due[row.id]) for row in lease.rows(driver, values)]

    def complete(self, driver: sqlite3.Connection, owner: str, ids: Sequence[str]) -> None:
        """Delete the jobs of ``ids`` that ``owner`` holds."""
        for start in range(0, len(ids), _CHUNK):
            chunk = _padded(ids[start : start + _CHUNK])
            values: dict[str, Any] = {f"id_{i}": job_id for i, job_id in enumerate(chunk)}
            values["owner"] = owner
            self._complete_statement(len(chunk)).rows(driver, values)

    def _ids(self, count: int) -> sa.ColumnElement[bool]:
        return self._table.c.id.in_([sa.bindparam(f"id_{i}") for i in range(count)])

    def _lease_statement(self, count: int) -> RawSelect:
        found = self._lease.get(count)
        if found is None:
            table = self._table
            until = sa.bindparam("until", type_=table.c.lease_until.type)
            returned = (table.c.id, table.c.kind, table.c.payload, table.c.priority)
            statement = (
                sa.update(table)
                .where(self._ids(count))
                .values(lease_values(table, sa.bindparam("owner"), until))
                .returning(*returned, table.c.attempts)
            )
            found = RawSelect(statement, self._dialect, columns=(*returned, table.c.attempts))
            self._lease[count] = found
        return found

    def _complete_statement(self, count: int) -> RawSelect:
        found = self._complete.get(count)
        if found is None:
            table = self._table
            statement = sa.delete(table).where(
                table.c.lease_owner == sa.bindparam("owner"), self._ids(count)
            )
            found = self._complete[count] = RawSelect(statement, self._dialect, columns=())
        return found


class _RawPostgresQueue:
    """The multi-kind claim compiled once for asyncpg: per kind the best ``limit`` ready jobs
    (``FOR UPDATE SKIP LOCKED``), then one UPDATE of the chosen ones, as ``_claim_by_kind``
    does through SQLAlchemy. Used inside the claim's transaction only."""

    def __init__(self, table: sa.Table) -> None:
        # The class has no annotations; an instance is all that compiling needs.
        dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
        self._ready = RawSelect(
            ready_jobs(table, sa.bindparam("kind"), *_bound_band(table)).with_for_update(
                skip_locked=True
            ),
            dialect,
        )
        until = sa.bindparam("until", type_=table.c.lease_until.type)
        returned = (table.c.id, table.c.kind, table.c.payload, table.c.priority, table.c.attempts)
        ids = sa.bindparam("ids", type_=postgresql.ARRAY(table.c.id.type))
        lease = lease_values(table, sa.bindparam("owner"), until)
        self._lease = RawSelect(
            sa.update(table).where(table.c.id == sa.any_(ids)).values(lease).returning(*returned),
            dialect,
            columns=returned,
        )
        # One statement for the whole claim: for each kind (a LATERAL subquery over the array
        # of kinds) the best ready jobs, locked with SKIP LOCKED; the best ``limit`` of them
        # all; leased and returned.
        kinds = (
            sa.func.unnest(sa.bindparam("kinds", type_=postgresql.ARRAY(table.c.kind.type)))
            .table_valued("kind")
            .render_derived(name="wanted")
        )
        ready = table.alias("ready_jobs")
        best = (
            ready_jobs(ready, kinds.c.kind, *_bound_band(table))
            .with_for_update(skip_locked=True)
            .lateral("best")
        )
        chosen = (
            sa.select(best.c.id, best.c.due_at)
            .select_from(kinds.join(best, sa.true()))
            .order_by(best.c.priority.desc(), best.c.due_at)
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .subquery("chosen")
        )
        claimed = (*returned, chosen.c.due_at)
        self._claim_at_once = RawSelect(
            sa.update(table).where(table.c.id == chosen.c.id).values(lease).returning(*claimed),
            dialect,
            columns=claimed,
        )
        now = sa.bindparam("now", type_=table.c.run_at.type)
        self._wake = RawSelect(wake_due_jobs(table, now, skip_locked=False), dialect, columns=())

    async def wake(self, driver: Any, now: datetime) -> None:
        """Make the jobs due by ``now`` claimable (``ready``), in autocommit."""
        await self._wake.fetch(driver, {"now": now})

    async def claim_at_once(
        self,
        driver: Any,
        kinds: Sequence[str],
        limit: int,
        owner: str,
        until: datetime,
        band: Band,
    ) -> list[Any]:
        """Lease the best ``limit`` ready jobs of ``kinds`` (of ``band``)
        in one statement (atomic on its own: autocommit is enough)."""
        values = {"kinds": list(kinds), "limit": limit, **band.values()}
        values.update(owner=owner, until=until)
        return await self._claim_at_once.fetch(driver, values)

    async def claim(
        self,
        driver: Any,
        kinds: Sequence[str],
        limit: int,
        owner: str,
        until: datetime,
        band: Band,
    ) -> list[Any]:
        """Lease the best ``limit`` ready jobs of ``kinds`` (of ``band``)."""
        candidates: list[Any] = []
        for kind in kinds:
            values = {"kind": kind, "limit": limit, **band.values()}
            candidates.extend(await self._ready.fetch(driver, values))
        if not candidates:
            return []
        candidates.sort(key=lambda row: (-row.priority, row.due_at, row.id))
        due = {row.id: row.due_at for row in candidates[:limit]}
        values = {"ids": list(due), "owner": owner, "until": until}
        return [_Claimed(row, due[row.id]) for row in await self._lease.fetch(driver, values)]


#: Ids per statement when completing many jobs (SQLite binds at most 32,766 parameters).
_CHUNK: Final = 512


def _padded(ids: Sequence[str]) -> list[str]:
    """``ids`` padded to a power of two by repeating the last one (an IN list does not care),
    so a handful of compiled statements serve every batch size."""
    size = 1 << (len(ids) - 1).bit_length()
    return [*ids, *([ids[-1]] * (size - len(ids)))]
