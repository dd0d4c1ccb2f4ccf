"""A direct answer's bytes: the default headers worked out once per list, each answer's own
headers checked as uvicorn's ``send`` checks them."""

from __future__ import annotations

import pytest

from pigeon.api import http_protocol
from pigeon.api.fast_accept import FastAnswer

ANSWER = FastAnswer(202, [(b"location", b"/v1/messages/m1"), (b"content-length", b"2")], b"{}")


def test_an_answer_is_its_status_the_defaults_its_headers_and_its_body() -> None:
    """The bytes are the status line, the default headers, the answer's headers and body."""
    defaults = [(b"date", b"Mon, 07 Dec 2026 16:00:00 GMT"), (b"Server", b"uvicorn")]
    content, keep_alive = http_protocol._response(defaults, ANSWER, keep_alive=True)
    assert content == (
        b"HTTP/1.1 202 Accepted\r\n"
        b"date: Mon, 07 Dec 2026 16:00:00 GMT\r\nserver: uvicorn\r\n"
        b"location: /v1/messages/m1\r\ncontent-length: 2\r\n\r\n{}"
    )
    assert keep_alive
    closing, keep_alive = http_protocol._response(defaults, ANSWER, keep_alive=False)
    assert closing.endswith(b"content-length: 2\r\nconnection: close\r\n\r\n{}")
    assert not keep_alive


def test_the_defaults_are_worked_out_once_per_list() -> None:
    """The same list (uvicorn makes a new one every second) gives the block kept from the
    last answer; another list, its own."""
    first = [(b"date", b"one")]
    block, closes = http_protocol._default_block(first)
    assert http_protocol._default_block(first)[0] is block
    assert not closes
    second = [(b"date", b"two"), (b"connection", b"Keep-Alive, Close")]
    assert http_protocol._default_block(second) == (
        b"date: two\r\nconnection: Keep-Alive, Close\r\n",
        True,
    )
    content, keep_alive = http_protocol._response(second, ANSWER, keep_alive=True)
    assert not keep_alive
    assert content.count(b"connection") == 1


@pytest.mark.parametrize(
    ("defaults", "answer", "error"),
    [
        ([(b"bad name", b"x")], ANSWER, "name"),
        ([(b"date", b"a\r\nb")], ANSWER, "value"),
        ([], FastAnswer(200, [(b"x-y", b"a\nb")], b""), "value"),
        ([], FastAnswer(200, [(b"x y", b"1")], b""), "name"),
    ],
)
def test_headers_uvicorn_would_refuse_are_refused(
    defaults: list[tuple[bytes, bytes]], answer: FastAnswer, error: str
) -> None:
    """A header name or value that uvicorn's ``send`` refuses raises as it does, whether it
    is a default or the answer's own."""
    with pytest.raises(RuntimeError, match=f"Invalid HTTP header {error}"):
        http_protocol._response(defaults, answer, keep_alive=True)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"Content-Length: 42", b"42"),
        (b"content-length:42", b"42"),
        (b"content-length: \t 42 \t", b"42"),
        (b"content-length:", b""),
    ],
)
def test_a_length_span_is_its_trimmed_value(line: bytes, value: bytes) -> None:
    """The span of a head's length covers its value without the blanks around it, as the
    value read by name is trimmed: the repeated-head check compares what lies around it."""
    block = b"host: x\r\n" + line + b"\r\naccept: */*\r\n"
    low = b"\n" + block.lower()
    span = http_protocol._lean_span(low, block, b"\ncontent-length:")
    assert span is not None
    assert block[span[0] : span[1]] == value
    assert value == http_protocol._lean_value(low, block, b"\ncontent-length:")
    assert http_protocol._lean_span(low, block, b"\nexpect:") is None
