"""The group-commit writer and the Database around it, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import signal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import uvloop
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.store import Database, WriterClosedError, connect, migrate, normalise_url
from pigeon.store.tables import message_parts, tenants
from pigeon.store.wal_file import WalFile
from pigeon.store.wal_sync import WalSyncProcess, WalSyncProcessGone
from pigeon.store.writer import Operation
from pigeon.telemetry import REGISTRY

if TYPE_CHECKING:
    from conftest import Factory, Stores


def _insert_tenant(tenant_id: str, name: str | None = None) -> Operation[str]:
    async def insert(connection: AsyncConnection) -> str:
        await connection.execute(
            sa.insert(tenants).values(
                id=tenant_id,
                name=name or tenant_id,
                created_at=sa.func.current_timestamp(),
            )
        )
        return tenant_id

    return insert


async def _count(database: Database, table: sa.Table) -> int:
    async with database.read() as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_concurrent_accepts_share_transactions(stores: Stores, factory: Factory) -> None:
    """200 concurrent accepts store 200 messages in far fewer transactions than callers."""
    tenant = await factory.tenant()
    before = stores.database.writer.stats.transactions
    messages = [factory.message(tenant) for _ in range(200)]

    results = await asyncio.gather(
        *(stores.messages.accept(factory.acceptance(m)) for m in messages)
    )

    transactions = stores.database.writer.stats.transactions - before
    assert len(results) == 200
    assert await _count(stores.database, sa.table("messages")) == 200
    assert transactions < 200
    assert transactions <= 5
    assert stores.database.writer.stats.largest_batch >= 100


async def test_a_failing_operation_fails_only_its_caller(database: Database) -> None:
    """In a batch of 41 writes one that raises gets its error; the other 40 commit."""

    async def broken(connection: AsyncConnection) -> None:
        await connection.execute(sa.insert(tenants).values(id="bad", name="bad"))  # no created_at

    operations = [_insert_tenant(f"t{i:02d}") for i in range(20)]
    operations += [broken]
    operations += [_insert_tenant(f"t{i:02d}") for i in range(20, 40)]

    outcomes = await asyncio.gather(
        *(database.write(op) for op in operations),
        return_exceptions=True,
    )

    assert isinstance(outcomes[20], sa.exc.IntegrityError)
    assert [o for i, o in enumerate(outcomes) if i != 20] == [f"t{i:02d}" for i in range(40)]
    assert await _count(database, tenants) == 40
    assert database.writer.stats.splits >= 1


async def test_each_committed_transaction_is_timed_in_the_write_histogram(
    database: Database,
) -> None:
    """Every transaction the writer commits adds one observation to
    ``pigeon_store_write_seconds``, at least as long as the writes inside it took."""

    def samples() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("pigeon_store_write_seconds_count") or 0.0
        total = REGISTRY.get_sample_value("pigeon_store_write_seconds_sum") or 0.0
        return count, total

    async def slow(connection: AsyncConnection) -> None:
        await connection.execute(
            sa.insert(tenants).values(id="slow", name="slow", created_at=sa.func.now())
        )
        await asyncio.sleep(0.03)  # the transaction lasts at least this long

    count_before, total_before = samples()
    transactions_before = database.writer.stats.transactions
    await database.write(_insert_tenant("timed"))
    await database.write(slow)
    count_after, total_after = samples()

    committed = database.writer.stats.transactions - transactions_before
    assert committed == 2
    assert count_after - count_before == committed
    assert total_after - total_before >= 0.03


async def test_an_operation_raising_its_own_error_fails_alone(database: Database) -> None:
    """An operation that writes and then raises leaves no trace; its neighbours commit."""

    async def half_done(connection: AsyncConnection) -> None:
        await connection.execute(
            sa.insert(tenants).values(
                id="half", name="half", created_at=sa.func.current_timestamp()
            )
        )
        raise RuntimeError("changed my mind")

    outcomes = await asyncio.gather(
        database.write(_insert_tenant("a")),
        database.write(half_done),
        database.write(_insert_tenant("b")),
        return_exceptions=True,
    )

    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], RuntimeError)
    assert outcomes[2] == "b"
    async with database.read() as connection:
        ids = set((await connection.execute(sa.select(tenants.c.id))).scalars())
    assert ids == {"a", "b"}


async def test_close_finishes_submitted_writes_then_refuses_more(database_url: str) -> None:
    """Closing drains every write already submitted; later writes are refused."""
    database = await connect(database_url)
    pending = [asyncio.ensure_future(database.write(_insert_tenant(f"t{i}"))) for i in range(50)]
    await asyncio.sleep(0)

    await database.close()

    assert [task.result() for task in pending] == [f"t{i}" for i in range(50)]
    with pytest.raises(WriterClosedError):
        await database.write(_insert_tenant("late"))
    assert not await database.ping()
    await database.close()

    reopened = await connect(database_url)
    try:
        assert await _count(reopened, tenants) == 50
    finally:
        await reopened.close()


async def test_writes_from_another_threads_event_loop_are_served(database: Database) -> None:
    """A caller running its own event loop in another thread gets its writes committed."""

    async def from_elsewhere() -> list[str]:
        return list(
            await asyncio.gather(*(database.write(_insert_tenant(f"x{i}")) for i in range(5)))
        )

    written = await asyncio.wait_for(asyncio.to_thread(asyncio.run, from_elsewhere()), 10)

    assert written == [f"x{i}" for i in range(5)]
    assert await _count(database, tenants) == 5


async def test_ping_reports_a_ready_database(database: Database) -> None:
    """A connected database answers its readiness check."""
    assert await database.ping()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database only (for SQLite-specific behaviour)."""
    url = f"sqlite:///{tmp_path / 'pigeon.db'}"
    await migrate(url)
    database = await connect(url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def sqlite_syncing_in_commit(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database whose writer leaves the WAL's sync to SQLite's COMMIT (as
    before ADR 30), for ADR 15's placement of that COMMIT."""
    url = f"sqlite:///{tmp_path / 'pigeon.db'}"
    await migrate(url)
    database = await connect(url, sync_wal_after_commit=False)
    try:
        yield database
    finally:
        await database.close()


async def test_sqlite_runs_wal_with_full_sync_and_foreign_keys(sqlite_database: Database) -> None:
    """SQLite runs WAL with synchronous=FULL and foreign keys, and its readers are read-only;
    the writer's own connection runs NORMAL, as the writer syncs the WAL itself (ADR 30)."""
    database = sqlite_database

    async def pragmas(connection: AsyncConnection) -> tuple[object, ...]:
        values = []
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout"):
            values.append(await connection.scalar(sa.text(f"PRAGMA {name}")))
        return tuple(values)

    # The writer waits for other processes' locks itself (take_write_lock), not in SQLite.
    assert await database.write(pragmas) == ("wal", 1, 1, 0)
    assert database.writer.stats.wal_syncs >= 1
    async with database.read() as connection:
        assert await pragmas(connection) == ("wal", 2, 1, 5000)
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            await connection.execute(
                sa.insert(tenants).values(id="x", name="x", created_at=sa.func.current_timestamp())
            )


async def test_commits_without_waiting_for_the_disk_when_synchronous_commit_is_off(
    database_url: str,
) -> None:
    """``synchronous_commit=False`` makes the writer's sessions commit before the log is on
    disk (SQLite ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``) and its writes
    still commit; the default waits for the disk."""
    statement = (
        "PRAGMA synchronous" if database_url.startswith("sqlite") else "SHOW synchronous_commit"
    )
    found: dict[bool, object] = {}
    wal_syncs: dict[bool, int] = {}
    for synchronous_commit in (False, True):
        database = await connect(database_url, synchronous_commit=synchronous_commit)
        try:

            async def write_and_read_setting(
                connection: AsyncConnection, tenant_id: str = f"sync{synchronous_commit}"
            ) -> object:
                await _insert_tenant(tenant_id)(connection)
                return await connection.scalar(sa.text(statement))

            found[synchronous_commit] = await database.write(write_and_read_setting)
            wal_syncs[synchronous_commit] = database.writer.stats.wal_syncs
        finally:
            await database.close()
    if database_url.startswith("sqlite"):
        # NORMAL both ways: on, the writer syncs the WAL after each COMMIT itself (ADR 30).
        assert found == {False: 1, True: 1}
        assert wal_syncs[False] == 0
        assert wal_syncs[True] >= 1
    else:
        assert found == {False: "off", True: "on"}
    database = await connect(database_url)
    try:
        assert await _count(database, tenants) == 2
    finally:
        await database.close()


class _HeldSync:
    """Stands in for the writer's ``sync_file``: notes each sync (thread, file), holds it
    until ``release`` (or fails it with ``fail``), then syncs for real."""

    def __init__(self, real: Callable[[int], None]) -> None:
        self._real = real
        self.started = threading.Event()
        self.released = threading.Event()
        self.calls: list[tuple[str, int]] = []
        self.fail: OSError | None = None

    def __call__(self, fd: int) -> None:
        self.calls.append((threading.current_thread().name, os.fstat(fd).st_ino))
        self.started.set()
        self.released.wait(30)
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        self._real(fd)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_sqlite_answers_once_the_wal_is_synced_outside_the_write_lock(
    sqlite_database: Database,
) -> None:
    """ADR 30: the COMMIT hands the batch to the operating system and releases the write
    lock at once; the WAL's fdatasync then runs in the writer's thread, and the caller is
    answered only after it. Meanwhile the row is visible and another process can write."""
    database = sqlite_database
    writer = database.writer
    held = _HeldSync(writer.sync_file)
    writer.sync_in_process = False  # the thread's sync, held by the test
    writer.sync_file = held
    path = database.url.split("///", 1)[1]
    try:
        write = asyncio.ensure_future(database.write(_insert_tenant("synced")))
        await _until(held.started.is_set)
        await asyncio.sleep(0.02)
        assert not write.done()
        assert await _count(database, tenants) == 1  # committed, not yet answered
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # the write lock is free during the sync
            other.execute("ROLLBACK")
        finally:
            other.close()
        held.released.set()
        assert await asyncio.wait_for(write, 10) == "synced"
    finally:
        held.released.set()
    loop_thread = threading.current_thread().name
    thread, inode = held.calls[0]
    assert thread != loop_thread
    assert inode == os.stat(f"{path}-wal").st_ino


async def _release_and_answer(
    held: _HeldSync, first: asyncio.Future[str], later: list[asyncio.Future[str]]
) -> None:
    """Let the held sync end: the first write, then the later ones, are answered."""
    held.released.set()
    assert await asyncio.wait_for(first, 10) == "first"
    assert await asyncio.wait_for(asyncio.gather(*later), 10) == [
        f"later{index}" for index in range(len(later))
    ]


async def test_writes_sent_during_a_wal_sync_make_the_next_batch(
    sqlite_database: Database,
) -> None:
    """While a batch's WAL sync runs, the writes sent meanwhile wait, unwritten, and then go
    into one transaction of their own, answered after its own sync; the first batch's caller
    is answered after the first sync."""
    database = sqlite_database
    writer = database.writer
    held = _HeldSync(writer.sync_file)
    writer.sync_in_process = False  # the thread's sync, held by the test
    writer.sync_file = held
    syncs, transactions = writer.stats.wal_syncs, writer.stats.transactions
    try:
        first = asyncio.ensure_future(database.write(_insert_tenant("first")))
        await _until(held.started.is_set)
        later = [
            asyncio.ensure_future(database.write(_insert_tenant(f"later{index}")))
            for index in range(3)
        ]
        await asyncio.sleep(0.02)
        assert not first.done()
        assert not any(write.done() for write in later)
        assert await _count(database, tenants) == 1  # only the first batch is written
        await _release_and_answer(held, first, later)
    finally:
        held.released.set()
    assert writer.stats.transactions - transactions == 2
    assert writer.stats.wal_syncs - syncs == 2
    assert len(held.calls) == 2


async def test_under_contention_batches_commit_during_a_sync_and_share_the_next(
    sqlite_database: Database,
) -> None:
    """While another process contends for the lock, the writer commits its next batches
    during a WAL sync (the lock free, the loop working); they are answered only after the
    next sync, which covers them all."""
    database = sqlite_database
    writer = database.writer
    writer.contended_for = 60.0  # however slow the machine, the window lasts the test
    await _write_past_another_process(database, "waited")
    held = _HeldSync(writer.sync_file)
    writer.sync_in_process = False  # the thread's sync, held by the test
    writer.sync_file = held
    syncs = writer.stats.wal_syncs
    try:
        first = asyncio.ensure_future(database.write(_insert_tenant("first")))
        await _until(held.started.is_set)
        later = []
        for index in range(3):  # three batches, each committed before the next is sent
            committed = writer.stats.transactions
            later.append(asyncio.ensure_future(database.write(_insert_tenant(f"later{index}"))))
            await _until(lambda committed=committed: writer.stats.transactions > committed)
        assert await _count(database, tenants) == 5  # all committed during the first sync
        assert not first.done()
        assert not any(write.done() for write in later)
        await _release_and_answer(held, first, later)
    finally:
        held.released.set()
    assert writer.stats.wal_syncs - syncs == 2
    assert len(held.calls) == 2


async def test_a_failed_wal_sync_fails_its_callers_and_the_next_batch_syncs_again(
    sqlite_database: Database,
) -> None:
    """A sync that fails fails the callers of the batches it covered (their writes may not
    be durable); the writer keeps going and the next batch is synced and answered."""
    database = sqlite_database
    writer = database.writer
    held = _HeldSync(writer.sync_file)
    held.released.set()
    held.fail = OSError(errno.EIO, "Input/output error")
    writer.sync_in_process = False  # the thread's sync, held by the test
    writer.sync_file = held
    with pytest.raises(OSError, match="Input/output error"):
        await database.write(_insert_tenant("lost"))
    assert await database.write(_insert_tenant("kept")) == "kept"
    assert len(held.calls) == 2


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _wal_sync_children() -> list[int]:
    """This process's children that run ``wal_file.py`` (ADR 36)."""
    found = []
    for pid in _children(os.getpid()):
        with contextlib.suppress(OSError):
            if b"wal_file.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


async def test_sqlite_syncs_the_wal_in_a_child_process_and_stops_it_on_close(
    tmp_path: Path,
) -> None:
    """ADR 36: the writer's WAL syncs run in one child process, started with the first sync
    and ended by ``close``; the writes are answered after them, with no sync in a thread."""
    url = f"sqlite:///{tmp_path / 'pigeon.db'}"
    await migrate(url)
    database = await connect(url)
    writer = database.writer
    in_thread = _HeldSync(writer.sync_file)
    in_thread.released.set()
    writer.sync_file = in_thread  # would note a sync made in the writer's thread
    try:
        for index in range(3):
            assert await database.write(_insert_tenant(f"t{index}")) == f"t{index}"
        children = _wal_sync_children()
        assert len(children) == 1
        assert writer.stats.wal_syncs >= 3
        assert in_thread.calls == []
    finally:
        await database.close()
    assert _wal_sync_children() == []
    with pytest.raises(ProcessLookupError):
        os.kill(children[0], 0)


async def test_a_write_is_answered_only_once_the_wal_sync_process_has_synced(
    sqlite_database: Database,
) -> None:
    """ADR 36 keeps ADR 30's promise: with the sync process stopped (SIGSTOP) a committed
    write is visible but not answered; once the process runs again and answers, it is."""
    database = sqlite_database
    assert await database.write(_insert_tenant("first")) == "first"
    (child,) = _wal_sync_children()
    os.kill(child, signal.SIGSTOP)
    try:
        before = database.writer.stats.transactions
        write = asyncio.ensure_future(database.write(_insert_tenant("held")))
        await _until(lambda: database.writer.stats.transactions > before)
        await asyncio.sleep(0.05)
        assert await _count(database, tenants) == 2  # committed
        assert not write.done()  # not durable yet: not answered
    finally:
        os.kill(child, signal.SIGCONT)
    assert await asyncio.wait_for(write, 10) == "held"
    assert database.writer.sync_in_process is True


async def test_a_killed_wal_sync_process_leaves_the_syncs_to_the_writers_thread(
    sqlite_database: Database,
) -> None:
    """If the sync process dies, the sync it owed runs in the writer's thread and its caller
    is answered; every later sync runs there too, and nothing fails."""
    database = sqlite_database
    writer = database.writer
    assert await database.write(_insert_tenant("before")) == "before"
    (child,) = _wal_sync_children()
    in_thread = _HeldSync(writer.sync_file)
    in_thread.released.set()
    writer.sync_file = in_thread
    os.kill(child, signal.SIGKILL)
    await _until(lambda: not Path(f"/proc/{child}").exists() or _is_zombie(child))
    assert await database.write(_insert_tenant("after")) == "after"
    assert await database.write(_insert_tenant("later")) == "later"
    assert len(in_thread.calls) >= 2
    assert writer.sync_in_process is False
    assert await _count(database, tenants) == 3


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and awaits its parent's ``wait``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_the_wal_sync_process_reports_a_failed_sync_as_an_os_error() -> None:
    """A sync that fails in the child comes back as the ``OSError`` it raised (here procfs
    refuses ``fdatasync``), and the child goes on serving the next request."""
    process = WalSyncProcess("/proc/self/status-wal")  # no such WAL: the "database" is synced
    try:
        for _ in range(2):
            with pytest.raises(OSError, match="Invalid argument") as failed:
                await asyncio.wait_for(process.sync(), 10)
            assert not isinstance(failed.value, WalSyncProcessGone)
            assert failed.value.errno == errno.EINVAL
        assert process.usable
    finally:
        process.close()
    assert process.usable is False


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux's scheduling policies")
async def test_a_background_wal_sync_process_runs_as_a_batch_task(tmp_path: Path) -> None:
    """The sync child of a writer whose syncs nobody waits on asks Linux to schedule it as a
    batch task (ADR 52) and still answers; another writer's keeps the default policy."""
    wal = tmp_path / "pigeon.db-wal"
    wal.write_bytes(b"frames")
    for batch, policy in ((True, os.SCHED_BATCH), (False, os.SCHED_OTHER)):
        process = WalSyncProcess(str(wal), batch=batch)
        try:
            await asyncio.wait_for(process.sync(), 10)  # started: the policy is set before
            assert os.sched_getscheduler(process.pid) == policy
        finally:
            process.close()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the writer keeps its own


def test_wal_file_follows_the_file_at_its_path(tmp_path: Path) -> None:
    """``WalFile`` syncs the file now at its path: opened again when the WAL was made anew,
    and the database file itself when the WAL is gone (its frames were checkpointed)."""
    synced: list[int] = []
    database = tmp_path / "pigeon.db"
    database.write_bytes(b"db")
    wal_path = tmp_path / "pigeon.db-wal"
    wal_path.write_bytes(b"one")
    wal = WalFile(str(wal_path), lambda fd: synced.append(os.fstat(fd).st_ino))
    try:
        wal.sync()
        first = wal_path.stat().st_ino
        wal_path.unlink()
        wal.sync()
        wal_path.write_bytes(b"two")
        wal.sync()
        wal.sync()
    finally:
        wal.close()
    assert synced == [first, database.stat().st_ino, wal_path.stat().st_ino, wal_path.stat().st_ino]


async def test_writes_take_the_sqlite_write_lock_up_front(sqlite_database: Database) -> None:
    """The writer's transactions start with BEGIN IMMEDIATE (a reserved lock before any read)."""
    database = sqlite_database
    statements: list[str] = []
    _trace_writer(database, statements.append)
    try:
        await database.write(_insert_tenant("t"))
    finally:
        _trace_writer(database, None)

    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[-1] == "COMMIT"


def _trace_writer(database: Database, callback: Callable[[str], object] | None) -> None:
    """Have sqlite3 report every statement the writer's (only) connection runs."""
    driver = database.writer.connection().connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    driver.set_trace_callback(callback)


def test_plain_urls_are_switched_to_async_drivers() -> None:
    """Plain SQLite and PostgreSQL URLs get the aiosqlite and asyncpg drivers; memory is refused."""
    assert normalise_url("sqlite:///data/p.db").drivername == "sqlite+aiosqlite"
    assert normalise_url("sqlite+aiosqlite:///p.db").drivername == "sqlite+aiosqlite"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert normalise_url("postgresql+asyncpg://u@h/db").database == "db"
    with pytest.raises(ValueError, match="file"):
        normalise_url("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        normalise_url("mysql://u@h/db")


async def test_reads_see_committed_writes_at_once(database: Database) -> None:
    """A write's caller, answered after the commit, reads its row back straight away."""

    async def write_then_read(index: int) -> bool:
        tenant_id = await database.write(_insert_tenant(f"r{index:03d}"))
        async with database.read() as connection:
            found = await connection.scalar(
                sa.select(tenants.c.id).where(tenants.c.id == tenant_id)
            )
        return found == tenant_id

    for index in range(20):  # one at a time
        assert await write_then_read(index)
    assert all(await asyncio.gather(*(write_then_read(i) for i in range(20, 120))))
    assert await _count(database, tenants) == 120


async def test_a_scan_reads_on_sqlite_off_the_event_loops_thread(database: Database) -> None:
    """A scan returns what a read of the same statement does; on SQLite its statement runs
    on another thread than the event loop's, which goes on serving meanwhile."""
    for index in range(5):
        await database.write(_insert_tenant(f"s{index}"))
    statement = sa.select(tenants.c.name).order_by(tenants.c.name)
    threads: list[int] = []

    def seen(*_: object) -> None:
        threads.append(threading.get_ident())

    sa.event.listen(database.read_engine, "before_cursor_execute", seen)
    try:
        scanned = await database.scan(statement)
    finally:
        sa.event.remove(database.read_engine, "before_cursor_execute", seen)
    async with database.read() as connection:
        read = (await connection.execute(statement)).all()

    assert (
        [row.name for row in scanned] == [row.name for row in read] == [f"s{i}" for i in range(5)]
    )
    assert threads
    on_loop = threading.get_ident()
    if database.dialect == "sqlite":
        assert on_loop not in threads
    else:  # asyncpg's reads are awaited on the loop, which serves while they wait
        assert set(threads) == {on_loop}


async def test_reads_overlapping_past_the_pool_size_do_not_wait(database: Database) -> None:
    """More reads held open at once than the pool keeps idle all get a connection."""
    release = asyncio.Event()

    async def hold() -> int:
        async with database.read() as connection:
            await release.wait()
            return int(await connection.scalar(sa.select(sa.func.count()).select_from(tenants)))

    holders = [asyncio.ensure_future(hold()) for _ in range(12)]
    await asyncio.sleep(0.05)
    release.set()

    assert await asyncio.wait_for(asyncio.gather(*holders), 10) == [0] * 12


async def test_a_failing_sqlite_commit_fails_its_callers_only(sqlite_database: Database) -> None:
    """A batch whose COMMIT fails is rolled back and split: the operation that broke the
    COMMIT fails alone, its neighbours commit, and the writer goes on."""
    database = sqlite_database

    async def orphan_part(connection: AsyncConnection) -> None:
        # Deferred foreign keys are checked at COMMIT, so the COMMIT itself fails.
        await connection.execute(sa.text("PRAGMA defer_foreign_keys=ON"))
        await connection.execute(
            sa.insert(message_parts).values(message_id="msg_missing", part_index=0, status="x")
        )

    operations = [_insert_tenant(f"t{i:02d}") for i in range(10)]
    operations += [orphan_part]
    operations += [_insert_tenant(f"t{i:02d}") for i in range(10, 20)]

    outcomes = await asyncio.gather(
        *(database.write(op) for op in operations), return_exceptions=True
    )

    assert isinstance(outcomes[10], sa.exc.IntegrityError)
    assert "FOREIGN KEY" in str(outcomes[10])
    assert [o for i, o in enumerate(outcomes) if i != 10] == [f"t{i:02d}" for i in range(20)]
    assert database.writer.stats.splits >= 1
    assert await _count(database, tenants) == 20
    assert await _count(database, message_parts) == 0
    # Alone, it fails the same way; the connection is left clean for the next batch.
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
        await database.write(orphan_part)
    assert await database.write(_insert_tenant("after")) == "after"
    assert await _count(database, tenants) == 21


async def test_sqlite_commits_off_the_loop_and_answers_after_them(
    sqlite_syncing_in_commit: Database,
) -> None:
    """A COMMIT in the writer's thread (slow disks): meanwhile the loop serves reads (which
    do not see the batch yet), and the caller is answered only once the COMMIT returned."""
    database = sqlite_syncing_in_commit
    database.writer.inline_commit_below = 0.0  # always the thread
    loop_thread = threading.current_thread().name
    commits: list[str] = []
    fsynced = threading.Event()

    def slow_commit(_connection: object) -> None:
        commits.append(threading.current_thread().name)
        fsynced.wait(30)  # stands in for a slow fsync: it ends when the loop has ticked

    sa.event.listen(database.write_engine, "commit", slow_commit)
    try:
        write = asyncio.ensure_future(database.write(_insert_tenant("slow")))
        ticks = 0
        seen_before_answer: list[int] = []
        while not write.done():
            await asyncio.sleep(0.01)
            ticks += 1
            if not write.done():
                seen_before_answer.append(await _count(database, tenants))
            if ticks == 3:
                fsynced.set()
        await write
    finally:
        fsynced.set()
        sa.event.remove(database.write_engine, "commit", slow_commit)

    assert commits
    assert all(name != loop_thread for name in commits)
    assert ticks >= 3  # the loop went on while the commit waited
    # The first read runs while the commit still sleeps. (A read just after the commit returned
    # but before the caller was answered may see the row: that is allowed.)
    assert seen_before_answer
    assert seen_before_answer[0] == 0
    assert await _count(database, tenants) == 1


async def _write_past_another_process(database: Database, tenant_id: str) -> None:
    """Write ``tenant_id`` while another process holds the write lock for 50 ms: the writer
    waits for it, and counts the lock as contended from then on."""
    other = sqlite3.connect(database.url.split("///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(database.write(_insert_tenant(tenant_id)))
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
    finally:
        other.close()
    await asyncio.wait_for(waiting, 10)


class _CommitClock:
    """Stands in for the writer's ``time`` module: ``perf_counter`` moves only when a test
    moves ``now``; ``monotonic`` (the contention window) is the real one."""

    def __init__(self) -> None:
        self.now = 0.0
        self.monotonic = time.monotonic

    def perf_counter(self) -> float:
        return self.now


async def test_commits_run_on_the_loop_only_while_the_lock_is_contended(
    sqlite_syncing_in_commit: Database,
) -> None:
    """Alone on the file, COMMIT runs in the writer's thread (the loop works meanwhile); once
    a transaction found the lock held by another process, quick commits run on the loop."""
    database = sqlite_syncing_in_commit
    writer = database.writer
    writer.contended_for = 60.0  # however slow the machine, the window lasts the test
    # This test is about contention, not speed: no commit average, however slow this disk's
    # real fsyncs, sends a contended commit to the thread.
    writer.inline_commit_below = math.inf
    writer.commit_seconds = 0.0
    loop_thread = threading.current_thread().name
    commits: list[str] = []

    def note_commit(_connection: object) -> None:
        commits.append(threading.current_thread().name)

    sa.event.listen(database.write_engine, "commit", note_commit)
    try:
        for index in range(3):
            await database.write(_insert_tenant(f"alone{index}"))
        await _write_past_another_process(database, "waited")
        for index in range(3):
            await database.write(_insert_tenant(f"contended{index}"))
    finally:
        sa.event.remove(database.write_engine, "commit", note_commit)

    assert all(name != loop_thread for name in commits[:3])
    assert commits[3:] == [loop_thread] * 4
    assert writer.stats.threaded_commits == 3
    assert writer.stats.inline_commits == 4
    assert await _count(database, tenants) == 7


async def test_slow_sqlite_commits_move_to_the_thread_and_back(
    sqlite_syncing_in_commit: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under contention, commits slower than ``inline_commit_below`` on average move to the
    writer's thread; once they are quick again on average, they come back to the loop."""
    database = sqlite_syncing_in_commit
    writer = database.writer
    writer.contended_for = 60.0
    writer.inline_commit_below = 0.02
    await _write_past_another_process(database, "waited")
    # The writer times its commits on a clock that only the commits below move: 0.25 s for a
    # slow one, nothing for a quick one, whatever this disk's real fsyncs take.
    clock = _CommitClock()
    monkeypatch.setattr("pigeon.store.writer.time", clock)
    writer.commit_seconds = 0.0
    loop_thread = threading.current_thread().name
    commits: list[str] = []
    slow = True

    def commit(_connection: object) -> None:
        commits.append(threading.current_thread().name)
        if slow:
            clock.now += 0.25  # stands in for a slow disk's fsync

    sa.event.listen(database.write_engine, "commit", commit)
    try:
        await database.write(_insert_tenant("slow0"))
        await database.write(_insert_tenant("slow1"))
        slow_average = writer.commit_seconds
        slow = False
        for index in range(40):
            await database.write(_insert_tenant(f"quick{index}"))
    finally:
        sa.event.remove(database.write_engine, "commit", commit)

    assert commits[0] == loop_thread  # quick until shown otherwise
    assert commits[1] != loop_thread
    assert slow_average > writer.inline_commit_below
    assert writer.commit_seconds < writer.inline_commit_below
    assert commits[-1] == loop_thread
    assert await _count(database, tenants) == 43


async def test_sqlite_has_one_writer_connection(sqlite_database: Database) -> None:
    """However many writes and reads run at once, the writer opens no second connection."""
    database = sqlite_database
    opened: list[object] = []

    def record(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    sa.event.listen(database.write_engine, "connect", record)
    try:
        await asyncio.gather(
            *(database.write(_insert_tenant(f"w{i:03d}")) for i in range(200)),
            *(_count(database, tenants) for _ in range(50)),
        )
    finally:
        sa.event.remove(database.write_engine, "connect", record)

    assert opened == []
    assert database.write_engine.pool.size() == 1
    assert await _count(database, tenants) == 200


async def test_sqlite_writer_keeps_its_connection_between_batches(
    sqlite_database: Database,
) -> None:
    """Batch after batch runs on the connection the writer keeps: no checkout from the pool
    per batch; after a failed batch it checks one out again, and goes on writing."""
    database = sqlite_database
    checkouts: list[object] = []

    def record(dbapi_connection: object, _record: object, _proxy: object) -> None:
        checkouts.append(dbapi_connection)

    await database.write(_insert_tenant("first"))  # the connection is kept from here on
    sa.event.listen(database.write_engine, "checkout", record)
    try:
        for i in range(20):
            await database.write(_insert_tenant(f"k{i:02d}"))
        assert checkouts == []

        async def broken(connection: AsyncConnection) -> None:
            await connection.execute(sa.text("SELECT * FROM no_such_table"))

        with pytest.raises(sa.exc.OperationalError):
            await database.write(broken)
        await database.write(_insert_tenant("after"))
    finally:
        sa.event.remove(database.write_engine, "checkout", record)

    assert len(checkouts) == 1
    assert await _count(database, tenants) == 22


async def test_urgent_items_join_the_next_batch_ahead_of_queued_work(database_url: str) -> None:
    """With a full queue of background items, an urgent item submitted last runs in batch one."""
    database = await connect(database_url, max_batch=4)
    seen: list[list[str]] = []

    async def run(connection: AsyncConnection, items: list[str]) -> list[str]:
        seen.append(list(items))
        return items

    try:
        background = [
            asyncio.ensure_future(database.write_batched(run, f"b{i}")) for i in range(12)
        ]
        urgent = asyncio.ensure_future(database.write_batched(run, "urgent", urgent=True))
        await asyncio.gather(*background, urgent)
    finally:
        await database.close()
    assert "urgent" in seen[0]
    assert [item for batch in seen for item in batch if item != "urgent"] == [
        f"b{i}" for i in range(12)
    ]


async def test_the_writer_waits_for_another_process_holding_the_lock(
    sqlite_database: Database,
) -> None:
    """A write while another connection holds the write lock waits, then commits."""
    url = sqlite_database.url
    path = url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    write = asyncio.ensure_future(sqlite_database.write(_insert_tenant("waited")))
    await asyncio.sleep(0.3)
    assert not write.done()
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(write, timeout=10) == "waited"
    assert await _count(sqlite_database, tenants) == 1


async def test_a_lock_held_past_the_busy_timeout_fails_the_batch_only(tmp_path: Path) -> None:
    """A write lock another process holds past ``busy_timeout`` fails the waiting batch with
    "database is locked"; the writer goes on once the lock is free."""
    url = f"sqlite:///{tmp_path / 'pigeon.db'}"
    await migrate(url)
    database = await connect(url, busy_timeout=0.3)
    other = sqlite3.connect(tmp_path / "pigeon.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await asyncio.wait_for(database.write(_insert_tenant("refused")), 10)
        other.execute("COMMIT")
        assert await database.write(_insert_tenant("after")) == "after"
        assert await _count(database, tenants) == 1
    finally:
        other.close()
        await database.close()


def test_a_held_lock_is_polled_not_spun_for(tmp_path: Path) -> None:
    """On uvloop (as ``serve`` runs), while another process holds the lock for 0.3 s the
    writer tries at most every millisecond, later every 5 ms: no busy loop (uvloop's timers
    count whole milliseconds, so a shorter sleep would return at once)."""
    url = f"sqlite:///{tmp_path / 'pigeon.db'}"

    async def scenario() -> tuple[int, int, float]:
        await migrate(url)
        database = await connect(url)
        other = sqlite3.connect(tmp_path / "pigeon.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            write = asyncio.ensure_future(database.write(_insert_tenant("polled")))
            await asyncio.sleep(0.3)
            other.execute("COMMIT")
            assert await asyncio.wait_for(write, timeout=10) == "polled"
            waited_ms = (time.monotonic() - started) * 1000
            return database.writer.stats.lock_waits, database.writer.stats.lock_tries, waited_ms
        finally:
            other.close()
            await database.close()

    waits, tries, waited_ms = uvloop.run(scenario())
    assert waits == 1
    assert 1 <= tries <= waited_ms + 1


async def test_a_flood_of_urgent_items_leaves_room_for_background_work(database_url: str) -> None:
    """Every batch keeps a quarter for waiting background items, however many urgent ones wait."""
    database = await connect(database_url, max_batch=8)
    seen: list[list[str]] = []

    async def run(connection: AsyncConnection, items: list[str]) -> list[str]:
        seen.append(list(items))
        return items

    try:
        background = [asyncio.ensure_future(database.write_batched(run, f"b{i}")) for i in range(4)]
        urgent = [
            asyncio.ensure_future(database.write_batched(run, f"u{i}", urgent=True))
            for i in range(40)
        ]
        await asyncio.gather(*background, *urgent)
    finally:
        await database.close()
    first = seen[0]
    assert sum(item.startswith("b") for item in first) == 2
    assert sum(item.startswith("u") for item in first) == 6


async def test_an_operation_alone_runs_next_in_a_transaction_of_its_own(database_url: str) -> None:
    """Submitted behind a queue of batched items, an ``alone`` operation runs by itself (no
    batched item shares its transaction): next on SQLite, beside the writer's own
    transactions on PostgreSQL (no lock to take turns at)."""
    database = await connect(database_url, max_batch=4)
    order: list[str] = []

    async def run(connection: AsyncConnection, items: list[str]) -> list[str]:
        order.append(",".join(items))
        return items

    async def claim(connection: AsyncConnection) -> str:
        order.append("alone")
        return "claimed"

    async def batched(item: str) -> str:
        return await database.write_batched(run, item)

    try:
        # Tasks: each submits when it first runs, all of them before the writer wakes.
        background = [asyncio.ensure_future(batched(f"b{i}")) for i in range(12)]
        alone = asyncio.ensure_future(database.write(claim, alone=True))
        before = database.writer.stats.transactions
        await asyncio.gather(*background, alone)
        transactions = database.writer.stats.transactions - before
    finally:
        await database.close()
    assert alone.result() == "claimed"
    if database_url.startswith("sqlite"):
        assert order[0] == "alone"
    assert [entry for entry in order if entry != "alone"] == [
        "b0,b1,b2,b3",
        "b4,b5,b6,b7",
        "b8,b9,b10,b11",
    ]
    assert order.count("alone") == 1
    assert transactions == 4


async def test_a_free_write_lock_is_taken_without_waiting_in_the_thread(
    sqlite_database: Database,
) -> None:
    """SQLite: a free lock is taken on the loop; only a lock held elsewhere counts a wait."""
    stats = sqlite_database.writer.stats
    await sqlite_database.write(_insert_tenant("free"))
    assert stats.lock_waits == 0
    path = sqlite_database.url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    write = asyncio.ensure_future(sqlite_database.write(_insert_tenant("held")))
    await asyncio.sleep(0.2)
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(write, timeout=10) == "held"
    assert stats.lock_waits == 1
    assert await _count(sqlite_database, tenants) == 2


async def test_postgresql_sessions_price_out_full_scans_and_hash_joins(
    database: Database,
) -> None:
    """Every PostgreSQL session, pooled reads and writer alike, may keep generic plans but
    has full scans, bitmap scans and hash and merge joins priced out (ADR 20), and no JIT."""
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    wanted = {
        "plan_cache_mode": "auto",
        "enable_seqscan": "off",
        "enable_hashjoin": "off",
        "enable_mergejoin": "off",
        "enable_bitmapscan": "off",
        "jit": "off",
    }
    async with database.read() as connection:
        for name, value in wanted.items():
            assert await connection.scalar(sa.text(f"SHOW {name}")) == value
    async with database.raw_pg_read() as driver:
        for name, value in wanted.items():
            assert await driver.fetchval(f"SHOW {name}") == value

    async def settings(connection: AsyncConnection) -> dict[str, str]:
        return {name: str(await connection.scalar(sa.text(f"SHOW {name}"))) for name in wanted}

    assert await database.write(settings) == wanted


async def test_postgresql_plans_made_on_an_empty_table_stay_on_its_index(
    database: Database,
) -> None:
    """Statements prepared and run while their tables were empty (so a generic plan may be
    kept, and the statistics say empty) still read them through their indexes, in index
    order, once they hold 20,000 rows: a read by id array, a bulk update joined row by row,
    and a claim-shaped ordered LIMIT that reads its rows, not every match then a sort (ADR
    20; plain ``auto`` kept a full scan under a hash join, ADR 18)."""
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    async with database.raw_pg_read() as driver:
        await driver.execute("CREATE TEMP TABLE plan_probe (id text PRIMARY KEY, n int)")
        await driver.execute(
            "CREATE TEMP TABLE plan_queue (id text PRIMARY KEY, ready boolean, kind text,"
            " priority int, run_at timestamptz)"
        )
        await driver.execute(
            "CREATE INDEX plan_queue_claim ON plan_queue (ready, kind, priority DESC, run_at)"
        )
        try:
            await driver.execute(
                "PREPARE probe_read(text[]) AS SELECT n FROM plan_probe WHERE id = ANY($1)"
            )
            await driver.execute(
                "PREPARE probe_update(json) AS UPDATE plan_probe AS t SET n = u.n"
                " FROM json_to_recordset($1) AS u(id text, n int) WHERE t.id = u.id"
            )
            await driver.execute(  # the shape of the queue's claim: the best of each kind
                "PREPARE probe_claim(text[], int, int, timestamptz, int) AS SELECT best.id"
                " FROM unnest($1) AS wanted(kind) JOIN LATERAL (SELECT id, priority, run_at"
                " FROM plan_queue WHERE ready IS true AND kind = wanted.kind AND priority >= $2"
                " AND (priority <= $3 OR run_at <= $4) ORDER BY priority DESC, run_at"
                " LIMIT $5) AS best ON true"
            )
            calls = {
                "probe_read('{k1,k2}')": "plan_probe_pkey",
                """probe_update('[{"id": "k1", "n": 2}, {"id": "k2", "n": 3}]')""": (
                    "plan_probe_pkey"
                ),
                "probe_claim('{a}', 0, 100, now(), 64)": "plan_queue_claim",
            }
            for _ in range(8):  # past the five custom plans: a generic one may be kept
                for call in calls:
                    await driver.execute(f"EXECUTE {call}")
            await driver.execute(
                "INSERT INTO plan_probe SELECT 'k' || g, g FROM generate_series(1, 20000) g"
            )
            await driver.execute(
                "INSERT INTO plan_queue SELECT 'j' || g, true, CASE WHEN g % 2 = 0 THEN 'a'"
                " ELSE 'b' END, (g % 3) * 10, now() - interval '1 s'"
                " FROM generate_series(1, 40000) g"
            )
            plans = {
                index: "\n".join(row[0] for row in await driver.fetch(f"EXPLAIN EXECUTE {call}"))
                for call, index in calls.items()
            }
        finally:
            await driver.execute("DEALLOCATE ALL")
            await driver.execute("DROP TABLE plan_probe, plan_queue")
    for index, plan in plans.items():
        assert f"Index Scan using {index}" in plan, plan
        assert "Seq Scan" not in plan, plan
        assert "Hash Join" not in plan, plan
        assert "Bitmap" not in plan, plan
        assert "Sort" not in plan, plan
