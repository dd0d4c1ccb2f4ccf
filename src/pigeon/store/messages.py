"""``SqlMessageStore``: messages, their parts and events, idempotency records.

Writes go through the database's group-commit writer as *batched* operations: all accepts of a
batch become one multi-row INSERT per table, all mutations one SELECT (locked on PostgreSQL)
and one executemany per table. Reads use the read connections and never wait for the writer.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.errors import InvalidCursor
from pigeon.domain.messages import (
    Category,
    Direction,
    Message,
    MessageStatus,
    Part,
    ReceiptRequest,
)
from pigeon.ports import (
    Acceptance,
    AcceptResult,
    Clock,
    EventRecord,
    IdempotencyRecord,
    MessageChange,
    MessagePage,
    MessageQuery,
    Mutation,
    NewJob,
    OverdueReceipts,
    SweepMark,
)
from pigeon.raw_sql import (
    RawSelect,
    asyncpg_in_transaction,
    execute,
    pg_fetch,
    sqlite_driver,
)
from pigeon.store.bulk import BulkDelete, BulkInsert, BulkUpdate, StatementChain
from pigeon.store.database import Database
from pigeon.store.statements import JOB_ROW, one_of
from pigeon.store.tables import (
    STATUSES_LISTED_BY_EVENTS,
    events,
    idempotency_keys,
    jobs,
    listed_by_events,
    message_parts,
    messages,
    sweep_marks,
)

#: The most messages one page of ``list_messages`` holds, whatever the query asks.
MAX_PAGE_SIZE: Final = 100

#: The most messages one page of ``list_messages`` reads to fill itself when filtered by a
#: status that no index serves (``queued``, ``sent``...: ADR 26), a status few of the walked
#: messages may be in. Past them the page ends short, even empty, and its ``next_cursor``
#: goes on from the last message read: each request reads a bounded number of rows however
#: large the store grows (ADR 43).
SCAN_BOUND: Final = 10_000
#: The most messages that reached a rare status (the events' partial index, ADR 26) one
#: page reads to fill itself: each is a read of its message too, about five times a walk's
#: row, so a page's bound costs about as much either way (~10 ms on a 2-vCPU machine).
SCAN_BOUND_EVENTS: Final = 2_000
#: How many of them a page filtered by status reads first: a status most of the walk's
#: messages are in fills its page within them, without the cost of finding the bound.
SCAN_FIRST: Final = 1_000

#: Columns fixed once a message is accepted: a mutation that changes one is refused
#: (``_check``), and the UPDATE of a mutation leaves them out. Naming a column in an UPDATE
#: matters on SQLite: it rewrites the entry of every index on that column even when the value
#: is the same, and ``recipient``'s index takes its entries in random order, so each mutation
#: dirtied one more page there, in a B-tree that grows with the store.
_FIXED: Final = (
    "id",
    "tenant_id",
    "direction",
    "recipient",
    "sender",
    "body",
    "category",
    "encoding",
    "segments",
    "created_at",
    "country",
    "client_ref",
    "callback_url",
    "is_test",
    "origin",
    "origin_parts",
    "receipt_request",
    # Set at accept (ADR 26): a status change writes no index entry.
    "receipt_due_at",
)

#: Columns a mutation may change: status and its bookkeeping, schedule, price, connector.
_MUTABLE: Final = tuple(column.name for column in messages.columns if column.name not in _FIXED)


#: Messages a process keeps as it last read or wrote them, at most (``SqlMessageStore._held``):
#: the traffic between a message's dispatch and its receipt, which carriers send seconds
#: later, so that the ``delivered`` change starts from the held copy instead of a read. About
#: 11 s at 3,000 messages/s and 110 s at 300/s; each held message takes ~1.1 kB (ADR 45).
HELD_KEPT: Final = 32_768


#: The receipt sweep's row in ``sweep_marks``.
RECEIPT_SWEEP = "receipts"
#: The statuses of a message whose receipt is still awaited.
_AWAITING_RECEIPT = frozenset({MessageStatus.SENT.value, MessageStatus.SENDING.value})


def _new_stamp() -> int:
    """A fresh ``write_stamp``: random, so that no two writes (in any process, committed or
    rolled back) are likely ever to share one."""
    return random.getrandbits(63)


#: The members of the enums a message row stores, by stored value: a dict lookup, where
#: calling the enum costs ten times as much (every read of a message makes four of them).
_DIRECTIONS: Final = {member.value: member for member in Direction}
_CATEGORIES: Final = {member.value: member for member in Category}
_STATUSES: Final = {member.value: member for member in MessageStatus}
_RECEIPT_REQUESTS: Final = {member.value: member for member in ReceiptRequest}


def normalise_carrier_id(value: str) -> str:
    """How carrier ids are compared: trimmed, lower-case, without leading zeros.

    Carriers quote the same id as ``0A1B`` in one place and ``a1b`` in another; hex versus
    decimal is for the caller to expand into candidates, each normalised here.
    """
    text = value.strip().lower()
    trimmed = text.lstrip("0")
    return trimmed or ("0" if text else "")


class RecentCarrierIds:
    """The carrier ids this process submitted lately: (connector, normalised id) -> (message
    id, stored id), so that most receipts find their message without a read.

    Bounded (oldest out first) and short-lived: an entry older than ``ttl`` seconds is not
    used (carriers recycle ids; a late receipt then reads the database, which picks the
    newest message). A receipt for a message another process submitted misses and reads.
    """

    def __init__(
        self,
        size: int = 32_768,
        ttl: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._monotonic = monotonic
        self._entries: OrderedDict[tuple[str, str], tuple[str, str, float]] = OrderedDict()

    def remember(self, message: Message) -> None:
        """Note the carrier ids of ``message``'s parts (after its change is durable)."""
        connector_id = message.connector_id
        if connector_id is None:
            return
        now = self._monotonic()
        entries = self._entries
        for part in message.parts:
            carrier_id = part.carrier_message_id
            if carrier_id is None:
                continue
            key = (connector_id, normalise_carrier_id(carrier_id))
            entries[key] = (message.id, carrier_id, now)
            entries.move_to_end(key)
        while len(entries) > self._size:
            entries.popitem(last=False)

    def find(self, connector_id: str, candidates: Iterable[str]) -> tuple[str, str] | None:
        """The newest remembered (message id, stored id) for any of the normalised
        ``candidates``; ``None`` when none is remembered (or only too long ago)."""
        oldest = self._monotonic() - self._ttl
        best: tuple[str, str] | None = None
        for candidate in candidates:
            entry = self._entries.get((connector_id, candidate))
            if entry is not None and entry[2] >= oldest and (best is None or entry[0] > best[0]):
                best = (entry[0], entry[1])
        return best


@dataclass(slots=True)
class _Change:
    message_id: str
    change: Callable[[Message], Mutation | None]
    complete_job: str | None
    #: Set by the writer: the change added a job that is due now.
    due_job: bool = False
    #: Set by the writer: the change gave a part a carrier id (or a new connector).
    new_carrier_ids: bool = False


@dataclass(slots=True)
class _Plan:
    """What a batch of mutations writes (rows already converted for the statements), worked
    out from the messages as they were loaded."""

    results: list[Message | Exception | None]
    due: list[bool]
    completed: list[str]
    message_rows: list[list[Any]]
    #: Parts new or with a new carrier id (upserted), parts whose status alone changed.
    part_rows: list[list[Any]]
    part_status_rows: list[list[Any]]
    event_rows: list[list[Any]]
    job_rows: list[list[Any]]
    #: The messages the batch changes as it writes them, and their new ``write_stamp``.
    changed: dict[str, Message]
    stamps: dict[str, int]
    #: The changed messages with a part that got a carrier id (``RecentCarrierIds``).
    renamed: set[str]


@dataclass(slots=True, eq=False)
class _Prepared:
    """A batch worked out before the write lock (SQLite): ``items`` as the writer handed
    them over, and for mutations the message ids and the ``write_stamp`` of each message the
    plan was made from (a missing message has none); for accepts the idempotency keys the
    rows were built as new for, by tenant."""

    items: Sequence[Any]
    ids: list[str]
    seen: dict[str, int] | None
    plan: Any
    keys: dict[str, list[str]] | None = None


