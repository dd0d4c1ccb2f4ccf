"""PDU <-> request mapping: addresses, codings, times, errors, receipts and replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.encoding import decode_gsm7, encode_gsm7, encode_ucs2
from pigeon.domain.errors import (
    IdempotencyMismatch,
    InvalidBody,
    InvalidRecipient,
    InvalidSender,
    NotFound,
    ValidationError,
)
from pigeon.domain.messages import Category, Direction, Message, MessageStatus, ReceiptRequest
from pigeon.smpp import mapping, tlv
from pigeon.smpp.concat import split_udh
from pigeon.smpp.constants import CommandStatus, GsmFeature, MessageState, MessageType, Ton
from pigeon.smpp.mapping import Refused
from pigeon.smpp.pdu import DataSm, DistributionList, SmeAddress, SubmitMulti, SubmitSm
from pigeon.smpp.receipt import parse_receipt

S = CommandStatus
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ORIGIN = "smpp:sma_1"


def submit(**fields: Any) -> SubmitSm:
    values: dict[str, Any] = {
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "447911123456",
        "short_message": b"hello",
    }
    values.update(fields)
    return SubmitSm(**values)


def refusal(call: Any) -> int:
    with pytest.raises(Refused) as raised:
        call()
    return raised.value.status


# --- addresses ----------------------------------------------------------------------------------


@given(st.text(alphabet="0123456789", min_size=1, max_size=20), st.booleans())
def test_international_destinations_become_e164(digits: str, plus: bool) -> None:
    """Any digits with TON international become '+digits' (a leading '+' is tolerated)."""
    assert mapping.destination(Ton.INTERNATIONAL, 1, ("+" if plus else "") + digits) == (
        "+" + digits
    )


@given(st.text(min_size=1, max_size=20).filter(lambda s: not s.strip().removeprefix("+").isdigit()))
def test_international_destinations_must_be_digits(address: str) -> None:
    """A TON international destination with anything but digits is ESME_RINVDSTADR."""
    if not address.strip():
        address = "x"
    assert refusal(lambda: mapping.destination(Ton.INTERNATIONAL, 1, address)) == (
        S.ESME_RINVDSTADR
    )


@given(st.sampled_from([0, 2, 3, 4, 6]), st.text(alphabet="0123456789+", min_size=1, max_size=20))
def test_other_numeric_destinations_pass_through(ton: int, address: str) -> None:
    """Unknown, national and other TONs go to accept as given (it applies the region)."""
    assert mapping.destination(ton, 1, address) == address.strip()


def test_empty_and_alphanumeric_destinations_are_refused() -> None:
    """An empty destination is ESME_RINVDSTADR, an alphanumeric one ESME_RINVDSTTON."""
    assert refusal(lambda: mapping.destination(1, 1, " ")) == S.ESME_RINVDSTADR
    assert refusal(lambda: mapping.destination(Ton.ALPHANUMERIC, 0, "Shop")) == (S.ESME_RINVDSTTON)


@pytest.mark.parametrize(
    ("ton", "address", "expected"),
    [
        (5, "Pigeon", "Pigeon"),
        (1, "447911123456", "+447911123456"),
        (0, "12345", "12345"),
        (0, "", None),
        (1, "Shop", "Shop"),
    ],
)
def test_sources(ton: int, address: str, expected: str | None) -> None:
    """Names stay names, international numbers get '+', empty means the default sender."""
    assert mapping.source(ton, 0, address) == expected


# --- text --------------------------------------------------------------------------------------

GSM_TEXT = st.text(
    alphabet="@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà^{}\\[~]|€",
    min_size=1,
    max_size=200,
)


@given(GSM_TEXT)
def test_gsm_default_alphabet_round_trips(text: str) -> None:
    """data_coding 0 is read as unpacked GSM 03.38 septets, extension table included."""
    assert mapping.decode_text(encode_gsm7(text), 0) == text


@given(
    st.text(min_size=1, max_size=100).filter(
        lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)
    )
)
def test_ucs2_round_trips(text: str) -> None:
    """data_coding 8 is UTF-16-BE: any text, astral characters included."""
    assert mapping.decode_text(encode_ucs2(text), 8) == text


@given(st.binary(min_size=1, max_size=100))
def test_latin1_codings_take_any_octets(data: bytes) -> None:
    """data_coding 1 and 3 are Latin-1 (every octet is a character)."""
    assert mapping.decode_text(data, 3) == data.decode("latin-1")
    assert mapping.decode_text(data, 1) == data.decode("latin-1")


def test_octets_above_0x7f_in_data_coding_0_are_read_as_latin1() -> None:
    """An ESME that sends Latin-1 with data_coding 0 gets its text, not mangled septets."""
    assert mapping.decode_text("café".encode("latin-1"), 0) == "café"


@pytest.mark.parametrize("coding", [2, 4, 5, 9, 0xF4, 0xF7])
def test_binary_and_unknown_codings_are_refused(coding: int) -> None:
    """Binary and unsupported codings are ESME_RSUBMITFAIL (3.4 has no DCS status)."""
    assert refusal(lambda: mapping.decode_text(b"\x01", coding)) == S.ESME_RSUBMITFAIL


def test_odd_ucs2_is_refused() -> None:
    """UCS-2 with an odd number of octets is ESME_RINVMSGLEN."""
    assert refusal(lambda: mapping.decode_text(b"\x00a\x00", 8)) == S.ESME_RINVMSGLEN


def test_message_payload_is_read_and_both_fields_at_once_refused() -> None:
    """message_payload stands in for an empty short_message; both set is an error."""
    payload = submit(short_message=b"", tlvs=(tlv.MESSAGE_PAYLOAD(b"long text"),))
    both = submit(tlvs=(tlv.MESSAGE_PAYLOAD(b"long text"),))
    assert mapping.content_of(payload) == b"long text"
    assert refusal(lambda: mapping.content_of(both)) == S.ESME_RINVOPTPARAMVAL


def test_a_udh_is_removed_and_a_broken_one_refused() -> None:
    """With UDHI the header is cut off; a header longer than the data is ESME_RINVESMCLASS."""
    good = submit(esm_class=GsmFeature.UDHI, short_message=b"\x03\x24\x01\x00hi")
    broken = submit(esm_class=GsmFeature.UDHI, short_message=b"\x09\x00")
    assert mapping.content_of(good) == b"hi"
    assert refusal(lambda: mapping.content_of(broken)) == S.ESME_RINVESMCLASS


# --- requests ----------------------------------------------------------------------------------


def test_a_submit_becomes_a_send_request() -> None:
    """Addresses, text, receipt wish and times are all carried over."""
    pdu = submit(
        source_addr_ton=5,
        source_addr="Pigeon",
        short_message=encode_gsm7("Hi there"),
        registered_delivery=1,
        validity_period="000000010000000R",
        schedule_delivery_time="260101130000000+",
    )

    request = mapping.send_request(pdu, origin=ORIGIN, now=NOW)

    assert (request.to, request.sender, request.body) == ("+447911123456", "Pigeon", "Hi there")
    assert (request.origin, request.receipt_request) == (ORIGIN, ReceiptRequest.ALL)
    assert request.validity_seconds == 3600
    assert request.send_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("registered", "expected"),
    [
        (0, ReceiptRequest.NONE),
        (1, ReceiptRequest.ALL),
        (2, ReceiptRequest.FAILURE),
        (3, ReceiptRequest.SUCCESS),
        (0x11, ReceiptRequest.ALL),
        (0x0C, ReceiptRequest.NONE),
    ],
)
def test_registered_delivery_bits(registered: int, expected: ReceiptRequest) -> None:
    """Bits 0-1 of registered_delivery decide the receipt; SME ack bits are ignored."""
    request = mapping.send_request(submit(registered_delivery=registered), origin=ORIGIN, now=NOW)
    assert request.receipt_request is expected


@given(st.integers(min_value=1, max_value=7 * 86400))
def test_relative_validity_becomes_seconds(seconds: int) -> None:
    """A relative validity_period is its length in seconds (at least 60)."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    period = f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"
    request = mapping.send_request(submit(validity_period=period), origin=ORIGIN, now=NOW)
    assert request.validity_seconds == max(60, seconds)


