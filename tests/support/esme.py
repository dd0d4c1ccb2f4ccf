"""A small asyncio ESME over our own codec, to drive the SMPP server in tests.

It binds, pipelines requests (each ``request`` returns a future of its response), answers
every deliver_sm it receives with ``deliver_status`` (recording it) and notices an unbind
from the server (answering it, as ESMEs do).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

from pigeon.smpp.codec import PduDecoder, encode
from pigeon.smpp.constants import CommandStatus
from pigeon.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLinkResp,
    Pdu,
    Unbind,
    UnbindResp,
)


class Esme:
    """One client connection; ``async with Esme.connect(port) as esme: ...``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.delivered: list[DeliverSm] = []
        self.deliver_status: int = CommandStatus.ESME_ROK
        self.answer_deliveries = True
        self.unbound_by_server = asyncio.Event()
        self.closed = asyncio.Event()
        self._sequence = 0
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Esme:
        """Connect to the server."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def __aenter__(self) -> Esme:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # --- requests --------------------------------------------------------------------------

    def send(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        """Write a request (a sequence number is assigned); the future gets its response."""
        self._sequence += 1
        pdu = dataclasses.replace(pdu, sequence_number=self._sequence)
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            future.set_exception(ConnectionError("the connection is closed"))
            return future
        self._waiting[self._sequence] = future
        self.writer.write(encode(pdu))
        return future

    async def request(self, pdu: Pdu, timeout: float = 10.0) -> Pdu:
        """Send one request and wait for its response."""
        return await asyncio.wait_for(self.send(pdu), timeout)

    async def bind(
        self, system_id: str, password: str, mode: str = "trx", timeout: float = 10.0
    ) -> Pdu:
        """Bind as ``tx``, ``rx`` or ``trx``; returns the bind response."""
        kind = {"tx": BindTransmitter, "rx": BindReceiver, "trx": BindTransceiver}[mode]
        return await self.request(kind(system_id=system_id, password=password), timeout)

    async def unbind(self, timeout: float = 10.0) -> Pdu:
        """Unbind politely; returns the unbind_resp."""
        return await self.request(Unbind(), timeout)

    async def close(self) -> None:
        """Close the socket and stop reading."""
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # --- what the server sends -------------------------------------------------------------

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once ``condition()`` holds (checked whenever something arrives)."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def _read(self) -> None:
        decoder = PduDecoder()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for item in decoder.feed(data):
                    if isinstance(item, Pdu):
                        self._handle(item)
                self._changed.set()
        except (OSError, ConnectionError):
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the server closed the connection"))
            self.closed.set()
            self._changed.set()

    def _handle(self, pdu: Pdu) -> None:
        if pdu.is_response:
            future = self._waiting.pop(pdu.sequence_number, None)
            if future is not None and not future.done():
                future.set_result(pdu)
        elif isinstance(pdu, DeliverSm):
            self.delivered.append(pdu)
            if self.answer_deliveries:
                self.writer.write(
                    encode(
                        DeliverSmResp(
                            sequence_number=pdu.sequence_number,
                            command_status=self.deliver_status,
                        )
                    )
                )
        elif isinstance(pdu, Unbind):
            self.unbound_by_server.set()
            self.writer.write(encode(UnbindResp(sequence_number=pdu.sequence_number)))
        elif pdu.command_id == 0x15:  # enquire_link
            self.writer.write(encode(EnquireLinkResp(sequence_number=pdu.sequence_number)))
