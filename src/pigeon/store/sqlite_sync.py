"""SQLite without the async layer: synchronous statements on the event-loop thread.

Through aiosqlite every statement costs a hop to the driver's thread and back plus
SQLAlchemy's greenlet bridge: ~2.5-3 ms per point lookup on the 2-core machines Pigeon is
measured on, while SQLite answers it in microseconds. On SQLite, therefore:

- reads run synchronously on the caller's thread, on a pool of ``sqlite3`` connections
  (WAL: a reader never waits for the writer, so the statement cannot block on it);
- the writer runs a batch's statements and its ``COMMIT`` synchronously on its ONE
  connection, and has the WAL synced afterwards by a child process (``pigeon.store.wal_sync``),
  so that neither the loop nor the write lock waits for the disk (ADR 30 and 36;
  ``pigeon.store.writer``).

The repositories are written against ``AsyncConnection`` (``await connection.execute(...)``).
``SyncConnection`` keeps that contract: its ``async def`` methods run the statement at once,
without yielding to the loop. ``SqlConnection`` is the part of that contract both provide;
results are live cursors here, so consume them inside the ``read()`` block or operation (as
every repository does).

See docs/adr/0008-sqlite-sync-reads-threaded-commit.md, ADR 15, ADR 30 and ADR 36.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Final,
    Literal,
    ParamSpec,
    Protocol,
    TypeVar,
    cast,
)

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, ScalarResult
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.base import Executable

from pigeon.store import json_text

T = TypeVar("T")
P = ParamSpec("P")

Role = Literal["writer", "reader", "migrator"]


class SqlConnection(Protocol):
    """What repositories use of a connection; ``AsyncConnection`` and ``SyncConnection`` both
    provide it (checked by mypy below)."""

    async def execute(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> CursorResult[Any]: ...

    async def scalar(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> Any: ...

    async def scalars(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> ScalarResult[Any]: ...

    async def exec_driver_sql(
        self,
        statement: str,
        parameters: Any = None,
        execution_options: Any = None,
    ) -> CursorResult[Any]: ...


class SyncConnection:
    """A synchronous SQLAlchemy ``Connection`` behind ``AsyncConnection``'s awaitable methods.

    Awaiting a method runs the statement right away on the calling thread; nothing yields to
    the event loop, so the statements of one read or one writer batch run back to back.
    """

    __slots__ = ("sync_connection",)

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    async def execute(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> CursorResult[Any]:
        """Run ``statement`` now (``Connection.execute``)."""
        return self.sync_connection.execute(
            statement, parameters, execution_options=execution_options
        )

    async def scalar(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> Any:
        """The first column of the first row, or ``None`` (``Connection.scalar``)."""
        return self.sync_connection.scalar(
            statement, parameters, execution_options=execution_options
        )

    async def scalars(
        self,
        statement: Executable,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> ScalarResult[Any]:
        """The first column of every row (``Connection.scalars``)."""
        return self.sync_connection.scalars(
            statement, parameters, execution_options=execution_options
        )

    async def exec_driver_sql(
        self,
        statement: str,
        parameters: Any = None,
        execution_options: Any = None,
    ) -> CursorResult[Any]:
        """Run driver-level SQL now (``Connection.exec_driver_sql``)."""
        return self.sync_connection.exec_driver_sql(statement, parameters, execution_options)

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(connection, ...)`` on the synchronous connection (``AsyncConnection.run_sync``)."""
        return fn(self.sync_connection, *args, **kwargs)

    def as_async(self) -> AsyncConnection:
        """This adapter typed as the ``AsyncConnection`` the repositories annotate.

        Only ``SqlConnection``'s methods and ``run_sync`` exist; the repositories use no others.
        """
        return self  # type: ignore[return-value]


if TYPE_CHECKING:  # both connections provide what repositories use
    _async_provides: type[SqlConnection] = AsyncConnection
    _sync_provides: type[SqlConnection] = SyncConnection


def sqlite_settings(
    role: Role, busy_timeout: float, synchronous_commit: bool = True
) -> tuple[dict[str, str], str]:
    """The pragmas every new connection of ``role`` gets, and the statement its BEGIN emits.

    ``writer`` connections take the write lock at BEGIN (``BEGIN IMMEDIATE``); ``reader``
    connections are read-only (``query_only``) with deferred BEGIN (one snapshot per read); the
    ``migrator`` is a writer with foreign keys off, as table rebuilds in migrations need.
    ``synchronous_commit``: on, ``synchronous=FULL`` fsyncs the WAL at every COMMIT (a commit
    survives a power cut); off, ``NORMAL`` leaves the WAL to the operating system between
    checkpoints (a commit survives the process's crash, not the machine's).
    """
    pragmas = {
        # The writer waits for another process's lock itself (``Writer``, ``take_write_lock``).
        "busy_timeout": "0" if role == "writer" else str(int(busy_timeout * 1000)),
        "foreign_keys": "OFF" if role == "migrator" else "ON",
        "synchronous": "FULL" if synchronous_commit else "NORMAL",
    }
    if role == "reader":
        pragmas["query_only"] = "ON"
    return pragmas, "BEGIN" if role == "reader" else "BEGIN IMMEDIATE"


