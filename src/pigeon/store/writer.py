"""The group-commit writer: every write of one ``Database`` goes through here.

Callers submit an operation and await its result. A background task takes every operation
waiting (up to ``max_batch``), runs them all in ONE transaction and commits; only then does each
caller get its result. So a caller that gets an answer knows its write is durable, and N
concurrent callers pay for one commit (one fsync) instead of N. There is no timer: while one
batch commits, the next one gathers, so batches grow exactly as fast as load does.

Two shapes of operation:

- a plain ``Operation``: ``async def op(conn) -> T``, run as is;
- a *batched* item: ``submit_batched(run, item)``. All items of a batch that share the same
  ``run`` callable are handed to one call ``run(conn, items)``, which returns one result per
  item. This lets, for instance, 500 accepts become a handful of multi-row statements. ``run``
  may return an ``Exception`` instance for an item it refused *without writing anything* for
  it; that caller alone gets the exception and the batch still commits.

Failure isolation: if the batch transaction raises, it is rolled back and split in halves, each
retried in its own transaction, down to single operations, so one bad operation fails only its
own caller (and a single bad one among N costs about 2·log2(N) extra transactions, not N).
Failures that are about the database rather than an operation (connection lost, database
locked by another process past the busy timeout, disk errors) fail the whole batch at once,
and deadlocks or serialisation failures retry it.

Operations must be re-runnable (they may run again after a rollback) and must do nothing but
database work on the given connection: the transaction, and every other writer, waits for them.

A writer belongs to the event loop that started it; callers on other loops (test clients that
run the app in a thread) are woken and answered thread-safely.

On SQLite exactly one writer task (one connection) exists, so the database never answers
``SQLITE_BUSY`` to ourselves. On PostgreSQL ``tasks`` > 1 runs several batches in parallel.

On SQLite the writer is given a synchronous ``sqlite3`` engine (``pigeon.store.sqlite_sync``):
a batch's operations run their statements synchronously on the loop thread (no thread hop per
statement). A write lock held by another process is waited for on the loop (tried again every
millisecond while the loop serves others). In WAL mode with the connection set to sync at
COMMIT (``synchronous`` FULL, Pigeon's default), the writer takes that sync over (ADR 30): its
connection runs ``synchronous=NORMAL``, so ``COMMIT`` on the loop only hands the frames to the
operating system and releases the lock every process shares at once; the WAL's fdatasync
then runs in the writer's own thread, one at a time, each covering every batch committed
before it started, and a batch's callers are answered only once such a sync has returned.
While another process contends for the lock the writer goes on to its next batch during the
sync; alone on the file it waits for it, and what is submitted meanwhile makes the next
batch. Without that (``sync_wal_after_commit`` off) SQLite syncs inside ``COMMIT``, holding
the lock, and the ``COMMIT`` runs in the writer's thread so that the loop keeps working
meanwhile, except while other processes contend for the write lock (one was found holding
it in the last second) and commits are quick (under ``inline_commit_below`` on average): then
on the loop. A hop to the thread costs up to Python's switch interval (5 ms) while the loop
is busy, and CPU (ADR 15). Either way callers are answered only once their batch is
durable, and nothing touches the connection while the thread has it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from sqlalchemy.engine import Connection, Engine, RootTransaction
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pigeon.store.sqlite_sync import (
    SyncConnection,
    take_over_wal_sync,
    try_write_lock,
)
from pigeon.store.wal_file import WalFile
from pigeon.store.wal_sync import WalSyncProcess, WalSyncProcessGone
from pigeon.telemetry import STORE_WRITE_SECONDS

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: One write: gets the batch's connection (inside its transaction), returns the caller's result.
Operation = Callable[[AsyncConnection], Awaitable[T]]

#: Several items of one kind at once; returns one result (or refusal) per item, in order.
BatchOperation = Callable[
    [AsyncConnection, Sequence[ItemT]], Awaitable[Sequence[ResultT | Exception]]
]

#: Works out a batch's writes for one ``BatchOperation`` before its transaction (see
#: ``Writer.prepare_with``).
Prepare = Callable[[Sequence[Any]], None]

DEFAULT_MAX_BATCH: Final = 512

#: SQLite: COMMITs that take less than this on average run on the event loop. A hop to the
#: writer's thread and back costs up to Python's switch interval while the loop is busy, and
#: every process waits for the write lock meanwhile; a quicker fsync is cheaper to wait for.
INLINE_COMMIT_BELOW_SECONDS: Final = sys.getswitchinterval()
#: SQLite: commits run on the loop only this long after a transaction found the write lock
#: held by another process. Without such a process there is no one to keep waiting, and the
#: thread lets the loop work (decode, build the next batch) while the disk syncs.
CONTENDED_FOR_SECONDS: Final = 1.0
#: Weight of the latest COMMIT in the running average that picks where the next one runs.
_COMMIT_AVERAGE_WEIGHT: Final = 0.1
#: SQLite: between two tries at a write lock another process holds, on the loop. (uvloop's
#: timers count whole milliseconds: a shorter sleep would return at once, a busy wait.)
LOCK_POLL_SECONDS: Final = 0.001
#: ... for this long; then every ``LOCK_POLL_LONG_SECONDS`` (a lock held that long is held by
#: something slower than our batches: a backup, a migration, a tool).
LOCK_POLL_SHORT_FOR: Final = 0.05
LOCK_POLL_LONG_SECONDS: Final = 0.005
#: SQLite: how long a write waits for another process's lock by default (then "database is
#: locked" fails its batch).
DEFAULT_BUSY_TIMEOUT: Final = 5.0

#: SQLSTATEs worth retrying the whole batch for: serialization failure and deadlock.
_RETRY_STATES: Final = frozenset({"40001", "40P01"})
_RETRIES: Final = 3
#: SQLite errors about the database, not about an operation.
_ENVIRONMENT_ERRORS: Final = ("database is locked", "disk i/o error", "database or disk is full")


class WriterClosedError(RuntimeError):
    """The writer is shut down (or shutting down) and takes no more operations."""


@dataclass(slots=True)
class WriterStats:
    """Counters of what the writer has done, for metrics and tests."""

    #: Committed transactions (batches and split-off parts of failed batches).
    transactions: int = 0
    #: Operations whose transaction committed.
    operations: int = 0
    #: Batches that failed as a whole and were split to isolate the bad operation.
    splits: int = 0
    #: Operations that failed (their caller got an exception).
    failures: int = 0
    #: The largest batch committed so far.
    largest_batch: int = 0
    #: SQLite: transactions that found the write lock held by another process and waited,
    #: and the tries at the lock they made meanwhile.
    lock_waits: int = 0
    lock_tries: int = 0
    #: SQLite: COMMITs run on the event loop, and in the writer's thread (a slow disk).
    inline_commits: int = 0
    threaded_commits: int = 0
    #: PostgreSQL: batches written as one statement outside a transaction
    #: (``writes_one_statement``).
    single_statements: int = 0
    #: SQLite: syncs of the WAL after COMMIT (ADR 30), each covering every batch committed
    #: before it started.
    wal_syncs: int = 0


@dataclass(slots=True, eq=False)
class _Entry:
    run: BatchOperation[Any, Any] | None  # None: ``item`` is a plain Operation
    item: Any
    future: asyncio.Future[Any] = field(repr=False)


@dataclass(slots=True, eq=False)
class _Committed:
    """A batch committed and waiting for the WAL's sync (ADR 30)."""

    entries: list[_Entry]
    results: list[Any]
    #: When its transaction started (``perf_counter``), for ``STORE_WRITE_SECONDS``.
    started: float
    #: Set once its callers are answered (or failed).
    answered: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _UnavailableError(Exception):
    """Wraps an error that concerns the whole database, not one operation."""


