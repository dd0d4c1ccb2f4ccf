"""Settings shared by every test."""

from __future__ import annotations

from hypothesis import settings

from pigeon.enum_members import drop_enum_getattr_fallback
from pigeon.store.sqlite_library import set_up_sqlite_library

# No per-example deadline: a wall-clock limit flakes on shared, loaded machines, and tests
# assert behaviour, never timing.
settings.register_profile("pigeon", deadline=None)
settings.load_profile("pigeon")

# The SQLite library as Pigeon's processes run on it (ADR 48): set up before any test opens a
# connection, so that the in-process tests use it as the gateway does.
SQLITE_LIBRARY = set_up_sqlite_library()

# Enum members read without ``EnumType.__getattr__`` (ADR 49), as in Pigeon's processes.
drop_enum_getattr_fallback()
