"""One bind to a carrier: a TCP connection and its SMPP session, kept up until stopped.

A :class:`SmppLink` is the asyncio driver over :class:`pigeon.smpp.session.Session` for one
connection (uvicorn-over-h11 style: the session decides, the link moves bytes and time).
Its supervisor task connects, binds, serves, and on any loss reconnects after a backoff
(doubling from ``reconnect_min_delay`` to ``reconnect_max_delay``, with jitter; reset by a
successful bind). While bound it:

* writes requests given to :meth:`request` and resolves them with their response, a
  :class:`ResponseTimeout` after ``response_timeout`` or :class:`ConnectionLost`;
* hands the deliver_sm / data_sm of each read from the socket to the ``inbound`` handler
  together, and answers them only after it returned (its statuses are the answers'
  command_status), so a crash before that makes the carrier resend;
* sends enquire_link after ``enquire_link_interval`` of silence, and drops the connection
  after ``unhealthy_after_timeouts`` consecutive response timeouts.

State is per link: ``busy`` counts the window slots reserved by the connector (a slot is
reserved before the submit is written and freed when its answer is in), ``paused_until`` is
set when the carrier throttles.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from enum import Enum

from pigeon.connectors.smpp_settings import SmppConnectorSettings
from pigeon.smpp.codec import PduDecoder, encode, response_for
from pigeon.smpp.constants import CommandId, CommandStatus, status_name
from pigeon.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    Pdu,
)
from pigeon.smpp.session import (
    InvalidPdu,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    Role,
    Session,
    SessionError,
    SessionState,
    StateChanged,
    Transmit,
    UnmatchedResponse,
)

__all__ = [
    "BindRejected",
    "ConnectionLost",
    "LinkError",
    "LinkMode",
    "NotSent",
    "ResponseTimeout",
    "SmppLink",
]

log = logging.getLogger(__name__)

_TICK = 0.25  # longest sleep of the timer loop: bounds how late a timeout is noticed
_WRITE_HIGH_WATER = 1 << 20
_jitter = random.Random()  # noqa: S311 - reconnect jitter, not a secret


class LinkMode(Enum):
    """What a link binds as."""

    TRX = "trx"
    TX = "tx"
    RX = "rx"


class LinkError(Exception):
    """A request could not be completed on this link."""


class NotSent(LinkError):
    """The request never left: the link is not bound (any more). Safe to retry elsewhere."""


class ResponseTimeout(LinkError):
    """No response within ``response_timeout``: the carrier may or may not have it."""


class ConnectionLost(LinkError):
    """The connection ended before the response came: the carrier may or may not have it."""


class BindRejected(LinkError):
    """The carrier refused our bind (wrong password, unknown system_id...)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused with {status_name(status)} (0x{status:08X})")
        self.status = status


InboundHandler = Callable[["SmppLink", list[DeliverSm | DataSm]], Awaitable[list[int]]]
"""Handles the deliver_sm / data_sm that arrived together (in one read from the socket);
returns, for each in order, the command_status to answer it with."""