def install_sqlite_hooks(
    engine: Engine, *, role: Role, busy_timeout: float, synchronous_commit: bool = True
) -> None:
    """Give ``engine``'s new connections ``role``'s pragmas and take BEGIN from the driver.

    Python's ``sqlite3`` starts transactions on its own, and only before INSERT/UPDATE/DELETE;
    with ``isolation_level = None`` it starts none and the ``begin`` hook emits ours.
    """
    pragmas, begin = sqlite_settings(role, busy_timeout, synchronous_commit)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for name, value in pragmas.items():
                cursor.execute(f"PRAGMA {name}={value}")
        finally:
            cursor.close()

    if engine.dialect.is_async:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(begin)

    else:

        @event.listens_for(engine, "begin")
        def _on_begin_directly(connection: Connection) -> None:
            # Straight to sqlite3: a tenth of the cost of a statement through SQLAlchemy,
            # paid by every read. (So ``before_cursor_execute`` hooks do not see it.)
            driver = connection.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            if connection.connection.info.pop(BEGUN, False):
                return  # ``try_write_lock`` took it already
            try:
                if role == "writer":
                    take_write_lock(driver, begin, busy_timeout)
                else:
                    driver.execute(begin)
            except sqlite3.Error as exc:  # raised as SQLAlchemy would have wrapped it
                raise sa.exc.DBAPIError.instance(begin, None, exc, sqlite3.Error) from exc


#: Between two tries at another process's write lock (SQLite's own busy handler sleeps up to
#: 100 ms between tries, which shows as latency spikes when processes share a file).
LOCK_RETRY_SECONDS = 0.0005


#: Set in a pooled connection's ``info`` by ``try_write_lock``: its next ``begin`` is taken.
BEGUN: Final = "pigeon.begun"


def try_write_lock(connection: Connection, begin: str = "BEGIN IMMEDIATE") -> bool:
    """One try at the write lock for ``connection`` (a writer's), without waiting: whether it
    was taken. When it was, the connection's next ``begin()`` starts no second transaction.

    The writer tries on the event loop, so that a free lock is taken and used at once, and
    tries again while another process holds it (``Writer._wait_for_write_lock``): an answer
    from a thread would reach the loop only after the callbacks queued before it, while the
    lock is held.
    """
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    try:
        driver.execute(begin)
    except sqlite3.OperationalError as exc:
        if _locked(exc):
            return False
        raise sa.exc.DBAPIError.instance(begin, None, exc, sqlite3.Error) from exc
    connection.connection.info[BEGUN] = True
    return True


def take_write_lock(driver: sqlite3.Connection, begin: str, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE``, retried every ``LOCK_RETRY_SECONDS`` while another process holds
    the write lock, for ``busy_timeout`` seconds at most (then SQLite's "database is locked").
    The writer's connection has SQLite's own busy timeout off: once in its transaction (WAL)
    no statement waits for a lock.

    For a ``begin()`` on a writer connection outside the ``Writer`` (which takes the lock with
    ``try_write_lock`` on the loop instead): it sleeps, so not on an event loop.
    """
    deadline: float | None = None
    while True:
        try:
            driver.execute(begin)
            return
        except sqlite3.OperationalError as exc:
            now = time.monotonic()
            deadline = deadline or now + busy_timeout
            if not _locked(exc) or now >= deadline:
                raise
        time.sleep(LOCK_RETRY_SECONDS)


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def sqlite_sync_engine(
    url: URL,
    *,
    role: Role,
    pool_size: int,
    max_overflow: int,
    busy_timeout: float,
    synchronous_commit: bool = True,
) -> Engine:
    """A ``sqlite3`` engine for ``url`` (any SQLite driver name) with ``role``'s settings.

    Connections may be used from any thread, one thread at a time (``check_same_thread`` off):
    the writer commits in its own thread, and test clients run the application on another
    thread's loop. ``max_overflow=-1`` makes a pool that never makes its caller wait, which a
    pool used on the event-loop thread must be (whoever would return a connection runs there).
    """
    engine = sa.create_engine(
        url.set(drivername="sqlite+pysqlite"),
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        json_serializer=json_text.dumps,
        json_deserializer=json_text.loads,
    )
    install_sqlite_hooks(
        engine, role=role, busy_timeout=busy_timeout, synchronous_commit=synchronous_commit
    )
    return engine


#: Set in a pooled writer connection's ``info`` once its WAL's sync is taken over (ADR 30):
#: the WAL's path. The connection then runs ``synchronous=NORMAL``, so asking SQLite again
#: would find nothing left to take over.
WAL_SYNCED: Final = "pigeon.wal_synced"


def take_over_wal_sync(connection: Connection) -> str | None:
    """Make ``connection`` (a writer's) leave the WAL's sync to its caller, who then syncs the
    WAL after each COMMIT, outside the write lock (ADR 30): the WAL's path, or ``None`` when
    there is nothing to take over (not in WAL mode, in memory, or not configured to sync the
    WAL at commit: ``synchronous`` below FULL).

    SQLite's ``synchronous=FULL`` syncs the WAL inside COMMIT, while the connection holds the
    database's one write lock; with ``NORMAL`` the COMMIT only hands its frames to the operating
    system (they survive the process, not the machine), and the caller's fdatasync of the WAL
    makes them durable before anyone is told the write is done.
    """
    info = connection.connection.info
    if WAL_SYNCED in info:
        return cast(str, info[WAL_SYNCED])
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    (mode,) = driver.execute("PRAGMA journal_mode").fetchone()
    (level,) = driver.execute("PRAGMA synchronous").fetchone()
    if str(mode).lower() != "wal" or int(level) < _SYNCHRONOUS_FULL:
        return None
    files = {name: file for _, name, file in driver.execute("PRAGMA database_list")}
    main = files.get("main")
    if not main:  # a temporary or in-memory database: no file to sync
        return None
    driver.execute("PRAGMA synchronous=NORMAL")
    path = info[WAL_SYNCED] = f"{main}-wal"
    return path


#: ``PRAGMA synchronous`` levels: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
_SYNCHRONOUS_FULL: Final = 2
