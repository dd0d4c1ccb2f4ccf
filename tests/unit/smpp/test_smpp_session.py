"""The SMPP session state machine, for the ESME and the SMSC roles."""

from __future__ import annotations

import pytest

from pigeon.smpp import pdu as p
from pigeon.smpp.codec import DecodeError, PduDecoder, decode, encode, response_for
from pigeon.smpp.constants import CommandStatus as S
from pigeon.smpp.session import (
    MAX_SEQUENCE,
    Event,
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
    WindowFullError,
)


def bound_esme(
    window: int = 10,
    response_timeout: float = 30.0,
    enquire_link_interval: float | None = 30.0,
) -> Session:
    """An ESME session bound as transceiver at t=0."""
    session = Session(
        Role.ESME,
        window=window,
        response_timeout=response_timeout,
        enquire_link_interval=enquire_link_interval,
    )
    bind = session.send_request(p.BindTransceiver(system_id="esme", password="pw"), now=0.0)
    session.receive(p.BindTransceiverResp(sequence_number=bind.sequence_number), now=0.0)
    assert session.state is SessionState.BOUND_TRX
    return session


def bound_smsc(bind: p.Pdu) -> Session:
    """An SMSC session that received ``bind`` at t=0 and accepted it."""
    session = Session(Role.SMSC)
    session.receive(bind, now=0.0)
    session.respond(response_for(bind))
    return session


def transmitted(events: list[Event]) -> list[p.Pdu]:
    """The PDUs the session asks the driver to write."""
    return [e.pdu for e in events if isinstance(e, Transmit)]


# --- binding ----------------------------------------------------------------------------------


def test_esme_bind_success_moves_to_bound_state() -> None:
    """bind_transceiver answered ESME_ROK: ResponseReceived then StateChanged to BOUND_TRX."""
    session = Session(Role.ESME)
    assert session.state is SessionState.OPEN
    assert not session.can_send()
    bind = session.send_request(p.BindTransceiver(system_id="esme"), now=1.0)
    assert bind.sequence_number == 1
    resp = p.BindTransceiverResp(sequence_number=1, system_id="SMSC")
    events = session.receive(resp, now=1.5)
    assert events == [
        ResponseReceived(bind, resp, 0.5),
        StateChanged(SessionState.OPEN, SessionState.BOUND_TRX),
    ]
    assert session.bound
    assert session.can_send()


@pytest.mark.parametrize(
    ("bind", "resp", "state"),
    [
        (p.BindTransmitter(), p.BindTransmitterResp, SessionState.BOUND_TX),
        (p.BindReceiver(), p.BindReceiverResp, SessionState.BOUND_RX),
        (p.BindTransceiver(), p.BindTransceiverResp, SessionState.BOUND_TRX),
    ],
)
def test_each_bind_type_gives_its_state(
    bind: p.Pdu, resp: type[p.Pdu], state: SessionState
) -> None:
    """Transmitter, receiver and transceiver binds lead to BOUND_TX, BOUND_RX, BOUND_TRX."""
    session = Session(Role.ESME)
    sent = session.send_request(bind, now=0.0)
    session.receive(resp(sequence_number=sent.sequence_number), now=0.0)
    assert session.state is state


def test_esme_bind_rejected_stays_open() -> None:
    """A bind answered with an error (or generic_nack) leaves the session OPEN."""
    session = Session(Role.ESME)
    bind = session.send_request(p.BindTransmitter(), now=0.0)
    events = session.receive(
        p.BindTransmitterResp(
            sequence_number=bind.sequence_number, command_status=S.ESME_RINVPASWD
        ),
        now=0.1,
    )
    assert [type(e) for e in events] == [ResponseReceived]
    assert session.state is SessionState.OPEN
    bind = session.send_request(p.BindTransmitter(), now=1.0)
    session.receive(p.GenericNack(sequence_number=bind.sequence_number, command_status=3), 1.0)
    assert session.state is SessionState.OPEN


def test_esme_cannot_submit_before_bind_or_bind_twice() -> None:
    """Local misuse raises SessionError: submit_sm in OPEN, a second bind in flight."""
    session = Session(Role.ESME)
    with pytest.raises(SessionError):
        session.send_request(p.SubmitSm(), now=0.0)
    session.send_request(p.BindTransmitter(), now=0.0)
    with pytest.raises(SessionError, match="already in progress"):
        session.send_request(p.BindTransmitter(), now=0.0)
    with pytest.raises(SessionError, match="response"):
        session.send_request(p.SubmitSmResp(), now=0.0)


