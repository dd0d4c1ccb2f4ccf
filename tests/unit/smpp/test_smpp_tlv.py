"""Typed optional parameters (TLVs) and the SMPP 3.4 constant tables."""

from __future__ import annotations

import pytest

from pigeon.smpp import pdu as p
from pigeon.smpp import tlv
from pigeon.smpp.codec import DecodeError, decode, encode
from pigeon.smpp.constants import (
    CommandId,
    CommandStatus,
    GsmFeature,
    MessageType,
    MessagingMode,
    ReceiptRequest,
    SmeAck,
    esm_class,
    is_delivery_receipt,
    message_type,
    messaging_mode,
    receipt_request,
    registered_delivery,
    status_name,
)


@pytest.mark.parametrize(
    ("spec", "value", "raw"),
    [
        (tlv.DEST_ADDR_SUBUNIT, 1, b"\x01"),
        (tlv.SOURCE_PORT, 2948, b"\x0b\x84"),
        (tlv.DESTINATION_PORT, 9200, b"\x23\xf0"),
        (tlv.SAR_MSG_REF_NUM, 0x1234, b"\x12\x34"),
        (tlv.SAR_TOTAL_SEGMENTS, 3, b"\x03"),
        (tlv.SAR_SEGMENT_SEQNUM, 2, b"\x02"),
        (tlv.MORE_MESSAGES_TO_SEND, 1, b"\x01"),
        (tlv.PAYLOAD_TYPE, 0, b"\x00"),
        (tlv.MESSAGE_PAYLOAD, b"long text", b"long text"),
        (tlv.RECEIPTED_MESSAGE_ID, "a1b2c3", b"a1b2c3\x00"),
        (tlv.MESSAGE_STATE, 2, b"\x02"),
        (tlv.NETWORK_ERROR_CODE, tlv.NetworkErrorCode(3, 0x0101), b"\x03\x01\x01"),
        (tlv.USER_MESSAGE_REFERENCE, 7, b"\x00\x07"),
        (tlv.PRIVACY_INDICATOR, 2, b"\x02"),
        (tlv.CALLBACK_NUM, b"\x01\x01\x01123", b"\x01\x01\x01123"),
        (tlv.SOURCE_SUBADDRESS, b"\xa0\x01", b"\xa0\x01"),
        (tlv.DEST_SUBADDRESS, b"\xa0\x02", b"\xa0\x02"),
        (tlv.LANGUAGE_INDICATOR, 1, b"\x01"),
        (tlv.MS_VALIDITY, 3, b"\x03"),
        (tlv.SC_INTERFACE_VERSION, 0x34, b"\x34"),
        (tlv.ITS_SESSION_INFO, b"\x05\x01", b"\x05\x01"),
        (tlv.USSD_SERVICE_OP, 17, b"\x11"),
        (tlv.USER_RESPONSE_CODE, 9, b"\x09"),
        (tlv.ALERT_ON_MESSAGE_DELIVERY, True, b""),
        (tlv.DELIVERY_FAILURE_REASON, 1, b"\x01"),
        (tlv.ADDITIONAL_STATUS_INFO_TEXT, "no route", b"no route\x00"),
        (tlv.DPF_RESULT, 1, b"\x01"),
        (tlv.SET_DPF, 1, b"\x01"),
        (tlv.MS_AVAILABILITY_STATUS, 2, b"\x02"),
        (tlv.NUMBER_OF_MESSAGES, 4, b"\x04"),
        (tlv.QOS_TIME_TO_LIVE, 86400, b"\x00\x01\x51\x80"),
        (tlv.DISPLAY_TIME, 1, b"\x01"),
        (tlv.SMS_SIGNAL, 0x0102, b"\x01\x02"),
        (tlv.MS_MSG_WAIT_FACILITIES, 0x80, b"\x80"),
        (tlv.CALLBACK_NUM_PRES_IND, 1, b"\x01"),
        (tlv.CALLBACK_NUM_ATAG, b"\x00Tom", b"\x00Tom"),
        (tlv.SOURCE_NETWORK_TYPE, 1, b"\x01"),
        (tlv.DEST_NETWORK_TYPE, 2, b"\x02"),
        (tlv.SOURCE_BEARER_TYPE, 1, b"\x01"),
        (tlv.DEST_BEARER_TYPE, 1, b"\x01"),
        (tlv.SOURCE_TELEMATICS_ID, 1, b"\x01"),
        (tlv.DEST_TELEMATICS_ID, 1, b"\x00\x01"),
        (tlv.ITS_REPLY_TYPE, 0, b"\x00"),
    ],
    ids=lambda v: v.name if isinstance(v, tlv.TlvSpec) else "",
)
def test_known_tlv_typed_value_round_trips(
    spec: tlv.TlvSpec[object], value: object, raw: bytes
) -> None:
    """Each known TLV encodes its typed value to the spec's octets and reads it back."""
    assert spec(value) == (spec.tag, raw)
    pdu = p.DeliverSm(tlvs=(spec(value),))
    decoded = decode(encode(pdu))
    assert isinstance(decoded, p.DeliverSm)
    assert decoded.tlv(spec) == value


