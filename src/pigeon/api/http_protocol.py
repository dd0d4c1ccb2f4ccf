"""uvicorn's httptools protocol, with the writes of one loop iteration sent as one.

Why this exists: uvicorn writes a response's status line and headers, then its body, with a
separate ``transport.write`` each, and each is a ``send`` system call on the socket (uvloop
writes at once when it can). A profile of ``pigeon serve`` under scenario c
(docs/benchmarks.md, session 19) gave those two calls about a quarter of the CPU of answering
``POST /v1/messages``, and the client is woken for each segment too. Handing uvicorn a
transport that gathers what is written during one turn of the loop and writes it once at
the end of it makes every ordinary response one system call, without changing what uvicorn
sends.

Nothing else changes: the gathered bytes are written in order, before any ``close`` and
at once when they pass ``FLUSH_BYTES`` (a streamed body does not pile up unseen by flow
control); ``abort`` drops them as it drops the transport's own buffer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["FLUSH_BYTES", "CoalescedWrites", "CoalescingHttpToolsProtocol"]

#: Gathered bytes past this are written at once rather than at the end of the loop's turn.
FLUSH_BYTES = 64 * 1024


class CoalescedWrites:
    """An ``asyncio.Transport`` in front of another that writes, once per turn of the loop,
    everything written to it during that turn (or sooner, past ``FLUSH_BYTES``)."""

    __slots__ = ("_loop", "_pending", "_pending_bytes", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0

    @property
    def wrapped(self) -> asyncio.Transport:
        """The transport the bytes are written to."""
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Gather ``data``; it is written when the loop's turn ends (or now, if large)."""
        # A caller may reuse its buffer once write returns, as with any transport.
        chunk = data if type(data) is bytes else bytes(data)
        if not chunk:
            return
        if self._pending is None:
            self._pending = [chunk]
            self._pending_bytes = len(chunk)
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def writelines(self, list_of_data: Any) -> None:
        """Gather each of ``list_of_data`` in order."""
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is gathered now (nothing when the transport is closing)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self._pending_bytes = 0
        if self._transport.is_closing():
            return
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Write what is gathered, then close (the transport sends it before closing)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is gathered and abort the connection."""
        self._pending = None
        self._pending_bytes = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._pending_bytes + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Everything else (extra info, reading, set_protocol, buffer limits) is the
        # transport's own.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol writing through ``CoalescedWrites``: pass it to
    ``uvicorn.Config(http=...)``."""

    def connection_made(  # type: ignore[override]  # uvicorn narrows it to Transport too
        self, transport: asyncio.Transport
    ) -> None:
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        super().connection_made(coalesced)  # type: ignore[arg-type]  # a Transport in all it uses
