"""Decoder error statuses, partial frames, encoder validation and response_for."""

from __future__ import annotations

import struct

import pytest

from pigeon.smpp import pdu as p
from pigeon.smpp import tlv
from pigeon.smpp.codec import DecodeError, PduDecoder, decode, encode, response_for
from pigeon.smpp.constants import CommandStatus as S


def c(text: str) -> bytes:
    """A C-Octet string: the ASCII text and its NUL terminator."""
    return text.encode("ascii") + b"\x00"


def frame(command_id: int, seq: int, body: bytes = b"", status: int = 0) -> bytes:
    """A frame with a correct command_length around ``body``."""
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def submit_body(
    *,
    service: bytes = b"\x00",
    src: bytes = b"Pigeon\x00",
    dst: bytes = b"447700900123\x00",
    schedule: bytes = b"\x00",
    validity: bytes = b"\x00",
    sm: bytes = b"hi",
    sm_length: int | None = None,
    tail: bytes = b"",
) -> bytes:
    """A submit_sm body, hand-assembled, with one field replaced as the test needs."""
    length = len(sm) if sm_length is None else sm_length
    return b"".join(
        (
            service,
            b"\x05\x00",
            src,
            b"\x01\x01",
            dst,
            b"\x00\x00\x00",
            schedule,
            validity,
            b"\x01\x00\x00\x00",
            bytes((length,)),
            sm,
            tail,
        )
    )


def bind_body(
    system_id: bytes = c("esme"),
    password: bytes = c("pw"),
    system_type: bytes = c(""),
    address_range: bytes = c(""),
) -> bytes:
    """A bind body, hand-assembled."""
    return system_id + password + system_type + b"\x34\x00\x00" + address_range


def only_error(wire: bytes) -> DecodeError:
    """Decode one frame and insist it is a DecodeError."""
    result = decode(wire)
    assert isinstance(result, DecodeError), result
    return result


SUBMIT, BIND_TX, QUERY, MULTI = 0x04, 0x02, 0x03, 0x21

FIELD_ERRORS = [
    ("service_type_too_long", SUBMIT, submit_body(service=c("ABCDEF")), S.ESME_RINVSERTYP),
    ("source_addr_too_long", SUBMIT, submit_body(src=c("A" * 21)), S.ESME_RINVSRCADR),
    ("destination_addr_too_long", SUBMIT, submit_body(dst=c("1" * 21)), S.ESME_RINVDSTADR),
    ("schedule_bad_length", SUBMIT, submit_body(schedule=c("2401")), S.ESME_RINVSCHED),
    ("validity_too_long", SUBMIT, submit_body(validity=c("x" * 17)), S.ESME_RINVEXPIRY),
    ("sm_length_past_body", SUBMIT, submit_body(sm_length=10), S.ESME_RINVMSGLEN),
    ("sm_length_255", SUBMIT, submit_body(sm=b"x" * 255), S.ESME_RINVMSGLEN),
    ("tlv_header_truncated", SUBMIT, submit_body(tail=b"\x02\x0c\x00"), S.ESME_RINVOPTPARSTREAM),
    (
        "tlv_value_past_end",
        SUBMIT,
        submit_body(tail=bytes.fromhex("020c 0005 0001")),
        S.ESME_RINVOPTPARSTREAM,
    ),
    (
        "known_tlv_wrong_length",
        SUBMIT,
        submit_body(tail=bytes.fromhex("020c 0001 01")),
        S.ESME_RINVPARLEN,
    ),
    ("body_ends_early", SUBMIT, b"\x00\x05\x00Pigeon\x00", S.ESME_RINVCMDLEN),
    ("source_addr_no_nul", SUBMIT, b"\x00\x05\x00Pigeon", S.ESME_RINVSRCADR),
    ("system_id_too_long", BIND_TX, bind_body(system_id=c("s" * 16)), S.ESME_RINVSYSID),
    ("password_too_long", BIND_TX, bind_body(password=c("p" * 9)), S.ESME_RINVPASWD),
    ("system_type_too_long", BIND_TX, bind_body(system_type=c("t" * 13)), S.ESME_RINVSYSTYP),
    ("address_range_no_nul", BIND_TX, bind_body(address_range=b"^44"), S.ESME_RBINDFAIL),
    ("bind_body_empty", BIND_TX, b"", S.ESME_RINVCMDLEN),
    ("message_id_too_long", QUERY, c("9" * 65) + b"\x00\x00\x00", S.ESME_RINVMSGID),
    (
        "no_destinations",
        MULTI,
        b"\x00\x05\x00Pigeon\x00\x00" + b"\x00" * 10,
        S.ESME_RINVNUMDESTS,
    ),
    (
        "bad_dest_flag",
        MULTI,
        b"\x00\x05\x00Pigeon\x00\x01\x03" + b"\x00" * 10,
        S.ESME_RINVDESTFLAG,
    ),
    (
        "dl_name_too_long",
        MULTI,
        b"\x00\x05\x00Pigeon\x00\x01\x02" + c("d" * 21) + b"\x00" * 10,
        S.ESME_RINVDLNAME,
    ),
]