def test_tags_match_the_specification_table() -> None:
    """Tag numbers are those of SMPP 3.4, 5.3.2 (spot checks across the table)."""
    assert tlv.Tag.DEST_ADDR_SUBUNIT == 0x0005
    assert tlv.Tag.RECEIPTED_MESSAGE_ID == 0x001E
    assert tlv.Tag.SAR_MSG_REF_NUM == 0x020C
    assert tlv.Tag.CALLBACK_NUM == 0x0381
    assert tlv.Tag.MESSAGE_PAYLOAD == 0x0424
    assert tlv.Tag.MESSAGE_STATE == 0x0427
    assert tlv.Tag.ALERT_ON_MESSAGE_DELIVERY == 0x130C
    assert tlv.Tag.ITS_SESSION_INFO == 0x1383
    assert set(tlv.SPECS) == {int(tag) for tag in tlv.Tag}


def test_unknown_and_vendor_tlvs_survive_byte_for_byte() -> None:
    """Unknown tags keep their raw value and order through decode and encode."""
    wire = encode(p.DeliverSm(tlvs=((0x1400, b"\x00\xffvendor"), (0x0427, b"\x02"), (0x2150, b""))))
    decoded = decode(wire)
    assert isinstance(decoded, p.DeliverSm)
    assert decoded.tlvs == ((0x1400, b"\x00\xffvendor"), (0x0427, b"\x02"), (0x2150, b""))
    assert encode(decoded) == wire


def test_receipted_message_id_without_nul_is_tolerated() -> None:
    """Some SMSCs send receipted_message_id without its NUL: the id is still read."""
    assert p.DeliverSm(tlvs=((0x001E, b"abc"),)).tlv(tlv.RECEIPTED_MESSAGE_ID) == "abc"


def test_source_telematics_id_accepts_one_or_two_octets() -> None:
    """source_telematics_id decodes with the 1-octet value of 5.3.2.6 or the 2 some send."""
    for raw in (b"\x01", b"\x00\x01"):
        decoded = decode(encode(p.SubmitSm(tlvs=((0x0010, raw),))))
        assert isinstance(decoded, p.SubmitSm)
        assert decoded.tlv(tlv.SOURCE_TELEMATICS_ID) == 1


def test_wrong_length_of_known_tlv_is_rinvparlen() -> None:
    """network_error_code with 2 octets instead of 3 is ESME_RINVPARLEN."""
    result = decode(encode(p.DeliverSm(tlvs=((0x0423, b"\x03\x01"),))))
    assert isinstance(result, DecodeError)
    assert result.status == CommandStatus.ESME_RINVPARLEN


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (tlv.SAR_TOTAL_SEGMENTS, 256),
        (tlv.SAR_MSG_REF_NUM, -1),
        (tlv.CALLBACK_NUM, b"12"),
        (tlv.RECEIPTED_MESSAGE_ID, "x" * 65),
        (tlv.RECEIPTED_MESSAGE_ID, "a\x00b"),
        (tlv.NETWORK_ERROR_CODE, tlv.NetworkErrorCode(3, 70000)),
        (tlv.ALERT_ON_MESSAGE_DELIVERY, False),
    ],
)
def test_tlv_spec_refuses_values_that_do_not_fit(spec: tlv.TlvSpec[object], value: object) -> None:
    """Building a TLV from an out-of-range value raises ValueError."""
    with pytest.raises(ValueError, match=r"."):
        spec(value)


def test_absent_tlv_reads_none_and_named_view_lists_all() -> None:
    """tlv() is None when absent; named() shows typed known tags and raw unknown ones."""
    pdu = p.DeliverSm(tlvs=(tlv.MESSAGE_STATE(2), (0x1400, b"x"), (0x0424, b"")))
    assert pdu.tlv(tlv.SAR_MSG_REF_NUM) is None
    assert tlv.named(pdu.tlvs) == {"message_state": 2, "0x1400": b"x", "message_payload": b""}
    assert tlv.find(pdu.tlvs, 0x1400) == b"x"
    assert tlv.find(pdu.tlvs, 0x1401) is None