def test_absolute_validity_counts_from_now() -> None:
    """An absolute validity_period is the time left until it, in seconds."""
    request = mapping.send_request(
        submit(validity_period="260101140000000+"), origin=ORIGIN, now=NOW
    )
    assert request.validity_seconds == 7200


def test_past_validity_and_bad_times_are_refused() -> None:
    """A validity already over is ESME_RINVEXPIRY; an unreadable schedule ESME_RINVSCHED."""
    past = submit(validity_period="250101000000000+")
    bad = submit(schedule_delivery_time="26010112000000XX")
    assert refusal(lambda: mapping.send_request(past, origin=ORIGIN, now=NOW)) == (
        S.ESME_RINVEXPIRY
    )
    assert refusal(lambda: mapping.send_request(bad, origin=ORIGIN, now=NOW)) == S.ESME_RINVSCHED


def test_empty_messages_and_acks_are_refused() -> None:
    """No text is ESME_RINVMSGLEN; an esm_class asking for an SME ack ESME_RINVESMCLASS."""
    empty = submit(short_message=b"")
    ack = submit(esm_class=MessageType.ESME_DELIVERY_ACK)
    assert refusal(lambda: mapping.send_request(empty, origin=ORIGIN, now=NOW)) == (
        S.ESME_RINVMSGLEN
    )
    assert refusal(lambda: mapping.send_request(ack, origin=ORIGIN, now=NOW)) == (
        S.ESME_RINVESMCLASS
    )


