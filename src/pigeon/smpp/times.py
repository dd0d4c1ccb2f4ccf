"""SMPP time strings (SMPP 3.4, 7.1.1): schedule_delivery_time, validity_period, final_date.

``YYMMDDhhmmsstnnp``: an absolute time when ``p`` is ``+`` or ``-`` (``t`` tenths of a
second, ``nn`` the offset from UTC in quarter hours), a relative one when ``p`` is ``R``.
A relative year counts 365 days and a month 30 days: the specification leaves them
undefined and SMSCs approximate the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

__all__ = ["format_absolute", "format_relative", "parse_time"]

_YEAR_DAYS = 365
_MONTH_DAYS = 30


def parse_time(value: str) -> datetime | timedelta | None:
    """An aware datetime (absolute), a timedelta (relative) or None (empty).

    Raises ``ValueError`` when the string is not a valid SMPP time.
    """
    if not value:
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise ValueError(f"not an SMPP time: {value!r}")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, kind = int(value[12]), int(value[13:15]), value[15]
    if kind == "R":
        return timedelta(
            days=yy * _YEAR_DAYS + mo * _MONTH_DAYS + dd, hours=hh, minutes=mi, seconds=ss
        )
    if quarters > 48:
        raise ValueError(f"UTC offset beyond 12 hours: {value!r}")
    offset = timedelta(minutes=15 * quarters)
    zone = timezone(offset if kind == "+" else -offset)
    return datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=zone)


def format_absolute(moment: datetime) -> str:
    """An absolute SMPP time for an aware datetime, written in UTC."""
    if moment.tzinfo is None:
        raise ValueError("an absolute SMPP time needs an aware datetime")
    utc = moment.astimezone(UTC)
    if not 2000 <= utc.year <= 2099:
        raise ValueError("SMPP times cover the years 2000-2099")
    return f"{utc:%y%m%d%H%M%S}{utc.microsecond // 100_000}00+"


def format_relative(delta: timedelta) -> str:
    """A relative SMPP time (``...000R``) for a non-negative duration, to the second."""
    total = int(delta.total_seconds())
    if total < 0:
        raise ValueError("a relative SMPP time cannot be negative")
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    years, days = divmod(days, _YEAR_DAYS)
    months, days = divmod(days, _MONTH_DAYS)
    if years > 99:
        raise ValueError("a relative SMPP time covers less than 100 years")
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
