"""SMPP absolute and relative time strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.smpp.times import format_absolute, format_relative, parse_time


def test_absolute_time_with_offset_parses_aware() -> None:
    """YYMMDDhhmmsstnn+ is local time nn quarter-hours ahead of UTC, t tenths of a second."""
    parsed = parse_time("240131120000504+")
    assert parsed == datetime(2024, 1, 31, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=1)))
    assert parse_time("240131120000008-") == datetime(
        2024, 1, 31, 12, 0, tzinfo=timezone(timedelta(hours=-2))
    )


def test_relative_time_parses_to_timedelta() -> None:
    """YYMMDDhhmmss000R is a duration (a month counts 30 days, a year 365)."""
    assert parse_time("000001023000000R") == timedelta(days=1, hours=2, minutes=30)
    assert parse_time("010100000000000R") == timedelta(days=395)


def test_empty_time_is_none() -> None:
    """An empty field means 'not set'."""
    assert parse_time("") is None


@pytest.mark.parametrize(
    "value", ["2401311200", "24013112000000X+", "240131120000049+", "241331120000000+"]
)
def test_invalid_times_raise(value: str) -> None:
    """Wrong length, wrong kind letter, offset past 12 h or an impossible date raise."""
    with pytest.raises(ValueError, match=r"."):
        parse_time(value)


def test_format_absolute_writes_utc() -> None:
    """An aware datetime is written in UTC with offset 00+."""
    moment = datetime(2024, 1, 31, 13, 0, 5, 300_000, tzinfo=timezone(timedelta(hours=1)))
    assert format_absolute(moment) == "240131120005300+"
    with pytest.raises(ValueError, match="aware"):
        format_absolute(datetime(2024, 1, 31))  # naive on purpose


@given(st.datetimes(datetime(2000, 1, 2), datetime(2099, 12, 30), timezones=st.just(UTC)))
def test_absolute_round_trip(moment: datetime) -> None:
    """format_absolute then parse_time gives the same instant, to the tenth of a second."""
    parsed = parse_time(format_absolute(moment))
    assert parsed == moment.replace(microsecond=moment.microsecond // 100_000 * 100_000)


@given(st.integers(0, 99 * 365 * 86_400))
def test_relative_round_trip(seconds: int) -> None:
    """format_relative then parse_time gives the same duration."""
    assert parse_time(format_relative(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
