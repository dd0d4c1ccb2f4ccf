"""The simulated SMSC: an asyncio SMPP 3.4 server over :mod:`pigeon.smpp`.

State is labelled: per simulator (:class:`SmscSimulator`: counters, ids, receipts waiting
for a receiver), per connection (:class:`_Connection`: its session and bind) and per
delivery (:class:`_Delivery`: one deliver_sm until the client acknowledges it). Receipts
and MO go to a bind of the same system_id that can receive (the one the submit came on when
it is a transceiver); with none bound they wait, like a real SMSC's store-and-forward, and
one refused with an error status is tried again ``redelivery_delay`` later (five times in all).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pigeon.domain.encoding import (
    Encoding,
    analyse,
    decode_gsm7,
    encode_gsm7,
    encode_ucs2,
    split_segments,
)
from pigeon.smpp import tlv
from pigeon.smpp.codec import PduDecoder, encode, response_for
from pigeon.smpp.concat import Reassembler, UdhError, concat_udh, part_from_pdu, split_udh
from pigeon.smpp.constants import (
    CommandStatus,
    DataCoding,
    GsmFeature,
    MessageState,
    MessageType,
    Ton,
)
from pigeon.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from pigeon.smpp.receipt import ReceiptText, format_receipt
from pigeon.smpp.session import (
    InvalidPdu,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    SessionState,
    StateChanged,
    Transmit,
)
from pigeon.smsc_sim.config import IdFormat, Outcome, SmscSimConfig

__all__ = ["BindStats", "ReceivedMessage", "SimStats", "SmscSimulator"]

log = logging.getLogger(__name__)

_S = CommandStatus
_STATES: dict[str, MessageState] = {
    "DELIVRD": MessageState.DELIVERED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "EXPIRED": MessageState.EXPIRED,
    "REJECTD": MessageState.REJECTED,
}
_ERRORS = {"DELIVRD": "000", "UNDELIV": "001", "EXPIRED": "002", "REJECTD": "003"}
_MAX_ATTEMPTS = 5
_MODES: dict[type[Pdu], str] = {BindTransmitter: "tx", BindReceiver: "rx", BindTransceiver: "trx"}
_BIND_RESPONSES: dict[
    type[Pdu], type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]
] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}

MoConcat = Literal["udh8", "udh16", "sar", "payload"]


@dataclass(slots=True)
class BindStats:
    """Counters of one bind (one connection that bound successfully)."""

    number: int
    system_id: str
    mode: str
    submits: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    receipts_sent: int = 0
    mo_sent: int = 0
    open: bool = True


@dataclass(slots=True)
class SimStats:
    """Counters of the whole simulator; ``binds`` lists every successful bind, in order."""

    connections: int = 0
    binds_refused: int = 0
    submits_received: int = 0
    submits_accepted: int = 0
    submits_dropped: int = 0
    submits_refused: Counter[int] = field(default_factory=Counter)
    receipts_sent: int = 0
    receipts_acked: int = 0
    mo_sent: int = 0
    mo_acked: int = 0
    disconnects: int = 0
    enquire_links: int = 0
    unbinds: int = 0
    binds: list[BindStats] = field(default_factory=list)

    @property
    def max_in_flight(self) -> int:
        """The most submits one bind had unanswered at once."""
        return max((b.max_in_flight for b in self.binds), default=0)


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message as the simulated carrier got it, reassembled: text and its parts' ids."""

    source: str
    destination: str
    text: str
    data_coding: int
    message_ids: tuple[str, ...]
    concat: str  # "none", "udh8", "udh16", "sar" or "payload"
    #: When the (last part of the) message arrived: the event loop's clock, which is
    #: ``time.monotonic()`` (one clock for every process of the host), and the wall clock.
    received_at: float = 0.0
    received_wall: float = 0.0


@dataclass(slots=True, eq=False)
class _Delivery:
    """One deliver_sm to hand to a receiver, until acknowledged."""

    pdu: DeliverSm
    kind: str  # "receipt", "mo" or "raw"
    system_id: str
    prefer: _Connection | None = None
    attempts: int = 0
    done: asyncio.Future[int] | None = None


def _format_id(number: int, style: IdFormat, width: int) -> str:
    if style == "decimal":
        return f"{number:0{width}d}"
    text = f"{number:0{width}x}"
    return text.upper() if style == "HEX" else text


