"""The SQLite library under Python's ``sqlite3`` module, set up once per process for Pigeon's
use of it (ADR 48). Neither setting changes what is stored or read; both cut CPU per
statement.

- **Multi-thread mode, memory statistics off.** Debian's SQLite is built serialized
  (``THREADSAFE=1``): every call into it (each value bound, each column read, each step) takes
  the connection's mutex, and every allocation takes a global one for the library's memory
  statistics, about a thousand lock and unlock pairs per delivered message in the worker. In
  multi-thread mode a connection has no mutex; what that mode asks, that no connection is
  used by two threads at once, Pigeon keeps anyway (the writer hands its connection to its
  thread and waits for it, ``Writer._in_thread``; a scan checks a connection out of the pool
  in its thread). Both are process-wide settings of the library (``sqlite3_config``), which
  it takes only while it is shut down: so the library is shut down, set and initialised
  again, which is allowed only while no connection is open. ``set_up_sqlite_library`` checks
  that (the library's memory in use is 0 with no connection open, and more with one) and
  otherwise leaves the library as it is.
- **NULLs bound without an adapter search.** Python 3.11's ``sqlite3`` searches for an adapter
  for every parameter that is not exactly an int, float, str or bytearray. For ``None`` the
  search ends by asking ``sqlite3.PrepareProtocol`` for ``__adapt__``: an ``AttributeError``
  raised, its message formatted, and cleared, for every NULL bound (a status change binds
  about a dozen). An adapter registered for ``NoneType`` ends the search at its first lookup;
  it is ``{}.get``, which returns ``None`` for any key without a Python frame, so the value is
  bound as the NULL it was.

The processes call it at their start (``pigeon serve``, ``pigeon worker``), before any
connection; so does the test suite's ``conftest.py``, so that the tests run on the library as
the gateway does.
"""

from __future__ import annotations

import ctypes
import sqlite3
import threading
from dataclasses import dataclass
from typing import Final

#: ``sqlite3_config`` options (sqlite3.h).
_CONFIG_MULTITHREAD: Final = 2
_CONFIG_MEMSTATUS: Final = 9


@dataclass(frozen=True)
class SqliteLibrarySetup:
    """How the SQLite library of this process is set up."""

    #: Multi-thread mode with its memory statistics off (else as built: serialized).
    multi_thread: bool
    #: Why it is not, when it is not.
    reason: str = ""

    def describe(self) -> str:
        """One line for the log."""
        if self.multi_thread:
            return "multi-thread mode, no memory statistics"
        return f"as built ({self.reason})"


_lock = threading.Lock()
_done: SqliteLibrarySetup | None = None


def set_up_sqlite_library() -> SqliteLibrarySetup:
    """Set up this process's SQLite library as the module says (once; later calls return
    what the first did). Call it before any connection is opened; with one open, the
    library is left as built."""
    global _done
    with _lock:
        if _done is None:
            sqlite3.register_adapter(type(None), _NULL_ADAPTER.get)
            _done = _multi_thread()
        return _done


#: Its ``get`` maps any value, ``None`` among them, to ``None`` (a C call).
_NULL_ADAPTER: Final[dict[object, None]] = {}


def _multi_thread() -> SqliteLibrarySetup:
    """Switch the library to multi-thread mode without memory statistics, if it is safe."""
    library = _library()
    if isinstance(library, str):
        return SqliteLibrarySetup(False, library)
    if library.sqlite3_threadsafe() == 0:
        return SqliteLibrarySetup(False, "built single-threaded")
    library.sqlite3_memory_used.restype = ctypes.c_int64
    if library.sqlite3_memory_used() != 0:
        return SqliteLibrarySetup(False, "a connection was open")
    if library.sqlite3_shutdown() != 0:
        return SqliteLibrarySetup(False, "sqlite3_shutdown failed")
    mode = library.sqlite3_config(_CONFIG_MULTITHREAD)
    statistics = library.sqlite3_config(_CONFIG_MEMSTATUS, ctypes.c_int(0))
    initialised = library.sqlite3_initialize()
    if initialised != 0:  # pragma: no cover - the library could not start again at all
        raise RuntimeError(f"sqlite3_initialize failed with {initialised}")
    if mode != 0 or statistics != 0:
        return SqliteLibrarySetup(False, f"sqlite3_config refused ({mode}, {statistics})")
    return SqliteLibrarySetup(True)


def _library() -> ctypes.CDLL | str:
    """The SQLite library that ``sqlite3`` runs on, or why it cannot be reached.

    Opened through the ``_sqlite3`` extension itself: a symbol is looked up in it and then in
    the libraries it was linked with, so this is the library it calls, whether it was linked
    with the system's or carries its own."""
    import _sqlite3  # the extension module (``sqlite3`` is its Python wrapper)

    path = getattr(_sqlite3, "__file__", None)
    if path is None:
        return "the sqlite3 module is built into the interpreter"
    try:
        library = ctypes.CDLL(path)
        version = library.sqlite3_libversion_number()
        library.sqlite3_config  # noqa: B018 - present in the library, or AttributeError
    except (OSError, AttributeError) as exc:
        return f"the SQLite library is not reachable: {exc}"
    major, minor, patch = sqlite3.sqlite_version_info
    if version != major * 1_000_000 + minor * 1_000 + patch:
        return f"the library reached is SQLite {version}, not {sqlite3.sqlite_version}"
    return library


def connection_has_mutex() -> bool:
    """Whether a connection opened now takes a mutex on each call (serialized mode): opened
    on the library itself, for a check of the setup (tests, diagnostics)."""
    library = _library()
    if isinstance(library, str):
        raise RuntimeError(library)
    handle = ctypes.c_void_p()
    library.sqlite3_open_v2.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_char_p,
    ]
    library.sqlite3_db_mutex.argtypes = [ctypes.c_void_p]
    library.sqlite3_db_mutex.restype = ctypes.c_void_p
    library.sqlite3_close.argtypes = [ctypes.c_void_p]
    # SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MEMORY
    opened = library.sqlite3_open_v2(b":memory:", ctypes.byref(handle), 0x02 | 0x04 | 0x80, None)
    try:
        if opened != 0:
            raise RuntimeError(f"sqlite3_open_v2 failed with {opened}")
        return library.sqlite3_db_mutex(handle) is not None
    finally:
        library.sqlite3_close(handle)