def test_data_sm_takes_its_text_from_the_payload() -> None:
    """data_sm has no short_message: message_payload is the text."""
    pdu = DataSm(
        dest_addr_ton=1, destination_addr="447911123456", tlvs=(tlv.MESSAGE_PAYLOAD(b"hi"),)
    )
    assert mapping.send_request(pdu, origin=ORIGIN, now=NOW).body == "hi"


def test_parts_are_joined_before_decoding() -> None:
    """An escape pair split across two parts decodes as the one character it is."""
    septets = encode_gsm7("a€b")  # "€" is ESC + 0x65
    first, second = septets[:2], septets[2:]
    pdus = [submit(short_message=first), submit(short_message=second, registered_delivery=1)]

    request = mapping.whole_request(pdus, [first, second], origin=ORIGIN, now=NOW)

    assert request.body == "a€b"
    assert request.origin_parts == 2
    assert request.receipt_request is ReceiptRequest.ALL


def test_submit_multi_refuses_lists_and_bad_numbers_one_by_one() -> None:
    """Each SME address gets a request; a list or a bad number gets its own refusal."""
    pdu = SubmitMulti(
        dest_addresses=(
            SmeAddress(1, 1, "447911123456"),
            SmeAddress(5, 0, "Shop"),
            DistributionList("team"),
        ),
        short_message=b"hi",
    )

    items = mapping.multi_requests(pdu, origin=ORIGIN, now=NOW)

    first, second, third = (request for _, request in items)
    assert not isinstance(first, Refused)
    assert first.to == "+447911123456"
    assert isinstance(second, Refused)
    assert second.status == S.ESME_RINVDSTTON
    assert isinstance(third, Refused)
    assert third.status == S.ESME_RINVDLNAME


# --- ids and errors ----------------------------------------------------------------------------


def test_part_ids_derive_from_the_message_id() -> None:
    """One PDU keeps the message id; N parts get '.1' to '.N', which lead back to it."""
    assert mapping.part_ids("msg_A", 1) == ["msg_A"]
    assert mapping.part_ids("msg_A", 3) == ["msg_A.1", "msg_A.2", "msg_A.3"]
    assert mapping.message_id_of("msg_A.2") == "msg_A"
    assert mapping.message_id_of("msg_A") == "msg_A"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRecipient("x"), S.ESME_RINVDSTADR),
        (InvalidSender("x"), S.ESME_RINVSRCADR),
        (InvalidBody("x", code="body_too_long"), S.ESME_RINVMSGLEN),
        (ValidationError("x", code="invalid_validity"), S.ESME_RINVEXPIRY),
        (ValidationError("x", code="invalid_send_at"), S.ESME_RINVSCHED),
        (ValidationError("x", code="something_else"), S.ESME_RSUBMITFAIL),
        (IdempotencyMismatch("x"), S.ESME_RSUBMITFAIL),
        (NotFound("x"), S.ESME_RSUBMITFAIL),
        (RuntimeError("database down"), S.ESME_RSYSERR),
        (Refused(S.ESME_RINVESMCLASS, "x"), S.ESME_RINVESMCLASS),
    ],
)
def test_errors_become_command_statuses(error: Exception, status: int) -> None:
    """Caller mistakes get their specific status; our own failures ESME_RSYSERR."""
    assert mapping.status_for(error) == status


# --- receipts and replies ----------------------------------------------------------------------

RECEIPT = {
    "kind": "receipt",
    "account_id": "sma_1",
    "message_id": "msg_01ABC",
    "parts": 1,
    "recipient": "+447911123456",
    "sender": "Pigeon",
    "submitted_at": "2026-01-31T12:00:00.000Z",
    "done_at": "2026-01-31T12:01:30.000Z",
    "stat": "DELIVRD",
    "err": "000",
    "text": "Your code is 123456",
    "created_at": "2026-01-31T12:01:30.000Z",
}


