"""Golden frames for every SMPP 3.4 PDU, assembled by hand from the specification's tables.

The expected bytes are written out field by field here (hex literals, or ASCII text plus its
NUL and a hand-packed header), never produced by the encoder under test.
"""

from __future__ import annotations

import struct

import pytest

from pigeon.smpp import pdu as p
from pigeon.smpp.codec import decode, encode


def c(text: str) -> bytes:
    """A C-Octet string: the ASCII text and its NUL terminator."""
    return text.encode("ascii") + b"\x00"


def frame(command_id: int, status: int, seq: int, *body: bytes) -> bytes:
    """Header (command_length counts itself) followed by the body octets."""
    data = b"".join(body)
    return struct.pack(">IIII", 16 + len(data), command_id, status, seq) + data


def hexes(*parts: str) -> bytes:
    """Bytes from hex fragments (spaces allowed)."""
    return bytes.fromhex("".join(parts).replace(" ", ""))


RECEIPT = (
    b"id:a1b2c3 sub:001 dlvrd:001 submit date:2401311200 done date:2401311201"
    b" stat:DELIVRD err:000 text:hello"
)

GOLDEN: list[tuple[str, p.Pdu, bytes]] = [
    (
        "bind_transmitter",
        p.BindTransmitter(sequence_number=1, system_id="smppclient1", password="password"),
        hexes(
            "0000002a 00000002 00000000 00000001",  # length 42, bind_transmitter, ok, seq 1
            "736d7070636c69656e743100",  # system_id "smppclient1"
            "70617373776f726400",  # password "password"
            "00",  # system_type ""
            "34 00 00",  # interface_version 3.4, addr_ton, addr_npi
            "00",  # address_range ""
        ),
    ),
    (
        "bind_receiver",
        p.BindReceiver(
            sequence_number=2,
            system_id="esme",
            password="secret",
            system_type="VMS",
            addr_ton=1,
            addr_npi=1,
            address_range="^44",
        ),
        frame(0x00000001, 0, 2, c("esme"), c("secret"), c("VMS"), b"\x34\x01\x01", c("^44")),
    ),
    (
        "bind_transceiver",
        p.BindTransceiver(
            sequence_number=3, system_id="esme", password="pw", interface_version=0x33
        ),
        frame(0x00000009, 0, 3, c("esme"), c("pw"), c(""), b"\x33\x00\x00", c("")),
    ),
    (
        "bind_transmitter_resp",
        p.BindTransmitterResp(sequence_number=1, system_id="SMSC", tlvs=((0x0210, b"\x34"),)),
        frame(0x80000002, 0, 1, c("SMSC"), hexes("0210 0001 34")),  # sc_interface_version
    ),
    (
        "bind_receiver_resp_error_has_no_body",
        p.BindReceiverResp(sequence_number=2, command_status=0x0E),
        hexes("00000010 80000001 0000000e 00000002"),  # ESME_RINVPASWD
    ),
    (
        "bind_transceiver_resp",
        p.BindTransceiverResp(sequence_number=3, system_id="SMSC"),
        frame(0x80000009, 0, 3, c("SMSC")),
    ),
    (
        "outbind",
        p.Outbind(sequence_number=4, system_id="SMSC", password="pw"),
        frame(0x0000000B, 0, 4, c("SMSC"), c("pw")),
    ),
    ("unbind", p.Unbind(sequence_number=7), hexes("00000010 00000006 00000000 00000007")),
    (
        "unbind_resp",
        p.UnbindResp(sequence_number=7),
        hexes("00000010 80000006 00000000 00000007"),
    ),
    (
        "generic_nack",
        p.GenericNack(sequence_number=9, command_status=0x03),
        hexes("00000010 80000000 00000003 00000009"),
    ),
    (
        "enquire_link",
        p.EnquireLink(sequence_number=42),
        hexes("00000010 00000015 00000000 0000002a"),
    ),
    (
        "enquire_link_resp",
        p.EnquireLinkResp(sequence_number=42),
        hexes("00000010 80000015 00000000 0000002a"),
    ),
    (
        "submit_sm",
        p.SubmitSm(
            sequence_number=5,
            source_addr_ton=5,
            source_addr="Pigeon",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900123",
            registered_delivery=1,
            short_message=b"hello",
            tlvs=((0x0204, b"\x00\x01"),),
        ),
        hexes(
            "0000003e 00000004 00000000 00000005",  # length 62
            "00",  # service_type ""
            "05 00 506967656f6e00",  # alphanumeric "Pigeon"
            "01 01 34343737303039303031323300",  # international ISDN "447700900123"
            "00 00 00",  # esm_class, protocol_id, priority_flag
            "00 00",  # schedule_delivery_time, validity_period
            "01 00 00 00",  # registered_delivery, replace_if_present, data_coding, default id
            "05 68656c6c6f",  # sm_length 5, "hello"
            "0204 0002 0001",  # user_message_reference 1
        ),
    ),
    (
        "submit_sm_resp",
        p.SubmitSmResp(sequence_number=5, message_id="a1b2c3"),
        frame(0x80000004, 0, 5, c("a1b2c3")),
    ),
    (
        "submit_sm_resp_error_has_no_body",
        p.SubmitSmResp(sequence_number=5, command_status=0x58),
        hexes("00000010 80000004 00000058 00000005"),  # ESME_RTHROTTLED
    ),
    (
        "deliver_sm_receipt",
        p.DeliverSm(
            sequence_number=6,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            dest_addr_ton=5,
            destination_addr="Pigeon",
            esm_class=0x04,
            short_message=RECEIPT,
            tlvs=((0x001E, c("a1b2c3")), (0x0427, b"\x02")),
        ),
        frame(
            0x00000005,
            0,
            6,
            c(""),
            b"\x01\x01",
            c("447700900123"),
            b"\x05\x00",
            c("Pigeon"),
            b"\x04\x00\x00",
            c(""),
            c(""),
            b"\x00\x00\x00\x00",
            bytes((len(RECEIPT),)),
            RECEIPT,
            hexes("001e 0007"),
            c("a1b2c3"),  # receipted_message_id
            hexes("0427 0001 02"),  # message_state DELIVERED
        ),
    ),
    (
        "deliver_sm_resp",
        p.DeliverSmResp(sequence_number=6),
        hexes("00000011 80000005 00000000 00000006 00"),
    ),
    (
        "submit_multi",
        p.SubmitMulti(
            sequence_number=8,
            source_addr_ton=5,
            source_addr="Pigeon",
            dest_addresses=(
                p.SmeAddress(1, 1, "447700900123"),
                p.DistributionList("friends"),
            ),
            data_coding=8,
            short_message=b"\x00H\x00i",
        ),
        frame(
            0x00000021,
            0,
            8,
            c(""),
            b"\x05\x00",
            c("Pigeon"),
            b"\x02",  # number_of_dests
            b"\x01\x01\x01",
            c("447700900123"),  # dest_flag 1: SME address
            b"\x02",
            c("friends"),  # dest_flag 2: distribution list
            b"\x00\x00\x00",
            c(""),
            c(""),
            b"\x00\x00\x08\x00",
            b"\x04\x00H\x00i",
        ),
    ),
    (
        "submit_multi_resp",
        p.SubmitMultiResp(
            sequence_number=8,
            message_id="m1",
            unsuccess_smes=(p.UnsuccessSme(1, 1, "447700900999", 0x0B),),
        ),
        frame(
            0x80000021,
            0,
            8,
            c("m1"),
            b"\x01",
            b"\x01\x01",
            c("447700900999"),
            hexes("0000000b"),
        ),
    ),
    (
        "data_sm",
        p.DataSm(
            sequence_number=10,
            service_type="WAP",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            dest_addr_ton=5,
            destination_addr="Pigeon",
            registered_delivery=1,
            data_coding=4,
            tlvs=((0x0424, b"abc"), (0x020A, b"\x0b\x84")),
        ),
        frame(
            0x00000103,
            0,
            10,
            c("WAP"),
            b"\x01\x01",
            c("447700900123"),
            b"\x05\x00",
            c("Pigeon"),
            b"\x00\x01\x04",
            hexes("0424 0003 616263"),  # message_payload "abc"
            hexes("020a 0002 0b84"),  # source_port 2948
        ),
    ),
    (
        "data_sm_resp",
        p.DataSmResp(sequence_number=10, message_id="d1", tlvs=((0x001D, c("ok")),)),
        frame(0x80000103, 0, 10, c("d1"), hexes("001d 0003"), c("ok")),
    ),
    (
        "query_sm",
        p.QuerySm(sequence_number=11, message_id="a1b2c3", source_addr_ton=5, source_addr="Pigeon"),
        frame(0x00000003, 0, 11, c("a1b2c3"), b"\x05\x00", c("Pigeon")),
    ),
    (
        "query_sm_resp",
        p.QuerySmResp(
            sequence_number=11,
            message_id="a1b2c3",
            final_date="240131120000000+",
            message_state=2,
        ),
        frame(0x80000003, 0, 11, c("a1b2c3"), c("240131120000000+"), b"\x02\x00"),
    ),
    (
        "cancel_sm",
        p.CancelSm(
            sequence_number=12,
            message_id="a1b2c3",
            source_addr_ton=5,
            source_addr="Pigeon",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900123",
        ),
        frame(
            0x00000008,
            0,
            12,
            c(""),
            c("a1b2c3"),
            b"\x05\x00",
            c("Pigeon"),
            b"\x01\x01",
            c("447700900123"),
        ),
    ),
    (
        "cancel_sm_resp",
        p.CancelSmResp(sequence_number=12),
        hexes("00000010 80000008 00000000 0000000c"),
    ),
    (
        "replace_sm",
        p.ReplaceSm(
            sequence_number=13,
            message_id="a1b2c3",
            source_addr_ton=5,
            source_addr="Pigeon",
            validity_period="000001000000000R",
            registered_delivery=1,
            short_message=b"new",
        ),
        frame(
            0x00000007,
            0,
            13,
            c("a1b2c3"),
            b"\x05\x00",
            c("Pigeon"),
            c(""),
            c("000001000000000R"),
            b"\x01\x00\x03new",
        ),
    ),
    (
        "replace_sm_resp",
        p.ReplaceSmResp(sequence_number=13),
        hexes("00000010 80000007 00000000 0000000d"),
    ),
    (
        "alert_notification",
        p.AlertNotification(
            sequence_number=14,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            esme_addr_ton=5,
            esme_addr="Pigeon",
            tlvs=((0x0422, b"\x00"),),
        ),
        frame(
            0x00000102,
            0,
            14,
            b"\x01\x01",
            c("447700900123"),
            b"\x05\x00",
            c("Pigeon"),
            hexes("0422 0001 00"),  # ms_availability_status available
        ),
    ),
]


