"""One handle on the database: engines, the group-commit writer, read connections.

``await connect(url)`` accepts:

- ``sqlite:///path/to/pigeon.db`` or ``sqlite+aiosqlite:///...`` (the embedded default). The
  file runs in WAL mode with ``synchronous=FULL`` (every commit is fsynced), foreign keys on
  and a busy timeout. Writes go through exactly one connection (the writer's); reads use a
  small pool of other connections, which WAL lets run while the writer writes. Both use the
  stdlib ``sqlite3`` driver synchronously (``pigeon.store.sqlite_sync``): the async URL names
  only what migrations use.
- ``postgresql://...``, ``postgres://...`` or ``postgresql+asyncpg://...`` (scale-out); plain
  URLs are switched to the asyncpg driver.

Python's ``sqlite3`` driver starts transactions on its own, and
only before INSERT/UPDATE/DELETE, so a read-then-write is not isolated. We turn that off
(``isolation_level = None``) and emit ``BEGIN IMMEDIATE`` ourselves for writes (the write lock
is taken up front, so a transaction never fails half-way on a lock upgrade) and a deferred
``BEGIN`` for reads (a consistent snapshot across the statements of one read).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import asyncpg
from sqlalchemy import MetaData, text
from sqlalchemy.engine import URL, Engine, Row, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from pigeon.store import json_text
from pigeon.store.sqlite_sync import (
    Role,
    SyncConnection,
    install_sqlite_hooks,
    sqlite_sync_engine,
)
from pigeon.store.tables import metadata as schema
from pigeon.store.writer import (
    DEFAULT_MAX_BATCH,
    INLINE_COMMIT_BELOW_SECONDS,
    BatchOperation,
    Operation,
    Writer,
)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

Dialect = Literal["sqlite", "postgresql"]

#: How long SQLite waits for a lock held by another process before failing.
BUSY_TIMEOUT_SECONDS: Final = 5.0


def normalise_url(url: str | URL) -> URL:
    """The async-driver URL for ``url``: ``sqlite+aiosqlite`` or ``postgresql+asyncpg``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            raise ValueError(
                "Pigeon needs a SQLite file (readers and the writer use separate connections); "
                "use sqlite:///path/to/pigeon.db"
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")


def dialect_of(url: URL) -> Dialect:
    """``sqlite`` or ``postgresql``."""
    return "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"


async def prepare_sqlite_file(url: URL, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
    """Create the SQLite file's directory and switch the file to WAL (a lasting setting).

    Done once, outside any transaction and off the event loop, before engines open it.
    """
    database = url.database or ""
    await asyncio.to_thread(_prepare_file, database, database.startswith("file:"), busy_timeout)


def _prepare_file(database: str, uri: bool, busy_timeout: float) -> None:
    if not uri:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Two processes creating the same file at once may find it locked for a moment; changing
    # the journal mode then fails at once instead of waiting, so wait here.
    for attempt in range(_WAL_ATTEMPTS):
        try:
            with closing(sqlite3.connect(database, timeout=busy_timeout, uri=uri)) as connection:
                (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
            continue
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL mode for {database} (journal_mode={mode})")
        return


_WAL_ATTEMPTS: Final = 20


def sqlite_engine(
    url: URL,
    *,
    role: Role,
    pool_size: int = 1,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """An aiosqlite engine with Pigeon's pragmas and explicit BEGIN handling (migrations).

    ``role`` as in ``sqlite_sync.sqlite_settings``. ``connect`` uses ``sqlite_sync_engine``
    instead. Call ``prepare_sqlite_file`` first (WAL mode).
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": busy_timeout},
        json_serializer=json_text.dumps,
        json_deserializer=json_text.loads,
    )
    install_sqlite_hooks(engine.sync_engine, role=role, busy_timeout=busy_timeout)
    return engine


def postgresql_engine(
    url: URL, *, pool_size: int = 20, synchronous_commit: bool = True
) -> AsyncEngine:
    """An asyncpg engine with a fixed pool of ``pool_size`` connections.

    No overflow: hundreds of concurrent jobs would otherwise open and close a connection per
    read (a PostgreSQL backend start each, which profiles showed dominating). No pre-ping: a
    ``SELECT 1`` transaction before every checkout doubled the cost of a point read; instead a
    connection the server dropped fails its statement once, which invalidates the pool (every
    caller retries: jobs by their backoff, clients by HTTP 503), and connections are recycled
    after ``POOL_RECYCLE_SECONDS``. Without ``synchronous_commit`` its sessions set
    ``synchronous_commit=off``; with it they keep the server's setting (which may ask more,
    of a replica).
    """
    settings = dict(PG_SESSION_SETTINGS)
    if not synchronous_commit:
        settings["synchronous_commit"] = "off"
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        pool_recycle=POOL_RECYCLE_SECONDS,
        connect_args={"server_settings": settings},
        json_serializer=json_text.dumps,
        json_deserializer=json_text.loads,
    )


#: Every PostgreSQL session's settings (ADR 20, which replaced ADR 18's ``force_custom_plan``).
#: Pigeon's statements are key lookups, index ranges and bulk writes by primary key, each
#: designed for an index; a generic plan (``plan_cache_mode = auto``: a prepared statement
#: run five times may keep one for the session) spares the server planning every execution,
#: about a third of its CPU end to end. What made generic plans unsafe is what they would
#: pick while the tables were nearly empty (a fresh database, before any ANALYZE), and keep:
#: a full scan, or a hash join over a whole index. So full scans, bitmap scans and hash or
#: merge joins are priced out (the ``enable_*`` settings only add cost: a statement no index
#: serves still runs), and every plan reads through its indexes in their order, row by row,
#: however the tables grow. (Bitmap scans: with a table's statistics from when it was empty,
#: a claim behind a 100,000-job backlog read every ready job of its kind through a bitmap and
#: sorted them, ~43 ms, instead of reading its LIMIT from ``ix_jobs_claim`` in order.)
#: JIT compilation is off: a plan that keeps a priced-out node (a statement no index serves,
#: such as the queue's count by kind for ``/metrics``) costs over 10^10, above every
#: ``jit_*_above_cost``, so the server compiled it with LLVM, inlined and optimised, at each
#: execution: 58 ms for a one-row lookup of a small table, 90 ms added to a 31 ms count of
#: 100,000 jobs (docs/benchmarks.md, session 40). Pigeon's statements are short; none gains.
PG_SESSION_SETTINGS: Final = {
    "application_name": "pigeon",
    "plan_cache_mode": "auto",
    "enable_seqscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "enable_bitmapscan": "off",
    "jit": "off",
}


#: Connections of the asyncpg pool for hot point reads (``Database.raw_pg_read``), opened as
#: needed. Dispatch runs hundreds of reads at once: 8 made them queue for a connection (end to
#: end ~8% slower than through SQLAlchemy's pool of 20); 16-20 measured on par, with ~15% less
#: worker CPU. With the engine's 20, a process uses at most 36 of PostgreSQL's 100.
PG_READ_POOL_SIZE: Final = 16


async def _pg_read_pool(url: URL) -> Any:
    """An asyncpg pool on ``url`` whose JSON codecs match SQLAlchemy's asyncpg dialect (JSON
    text through ``json_text``), so ``RawSelect`` rows convert as through SQLAlchemy."""

    async def codecs(connection: Any) -> None:
        def decode(value: bytes) -> Any:
            return json_text.loads(value)

        def decode_jsonb(value: bytes) -> Any:
            return json_text.loads(value[1:])  # binary jsonb: a version byte, then the text

        def encode_jsonb(value: str) -> bytes:
            return b"\x01" + value.encode()

        await connection.set_type_codec(
            "json", encoder=str.encode, decoder=decode, schema="pg_catalog", format="binary"
        )
        await connection.set_type_codec(
            "jsonb",
            encoder=encode_jsonb,
            decoder=decode_jsonb,
            schema="pg_catalog",
            format="binary",
        )

    async def keep_session(connection: Any) -> None:
        # In place of asyncpg's reset query at every release (advisory unlocks, CLOSE ALL,
        # UNLISTEN, RESET ALL): a round trip and ~10% of a PostgreSQL worker's CPU, for
        # session state these single autocommit statements never make. A transaction left
        # open is still rolled back: the pool does that before calling this.
        return None

    return await asyncpg.create_pool(
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        min_size=1,
        max_size=PG_READ_POOL_SIZE,
        max_inactive_connection_lifetime=POOL_RECYCLE_SECONDS,
        server_settings=PG_SESSION_SETTINGS,
        init=codecs,
        reset=keep_session,
    )


#: Age after which a pooled PostgreSQL connection is replaced.
POOL_RECYCLE_SECONDS: Final = 1800


class Database:
    """A connected database: the writer for every write, pooled connections for reads.

    Build it with ``await connect(url)``; end it with ``await close()``, which first lets the
    writer finish every operation already submitted. Like the connections it holds, it belongs
    to the event loop that connected it.

    Writes: ``write(op)`` or ``write_batched(run, item)`` (see ``pigeon.store.writer``).
    Reads: ``async with database.read() as connection`` (read-only on SQLite; never write
    through it on PostgreSQL either, or the group commit and its durability are bypassed).

    On SQLite, reads and the writer's statements run synchronously on the calling thread over
    ``sqlite3``; only the writer's BEGIN and COMMIT go to a thread (``store.sqlite_sync``). On
    PostgreSQL everything goes through asyncpg.
    """

    def __init__(
        self,
        url: URL,
        *,
        writer: Writer,
        sqlite_reads: Engine | None = None,
        async_reads: AsyncEngine | None = None,
        owned_engines: tuple[Engine | AsyncEngine, ...],
        write_engine: Engine,
    ) -> None:
        if (sqlite_reads is None) == (async_reads is None):
            raise ValueError("give exactly one of sqlite_reads and async_reads")
        self._url = url
        self._writer = writer
        self._sqlite_reads = sqlite_reads
        self._async_reads = async_reads
        self._owned = owned_engines
        self._write_engine = write_engine
        self._closed = False
        self._raw_readers = threading.local()
        self._raw_kept: list[Any] = []
        #: PostgreSQL: a small asyncpg pool for the hot point reads (``raw_pg_read``).
        self._pg_pool: Any = None
        self._pg_pool_lock = asyncio.Lock()

    @property
    def url(self) -> str:
        """The database URL (async driver, password hidden)."""
        return self._url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> Dialect:
        """``sqlite`` or ``postgresql``."""
        return dialect_of(self._url)

    @property
    def metadata(self) -> MetaData:
        """The schema the stores and the queue work on."""
        return schema

    @property
    def writer(self) -> Writer:
        """The group-commit writer (its ``stats`` count transactions and operations)."""
        return self._writer

    @property
    def write_engine(self) -> Engine:
        """The writer's engine in its synchronous form (for event hooks; one connection on
        SQLite). Write through ``write()``."""
        return self._write_engine

    @property
    def read_engine(self) -> Engine:
        """The engine reads use, in its synchronous form (read-only connections on SQLite)."""
        if self._sqlite_reads is not None:
            return self._sqlite_reads
        assert self._async_reads is not None
        return self._async_reads.sync_engine

    async def write(
        self, operation: Operation[T], *, urgent: bool = False, alone: bool = False
    ) -> T:
        """Run ``operation`` in the writer's next group-committed transaction (``urgent``:
        ahead of the operations already waiting; ``alone``: next, in a transaction of its
        own)."""
        return await self._writer.submit(operation, urgent=urgent, alone=alone)

    def write_batched(
        self, run: BatchOperation[ItemT, ResultT], item: ItemT, *, urgent: bool = False
    ) -> Awaitable[ResultT]:
        """Hand ``item`` to ``run`` with the other items of the next batch (see ``writer``);
        ``urgent`` items go first. Await the result (the writer's own awaitable, without a
        coroutine of this method's around it: this is called several times per message)."""
        return self._writer.submit_batched(run, item, urgent=urgent)

    def prepare_batches(
        self, run: BatchOperation[Any, Any], prepare: Callable[[Sequence[Any]], None]
    ) -> None:
        """Have the writer call ``prepare`` before each batch of ``run``'s items takes the
        write lock (``Writer.prepare_with``)."""
        self._writer.prepare_with(run, prepare)

    def writes_one_statement(self, run: BatchOperation[Any, Any]) -> None:
        """Tell the writer that ``run`` writes a batch with one statement, atomic by itself
        (``Writer.writes_one_statement``)."""
        self._writer.writes_one_statement(run)

    @property
    def sqlite_reads(self) -> bool:
        """Whether ``raw_read`` is available (SQLite)."""
        return self._sqlite_reads is not None

    @contextmanager
    def raw_read(self) -> Iterator[sqlite3.Connection]:
        """A pooled read-only ``sqlite3`` connection in autocommit mode (SQLite only): for
        single-statement hot reads that skip SQLAlchemy (``pigeon.raw_sql``)."""
        if self._sqlite_reads is None:
            raise RuntimeError("raw reads exist on SQLite only")
        # One connection per thread, kept: a checkout and reset per point read cost more than
        # the read. Single statements in autocommit mode each read the latest snapshot.
        kept: Any = getattr(self._raw_readers, "connection", None)
        if kept is None:
            kept = self._sqlite_reads.raw_connection()
            self._raw_readers.connection = kept
            self._raw_kept.append(kept)
        driver = kept.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        yield driver

    @asynccontextmanager
    async def raw_pg_read(self) -> AsyncIterator[Any]:
        """An ``asyncpg`` connection in autocommit mode (PostgreSQL only) from a small pool of
        its own, for single-statement hot reads that skip SQLAlchemy (``pigeon.raw_sql``):
        its checkout costs a fraction of a SQLAlchemy connection's. Its JSON codecs are the
        ones SQLAlchemy's dialect installs, so rows read through it convert alike."""
        if self._async_reads is None:
            raise RuntimeError("raw asyncpg reads exist on PostgreSQL only")
        if self._pg_pool is None:
            async with self._pg_pool_lock:
                if self._pg_pool is None:
                    self._pg_pool = await _pg_read_pool(self._url)
        async with self._pg_pool.acquire() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading: one snapshot on SQLite, autocommit on PostgreSQL.

        On SQLite its statements run synchronously when awaited (microseconds for the indexed
        lookups the repositories make); consume their results inside the block.
        """
        if self._sqlite_reads is not None:
            with self._sqlite_reads.connect() as connection:
                yield SyncConnection(connection).as_async()
            return
        assert self._async_reads is not None
        async with self._async_reads.connect() as connection:
            yield connection

    async def scan(self, statement: Executable) -> list[Row[Any]]:
        """The rows of a read that may take long (a statement no index range bounds, such as
        a count of a whole table). On SQLite, where ``read``'s statements run on the event
        loop, it runs in a thread of its own with a pooled connection, so the loop goes on
        serving meanwhile: a count of a million queued jobs takes about a quarter of a
        second, which every request of the process would otherwise wait for."""
        if self._sqlite_reads is not None:
            engine = self._sqlite_reads

            def scanned() -> list[Row[Any]]:
                # Checked out, used and returned in this thread: no other thread has it
                # meanwhile, as SQLite's multi-thread mode asks (ADR 48).
                with engine.connect() as connection:
                    return list(connection.execute(statement).all())

            return await asyncio.to_thread(scanned)
        async with self.read() as connection:
            return list((await connection.execute(statement)).all())

    async def ping(self, seconds: float = 5.0) -> bool:
        """Whether the database answers a read and the writer commits, within ``seconds``."""
        if self._closed or not self._writer.running:
            return False
        try:
            async with asyncio.timeout(seconds):
                async with self.read() as connection:
                    await connection.execute(text("SELECT 1"))
                await self.write(_noop)
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Drain the writer, then close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._writer.close()
        finally:
            for kept in self._raw_kept:  # back to the pool, which dispose closes
                kept.close()
            self._raw_kept.clear()
            pool, self._pg_pool = self._pg_pool, None
            if pool is not None:
                await pool.close()
            await _dispose(self._owned)


async def _dispose(engines: Sequence[Engine | AsyncEngine]) -> None:
    for engine in engines:
        if isinstance(engine, AsyncEngine):
            await engine.dispose()
        else:
            engine.dispose()


async def _noop(connection: AsyncConnection) -> None:
    await connection.execute(text("SELECT 1"))


def _probe(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        connection.rollback()


async def connect(
    url: str | URL,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    pool_size: int = 20,
    read_pool_size: int = 4,
    writer_tasks: int = 1,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
    inline_commit_below: float = INLINE_COMMIT_BELOW_SECONDS,
    synchronous_commit: bool = True,
    sync_wal_after_commit: bool = True,
    background_syncs: bool = False,
) -> Database:
    """Open the database at ``url`` and start its writer (the schema must be migrated).

    ``pool_size`` is PostgreSQL's connection pool; ``read_pool_size`` how many idle reader
    connections SQLite keeps (more open while more reads overlap); ``writer_tasks`` > 1 is
    honoured on PostgreSQL only (SQLite has one writer). ``inline_commit_below``: SQLite
    COMMITs quicker than this on average run on the event loop, slower ones in the writer's
    thread (0: always the thread; see ``pigeon.store.writer``), where SQLite syncs the WAL
    inside COMMIT: by default (``sync_wal_after_commit``) the writer syncs it itself after each
    COMMIT, outside the write lock and in its thread, and answers callers after that (ADR 30).
    ``synchronous_commit``: off, a COMMIT returns before its log is on disk (SQLite
    ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``): it survives Pigeon's crash,
    not the database's or the machine's. ``background_syncs``: SQLite's WAL sync process runs
    as a batch task (ADR 52): its wake-ups do not preempt the running process.
    """
    sa_url = normalise_url(url)
    owned: tuple[Engine | AsyncEngine, ...]
    if dialect_of(sa_url) == "sqlite":
        await prepare_sqlite_file(sa_url, busy_timeout)
        write_engine = sqlite_sync_engine(
            sa_url,
            role="writer",
            pool_size=1,
            max_overflow=0,
            busy_timeout=busy_timeout,
            synchronous_commit=synchronous_commit,
        )
        read_engine = sqlite_sync_engine(
            sa_url,
            role="reader",
            pool_size=read_pool_size,
            max_overflow=-1,
            busy_timeout=busy_timeout,
        )
        owned = (write_engine, read_engine)
        writer = Writer(
            write_engine,
            max_batch=max_batch,
            inline_commit_below=inline_commit_below,
            busy_timeout=busy_timeout,
            sync_wal_after_commit=sync_wal_after_commit,
            background_syncs=background_syncs,
        )
        database = Database(
            sa_url,
            writer=writer,
            sqlite_reads=read_engine,
            owned_engines=owned,
            write_engine=write_engine,
        )
        probe = write_engine
    else:
        async_engine = postgresql_engine(
            sa_url, pool_size=pool_size, synchronous_commit=synchronous_commit
        )
        owned = (async_engine,)
        writer = Writer(async_engine, max_batch=max_batch, tasks=writer_tasks)
        database = Database(
            sa_url,
            writer=writer,
            async_reads=async_engine.execution_options(isolation_level="AUTOCOMMIT"),
            owned_engines=owned,
            write_engine=async_engine.sync_engine,
        )
        probe = None
    try:
        # Open the writer's connection now: a wrong path or an unreachable server fails here.
        if probe is not None:
            await asyncio.to_thread(_probe, probe)
        else:
            async with async_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                await connection.rollback()
    except BaseException:
        await _dispose(owned)
        raise
    writer.start()
    return database
