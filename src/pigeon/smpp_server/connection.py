"""One customer connection: the asyncio driver over :class:`pigeon.smpp.session.Session`.

State here is per connection: the session, the login once bound, the submits being accepted
(each in its own task, answered with its own sequence number when its accept commits, so a
pipelining ESME fills whole group commits), and the deliver_sm waiting for the window or for
their response. The connection stops reading while ``max_pending_submits`` submits are being
accepted or while the peer is not reading our answers (backpressure), and writes everything
produced in one event-loop turn with one ``send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pigeon.domain.errors import Unauthorized
from pigeon.services.smpp_accounts import UNKNOWN_SYSTEM_ID, SmppLogin
from pigeon.smpp import mapping, tlv
from pigeon.smpp.codec import PduDecoder, encode, response_for
from pigeon.smpp.constants import CommandId, CommandStatus, InterfaceVersion, status_name
from pigeon.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    DataSm,
    DataSmResp,
    DeliverSm,
    Pdu,
    QuerySm,
    ReplaceSm,
    SubmitMulti,
    SubmitSm,
    SubmitSmResp,
)
from pigeon.smpp.session import (
    InvalidPdu,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    Role,
    Session,
    SessionState,
    StateChanged,
    Transmit,
    UnmatchedResponse,
)

if TYPE_CHECKING:
    from pigeon.smpp_server.server import SmppServer

log = logging.getLogger(__name__)

_S = CommandStatus
_TICK = 0.5  # period of the timer loop
_WRITE_HIGH_WATER = 1 << 20

Bind = BindTransmitter | BindReceiver | BindTransceiver
_BIND_RESPONSES: dict[
    type[Pdu], type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp]
] = {
    BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
    BindTransceiver: BindTransceiverResp,
}
_RECEIVING = (SessionState.BOUND_RX, SessionState.BOUND_TRX)


class DeliveryFailed(Exception):
    """A deliver_sm got no response: the connection ended or the response timed out."""


@dataclass(slots=True, eq=False)
class Delivery:
    """One deliver_sm for the customer, until its deliver_sm_resp (its command_status)."""

    pdu: DeliverSm
    future: asyncio.Future[int] = field(repr=False)


class Connection:
    """One TCP connection of a customer; :meth:`serve` runs it to its end."""

    def __init__(
        self, server: SmppServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        settings = server.settings
        loop = asyncio.get_running_loop()
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = str(writer.get_extra_info("peername"))
        self.session = Session(
            Role.SMSC,
            window=settings.window,
            response_timeout=settings.response_timeout,
            enquire_link_interval=settings.enquire_link_interval,
            now=loop.time(),
        )
        self.login: SmppLogin | None = None
        self.opened_at = loop.time()
        self.closed = asyncio.Event()
        self._out: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._submits = 0
        self._room = asyncio.Event()
        self._room.set()
        self._outbox: deque[Delivery] = deque()
        self._sent: dict[int, Delivery] = {}
        self._closing = False

    # --- queries ------------------------------------------------------------------------------

    @property
    def receives(self) -> bool:
        """Bound as receiver or transceiver, and not on its way out."""
        return self.session.state in _RECEIVING and not self._closing

    @property
    def busy(self) -> int:
        """deliver_sm queued or awaiting their response here."""
        return len(self._outbox) + len(self._sent)

    # --- writing ------------------------------------------------------------------------------

    def write(self, pdu: Pdu) -> None:
        """Queue ``pdu``; everything written in one loop turn leaves in one send."""
        self._out.append(encode(pdu))
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush_writes)

    def _flush_writes(self) -> None:
        frames, self._out = self._out, []
        if frames and not self.writer.is_closing():
            self.writer.write(b"".join(frames))

    def close(self) -> None:
        """Write what is queued and close the socket (the read loop then ends)."""
        self._closing = True
        self._flush_writes()
        if not self.writer.is_closing():
            self.writer.close()

    # --- the read loop --------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read, decode and handle PDUs until the peer or we end the connection."""
        loop = asyncio.get_running_loop()
        decoder = PduDecoder()
        ticking = asyncio.create_task(self._tick())
        try:
            while not self._closing:
                if not self._room.is_set():
                    await self._room.wait()
                data = await self.reader.read(65536)
                if not data:
                    break
                now = loop.time()
                for item in decoder.feed(data):
                    for event in self.session.receive(item, now):
                        self._handle(event)
                if decoder.failed:
                    log.warning("smpp: %s sent a broken frame; closing", self.peer)
                    break
                if self.session.state is SessionState.UNBOUND and not self.session.unbinding:
                    break
                transport = self.writer.transport
                if transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                    self._flush_writes()
                    await self.writer.drain()
        except (OSError, ConnectionError) as exc:
            log.info("smpp: connection %s lost: %s", self.peer, exc)
        finally:
            ticking.cancel()
            await asyncio.gather(ticking, return_exceptions=True)
            await self._finish_submits(self.server.settings.unbind_grace * 5)
            self._ended()
            self.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)
            self.closed.set()

    async def _finish_submits(self, seconds: float) -> None:
        # Submits being accepted are answered if the socket still takes it; their messages are
        # accepted whatever happens to the connection.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)

    def _ended(self) -> None:
        self.session.close()
        left = [*self._sent.values(), *self._outbox]
        self._sent.clear()
        self._outbox.clear()
        for delivery in left:
            if not delivery.future.done():
                delivery.future.set_exception(DeliveryFailed("the connection ended"))
        self.server.unregister(self)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.server.settings
        while True:
            # A fixed tick: timeouts of tens of seconds need no finer grain, and an overdue
            # keep-alive deadline (an enquire_link in flight) must not make it spin.
            await asyncio.sleep(_TICK)
            now = loop.time()
            for late in self.session.expired(now):
                request = late.request
                if request.command_id in (CommandId.ENQUIRE_LINK, CommandId.UNBIND):
                    log.info(
                        "smpp: %s did not answer %s; closing", self.peer, type(request).__name__
                    )
                    self.close()
                    return
                delivery = self._sent.pop(request.sequence_number, None)
                if delivery is not None and not delivery.future.done():
                    delivery.future.set_exception(DeliveryFailed("no deliver_sm_resp in time"))
            unbound = not self.session.bound and self.login is None
            if unbound and now - self.opened_at > settings.bind_timeout:
                log.info("smpp: %s did not bind in time; closing", self.peer)
                self.close()
                return
            if self.session.keepalive_due(now) and self.session.may_send(CommandId.ENQUIRE_LINK):
                self.write(self.session.enquire_link(now))
            self.flush()

    # --- events ---------------------------------------------------------------------------------

    def _handle(self, event: object) -> None:
        if isinstance(event, Transmit):
            self.write(event.pdu)
        elif isinstance(event, RequestReceived):
            self._request(event.pdu)
        elif isinstance(event, ResponseReceived):
            delivery = self._sent.pop(event.request.sequence_number, None)
            if delivery is not None and not delivery.future.done():
                delivery.future.set_result(event.response.command_status)
            self.flush()
        elif isinstance(event, InvalidPdu):
            log.info("smpp: %s sent an undecodable PDU: %s", self.peer, event.error.reason)
            if event.request is not None:
                delivery = self._sent.pop(event.request.sequence_number, None)
                if delivery is not None and not delivery.future.done():
                    delivery.future.set_result(_S.ESME_RSYSERR)
        elif isinstance(event, RequestRejected):
            log.info(
                "smpp: %s: %s refused (%s)",
                self.peer,
                type(event.pdu).__name__,
                status_name(event.status),
            )
        elif isinstance(event, UnmatchedResponse):
            log.debug("smpp: %s: unmatched %s", self.peer, type(event.pdu).__name__)
        elif isinstance(event, StateChanged) and event.new is SessionState.UNBOUND:
            log.info("smpp: %s unbound", self.peer)

    def _request(self, pdu: Pdu) -> None:
        if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            self._spawn(self._bind(pdu))
        elif isinstance(pdu, SubmitSm | DataSm | SubmitMulti):
            self._on_submit(pdu)
        elif isinstance(pdu, QuerySm):
            self._spawn(self._query(pdu))
        elif isinstance(pdu, CancelSm):
            # Canceling needs the dispatch use case to learn it; until then we say it failed.
            self.respond(response_for(pdu, _S.ESME_RCANCELFAIL))
        elif isinstance(pdu, ReplaceSm):
            self.respond(response_for(pdu, _S.ESME_RREPLACEFAIL))
        else:
            self.respond(response_for(pdu, _S.ESME_RINVCMDID))

    def respond(self, pdu: Pdu) -> None:
        """Answer a request of the peer (if the connection is still there to take it)."""
        if self.session.state is SessionState.CLOSED:
            return
        self.write(self.session.respond(pdu))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- binds ----------------------------------------------------------------------------------

    async def _bind(self, pdu: Bind) -> None:
        server = self.server
        status: int = _S.ESME_ROK
        login: SmppLogin | None = None
        try:
            login = await server.services.authenticate(pdu.system_id, pdu.password)
        except Unauthorized as exc:
            status = _S.ESME_RINVSYSID if exc.code == UNKNOWN_SYSTEM_ID else _S.ESME_RINVPASWD
        except Exception:
            log.exception("smpp: checking the bind of %r failed", pdu.system_id)
            status = _S.ESME_RSYSERR
        if login is not None and (self._closing or self.session.state is SessionState.CLOSED):
            return  # the peer left while its password was being checked
        if login is not None:
            if server.stopping:
                status = _S.ESME_RSYSERR
            elif not server.register(self, login):
                # 3.4 has no "too many binds" status (ESME_RALYBND means *this* session is
                # bound already): ESME_RBINDFAIL is what SMSCs answer.
                status = _S.ESME_RBINDFAIL
        ok = status == _S.ESME_ROK
        response = _BIND_RESPONSES[type(pdu)](
            sequence_number=pdu.sequence_number,
            command_status=status,
            system_id=server.settings.system_id if ok else "",
            tlvs=(tlv.SC_INTERFACE_VERSION(InterfaceVersion.V34),) if ok else (),
        )
        self.respond(response)
        if not ok:
            log.info(
                "smpp: %s: bind as %r refused (%s)",
                self.peer,
                pdu.system_id,
                status_name(status),
            )
            self.close()
            return
        assert login is not None
        self.login = login
        log.info(
            "smpp: %s bound as %s (%s, tenant %s)",
            self.peer,
            login.account.system_id,
            self.session.state.value,
            login.account.tenant_id,
        )
        if self.session.state in _RECEIVING:
            await server.receiver_bound(login)

    # --- submits --------------------------------------------------------------------------------

    def _on_submit(self, pdu: SubmitSm | DataSm | SubmitMulti) -> None:
        login = self.login
        server = self.server
        if login is None or server.stopping:
            self.respond(response_for(pdu, _S.ESME_RSYSERR))
            return
        if not server.admit(login.account, asyncio.get_running_loop().time()):
            self.respond(response_for(pdu, _S.ESME_RTHROTTLED))
            return
        self._submits += 1
        if self._submits >= server.settings.max_pending_submits:
            self._room.clear()
        self._spawn(self._submit(login, pdu))

    async def _submit(self, login: SmppLogin, pdu: SubmitSm | DataSm | SubmitMulti) -> None:
        try:
            if isinstance(pdu, SubmitMulti):
                self.respond(await self.server.submit_multi(login, pdu))
                return
            status: int = _S.ESME_ROK
            message_id = ""
            try:
                message_id = await self.server.submit(login, pdu)
            except Exception as exc:
                status = mapping.status_for(exc)
                if status == _S.ESME_RSYSERR:
                    log.exception("smpp: accepting a submit of %s failed", login.account.system_id)
                else:
                    log.debug("smpp: submit refused (%s): %s", status_name(status), exc)
            answer: Pdu
            if isinstance(pdu, DataSm):
                answer = DataSmResp(
                    sequence_number=pdu.sequence_number,
                    command_status=status,
                    message_id=message_id,
                )
            else:
                answer = SubmitSmResp(
                    sequence_number=pdu.sequence_number,
                    command_status=status,
                    message_id=message_id,
                )
            self.respond(answer)
        finally:
            self._submits -= 1
            if self._submits < self.server.settings.max_pending_submits:
                self._room.set()

    async def _query(self, pdu: QuerySm) -> None:
        login = self.login
        if login is None:
            self.respond(response_for(pdu, _S.ESME_RINVBNDSTS))
            return
        try:
            answer = await self.server.query(login, pdu)
        except Exception:
            log.exception("smpp: query_sm failed")
            answer = response_for(pdu, _S.ESME_RSYSERR)
        self.respond(answer)

    # --- deliveries -----------------------------------------------------------------------------

    def deliver(self, pdus: list[DeliverSm]) -> list[asyncio.Future[int]]:
        """Queue deliver_sm for the window; each future gets its response's command_status
        (or :class:`DeliveryFailed`)."""
        loop = asyncio.get_running_loop()
        futures = []
        for pdu in pdus:
            delivery = Delivery(pdu, loop.create_future())
            self._outbox.append(delivery)
            futures.append(delivery.future)
        self.flush()
        return futures

    def flush(self) -> None:
        """Send queued deliver_sm while the window has room."""
        session = self.session
        now = asyncio.get_running_loop().time()
        while self._outbox and session.can_send(CommandId.DELIVER_SM) and not self._closing:
            delivery = self._outbox.popleft()
            if delivery.future.done():  # its job gave up waiting
                continue
            pdu = session.send_request(delivery.pdu, now)
            self._sent[pdu.sequence_number] = delivery
            self.write(pdu)

    # --- shutdown -------------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> None:
        """Let submits being accepted finish, unbind, and close (within a few ``grace``)."""
        await self._finish_submits(grace * 5)
        session = self.session
        if session.bound and not session.unbinding and not self._closing:
            self.write(session.unbind(asyncio.get_running_loop().time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), grace)
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), grace)
