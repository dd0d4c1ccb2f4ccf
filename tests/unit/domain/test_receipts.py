"""Receipts: stat mapping, idempotent application, multipart folding and id forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pigeon.domain.messages import Category, Direction, Message, MessageStatus, Part
from pigeon.domain.receipts import (
    DeliveryReceipt,
    ReceiptStatus,
    apply_receipt,
    carrier_id_forms,
    parse_receipt_status,
)

S = MessageStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sent_message(parts: int = 1) -> Message:
    return Message(
        id="msg_1",
        tenant_id="ten_1",
        direction=Direction.MT,
        to="+14155550100",
        sender=None,
        body="hi",
        category=Category.TRANSACTIONAL,
        encoding="gsm7",
        segments=parts,
        status=S.SENT,
        created_at=T0,
        updated_at=T0,
        parts=[Part(i, S.SENT, f"c{i}") for i in range(parts)],
    )


def receipt(carrier_id: str, stat: ReceiptStatus, err: str | None = None) -> DeliveryReceipt:
    return DeliveryReceipt("sim", carrier_id, stat, error_code=err)


@pytest.mark.parametrize(
    ("stat", "status"),
    [
        ("DELIVRD", S.DELIVERED),
        ("EXPIRED", S.EXPIRED),
        ("UNDELIV", S.UNDELIVERED),
        ("REJECTD", S.UNDELIVERED),
        ("DELETED", S.UNDELIVERED),
        ("ACCEPTD", S.SENT),
        ("ENROUTE", S.SENT),
        ("UNKNOWN", S.UNKNOWN),
        ("garbage", S.UNKNOWN),
        ("delivrd", S.DELIVERED),
    ],
)
def test_stat_maps_to_status(stat: str, status: MessageStatus) -> None:
    """PRODUCT.md's table: each SMPP stat maps to its message status, case-insensitively."""
    assert parse_receipt_status(stat).message_status is status


def test_delivered_receipt_completes_the_message() -> None:
    """A DELIVRD receipt moves a sent message to delivered."""
    message = sent_message()
    change, matched = apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    assert matched
    assert change is not None
    assert change.status is S.DELIVERED
    assert message.status is S.DELIVERED


def test_duplicate_receipt_is_a_no_op() -> None:
    """The same receipt twice changes the message once."""
    message = sent_message()
    apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    change, matched = apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    assert matched
    assert change is None
    assert message.status_sequence == 1


def test_late_intermediate_receipt_does_not_move_backwards() -> None:
    """ENROUTE after DELIVRD leaves the message delivered."""
    message = sent_message()
    apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    change, _ = apply_receipt(message, receipt("c0", ReceiptStatus.ENROUTE), T0)
    assert change is None
    assert message.status is S.DELIVERED


def test_multipart_waits_for_every_part() -> None:
    """A two-part message is delivered only after both parts' receipts."""
    message = sent_message(parts=2)
    change, _ = apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    assert change is None
    assert message.status is S.SENT
    change, _ = apply_receipt(message, receipt("c1", ReceiptStatus.DELIVRD), T0)
    assert change is not None
    assert message.status is S.DELIVERED


def test_multipart_worst_part_wins() -> None:
    """One undelivered part makes the whole message undelivered, with the carrier's error."""
    message = sent_message(parts=2)
    apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    change, _ = apply_receipt(message, receipt("c1", ReceiptStatus.UNDELIV, "034"), T0)
    assert change is not None
    assert message.status is S.UNDELIVERED
    assert message.error_code == "034"


def test_unknown_is_corrected_by_late_receipt() -> None:
    """A message marked unknown becomes delivered when its receipt finally comes."""
    message = sent_message()
    message.transition(S.UNKNOWN, T0)
    change, _ = apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    assert change is not None
    assert message.status is S.DELIVERED


def test_receipt_for_another_part_id_does_not_match() -> None:
    """A carrier id that is not one of the message's parts is reported as unmatched."""
    change, matched = apply_receipt(sent_message(), receipt("zz", ReceiptStatus.DELIVRD), T0)
    assert change is None
    assert not matched


def test_receipt_overtaking_sent_is_accepted_from_sending() -> None:
    """A receipt may arrive while the message is still sending."""
    message = sent_message()
    message.status = S.SENDING
    change, _ = apply_receipt(message, receipt("c0", ReceiptStatus.DELIVRD), T0)
    assert change is not None
    assert message.status is S.DELIVERED


def test_carrier_id_forms_cover_hex_decimal_case_and_zeros() -> None:
    """Ids are compared lower-case without leading zeros, as hex and as decimal."""
    assert carrier_id_forms("00ABC") == ("abc", "2748")
    assert carrier_id_forms("255") == ("255", "597", "ff")
    assert carrier_id_forms(" msg-1 ") == ("msg-1",)
