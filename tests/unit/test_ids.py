"""Prefixed ULIDs: the base32 digits and their order."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon import ids
from pigeon.ids import UlidFactory, _base32, _base32_14

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


@given(st.integers(min_value=0, max_value=2**70 - 1))
def test_high_random_digits_spelt_out_are_the_general_encoding(value: int) -> None:
    """The fourteen high digits of a random part are what the general encoder makes of them."""
    assert _base32_14(value) == _base32(value, 14)


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


def _at_millisecond(monkeypatch: pytest.MonkeyPatch, milliseconds: list[int]) -> None:
    """Make ``time.time_ns`` (as ``pigeon.ids`` reads it) return these milliseconds in turn."""
    values = iter(milliseconds)
    monkeypatch.setattr("pigeon.ids.time.time_ns", lambda: next(values) * 1_000_000)


def test_time_digits_are_the_milliseconds_also_across_their_high_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each id's first ten digits encode its millisecond, also where the cached high digits
    (which change every 1,024 ms) change."""
    start = 1_764_870_000_000 - 3
    milliseconds = [start + step for step in (0, 1, 2, 3, 4, 1024, 1025, 5000, 2**20)]
    _at_millisecond(monkeypatch, milliseconds)
    factory = UlidFactory()
    for millisecond in milliseconds:
        assert factory.ulid()[:10] == _base32(millisecond, 10)


def test_each_new_millisecond_takes_fresh_randomness_read_in_bulk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random parts of new milliseconds differ and come from few reads of the system's
    randomness: one per ENTROPY_BYTES / 10 milliseconds."""
    reads: list[int] = []
    real = os.urandom

    def counting(size: int) -> bytes:
        reads.append(size)
        return real(size)

    monkeypatch.setattr("pigeon.ids.os.urandom", counting)
    count = ids.ENTROPY_BYTES // 10 + 5
    _at_millisecond(monkeypatch, [1_000_000 + step for step in range(count)])
    factory = UlidFactory()
    randoms = [factory.ulid()[10:] for _ in range(count)]
    assert len(set(randoms)) == count
    assert reads == [ids.ENTROPY_BYTES, ids.ENTROPY_BYTES]


def test_a_forked_child_does_not_repeat_its_parents_random_parts() -> None:
    """After a fork, parent and child make different ids in the same millisecond: the child
    drops the randomness it inherited."""
    factory = UlidFactory()
    factory.ulid()  # the buffer now holds randomness a child would inherit
    factory._last_ms = 0
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        os.write(write_end, factory.ulid().encode())
        os._exit(0)
    os.close(write_end)
    mine = factory.ulid()
    with os.fdopen(read_end, "rb") as pipe:
        theirs = pipe.read().decode()
    os.waitpid(child, 0)
    assert len(theirs) == 26
    assert theirs[10:] != mine[10:]