def _decode(data: bytes, data_coding: int, alphabet: str) -> str:
    if data_coding == DataCoding.UCS2:
        return data.decode("utf-16-be", "replace")
    if data_coding == DataCoding.DEFAULT and alphabet == "gsm7" and data.isascii():
        return decode_gsm7(data)
    return data.decode("latin-1")


class _Connection:
    """One client connection: its SMPP session, its bind counters, its deliveries."""

    def __init__(
        self, sim: SmscSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.session = Session(
            Role.SMSC,
            window=sim.config.window,
            response_timeout=10.0,
            enquire_link_interval=None,
            now=asyncio.get_running_loop().time(),
        )
        self.bind: BindStats | None = None
        self.held = 0
        self.outbox: deque[_Delivery] = deque()
        self.sent: dict[int, _Delivery] = {}
        self._out: list[bytes] = []

    @property
    def receives(self) -> bool:
        """True when bound as receiver or transceiver (and still open)."""
        return self.session.state in (SessionState.BOUND_RX, SessionState.BOUND_TRX)

    def write(self, pdu: Pdu) -> None:
        # Coalesced: everything written in one event-loop turn goes out in one send().
        self._out.append(encode(pdu))
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self.flush_writes)

    def flush_writes(self) -> None:
        frames, self._out = self._out, []
        if frames and not self.writer.is_closing():
            self.writer.write(b"".join(frames))

    def close(self) -> None:
        self.flush_writes()
        self.writer.close()

    # --- the read loop ----------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        decoder = PduDecoder()
        ticking = asyncio.create_task(self._tick())
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                now = loop.time()
                for item in decoder.feed(data):
                    for event in self.session.receive(item, now):
                        self._handle(event)
                if decoder.failed or self.session.state is SessionState.UNBOUND:
                    break
                if self.writer.is_closing():
                    break
        except (OSError, ConnectionError) as exc:
            log.info("smsc-sim: connection error: %s", exc)
        finally:
            ticking.cancel()
            await asyncio.gather(ticking, return_exceptions=True)
            self._closed()
            self.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.5)
            for late in self.session.expired(loop.time()):
                delivery = self.sent.pop(late.request.sequence_number, None)
                if delivery is not None:
                    self.sim._retry(delivery)
            self.flush()

    def _closed(self) -> None:
        sim = self.sim
        self.session.close()
        if self.bind is not None:
            self.bind.open = False
        sim._connections.discard(self)
        left = list(self.sent.values()) + list(self.outbox)
        self.sent.clear()
        self.outbox.clear()
        for delivery in left:
            delivery.prefer = None
            sim._dispatch(delivery)
        sim._bump()

    def _handle(self, event: object) -> None:
        if isinstance(event, Transmit):
            if isinstance(event.pdu, EnquireLinkResp):
                self.sim.stats.enquire_links += 1
                self.sim._bump()
            self.write(event.pdu)
        elif isinstance(event, RequestReceived):
            pdu = event.pdu
            if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
                self._on_bind(pdu)
            elif isinstance(pdu, SubmitSm | DataSm):
                self._on_submit(pdu)
            else:
                log.info("smsc-sim: %s not supported", type(pdu).__name__)
                self.write(self.session.respond(response_for(pdu, _S.ESME_RINVCMDID)))
        elif isinstance(event, ResponseReceived):
            delivery = self.sent.pop(event.request.sequence_number, None)
            if delivery is not None:
                self.sim._acknowledged(delivery, event.response.command_status)
            self.flush()
        elif isinstance(event, InvalidPdu):
            log.warning("smsc-sim: undecodable frame: %s", event.error.reason)
        elif isinstance(event, StateChanged):
            log.info("smsc-sim: session %s -> %s", event.old.value, event.new.value)
            if event.new is SessionState.UNBOUND:
                self.sim.stats.unbinds += 1
                self.sim._bump()

    # --- binds ------------------------------------------------------------------------------

    def _on_bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> None:
        sim = self.sim
        config = sim.config
        if pdu.system_id != config.system_id:
            status = _S.ESME_RINVSYSID
        elif pdu.password != config.password:
            status = _S.ESME_RINVPASWD
        else:
            status = _S.ESME_ROK
        response = _BIND_RESPONSES[type(pdu)](
            sequence_number=pdu.sequence_number,
            command_status=status,
            system_id="smsc-sim" if status == _S.ESME_ROK else "",
        )
        self.write(self.session.respond(response))
        if status != _S.ESME_ROK:
            sim.stats.binds_refused += 1
            log.warning(
                "smsc-sim: refused the bind of system_id %r: %s", pdu.system_id, status.name
            )
            self.close()
            sim._bump()
            return
        self.bind = BindStats(len(sim.stats.binds) + 1, pdu.system_id, _MODES[type(pdu)])
        sim.stats.binds.append(self.bind)
        log.info("smsc-sim: bind %d as %s", self.bind.number, self.bind.mode)
        sim._bound(self)

    # --- submits ----------------------------------------------------------------------------

    def _on_submit(self, pdu: SubmitSm | DataSm) -> None:
        sim = self.sim
        stats = sim.stats
        faults = sim.config.faults
        bind = self.bind
        assert bind is not None  # the session refuses submits before a bind
        loop = asyncio.get_running_loop()
        now = loop.time()
        stats.submits_received += 1
        bind.submits += 1
        number = stats.submits_received
        sim.submit_times.append(now)
        sim._bump()
        if faults.disconnect_after and sim._disconnects < faults.disconnect_times:
            self.held += 1
            if self.held >= faults.disconnect_after:
                sim._disconnects += 1
                stats.disconnects += 1
                log.warning("smsc-sim: fault: closing the connection after %d submits", self.held)
                self.close()
            return
        bind.in_flight += 1
        bind.max_in_flight = max(bind.max_in_flight, bind.in_flight)
        if faults.no_response_every and number % faults.no_response_every == 0:
            stats.submits_dropped += 1
            bind.in_flight -= 1
            return
        status: int = _S.ESME_ROK
        if faults.throttle_per_second is not None:
            recent = sim._recent
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= faults.throttle_per_second:
                status = _S.ESME_RTHROTTLED
            else:
                recent.append(now)
        every = faults.queue_full_every
        if status == _S.ESME_ROK and every and number % every == 0:
            status = _S.ESME_RMSGQFUL
        every = max(faults.error_every, 1)
        if status == _S.ESME_ROK and faults.error_status is not None and number % every == 0:
            status = faults.error_status
        if status != _S.ESME_ROK:
            stats.submits_refused[status] += 1
            self._answer(pdu, status, "")
            return
        number_id = sim._next_id()
        message_id = _format_id(number_id, sim.config.message_ids, sim.config.id_width)
        stats.submits_accepted += 1
        sim._record(pdu, message_id, now)
        receipt = sim._receipt_for(pdu, number_id, self)
        if receipt is not None and faults.receipt_before_response:
            sim._spawn(self._receipt_then_answer(pdu, message_id, receipt))
            return
        self._answer(pdu, _S.ESME_ROK, message_id)
        if receipt is not None:
            sim._later(sim.config.receipt_delay, receipt)

    async def _receipt_then_answer(
        self, pdu: SubmitSm | DataSm, message_id: str, receipt: _Delivery
    ) -> None:
        receipt.done = asyncio.get_running_loop().create_future()
        self.sim._send_receipt(receipt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(receipt.done), 5.0)
        self._answer(pdu, _S.ESME_ROK, message_id)

    def _answer(self, pdu: SubmitSm | DataSm, status: int, message_id: str) -> None:
        delay = self.sim.config.faults.response_delay
        if delay > 0:
            self.sim._call_later(delay, lambda: self._respond(pdu, status, message_id))
        else:
            self._respond(pdu, status, message_id)

    def _respond(self, pdu: SubmitSm | DataSm, status: int, message_id: str) -> None:
        if self.session.state is SessionState.CLOSED or self.writer.is_closing():
            return
        response: Pdu
        if isinstance(pdu, SubmitSm):
            response = SubmitSmResp(
                sequence_number=pdu.sequence_number, command_status=status, message_id=message_id
            )
        else:
            response = DataSmResp(
                sequence_number=pdu.sequence_number, command_status=status, message_id=message_id
            )
        self.write(self.session.respond(response))
        if self.bind is not None:
            self.bind.in_flight -= 1
        self.sim._bump()

    # --- deliveries -------------------------------------------------------------------------

    def deliver(self, delivery: _Delivery) -> None:
        self.outbox.append(delivery)
        self.flush()

    def unbind(self) -> None:
        """Ask the client to unbind (as an SMSC going down for maintenance does)."""
        if self.session.bound and not self.session.unbinding:
            self.write(self.session.unbind(asyncio.get_running_loop().time()))

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        session = self.session
        while self.outbox and session.can_send() and not self.writer.is_closing():
            delivery = self.outbox.popleft()
            pdu = session.send_request(delivery.pdu, loop.time())
            self.sent[pdu.sequence_number] = delivery
            delivery.attempts += 1
            self.write(pdu)
            self.sim._sent(delivery, self)