@pytest.mark.parametrize(
    ("command_id", "body", "status"),
    [case[1:] for case in FIELD_ERRORS],
    ids=[case[0] for case in FIELD_ERRORS],
)
def test_bad_body_yields_status_and_matching_response(
    command_id: int, body: bytes, status: int
) -> None:
    """A malformed request body gives its status, and a *_resp carrying it and the seq."""
    error = only_error(frame(command_id, 77, body))
    assert (error.status, error.command_id, error.sequence_number) == (status, command_id, 77)
    assert not error.fatal
    assert "unexpected" not in error.reason
    answer = error.response()
    assert answer is not None
    assert answer.command_id == command_id | 0x80000000
    assert (answer.sequence_number, answer.command_status) == (77, status)
    encode(answer)  # the answer is always encodable


def test_unknown_command_id_is_skipped_with_rinvcmdid() -> None:
    """Unknown command_id: ESME_RINVCMDID, generic_nack with its seq, decoding goes on."""
    decoder = PduDecoder()
    results = decoder.feed(frame(0x00000099, 5, b"junk") + frame(0x15, 6))
    assert len(results) == 2
    error, nxt = results
    assert isinstance(error, DecodeError)
    assert (error.status, error.sequence_number, error.fatal) == (S.ESME_RINVCMDID, 5, False)
    assert error.response() == p.GenericNack(sequence_number=5, command_status=S.ESME_RINVCMDID)
    assert nxt == p.EnquireLink(sequence_number=6)
    assert not decoder.failed


@pytest.mark.parametrize("length", [0, 1, 15])
def test_command_length_below_header_is_fatal(length: int) -> None:
    """command_length < 16 is ESME_RINVCMDLEN, fatal: the decoder stops for good."""
    decoder = PduDecoder()
    results = decoder.feed(struct.pack(">IIII", length, 0x15, 0, 3))
    assert len(results) == 1
    error = results[0]
    assert isinstance(error, DecodeError)
    assert (error.status, error.fatal, error.sequence_number) == (S.ESME_RINVCMDLEN, True, 3)
    assert error.response() == p.GenericNack(sequence_number=3, command_status=S.ESME_RINVCMDLEN)
    assert decoder.failed
    assert decoder.feed(frame(0x15, 4)) == []


def test_command_length_above_configured_max_is_fatal() -> None:
    """command_length above max_command_length is fatal without waiting for the body."""
    decoder = PduDecoder(max_command_length=1024)
    results = decoder.feed(struct.pack(">IIII", 1025, 0x04, 0, 8))
    assert len(results) == 1
    assert isinstance(results[0], DecodeError)
    assert results[0].fatal
    assert results[0].status == S.ESME_RINVCMDLEN


def test_command_length_at_max_is_accepted() -> None:
    """A frame exactly max_command_length long decodes."""
    body = submit_body(tail=bytes.fromhex("0424") + struct.pack(">H", 100) + b"x" * 100)
    wire = frame(SUBMIT, 1, body)
    (result,) = PduDecoder(max_command_length=len(wire)).feed(wire)
    assert isinstance(result, p.SubmitSm)
    assert result.tlv(tlv.MESSAGE_PAYLOAD) == b"x" * 100


def test_default_max_command_length_is_64k() -> None:
    """Without configuration, 65536 octets pass and 65537 are a framing error."""
    decoder = PduDecoder()
    assert decoder.feed(struct.pack(">IIII", 65536, 0x15, 0, 1)) == []
    assert not decoder.failed
    decoder = PduDecoder()
    (error,) = decoder.feed(struct.pack(">IIII", 65537, 0x15, 0, 1))
    assert isinstance(error, DecodeError)
    assert error.fatal