def test_smsc_accepts_bind_after_application_says_ok() -> None:
    """The SMSC hands the bind to the application; answering ESME_ROK binds the session."""
    session = Session(Role.SMSC)
    bind = p.BindTransmitter(sequence_number=1, system_id="cust", password="pw")
    assert session.receive(bind, now=0.0) == [RequestReceived(bind)]
    assert session.state is SessionState.OPEN
    assert session.inbound_pending == 1
    session.respond(p.BindTransmitterResp(sequence_number=1, system_id="Pigeon"))
    assert session.state is SessionState.BOUND_TX
    assert session.inbound_pending == 0


def test_smsc_refused_bind_stays_open_and_allows_retry() -> None:
    """Answering a bind with an error keeps OPEN; the ESME may bind again."""
    session = Session(Role.SMSC)
    session.receive(p.BindTransceiver(sequence_number=1), now=0.0)
    session.respond(p.BindTransceiverResp(sequence_number=1, command_status=S.ESME_RINVPASWD))
    assert session.state is SessionState.OPEN
    bind = p.BindTransceiver(sequence_number=2)
    assert session.receive(bind, now=1.0) == [RequestReceived(bind)]


def test_smsc_rejects_second_bind_and_early_submit() -> None:
    """A bind while bound gets ESME_RALYBND; submit_sm before binding ESME_RINVBNDSTS."""
    session = Session(Role.SMSC)
    submit = p.SubmitSm(sequence_number=1)
    events = session.receive(submit, now=0.0)
    assert events == [
        RequestRejected(submit, S.ESME_RINVBNDSTS),
        Transmit(p.SubmitSmResp(sequence_number=1, command_status=S.ESME_RINVBNDSTS)),
    ]
    session.receive(p.BindTransmitter(sequence_number=2), now=0.0)
    pending = p.BindReceiver(sequence_number=3)
    assert transmitted(session.receive(pending, now=0.0)) == [
        p.BindReceiverResp(sequence_number=3, command_status=S.ESME_RINVBNDSTS)
    ]
    session.respond(p.BindTransmitterResp(sequence_number=2))
    again = session.receive(p.BindTransceiver(sequence_number=4), now=0.0)
    assert transmitted(again) == [
        p.BindTransceiverResp(sequence_number=4, command_status=S.ESME_RALYBND)
    ]


# --- which PDUs each role and state allow ------------------------------------------------------


def test_esme_transmitter_rejects_deliver_sm() -> None:
    """deliver_sm to an ESME bound as transmitter is answered ESME_RINVBNDSTS."""
    session = Session(Role.ESME)
    bind = session.send_request(p.BindTransmitter(), now=0.0)
    session.receive(p.BindTransmitterResp(sequence_number=bind.sequence_number), now=0.0)
    events = session.receive(p.DeliverSm(sequence_number=50), now=0.0)
    assert transmitted(events) == [
        p.DeliverSmResp(sequence_number=50, command_status=S.ESME_RINVBNDSTS)
    ]


def test_esme_receiver_cannot_submit_but_gets_deliver_sm() -> None:
    """BOUND_RX: submit_sm is refused locally, deliver_sm reaches the application."""
    session = Session(Role.ESME)
    bind = session.send_request(p.BindReceiver(), now=0.0)
    session.receive(p.BindReceiverResp(sequence_number=bind.sequence_number), now=0.0)
    assert not session.can_send()
    with pytest.raises(SessionError):
        session.send_request(p.SubmitSm(), now=0.0)
    deliver = p.DeliverSm(sequence_number=9)
    assert session.receive(deliver, now=0.0) == [RequestReceived(deliver)]
    assert session.respond(p.DeliverSmResp(sequence_number=9)) == p.DeliverSmResp(sequence_number=9)


