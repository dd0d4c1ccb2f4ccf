"""The SMPP session state machine (SMPP 3.4, section 2), with no I/O.

A :class:`Session` is one connection's protocol state, for either side: ``Role.ESME`` (we
bind to a carrier) or ``Role.SMSC`` (customers bind to us). The driver owns the socket and
the clock and does three things:

* every decoded frame goes to :meth:`Session.receive`, which returns events; a
  :class:`Transmit` event is a PDU the session answered on its own (enquire_link_resp,
  unbind_resp, generic_nack, ``ESME_RINVBNDSTS``...) and must be written out;
* every request we originate goes through :meth:`Session.send_request`, which checks the
  state and the window and stamps a sequence number; every answer to a request we received
  goes through :meth:`Session.respond`;
* on a timer it calls :meth:`Session.expired` (requests without a response in time) and
  :meth:`Session.keepalive_due` (time to send enquire_link); :meth:`Session.next_deadline`
  says when to wake up next.

Incoming requests that the state does not allow are answered by the session with
``ESME_RINVBNDSTS`` (``ESME_RALYBND`` for a second bind). Local misuse (sending what the state
forbids, a full window) raises :class:`SessionError`: that is a bug in the caller.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from pigeon.domain.value_objects import value_object
from pigeon.smpp.codec import DecodeError, DecodeResult, response_for
from pigeon.smpp.constants import RESPONSE_BIT, CommandId, CommandStatus
from pigeon.smpp.pdu import EnquireLink, EnquireLinkResp, Pdu, Unbind, UnbindResp

__all__ = [
    "MAX_SEQUENCE",
    "Event",
    "InvalidPdu",
    "Outstanding",
    "RequestReceived",
    "RequestRejected",
    "ResponseReceived",
    "Role",
    "Session",
    "SessionError",
    "SessionState",
    "StateChanged",
    "Transmit",
    "UnmatchedResponse",
    "WindowFullError",
]

MAX_SEQUENCE = 0x7FFFFFFF


class SessionState(Enum):
    """Session states of SMPP 3.4, 2.2 (UNBOUND: unbind done, waiting for the close)."""

    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


class Role(Enum):
    """Which end of the connection this session is."""

    ESME = "esme"
    SMSC = "smsc"


class SessionError(Exception):
    """The caller asked for something the session state does not allow."""


class WindowFullError(SessionError):
    """As many requests as the window allows are awaiting a response."""


_S = SessionState
_C = CommandId
_BOUND = (_S.BOUND_TX, _S.BOUND_RX, _S.BOUND_TRX)
_BINDS: dict[int, SessionState] = {
    _C.BIND_TRANSMITTER: _S.BOUND_TX,
    _C.BIND_RECEIVER: _S.BOUND_RX,
    _C.BIND_TRANSCEIVER: _S.BOUND_TRX,
}
_NO_RESPONSE = frozenset({_C.OUTBIND, _C.ALERT_NOTIFICATION})
_UNWINDOWED = frozenset({_C.ENQUIRE_LINK, _C.UNBIND})

# Requests each side may originate in each state (SMPP 3.4, 2.3, table 2-1). enquire_link is
# also accepted in OPEN, as SMPP 5.0 allows and several peers do.
_ESME_TX = frozenset(
    {_C.SUBMIT_SM, _C.SUBMIT_MULTI, _C.DATA_SM, _C.QUERY_SM, _C.CANCEL_SM, _C.REPLACE_SM}
)
_SMSC_RX = frozenset({_C.DELIVER_SM, _C.DATA_SM, _C.ALERT_NOTIFICATION})
_KEEP = frozenset({_C.ENQUIRE_LINK, _C.UNBIND})
_ESME_SENDS: dict[SessionState, frozenset[int]] = {
    _S.OPEN: frozenset({*_BINDS, _C.ENQUIRE_LINK}),
    _S.BOUND_TX: _ESME_TX | _KEEP,
    _S.BOUND_RX: _KEEP,
    _S.BOUND_TRX: _ESME_TX | _KEEP,
    _S.UNBOUND: frozenset(),
    _S.CLOSED: frozenset(),
}
_SMSC_SENDS: dict[SessionState, frozenset[int]] = {
    _S.OPEN: frozenset({_C.OUTBIND, _C.ENQUIRE_LINK}),
    _S.BOUND_TX: _KEEP,
    _S.BOUND_RX: _SMSC_RX | _KEEP,
    _S.BOUND_TRX: _SMSC_RX | _KEEP,
    _S.UNBOUND: frozenset(),
    _S.CLOSED: frozenset(),
}


# --- events -------------------------------------------------------------------------------


@value_object
class Transmit:
    """Write this PDU to the peer (the session answered on its own)."""

    pdu: Pdu


@value_object
class RequestReceived:
    """A request for the application. Answer it with :meth:`Session.respond`.

    outbind and alert_notification have no response: just act on them.
    """

    pdu: Pdu


@value_object
class ResponseReceived:
    """The response (or generic_nack) to one of our requests, ``elapsed`` seconds after it."""

    request: Pdu
    response: Pdu
    elapsed: float


@dataclass(slots=True, frozen=True)
class UnmatchedResponse:
    """A response to no outstanding request (late after a timeout, or a peer bug)."""

    pdu: Pdu


@dataclass(slots=True, frozen=True)
class RequestRejected:
    """The session refused a request the state does not allow (the answer is transmitted)."""

    pdu: Pdu
    status: int


@dataclass(slots=True, frozen=True)
class InvalidPdu:
    """A frame that did not decode. If ``error.fatal``, close the connection after writing.

    ``request`` is set when the frame was a malformed response to one of our requests: that
    request is over, with an unusable answer.
    """

    error: DecodeError
    request: Pdu | None = None


@dataclass(slots=True, frozen=True)
class StateChanged:
    """The session moved from ``old`` to ``new``."""

    old: SessionState
    new: SessionState


Event: TypeAlias = (
    Transmit
    | RequestReceived
    | ResponseReceived
    | UnmatchedResponse
    | RequestRejected
    | InvalidPdu
    | StateChanged
)


@value_object
class Outstanding:
    """One of our requests awaiting its response."""

    request: Pdu
    sent_at: float
    deadline: float


# --- the state machine ----------------------------------------------------------------------


class Session:
    """Protocol state of one SMPP connection; see the module docstring for the driver loop.

    ``window`` bounds our requests awaiting a response (enquire_link and unbind are exempt,
    so the keep-alive still flows when the window is full). ``response_timeout`` is the time
    a request may wait for its response. ``enquire_link_interval`` is the silence after which
    :meth:`keepalive_due` turns true (None disables it).
    """

    def __init__(
        self,
        role: Role,
        *,
        window: int = 10,
        response_timeout: float = 30.0,
        enquire_link_interval: float | None = 30.0,
        now: float = 0.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.role = role
        self.state = SessionState.OPEN
        self.window = window
        self.response_timeout = response_timeout
        self.enquire_link_interval = enquire_link_interval
        self._sends = _ESME_SENDS if role is Role.ESME else _SMSC_SENDS
        self._receives = _SMSC_SENDS if role is Role.ESME else _ESME_SENDS
        self._next_sequence = 1
        self._outstanding: dict[int, Outstanding] = {}
        self._windowed = 0  # outstanding requests that count against the window
        self._inbound: set[int] = set()  # sequence numbers of requests we must answer
        self._bind: Pdu | None = None  # the bind in progress (ours as ESME, theirs as SMSC)
        self._unbinding = False
        self._last_received = now

    # --- queries ---------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        """True in BOUND_TX, BOUND_RX or BOUND_TRX."""
        return self.state in _BOUND

    @property
    def unbinding(self) -> bool:
        """True after we sent unbind, until its response."""
        return self._unbinding

    @property
    def in_flight(self) -> int:
        """Our requests awaiting a response."""
        return len(self._outstanding)

    @property
    def inbound_pending(self) -> int:
        """Requests we received and have not answered yet."""
        return len(self._inbound)

    def outstanding(self) -> list[Outstanding]:
        """Our requests awaiting a response, oldest first."""
        return list(self._outstanding.values())

    def may_send(self, command_id: int) -> bool:
        """True if this side may originate ``command_id`` in the current state."""
        if self._unbinding:
            return False
        return command_id in self._sends[self.state]

    def can_send(self, command_id: int | None = None) -> bool:
        """True if a request may go now: state allows it and the window has room.

        ``command_id`` defaults to the role's message command (submit_sm for an ESME,
        deliver_sm for an SMSC).
        """
        if command_id is None:
            command_id = _C.SUBMIT_SM if self.role is Role.ESME else _C.DELIVER_SM
        if not self.may_send(command_id):
            return False
        return command_id in _UNWINDOWED or self._windowed < self.window

    # --- sending ---------------------------------------------------------------------------

    def next_sequence(self) -> int:
        """Allocate a sequence number: 1..0x7FFFFFFF, wrapping, skipping ones in flight."""
        for _ in range(len(self._outstanding) + 1):
            seq = self._next_sequence
            self._next_sequence = 1 if seq >= MAX_SEQUENCE else seq + 1
            if seq not in self._outstanding:
                return seq
        raise SessionError("no free sequence number")  # pragma: no cover - needs 2**31 in flight

    def send_request(self, pdu: Pdu, now: float, *, timeout: float | None = None) -> Pdu:
        """Register a request we are about to write; returns it with its sequence number.

        A ``sequence_number`` of 0 is replaced by a fresh one. Raises :class:`SessionError` if
        the state does not allow the request, :class:`WindowFullError` if the window is full.
        """
        if pdu.is_response:
            raise SessionError(f"{type(pdu).__name__} is a response: use respond()")
        cid = pdu.command_id
        if self.state is SessionState.CLOSED:
            raise SessionError("the session is closed")
        if not self.may_send(cid):
            raise SessionError(
                f"{type(pdu).__name__} not allowed for {self.role.name} in {self.state.name}"
                + (" while unbinding" if self._unbinding else "")
            )
        if cid in _BINDS and self._bind is not None:
            raise SessionError("a bind is already in progress")
        if cid not in _UNWINDOWED and self._windowed >= self.window:
            raise WindowFullError(f"{self._windowed} requests in flight, window is {self.window}")
        seq = pdu.sequence_number
        if seq == 0:
            pdu = dataclasses.replace(pdu, sequence_number=self.next_sequence())
        elif seq in self._outstanding:
            raise SessionError(f"sequence number {seq} is already in flight")
        if cid in _NO_RESPONSE:
            return pdu
        wait = self.response_timeout if timeout is None else timeout
        self._outstanding[pdu.sequence_number] = Outstanding(pdu, now, now + wait)
        if cid not in _UNWINDOWED:
            self._windowed += 1
        if cid in _BINDS:
            self._bind = pdu
        elif cid == _C.UNBIND:
            self._unbinding = True
        return pdu

    def enquire_link(self, now: float) -> Pdu:
        """Register and return an enquire_link to write (see :meth:`keepalive_due`)."""
        return self.send_request(EnquireLink(), now)

    def unbind(self, now: float) -> Pdu:
        """Register and return an unbind to write; no new requests are allowed after it."""
        return self.send_request(Unbind(), now)

    def respond(self, pdu: Pdu) -> Pdu:
        """Register our answer to a received request; returns it, to write.

        For an SMSC, answering a bind with ESME_ROK binds the session.
        """
        if not pdu.is_response:
            raise SessionError(f"{type(pdu).__name__} is a request: use send_request()")
        if self.state is SessionState.CLOSED:
            raise SessionError("the session is closed")
        seq = pdu.sequence_number
        if seq not in self._inbound:
            raise SessionError(f"no received request awaits an answer with sequence {seq}")
        self._inbound.discard(seq)
        bind = self._bind
        if self.role is Role.SMSC and bind is not None and bind.sequence_number == seq:
            self._bind = None
            if pdu.command_status == CommandStatus.ESME_ROK and pdu.command_id != _C.GENERIC_NACK:
                self.state = _BINDS[bind.command_id]
        return pdu

    # --- receiving -------------------------------------------------------------------------

    def receive(self, item: DecodeResult, now: float) -> list[Event]:
        """Take one decoded frame; return what happened, in order."""
        if self.state is SessionState.CLOSED:
            return []
        self._last_received = now
        if isinstance(item, DecodeError):
            return self._receive_error(item)
        if item.is_response:
            return self._receive_response(item, now)
        return self._receive_request(item)

    def _receive_error(self, error: DecodeError) -> list[Event]:
        if error.is_response:
            waiting = self._outstanding.get(error.sequence_number)
            if waiting is not None and error.command_id == (
                waiting.request.command_id | RESPONSE_BIT
            ):
                self._finish(waiting)
                return [InvalidPdu(error, waiting.request)]
            return [InvalidPdu(error)]
        answer = error.response()
        events: list[Event] = [InvalidPdu(error)]
        if answer is not None:
            events.append(Transmit(answer))
        return events

    def _receive_request(self, pdu: Pdu) -> list[Event]:
        cid = pdu.command_id
        if cid not in self._receives[self.state]:
            status = (
                CommandStatus.ESME_RALYBND
                if cid in _BINDS and self.state in _BOUND
                else CommandStatus.ESME_RINVBNDSTS
            )
            return [RequestRejected(pdu, status), Transmit(response_for(pdu, status))]
        if cid == _C.ENQUIRE_LINK:
            return [Transmit(EnquireLinkResp(sequence_number=pdu.sequence_number))]
        if cid == _C.UNBIND:
            old = self.state
            self.state = SessionState.UNBOUND
            return [
                Transmit(UnbindResp(sequence_number=pdu.sequence_number)),
                StateChanged(old, self.state),
            ]
        if cid in _BINDS:
            if self._bind is not None:
                status = CommandStatus.ESME_RINVBNDSTS
                return [RequestRejected(pdu, status), Transmit(response_for(pdu, status))]
            self._bind = pdu
        if cid not in _NO_RESPONSE:
            self._inbound.add(pdu.sequence_number)
        return [RequestReceived(pdu)]

    def _receive_response(self, pdu: Pdu, now: float) -> list[Event]:
        waiting = self._outstanding.get(pdu.sequence_number)
        if waiting is None or pdu.command_id not in (
            waiting.request.command_id | RESPONSE_BIT,
            _C.GENERIC_NACK,
        ):
            return [UnmatchedResponse(pdu)]
        self._finish(waiting)
        events: list[Event] = [ResponseReceived(waiting.request, pdu, now - waiting.sent_at)]
        cid = waiting.request.command_id
        old = self.state
        if (
            cid in _BINDS
            and pdu.command_status == CommandStatus.ESME_ROK
            and pdu.command_id != _C.GENERIC_NACK
            and old is SessionState.OPEN
        ):
            self.state = _BINDS[cid]
        elif cid == _C.UNBIND and old in _BOUND:
            self.state = SessionState.UNBOUND
        if self.state is not old:
            events.append(StateChanged(old, self.state))
        return events

    def _finish(self, waiting: Outstanding) -> None:
        request = waiting.request
        del self._outstanding[request.sequence_number]
        cid = request.command_id
        if cid not in _UNWINDOWED:
            self._windowed -= 1
        if cid in _BINDS:
            self._bind = None
        elif cid == _C.UNBIND:
            self._unbinding = False

    # --- timers ----------------------------------------------------------------------------

    def expired(self, now: float) -> list[Outstanding]:
        """Remove and return our requests whose response is overdue at ``now``."""
        late = [o for o in self._outstanding.values() if o.deadline <= now]
        for waiting in late:
            self._finish(waiting)
        return late

    def keepalive_due(self, now: float) -> bool:
        """True if the link has been silent ``enquire_link_interval`` and none is in flight."""
        interval = self.enquire_link_interval
        if interval is None or self.state not in _BOUND or self._unbinding:
            return False
        if now - self._last_received < interval:
            return False
        return not any(o.request.command_id == _C.ENQUIRE_LINK for o in self._outstanding.values())

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`expired` or :meth:`keepalive_due` may change, or None."""
        times = [o.deadline for o in self._outstanding.values()]
        if self.enquire_link_interval is not None and self.state in _BOUND:
            times.append(self._last_received + self.enquire_link_interval)
        return min(times) if times else None

    def close(self) -> list[Outstanding]:
        """The connection is gone: move to CLOSED and return requests left unanswered."""
        left = list(self._outstanding.values())
        self._outstanding.clear()
        self._windowed = 0
        self._inbound.clear()
        self._bind = None
        self._unbinding = False
        self.state = SessionState.CLOSED
        return left
