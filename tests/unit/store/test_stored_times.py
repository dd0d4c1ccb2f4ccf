"""SQLite's stored form of times: the kept (cached) text and the instant read back equal
SQLAlchemy's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from pigeon.store.bulk import _sqlite_time
from pigeon.store.tables import UtcDateTime, sqlite_utc

OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(0))])
SQLALCHEMY = DATETIME().bind_processor(None)  # type: ignore[arg-type]


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1)), OFFSETS)
def test_the_stored_text_is_sqlalchemys_utc_form_every_time(moment: datetime, zone: object) -> None:
    """Any aware time is stored as SQLAlchemy's SQLite text of its UTC instant, twice alike."""
    value = moment.replace(tzinfo=zone)  # type: ignore[arg-type]
    expected = SQLALCHEMY(value.astimezone(UTC).replace(tzinfo=None))
    assert _sqlite_time(value) == expected
    assert _sqlite_time(value) == expected


def test_naive_times_are_refused_even_after_an_equal_aware_one() -> None:
    """A naive time is an error, whatever the cache holds."""
    aware = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert _sqlite_time(aware) == "2026-12-02 12:00:00.000000"
    with pytest.raises(ValueError, match="naive"):
        _sqlite_time(aware.replace(tzinfo=None))
    assert _sqlite_time(None) is None


def test_one_instant_in_two_zones_is_one_stored_text() -> None:
    """A kept text serves an equal instant written in another zone: both are its UTC form."""
    east = datetime(2026, 12, 2, 17, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5)))
    utc = datetime(2026, 12, 2, 12, 30, 0, 123456, tzinfo=UTC)
    assert _sqlite_time(east) == "2026-12-02 12:30:00.123456"
    assert _sqlite_time(utc) == "2026-12-02 12:30:00.123456"
    assert _sqlite_time(utc + timedelta(microseconds=1)) == "2026-12-02 12:30:00.123457"


SQLALCHEMY_READ = DATETIME().result_processor(sqlite.dialect(), None)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1)), OFFSETS)
def test_a_stored_text_reads_back_as_sqlalchemys_instant_in_utc(
    moment: datetime, zone: object
) -> None:
    """Any stored time reads back as the instant SQLAlchemy reads, aware in UTC, twice alike."""
    text = _sqlite_time(moment.replace(tzinfo=zone))  # type: ignore[arg-type]
    expected = SQLALCHEMY_READ(text).replace(tzinfo=UTC)
    for _ in range(2):
        read = sqlite_utc(text)
        assert read == expected
        assert read is not None
        assert read.tzinfo is UTC


def test_texts_without_microseconds_or_with_an_offset_read_as_their_utc_instant() -> None:
    """Older forms read right too: no fraction, or an explicit offset."""
    assert sqlite_utc("2026-12-02 12:00:00") == datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert sqlite_utc("2026-12-02 12:00:00+01:00") == datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    assert sqlite_utc(None) is None


def test_utc_date_time_reads_through_sqlite_utc_on_sqlite_only() -> None:
    """The column type hands SQLite's reads to ``sqlite_utc``, other dialects to SQLAlchemy."""
    assert UtcDateTime().result_processor(sqlite.dialect(), None) is sqlite_utc
    assert UtcDateTime().result_processor(postgresql.dialect(), None) is not sqlite_utc


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1)),
    st.lists(st.integers(min_value=0, max_value=999_999), min_size=2, max_size=8),
)
def test_times_within_one_second_store_their_own_microseconds(
    moment: datetime, microseconds: list[int]
) -> None:
    """Times that share their second (and so its kept text) each store their own fraction, and
    read back as themselves."""
    for microsecond in microseconds:
        value = moment.replace(microsecond=microsecond, tzinfo=UTC)
        text = _sqlite_time(value)
        assert text == SQLALCHEMY(value.replace(tzinfo=None))
        assert sqlite_utc(text) == value