def test_smsc_roles_sending_rules() -> None:
    """An SMSC sends deliver_sm only to receivers/transceivers, never submit_sm."""
    tx = bound_smsc(p.BindTransmitter(sequence_number=1))
    assert not tx.can_send()
    with pytest.raises(SessionError):
        tx.send_request(p.DeliverSm(), now=0.0)
    trx = bound_smsc(p.BindTransceiver(sequence_number=1))
    assert trx.can_send()
    sent = trx.send_request(p.DeliverSm(), now=0.0)
    with pytest.raises(SessionError):
        trx.send_request(p.SubmitSm(), now=0.0)
    resp = p.DeliverSmResp(sequence_number=sent.sequence_number)
    assert trx.receive(resp, now=0.2) == [ResponseReceived(sent, resp, 0.2)]
    submit = p.SubmitSm(sequence_number=7)
    assert trx.receive(submit, now=0.3) == [RequestReceived(submit)]


def test_alert_notification_and_outbind_need_no_response() -> None:
    """Requests without a response are not tracked in flight or as pending answers."""
    smsc = bound_smsc(p.BindReceiver(sequence_number=1))
    smsc.send_request(p.AlertNotification(), now=0.0)
    assert smsc.in_flight == 0
    esme = Session(Role.ESME)
    outbind = p.Outbind(sequence_number=1, system_id="SMSC")
    assert esme.receive(outbind, now=0.0) == [RequestReceived(outbind)]
    assert esme.inbound_pending == 0


def test_respond_checks_it_answers_a_received_request() -> None:
    """respond() refuses unknown sequence numbers and requests."""
    session = bound_esme()
    with pytest.raises(SessionError, match="no received request"):
        session.respond(p.DeliverSmResp(sequence_number=99))
    with pytest.raises(SessionError, match="request"):
        session.respond(p.DeliverSm(sequence_number=99))


# --- sequence numbers and the window ------------------------------------------------------------


def test_sequence_numbers_increase_and_wrap() -> None:
    """Sequence numbers go 1, 2, ... 0x7FFFFFFF, then back to 1, skipping ones in flight."""
    session = bound_esme()
    first = session.send_request(p.SubmitSm(), now=0.0).sequence_number
    assert session.next_sequence() == first + 1
    session._next_sequence = MAX_SEQUENCE  # white-box: jump to the end of the range
    assert session.next_sequence() == MAX_SEQUENCE
    assert session.next_sequence() == 1
    assert session.next_sequence() == first + 1  # first is still in flight


def test_explicit_sequence_numbers_are_kept_but_not_duplicated() -> None:
    """A request carrying its own sequence number keeps it; reusing one in flight raises."""
    session = bound_esme()
    sent = session.send_request(p.SubmitSm(sequence_number=500), now=0.0)
    assert sent.sequence_number == 500
    with pytest.raises(SessionError, match="already in flight"):
        session.send_request(p.SubmitSm(sequence_number=500), now=0.0)


def test_window_limits_requests_in_flight() -> None:
    """With window 2, a third submit raises WindowFullError until a response frees a slot."""
    session = bound_esme(window=2)
    a = session.send_request(p.SubmitSm(), now=0.0)
    session.send_request(p.SubmitSm(), now=0.0)
    assert not session.can_send()
    with pytest.raises(WindowFullError):
        session.send_request(p.SubmitSm(), now=0.0)
    assert session.can_send(p.EnquireLink.command_id)
    session.send_request(p.EnquireLink(), now=0.0)  # keep-alive is exempt from the window
    session.receive(p.SubmitSmResp(sequence_number=a.sequence_number, message_id="1"), now=0.1)
    assert session.can_send()
    session.send_request(p.SubmitSm(), now=0.2)
    assert session.in_flight == 3


def test_responses_match_requests_by_sequence_and_type() -> None:
    """Responses pair with their request; unknown or mistyped ones are unmatched."""
    session = bound_esme()
    submit = session.send_request(p.SubmitSm(), now=1.0)
    query = session.send_request(p.QuerySm(message_id="x"), now=1.0)
    stray = p.SubmitSmResp(sequence_number=9999)
    assert session.receive(stray, now=1.1) == [UnmatchedResponse(stray)]
    mistyped = p.QuerySmResp(sequence_number=submit.sequence_number)
    assert session.receive(mistyped, now=1.1) == [UnmatchedResponse(mistyped)]
    nack = p.GenericNack(sequence_number=query.sequence_number, command_status=S.ESME_RINVCMDID)
    assert session.receive(nack, now=1.5) == [ResponseReceived(query, nack, 0.5)]
    resp = p.SubmitSmResp(sequence_number=submit.sequence_number, message_id="abc")
    assert session.receive(resp, now=2.0) == [ResponseReceived(submit, resp, 1.0)]
    assert session.in_flight == 0


