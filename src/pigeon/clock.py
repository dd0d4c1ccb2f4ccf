"""The real clock: timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """``ports.Clock`` reading the system time in UTC."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)
