"""One handle on the database: engines, the group-commit writer, read connections.

``await connect(url)`` accepts:

- ``sqlite:///path/to/pigeon.db`` or ``sqlite+aiosqlite:///...`` (the embedded default). The
  file runs in WAL mode with ``synchronous=FULL`` (every commit is fsynced), foreign keys on
  and a busy timeout. Writes go through exactly one connection (the writer's); reads use a
  small pool of other connections, which WAL lets run while the writer writes.
- ``postgresql://...``, ``postgres://...`` or ``postgresql+asyncpg://...`` (scale-out); plain
  URLs are switched to the asyncpg driver.

Python's ``sqlite3`` driver (and aiosqlite on top of it) starts transactions on its own, and
only before INSERT/UPDATE/DELETE, so a read-then-write is not isolated. We turn that off
(``isolation_level = None``) and emit ``BEGIN IMMEDIATE`` ourselves for writes (the write lock
is taken up front, so a transaction never fails half-way on a lock upgrade) and a deferred
``BEGIN`` for reads (a consistent snapshot across the statements of one read).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pigeon.store.tables import metadata as schema
from pigeon.store.writer import DEFAULT_MAX_BATCH, BatchOperation, Operation, Writer

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
    role: Literal["writer", "reader", "migrator"],
    pool_size: int = 1,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """An aiosqlite engine with Pigeon's pragmas and explicit BEGIN handling.

    ``writer`` connections take the write lock at BEGIN (``BEGIN IMMEDIATE``); ``reader``
    connections are read-only (``query_only``) with deferred BEGIN; the ``migrator`` is a writer
    with foreign keys off, as table rebuilds in migrations need. Call ``prepare_sqlite_file``
    first (WAL mode).
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": busy_timeout},
    )
    pragmas = {
        "busy_timeout": str(int(busy_timeout * 1000)),
        "foreign_keys": "OFF" if role == "migrator" else "ON",
        "synchronous": "FULL",
    }
    if role == "reader":
        pragmas["query_only"] = "ON"
    begin = "BEGIN" if role == "reader" else "BEGIN IMMEDIATE"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver; ``_on_begin`` emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for name, value in pragmas.items():
                cursor.execute(f"PRAGMA {name}={value}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def postgresql_engine(url: URL, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine; stale connections are replaced before use."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "pigeon"}},
    )


class Database:
    """A connected database: the writer for every write, pooled connections for reads.

    Build it with ``await connect(url)``; end it with ``await close()``, which first lets the
    writer finish every operation already submitted. Like the connections it holds, it belongs
    to the event loop that connected it.

    Writes: ``write(op)`` or ``write_batched(run, item)`` (see ``pigeon.store.writer``).
    Reads: ``async with database.read() as connection`` (read-only on SQLite; never write
    through it on PostgreSQL either, or the group commit and its durability are bypassed).
    """

    def __init__(
        self,
        url: URL,
        *,
        write_engine: AsyncEngine,
        read_engine: AsyncEngine,
        writer: Writer,
        owned_engines: tuple[AsyncEngine, ...],
    ) -> None:
        self._url = url
        self._write_engine = write_engine
        self._read_engine = read_engine
        self._writer = writer
        self._owned = owned_engines
        self._closed = False

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
    def write_engine(self) -> AsyncEngine:
        """The writer's engine (one connection on SQLite). Write through ``write()``."""
        return self._write_engine

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine reads use (read-only connections on SQLite)."""
        return self._read_engine

    async def write(self, operation: Operation[T]) -> T:
        """Run ``operation`` in the writer's next group-committed transaction."""
        return await self._writer.submit(operation)

    async def write_batched(self, run: BatchOperation[ItemT, ResultT], item: ItemT) -> ResultT:
        """Hand ``item`` to ``run`` with the other items of the next batch (see ``writer``)."""
        return await self._writer.submit_batched(run, item)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading: one snapshot on SQLite, autocommit on PostgreSQL."""
        async with self._read_engine.connect() as connection:
            yield connection

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
            for engine in self._owned:
                await engine.dispose()


async def _noop(connection: AsyncConnection) -> None:
    await connection.execute(text("SELECT 1"))


async def connect(
    url: str | URL,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    pool_size: int = 10,
    read_pool_size: int = 4,
    writer_tasks: int = 1,
    busy_timeout: float = BUSY_TIMEOUT_SECONDS,
) -> Database:
    """Open the database at ``url`` and start its writer (the schema must be migrated).

    ``pool_size`` is PostgreSQL's connection pool; ``read_pool_size`` SQLite's reader
    connections; ``writer_tasks`` > 1 is honoured on PostgreSQL only (SQLite has one writer).
    """
    sa_url = normalise_url(url)
    if dialect_of(sa_url) == "sqlite":
        await prepare_sqlite_file(sa_url, busy_timeout)
        write_engine = sqlite_engine(sa_url, role="writer", busy_timeout=busy_timeout)
        read_engine = sqlite_engine(
            sa_url, role="reader", pool_size=read_pool_size, busy_timeout=busy_timeout
        )
        owned: tuple[AsyncEngine, ...] = (write_engine, read_engine)
        writer_tasks = 1
    else:
        write_engine = postgresql_engine(sa_url, pool_size=pool_size)
        read_engine = write_engine.execution_options(isolation_level="AUTOCOMMIT")
        owned = (write_engine,)
    writer = Writer(write_engine, max_batch=max_batch, tasks=writer_tasks)
    database = Database(
        sa_url,
        write_engine=write_engine,
        read_engine=read_engine,
        writer=writer,
        owned_engines=owned,
    )
    try:
        # Open the writer's connection now: a wrong path or an unreachable server fails here.
        async with write_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await connection.rollback()
    except BaseException:
        for engine in owned:
            await engine.dispose()
        raise
    writer.start()
    return database
