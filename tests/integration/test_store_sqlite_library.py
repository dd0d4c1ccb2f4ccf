"""The SQLite library set up for Pigeon's processes (ADR 48): multi-thread mode without memory
statistics when no connection is open, and NULLs bound through a registered adapter."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from pigeon.store.sqlite_library import connection_has_mutex, set_up_sqlite_library


def _in_a_new_process(code: str) -> dict[str, object]:
    """Run ``code`` in a new interpreter (a library not yet set up); it prints one JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_test_suite_runs_on_the_library_as_the_gateway_does() -> None:
    """conftest.py set the library up before any connection (a later call reports that first
    outcome): connections have no mutex."""
    setup = set_up_sqlite_library()
    assert setup.multi_thread, setup.reason
    assert not connection_has_mutex()


def test_a_new_process_switches_to_multi_thread_mode_once() -> None:
    """Before the set-up a connection takes a mutex and the library counts its memory; after it
    neither, and a second call reports the first call's outcome without redoing it."""
    found = _in_a_new_process(
        """
        import ctypes, json, sqlite3, _sqlite3
        from pigeon.store.sqlite_library import connection_has_mutex, set_up_sqlite_library
        library = ctypes.CDLL(_sqlite3.__file__)
        library.sqlite3_memory_used.restype = ctypes.c_int64
        before = connection_has_mutex()
        counted_before = library.sqlite3_memory_used()
        first = set_up_sqlite_library()
        second = set_up_sqlite_library()
        connection = sqlite3.connect(":memory:")
        rows = connection.execute("SELECT 1").fetchall()
        print(json.dumps({
            "mutex_before": before,
            "memory_idle_before": counted_before,
            "multi_thread": first.multi_thread,
            "same": first is second,
            "mutex_after": connection_has_mutex(),
            "memory_counted_with_a_connection": library.sqlite3_memory_used(),
            "rows": rows,
        }))
        """
    )
    assert found == {
        "mutex_before": True,
        "memory_idle_before": 0,
        "multi_thread": True,
        "same": True,
        "mutex_after": False,
        "memory_counted_with_a_connection": 0,
        "rows": [[1]],
    }


def test_an_open_connection_leaves_the_library_as_built() -> None:
    """With a connection open the library is not shut down: the set-up reports why, the
    connection goes on working, and new connections still take their mutex."""
    found = _in_a_new_process(
        """
        import json, sqlite3
        from pigeon.store.sqlite_library import connection_has_mutex, set_up_sqlite_library
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE t (v)")
        setup = set_up_sqlite_library()
        connection.execute("INSERT INTO t VALUES (?)", (None,))
        print(json.dumps({
            "multi_thread": setup.multi_thread,
            "reason": setup.reason,
            "described": setup.describe(),
            "rows": connection.execute("SELECT v FROM t").fetchall(),
            "mutex": connection_has_mutex(),
        }))
        """
    )
    assert found == {
        "multi_thread": False,
        "reason": "a connection was open",
        "described": "as built (a connection was open)",
        "rows": [[None]],
        "mutex": True,
    }


def test_nulls_are_bound_through_the_registered_adapter_and_stored_as_null(
    tmp_path: Path,
) -> None:
    """``None`` has an adapter (no search ending in a cleared AttributeError), and what it binds
    is SQL NULL: ``IS NULL`` finds the rows, and they read back as ``None``."""
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    connection = sqlite3.connect(tmp_path / "nulls.db")
    try:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
        connection.executemany(
            "INSERT INTO t (v, n) VALUES (?, ?)", [(None, None), ("x", 1), (None, 2)]
        )
        assert connection.execute("SELECT count(*) FROM t WHERE v IS NULL").fetchone() == (2,)
        assert connection.execute("SELECT typeof(v), typeof(n) FROM t WHERE id = 1").fetchone() == (
            "null",
            "null",
        )
        assert connection.execute("SELECT v, n FROM t ORDER BY id").fetchall() == [
            (None, None),
            ("x", 1),
            (None, 2),
        ]
    finally:
        connection.close()


def test_a_connection_handed_between_threads_one_at_a_time_keeps_its_rows(
    tmp_path: Path,
) -> None:
    """Multi-thread mode's rule, as the writer keeps it: one connection used by a thread and
    then by another, never by both at once, writes and reads every row."""
    connection = sqlite3.connect(tmp_path / "handed.db", check_same_thread=False)
    try:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        turn = threading.Lock()

        def write(start: int) -> None:
            with turn:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "INSERT INTO t (id, v) VALUES (?, ?)",
                    [(start + i, None if i % 2 else f"v{i}") for i in range(100)],
                )
                connection.execute("COMMIT")

        threads = [threading.Thread(target=write, args=(n * 100,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert connection.execute("SELECT count(*), count(v) FROM t").fetchone() == (800, 400)
    finally:
        connection.close()