class SmscSimulator:
    """An SMPP carrier on 127.0.0.1 for tests and staging; see :mod:`pigeon.smsc_sim`.

    ``await start()`` returns the bound port; ``await stop()`` closes everything. Counters
    are in :attr:`stats`, received messages (reassembled) in :attr:`messages`, submit arrival
    times (event-loop clock) in :attr:`submit_times`. :meth:`send_mo` injects a
    mobile-originated message, :meth:`send_deliver` any deliver_sm; :meth:`wait_until` waits
    for a condition on the counters without sleeping.
    """

    def __init__(self, config: SmscSimConfig | None = None) -> None:
        self.config = config or SmscSimConfig()
        self.stats = SimStats()
        self.messages: list[ReceivedMessage] = []
        self.submit_times: list[float] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Pending timers by a number of their own (not by handle: a callback that named its
        #: handle would make a reference cycle per receipt, left to the cyclic collector).
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_numbers = itertools.count()
        self._waiting: list[_Delivery] = []
        self._watchers: list[asyncio.Future[None]] = []
        self._recent: deque[float] = deque()
        self._disconnects = 0
        self._id = self.config.id_start
        self._reference = 0
        self._random = random.Random(self.config.seed)  # noqa: S311 - outcome draws, not secrets
        self._reassembler = Reassembler(timeout=600.0)
        self._part_ids: dict[tuple[str, str, int, int], list[str]] = {}
        self._control: asyncio.Server | None = None
        self.control_port: int | None = None

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen; return the port (the configured one, or the one picked for port 0)."""
        self._server = await asyncio.start_server(self._accept, self.config.host, self.config.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.config.control_port is not None:
            from pigeon.smsc_sim.control import start_control

            self._control = await start_control(self, self.config.host, self.config.control_port)
            self.control_port = self._control.sockets[0].getsockname()[1]
        log.info("smsc-sim: listening on %s:%d", self.config.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every connection and cancel pending receipts."""
        for server in (self._server, self._control):
            if server is not None:
                server.close()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for connection in list(self._connections):
            connection.close()
        pending = [*self._handlers, *self._tasks]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for server in (self._server, self._control):
            if server is not None:
                await server.wait_closed()
        self._server = self._control = None
        for watcher in self._watchers:
            watcher.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats.connections += 1
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.serve()
        finally:
            self._handlers.discard(task)

    # --- waiting for tests ------------------------------------------------------------------

    def _bump(self) -> None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``condition()`` holds (checked at every counter change), or raise
        ``TimeoutError`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"smsc-sim: condition not met within {timeout}s")
            watcher: asyncio.Future[None] = loop.create_future()
            self._watchers.append(watcher)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher, remaining)

    # --- helpers for connections ------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        number = next(self._timer_numbers)

        def run() -> None:
            self._timers.pop(number, None)
            callback()

        self._timers[number] = asyncio.get_running_loop().call_later(delay, run)

    def _later(self, delay: float, receipt: _Delivery) -> None:
        if delay > 0:
            self._call_later(delay, lambda: self._send_receipt(receipt))
        else:
            self._send_receipt(receipt)

    def _send_receipt(self, receipt: _Delivery) -> None:
        self._dispatch(receipt)
        if self.config.faults.duplicate_receipts:
            self._dispatch(dataclasses.replace(receipt, done=None, attempts=0))

    def _next_id(self) -> int:
        number = self._id
        self._id += 1
        return number

    def _bound(self, connection: _Connection) -> None:
        self._bump()
        if connection.receives and self._waiting:
            waiting, self._waiting = self._waiting, []
            for delivery in waiting:
                self._dispatch(delivery)

    def _dispatch(self, delivery: _Delivery) -> None:
        preferred = delivery.prefer
        if preferred is not None and preferred.receives and preferred in self._connections:
            preferred.deliver(delivery)
            return
        candidates = [
            c
            for c in self._connections
            if c.receives and c.bind is not None and c.bind.system_id == delivery.system_id
        ]
        if not candidates:
            self._waiting.append(delivery)
            return
        min(candidates, key=lambda c: len(c.outbox) + len(c.sent)).deliver(delivery)

    def _sent(self, delivery: _Delivery, connection: _Connection) -> None:
        bind = connection.bind
        if delivery.kind == "receipt":
            self.stats.receipts_sent += 1
            if bind is not None:
                bind.receipts_sent += 1
        elif delivery.kind == "mo":
            self.stats.mo_sent += 1
            if bind is not None:
                bind.mo_sent += 1
        self._bump()

    def _acknowledged(self, delivery: _Delivery, status: int) -> None:
        if status != _S.ESME_ROK:
            log.info("smsc-sim: deliver_sm refused with 0x%08X", status)
            self._retry(delivery)
            return
        if delivery.kind == "receipt":
            self.stats.receipts_acked += 1
        elif delivery.kind == "mo":
            self.stats.mo_acked += 1
        if delivery.done is not None and not delivery.done.done():
            delivery.done.set_result(status)
        self._bump()

    def _retry(self, delivery: _Delivery) -> None:
        if delivery.attempts >= _MAX_ATTEMPTS:
            log.warning("smsc-sim: giving up a %s after %d attempts", delivery.kind, _MAX_ATTEMPTS)
            if delivery.done is not None and not delivery.done.done():
                delivery.done.set_result(_S.ESME_RDELIVERYFAILURE)
            return
        self._call_later(self.config.redelivery_delay, lambda: self._dispatch(delivery))

    # --- what the carrier does with a submit ------------------------------------------------

    def _record(self, pdu: SubmitSm | DataSm, message_id: str, now: float) -> None:
        alphabet = self.config.default_alphabet
        part = part_from_pdu(pdu)
        if part is None:
            content = b"" if isinstance(pdu, DataSm) else pdu.short_message
            concat = "none"
            if not content:
                content = pdu.tlv(tlv.MESSAGE_PAYLOAD) or b""
                concat = "payload" if content else "none"
            if pdu.esm_class & GsmFeature.UDHI:
                with contextlib.suppress(UdhError):
                    content = split_udh(content)[1]
            self.messages.append(
                ReceivedMessage(
                    pdu.source_addr,
                    pdu.destination_addr,
                    _decode(content, pdu.data_coding, alphabet),
                    pdu.data_coding,
                    (message_id,),
                    concat,
                    now,
                    time.time(),
                )
            )
            return
        key = part.key
        self._part_ids.setdefault(key, []).append(message_id)
        done = self._reassembler.add(part, now)
        if done is None:
            return
        if pdu.esm_class & GsmFeature.UDHI:
            content = pdu.short_message if isinstance(pdu, SubmitSm) else b""
            concat = "udh16" if len(content) > 1 and content[1] == 0x08 else "udh8"
        else:
            concat = "sar"
        self.messages.append(
            ReceivedMessage(
                done.source,
                done.destination,
                _decode(done.payload, pdu.data_coding, alphabet),
                pdu.data_coding,
                tuple(self._part_ids.pop(key, [])),
                concat,
                now,
                time.time(),
            )
        )
        self._bump()

    def outcome_for(self, destination: str) -> Outcome:
        """The outcome for a destination: longest prefix, else the mix, else the default."""
        config = self.config
        number = destination.lstrip("+")
        best = ""
        for prefix in config.outcomes:
            if number.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        if best:
            return config.outcomes[best]
        if config.outcome_mix:
            outcomes = list(config.outcome_mix)
            weights = [config.outcome_mix[o] for o in outcomes]
            return self._random.choices(outcomes, weights)[0]
        return config.default_outcome

    def _receipt_for(
        self, pdu: SubmitSm | DataSm, number: int, connection: _Connection
    ) -> _Delivery | None:
        config = self.config
        outcome = self.outcome_for(pdu.destination_addr)
        wanted = pdu.registered_delivery & 0x03
        if outcome == "none" or wanted == 0:
            return None
        if (wanted == 2 and outcome == "DELIVRD") or (wanted == 3 and outcome != "DELIVRD"):
            return None
        receipt_id = _format_id(number, config.receipt_ids or config.message_ids, config.id_width)
        moment = datetime.now(UTC).replace(tzinfo=None)  # receipt dates are SMSC local time
        text = format_receipt(
            ReceiptText(
                message_id=receipt_id,
                submitted=1,
                delivered=1 if outcome == "DELIVRD" else 0,
                submit_date=moment,
                done_date=moment,
                stat=outcome,
                error=_ERRORS[outcome],
            )
        )
        tlvs = (
            (tlv.RECEIPTED_MESSAGE_ID(receipt_id), tlv.MESSAGE_STATE(_STATES[outcome]))
            if config.receipt_tlvs
            else ()
        )
        deliver = DeliverSm(
            source_addr_ton=pdu.dest_addr_ton,
            source_addr_npi=pdu.dest_addr_npi,
            source_addr=pdu.destination_addr[:20],
            dest_addr_ton=pdu.source_addr_ton,
            dest_addr_npi=pdu.source_addr_npi,
            destination_addr=pdu.source_addr[:20],
            esm_class=MessageType.SMSC_DELIVERY_RECEIPT,
            short_message=text.encode("latin-1"),
            tlvs=tlvs,
        )
        bind = connection.bind
        system_id = bind.system_id if bind is not None else config.system_id
        return _Delivery(deliver, "receipt", system_id, prefer=connection)

    # --- injection ---------------------------------------------------------------------------

    def unbind_all(self) -> int:
        """Send unbind to every bound client (maintenance); return how many were asked."""
        bound = [c for c in self._connections if c.session.bound]
        for connection in bound:
            connection.unbind()
        return len(bound)

    # --- injection of messages --------------------------------------------------------------

    async def send_deliver(
        self, pdu: DeliverSm, *, system_id: str | None = None, timeout: float | None = 5.0
    ) -> int:
        """Send any deliver_sm to a receiving bind; with a ``timeout``, wait for its
        acknowledgement and return its command_status (else return 0 at once)."""
        kind = "receipt" if pdu.esm_class & MessageType.SMSC_DELIVERY_RECEIPT else "raw"
        delivery = _Delivery(pdu, kind, system_id or self.config.system_id)
        if timeout is None:
            self._dispatch(delivery)
            return 0
        delivery.done = asyncio.get_running_loop().create_future()
        self._dispatch(delivery)
        return await asyncio.wait_for(delivery.done, timeout)

    async def send_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        concat: MoConcat = "udh8",
        system_id: str | None = None,
        timeout: float | None = 5.0,
    ) -> int:
        """Inject a mobile-originated message, split and tagged as ``concat`` says; return the
        number of parts. With a ``timeout``, wait until the client acknowledged every part."""
        alphabet = self.config.default_alphabet
        if analyse(text).encoding is Encoding.GSM7:
            coding = DataCoding.DEFAULT
            encode_part: Callable[[str], bytes] = (
                encode_gsm7 if alphabet == "gsm7" else lambda s: s.encode("latin-1")
            )
        else:
            coding, encode_part = DataCoding.UCS2, encode_ucs2
        parts = split_segments(text)
        self._reference = (self._reference + 1) & 0xFFFF
        ref = self._reference
        ton = Ton.INTERNATIONAL if source.startswith("+") else Ton.UNKNOWN
        base = DeliverSm(
            source_addr_ton=ton,
            source_addr_npi=1,
            source_addr=source.lstrip("+"),
            dest_addr_ton=Ton.UNKNOWN,
            dest_addr_npi=1,
            destination_addr=destination.lstrip("+"),
            data_coding=coding,
        )
        pdus: list[DeliverSm]
        total = len(parts)
        if total == 1:
            pdus = [dataclasses.replace(base, short_message=encode_part(text))]
        elif concat == "payload":
            whole = b"".join(encode_part(p) for p in parts)
            pdus = [dataclasses.replace(base, tlvs=(tlv.MESSAGE_PAYLOAD(whole),))]
        elif concat == "sar":
            pdus = [
                dataclasses.replace(
                    base,
                    short_message=encode_part(p),
                    tlvs=(
                        tlv.SAR_MSG_REF_NUM(ref),
                        tlv.SAR_TOTAL_SEGMENTS(total),
                        tlv.SAR_SEGMENT_SEQNUM(seq),
                    ),
                )
                for seq, p in enumerate(parts, 1)
            ]
        else:
            sixteen = concat == "udh16"
            pdus = [
                dataclasses.replace(
                    base,
                    esm_class=GsmFeature.UDHI,
                    short_message=concat_udh(
                        ref if sixteen else ref & 0xFF, total, seq, sixteen_bit=sixteen
                    )
                    + encode_part(p),
                )
                for seq, p in enumerate(parts, 1)
            ]
        loop = asyncio.get_running_loop()
        deliveries = [_Delivery(p, "mo", system_id or self.config.system_id) for p in pdus]
        for delivery in deliveries:
            if timeout is not None:
                delivery.done = loop.create_future()
            self._dispatch(delivery)
        if timeout is not None:
            futures = [d.done for d in deliveries if d.done is not None]
            await asyncio.wait_for(asyncio.gather(*futures), timeout)
        return len(pdus)
