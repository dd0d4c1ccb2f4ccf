"""Settings shared by every test."""

from __future__ import annotations

from hypothesis import settings

# No per-example deadline: a wall-clock limit flakes on shared, loaded machines, and tests
# assert behaviour, never timing.
settings.register_profile("pigeon", deadline=None)
settings.load_profile("pigeon")