def _same_items(prepared: _Prepared | None, items: Sequence[Any]) -> bool:
    return (
        prepared is not None
        and len(prepared.items) == len(items)
        and all(a is b for a, b in zip(prepared.items, items, strict=True))
    )


class SqlMessageStore:
    """``ports.MessageStore`` on a ``Database``; ``clock`` stamps job and idempotency rows.

    On SQLite the writer's batches of accepts and mutations are worked out before the write
    lock is taken (``Writer.prepare_with``): rows built, mutations run on the messages as
    this process holds them (``_held``: as it last wrote or prefetched them) or else as a
    snapshot reads them. Under the lock a mutation batch only reads the messages'
    ``write_stamp`` and compares them with those the plan started from (another process may
    have changed a message since); unchanged, the prepared rows are written as they are,
    else the batch is worked out again from the rows read under the lock. The lock, which
    every process on the file takes turns at, is then held for little more than SQLite's
    own work and the commit (ADR 25).

    On PostgreSQL a mutation batch locks its rows and reads their stamps in its transaction
    (one statement); only the messages not held with the stored stamp are read whole.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._dialect = database.dialect
        #: Called after a mutation that added a job due now is durable (wakes the job runner
        #: in this process instead of leaving the job to its next poll).
        self.on_due_jobs: Callable[[], None] | None = None
        self.recent_carrier_ids = RecentCarrierIds()
        #: Messages as this process last wrote or prefetched them, with the ``write_stamp``
        #: of that row; oldest out first (``HELD_KEPT``). Never changed in place: a plan
        #: changes copies.
        self._held: OrderedDict[str, tuple[Message, int]] = OrderedDict()
        self._insert_messages = BulkInsert(messages, self._dialect)
        self._insert_parts = BulkInsert(message_parts, self._dialect)
        self._insert_events = BulkInsert(events, self._dialect)
        self._insert_jobs = BulkInsert(jobs, self._dialect, ignore_duplicates=True)
        self._insert_keys = BulkInsert(idempotency_keys, self._dialect)
        self._accept_chain = StatementChain(
            (
                self._insert_messages,
                self._insert_parts,
                self._insert_events,
                self._insert_jobs,
                self._insert_keys,
            )
        )
        self._update_messages = BulkUpdate(messages, self._dialect, key="id", columns=_MUTABLE)
        self._upsert_parts = BulkInsert(
            message_parts, self._dialect, upsert_on=("message_id", "part_index")
        )
        # A receipt changes a part's status, not its carrier id: an UPDATE of the status alone
        # leaves the carrier-id index as it is (an upsert names, and so rewrites, its columns).
        self._update_part_status = BulkUpdate(
            message_parts,
            self._dialect,
            key=("message_id", "part_index"),
            columns=("status", "error_code"),
        )
        self._delete_jobs = BulkDelete(jobs, self._dialect, key="id")
        # The rows of the hot statements, made straight from the domain objects.
        self._message_insert_row = self._insert_messages.row_builder("m, stamp", _MESSAGE_ROW)
        self._message_update_row = self._update_messages.row_builder(
            "m, stamp", {name: _MESSAGE_ROW[name] for name in ("id", *_MUTABLE)}
        )
        self._event_insert_row = self._insert_events.row_builder("e", _EVENT_ROW)
        self._job_insert_row = self._insert_jobs.row_builder("job, now", JOB_ROW)
        # PostgreSQL: a mutation batch's writes, each statement on its own table.
        self._mutation_chain = StatementChain(
            (
                self._delete_jobs,
                self._update_messages,
                self._upsert_parts,
                self._insert_events,
                self._insert_jobs,
            )
        )
        # Bound once: the writer groups batched items by this callable.
        self._accept_run = self._accept_batch
        self._mutate_run = self._mutate_batch
        #: The last batches worked out before the write lock (SQLite; one writer task).
        self._accepts_prepared: _Prepared | None = None
        self._mutations_prepared: _Prepared | None = None
        # The hot reads' statements, built once (building one costs more than running it).
        self._get_message = _message_with_parts(messages.c.id == sa.bindparam("id"))
        self._get_tenant_message = _message_with_parts(
            messages.c.id == sa.bindparam("id"), messages.c.tenant_id == sa.bindparam("tenant_id")
        )
        self._find_by_carrier_id = (
            sa.select(message_parts.c.message_id, message_parts.c.carrier_message_id)
            .where(
                message_parts.c.connector_id == sa.bindparam("connector_id"),
                _one_of_param(message_parts.c.carrier_id_normalised, "candidates", self._dialect),
            )
            .order_by(message_parts.c.message_id.desc())
            .limit(1)
        )
        # On SQLite the two reads every message makes skip SQLAlchemy (``pigeon.raw_sql``).
        self._raw: _RawReads | None = None
        self._pg_raw: _RawReads | None = None
        reads = _RawReads(database.read_engine.dialect, self._get_message, self._get_tenant_message)
        if database.sqlite_reads:
            self._raw = reads
            database.prepare_batches(self._accept_run, self._prepare_accepts)
            database.prepare_batches(self._mutate_run, self._prepare_mutations)
        else:  # PostgreSQL: the same point reads straight through asyncpg
            self._pg_raw = reads
            database.writes_one_statement(self._accept_run)

    # --- writes ---------------------------------------------------------------------------

    async def accept(self, acceptance: Acceptance) -> AcceptResult:
        """Write message, parts, events, jobs and idempotency record in one durable transaction.

        Concurrent calls share a transaction (group commit); this returns only once it is
        durable. A known idempotency key returns the earlier message instead (``replayed``),
        or flags ``idempotency_conflict`` when the request hash differs. The key is looked up
        inside the write transaction, so concurrent requests with one key make one message.
        """
        # Urgent: a client waits for this answer; dispatch and receipt work can wait.
        return await self._db.write_batched(self._accept_run, acceptance, urgent=True)

    def accept_started(self, acceptance: Acceptance) -> Awaitable[AcceptResult]:
        """``accept`` handed to the writer now, without a coroutine: what to await for its
        result (the requests of one turn of the loop then share a batch)."""
        return self._db.write_batched(self._accept_run, acceptance, urgent=True)

    async def mutate(
        self,
        message_id: str,
        change: Callable[[Message], Mutation | None],
        *,
        complete_job: str | None = None,
    ) -> Message | None:
        """Read-modify-write one message atomically.

        Inside the writer's transaction: load the message (``FOR UPDATE`` on PostgreSQL), call
        ``change`` on a copy of it, write the new state, its parts, events and jobs (duplicate
        job ids ignored), and delete ``complete_job``. ``change`` returning ``None`` writes
        nothing but still completes the job; so does a message that does not exist (``None`` is
        returned). If ``change`` raises, the exception reaches the caller and nothing is
        written, the job included. The job is deleted whoever holds its lease.

        The message returned is the store's own copy (it may start the next change of the
        message): read it, do not change it.
        """
        item = _Change(message_id, change, complete_job)
        result = await self._db.write_batched(self._mutate_run, item)
        if item.due_job and self.on_due_jobs is not None:
            self.on_due_jobs()
        if result is not None and item.new_carrier_ids:
            self.recent_carrier_ids.remember(result)
        return result

    async def mutate_each(
        self, changes: Sequence[MessageChange]
    ) -> list[Message | Exception | None]:
        """``mutate`` for each of ``changes``, submitted to the writer together: they share
        its next batch as concurrent ``mutate`` calls would, without a task or a coroutine
        per change. Per change its result, or the exception that failed it alone."""
        run = self._mutate_run
        write = self._db.write_batched
        items = [_Change(c.message_id, c.change, c.complete_job) for c in changes]
        waiting: list[Awaitable[Message | None] | Exception] = []
        for item in items:
            try:
                waiting.append(write(run, item))
            except Exception as exc:  # the writer is closed: this one and the rest fail
                waiting.append(exc)
        results: list[Message | Exception | None] = []
        due = False
        for item, pending in zip(items, waiting, strict=True):
            if isinstance(pending, Exception):
                results.append(pending)
                continue
            try:
                result = await pending
            except Exception as exc:  # this change's own failure, or its batch's
                results.append(exc)
                continue
            due = due or item.due_job
            if result is not None and item.new_carrier_ids:
                self.recent_carrier_ids.remember(result)
            results.append(result)
        if due and self.on_due_jobs is not None:
            self.on_due_jobs()
        return results

    def _prepare_accepts(self, items: Sequence[Acceptance]) -> None:
        """Before the write lock: the batch's rows, as if each idempotency key were new. The
        keys are looked up under the lock, and the batch is worked out again there if one is
        known; a key twice in the batch is left to the lock too."""
        self._accepts_prepared = None
        keys: dict[str, list[str]] | None = None
        seen: set[tuple[str, str]] = set()
        for acceptance in items:
            record = acceptance.idempotency
            if record is None:
                continue
            if (record.tenant_id, record.key) in seen:
                return
            seen.add((record.tenant_id, record.key))
            if keys is None:
                keys = {}
            keys.setdefault(record.tenant_id, []).append(record.key)
        self._accepts_prepared = _Prepared(list(items), [], None, self._accept_rows(items), keys)

    async def _accept_batch(
        self, connection: AsyncConnection, items: Sequence[Acceptance]
    ) -> list[AcceptResult | Exception]:
        prepared, self._accepts_prepared = self._accepts_prepared, None
        if _same_items(prepared, items):
            assert prepared is not None
            if prepared.keys is None or not await self._keys_known(connection, prepared.keys):
                await self._write_accepts(connection, prepared.plan)
                return [AcceptResult(acceptance.message) for acceptance in items]
        results: dict[int, AcceptResult | Exception] = {}
        known = await self._known_keys(connection, [a.idempotency for a in items])
        first_use: dict[tuple[str, str], tuple[Message, str]] = {}
        replays: list[tuple[int, str, bool]] = []
        fresh: list[Acceptance] = []
        for index, acceptance in enumerate(items):
            record = acceptance.idempotency
            if record is not None:
                key = (record.tenant_id, record.key)
                if key in known:
                    earlier_hash, earlier_id = known[key]
                    replays.append((index, earlier_id, earlier_hash != record.request_hash))
                    continue
                if key in first_use:  # the same key twice in this batch: the first one wins
                    first, first_hash = first_use[key]
                    conflict = first_hash != record.request_hash
                    results[index] = AcceptResult(
                        _copy(first), replayed=not conflict, idempotency_conflict=conflict
                    )
                    continue
                first_use[key] = (acceptance.message, record.request_hash)
            fresh.append(acceptance)
            results[index] = AcceptResult(acceptance.message)
        if replays:
            earlier = await self._load(connection, {message_id for _, message_id, _ in replays})
            for index, message_id, conflict in replays:
                message = earlier.get(message_id)
                results[index] = (
                    AcceptResult(message, replayed=not conflict, idempotency_conflict=conflict)
                    if message is not None
                    else LookupError(f"idempotency record points at missing {message_id}")
                )
        await self._insert(connection, fresh)
        return [results[index] for index in range(len(items))]

    async def _keys_known(self, connection: AsyncConnection, keys: dict[str, list[str]]) -> bool:
        """SQLite, under the write lock: whether any of ``keys`` (by tenant) is stored. One
        read per tenant on the keys' primary key; a retried request is the rare case."""
        driver = await sqlite_driver(connection)
        if driver is None:
            return True  # not SQLite: the batch is worked out in full
        for tenant_id, tenant_keys in keys.items():
            marks = ", ".join("?" * len(tenant_keys))
            found = execute(
                driver,
                "SELECT 1 FROM idempotency_keys"  # noqa: S608 - only placeholders formatted in
                f" WHERE tenant_id = ? AND key IN ({marks}) LIMIT 1",
                [tenant_id, *tenant_keys],
            ).fetchone()
            if found is not None:
                return True
        return False

    async def _known_keys(
        self, connection: AsyncConnection, records: Iterable[IdempotencyRecord | None]
    ) -> dict[tuple[str, str], tuple[str, str]]:
        wanted = {(r.tenant_id, r.key) for r in records if r is not None}
        if not wanted:
            return {}
        table = idempotency_keys
        statement = sa.select(
            table.c.tenant_id, table.c.key, table.c.request_hash, table.c.message_id
        ).where(
            one_of(table.c.tenant_id, {tenant for tenant, _ in wanted}, self._dialect),
            one_of(table.c.key, {key for _, key in wanted}, self._dialect),
        )
        rows = (await connection.execute(statement)).all()
        return {
            (row.tenant_id, row.key): (row.request_hash, row.message_id)
            for row in rows
            if (row.tenant_id, row.key) in wanted
        }

    async def _insert(self, connection: AsyncConnection, fresh: Sequence[Acceptance]) -> None:
        if fresh:
            await self._write_accepts(connection, self._accept_rows(fresh))

    def _accept_rows(self, fresh: Sequence[Acceptance]) -> list[list[list[Any]]]:
        """The converted rows accepting ``fresh`` inserts, table by table (see
        ``_write_accepts``)."""
        now = self._clock.now()
        return [
            [self._message_insert_row(a.message, 0) for a in fresh],
            self._insert_parts.convert(
                [_part_row(a.message, p) for a in fresh for p in a.message.parts]
            ),
            [self._event_insert_row(e) for a in fresh for e in a.events],
            [self._job_insert_row(j, now) for a in fresh for j in a.jobs],
            self._insert_keys.convert(
                [_idempotency_row(a.idempotency) for a in fresh if a.idempotency is not None]
            ),
        ]

    async def _write_accepts(
        self, connection: AsyncConnection, rows: list[list[list[Any]]]
    ) -> None:
        # One statement on PostgreSQL (one round trip, and alone in its batch no BEGIN or
        # COMMIT either: ``writes_one_statement`` below); the rows go into different tables.
        await self._accept_chain.write(connection, rows, alone=True)

    def _prepare_mutations(self, items: Sequence[_Change]) -> None:
        """Before the write lock: the messages as this process holds them, or else as a
        snapshot reads them, and the batch worked out on them."""
        self._mutations_prepared = None
        if self._raw is None or not items:
            return
        ids = sorted({item.message_id for item in items})
        current: dict[str, Message] = {}
        stamps: dict[str, int] = {}
        missing: list[str] = []
        held = self._held
        for message_id in ids:
            found = held.get(message_id)
            if found is None:
                missing.append(message_id)
            else:
                current[message_id], stamps[message_id] = found
        if missing:
            with self._db.raw_read() as driver:
                for row, parts in self._raw.load(driver, missing):
                    current[row.id] = _message_from(row, parts)
                    stamps[row.id] = row.write_stamp
        plan = self._plan(current, stamps, items)
        self._mutations_prepared = _Prepared(list(items), ids, stamps, plan)

    def _hold(self, message: Message, stamp: int) -> None:
        """Keep ``message`` as stored with ``stamp`` (see ``_held``)."""
        held = self._held
        held[message.id] = (message, stamp)
        held.move_to_end(message.id)
        if len(held) > HELD_KEPT:
            held.popitem(last=False)

    async def _mutate_batch(
        self, connection: AsyncConnection, items: Sequence[_Change]
    ) -> list[Message | Exception | None]:
        prepared, self._mutations_prepared = self._mutations_prepared, None
        plan: _Plan | None = None
        if _same_items(prepared, items) and self._raw is not None:
            assert prepared is not None
            driver = await sqlite_driver(connection)
            # Unchanged since the plan's start (no other process, and no rolled-back batch of
            # this one, wrote these messages since): as planned.
            if driver is not None and self._raw.stamps(driver, prepared.ids) == prepared.seen:
                plan = prepared.plan
        if plan is None:
            stamps: dict[str, int] = {}
            ids = {item.message_id for item in items}
            pg = None if self._pg_raw is None else await asyncpg_in_transaction(connection)
            if pg is not None:
                current = await self._pg_lock_and_load(connection, pg, ids, stamps)
            else:
                current = await self._load(connection, ids, lock=True, stamps=stamps)
            plan = self._plan(current, stamps, items)
        for item, due in zip(items, plan.due, strict=True):
            item.due_job = due
            item.new_carrier_ids = item.message_id in plan.renamed
        # Held from now on as written: were the batch rolled back, its stamps would match no
        # stored row, so the next change of these messages would read them afresh.
        for message in plan.changed.values():
            self._hold(message, plan.stamps[message.id])
        if self._dialect == "postgresql":
            await self._write_mutations_pg(connection, plan)
            return plan.results
        if plan.completed:
            lite = await sqlite_driver(connection) if self._raw is not None else None
            if lite is not None:
                marks = ", ".join("?" * len(plan.completed))
                execute(lite, f"DELETE FROM jobs WHERE id IN ({marks})", plan.completed)  # noqa: S608 - only placeholders
            else:
                await connection.execute(
                    sa.delete(jobs).where(one_of(jobs.c.id, plan.completed, self._dialect))
                )
        await self._update_messages.write(connection, plan.message_rows)
        await self._upsert_parts.write(connection, plan.part_rows)
        await self._update_part_status.write(connection, plan.part_status_rows)
        await self._insert_events.write(connection, plan.event_rows)
        await self._insert_jobs.write(connection, plan.job_rows)
        return plan.results

    async def _pg_lock_and_load(
        self, connection: AsyncConnection, pg: Any, ids: Iterable[str], stamps: dict[str, int]
    ) -> dict[str, Message]:
        """PostgreSQL, in the batch's transaction: lock the rows of ``ids`` (one statement, in
        id order, so that two writers cannot deadlock) and read their ``write_stamp``; the
        messages this process holds with that stamp are used as held, the others read. Fills
        ``stamps``; returns the messages that exist, by id."""
        assert self._pg_raw is not None
        stored = await self._pg_raw.pg_lock_stamps(connection, pg, sorted(ids))
        current: dict[str, Message] = {}
        missing: list[str] = []
        held = self._held
        for message_id, stamp in stored.items():
            found = held.get(message_id)
            if found is not None and found[1] == stamp:
                current[message_id] = found[0]
            else:
                missing.append(message_id)
            stamps[message_id] = stamp
        if missing:  # locked already: a plain read
            for row, parts in await self._pg_raw.pg_load(connection, pg, missing, lock=False):
                current[row.id] = _message_from(row, parts)
                stamps[row.id] = row.write_stamp
        return current

    async def _write_mutations_pg(self, connection: AsyncConnection, plan: _Plan) -> None:
        """PostgreSQL: the batch's writes as one statement (``StatementChain``), one round trip
        instead of one per table. A completed job whose id comes back among the new ones (a
        job made again) is deleted first, on its own: one statement must not touch a row
        twice."""
        completed = plan.completed
        if completed:
            new_ids = {row[0] for row in plan.job_rows}
            if new_ids.intersection(completed):
                await self._delete_jobs.write(connection, [[job_id] for job_id in completed])
                completed = []
        # (Status-only part updates are SQLite's; here they are in the parts' upsert.)
        await self._update_part_status.write(connection, plan.part_status_rows)
        await self._mutation_chain.write(
            connection,
            [
                [[job_id] for job_id in completed],
                plan.message_rows,
                plan.part_rows,
                plan.event_rows,
                plan.job_rows,
            ],
        )

    def _plan(
        self, current: dict[str, Message], stamps: dict[str, int], items: Sequence[_Change]
    ) -> _Plan:
        """Run the batch's changes on ``current`` (the messages as loaded, by id, whose rows
        carry ``stamps``): results, and the rows to write. Changes only copies: ``current``
        may be planned from again."""
        loaded = current
        current = dict(current)
        now = self._clock.now()
        results: list[Message | Exception | None] = []
        due: list[bool] = []
        changed: dict[str, Message] = {}
        new_events: list[EventRecord] = []
        new_jobs: list[NewJob] = []
        completed: list[str] = []
        for item in items:
            message = current.get(item.message_id)
            item_due = False
            if message is None:
                results.append(None)
            else:
                try:
                    # A copy: a callback that changes it and then fails leaves no trace.
                    mutation = item.change(_copy(message))
                    if mutation is not None:
                        _check(mutation.message, message)
                except Exception as exc:  # the caller's own failure: nothing written for it
                    results.append(exc)
                    due.append(False)
                    continue
                if mutation is None:
                    results.append(message)
                else:
                    current[message.id] = changed[message.id] = mutation.message
                    new_events.extend(mutation.events)
                    new_jobs.extend(mutation.jobs)
                    completed.extend(mutation.done_jobs)
                    # A loop, not ``any()`` over a generator, which is closed by raising
                    # ``GeneratorExit`` in it when it stops at a match (session 46).
                    for job in mutation.jobs:
                        if job.run_at <= now:
                            item_due = True
                            break
                    results.append(mutation.message)
            due.append(item_due)
            if item.complete_job is not None:
                completed.append(item.complete_job)
        part_rows: list[dict[str, Any]] = []
        part_status_rows: list[dict[str, Any]] = []
        new_stamps: dict[str, int] = {}
        for message_id in changed:  # a loop: no dict comprehension per plan
            new_stamps[message_id] = _new_stamp()
        renamed = {
            message.id
            for message in changed.values()
            if _part_changes(
                loaded.get(message.id),
                message,
                part_rows,
                part_status_rows if self._raw is not None else part_rows,
            )
        }
        return _Plan(
            results,
            due,
            completed,
            [self._message_update_row(m, new_stamps[m.id]) for m in changed.values()],
            self._upsert_parts.convert(part_rows),
            self._update_part_status.convert(part_status_rows),
            [self._event_insert_row(e) for e in new_events],
            [self._job_insert_row(job, now) for job in new_jobs],
            changed,
            new_stamps,
            renamed,
        )

    # --- reads ----------------------------------------------------------------------------

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, Message]:
        """The messages of ``message_ids`` that exist, with their parts, by id: one read of
        the messages and one of their parts, whatever their number."""
        ids = sorted(set(message_ids))
        if not ids:
            return {}
        if self._raw is not None:
            with self._db.raw_read() as driver:
                found = self._raw.load(driver, ids)
        elif self._pg_raw is not None:
            async with self._db.raw_pg_read() as pg:
                found = await self._pg_raw.pg_load(None, pg, ids, lock=False)
        else:
            async with self._db.read() as connection:
                return await self._load(connection, ids)
        result = {}
        for row, parts in found:
            message = result[row.id] = _message_from(row, parts)
            # A copy is held: the caller may do as it likes with its own (a dispatch job
            # changes the message next; the copy spares that change a read).
            self._hold(message.copy(), row.write_stamp)
        return result

    async def overdue_receipts(self, due_by: datetime, limit: int) -> OverdueReceipts:
        """The next ``limit`` deadlines after the sweep's mark, at ``due_by`` or earlier, in
        order (the index on ``(receipt_due_at, id)``), and which of them still wait."""
        due = messages.c.receipt_due_at
        async with self._db.read() as connection:
            mark = (
                await connection.execute(
                    sa.select(sweep_marks.c.due_at, sweep_marks.c.message_id).where(
                        sweep_marks.c.name == RECEIPT_SWEEP
                    )
                )
            ).first()
            statement = sa.select(messages.c.id, messages.c.status, due).where(
                due.is_not(None), due <= due_by
            )
            if mark is not None:
                # ``(due, id) > mark``, in a form both databases read as an index range.
                statement = statement.where(
                    due >= mark.due_at,
                    sa.or_(due > mark.due_at, messages.c.id > mark.message_id),
                )
            rows = (
                await connection.execute(statement.order_by(due, messages.c.id).limit(limit))
            ).all()
        waiting = [row.id for row in rows if row.status in _AWAITING_RECEIPT]
        last = SweepMark(rows[-1].receipt_due_at, rows[-1].id) if rows else None
        return OverdueReceipts(waiting, last, len(rows) >= limit)

    async def mark_receipts_swept(self, mark: SweepMark) -> None:
        """Store ``mark`` unless a mark further on is stored already (another sweeper's)."""
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        statement = insert(sweep_marks).values(
            name=RECEIPT_SWEEP, due_at=mark.due_at, message_id=mark.message_id
        )
        stored = sweep_marks.c
        statement = statement.on_conflict_do_update(
            index_elements=[stored.name],
            set_={"due_at": statement.excluded.due_at, "message_id": statement.excluded.message_id},
            where=sa.or_(
                stored.due_at < statement.excluded.due_at,
                sa.and_(
                    stored.due_at == statement.excluded.due_at,
                    stored.message_id < statement.excluded.message_id,
                ),
            ),
        )

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(statement)

        await self._db.write(write)

    async def get_message(self, message_id: str, tenant_id: str | None = None) -> Message | None:
        """The message with its parts; ``None`` when absent or owned by another tenant."""
        # One statement: the message LEFT JOIN its parts (a row per part, or one without).
        if tenant_id is None:
            statement, parameters = self._get_message, {"id": message_id}
        else:
            statement = self._get_tenant_message
            parameters = {"id": message_id, "tenant_id": tenant_id}
        rows: Sequence[Any]
        if self._raw is not None:
            raw = self._raw.get_message if tenant_id is None else self._raw.get_tenant_message
            with self._db.raw_read() as raw_connection:
                rows = raw.rows(raw_connection, parameters)
        elif self._pg_raw is not None:
            pg = self._pg_raw.get_message if tenant_id is None else self._pg_raw.get_tenant_message
            async with self._db.raw_pg_read() as driver:
                rows = await pg.fetch(driver, parameters)
        else:
            async with self._db.read() as connection:
                rows = (await connection.execute(statement, parameters)).all()
        if not rows:
            return None
        parts = [
            Part(
                index=row.part_index,
                status=MessageStatus(row.part_status),
                carrier_message_id=row.part_carrier_message_id,
                error_code=row.part_error_code,
            )
            for row in rows
            if row.part_index is not None
        ]
        return _message_from(rows[0], parts)

    async def list_messages(self, tenant_id: str, query: MessageQuery) -> MessagePage:
        """The tenant's messages, newest first, ``query.limit`` (at most ``MAX_PAGE_SIZE``) at a
        time, after ``query.cursor``; ``created_from`` is inclusive, ``created_to`` exclusive.

        A time window without a recipient is read by creation time; a page filtered by
        status reads a bounded number of messages and may end short, even empty, with a
        ``next_cursor`` that goes on (ADR 43). ``InvalidCursor`` when a time window's cursor
        names no message of the tenant."""
        limit = max(1, min(query.limit, MAX_PAGE_SIZE))
        resume: str | None = None
        async with self._db.read() as connection:
            if query.status is not None and str(query.status) in STATUSES_LISTED_BY_EVENTS:
                rows, resume = await self._list_through_events(connection, tenant_id, query, limit)
            else:
                after = await _walk_start(connection, tenant_id, query)
                rows, resume = await self._walk_page(connection, tenant_id, query, limit, after)
            page = rows[:limit]
            parts = await self._parts(connection, [row.id for row in page])
        found = [_message_from(row, parts.get(row.id, [])) for row in page]
        next_cursor = found[-1].id if len(rows) > limit else resume
        return MessagePage(found, next_cursor)

    async def _walk_page(
        self,
        connection: AsyncConnection,
        tenant_id: str,
        query: MessageQuery,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> tuple[list[sa.Row[Any]], str | None]:
        """Up to ``limit`` + 1 rows of a walk, and where the next page goes on if the walk
        stopped at its bound before the page was full. Filtered by status, the walk reads at
        most ``SCAN_BOUND`` messages: first the first ``SCAN_FIRST`` (a common status fills
        its page there), then, for a page still short, up to the bound."""
        if query.status is None:
            statement = list_statement(tenant_id, query, limit, after=after)
            return list((await connection.execute(statement)).all()), None
        rows: list[sa.Row[Any]] = []
        for scan in sorted({min(SCAN_FIRST, SCAN_BOUND), SCAN_BOUND}):
            # The walk's ``scan``-th message, if it has that many, and whether any follows
            # (one read of an index range), then the page up to it.
            end = scan_end_statement(tenant_id, query, after, scan)
            ends = (await connection.execute(end)).all()
            # Fewer than scan + 1 messages: the page reads to the walk's end.
            bound = ends[0] if len(ends) > 1 else None
            statement = list_statement(tenant_id, query, limit, after=after, bound=bound)
            rows = list((await connection.execute(statement)).all())
            if len(rows) > limit or bound is None:  # a full page, or the walk's end
                return rows, None
        return rows, bound.id if bound is not None else None

    async def _list_through_events(
        self, connection: AsyncConnection, tenant_id: str, query: MessageQuery, limit: int
    ) -> tuple[list[sa.Row[Any]], str | None]:
        """Up to ``limit`` + 1 rows for a status few messages are in: the messages that ever
        reached it, newest first from the events' partial index, a chunk at a time, kept if
        they are in it now and match the other filters. Two plain reads per chunk (no join a
        planner could turn around to walk all the tenant's messages).

        Most of those may have moved on (every scheduled message was ``scheduled`` once): at
        most ``SCAN_BOUND_EVENTS`` of them are read per page, which then ends short, with
        where the next page goes on (as ``_walk_page``, ADR 43)."""
        status = str(query.status)
        found: list[sa.Row[Any]] = []
        cursor = query.cursor
        chunk = limit + 1
        read = 0
        while len(found) <= limit:
            if read >= SCAN_BOUND_EVENTS:
                follows = await connection.execute(reached_statement(tenant_id, status, cursor, 1))
                return found, cursor if follows.first() is not None else None
            chunk = min(chunk, SCAN_BOUND_EVENTS - read)
            ids = list(
                (
                    await connection.execute(reached_statement(tenant_id, status, cursor, chunk))
                ).scalars()
            )
            if not ids:
                break
            read += len(ids)
            statement = list_statement(tenant_id, query, len(ids), among=ids)
            found.extend((await connection.execute(statement)).all())
            if len(ids) < chunk:
                break
            cursor = ids[-1]
            chunk = min(chunk * 2, 1000)
        return found, None

    async def events_of(self, message_id: str, tenant_id: str | None = None) -> list[EventRecord]:
        """The message's events, oldest first."""
        statement = sa.select(events).where(events.c.message_id == message_id)
        if tenant_id is not None:
            statement = statement.where(events.c.tenant_id == tenant_id)
        statement = statement.order_by(events.c.at, events.c.sequence, events.c.id)
        async with self._db.read() as connection:
            rows = (await connection.execute(statement)).all()
        return [_event_from(row) for row in rows]

    async def get_event(self, event_id: str) -> EventRecord | None:
        """The event with this id, whatever its tenant."""
        async with self._db.read() as connection:
            row = (
                await connection.execute(sa.select(events).where(events.c.id == event_id))
            ).first()
        return None if row is None else _event_from(row)

    async def find_by_carrier_id(
        self, connector_id: str, carrier_message_ids: Sequence[str]
    ) -> tuple[str, str] | None:
        """The (message id, stored carrier id) of the part ``connector_id`` knows by any of the
        given ids, compared normalised (``normalise_carrier_id``). Carriers recycle ids, so the
        newest message wins."""
        candidates = {normalise_carrier_id(value) for value in carrier_message_ids} - {""}
        if not candidates:
            return None
        remembered = self.recent_carrier_ids.find(connector_id, candidates)
        if remembered is not None:
            return remembered
        if self._raw is not None:
            raw = self._raw.find_by_carrier_id(len(candidates))
            values = {f"candidate_{i}": value for i, value in enumerate(sorted(candidates))}
            with self._db.raw_read() as raw_connection:
                found = raw.rows(raw_connection, {"connector_id": connector_id, **values})
            return None if not found else (found[0].message_id, found[0].carrier_message_id)
        parameters = {"connector_id": connector_id, "candidates": sorted(candidates)}
        if self._pg_raw is not None:
            lookup = self._pg_raw.by_carrier_id_array(self._find_by_carrier_id)
            async with self._db.raw_pg_read() as driver:
                found = await lookup.fetch(driver, parameters)
            row = found[0] if found else None
        else:
            async with self._db.read() as connection:
                row = (await connection.execute(self._find_by_carrier_id, parameters)).first()
        return None if row is None else (row.message_id, row.carrier_message_id)

    async def find_each_by_carrier_id(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[tuple[str, str] | None]:
        """``find_by_carrier_id`` for each ``(connector id, carrier ids)``: the ids remembered
        (``RecentCarrierIds``) at once, the others read, those reads side by side."""
        found: list[tuple[str, str] | None] = []
        unknown: list[int] = []
        remembered = self.recent_carrier_ids.find
        for index, (connector_id, carrier_message_ids) in enumerate(lookups):
            candidates: set[str] = set()
            for value in carrier_message_ids:  # a loop: no set comprehension per receipt
                normal = normalise_carrier_id(value)
                if normal:
                    candidates.add(normal)
            hit = remembered(connector_id, candidates) if candidates else None
            found.append(hit)
            if hit is None and candidates:
                unknown.append(index)
        if len(unknown) == 1:
            index = unknown[0]
            found[index] = await self.find_by_carrier_id(*lookups[index])
        elif unknown:
            reads = await asyncio.gather(*(self.find_by_carrier_id(*lookups[i]) for i in unknown))
            for index, hit in zip(unknown, reads, strict=True):
                found[index] = hit
        return found

    # --- loading --------------------------------------------------------------------------

    async def _load(
        self,
        connection: AsyncConnection,
        message_ids: Iterable[str],
        *,
        tenant_id: str | None = None,
        lock: bool = False,
        stamps: dict[str, int] | None = None,
    ) -> dict[str, Message]:
        """The messages of ``message_ids`` that exist, by id (``lock``: their rows locked on
        PostgreSQL); each row's ``write_stamp`` into ``stamps`` when given."""
        ids = sorted(set(message_ids))
        if not ids:
            return {}
        found: Sequence[tuple[Any, list[Part]]] | None = None
        driver = None if self._raw is None else await sqlite_driver(connection)
        if driver is not None and self._raw is not None and tenant_id is None:
            found = self._raw.load(driver, ids)
        elif self._pg_raw is not None and tenant_id is None:
            pg = await asyncpg_in_transaction(connection)
            if pg is not None:
                found = await self._pg_raw.pg_load(connection, pg, ids, lock=lock)
        if found is not None:
            if stamps is not None:
                stamps.update((row.id, row.write_stamp) for row, _ in found)
            return {row.id: _message_from(row, parts) for row, parts in found}
        statement = sa.select(messages).where(one_of(messages.c.id, ids, self._dialect))
        if tenant_id is not None:
            statement = statement.where(messages.c.tenant_id == tenant_id)
        if lock and self._dialect == "postgresql":
            # Always in id order, so two processes locking overlapping sets cannot deadlock.
            statement = statement.order_by(messages.c.id).with_for_update()
        rows = (await connection.execute(statement)).all()
        parts = await self._parts(connection, [row.id for row in rows])
        if stamps is not None:
            stamps.update((row.id, row.write_stamp) for row in rows)
        return {row.id: _message_from(row, parts.get(row.id, [])) for row in rows}

    async def _parts(
        self, connection: AsyncConnection, message_ids: Sequence[str]
    ) -> dict[str, list[Part]]:
        if not message_ids:
            return {}
        statement = (
            sa.select(message_parts)
            .where(one_of(message_parts.c.message_id, message_ids, self._dialect))
            .order_by(message_parts.c.message_id, message_parts.c.part_index)
        )
        found: dict[str, list[Part]] = {}
        for row in await connection.execute(statement):
            found.setdefault(row.message_id, []).append(
                Part(
                    index=row.part_index,
                    status=MessageStatus(row.status),
                    carrier_message_id=row.carrier_message_id,
                    error_code=row.error_code,
                )
            )
        return found


# --- statements ----------------------------------------------------------------------------


#: PostgreSQL: lock a batch's message rows and read their stamps (``pg_lock_stamps``).
_PG_LOCK_STAMPS: Final = (
    "SELECT id, write_stamp FROM messages WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)

#: Message rows and part rows as ``sqlite3`` returns them (``_RawReads.load_raw``).
_RawState = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


class _RawReads:
    """The hot reads compiled for ``sqlite3`` (see ``pigeon.raw_sql``)."""

    def __init__(
        self, dialect: Dialect, get_message: sa.Select[Any], get_tenant_message: sa.Select[Any]
    ) -> None:
        self._dialect = dialect
        self.get_message = RawSelect(get_message, dialect)
        self.get_tenant_message = RawSelect(get_tenant_message, dialect)
        self._by_carrier_id: dict[int, RawSelect] = {}
        self._lists: dict[tuple[str, int], RawSelect] = {}
        self._by_array: RawSelect | None = None
        self._pg_by_ids: tuple[RawSelect, RawSelect, RawSelect] | None = None
        self._stamps: dict[int, str] = {}

    def load(self, driver: sqlite3.Connection, ids: Sequence[str]) -> list[tuple[Any, list[Part]]]:
        """The message rows of ``ids`` with their parts (in part order)."""
        return self.from_raw(len(ids), self.load_raw(driver, ids))

    def load_raw(self, driver: sqlite3.Connection, ids: Sequence[str]) -> _RawState:
        """The unprocessed message and part rows of ``ids``: what ``load`` reads, in a form
        cheap to compare (has anything changed since?) and to process later (``from_raw``)."""
        # Lists are padded to a power of two (repeating an id changes no IN), so a handful of
        # compiled statements serve every batch size.
        size = 1 << (len(ids) - 1).bit_length()
        padded = [*ids, *([ids[-1]] * (size - len(ids)))]
        values = {f"id_{i}": value for i, value in enumerate(padded)}
        return (
            self._by_ids(size, messages).raw_rows(driver, values),
            self._by_ids(size, message_parts).raw_rows(driver, values),
        )

    def stamps(self, driver: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
        """The ``write_stamp`` of each message of ``ids`` that exists, by id."""
        size = 1 << (len(ids) - 1).bit_length()
        statement = self._stamps.get(size)
        if statement is None:
            marks = ", ".join("?" * size)
            statement = self._stamps[size] = (
                f"SELECT id, write_stamp FROM messages WHERE id IN ({marks})"  # noqa: S608 - only placeholders
            )
        padded = [*ids, *([ids[-1]] * (size - len(ids)))]
        return dict(driver.execute(statement, padded).fetchall())

    def from_raw(self, count: int, state: _RawState) -> list[tuple[Any, list[Part]]]:
        """The rows ``load_raw`` read for ``count`` ids, processed as ``load`` returns them."""
        size = 1 << (count - 1).bit_length()
        rows = self._by_ids(size, messages).made(state[0])
        parts: dict[str, list[Part]] = {}
        for part in self._by_ids(size, message_parts).made(state[1]):
            parts.setdefault(part.message_id, []).append(
                Part(
                    index=part.part_index,
                    status=_STATUSES.get(part.status) or MessageStatus(part.status),
                    carrier_message_id=part.carrier_message_id,
                    error_code=part.error_code,
                )
            )
        return [(row, parts.get(row.id, [])) for row in rows]

    async def pg_load(
        self,
        connection: AsyncConnection | None,
        driver: Any,
        ids: Sequence[str],
        *,
        lock: bool,
    ) -> list[tuple[Any, list[Part]]]:
        """``load`` on PostgreSQL inside the writer's transaction, the message rows locked
        (``FOR UPDATE``, in id order) when ``lock``: one array parameter, any number of ids."""
        if self._pg_by_ids is None:
            array = sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text()))
            chosen = sa.select(messages).where(messages.c.id == sa.any_(array))
            self._pg_by_ids = (
                RawSelect(chosen.order_by(messages.c.id), self._dialect),
                RawSelect(chosen.order_by(messages.c.id).with_for_update(), self._dialect),
                RawSelect(
                    sa.select(message_parts)
                    .where(message_parts.c.message_id == sa.any_(array))
                    .order_by(message_parts.c.message_id, message_parts.c.part_index),
                    self._dialect,
                ),
            )
        plain, locked, parts_of = self._pg_by_ids
        values = {"ids": list(ids)}
        rows = await (locked if lock else plain).fetch(driver, values, connection)
        parts: dict[str, list[Part]] = {}
        for part in await parts_of.fetch(driver, values, connection):
            parts.setdefault(part.message_id, []).append(
                Part(
                    index=part.part_index,
                    status=_STATUSES.get(part.status) or MessageStatus(part.status),
                    carrier_message_id=part.carrier_message_id,
                    error_code=part.error_code,
                )
            )
        return [(row, parts.get(row.id, [])) for row in rows]

    async def pg_lock_stamps(
        self, connection: AsyncConnection, driver: Any, ids: Sequence[str]
    ) -> dict[str, int]:
        """PostgreSQL, inside the writer's transaction: the ``write_stamp`` of each message of
        ``ids`` that exists, by id, its row locked (``FOR UPDATE``, in id order)."""
        rows = await pg_fetch(connection, driver, _PG_LOCK_STAMPS, [list(ids)])
        return {row[0]: row[1] for row in rows}

    def _by_ids(self, size: int, table: sa.Table) -> RawSelect:
        key = (table.name, size)
        found = self._lists.get(key)
        if found is None:
            column = table.c.id if table is messages else table.c.message_id
            statement = sa.select(table).where(
                column.in_([sa.bindparam(f"id_{i}") for i in range(size)])
            )
            if table is message_parts:
                statement = statement.order_by(table.c.message_id, table.c.part_index)
            found = self._lists[key] = RawSelect(statement, self._dialect)
        return found

    def by_carrier_id_array(self, statement: sa.Select[Any]) -> RawSelect:
        """The lookup by carrier id with the candidates as one array (PostgreSQL)."""
        if self._by_array is None:
            self._by_array = RawSelect(statement, self._dialect)
        return self._by_array

    def find_by_carrier_id(self, count: int) -> RawSelect:
        """The lookup by carrier id for ``count`` candidate forms (``candidate_0``...)."""
        found = self._by_carrier_id.get(count)
        if found is None:
            column = message_parts.c.carrier_id_normalised
            statement = (
                sa.select(message_parts.c.message_id, message_parts.c.carrier_message_id)
                .where(
                    message_parts.c.connector_id == sa.bindparam("connector_id"),
                    column.in_([sa.bindparam(f"candidate_{i}") for i in range(count)]),
                )
                .order_by(message_parts.c.message_id.desc())
                .limit(1)
            )
            found = self._by_carrier_id[count] = RawSelect(statement, self._dialect)
        return found


_LISTED_BY_EVENTS = sa.text(listed_by_events("events.status"))


def reached_statement(
    tenant_id: str, status: str, before: str | None, limit: int
) -> sa.Select[Any]:
    """The ids of the tenant's messages that ever reached ``status`` (one of
    ``STATUSES_LISTED_BY_EVENTS``), newest first, before ``before``: the events' partial
    index, whose own condition SQLite needs to see in the query to use it."""
    statement = sa.select(events.c.message_id).where(
        events.c.tenant_id == tenant_id, events.c.status == status, _LISTED_BY_EVENTS
    )
    if before is not None:
        statement = statement.where(events.c.message_id < before)
    return statement.order_by(events.c.message_id.desc()).limit(limit)


def by_creation(query: MessageQuery) -> bool:
    """Whether ``list_messages`` walks ``query``'s messages by creation time, newest first,
    through ``(tenant_id, created_at)`` (a time window without a recipient), rather than by
    id through ``(tenant_id, id)`` or ``(tenant_id, recipient, id)``: walked by id, a window
    far back in a large store was reached only after reading every newer message."""
    return query.to is None and (query.created_from is not None or query.created_to is not None)


async def _walk_start(
    connection: AsyncConnection, tenant_id: str, query: MessageQuery
) -> tuple[datetime, str] | None:
    """For a walk by creation time after a cursor: the cursor message's ``(created_at, id)``,
    where the walk goes on (``InvalidCursor`` if there is no such message any more)."""
    if query.cursor is None or not by_creation(query):
        return None
    created_at = await connection.scalar(
        sa.select(messages.c.created_at).where(
            messages.c.tenant_id == tenant_id, messages.c.id == query.cursor
        )
    )
    if created_at is None:
        raise InvalidCursor(
            "The cursor's message is gone: list from the first page again.", field="cursor"
        )
    return created_at, query.cursor


def _walk(
    tenant_id: str,
    query: MessageQuery,
    after: tuple[datetime, str] | None,
    *,
    by_time: bool,
    bound: sa.Row[Any] | None = None,
) -> tuple[list[sa.ColumnElement[bool]], list[sa.ColumnElement[Any]]]:
    """The conditions and the order of a walk of ``list_messages``: all of the query's filters
    but its status, newest first by creation time (``by_time``, going on ``after`` a cursor's
    message) or by id (before the cursor), not past ``bound`` (``scan_end_statement``).

    By creation time, the walk's index range has one upper and one lower limit, each the
    tighter of the window's and the cursor's or the bound's: given both, SQLite bounds its
    range by one of them and only filters by the other, so a page deep in a window would
    read it from the top again."""
    conditions: list[sa.ColumnElement[bool]] = [messages.c.tenant_id == tenant_id]
    if query.to is not None:
        conditions.append(messages.c.recipient == query.to)
    if not by_time:
        if query.created_from is not None:
            conditions.append(messages.c.created_at >= query.created_from)
        if query.created_to is not None:
            conditions.append(messages.c.created_at < query.created_to)
        if query.cursor is not None:
            conditions.append(messages.c.id < query.cursor)
        if bound is not None:
            conditions.append(messages.c.id >= bound.id)
        return conditions, [messages.c.id.desc()]
    if after is not None and (query.created_to is None or after[0] < query.created_to):
        at, cursor = after  # before the cursor's message in (created_at, id) order
        conditions.append(messages.c.created_at <= at)
        conditions.append(sa.or_(messages.c.created_at < at, messages.c.id < cursor))
    elif query.created_to is not None:
        conditions.append(messages.c.created_at < query.created_to)
    if bound is not None:  # read from the window, so within it
        conditions.append(messages.c.created_at >= bound.created_at)
        conditions.append(
            sa.or_(messages.c.created_at > bound.created_at, messages.c.id >= bound.id)
        )
    elif query.created_from is not None:
        conditions.append(messages.c.created_at >= query.created_from)
    return conditions, [messages.c.created_at.desc(), messages.c.id.desc()]


def scan_end_statement(
    tenant_id: str, query: MessageQuery, after: tuple[datetime, str] | None, scan: int
) -> sa.Select[Any]:
    """The id (and for a walk by creation time, the time) of the ``scan``-th message of the
    walk, the last one a page filtered by status reads, and of the next, if any (no row if
    it has fewer). Walked by id it reads the index alone."""
    by_time = by_creation(query)
    conditions, order = _walk(tenant_id, query, after, by_time=by_time)
    columns = (messages.c.id, messages.c.created_at) if by_time else (messages.c.id,)
    # By time, any message of the scan-th one's instant will do: the page goes up to it in
    # the walk's order (among messages of one instant, by id) and the next page on from it.
    # Ordered by time alone, the index gives the order, with no sort of each instant's ids.
    return sa.select(*columns).where(*conditions).order_by(*order[:1]).limit(2).offset(scan - 1)


def list_statement(
    tenant_id: str,
    query: MessageQuery,
    limit: int,
    *,
    among: Sequence[str] | None = None,
    after: tuple[datetime, str] | None = None,
    bound: sa.Row[Any] | None = None,
) -> sa.Select[Any]:
    """The read of one page of ``list_messages`` (``limit`` + 1 rows, to tell if more follow),
    or with ``among``, of those of the messages ``among`` that match (their primary key), by
    id. ``after``: where a walk by creation time goes on (``_walk_start``); ``bound``: the
    last message the walk reads (``scan_end_statement``)."""
    by_time = among is None and by_creation(query)
    conditions, order = _walk(tenant_id, query, after, by_time=by_time, bound=bound)
    if among is not None:
        conditions.append(messages.c.id.in_(among))
    if query.status is not None:
        conditions.append(messages.c.status == str(query.status))
    return sa.select(messages).where(*conditions).order_by(*order).limit(limit + 1)


def _one_of_param(column: sa.ColumnElement[Any], name: str, dialect: str) -> Any:
    """``statements.one_of`` with the values bound later, as parameter ``name`` (a list)."""
    if dialect == "postgresql":
        array = sa.bindparam(name, type_=postgresql.ARRAY(column.type))
        return column == sa.any_(array)
    return column.in_(sa.bindparam(name, expanding=True))


def _message_with_parts(*conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The message(s) matching ``conditions`` LEFT JOIN their parts, in part order; the part
    columns are labelled ``part_*`` (``part_index`` is NULL for a message without parts)."""
    return (
        sa.select(
            messages,
            message_parts.c.part_index.label("part_index"),
            message_parts.c.status.label("part_status"),
            message_parts.c.carrier_message_id.label("part_carrier_message_id"),
            message_parts.c.error_code.label("part_error_code"),
        )
        .select_from(messages.outerjoin(message_parts, message_parts.c.message_id == messages.c.id))
        .where(*conditions)
        .order_by(message_parts.c.part_index)
    )


# --- rows <-> domain ------------------------------------------------------------------------


def _copy(message: Message) -> Message:
    return message.copy()


def _check(new: Message, old: Message) -> None:
    if new.id != old.id or new.tenant_id != old.tenant_id:
        raise ValueError(f"a mutation of {old.id} returned message {new.id} of {new.tenant_id}")
    if _fixed_fields(new) != _fixed_fields(old):
        raise ValueError(f"a mutation of {old.id} changed what is fixed at accept")


def _fixed_fields(message: Message) -> tuple[Any, ...]:
    """What ``_FIXED`` stores of ``message`` (id and tenant are checked on their own)."""
    return (
        message.direction,
        message.to,
        message.sender,
        message.body,
        message.category,
        message.encoding,
        message.segments,
        message.created_at,
        message.country,
        message.client_ref,
        message.callback_url,
        message.is_test,
        message.origin,
        message.origin_parts,
        message.receipt_request,
        message.receipt_due_at,
    )


#: A ``messages`` row as expressions of ``m`` (the ``Message``) and ``stamp`` (its
#: ``write_stamp``), for ``_Statement.row_builder``.
_MESSAGE_ROW: Final[dict[str, str]] = {
    "id": "m.id",
    "tenant_id": "m.tenant_id",
    "direction": "str(m.direction)",
    "recipient": "m.to",
    "sender": "m.sender",
    "body": "m.body",
    "category": "str(m.category)",
    "encoding": "m.encoding",
    "segments": "m.segments",
    "status": "str(m.status)",
    "status_sequence": "m.status_sequence",
    "created_at": "m.created_at",
    "updated_at": "m.updated_at",
    "country": "m.country",
    "client_ref": "m.client_ref",
    "callback_url": "m.callback_url",
    "send_at": "m.send_at",
    "expires_at": "m.expires_at",
    "error_code": "m.error_code",
    "connector_id": "m.connector_id",
    "price": "m.price",
    "currency": "m.currency",
    "is_test": "m.is_test",
    "attempts": "m.attempts",
    "origin": "m.origin",
    "origin_parts": "m.origin_parts",
    "receipt_request": "str(m.receipt_request)",
    "receipt_due_at": "m.receipt_due_at",
    "write_stamp": "stamp",
}


def _message_from(row: sa.Row[Any], parts: list[Part]) -> Message:
    return Message(
        id=row.id,
        tenant_id=row.tenant_id,
        direction=_DIRECTIONS.get(row.direction) or Direction(row.direction),
        to=row.recipient,
        sender=row.sender,
        body=row.body,
        category=_CATEGORIES.get(row.category) or Category(row.category),
        encoding=row.encoding,
        segments=row.segments,
        status=_STATUSES.get(row.status) or MessageStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        country=row.country,
        client_ref=row.client_ref,
        callback_url=row.callback_url,
        send_at=row.send_at,
        expires_at=row.expires_at,
        error_code=row.error_code,
        connector_id=row.connector_id,
        price=row.price,
        currency=row.currency,
        is_test=bool(row.is_test),
        status_sequence=row.status_sequence,
        attempts=row.attempts,
        parts=parts,
        origin=row.origin,
        origin_parts=row.origin_parts,
        receipt_request=(
            _RECEIPT_REQUESTS.get(row.receipt_request) or ReceiptRequest(row.receipt_request)
        ),
        receipt_due_at=row.receipt_due_at,
    )


def _part_row(message: Message, part: Part) -> dict[str, Any]:
    carrier_id = part.carrier_message_id
    return {
        "message_id": message.id,
        "part_index": part.index,
        "status": str(part.status),
        "carrier_message_id": carrier_id,
        "carrier_id_normalised": None if carrier_id is None else normalise_carrier_id(carrier_id),
        # Parts are submitted through the message's connector (the domain keeps it there).
        "connector_id": message.connector_id,
        "error_code": part.error_code,
    }


def _part_changes(
    before: Message | None,
    after: Message,
    upserts: list[dict[str, Any]],
    status_updates: list[dict[str, Any]],
) -> bool:
    """Add the rows ``after``'s parts need, given the stored ``before``: none for a part as it
    was, a status update for a part whose status or error alone changed, an upsert else.
    Whether a part got a carrier id (or a connector) it did not have.

    PostgreSQL gives ``upserts`` for both: it rewrites no index entry whose value stays the
    same, and one statement for the batch's parts spares it a round trip."""
    stored: dict[int, Part] = {}
    if before is not None:
        for part in before.parts:  # a loop: no dict comprehension per change
            stored[part.index] = part
    same_connector = before is not None and before.connector_id == after.connector_id
    renamed = False
    for part in after.parts:
        old = stored.get(part.index)
        if old is None or not same_connector or old.carrier_message_id != part.carrier_message_id:
            upserts.append(_part_row(after, part))
            renamed = renamed or part.carrier_message_id is not None
        elif old.status is not part.status or old.error_code != part.error_code:
            status_updates.append(
                _part_row(after, part)
                if status_updates is upserts
                else {
                    "message_id": after.id,
                    "part_index": part.index,
                    "status": str(part.status),
                    "error_code": part.error_code,
                }
            )
    return renamed


#: An ``events`` row as expressions of ``e`` (the ``EventRecord``).
_EVENT_ROW: Final[dict[str, str]] = {
    "id": "e.id",
    "tenant_id": "e.tenant_id",
    "message_id": "e.message_id",
    "type": "e.type",
    "status": "None if e.status is None else str(e.status)",
    "sequence": "e.sequence",
    "at": "e.at",
    "detail": "e.detail",
    "payload": "e.payload",
}


def _event_from(row: sa.Row[Any]) -> EventRecord:
    return EventRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        message_id=row.message_id,
        type=row.type,
        status=None if row.status is None else MessageStatus(row.status),
        sequence=row.sequence,
        at=row.at,
        detail=row.detail,
        payload=row.payload,
    )


def _idempotency_row(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "tenant_id": record.tenant_id,
        "key": record.key,
        "request_hash": record.request_hash,
        "message_id": record.message_id,
        "created_at": record.created_at,
    }
