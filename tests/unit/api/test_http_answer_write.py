"""The fast path's answer written as uvicorn's ``send`` writes one: head and body in one write,
header names lower case, and a header no HTTP message may carry refused before anything is
written."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HEADER_VALUE_RE, RequestResponseCycle

from pigeon.api.fast_accept import FastAnswer
from pigeon.api.http_protocol import _write

DEFAULT_HEADERS = [(b"server", b"uvicorn"), (b"date", b"Sun, 06 Dec 2026 10:00:00 GMT")]


class Transport(asyncio.Transport):
    """Keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(transport: Transport, answered: list[bool]) -> RequestResponseCycle:
    scope: Any = {"type": "http", "method": "POST", "path": "/v1/messages", "headers": []}
    logger = logging.getLogger("test")
    return RequestResponseCycle(
        scope,
        transport,
        FlowControl(transport),
        logger,
        logger,
        False,
        DEFAULT_HEADERS,
        asyncio.Event(),
        False,
        True,
        lambda: answered.append(True),
    )


async def test_an_answer_is_written_at_once_with_lower_case_header_names() -> None:
    """Status line, the server's default headers, the answer's (names lower-cased, values as
    given, a tab included) and the body go out as one write; the exchange is finished."""
    transport, answered = Transport(), []
    cycle = _cycle(transport, answered)
    headers = [(b"Location", b"/v1/messages/msg_1"), (b"x-note", b"a\tb")]
    await _write(cycle, FastAnswer(202, [*headers, (b"content-length", b"2")], b"{}"))
    assert transport.writes == [
        b"HTTP/1.1 202 Accepted\r\n"
        b"server: uvicorn\r\ndate: Sun, 06 Dec 2026 10:00:00 GMT\r\n"
        b"location: /v1/messages/msg_1\r\nx-note: a\tb\r\ncontent-length: 2\r\n\r\n{}"
    ]
    assert cycle.response_complete
    assert answered == [True]
    assert not transport.closed


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ((b"x-note", b"line\r\nbreak"), "Invalid HTTP header value."),
        ((b"x-note", b"nul\x00"), "Invalid HTTP header value."),
        ((b"bad name", b"value"), "Invalid HTTP header name."),
        ((b"bad:name", b"value"), "Invalid HTTP header name."),
    ],
    ids=["newline-in-value", "nul-in-value", "space-in-name", "colon-in-name"],
)
async def test_a_header_no_http_message_may_carry_is_refused_unwritten(
    header: tuple[bytes, bytes], error: str
) -> None:
    """A value with a control character, or a name with a separator, raises before anything
    is written (as uvicorn's ``send`` does), however many valid answers went before."""
    transport, answered = Transport(), []
    for _ in range(2):  # valid names are remembered: the next answer still checks its own
        await _write(_cycle(transport, answered), FastAnswer(202, [], b"{}"))
    transport.writes.clear()
    cycle = _cycle(transport, answered)
    with pytest.raises(RuntimeError, match=error):
        await _write(cycle, FastAnswer(202, [header, (b"content-length", b"2")], b"{}"))
    assert transport.writes == []
    assert not cycle.response_complete


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.binary(max_size=40), min_size=1, max_size=6))
async def test_values_are_refused_exactly_when_uvicorns_search_finds_a_forbidden_byte(
    values: list[bytes],
) -> None:
    """Whatever bytes the values hold, the answer is refused exactly when uvicorn's own
    ``HEADER_VALUE_RE`` finds a byte no value may hold in one of them, and written otherwise."""
    transport, answered = Transport(), []
    headers = [(f"x-v{index}".encode(), value) for index, value in enumerate(values)]
    refused = any(HEADER_VALUE_RE.search(value) for value in values)
    cycle = _cycle(transport, answered)
    if refused:
        with pytest.raises(RuntimeError, match=r"Invalid HTTP header value\."):
            await _write(cycle, FastAnswer(202, [*headers, (b"content-length", b"2")], b"{}"))
        assert transport.writes == []
    else:
        await _write(cycle, FastAnswer(202, [*headers, (b"content-length", b"2")], b"{}"))
        assert len(transport.writes) == 1
