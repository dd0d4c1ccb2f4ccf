"""SMSC delivery receipts: the de-facto text format and message-id correlation.

SMPP 3.4 (Appendix B) suggests, without mandating, this short_message text for receipts::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text:...

Carriers vary it: key case, missing fields, dates with seconds, extra spaces, ``submit_date``,
ids in hex where submit_sm_resp gave decimal (or the reverse), leading zeros. The parser here
accepts all of these; :func:`id_candidates` gives every form an id may take on the other side.
Dates are returned naive: the format carries no time zone (it is the SMSC's local time).
"""

from __future__ import annotations

import re
from datetime import datetime

from pigeon.domain.value_objects import value_object
from pigeon.smpp import tlv
from pigeon.smpp.constants import MessageState, is_delivery_receipt
from pigeon.smpp.pdu import DataSm, DeliverSm
from pigeon.smpp.tlv import NetworkErrorCode

__all__ = [
    "ReceiptText",
    "format_receipt",
    "id_candidates",
    "normalise_message_id",
    "parse_receipt",
    "receipt_from_pdu",
    "stat_state",
]

_STATES: dict[str, MessageState] = {
    "DELIVRD": MessageState.DELIVERED,
    "DELIVERED": MessageState.DELIVERED,
    "DELIVER": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "EXPIRD": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "DELETD": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVERED": MessageState.UNDELIVERABLE,
    "FAILED": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "ACCEPTED": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "UNKNOWN_": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
    "REJECTED": MessageState.REJECTED,
    "ENROUTE": MessageState.ENROUTE,
}

_STAT_TEXT: dict[MessageState, str] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