# --- constants --------------------------------------------------------------------------------


def test_command_status_table_matches_smpp_34() -> None:
    """Every command_status of SMPP 3.4, 5.1.3 has its specified value."""
    expected = {
        "ESME_ROK": 0x00, "ESME_RINVMSGLEN": 0x01, "ESME_RINVCMDLEN": 0x02,
        "ESME_RINVCMDID": 0x03, "ESME_RINVBNDSTS": 0x04, "ESME_RALYBND": 0x05,
        "ESME_RINVPRTFLG": 0x06, "ESME_RINVREGDLVFLG": 0x07, "ESME_RSYSERR": 0x08,
        "ESME_RINVSRCADR": 0x0A, "ESME_RINVDSTADR": 0x0B, "ESME_RINVMSGID": 0x0C,
        "ESME_RBINDFAIL": 0x0D, "ESME_RINVPASWD": 0x0E, "ESME_RINVSYSID": 0x0F,
        "ESME_RCANCELFAIL": 0x11, "ESME_RREPLACEFAIL": 0x13, "ESME_RMSGQFUL": 0x14,
        "ESME_RINVSERTYP": 0x15, "ESME_RINVNUMDESTS": 0x33, "ESME_RINVDLNAME": 0x34,
        "ESME_RINVDESTFLAG": 0x40, "ESME_RINVSUBREP": 0x42, "ESME_RINVESMCLASS": 0x43,
        "ESME_RCNTSUBDL": 0x44, "ESME_RSUBMITFAIL": 0x45, "ESME_RINVSRCTON": 0x48,
        "ESME_RINVSRCNPI": 0x49, "ESME_RINVDSTTON": 0x50, "ESME_RINVDSTNPI": 0x51,
        "ESME_RINVSYSTYP": 0x53, "ESME_RINVREPFLAG": 0x54, "ESME_RINVNUMMSGS": 0x55,
        "ESME_RTHROTTLED": 0x58, "ESME_RINVSCHED": 0x61, "ESME_RINVEXPIRY": 0x62,
        "ESME_RINVDFTMSGID": 0x63, "ESME_RX_T_APPN": 0x64, "ESME_RX_P_APPN": 0x65,
        "ESME_RX_R_APPN": 0x66, "ESME_RQUERYFAIL": 0x67, "ESME_RINVOPTPARSTREAM": 0xC0,
        "ESME_ROPTPARNOTALLWD": 0xC1, "ESME_RINVPARLEN": 0xC2, "ESME_RMISSINGOPTPARAM": 0xC3,
        "ESME_RINVOPTPARAMVAL": 0xC4, "ESME_RDELIVERYFAILURE": 0xFE, "ESME_RUNKNOWNERR": 0xFF,
    }  # fmt: skip
    assert {s.name: s.value for s in CommandStatus} == expected
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0x401) == "0x00000401"


def test_command_ids_match_smpp_34() -> None:
    """Command ids of SMPP 3.4, 5.1.2.1; each response id is its request's with bit 31 set."""
    assert CommandId.SUBMIT_SM == 0x04
    assert CommandId.DATA_SM == 0x103
    assert CommandId.ALERT_NOTIFICATION == 0x102
    assert CommandId.SUBMIT_MULTI == 0x21
    assert CommandId.OUTBIND == 0x0B
    assert CommandId.ENQUIRE_LINK == 0x15
    for member in CommandId:
        if member.name.endswith("_RESP"):
            assert CommandId[member.name[:-5]] | 0x80000000 == member


def test_esm_class_and_registered_delivery_helpers() -> None:
    """esm_class and registered_delivery compose and split into their bit fields."""
    esm = esm_class(MessagingMode.STORE_AND_FORWARD, MessageType.DEFAULT, GsmFeature.UDHI)
    assert esm == 0x43
    assert messaging_mode(esm) == MessagingMode.STORE_AND_FORWARD
    assert message_type(0x04) == MessageType.SMSC_DELIVERY_RECEIPT
    assert is_delivery_receipt(0x04)
    assert is_delivery_receipt(0x20)
    assert is_delivery_receipt(0x44)
    assert not is_delivery_receipt(0x40)
    assert not is_delivery_receipt(0x08)
    reg = registered_delivery(ReceiptRequest.FAILURE, SmeAck.MANUAL, intermediate=True)
    assert reg == 0x1A
    assert receipt_request(reg) is ReceiptRequest.FAILURE
