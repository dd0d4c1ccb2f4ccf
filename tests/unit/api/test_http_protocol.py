"""``CoalescedWrites``: what is written in one turn of the loop reaches the socket as one write."""

from __future__ import annotations

import asyncio
from typing import Any

from pigeon.api.http_protocol import FLUSH_BYTES, CoalescedWrites


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what is written to it, and whether it was closed or aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.events: list[str] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_head_and_body_written_in_one_turn_are_one_write() -> None:
    """A response's head and body, written in one turn, reach the transport as one write."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
    coalesced.write(b"{}")
    assert inner.writes == []
    assert coalesced.get_write_buffer_size() == 7 + 46
    await _next_turn()
    assert inner.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"]
    coalesced.write(b"next")
    await _next_turn()
    assert inner.writes[1:] == [b"next"]


async def test_close_writes_what_is_gathered_first() -> None:
    """Closing writes the gathered bytes before the transport's close, and nothing after."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write(b"head")
    coalesced.writelines([b"-", bytearray(b"body")])
    coalesced.close()
    assert inner.events == ["write", "close"]
    assert inner.writes == [b"head-body"]
    await _next_turn()
    assert inner.writes == [b"head-body"]


async def test_abort_drops_what_is_gathered() -> None:
    """Aborting drops the gathered bytes, as a transport drops its buffer."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write(b"never sent")
    coalesced.abort()
    await _next_turn()
    assert inner.aborted
    assert inner.writes == []


async def test_large_writes_go_out_at_once() -> None:
    """Past FLUSH_BYTES the gathered bytes are written at once, not at the turn's end."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write(b"h")
    coalesced.write(b"x" * FLUSH_BYTES)
    assert inner.writes == [b"h" + b"x" * FLUSH_BYTES]
    await _next_turn()
    assert len(inner.writes) == 1


async def test_a_reused_buffer_is_copied() -> None:
    """A bytearray changed after write returns does not change what is sent."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    buffer = bytearray(b"first")
    coalesced.write(buffer)
    coalesced.write(memoryview(b"+view"))
    buffer[:] = b"later"
    await _next_turn()
    assert inner.writes == [b"first+view"]


async def test_nothing_is_written_to_a_closing_transport() -> None:
    """Bytes gathered when the peer has gone are dropped, not written to a closing transport."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write(b"late")
    coalesced.write(b"")
    inner.closing = True
    await _next_turn()
    assert inner.writes == []
    assert coalesced.is_closing()


async def test_everything_else_is_the_transports_own() -> None:
    """Extra info and the other transport calls reach the wrapped transport."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    assert coalesced.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert coalesced.wrapped is inner


async def test_a_whole_answer_goes_out_at_once_when_nothing_is_gathered() -> None:
    """An answer made whole is written at once on a connection with nothing gathered, and
    nothing is left for the turn's end."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write_whole(b"HTTP/1.1 202 Accepted\r\n\r\n{}")
    assert inner.writes == [b"HTTP/1.1 202 Accepted\r\n\r\n{}"]
    assert coalesced.get_write_buffer_size() == 7
    await _next_turn()
    assert len(inner.writes) == 1


async def test_a_whole_answer_follows_what_is_gathered() -> None:
    """After bytes gathered in the same turn, an answer made whole waits its turn behind
    them: the connection's bytes keep their order, in one write."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    coalesced.write(b"first;")
    coalesced.write_whole(b"second")
    assert inner.writes == []
    await _next_turn()
    assert inner.writes == [b"first;second"]


async def test_a_whole_answer_is_dropped_on_a_closing_transport() -> None:
    """A whole answer for a peer that has gone is dropped, as gathered bytes are."""
    inner = RecordingTransport()
    coalesced = CoalescedWrites(inner, asyncio.get_running_loop())
    inner.closing = True
    coalesced.write_whole(b"late")
    assert inner.writes == []