def test_bad_response_body_is_reported_but_not_answered() -> None:
    """A malformed response is an error the driver must not answer (response() is None)."""
    error = only_error(frame(0x80000004, 9, c("x" * 70)))
    assert error.is_response
    assert error.status == S.ESME_RINVMSGID
    assert error.response() is None


def test_bad_outbind_is_answered_with_generic_nack() -> None:
    """outbind has no response, so a malformed one is answered with generic_nack."""
    error = only_error(frame(0x0B, 4, c("s" * 20)))
    assert error.response() == p.GenericNack(sequence_number=4, command_status=S.ESME_RINVSYSID)


def test_error_response_with_empty_body_decodes_with_defaults() -> None:
    """Responses that omit their body (error statuses) decode with empty fields."""
    for command_id, cls in [
        (0x80000002, p.BindTransmitterResp),
        (0x80000004, p.SubmitSmResp),
        (0x80000103, p.DataSmResp),
        (0x80000003, p.QuerySmResp),
        (0x80000021, p.SubmitMultiResp),
    ]:
        result = decode(frame(command_id, 3, status=0x45))
        assert result == cls(sequence_number=3, command_status=0x45)


def test_vendor_status_and_request_status_survive() -> None:
    """Vendor statuses (0x400+) decode as ints; a request's non-zero status is tolerated."""
    assert decode(frame(0x80000004, 1, status=0x401)) == p.SubmitSmResp(
        sequence_number=1, command_status=0x401
    )
    assert decode(frame(0x15, 2, status=7)) == p.EnquireLink(sequence_number=2, command_status=7)


def test_header_only_pdu_with_garbage_body_is_rejected() -> None:
    """Trailing octets that are not TLVs after enquire_link give ESME_RINVOPTPARSTREAM."""
    error = only_error(frame(0x15, 2, b"\x01"))
    assert error.status == S.ESME_RINVOPTPARSTREAM
    assert error.response() == p.EnquireLinkResp(
        sequence_number=2, command_status=S.ESME_RINVOPTPARSTREAM
    )


def test_decode_rejects_frame_whose_length_disagrees() -> None:
    """decode() of a single frame checks command_length against the octets given."""
    wire = frame(0x15, 1)
    assert isinstance(decode(wire + b"\x00"), DecodeError)
    assert isinstance(decode(wire[:10]), DecodeError)


# --- partial and coalesced frames -------------------------------------------------------------


def sample_frames() -> list[bytes]:
    """Three frames of different types."""
    return [
        frame(SUBMIT, 1, submit_body()),
        frame(0x15, 2),
        frame(0x80000004, 3, c("abc")),
    ]


def test_byte_by_byte_feeding_yields_each_frame_once_complete() -> None:
    """Feeding one octet at a time yields a PDU exactly when its last octet arrives."""
    decoder = PduDecoder()
    wire = b"".join(sample_frames())
    boundaries = {16 + len(submit_body()), 16 + len(submit_body()) + 16, len(wire)}
    seen = []
    for i in range(len(wire)):
        out = decoder.feed(wire[i : i + 1])
        if i + 1 in boundaries:
            assert len(out) == 1
            seen.extend(out)
        else:
            assert out == []
    assert seen == [decode(f) for f in sample_frames()]
    assert decoder.buffered == 0


def test_header_split_and_body_split_are_reassembled() -> None:
    """A frame split inside its header and again inside its body decodes once complete."""
    wire = sample_frames()[0]
    decoder = PduDecoder()
    assert decoder.feed(wire[:3]) == []
    assert decoder.buffered == 3
    assert decoder.feed(wire[3:20]) == []
    assert decoder.feed(wire[20:]) == [decode(wire)]
    assert decoder.buffered == 0


def test_coalesced_frames_with_partial_tail() -> None:
    """Two whole frames and part of a third in one chunk: two out, the rest buffered."""
    frames = sample_frames()
    wire = b"".join(frames)
    decoder = PduDecoder()
    out = decoder.feed(wire[:-2])
    assert out == [decode(f) for f in frames[:2]]
    assert decoder.buffered == len(frames[2]) - 2
    assert decoder.feed(wire[-2:]) == [decode(frames[2])]


def test_feed_accepts_bytearray_and_memoryview() -> None:
    """feed() takes any bytes-like chunk a socket API may return."""
    wire = b"".join(sample_frames())
    assert PduDecoder().feed(bytearray(wire)) == PduDecoder().feed(memoryview(wire))
    assert PduDecoder().feed(b"") == []


