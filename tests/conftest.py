"""Settings shared by every test."""

from __future__ import annotations

from hypothesis import settings

from pigeon.store.sqlite_library import set_up_sqlite_library

# No per-example deadline: a wall-clock limit flakes on shared, loaded machines, and tests
# assert behaviour, never timing.
settings.register_profile("pigeon", deadline=None)
settings.load_profile("pigeon")

# The SQLite library as Pigeon's processes run on it (ADR 48): set up before any test opens a
# connection, so that the in-process tests use it as the gateway does.
SQLITE_LIBRARY = set_up_sqlite_library()
