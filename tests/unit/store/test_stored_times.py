"""SQLite's stored form of times: the kept (cached) text equals SQLAlchemy's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite import DATETIME

from pigeon.store.bulk import _sqlite_time

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
