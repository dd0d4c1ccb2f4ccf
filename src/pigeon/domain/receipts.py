"""Delivery receipts: what a carrier says about a message, mapped to our statuses."""

from __future__ import annotations

import enum
import re
from datetime import datetime

from pigeon.domain.messages import (
    Message,
    MessageStatus,
    StatusChange,
    can_transition,
    fold_parts,
    is_stale,
)
from pigeon.domain.value_objects import value_object


class ReceiptStatus(enum.StrEnum):
    """The SMPP ``stat`` vocabulary, which HTTP carriers are mapped onto too."""

    DELIVRD = "DELIVRD"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"
    UNDELIV = "UNDELIV"
    ACCEPTD = "ACCEPTD"
    UNKNOWN = "UNKNOWN"
    REJECTD = "REJECTD"
    ENROUTE = "ENROUTE"

    @property
    def message_status(self) -> MessageStatus:
        """The message status this receipt stands for (PRODUCT.md's table)."""
        return _TO_STATUS[self]


_TO_STATUS = {
    ReceiptStatus.DELIVRD: MessageStatus.DELIVERED,
    ReceiptStatus.EXPIRED: MessageStatus.EXPIRED,
    ReceiptStatus.DELETED: MessageStatus.UNDELIVERED,
    ReceiptStatus.UNDELIV: MessageStatus.UNDELIVERED,
    ReceiptStatus.REJECTD: MessageStatus.UNDELIVERED,
    ReceiptStatus.ACCEPTD: MessageStatus.SENT,
    ReceiptStatus.ENROUTE: MessageStatus.SENT,
    ReceiptStatus.UNKNOWN: MessageStatus.UNKNOWN,
}


def parse_receipt_status(text: str) -> ReceiptStatus:
    """Read a ``stat`` value case-insensitively; anything unrecognised is ``UNKNOWN``."""
    try:
        return ReceiptStatus(text.strip().upper()[:7])
    except ValueError:
        return ReceiptStatus.UNKNOWN


@value_object
class DeliveryReceipt:
    """A carrier's report on one submitted message (or one segment of it)."""

    connector_id: str
    carrier_message_id: str
    status: ReceiptStatus
    error_code: str | None = None
    at: datetime | None = None


def apply_receipt(
    message: Message, receipt: DeliveryReceipt, now: datetime
) -> tuple[StatusChange | None, bool]:
    """Fold a receipt into ``message``.

    Returns the status change it caused (or ``None``) and whether the receipt matched a part.
    Duplicate, late and out-of-order receipts are normal: they change nothing.
    """
    part = message.part_for(receipt.carrier_message_id)
    if part is None and message.parts:
        return None, False
    target = receipt.status.message_status
    if part is not None:
        if part.status is not target and not is_stale(part.status, target):
            part.status = target
            part.error_code = receipt.error_code or part.error_code
        parts = message.parts
        target = fold_parts([parts[0].status] if len(parts) == 1 else [p.status for p in parts])
    if target is message.status or is_stale(message.status, target):
        return None, True
    if not can_transition(message.status, target):
        return None, True
    error = receipt.error_code if target is not MessageStatus.DELIVERED else None
    detail = f"receipt {receipt.status.value}" + (f" err:{error}" if error else "")
    change = message.transition(target, now, detail=detail, error_code=error)
    return change, True


_LOWER_HEX = re.compile("[0-9a-f]+")


def carrier_id_forms(raw: str) -> tuple[str, ...]:
    """The forms a carrier id may take between a submit response and its receipt.

    Carriers disagree on hex vs decimal, letter case and leading zeros; we compare the
    normalised forms (stripped, lower-case, no leading zeros) of the id read as given, as hex
    turned decimal and as decimal turned hex.
    """
    text = raw.strip().lower()
    given = text.lstrip("0") or "0"
    if len(text) > 32 or not _LOWER_HEX.fullmatch(text):
        return (given,)
    # No closure to add each form: one made per receipt cost more than the forms (session 47).
    as_hex = str(int(text, 16)).lstrip("0") or "0"
    if not text.isdigit():
        return (given,) if as_hex == given else (given, as_hex)
    as_decimal = format(int(text), "x").lstrip("0") or "0"
    forms = [given]
    for form in (as_hex, as_decimal):
        if form not in forms:
            forms.append(form)
    return tuple(forms)


#: The receipt a final status is reported with to a sender that asked for one (SMPP customers).
_FROM_STATUS = {
    MessageStatus.DELIVERED: ReceiptStatus.DELIVRD,
    MessageStatus.UNDELIVERED: ReceiptStatus.UNDELIV,
    MessageStatus.EXPIRED: ReceiptStatus.EXPIRED,
    MessageStatus.FAILED: ReceiptStatus.UNDELIV,
    MessageStatus.REJECTED: ReceiptStatus.REJECTD,
    MessageStatus.UNKNOWN: ReceiptStatus.UNKNOWN,
    MessageStatus.CANCELED: ReceiptStatus.DELETED,
}

#: The ``err`` of such a receipt when the carrier gave no numeric error of its own.
_DEFAULT_ERRORS = {
    MessageStatus.DELIVERED: "000",
    MessageStatus.UNDELIVERED: "001",
    MessageStatus.EXPIRED: "002",
    MessageStatus.REJECTED: "003",
    MessageStatus.FAILED: "004",
    MessageStatus.CANCELED: "005",
    MessageStatus.UNKNOWN: "000",
}


def receipt_for(status: MessageStatus) -> ReceiptStatus | None:
    """The ``stat`` a final status is reported with to the sender (``None``: not final)."""
    return _FROM_STATUS.get(status)


def receipt_error(status: MessageStatus, error_code: str | None) -> str:
    """The three-digit ``err`` of a receipt for ``status``: the carrier's numeric error when
    there is one (last three digits), else a fixed code per status (000 when delivered)."""
    if status is not MessageStatus.DELIVERED and error_code and error_code.strip().isdigit():
        return error_code.strip().zfill(3)[-3:]
    return _DEFAULT_ERRORS.get(status, "000")