# --- timers -------------------------------------------------------------------------------------


def test_expired_returns_overdue_requests_and_frees_the_window() -> None:
    """Requests past their deadline come out of expired(); their late responses are unmatched."""
    session = bound_esme(window=2, response_timeout=10.0)
    old = session.send_request(p.SubmitSm(), now=0.0)
    quick = session.send_request(p.SubmitSm(), now=5.0, timeout=1.0)
    assert session.next_deadline() == 6.0
    assert session.expired(now=5.5) == []
    assert [o.request for o in session.expired(now=6.0)] == [quick]
    late = session.expired(now=10.0)
    assert [(o.request, o.sent_at, o.deadline) for o in late] == [(old, 0.0, 10.0)]
    assert session.can_send()
    resp = p.SubmitSmResp(sequence_number=old.sequence_number)
    assert session.receive(resp, now=11.0) == [UnmatchedResponse(resp)]


def test_keepalive_due_after_silence_and_not_while_one_is_in_flight() -> None:
    """enquire_link is due after the interval without input, once at a time."""
    session = bound_esme(enquire_link_interval=30.0)
    assert not session.keepalive_due(now=29.9)
    assert session.next_deadline() == 30.0
    assert session.keepalive_due(now=30.0)
    link = session.enquire_link(now=30.0)
    assert not session.keepalive_due(now=45.0)
    session.receive(p.EnquireLinkResp(sequence_number=link.sequence_number), now=31.0)
    assert not session.keepalive_due(now=60.0)
    assert session.keepalive_due(now=61.0)


def test_any_received_pdu_resets_keepalive_and_open_sessions_never_ping() -> None:
    """Traffic from the peer counts as liveness; OPEN or disabled sessions never ping."""
    session = bound_esme(enquire_link_interval=30.0)
    session.receive(p.DeliverSm(sequence_number=3), now=25.0)
    assert not session.keepalive_due(now=50.0)
    assert not Session(Role.ESME).keepalive_due(now=1e9)
    silent = bound_esme(enquire_link_interval=None)
    assert not silent.keepalive_due(now=1e9)
    assert silent.next_deadline() is None


def test_enquire_link_is_answered_automatically() -> None:
    """An incoming enquire_link is answered by the session, bound or not."""
    for session in (Session(Role.SMSC), bound_esme()):
        assert session.receive(p.EnquireLink(sequence_number=8), now=0.0) == [
            Transmit(p.EnquireLinkResp(sequence_number=8))
        ]


# --- unbinding and closing ----------------------------------------------------------------------


def test_peer_unbind_is_answered_and_unbinds() -> None:
    """unbind from the peer: unbind_resp transmitted, state UNBOUND, requests then refused."""
    session = bound_esme()
    events = session.receive(p.Unbind(sequence_number=40), now=0.0)
    assert events == [
        Transmit(p.UnbindResp(sequence_number=40)),
        StateChanged(SessionState.BOUND_TRX, SessionState.UNBOUND),
    ]
    assert not session.can_send()
    late = session.receive(p.DeliverSm(sequence_number=41), now=0.0)
    assert transmitted(late) == [
        p.DeliverSmResp(sequence_number=41, command_status=S.ESME_RINVBNDSTS)
    ]


def test_our_unbind_blocks_new_requests_until_its_response() -> None:
    """After we send unbind, no new requests; incoming ones still flow; unbind_resp unbinds."""
    session = bound_esme()
    unbind = session.unbind(now=0.0)
    assert session.unbinding
    assert not session.can_send()
    with pytest.raises(SessionError, match="unbinding"):
        session.send_request(p.SubmitSm(), now=0.0)
    deliver = p.DeliverSm(sequence_number=5)
    assert session.receive(deliver, now=0.1) == [RequestReceived(deliver)]
    events = session.receive(p.UnbindResp(sequence_number=unbind.sequence_number), now=0.2)
    assert events[-1] == StateChanged(SessionState.BOUND_TRX, SessionState.UNBOUND)
    assert not session.unbinding
    session.respond(p.DeliverSmResp(sequence_number=5))  # still allowed to answer