def test_golden_cover_every_pdu_class() -> None:
    """The golden list has at least one frame for each of the 27 SMPP 3.4 PDUs."""
    assert {type(pdu) for _, pdu, _ in GOLDEN} == set(p.PDU_CLASSES.values())


@pytest.mark.parametrize(
    ("pdu", "wire"), [(g[1], g[2]) for g in GOLDEN], ids=[g[0] for g in GOLDEN]
)
def test_encode_matches_golden_frame(pdu: p.Pdu, wire: bytes) -> None:
    """encode() produces exactly the hand-assembled frame."""
    assert encode(pdu) == wire


@pytest.mark.parametrize(
    ("pdu", "wire"), [(g[1], g[2]) for g in GOLDEN], ids=[g[0] for g in GOLDEN]
)
def test_decode_matches_golden_pdu(pdu: p.Pdu, wire: bytes) -> None:
    """decode() of the hand-assembled frame gives back the expected PDU, field for field."""
    assert decode(wire) == pdu


def test_bind_transmitter_fields_sit_where_the_spec_puts_them() -> None:
    """The spec's example bind: header fields and each body field at its byte offset."""
    wire = encode(
        p.BindTransmitter(sequence_number=1, system_id="smppclient1", password="password")
    )
    assert struct.unpack(">IIII", wire[:16]) == (42, 2, 0, 1)
    assert wire[16:28] == b"smppclient1\x00"
    assert wire[28:37] == b"password\x00"
    assert wire[37:] == b"\x00\x34\x00\x00\x00"


def test_deliver_sm_resp_without_body_is_accepted() -> None:
    """A deliver_sm_resp that omits its NUL message_id (seen in the field) decodes."""
    assert decode(hexes("00000010 80000005 00000000 00000006")) == p.DeliverSmResp(
        sequence_number=6
    )


def test_password_is_not_in_repr() -> None:
    """Bind and outbind reprs leave the password out, so logs never show it."""
    bind = p.BindTransceiver(system_id="esme", password="hunter2")
    outbind = p.Outbind(system_id="smsc", password="hunter2")
    assert "hunter2" not in repr(bind)
    assert "hunter2" not in repr(outbind)
