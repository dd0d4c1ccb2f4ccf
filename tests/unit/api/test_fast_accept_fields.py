"""The headers the REST fast path reads: the first of each name, as Litestar's ``get``."""

from __future__ import annotations

from pigeon.api.fast_accept import _fields


def test_the_first_of_a_repeated_header_is_read_and_others_are_ignored() -> None:
    """Authorization, Idempotency-Key and Content-Length are each read from their first
    occurrence; any other header, and a later repetition, changes nothing."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", b"Bearer pk_live_first"),
        (b"content-length", b"42"),
        (b"idempotency-key", b"k-1"),
        (b"authorization", b"Bearer pk_live_second"),
        (b"idempotency-key", b"k-2"),
    ]
    assert _fields(headers) == ("Bearer pk_live_first", "k-1", "42")
    assert _fields(iter(headers)) == ("Bearer pk_live_first", "k-1", "42")


def test_missing_headers_are_none_and_values_are_latin_1() -> None:
    """A header that is absent reads as ``None``; a value is decoded as Latin-1."""
    assert _fields([]) == (None, None, None)
    assert _fields([(b"idempotency-key", b"caf\xe9")]) == (None, "café", None)
