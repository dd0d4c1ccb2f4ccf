"""Waking the job runners of other Pigeon processes on this host when jobs become due.

A process that makes a due job (an accepted message, a receipt's webhook, a reply for an SMPP
customer) wakes its own runner directly. With several processes on one database (``pigeon
serve`` with ``worker_processes``), the others would only see the job at their next poll; so
the process also sends a one-byte UDP datagram on loopback to every peer's wake port, and a
peer's listener nudges its runners. Datagrams are coalesced to one per peer per event-loop
turn, sending never blocks, and a lost datagram costs at most one poll interval: the queue,
not this signal, is what holds the work. The byte says whether an urgent job (an OTP's
dispatch) is among the new ones: runners claim those even with every regular slot busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

WAKE = b"w"
#: Among the due jobs is one of the urgent lane's priority.
WAKE_URGENT = b"u"


class WakeBroadcast:
    """Sends the wake datagram to ``peers`` (coalesced per loop turn; never blocks), and to
    ``urgent_peers`` (processes of the urgent lane alone) only when urgent jobs are due."""

    def __init__(
        self,
        peers: Sequence[tuple[str, int]],
        urgent_peers: Sequence[tuple[str, int]] = (),
    ) -> None:
        self._peers = list(peers)
        self._urgent_peers = list(urgent_peers)
        self._pending = False
        self._urgent = False
        self._sockets: dict[int, socket.socket] = {}

    @property
    def peers(self) -> list[tuple[str, int]]:
        """Where the datagrams go (the urgent peers' only when urgent jobs are due)."""
        return [*self._peers, *self._urgent_peers]

    def __call__(self, urgent: bool = False) -> None:
        """Wake every peer soon (once for any number of calls in this loop turn; urgent if any
        of them was)."""
        if not self._peers and not (urgent and self._urgent_peers):
            return
        self._urgent |= urgent
        if self._pending:
            return
        self._pending = True
        try:
            asyncio.get_running_loop().call_soon(self._send)
        except RuntimeError:  # no running loop: send now
            self._send()

    def _send(self) -> None:
        self._pending = False
        urgent = self._urgent
        self._urgent = False
        datagram = WAKE_URGENT if urgent else WAKE
        for host, port in (*self._peers, *self._urgent_peers) if urgent else self._peers:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = self._sockets.get(family)
            if sock is None:
                sock = self._sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
            try:
                sock.sendto(datagram, (host, port))
            except OSError as exc:  # a peer restarting or a full buffer: it will poll
                log.debug("wake datagram to %s:%d not sent: %s", host, port, exc)

    def close(self) -> None:
        """Close the sending sockets."""
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


class _WakeProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_wake: Callable[[bool], None]) -> None:
        self._on_wake = on_wake

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data == WAKE:
            self._on_wake(False)
        elif data == WAKE_URGENT:
            self._on_wake(True)


class WakeListener:
    """Listens on ``host:port`` (UDP) and calls ``on_wake(urgent)`` for every wake datagram."""

    def __init__(self, host: str, port: int, on_wake: Callable[[bool], None]) -> None:
        self._host = host
        self._port = port
        self._on_wake = on_wake
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        """Start listening; returns the port (useful when ``port`` was 0)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _WakeProtocol(self._on_wake), local_addr=(self._host, self._port)
        )
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        return int(sockname[1])

    def close(self) -> None:
        """Stop listening."""
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
            self._transport = None
