"""Delivery receipt text parsing, formatting and message-id correlation."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.smpp import pdu as p
from pigeon.smpp import tlv
from pigeon.smpp.constants import MessageState
from pigeon.smpp.receipt import (
    ReceiptText,
    format_receipt,
    id_candidates,
    normalise_message_id,
    parse_receipt,
    parse_receipt_fields,
    receipt_from_pdu,
    stat_state,
)

STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2401311200 done date:2401311201"
    " stat:DELIVRD err:000 text:Your code is 1234"
)


def test_standard_receipt_parses_every_field() -> None:
    """The Appendix B format gives id, counts, both dates, stat, err and text."""
    r = parse_receipt(STANDARD)
    assert r == ReceiptText(
        message_id="0123456789",
        submitted=1,
        delivered=1,
        submit_date=datetime(2024, 1, 31, 12, 0),
        done_date=datetime(2024, 1, 31, 12, 1),
        stat="DELIVRD",
        error="000",
        text="Your code is 1234",
    )
    assert r.state is MessageState.DELIVERED


def test_keys_are_case_insensitive_and_dates_may_have_seconds() -> None:
    """Upper-case keys, 12-digit dates and extra spaces are accepted."""
    r = parse_receipt(
        "ID:ABCDEF   SUB:1 DLVRD:0  SUBMIT DATE:240131120059 DONE DATE:240131120105"
        " STAT:UNDELIV  ERR:034 Text:"
    )
    assert r is not None
    assert r.message_id == "ABCDEF"
    assert (r.submitted, r.delivered) == (1, 0)
    assert r.submit_date == datetime(2024, 1, 31, 12, 0, 59)
    assert r.done_date == datetime(2024, 1, 31, 12, 1, 5)
    assert r.state is MessageState.UNDELIVERABLE
    assert r.error == "034"
    assert r.text == ""


def test_missing_fields_and_underscored_keys() -> None:
    """Receipts with only some fields, or submit_date spellings, still parse."""
    r = parse_receipt("id:77 submit_date:20240131120000 stat:expired")
    assert r is not None
    assert r.message_id == "77"
    assert r.submit_date == datetime(2024, 1, 31, 12, 0)
    assert r.done_date is None
    assert r.submitted is None
    assert r.state is MessageState.EXPIRED


def test_text_may_contain_key_like_words() -> None:
    """Everything after text: is the text, even if it looks like more fields."""
    r = parse_receipt("id:1 stat:DELIVRD err:0 text:id:2 stat:REJECTD")
    assert r is not None
    assert r.message_id == "1"
    assert r.stat == "DELIVRD"
    assert r.text == "id:2 stat:REJECTD"


def test_invalid_values_become_none() -> None:
    """Garbled counts and dates are None rather than errors."""
    r = parse_receipt("id:1 sub:abc dlvrd: submit date:2413991200 done date:12 stat:FOO")
    assert r is not None
    assert (r.submitted, r.delivered, r.submit_date, r.done_date) == (None, None, None, None)
    assert r.state is None


def test_non_receipt_text_is_none() -> None:
    """A message with no id: field is not a receipt."""
    assert parse_receipt("hello, see you at 10:30") is None
    assert parse_receipt(b"") is None


def test_bytes_input_latin1_and_ucs2() -> None:
    """Receipt octets decode as latin-1, or UTF-16BE when they look like UCS-2."""
    assert parse_receipt(STANDARD.encode("ascii")) == parse_receipt(STANDARD)
    assert parse_receipt(STANDARD.encode("utf-16-be")) == parse_receipt(STANDARD)


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", MessageState.DELIVERED),
        ("delivered", MessageState.DELIVERED),
        ("EXPIRED", MessageState.EXPIRED),
        ("DELETED", MessageState.DELETED),
        ("UNDELIV", MessageState.UNDELIVERABLE),
        ("FAILED", MessageState.UNDELIVERABLE),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("UNKNOWN", MessageState.UNKNOWN),
        ("REJECTD", MessageState.REJECTED),
        ("ENROUTE", MessageState.ENROUTE),
        ("WHATEVER", None),
    ],
)
def test_stat_words_map_to_message_states(stat: str, state: MessageState | None) -> None:
    """Each stat word (and common spellings) maps to its message_state."""
    assert stat_state(stat) is state


def test_format_produces_the_standard_text() -> None:
    """format_receipt writes the Appendix B layout, zero-padded."""
    r = ReceiptText(
        message_id="a1",
        submitted=1,
        delivered=1,
        submit_date=datetime(2024, 1, 31, 12, 0, 30),
        done_date=datetime(2024, 1, 31, 12, 1, 45),
        stat="DELIVRD",
        error="0",
        text="hi",
    )
    assert format_receipt(r) == (
        "id:a1 sub:001 dlvrd:001 submit date:2401311200 done date:2401311201"
        " stat:DELIVRD err:000 text:hi"
    )
    assert "submit date:240131120030" in format_receipt(r, seconds=True)


def test_format_uses_message_state_when_stat_is_empty() -> None:
    """Without a stat word, the message_state gives the standard one."""
    text = format_receipt(ReceiptText(message_id="1", message_state=MessageState.REJECTED))
    assert "stat:REJECTD" in text


@given(
    st.text("0123456789abcdef", min_size=1, max_size=20),
    st.integers(0, 999),
    st.integers(0, 999),
    st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]),
    st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
        lambda d: d.replace(second=0, microsecond=0)
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(str.strip),
)
def test_format_then_parse_round_trips(
    message_id: str, sub: int, dlvrd: int, stat: str, when: datetime, text: str
) -> None:
    """Whatever format_receipt writes, parse_receipt reads back."""
    r = ReceiptText(message_id, sub, dlvrd, when, when, stat, "001", text)
    assert parse_receipt(format_receipt(r)) == r


def test_receipt_from_deliver_sm_prefers_tlvs() -> None:
    """receipted_message_id and message_state TLVs win over the text; MO is not a receipt."""
    deliver = p.DeliverSm(
        esm_class=0x04,
        short_message=STANDARD.encode(),
        tlvs=(
            tlv.RECEIPTED_MESSAGE_ID("75BCD15"),
            tlv.MESSAGE_STATE(MessageState.UNDELIVERABLE),
            tlv.NETWORK_ERROR_CODE(tlv.NetworkErrorCode(3, 1)),
        ),
    )
    r = receipt_from_pdu(deliver)
    assert r is not None
    assert r.message_id == "75BCD15"
    assert r.state is MessageState.UNDELIVERABLE
    assert r.network_error == tlv.NetworkErrorCode(3, 1)
    assert r.text == "Your code is 1234"
    assert receipt_from_pdu(p.DeliverSm(short_message=STANDARD.encode())) is None


_RECEIPT_TEXTS = st.one_of(
    st.builds(
        "id:{} sub:{:03d} dlvrd:{:03d} submit date:{} done date:{} stat:{} err:{}{}".format,
        st.from_regex(r"[0-9A-Za-z]{1,20}", fullmatch=True),
        st.integers(0, 999),
        st.integers(0, 999),
        st.sampled_from(["2401311200", "240131120059", "9912312359"]),
        st.sampled_from(["2401311201", "240131120100"]),
        st.sampled_from(["DELIVRD", "undeliv", "Rejectd"]),
        st.sampled_from(["000", "1", "abc"]),
        st.sampled_from(["", " text:hello ", " text:"]),
    ),
    st.sampled_from(["", "no receipt here", "ID:9 STAT:DELIVRD", "stat:EXPIRED id:0a err:5"]),
    st.text(max_size=40),
)


@given(
    _RECEIPT_TEXTS,
    st.booleans(),
    st.one_of(st.none(), st.from_regex(r"[0-9A-F]{1,16}", fullmatch=True)),
    st.one_of(st.none(), st.sampled_from(list(MessageState))),
    st.one_of(st.none(), st.builds(tlv.NetworkErrorCode, st.integers(1, 3), st.integers(0, 99))),
)
def test_receipt_from_pdu_is_the_text_with_the_tlvs_over_it(
    text: str,
    in_payload: bool,
    receipted_id: str | None,
    state: MessageState | None,
    network_error: tlv.NetworkErrorCode | None,
) -> None:
    """Whatever the text and the TLVs, a receipt PDU gives what its parsed text gives, with
    receipted_message_id over the text's id and message_state and network_error_code added
    (the record made once, by position, must not mix its fields up)."""
    tlvs = []
    if in_payload:
        tlvs.append(tlv.MESSAGE_PAYLOAD(text.encode("latin-1", "replace")))
    if receipted_id is not None:
        tlvs.append(tlv.RECEIPTED_MESSAGE_ID(receipted_id))
    if state is not None:
        tlvs.append(tlv.MESSAGE_STATE(state))
    if network_error is not None:
        tlvs.append(tlv.NETWORK_ERROR_CODE(network_error))
    body = b"" if in_payload else text.encode("latin-1", "replace")
    parsed = parse_receipt(text.encode("latin-1", "replace")) or ReceiptText(message_id="")
    expected = ReceiptText(
        message_id=receipted_id or parsed.message_id,
        submitted=parsed.submitted,
        delivered=parsed.delivered,
        submit_date=parsed.submit_date,
        done_date=parsed.done_date,
        stat=parsed.stat,
        error=parsed.error,
        text=parsed.text,
        message_state=state,
        network_error=network_error,
    )
    pdu = p.DeliverSm(esm_class=0x04, short_message=body, tlvs=tuple(tlvs))
    assert receipt_from_pdu(pdu) == expected


def test_receipt_from_data_sm_reads_message_payload() -> None:
    """A data_sm receipt carries its text in message_payload."""
    data = p.DataSm(esm_class=0x04, tlvs=(tlv.MESSAGE_PAYLOAD(STANDARD.encode()),))
    r = receipt_from_pdu(data)
    assert r is not None
    assert r.message_id == "0123456789"
    assert r.state is MessageState.DELIVERED


@pytest.mark.parametrize(
    ("raw", "normal"),
    [(" 00ABC12 ", "abc12"), ("12345", "12345"), ("0000", "0"), ("", ""), ("Id-9", "id-9")],
)
def test_normalise_message_id(raw: str, normal: str) -> None:
    """Ids are stripped, lower-cased and lose leading zeros (all-zero ids stay "0")."""
    assert normalise_message_id(raw) == normal


def test_id_candidates_cover_hex_and_decimal_forms() -> None:
    """Decimal ids offer their hex form and hex ids their decimal form, normalised first."""
    assert id_candidates("12345") == ("12345", "3039", "74565")
    assert id_candidates("0x3039"[2:].upper()) == ("3039", "bdf", "12345")
    assert id_candidates("00ABCDEF") == ("abcdef", "11259375")
    assert id_candidates("f81d4fae-7dec") == ("f81d4fae-7dec",)


def test_submit_resp_id_and_receipt_id_meet_across_bases() -> None:
    """A decimal submit_sm_resp id matches a hex receipt id through the candidates."""
    submitted = normalise_message_id("0000012345")
    assert submitted in id_candidates("3039")
    assert normalise_message_id("3039") in id_candidates("12345")


_IDS = st.text(st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc")), min_size=1)
_DATES = st.from_regex(r"\A(\d{10}|\d{12})\Z")
_STANDARD_LAYOUT = st.builds(
    lambda message_id, sub, dlvrd, submitted, done, stat, err, text: (
        f"id:{message_id} sub:{sub} dlvrd:{dlvrd} submit date:{submitted}"
        f" done date:{done} stat:{stat} err:{err}" + ("" if text is None else f" text:{text}")
    ),
    _IDS,
    st.from_regex(r"\A\d{3}\Z"),
    st.from_regex(r"\A\d{3}\Z"),
    _DATES,
    _DATES,
    st.sampled_from(["DELIVRD", "undeliv", "Expired", "REJECTD", "x"]),
    st.from_regex(r"\A\w{1,4}\Z"),
    st.none() | st.text(),
)


@given(_STANDARD_LAYOUT)
def test_the_one_step_standard_match_agrees_with_the_field_parser(text: str) -> None:
    """For the standard layout (any id, date, stat, err, text), the one-step match gives
    what the general field-by-field parser gives."""
    assert parse_receipt(text) == parse_receipt_fields(text)


@given(st.text() | _STANDARD_LAYOUT.map(lambda text: text.replace(" ", "  ", 1)))
def test_any_text_parses_as_the_field_parser_says(text: str) -> None:
    """Texts off the standard layout (odd spacing, anything) take the general parser."""
    assert parse_receipt(text) == parse_receipt_fields(text)


@given(
    st.text(alphabet="0123456789", min_size=10, max_size=10)
    | st.text("0123456789", min_size=12, max_size=12)
)
def test_a_date_read_again_is_the_date_read_first(digits: str) -> None:
    """A receipt's date digits give the same date (or none) when they come again (the cache),
    and the one the general parser gives."""
    text = f"id:7 sub:001 dlvrd:001 submit date:{digits} done date:{digits} stat:DELIVRD err:000"
    first = parse_receipt(text)
    again = parse_receipt(text)
    assert first is not None
    assert again is not None
    assert first.submit_date == again.submit_date == first.done_date == again.done_date
    # The general parser (any layout, no cache) reads the same digits to the same date.
    general = parse_receipt_fields(text)
    assert general is not None
    assert first.submit_date == general.submit_date


def test_the_remembered_dates_stay_bounded() -> None:
    """More distinct dates than the cache keeps empty it rather than grow it."""
    from pigeon.smpp import receipt as module

    for minute in range(module._DIGIT_DATES_KEPT + 10):
        day, rest = divmod(minute, 24 * 60)
        hour, mins = divmod(rest, 60)
        digits = f"24{1 + day // 28:02d}{1 + day % 28:02d}{hour:02d}{mins:02d}"
        text = (
            f"id:7 sub:001 dlvrd:001 submit date:{digits} done date:{digits} stat:DELIVRD err:000"
        )
        assert parse_receipt(text) is not None
        assert digits in module._DIGIT_DATES  # the standard layout's dates are remembered
        assert len(module._DIGIT_DATES) <= module._DIGIT_DATES_KEPT