# A key starts the text or follows whitespace; "text" swallows the rest of the receipt.
_KEY = re.compile(
    r"(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]*date|done[ _]*date|stat|err|text)\s*:",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")
_HEX = re.compile(r"[0-9a-f]+")


def stat_state(stat: str) -> MessageState | None:
    """The message state a receipt's ``stat`` word means (``DELIVRD`` -> DELIVERED)."""
    return _STATES.get(stat.strip().upper())


@value_object
class ReceiptText:
    """The fields of a delivery receipt. Missing fields are None (numbers, dates) or ""."""

    message_id: str
    submitted: int | None = None
    delivered: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    stat: str = ""
    error: str = ""
    text: str = ""
    message_state: int | None = None  # from the message_state TLV, when the PDU had one
    network_error: NetworkErrorCode | None = None  # from the network_error_code TLV

    @property
    def state(self) -> MessageState | None:
        """The final state: the message_state TLV if present, else the ``stat`` word."""
        if self.message_state is not None:
            try:
                return MessageState(self.message_state)
            except ValueError:
                pass
        return stat_state(self.stat)


def _int_or_none(value: str) -> int | None:
    return int(value) if _DIGITS.fullmatch(value) else None


def _date_or_none(value: str) -> datetime | None:
    # YYMMDDhhmm, YYMMDDhhmmss (years 2000-2099, like SMPP times) or YYYYMMDDhhmmss.
    value = value.replace(" ", "")
    if not _DIGITS.fullmatch(value) or len(value) not in (10, 12, 14):
        return None
    if len(value) == 14:
        year, value = int(value[:4]), value[4:]
    else:
        year, value = 2000 + int(value[:2]), value[2:]
    month, day, hour, minute = (int(value[i : i + 2]) for i in range(0, 8, 2))
    second = int(value[8:10]) if len(value) == 10 else 0
    try:
        # Naive on purpose: the receipt text carries no time zone.
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def _as_text(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    if len(data) >= 2 and data[0] == 0 and data[1] != 0:
        # UCS-2 receipts exist (data_coding 8): "\x00i\x00d\x00:..."
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")


_SEPARATORS = re.compile(r"[ _]+")
#: Field names as carriers spell them -> our keys ("submit date" -> "submitdate"): a handful
#: of spellings in practice, bounded all the same.
_KEY_NAMES: dict[str, str] = {}
_KEY_NAMES_KEPT = 256


#: The layout nearly every carrier sends (SMPP 3.4 Appendix B), matched in one step; any other
#: text takes the general parser, which gives the same answer for this layout.
_STANDARD = re.compile(
    r"id:(\S+) sub:(\d{3}) dlvrd:(\d{3}) submit date:(\d{10}|\d{12})"
    r" done date:(\d{10}|\d{12}) stat:([A-Za-z]+) err:(\w+)(?: text:(.*))?",
    re.DOTALL,
)


#: Dates already parsed, by their digits: a carrier's receipts of one minute (or second) carry
#: the same ones, so nearly every receipt finds both of its dates here instead of making each
#: with six calls (session 46). Bounded: emptied when full. ``None`` marks digits that are not
#: a date.
_DIGIT_DATES: dict[str, datetime | None] = {}
_DIGIT_DATES_KEPT = 4096


def _digits_date(value: str) -> datetime | None:
    """``_date_or_none`` for 10 or 12 digits (YYMMDDhhmm[ss], years 2000-2099)."""
    if value in _DIGIT_DATES:
        return _DIGIT_DATES[value]
    try:
        date: datetime | None = datetime(
            2000 + int(value[0:2]),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            int(value[10:12]) if len(value) == 12 else 0,
        )
    except ValueError:
        date = None
    if len(_DIGIT_DATES) >= _DIGIT_DATES_KEPT:
        _DIGIT_DATES.clear()
    _DIGIT_DATES[value] = date
    return date


#: A receipt's text fields in ``ReceiptText``'s order (message_id, submitted, delivered,
#: submit_date, done_date, stat, error, text).
_TextFields = tuple[str, int | None, int | None, datetime | None, datetime | None, str, str, str]


def _standard_fields(text: str) -> _TextFields | None:
    """The fields of a receipt in the standard layout, in one match; ``None`` otherwise."""
    standard = _STANDARD.fullmatch(text)
    if standard is None:
        return None
    message_id, sub, dlvrd, submitted, done, stat, error, rest = standard.groups()
    return (
        message_id,
        int(sub),
        int(dlvrd),
        _digits_date(submitted),
        _digits_date(done),
        stat.upper(),
        error,
        (rest or "").strip(),
    )


def parse_receipt(data: str | bytes) -> ReceiptText | None:
    """Parse receipt text; None if it has no ``id:`` field (then it is not a receipt)."""
    text = _as_text(data)
    fields = _standard_fields(text)
    if fields is not None:
        return ReceiptText(*fields)
    return parse_receipt_fields(text)


def parse_receipt_fields(text: str) -> ReceiptText | None:
    """``parse_receipt`` field by field: keys in any order or case, any spacing, missing
    fields (what the one-step match of the standard layout does not cover)."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for i, match in enumerate(matches):
        name = match.group(1)
        key = _KEY_NAMES.get(name)
        if key is None:
            key = _SEPARATORS.sub("", name.lower())
            if len(_KEY_NAMES) < _KEY_NAMES_KEPT:
                _KEY_NAMES[name] = key
        if key == "text":
            fields.setdefault(key, text[match.end() :].strip())
            break
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end() : stop].strip())
    message_id = fields.get("id")
    if message_id is None:
        return None
    return ReceiptText(
        message_id=message_id,
        submitted=_int_or_none(fields.get("sub", "")),
        delivered=_int_or_none(fields.get("dlvrd", "")),
        submit_date=_date_or_none(fields.get("submitdate", "")),
        done_date=_date_or_none(fields.get("donedate", "")),
        stat=fields.get("stat", "").upper(),
        error=fields.get("err", ""),
        text=fields.get("text", ""),
    )


def format_receipt(receipt: ReceiptText, *, seconds: bool = False) -> str:
    """The standard text of a receipt (dates YYMMDDhhmm, or YYMMDDhhmmss with ``seconds``)."""
    fmt = "%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"

    def date(value: datetime | None) -> str:
        return value.strftime(fmt) if value is not None else ""

    def count(value: int | None) -> str:
        return f"{value:03d}" if value is not None else ""

    stat = receipt.stat
    if not stat and receipt.state is not None:
        stat = _STAT_TEXT[receipt.state]
    error = receipt.error
    if error.isdigit():
        error = error.zfill(3)
    return (
        f"id:{receipt.message_id} sub:{count(receipt.submitted)}"
        f" dlvrd:{count(receipt.delivered)} submit date:{date(receipt.submit_date)}"
        f" done date:{date(receipt.done_date)} stat:{stat} err:{error} text:{receipt.text}"
    )


def receipt_from_pdu(pdu: DeliverSm | DataSm) -> ReceiptText | None:
    """The receipt a deliver_sm / data_sm carries, or None if its esm_class says it is MO.

    The text comes from short_message (or message_payload). The receipted_message_id TLV,
    when present, wins over the text's id (SMPP 3.4 makes the TLV authoritative); the
    message_state and network_error_code TLVs are kept alongside the text fields.
    """
    if not is_delivery_receipt(pdu.esm_class):
        return None
    body = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    if not body:
        body = pdu.tlv(tlv.MESSAGE_PAYLOAD) or b""
    text = _as_text(body)
    fields = _standard_fields(text)
    if fields is None:  # another layout, or no receipt text at all
        parsed = parse_receipt_fields(text) or ReceiptText(message_id="")
        if not pdu.tlvs:
            return parsed
        fields = (
            parsed.message_id,
            parsed.submitted,
            parsed.delivered,
            parsed.submit_date,
            parsed.done_date,
            parsed.stat,
            parsed.error,
            parsed.text,
        )
    elif not pdu.tlvs:  # the text alone (most carriers): made once, by position
        return ReceiptText(*fields)
    tlv_id = pdu.tlv(tlv.RECEIPTED_MESSAGE_ID)
    # By position: the text's fields, then message_state and network_error.
    return ReceiptText(
        tlv_id if tlv_id else fields[0],
        *fields[1:],
        pdu.tlv(tlv.MESSAGE_STATE),
        pdu.tlv(tlv.NETWORK_ERROR_CODE),
    )


def normalise_message_id(message_id: str) -> str:
    """Canonical form of a carrier message id: stripped, lower-case, no leading zeros."""
    value = message_id.strip().lower().lstrip("0")
    if not value and message_id.strip():
        return "0"  # an id made only of zeros
    return value


def id_candidates(message_id: str) -> tuple[str, ...]:
    """Every normalised form this id may have on the other side, the id itself first.

    A decimal-looking id also yields its hexadecimal form, a hex-looking id its decimal form
    (an all-digit id is both), so ``submit_sm_resp`` id "3039" and receipt id "12345" meet.
    """
    norm = normalise_message_id(message_id)
    out = [norm]
    if norm and len(norm) <= 64:
        if _DIGITS.fullmatch(norm):
            out.append(format(int(norm), "x"))
        if _HEX.fullmatch(norm):
            out.append(str(int(norm, 16)))
    return tuple(dict.fromkeys(out))