def test_close_returns_unanswered_requests() -> None:
    """close() moves to CLOSED, hands back what is in flight, and ignores further input."""
    session = bound_esme()
    submit = session.send_request(p.SubmitSm(), now=0.0)
    left = session.close()
    assert [o.request for o in left] == [submit]
    assert session.state is SessionState.CLOSED
    assert session.receive(p.EnquireLink(sequence_number=1), now=1.0) == []
    with pytest.raises(SessionError, match="closed"):
        session.send_request(p.EnquireLink(), now=1.0)


# --- decode errors ------------------------------------------------------------------------------


def test_malformed_request_is_answered_with_its_status() -> None:
    """A request that failed to decode gets its *_resp with the decoder's status."""
    session = bound_smsc(p.BindTransmitter(sequence_number=1))
    error = DecodeError(S.ESME_RINVSRCADR, 0x04, 12, "source_addr")
    assert session.receive(error, now=0.0) == [
        InvalidPdu(error),
        Transmit(p.SubmitSmResp(sequence_number=12, command_status=S.ESME_RINVSRCADR)),
    ]


def test_fatal_framing_error_is_nacked() -> None:
    """A fatal error yields a generic_nack to write before closing."""
    session = bound_esme()
    (error,) = PduDecoder().feed(b"\x00\x00\x00\x05" + b"\x00" * 12)
    assert isinstance(error, DecodeError)
    events = session.receive(error, now=0.0)
    assert events == [
        InvalidPdu(error),
        Transmit(p.GenericNack(command_status=S.ESME_RINVCMDLEN)),
    ]
    assert error.fatal


def test_malformed_response_ends_its_request() -> None:
    """A response that failed to decode is matched to its request, which leaves the window."""
    session = bound_esme(window=1)
    submit = session.send_request(p.SubmitSm(), now=0.0)
    error = DecodeError(S.ESME_RINVMSGID, 0x80000004, submit.sequence_number, "message_id")
    assert session.receive(error, now=0.1) == [InvalidPdu(error, submit)]
    assert session.can_send()
    stray = DecodeError(S.ESME_RINVMSGID, 0x80000004, 999, "message_id")
    assert session.receive(stray, now=0.1) == [InvalidPdu(stray)]


# --- two sessions talking ---------------------------------------------------------------------


def test_esme_and_smsc_sessions_talk_through_the_codec() -> None:
    """Bind, submit, receipt and unbind between the two roles over encoded bytes."""
    esme, smsc = Session(Role.ESME), Session(Role.SMSC)
    to_smsc, to_esme = PduDecoder(), PduDecoder()

    def deliver(decoder: PduDecoder, session: Session, pdu: p.Pdu) -> list[Event]:
        events: list[Event] = []
        for item in decoder.feed(encode(pdu)):
            events.extend(session.receive(item, now=0.0))
        return events

    bind = esme.send_request(p.BindTransceiver(system_id="esme", password="pw"), now=0.0)
    (request,) = deliver(to_smsc, smsc, bind)
    assert isinstance(request, RequestReceived)
    answer = smsc.respond(p.BindTransceiverResp(sequence_number=bind.sequence_number))
    deliver(to_esme, esme, answer)
    assert esme.state is smsc.state is SessionState.BOUND_TRX

    submit = esme.send_request(p.SubmitSm(destination_addr="447700900123"), now=0.0)
    (got,) = deliver(to_smsc, smsc, submit)
    assert got == RequestReceived(submit)
    resp = smsc.respond(p.SubmitSmResp(sequence_number=submit.sequence_number, message_id="1"))
    (done,) = deliver(to_esme, esme, resp)
    assert isinstance(done, ResponseReceived)
    assert decode(encode(done.response)) == resp

    receipt = smsc.send_request(p.DeliverSm(esm_class=0x04, short_message=b"id:1"), now=0.0)
    (mo,) = deliver(to_esme, esme, receipt)
    assert mo == RequestReceived(receipt)
    deliver(to_smsc, smsc, esme.respond(p.DeliverSmResp(sequence_number=receipt.sequence_number)))
    assert smsc.in_flight == 0

    unbind = esme.unbind(now=0.0)
    events = deliver(to_smsc, smsc, unbind)
    (unbind_resp,) = transmitted(events)
    deliver(to_esme, esme, unbind_resp)
    assert esme.state is smsc.state is SessionState.UNBOUND
