"""UDH concatenation elements, SAR TLVs and the Reassembler."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.smpp import pdu as p
from pigeon.smpp import tlv
from pigeon.smpp.concat import (
    ConcatInfo,
    InformationElement,
    Part,
    Reassembler,
    UdhError,
    build_udh,
    concat_udh,
    parse_udh,
    part_from_pdu,
    split_udh,
)


def test_build_8bit_concat_udh() -> None:
    """Part 2 of 3, reference 0x42: 05 00 03 42 03 02 (TS 23.040, IEI 0x00)."""
    assert concat_udh(0x42, 3, 2) == bytes.fromhex("050003420302")


def test_build_16bit_concat_udh() -> None:
    """Part 1 of 2, reference 0x1234: 06 08 04 12 34 02 01 (TS 23.040, IEI 0x08)."""
    assert concat_udh(0x1234, 2, 1, sixteen_bit=True) == bytes.fromhex("06080412340201")


def test_parse_8bit_and_16bit_concat() -> None:
    """Both concatenation elements parse to reference, total and seqnum."""
    udh, payload = split_udh(bytes.fromhex("050003420302") + b"hello")
    assert payload == b"hello"
    assert udh.concat() == ConcatInfo(0x42, 3, 2, sixteen_bit=False)
    udh, payload = split_udh(bytes.fromhex("06080412340201") + b"x")
    assert udh.concat() == ConcatInfo(0x1234, 2, 1, sixteen_bit=True)


def test_parse_udh_with_other_elements_around_concat() -> None:
    """Port addressing (0x05) and an unknown IE sit around the 16-bit concat element."""
    udh = bytes.fromhex("100504 0b84 23f00804 abcd 03027002 0102")
    header, payload = split_udh(udh + b"body")
    assert payload == b"body"
    assert header.elements == (
        InformationElement(0x05, bytes.fromhex("0b8423f0")),
        InformationElement(0x08, bytes.fromhex("abcd0302")),
        InformationElement(0x70, bytes.fromhex("0102")),
    )
    assert header.concat() == ConcatInfo(0xABCD, 3, 2, sixteen_bit=True)
    assert build_udh(header.elements) == udh


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("06000342"),  # UDHL longer than the data
        bytes.fromhex("0300050102"),  # element overruns the header
        bytes.fromhex("0100"),  # element header cut in half
    ],
)
def test_malformed_udh_raises(data: bytes) -> None:
    """Truncated or overrunning headers raise UdhError (a ValueError)."""
    with pytest.raises(UdhError):
        split_udh(data)


def test_invalid_concat_values_are_ignored() -> None:
    """Seqnum 0, seqnum > total and total 0 make the element ignorable (TS 23.040)."""
    for data in ("050003010200", "050003010203", "050003010000"):
        assert parse_udh(bytes.fromhex(data)).concat() is None


@pytest.mark.parametrize(
    ("reference", "total", "seqnum", "sixteen"),
    [(256, 2, 1, False), (70000, 2, 1, True), (1, 0, 1, False), (1, 2, 3, False)],
)
def test_concat_udh_refuses_out_of_range(
    reference: int, total: int, seqnum: int, sixteen: bool
) -> None:
    """Builders refuse references and positions that do not fit."""
    with pytest.raises(ValueError, match=r"."):
        concat_udh(reference, total, seqnum, sixteen_bit=sixteen)


@given(st.integers(0, 0xFFFF), st.integers(1, 255), st.data(), st.booleans())
def test_concat_build_parse_round_trip(
    reference: int, total: int, data: st.DataObject, sixteen: bool
) -> None:
    """Any valid concat UDH parses back to the values it was built from."""
    seqnum = data.draw(st.integers(1, total))
    if not sixteen:
        reference &= 0xFF
    udh, rest = split_udh(concat_udh(reference, total, seqnum, sixteen_bit=sixteen))
    assert rest == b""
    assert udh.concat() == ConcatInfo(reference, total, seqnum, sixteen)


# --- parts from PDUs --------------------------------------------------------------------------


def test_part_from_pdu_reads_udh() -> None:
    """A deliver_sm with UDHI and a concat UDH is a part; the payload excludes the UDH."""
    deliver = p.DeliverSm(
        source_addr="447700900123",
        destination_addr="Pigeon",
        esm_class=0x40,
        short_message=concat_udh(7, 2, 2) + b"world",
    )
    assert part_from_pdu(deliver) == Part("447700900123", "Pigeon", 7, 2, 2, b"world")


def test_part_from_pdu_reads_sar_tlvs() -> None:
    """Without UDHI, the SAR TLVs make the part; message_payload is used if sm is empty."""
    submit = p.SubmitSm(
        source_addr="a",
        destination_addr="b",
        tlvs=(
            tlv.SAR_MSG_REF_NUM(0x1234),
            tlv.SAR_TOTAL_SEGMENTS(3),
            tlv.SAR_SEGMENT_SEQNUM(3),
            tlv.MESSAGE_PAYLOAD(b"tail"),
        ),
    )
    assert part_from_pdu(submit) == Part("a", "b", 0x1234, 3, 3, b"tail")


def test_part_from_pdu_none_for_whole_or_malformed_messages() -> None:
    """Plain messages, a broken UDH, or inconsistent SAR values are not parts."""
    assert part_from_pdu(p.DeliverSm(short_message=b"hi")) is None
    assert part_from_pdu(p.DeliverSm(esm_class=0x40, short_message=b"\x09\x00")) is None
    bad_sar = p.DataSm(
        tlvs=(tlv.SAR_MSG_REF_NUM(1), tlv.SAR_TOTAL_SEGMENTS(2), tlv.SAR_SEGMENT_SEQNUM(3))
    )
    assert part_from_pdu(bad_sar) is None


# --- reassembly -------------------------------------------------------------------------------


def parts(payloads: list[bytes], reference: int = 9) -> list[Part]:
    """The parts of one message from a to b."""
    total = len(payloads)
    return [Part("a", "b", reference, total, i + 1, data) for i, data in enumerate(payloads)]


def test_in_order_parts_complete_on_the_last() -> None:
    """The message comes out when its last part arrives, payloads in order."""
    r = Reassembler()
    first, second, third = parts([b"one ", b"two ", b"three"])
    assert r.add(first, now=0.0) is None
    assert r.add(second, now=1.0) is None
    done = r.add(third, now=2.0)
    assert done is not None
    assert done.complete
    assert done.payload == b"one two three"
    assert (done.source, done.destination, done.reference, done.total) == ("a", "b", 9, 3)
    assert r.pending == 0


def test_out_of_order_parts_are_reordered() -> None:
    """Parts arriving 3, 1, 2 still give 1, 2, 3."""
    r = Reassembler()
    first, second, third = parts([b"1", b"2", b"3"])
    assert r.add(third, 0.0) is None
    assert r.add(first, 0.0) is None
    done = r.add(second, 0.0)
    assert done is not None
    assert done.payload == b"123"


def test_duplicate_parts_are_ignored() -> None:
    """A part seen twice is counted as a duplicate and does not complete the set."""
    r = Reassembler()
    first, second = parts([b"a", b"b"])
    assert r.add(first, 0.0) is None
    assert r.add(first, 0.1) is None
    assert r.duplicates == 1
    done = r.add(second, 0.2)
    assert done is not None
    assert done.payload == b"ab"


def test_late_duplicate_after_completion_is_ignored() -> None:
    """A retransmitted part of a delivered message does not start a phantom set."""
    r = Reassembler(timeout=60.0)
    first, second = parts([b"a", b"b"])
    r.add(first, 0.0)
    assert r.add(second, 1.0) is not None
    assert r.add(second, 5.0) is None
    assert r.pending == 0
    assert r.duplicates == 1


def test_reused_reference_with_new_content_is_a_new_message() -> None:
    """After completion, the same reference with different payloads assembles again."""
    r = Reassembler()
    for payloads in ([b"a", b"b"], [b"c", b"d"]):
        first, second = parts(payloads)
        r.add(first, 0.0)
        done = r.add(second, 0.0)
        assert done is not None
        assert done.payload == b"".join(payloads)


def test_parts_are_keyed_by_source_destination_reference_and_total() -> None:
    """Parts differing in any key field never mix."""
    r = Reassembler()
    assert r.add(Part("a", "b", 1, 2, 1, b"x"), 0.0) is None
    assert r.add(Part("c", "b", 1, 2, 2, b"y"), 0.0) is None
    assert r.add(Part("a", "d", 1, 2, 2, b"y"), 0.0) is None
    assert r.add(Part("a", "b", 2, 2, 2, b"y"), 0.0) is None
    assert r.add(Part("a", "b", 1, 3, 2, b"y"), 0.0) is None
    assert r.pending == 5
    assert r.add(Part("a", "b", 1, 2, 2, b"y"), 0.0) is not None


def test_incomplete_sets_expire_after_timeout() -> None:
    """A set still missing parts timeout seconds after its first part is dropped."""
    r = Reassembler(timeout=10.0)
    first, _second = parts([b"a", b"b"])
    r.add(first, now=100.0)
    assert r.expire(now=109.9) == []
    dropped = r.expire(now=110.0)
    assert len(dropped) == 1
    assert not dropped[0].complete
    assert dropped[0].payload == b"a"
    assert r.pending == 0


def test_max_pending_evicts_the_oldest_set() -> None:
    """Past max_pending incomplete sets, the oldest is dropped and reported by expire()."""
    r = Reassembler(max_pending=2)
    for reference in (1, 2, 3):
        r.add(parts([b"x", b"y"], reference=reference)[0], float(reference))
    assert r.pending == 2
    dropped = r.expire(now=3.0)
    assert [d.reference for d in dropped] == [1]


def test_single_part_message_and_invalid_seqnum() -> None:
    """A 1-of-1 part completes at once; a part numbered beyond its total is ignored."""
    r = Reassembler()
    done = r.add(Part("a", "b", 1, 1, 1, b"solo"), 0.0)
    assert done is not None
    assert done.payload == b"solo"
    assert r.add(Part("a", "b", 1, 2, 3, b"bad"), 0.0) is None
    assert r.pending == 0


@given(st.lists(st.binary(max_size=10), min_size=1, max_size=8), st.randoms())
def test_any_arrival_order_with_duplicates_reassembles(
    payloads: list[bytes], rnd: random.Random
) -> None:
    """Shuffled parts with repeats always give the payloads joined in order, exactly once."""
    message = parts(payloads)
    arrivals = message + rnd.sample(message, k=len(message) // 2)
    rnd.shuffle(arrivals)
    r = Reassembler()
    results = [r.add(part, 0.0) for part in arrivals]
    complete = [res for res in results if res is not None]
    assert len(complete) == 1
    assert complete[0].payload == b"".join(payloads)