class SmppLink:
    """One connection to the carrier, bound as ``mode``; see the module docstring."""

    def __init__(
        self,
        settings: SmppConnectorSettings,
        mode: LinkMode,
        index: int,
        inbound: InboundHandler,
        on_change: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        self.mode = mode
        self.name = f"{settings.id}/{mode.value}{index}"
        self._inbound = inbound
        self._on_change = on_change  # True: bind state changed; False: a slot was freed
        self.session: Session | None = None
        self.busy = 0
        self.paused_until = 0.0
        self._pause = settings.throttle_pause_min
        self.timeouts = 0
        self.binds = 0
        self.last_error: str | None = None
        self.attempted = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        #: The loop of the latest connection, which serves every request and write on it:
        #: kept to save asking ``asyncio.get_running_loop()`` (a ``getpid`` system call each
        #: time on Python 3.11) three times per submit.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._futures: dict[int, asyncio.Future[Pdu]] = {}
        self._task: asyncio.Task[None] | None = None
        self._serving = False
        self._stopping = False
        self._inbound_tasks: set[asyncio.Task[None]] = set()
        #: The deliver_sm / data_sm of the read being handled, answered together after it.
        self._arrived: list[DeliverSm | DataSm] = []
        self._idle: asyncio.Event | None = None
        self._outbox: list[bytes] = []

    # --- state ------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping

    def _stop_requested(self) -> bool:
        return self._stopping

    @property
    def tx_capable(self) -> bool:
        """True if this link submits (transceiver or transmitter)."""
        return self.mode is not LinkMode.RX

    @property
    def bound(self) -> bool:
        """True while bound and not stopping or unbinding."""
        session, writer = self.session, self._writer
        return (
            session is not None
            and session.bound
            and not session.unbinding
            and not self._stopping
            and writer is not None
            and not writer.is_closing()
        )

    def can_take(self, now: float) -> bool:
        """True if a submit may be reserved here now: bound, window room, not paused."""
        session = self.session
        return (
            self.tx_capable
            and self.bound
            and session is not None
            and self.busy < self.settings.window
            and session.can_send(CommandId.SUBMIT_SM)
            and now >= self.paused_until
        )

    def release(self) -> None:
        """Free a window slot reserved by the connector."""
        self.busy -= 1
        self._on_change(False)
        self._check_idle()

    def _check_idle(self, _: object = None) -> None:
        idle = self._idle
        if idle is not None and self.busy <= 0 and not self._inbound_tasks:
            idle.set()

    async def _drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for our submits in flight and the receipts being handled."""
        idle = self._idle = asyncio.Event()
        self._check_idle()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), timeout)
        self._idle = None

    def throttled(self, now: float) -> None:
        """The carrier asked us to slow down: pause this bind, longer each time in a row."""
        if now >= self.paused_until:
            self.paused_until = now + self._pause
            log.warning("%s: carrier throttling, pausing submits for %.2fs", self.name, self._pause)
            self._pause = min(self._pause * 2, self.settings.throttle_pause_max)
        self._on_change(True)

    def accepted(self) -> None:
        """A submit went through: the next throttling starts from the shortest pause again."""
        self._pause = self.settings.throttle_pause_min

    def drop(self) -> None:
        """Close the connection (the supervisor then reconnects and binds again)."""
        writer = self._writer
        if writer is not None:
            self._flush()
            writer.close()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor task (connect, bind, serve, reconnect)."""
        self._stopping = False
        self._task = asyncio.create_task(self._supervise(), name=f"smpp-link {self.name}")

    async def stop(self) -> None:
        """Drain, unbind, wait briefly for unbind_resp, close; then end the supervisor."""
        self._stopping = True
        self._on_change(True)
        loop = asyncio.get_running_loop()
        session = self.session
        settings = self.settings
        if session is not None and session.bound:
            await self._drain(settings.drain_timeout)
            if session.state is not SessionState.CLOSED and session.bound:
                with contextlib.suppress(SessionError, LinkError, TimeoutError):
                    unbind = session.unbind(loop.time())
                    future = self._register(unbind)
                    self._write(unbind)
                    await asyncio.wait_for(future, settings.unbind_timeout)
        writer = self._writer
        if writer is not None:
            self._flush()
            writer.close()
        task = self._task
        if task is not None:
            if not self._serving:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._task = None
        for inbound in list(self._inbound_tasks):
            inbound.cancel()
        if self._inbound_tasks:
            await asyncio.gather(*self._inbound_tasks, return_exceptions=True)

    async def _supervise(self) -> None:
        settings = self.settings
        delay = settings.reconnect_min_delay
        while not self.stopping:
            bound_before = self.binds
            try:
                await self._connect_and_serve()
            except BindRejected as exc:
                self.last_error = str(exc)
                log.error(
                    "%s: the carrier refused the bind of system_id %r at %s:%s: %s",
                    self.name,
                    settings.system_id,
                    settings.host,
                    settings.port,
                    exc,
                )
            except (OSError, TimeoutError, LinkError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "%s: connection to %s:%s failed: %s",
                    self.name,
                    settings.host,
                    settings.port,
                    self.last_error,
                )
            finally:
                self.attempted.set()
                self._on_change(True)
            if self._stop_requested():  # stop() may have run while we were serving
                break
            if self.binds > bound_before:
                delay = settings.reconnect_min_delay
            wait = delay * _jitter.uniform(0.8, 1.2)
            log.info("%s: reconnecting in %.2fs", self.name, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, settings.reconnect_max_delay)

    def _bind_pdu(self) -> Pdu:
        settings = self.settings
        cls = {
            LinkMode.TRX: BindTransceiver,
            LinkMode.TX: BindTransmitter,
            LinkMode.RX: BindReceiver,
        }[self.mode]
        return cls(
            system_id=settings.system_id,
            password=settings.password,
            system_type=settings.system_type,
        )

    async def _connect_and_serve(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(settings.host, settings.port), settings.connect_timeout
        )
        self._serving = True
        session = Session(
            Role.ESME,
            window=settings.window,
            response_timeout=settings.response_timeout,
            enquire_link_interval=settings.enquire_link_interval,
            now=loop.time(),
        )
        self._writer = writer
        self._loop = loop
        self.session = session
        self._futures = {}
        self._outbox = []
        self._arrived = []  # nothing of a lost connection is answered on this one
        closed = asyncio.Event()
        reading = asyncio.create_task(self._read(reader, session, closed))
        ticking = asyncio.create_task(self._tick(session, writer))
        try:
            response = await self.request(self._bind_pdu())
            if response.command_status != CommandStatus.ESME_ROK:
                raise BindRejected(response.command_status)
            self.binds += 1
            self.timeouts = 0
            self.last_error = None
            log.info("%s: bound to %s:%s", self.name, settings.host, settings.port)
            self._on_change(True)
            await closed.wait()
            if self._stop_requested():
                log.info("%s: connection closed", self.name)
            else:
                log.warning("%s: connection lost", self.name)
        finally:
            ticking.cancel()
            self._flush()
            writer.close()
            await asyncio.gather(reading, ticking, return_exceptions=True)
            self._fail_all(ConnectionLost("connection closed"))
            session.close()
            if self.session is session:
                self.session = None
                self._writer = None
            self._serving = False
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            self._on_change(True)

    # --- requests ---------------------------------------------------------------------------

    def _register(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        future: asyncio.Future[Pdu] = (self._loop or asyncio.get_running_loop()).create_future()
        self._futures[pdu.sequence_number] = future
        return future

    def _write(self, pdu: Pdu) -> None:
        self._send(encode(pdu))

    def _send(self, frame: bytes) -> None:
        # Frames written in one event-loop turn go out in one send(): under load a burst of
        # responses frees many window slots at once, and a syscall per PDU would dominate.
        self._outbox.append(frame)
        if len(self._outbox) == 1:
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def _flush(self) -> None:
        frames = self._outbox
        if not frames:
            return
        self._outbox = []
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(b"".join(frames))

    async def request(self, pdu: Pdu | Callable[[int], Pdu]) -> Pdu:
        """Send a request and return its response (which may carry an error status).

        ``pdu`` is the request, or a function building it from its sequence number.

        Raises :class:`NotSent` if it could not be written, :class:`ResponseTimeout` or
        :class:`ConnectionLost` if it was written but no response came, ``ValueError`` (before
        anything is sent) if a field breaks the specification.
        """
        future = self.start_request(pdu)
        writer = self._writer
        if writer is not None and writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        return await future

    @property
    def congested(self) -> bool:
        """True while more is waiting to be written to the carrier than the socket takes."""
        writer = self._writer
        return writer is None or writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER

    def start_request(self, pdu: Pdu | Callable[[int], Pdu]) -> asyncio.Future[Pdu]:
        """``request`` up to the wait: the request is written (in this turn of the loop) and
        the future of its response returned. It ends as ``request`` returns or raises, but for
        :class:`NotSent` and ``ValueError``, which are raised here."""
        session, writer = self.session, self._writer
        if session is None or writer is None or writer.is_closing():
            raise NotSent(f"{self.name} is not connected")
        if isinstance(pdu, Pdu):
            pdu = dataclasses.replace(pdu, sequence_number=session.next_sequence())
        else:
            pdu = pdu(session.next_sequence())
        frame = encode(pdu)  # ValueError for a field the spec forbids, before registering
        try:
            session.send_request(pdu, (self._loop or asyncio.get_running_loop()).time())
        except SessionError as exc:
            raise NotSent(f"{self.name}: {exc}") from None
        future = self._register(pdu)
        self._send(frame)
        return future

    def _fail_all(self, error: LinkError) -> None:
        futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(error)

    # --- connection loops -------------------------------------------------------------------

    async def _read(
        self, reader: asyncio.StreamReader, session: Session, closed: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        decoder = PduDecoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                now = loop.time()
                for item in decoder.feed(data):
                    for event in session.receive(item, now):
                        self._handle(event, session)
                if self._arrived:
                    self._answer_arrived(session)
                if decoder.failed or session.state is SessionState.UNBOUND:
                    break
        except (OSError, ConnectionError) as exc:
            log.warning("%s: read failed: %s", self.name, exc)
        finally:
            session.close()  # not bound from now on, before anyone hears of the loss
            closed.set()
            self._fail_all(ConnectionLost("connection closed"))
            self._on_change(True)

    def _handle(self, event: object, session: Session) -> None:
        if isinstance(event, Transmit):
            self._write(event.pdu)
        elif isinstance(event, ResponseReceived):
            self.timeouts = 0
            future = self._futures.pop(event.response.sequence_number, None)
            if future is not None and not future.done():
                # Its submitter releases the reservation next, which frees the slot (and
                # wakes one waiter) then: waking one now would wake two for one slot.
                future.set_result(event.response)
            elif event.request.command_id == CommandId.SUBMIT_SM:
                # No one waits for this answer (its wait ended, and released the slot's
                # reservation then): the session's window slot it held frees only now.
                self._on_change(False)
        elif isinstance(event, RequestReceived):
            pdu = event.pdu
            if isinstance(pdu, DeliverSm | DataSm):
                self._arrived.append(pdu)
            else:
                log.info("%s: ignoring %s from the carrier", self.name, type(pdu).__name__)
        elif isinstance(event, UnmatchedResponse):
            log.info(
                "%s: late or unknown response %s seq=%d",
                self.name,
                type(event.pdu).__name__,
                event.pdu.sequence_number,
            )
        elif isinstance(event, RequestRejected):
            log.warning(
                "%s: refused %s from the carrier with %s",
                self.name,
                type(event.pdu).__name__,
                status_name(event.status),
            )
        elif isinstance(event, InvalidPdu):
            log.warning("%s: undecodable frame: %s", self.name, event.error.reason)
            if event.request is not None:
                future = self._futures.pop(event.request.sequence_number, None)
                if future is not None and not future.done():
                    future.set_exception(
                        ConnectionLost(f"malformed response: {event.error.reason}")
                    )
        elif isinstance(event, StateChanged):
            log.info("%s: session %s -> %s", self.name, event.old.value, event.new.value)
            self._on_change(True)

    def _answer_arrived(self, session: Session) -> None:
        """Hand the deliver_sm / data_sm of this read to the inbound handler, all in one task
        (a burst of receipts from the carrier is one batch for the store, not a task each)."""
        arrived, self._arrived = self._arrived, []
        task = asyncio.create_task(self._answer(session, arrived))
        self._inbound_tasks.add(task)
        task.add_done_callback(self._inbound_tasks.discard)
        task.add_done_callback(self._check_idle)

    async def _answer(self, session: Session, pdus: list[DeliverSm | DataSm]) -> None:
        try:
            statuses = await self._inbound(self, pdus)
            if len(statuses) != len(pdus):
                raise RuntimeError(f"{len(statuses)} answers for {len(pdus)} PDUs")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: handling %d PDUs from the carrier failed", self.name, len(pdus))
            statuses = [CommandStatus.ESME_RX_T_APPN] * len(pdus)
        if self.session is not session or session.state is SessionState.CLOSED:
            log.info(
                "%s: connection gone before answering %d PDUs (from seq=%d); the carrier "
                "will resend them",
                self.name,
                len(pdus),
                pdus[0].sequence_number,
            )
            return
        for pdu, status in zip(pdus, statuses, strict=True):
            self._write(session.respond(response_for(pdu, status)))

    async def _tick(self, session: Session, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        limit = self.settings.unhealthy_after_timeouts
        while True:
            now = loop.time()
            for late in session.expired(now):
                request = late.request
                self.timeouts += 1
                log.warning(
                    "%s: no response to %s seq=%d within %.1fs (%d in a row)",
                    self.name,
                    type(request).__name__,
                    request.sequence_number,
                    session.response_timeout,
                    self.timeouts,
                )
                future = self._futures.pop(request.sequence_number, None)
                if future is not None and not future.done():
                    # Its submitter releases the reservation next, and wakes one waiter.
                    future.set_exception(
                        ResponseTimeout(f"no response within {session.response_timeout}s")
                    )
                elif request.command_id == CommandId.SUBMIT_SM:
                    self._on_change(False)
            if self.timeouts >= limit:
                log.error(
                    "%s: %d responses in a row timed out; dropping the connection",
                    self.name,
                    self.timeouts,
                )
                self.timeouts = 0
                writer.close()
                return
            if session.keepalive_due(now):
                self._write(session.enquire_link(now))
            deadline = session.next_deadline()
            wait = _TICK if deadline is None else min(max(deadline - now, 0.005), _TICK)
            await asyncio.sleep(wait)