def test_a_receipt_is_the_standard_text_with_its_tlvs() -> None:
    """The receipt's text is exactly the de-facto format; TLVs name the id and the state."""
    (pdu,) = mapping.receipt_pdus(RECEIPT)

    assert pdu.short_message == (
        b"id:msg_01ABC sub:001 dlvrd:001 submit date:2601311200 done date:2601311201"
        b" stat:DELIVRD err:000 text:Your code is 123456"
    )
    assert pdu.esm_class == MessageType.SMSC_DELIVERY_RECEIPT
    assert (pdu.source_addr_ton, pdu.source_addr) == (Ton.INTERNATIONAL, "447911123456")
    assert (pdu.dest_addr_ton, pdu.destination_addr) == (Ton.ALPHANUMERIC, "Pigeon")
    assert pdu.tlv(tlv.RECEIPTED_MESSAGE_ID) == "msg_01ABC"
    assert pdu.tlv(tlv.MESSAGE_STATE) == MessageState.DELIVERED
    assert pdu.tlv(tlv.NETWORK_ERROR_CODE) is None


def test_a_failure_receipt_carries_the_error_and_parts_each_get_one() -> None:
    """UNDELIV with err 034 adds network_error_code; 2 parts give 2 receipts with their ids."""
    payload = {**RECEIPT, "stat": "UNDELIV", "err": "034", "parts": 2, "text": "Tschüß"}

    pdus = mapping.receipt_pdus(payload)

    assert [p.tlv(tlv.RECEIPTED_MESSAGE_ID) for p in pdus] == ["msg_01ABC.1", "msg_01ABC.2"]
    parsed = parse_receipt(pdus[0].short_message)
    assert parsed is not None
    assert (parsed.stat, parsed.error, parsed.delivered, parsed.text) == (
        "UNDELIV",
        "034",
        0,
        "Tsch??",
    )
    assert pdus[0].tlv(tlv.NETWORK_ERROR_CODE) == tlv.NetworkErrorCode(3, 34)
    assert pdus[0].tlv(tlv.MESSAGE_STATE) == MessageState.UNDELIVERABLE


def test_receipts_are_the_same_however_often_built() -> None:
    """Building a job's receipts twice gives identical PDUs (a resend is unchanged)."""
    assert mapping.receipt_pdus(RECEIPT) == mapping.receipt_pdus(dict(RECEIPT))


def test_replies_are_gsm_when_they_can_be_and_split_with_a_udh() -> None:
    """A short GSM reply is one data_coding 0 PDU; a long UCS-2 one goes in UDH parts."""
    short = {"message_id": "msg_1", "source": "+447911123456", "destination": "12345"}
    (one,) = mapping.reply_pdus({**short, "body": "STOP"})
    parts = mapping.reply_pdus({**short, "body": "ж" * 100})

    assert (one.data_coding, decode_gsm7(one.short_message), one.esm_class) == (0, "STOP", 0)
    assert (one.destination_addr, one.dest_addr_ton) == ("12345", Ton.UNKNOWN)
    assert len(parts) == 2
    assert all(p.esm_class == GsmFeature.UDHI and p.data_coding == 8 for p in parts)
    assert b"".join(split_udh(p.short_message)[1] for p in parts).decode("utf-16-be") == "ж" * 100


def _message(status: MessageStatus, error: str | None = None) -> Message:
    return Message(
        id="msg_1",
        tenant_id="ten_1",
        direction=Direction.MT,
        to="+447911123456",
        sender=None,
        body="hi",
        category=Category.TRANSACTIONAL,
        encoding="gsm7",
        segments=1,
        status=status,
        created_at=NOW,
        updated_at=NOW + timedelta(minutes=1),
        error_code=error,
    )


@pytest.mark.parametrize(
    ("status", "state", "final"),
    [
        (MessageStatus.QUEUED, MessageState.ENROUTE, False),
        (MessageStatus.SENT, MessageState.ENROUTE, False),
        (MessageStatus.DELIVERED, MessageState.DELIVERED, True),
        (MessageStatus.UNDELIVERED, MessageState.UNDELIVERABLE, True),
        (MessageStatus.FAILED, MessageState.UNDELIVERABLE, True),
        (MessageStatus.EXPIRED, MessageState.EXPIRED, True),
        (MessageStatus.REJECTED, MessageState.REJECTED, True),
        (MessageStatus.CANCELED, MessageState.DELETED, True),
        (MessageStatus.UNKNOWN, MessageState.UNKNOWN, True),
    ],
)
def test_query_results(status: MessageStatus, state: int, final: bool) -> None:
    """query_sm states follow the status; a final one has a final_date."""
    result = mapping.query_result(_message(status, "034"))
    assert result.message_state == state
    assert (result.final_date == "260101120100000+") is final
    assert result.error_code == 34
