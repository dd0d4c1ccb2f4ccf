"""Prefixed ULIDs: the base32 digits and their order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pigeon.ids import UlidFactory, _base32

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode(digits: str) -> int:
    value = 0
    for digit in digits:
        value = value * 32 + ALPHABET.index(digit)
    return value


@given(st.integers(min_value=0, max_value=2**80 - 1))
def test_random_part_round_trips(value: int) -> None:
    """Sixteen digits encode any 80-bit value exactly, most significant digit first."""
    digits = _base32(value, 16)
    assert len(digits) == 16
    assert _decode(digits) == value


@given(st.integers(min_value=0, max_value=2**48 - 1), st.integers(min_value=0, max_value=2**48 - 1))
def test_time_part_sorts_like_the_number(first: int, second: int) -> None:
    """Ten digits of a millisecond time compare as strings the way the times compare."""
    assert (_base32(first, 10) < _base32(second, 10)) == (first < second)
    assert _decode(_base32(first, 10)) == first


def test_ids_are_strictly_increasing_and_well_formed() -> None:
    """Ids made by one factory increase strictly, also within one millisecond."""
    factory = UlidFactory()
    ids = [factory.new("msg") for _ in range(5_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for made in ids[:50]:
        prefix, ulid = made.split("_")
        assert prefix == "msg"
        assert len(ulid) == 26
        assert set(ulid) <= set(ALPHABET)


@given(st.integers(min_value=0, max_value=2**79 - 1), st.integers(min_value=1, max_value=2_100))
def test_ids_within_one_millisecond_count_up_across_carries(start: int, count: int) -> None:
    """Within one millisecond each id's random part is the previous one plus one, also where
    the digits carry beyond the last two (every 1,024 ids)."""
    factory = UlidFactory()
    factory.ulid()
    factory._last_ms = 2**47  # far ahead: every id below falls in this millisecond
    factory._last_random = start
    randoms = [_decode(factory.ulid()[10:]) for _ in range(count)]
    assert randoms == list(range(start + 1, start + count + 1))