class Writer:
    """Runs submitted operations in group-committed transactions on ``engine``.

    ``engine`` is an ``AsyncEngine`` (PostgreSQL) or a synchronous SQLite ``Engine`` whose
    pool holds one connection (then ``tasks`` must be 1).
    """

    def __init__(
        self,
        engine: AsyncEngine | Engine,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        tasks: int = 1,
        name: str = "pigeon-writer",
        inline_commit_below: float = INLINE_COMMIT_BELOW_SECONDS,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        sync_wal_after_commit: bool = True,
        background_syncs: bool = False,
    ) -> None:
        if max_batch < 1 or tasks < 1:
            raise ValueError("max_batch and tasks must be at least 1")
        if isinstance(engine, Engine) and tasks != 1:
            raise ValueError("a synchronous (SQLite) writer runs exactly one task")
        self._engine = engine
        #: The thread BEGIN and COMMIT run in (synchronous engines only).
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._max_batch = max_batch
        self._task_count = tasks
        #: SQLite: where COMMIT runs (see ``INLINE_COMMIT_BELOW_SECONDS``); 0: always the
        #: writer's thread.
        self.inline_commit_below = inline_commit_below
        #: SQLite: the running average of a COMMIT's duration (seconds), wherever it ran.
        self.commit_seconds = 0.0
        #: SQLite: how long after a wait for the write lock it counts as contended
        #: (``CONTENDED_FOR_SECONDS``), and until when (monotonic) it does.
        self.contended_for = CONTENDED_FOR_SECONDS
        self._contended_until = 0.0
        self._busy_timeout = busy_timeout
        self._name = name
        self._pending: deque[_Entry] = deque()
        #: Operations a client waits on (accepts): taken into batches before the others.
        self._urgent: deque[_Entry] = deque()
        #: Operations that run next, each in a transaction of its own (job claims).
        self._alone: deque[_Entry] = deque()
        #: PostgreSQL: ``alone`` operations running beside the writer tasks.
        self._side: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._home: asyncio.AbstractEventLoop | None = None
        #: The thread the home loop runs on: a caller on it while it runs is on it (one loop
        #: runs per thread), which saves asking ``asyncio.get_running_loop()`` (a ``getpid``
        #: system call each time on Python 3.11, two per message in each process).
        self._home_thread = -1
        self._preparers: dict[BatchOperation[Any, Any], Prepare] = {}
        #: SQLite: the writer's one connection, kept from batch to batch (a checkout from the
        #: pool and its return, with the reset that goes with it, cost more per batch than
        #: BEGIN and COMMIT); dropped after a failure that may have left it in doubt.
        self._kept: Connection | None = None
        self._one_statement: set[BatchOperation[Any, Any]] = set()
        #: SQLite: whether the writer syncs the WAL itself after each COMMIT, outside the
        #: write lock and off the loop, where the connection is set to sync it at COMMIT
        #: (ADR 30); off, SQLite syncs inside COMMIT (ADR 15 decides where that runs).
        self.sync_wal_after_commit = sync_wal_after_commit
        #: Whether the WAL sync process is a batch task (ADR 52): its wake-ups do not preempt
        #: the running process (off for the OTP lane, whose claims wait for their syncs).
        self.background_syncs = background_syncs
        #: How the WAL's file is made durable in the writer's thread (tests wrap it).
        self.sync_file: Callable[[int], None] = os.fdatasync
        #: Whether the WAL is synced by a child process (``WalSyncProcess``, ADR 36) rather
        #: than in the writer's thread; tests that wrap ``sync_file`` turn it off. The
        #: writer falls back to its thread for good if the child goes away.
        self.sync_in_process = True
        self._sync_process: WalSyncProcess | None = None
        #: SQLite: the WAL this writer syncs itself (ADR 30), if it does.
        self._wal: WalFile | None = None
        #: Batches committed and not yet synced, in commit order.
        self._unsynced: list[_Committed] = []
        #: The sync running (in the WAL sync process or the writer's thread), if one is.
        self._syncing: asyncio.Future[None] | None = None
        self.stats = WriterStats()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task(s); needs a running event loop."""
        if self._tasks:
            return
        self._home = asyncio.get_running_loop()
        self._home_thread = threading.get_ident()
        if isinstance(self._engine, Engine):
            self._thread = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"{self._name}-commit"
            )
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"{self._name}-{index}")
            for index in range(self._task_count)
        ]

    @property
    def running(self) -> bool:
        """Whether the writer accepts and executes operations."""
        return not self._closing and bool(self._tasks) and not any(t.done() for t in self._tasks)

    @property
    def task_count(self) -> int:
        """Batches in flight at once at most (their transactions run side by side)."""
        return self._task_count

    @property
    def backlog(self) -> int:
        """Operations submitted and not yet taken into a batch."""
        return len(self._pending) + len(self._urgent) + len(self._alone)

    async def close(self) -> None:
        """Stop taking operations, finish every one already submitted, stop the task(s)."""
        self._closing = True
        self._wake.set()
        if self._tasks or self._side:
            await asyncio.gather(*self._tasks, *self._side, return_exceptions=True)
        # Only reachable if the tasks were cancelled from outside: nobody waits forever.
        stopped = WriterClosedError("the writer stopped")
        self._fail([*self._alone, *self._urgent, *self._pending], stopped)
        self._alone.clear()
        self._urgent.clear()
        self._pending.clear()
        while self._syncing is not None:  # batches committed, their callers not yet answered
            await asyncio.wait([self._syncing])
            await asyncio.sleep(0)  # its callback answers them (and may start the next sync)
        if self._thread is not None:
            self._thread.shutdown(wait=True)  # idle by now: every batch has returned
        if self._sync_process is not None:
            self._sync_process.close()
            self._sync_process = None
        if self._wal is not None:
            self._wal.close()
        self._drop_connection()

    def connection(self) -> Connection:
        """SQLite: the writer's own connection (opened if it is not yet), for hooks and
        tests. Use it only while the writer is idle; write through ``submit``."""
        if not isinstance(self._engine, Engine):
            raise TypeError("only a synchronous (SQLite) writer keeps a connection")
        kept = self._kept
        if kept is None or kept.closed or kept.invalidated:
            if kept is not None:
                kept.close()
            kept = self._kept = self._engine.connect()
            if self.sync_wal_after_commit:
                self._use_wal(take_over_wal_sync(kept))
        return kept

    def _use_wal(self, path: str | None) -> None:
        """Sync the WAL at ``path`` after each COMMIT from now on (``None``: leave it to
        SQLite)."""
        wal = self._wal
        if wal is not None and wal.path == path:
            return
        if wal is not None:
            self._wal = None
            if self._syncing is None:  # else the running sync uses it; closed with the writer
                wal.close()
        if path is not None:
            self._wal = WalFile(path, lambda fd: self.sync_file(fd))

    def _drop_connection(self) -> None:
        """Give the kept connection back to the pool (which rolls back whatever it holds)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            try:
                kept.close()
            except Exception:  # broken beyond a rollback: the pool discards it
                log.warning("writer: closing the connection failed", exc_info=True)

    def prepare_with(self, run: BatchOperation[Any, Any], prepare: Prepare) -> None:
        """Call ``prepare(items)`` with ``run``'s items of every batch just before the batch's
        transaction begins (SQLite only: before the write lock is taken), in the order ``run``
        will get them.

        The write lock is shared with every other process on the database file, so work that
        needs no lock (building rows, running domain logic on a snapshot) is better done
        before taking it: ``run`` then only checks that what the preparation read is unchanged
        and writes. ``run`` must still work alone: a preparation that failed, or one the
        items no longer match (a batch split after a failure), is simply not used.
        """
        self._preparers[run] = prepare

    def writes_one_statement(self, run: BatchOperation[Any, Any]) -> None:
        """Declare that ``run`` writes a batch with ONE statement, atomic by itself. On
        PostgreSQL a batch holding only ``run``'s items then begins no transaction: no
        ``BEGIN`` and ``COMMIT`` round trips, the statement commits alone (``run`` may still
        read first: a transaction such a read began is committed after ``run``). Batches
        mixing it with other operations run in one transaction as before."""
        self._one_statement.add(run)

    # --- submitting -----------------------------------------------------------------------

    async def submit(
        self, operation: Operation[T], *, urgent: bool = False, alone: bool = False
    ) -> T:
        """Run ``operation`` in the next batch; return its result once the batch committed.
        ``urgent`` operations go ahead of the others (see ``submit_batched``).

        ``alone``: in a transaction of its own, before any other waiting batch. For short
        operations whose caller's latency matters more than a shared commit: a job claim
        that would otherwise wait for a whole batch of mutations (an OTP's dispatch claimed
        behind a marketing backlog's receipts).
        """
        return cast(T, await self._enqueue(None, operation, urgent=urgent, alone=alone))

    def submit_batched(
        self, run: BatchOperation[ItemT, ResultT], item: ItemT, *, urgent: bool = False
    ) -> asyncio.Future[ResultT]:
        """Hand ``item`` to ``run`` together with the other items of the next batch; await
        the future returned for its result (it is set once the batch committed).

        ``urgent`` items (a client waits for them: accepts) go into the next batch ahead of
        the others, so background work queued behind them (dispatch, receipts) cannot make a
        client wait for several transactions.
        """
        return self._enqueue(run, item, urgent=urgent)

    def _enqueue(
        self,
        run: BatchOperation[Any, Any] | None,
        item: Any,
        *,
        urgent: bool = False,
        alone: bool = False,
    ) -> asyncio.Future[Any]:
        if self._closing:
            raise WriterClosedError("the writer is closed")
        if not self._tasks:
            raise WriterClosedError("the writer is not started")
        home = self._home
        if home is not None and threading.get_ident() == self._home_thread and home.is_running():
            loop = home  # the one loop running on this thread
        else:
            loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if alone and loop is self._home and not isinstance(self._engine, Engine):
            # PostgreSQL: no lock to take turns at, so no need to wait for a writer task
            # (each may be busy with a batch of a hundred mutations): its own transaction
            # starts now, on a connection of the shared pool.
            side = loop.create_task(self._run_batch([_Entry(run, item, future)]))
            self._side.add(side)
            side.add_done_callback(self._side.discard)
            return future
        # deque.append is thread-safe
        queue = self._alone if alone else self._urgent if urgent else self._pending
        queue.append(_Entry(run, item, future))
        if loop is self._home:
            self._wake.set()
        elif self._home is not None:  # a caller on another thread's loop
            self._home.call_soon_threadsafe(self._wake.set)
        return future

    # --- the loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            if not self._pending and not self._urgent and not self._alone:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[_Entry] = []
            if self._alone:
                await self._run_batch([self._alone.popleft()])
                continue
            # Urgent entries first, but a quarter of the batch stays for waiting background
            # work: a flood of accepts must not starve dispatch and receipts.
            reserve = min(len(self._pending), max(1, self._max_batch // 4))
            while self._urgent and len(batch) < self._max_batch - reserve:
                batch.append(self._urgent.popleft())
            while self._pending and len(batch) < self._max_batch:
                batch.append(self._pending.popleft())
            while self._urgent and len(batch) < self._max_batch:
                batch.append(self._urgent.popleft())
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Entry]) -> None:
        try:
            await self._commit(batch)
        except Exception as exc:  # a bug in here must not stop every later write
            log.exception("writer batch crashed")
            self._fail(batch, exc)
        except BaseException:
            self._fail(batch, WriterClosedError("the writer was cancelled"))
            raise

    async def _commit(self, batch: list[_Entry]) -> None:
        entries = [entry for entry in batch if not entry.future.done()]
        retries = 0
        while entries:
            started = time.perf_counter()
            try:
                results = await self._transaction(entries)
            except _UnavailableError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
                log.warning("writer: database unavailable, %d operations fail", len(entries))
                self._fail(entries, cause)
                return
            except Exception as exc:
                if _sqlstate(exc) in _RETRY_STATES and retries < _RETRIES:
                    retries += 1
                    continue
                if len(entries) == 1:
                    self._fail(entries, exc)
                    return
                self.stats.splits += 1
                log.info("writer: batch of %d failed (%r); splitting", len(entries), exc)
                middle = len(entries) // 2
                await self._commit(entries[:middle])
                await self._commit(entries[middle:])
                return
            self.stats.transactions += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(entries))
            if self._wal is not None and isinstance(self._engine, Engine):
                await self._after_commit(self._wal, _Committed(entries, results, started))
                return
            STORE_WRITE_SECONDS.observe(time.perf_counter() - started)
            self._answer(entries, results)
            return

    async def _after_commit(self, wal: WalFile, batch: _Committed) -> None:
        """A batch committed and not yet durable: its callers are answered once a sync of the
        WAL that started after its COMMIT has returned (ADR 30).

        While another process contends for the write lock, the writer goes on to its next
        batch during the sync, and the batches committed meanwhile share the next sync: the
        other process's turns at the lock and this process's syncs overlap. Alone on the file,
        it waits for the sync, and what is submitted meanwhile makes one larger next batch.
        """
        self._unsynced.append(batch)
        if self._syncing is None:
            self._start_sync(wal)
        if time.monotonic() >= self._contended_until:
            await batch.answered

    def _start_sync(self, wal: WalFile) -> None:
        """Sync the WAL for every batch committed so far, in the writer's WAL sync process
        (ADR 36) or else its thread; they are answered when it returns. Batches committed
        meanwhile wait for the next sync, which starts as soon as this one ends."""
        assert self._thread is not None
        batches, self._unsynced = self._unsynced, []
        self.stats.wal_syncs += 1
        process = self._sync_process_for(wal)
        if process is None:
            syncing = asyncio.wrap_future(self._thread.submit(wal.sync))
        else:
            syncing = asyncio.get_running_loop().create_future()
            process.sync().add_done_callback(
                lambda done: self._synced_by_process(done, wal, syncing)
            )
        self._syncing = syncing
        syncing.add_done_callback(lambda done: self._synced(done, batches))

    def _sync_process_for(self, wal: WalFile) -> WalSyncProcess | None:
        """The child process that syncs ``wal`` (started on first use), or ``None`` when the
        writer syncs in its thread."""
        process = self._sync_process
        if process is not None and not process.usable and self.sync_in_process:
            log.error(
                "writer: the WAL sync process exited; syncing the WAL in a thread from now on"
            )
            self.sync_in_process = False
        if process is not None and (
            not self.sync_in_process or process.path != wal.path or not process.usable
        ):
            process.close()
            process = self._sync_process = None
        if process is None and self.sync_in_process:
            try:
                process = self._sync_process = WalSyncProcess(wal.path, batch=self.background_syncs)
            except Exception:  # no interpreter to run, no process left: the thread syncs
                log.exception("writer: the WAL sync process did not start; syncing in a thread")
                self.sync_in_process = False
        return process

    def _synced_by_process(
        self, done: asyncio.Future[None], wal: WalFile, syncing: asyncio.Future[None]
    ) -> None:
        """The child's answer, passed on to ``syncing``; if the child is gone, the sync is
        done in the writer's thread instead, and every later one too."""
        error = done.exception() if not done.cancelled() else WalSyncProcessGone("cancelled")
        if isinstance(error, WalSyncProcessGone):
            log.error("writer: %s; syncing the WAL in a thread from now on", error)
            self.sync_in_process = False
            assert self._thread is not None
            in_thread = asyncio.wrap_future(self._thread.submit(wal.sync))
            in_thread.add_done_callback(lambda done: _pass_on(done, syncing))
        else:
            _pass_on(done, syncing)

    def _synced(self, done: asyncio.Future[None], batches: list[_Committed]) -> None:
        self._syncing = None
        error = done.exception() if not done.cancelled() else WriterClosedError("cancelled")
        if error is not None:
            # Committed but perhaps not durable: the callers are told it failed (never run
            # again: it is committed); the next batches sync again.
            log.error("writer: syncing the WAL failed: %r", error)
        now = time.perf_counter()
        for batch in batches:
            if error is not None:
                self._fail(batch.entries, error)
            else:
                STORE_WRITE_SECONDS.observe(now - batch.started)
                self._answer(batch.entries, batch.results)
            if not batch.answered.done():
                batch.answered.set_result(None)
        wal = self._wal
        if self._unsynced and wal is not None:
            self._start_sync(wal)
        elif self._unsynced:  # the WAL was given up meanwhile: nothing to sync them with
            batches, self._unsynced = self._unsynced, []
            for batch in batches:
                self._fail(batch.entries, WriterClosedError("the WAL could not be synced"))
                batch.answered.set_result(None)

    def _answer(self, entries: list[_Entry], results: list[Any]) -> None:
        for entry, result in zip(entries, results, strict=True):
            if isinstance(result, _Refused):
                self.stats.failures += 1
                self._settle(entry.future, error=result.error)
            else:
                self.stats.operations += 1
                self._settle(entry.future, result)

    async def _transaction(self, entries: list[_Entry]) -> list[Any]:
        if isinstance(self._engine, Engine):
            return await self._sync_transaction(self._engine, entries)
        try:
            connection = await self._engine.connect()
        except Exception as exc:
            raise _UnavailableError from exc
        try:
            try:
                if self._alone_in_batch(entries):
                    self.stats.single_statements += 1
                    results = await self._execute(connection, entries)
                    if connection.in_transaction():  # something read first, in a transaction
                        await connection.commit()
                    return results
                async with connection.begin():
                    return await self._execute(connection, entries)
            except Exception as exc:
                if _is_environmental(exc):
                    raise _UnavailableError from exc
                raise
        finally:
            await connection.close()

    def _alone_in_batch(self, entries: list[_Entry]) -> bool:
        """Whether the batch is only items of one ``writes_one_statement`` operation."""
        run = entries[0].run if entries else None
        return run in self._one_statement and all(entry.run == run for entry in entries)

    async def _sync_transaction(self, engine: Engine, entries: list[_Entry]) -> list[Any]:
        """One transaction on the synchronous SQLite connection: BEGIN IMMEDIATE on the loop
        (tried again while another process holds the lock), the operations on the loop,
        COMMIT on the loop or in the writer's thread (``_commit_sqlite``).

        Nothing of it goes through the writer's thread while commits are quick: an answer
        from the thread resumes this task only after the callbacks already queued on the loop,
        and the lock is held meanwhile, keeping the other processes' writers waiting.
        """
        try:
            connection = self.connection()
        except Exception as exc:
            raise _UnavailableError from exc
        kept = False
        try:
            self._prepare(entries)
            try:
                if not try_write_lock(connection):
                    self.stats.lock_waits += 1
                    self._contended_until = time.monotonic() + self.contended_for
                    await self._wait_for_write_lock(connection)
                transaction = connection.begin()
            except Exception as exc:
                raise _UnavailableError from exc
            try:
                results = await self._execute(SyncConnection(connection).as_async(), entries)
                await self._commit_sqlite(transaction)
            except BaseException as exc:
                _roll_back(connection, transaction)
                if isinstance(exc, Exception) and _is_environmental(exc):
                    raise _UnavailableError from exc
                raise
            kept = True
            return results
        finally:
            if not kept:
                # Returned to the pool, which rolls back whatever sqlite3 still holds open;
                # the next batch checks out a connection afresh.
                self._drop_connection()

    async def _wait_for_write_lock(self, connection: Connection) -> None:
        """Try for the write lock every ``LOCK_POLL_SECONDS`` (the loop serves others
        meanwhile), every ``LOCK_POLL_LONG_SECONDS`` once it has waited ``LOCK_POLL_SHORT_FOR``,
        until it is taken, or fail as SQLite would after ``busy_timeout``."""
        started = time.monotonic()
        deadline = started + self._busy_timeout
        while True:
            now = time.monotonic()
            short = now - started < LOCK_POLL_SHORT_FOR
            await asyncio.sleep(LOCK_POLL_SECONDS if short else LOCK_POLL_LONG_SECONDS)
            self.stats.lock_tries += 1
            if try_write_lock(connection):
                return
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError("database is locked")

    async def _commit_sqlite(self, transaction: RootTransaction) -> None:
        """COMMIT on the loop when the writer syncs the WAL itself (ADR 30: the COMMIT then
        only hands the frames to the operating system). Otherwise, on the loop while another
        process contends for the write lock and commits are quick on average, else in the
        writer's thread; either way its duration updates the average."""
        if self._wal is not None:
            self.stats.inline_commits += 1
            transaction.commit()
            return
        if self._disk_wait_inline():
            self.stats.inline_commits += 1
            self._timed(transaction.commit)
        else:
            self.stats.threaded_commits += 1
            await self._in_thread(lambda: self._timed(transaction.commit))

    def _disk_wait_inline(self) -> bool:
        """Whether to wait for the disk on the loop: another process contends for the write
        lock (one held it in the last ``contended_for`` seconds) and waits for the disk are
        quick on average."""
        contended = time.monotonic() < self._contended_until
        return contended and self.commit_seconds < self.inline_commit_below

    def _timed(self, wait_for_disk: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            wait_for_disk()
        finally:
            elapsed = time.perf_counter() - started
            self.commit_seconds += _COMMIT_AVERAGE_WEIGHT * (elapsed - self.commit_seconds)

    def _prepare(self, entries: list[_Entry]) -> None:
        """Run the preparers of the batch's operations (see ``prepare_with``)."""
        if not self._preparers:
            return
        groups: dict[BatchOperation[Any, Any], list[Any]] = {}
        for entry in entries:
            if entry.run is not None and entry.run in self._preparers:
                groups.setdefault(entry.run, []).append(entry.item)
        for run, items in groups.items():
            try:
                self._preparers[run](items)
            except Exception:  # the batch runs unprepared: slower, still right
                log.warning("writer: preparing a batch failed", exc_info=True)

    async def _in_thread(self, call: Callable[[], T]) -> T:
        """``call()`` in the writer's thread; the loop serves others until it returns.

        Even if this task is cancelled meanwhile, it returns (or raises) only once ``call`` is
        over: the connection must not be used by two threads at once (SQLite runs in
        multi-thread mode, without locks of its own: ADR 48).
        """
        assert self._thread is not None
        future = self._thread.submit(call)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            concurrent.futures.wait([future])  # at most one lock wait or fsync
            raise

    async def _execute(self, connection: AsyncConnection, entries: list[_Entry]) -> list[Any]:
        results: list[Any] = [None] * len(entries)
        groups: dict[BatchOperation[Any, Any], list[int]] = {}
        for index, entry in enumerate(entries):
            if entry.run is None:
                results[index] = await entry.item(connection)
            else:
                groups.setdefault(entry.run, []).append(index)
        for run, indexes in groups.items():
            outcomes = await run(connection, [entries[i].item for i in indexes])
            if len(outcomes) != len(indexes):
                raise RuntimeError(f"{run!r} returned {len(outcomes)} results for {len(indexes)}")
            for index, outcome in zip(indexes, outcomes, strict=True):
                results[index] = _Refused(outcome) if isinstance(outcome, Exception) else outcome
        return results

    def _fail(self, entries: Sequence[_Entry], error: BaseException) -> None:
        for entry in entries:
            if not entry.future.done():
                self.stats.failures += 1
                self._settle(entry.future, error=error)

    def _settle(
        self, future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None
    ) -> None:
        loop = future.get_loop()
        if loop is self._home:
            _set(future, result, error)
        else:  # a caller on another thread's event loop: hand the result over safely
            loop.call_soon_threadsafe(_set, future, result, error)


def _set(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


@dataclass(frozen=True, slots=True)
class _Refused:
    error: Exception


def _roll_back(connection: Connection, transaction: RootTransaction) -> None:
    """Roll back after a failed operation or COMMIT (a failed COMMIT may leave SQLite's
    transaction open); a connection too broken for that is discarded instead."""
    try:
        transaction.rollback()
    except Exception:
        log.warning("writer: rollback failed; dropping the connection", exc_info=True)
        connection.invalidate()


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _is_environmental(exc: Exception) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _ENVIRONMENT_ERRORS)


def _pass_on(done: asyncio.Future[None], target: asyncio.Future[None]) -> None:
    """Settle ``target`` as ``done`` ended (cancelled: as a failed sync)."""
    if target.done():
        return
    if done.cancelled():
        target.set_exception(WalSyncProcessGone("the WAL sync was cancelled"))
    elif (error := done.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(None)
