"""Times in the public representation: the kept (cached) text equals a fresh formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from pigeon.services.representation import iso

OFFSETS = st.sampled_from([None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(0))])


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1)), OFFSETS)
def test_iso_is_the_millisecond_iso_form_every_time(moment: datetime, zone: object) -> None:
    """UTC times end in ``Z``, other offsets keep theirs; asking again gives the same text."""
    value = moment if zone is None else moment.replace(tzinfo=zone)  # type: ignore[arg-type]
    expected = value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso(value) == expected
    assert iso(value) == expected


def test_equal_instants_in_other_offsets_keep_their_own_text() -> None:
    """A UTC time kept in the cache does not answer for the same instant at +02:00."""
    utc = datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=UTC)
    plus_two = utc.astimezone(timezone(timedelta(hours=2)))
    assert iso(utc) == "2026-12-02T12:00:00.123Z"
    assert iso(plus_two) == "2026-12-02T14:00:00.123+02:00"
    assert iso(None) is None


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1)),
    st.lists(st.integers(min_value=0, max_value=999_999), min_size=2, max_size=8),
)
def test_times_within_one_second_keep_their_own_milliseconds(
    moment: datetime, microseconds: list[int]
) -> None:
    """Times that share their second (and so its kept text) each end in their own milliseconds."""
    for microsecond in microseconds:
        value = moment.replace(microsecond=microsecond, tzinfo=UTC)
        assert iso(value) == value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