# --- encoder validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pdu",
    [
        p.BindTransmitter(system_id="s" * 16),
        p.BindTransmitter(password="p" * 9),
        p.SubmitSm(source_addr="a" * 21),
        p.SubmitSm(destination_addr="1\x002"),
        p.SubmitSm(source_addr="€uro"),
        p.SubmitSm(short_message=b"x" * 255),
        p.SubmitSm(esm_class=256),
        p.SubmitSm(validity_period="1"),
        p.SubmitSm(sequence_number=-1),
        p.SubmitSm(tlvs=((0x0424, b"x" * 65536),)),
        p.SubmitMulti(),
        p.SubmitMulti(dest_addresses=(p.DistributionList("x"),) * 255),
        p.DataSm(source_addr="a" * 65),
        p.QuerySmResp(final_date="soon"),
    ],
)
def test_encode_refuses_what_the_spec_forbids(pdu: p.Pdu) -> None:
    """encode() raises ValueError rather than put an invalid field on the wire."""
    with pytest.raises(ValueError, match=r"."):
        encode(pdu)


def test_encode_rejects_non_pdus() -> None:
    """encode() only takes the PDU classes of this package."""
    with pytest.raises(TypeError):
        encode(p.Pdu())


def test_encode_accepts_field_maxima() -> None:
    """Values exactly at the spec limits encode and decode back."""
    pdu = p.SubmitSm(
        service_type="s" * 5,
        source_addr="a" * 20,
        destination_addr="1" * 20,
        short_message=b"x" * 254,
        schedule_delivery_time="240131120000000+",
    )
    assert decode(encode(pdu)) == pdu


# --- response_for -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_pdu", "response_cls"),
    [
        (p.BindTransmitter(), p.BindTransmitterResp),
        (p.BindReceiver(), p.BindReceiverResp),
        (p.BindTransceiver(), p.BindTransceiverResp),
        (p.Unbind(), p.UnbindResp),
        (p.EnquireLink(), p.EnquireLinkResp),
        (p.SubmitSm(), p.SubmitSmResp),
        (p.DeliverSm(), p.DeliverSmResp),
        (p.SubmitMulti(), p.SubmitMultiResp),
        (p.DataSm(), p.DataSmResp),
        (p.QuerySm(), p.QuerySmResp),
        (p.CancelSm(), p.CancelSmResp),
        (p.ReplaceSm(), p.ReplaceSmResp),
        (p.Outbind(), p.GenericNack),
        (p.AlertNotification(), p.GenericNack),
    ],
)
def test_response_for_builds_matching_response(
    request_pdu: p.Pdu, response_cls: type[p.Pdu]
) -> None:
    """response_for() answers each request with its own *_resp, seq and status."""
    req = type(request_pdu)(sequence_number=31)
    resp = response_for(req, S.ESME_RSYSERR)
    assert type(resp) is response_cls
    assert (resp.sequence_number, resp.command_status) == (31, S.ESME_RSYSERR)


def test_response_for_defaults_to_ok_and_refuses_responses() -> None:
    """The default status is ESME_ROK; responses are never answered."""
    assert response_for(p.SubmitSm(sequence_number=2)) == p.SubmitSmResp(sequence_number=2)
    with pytest.raises(ValueError, match="never answered"):
        response_for(p.SubmitSmResp())


# --- tolerated deviations seen in the field ---------------------------------------------------


def test_message_id_without_nul_in_response_is_tolerated() -> None:
    """submit_sm_resp whose message_id lacks its NUL still yields the id (no resubmission)."""
    assert decode(frame(0x80000004, 3, b"7a3f")) == p.SubmitSmResp(
        sequence_number=3, message_id="7a3f"
    )


def test_bind_without_trailing_address_range_is_tolerated() -> None:
    """A bind whose body stops after addr_npi decodes with an empty address_range."""
    body = c("esme") + c("pw") + c("") + b"\x34\x01\x01"
    assert decode(frame(BIND_TX, 1, body)) == p.BindTransmitter(
        sequence_number=1, system_id="esme", password="pw", addr_ton=1, addr_npi=1
    )


def test_sm_length_is_the_short_message_length() -> None:
    """sm_length is derived from short_message on every PDU that has one."""
    assert p.SubmitSm(short_message=b"abc").sm_length == 3
    assert p.SubmitMulti(short_message=b"").sm_length == 0
    assert p.ReplaceSm(short_message=b"x" * 254).sm_length == 254
