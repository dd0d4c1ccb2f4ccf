"""SMPP PDUs <-> use-case requests: the only place where SMPP meets the domain.

Inbound (a customer's submit_sm, data_sm, submit_multi) to :class:`SendRequest`:

* addresses: TON 1 (international) becomes E.164 with ``+``; other numeric addresses go to
  ``accept`` as given, which reads them with the tenant's default region (``00`` prefixes and
  bare international numbers included); TON 5 is an alphanumeric sender. A destination that
  is empty or alphanumeric is refused (``ESME_RINVDSTADR`` / ``ESME_RINVDSTTON``).
* text: data_coding 0 is the GSM 03.38 default alphabet, one septet per octet (an octet above
  0x7F cannot be a septet: such text is read as Latin-1); 1 (IA5) and 3 are Latin-1, 6 and 7
  ISO-8859-5 / -8, 8 UCS-2 (UTF-16-BE), 0xF0-0xF3 GSM with a message class. Binary and other
  codings are refused with ``ESME_RSUBMITFAIL``: SMPP 3.4 has no status for a bad
  data_coding (5.0's ESME_RINVDCS postdates it), ``ESME_RSYSERR`` would invite endless
  retries and ``ESME_RINVPARLEN`` names another fault.
* content: short_message, or message_payload when short_message is empty (both at once is an
  error, ``ESME_RINVOPTPARAMVAL``); a User Data Header (esm_class UDHI) is removed; parts of a
  long message (UDH 8/16-bit or SAR) are told apart by :func:`concat_part` and joined by the
  server before the text is decoded, so escape pairs and surrogate pairs split across parts
  survive.
* registered_delivery bits 0-1 become a :class:`ReceiptRequest` (SME acknowledgements and
  intermediate notifications are not offered); validity_period and schedule_delivery_time,
  absolute or relative, become ``validity_seconds`` (at least 60) and ``send_at``.
* esm_class must ask for a plain message (``ESME_RINVESMCLASS`` otherwise).

Outbound: :func:`receipt_pdus` builds the deliver_sm receipts of an ``smpp_deliver`` job (the
standard receipt text plus receipted_message_id, message_state and, after a failure,
network_error_code), :func:`reply_pdus` a reply's deliver_sm, :func:`query_result` the
answer to query_sm. :func:`status_for` turns a use-case error into a command_status.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pigeon.domain.encoding import (
    Encoding,
    analyse,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    split_segments,
)
from pigeon.domain.errors import (
    InvalidBody,
    InvalidRecipient,
    InvalidSender,
    PigeonError,
    ValidationError,
)
from pigeon.domain.messages import Message, MessageStatus, ReceiptRequest
from pigeon.services.accept import SendRequest
from pigeon.smpp import tlv
from pigeon.smpp.concat import Part, UdhError, concat_udh, part_from_pdu, split_udh
from pigeon.smpp.constants import (
    CommandStatus,
    DataCoding,
    GsmFeature,
    MessageState,
    MessageType,
    Npi,
    Ton,
    message_type,
)
from pigeon.smpp.pdu import DataSm, DeliverSm, SmeAddress, SubmitMulti, SubmitSm
from pigeon.smpp.receipt import ReceiptText, format_receipt, stat_state
from pigeon.smpp.times import format_absolute, parse_time

__all__ = [
    "MIN_VALIDITY_SECONDS",
    "QueryResult",
    "Refused",
    "concat_part",
    "content_of",
    "decode_text",
    "destination",
    "message_id_of",
    "multi_requests",
    "part_ids",
    "part_key",
    "query_result",
    "receipt_pdus",
    "reply_pdus",
    "send_request",
    "source",
    "status_for",
    "whole_request",
]

_S = CommandStatus

#: Shorter validity periods are raised to this (the least ``accept`` takes).
MIN_VALIDITY_SECONDS = 60

#: GSM network type of the network_error_code TLV.
_GSM_NETWORK = 3

Submission = SubmitSm | DataSm | SubmitMulti


class Refused(Exception):
    """A PDU field we cannot take: answer with ``status`` (the connection stays up)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- addresses ------------------------------------------------------------------------------


def destination(ton: int, npi: int, address: str) -> str:
    """The recipient as ``accept`` reads it (E.164 with ``+`` for TON international)."""
    value = address.strip()
    if not value:
        raise Refused(_S.ESME_RINVDSTADR, "destination_addr is empty")
    if ton == Ton.ALPHANUMERIC:
        raise Refused(_S.ESME_RINVDSTTON, "an alphanumeric destination cannot receive SMS")
    if ton == Ton.INTERNATIONAL:
        digits = value.removeprefix("+")
        if not digits.isdigit():
            raise Refused(_S.ESME_RINVDSTADR, f"{address!r} is not an international number")
        return "+" + digits
    return value


def source(ton: int, npi: int, address: str) -> str | None:
    """The sender as ``accept`` reads it; ``None`` (the default sender) when empty."""
    value = address.strip()
    if not value:
        return None
    if ton == Ton.INTERNATIONAL and value.removeprefix("+").isdigit():
        return "+" + value.removeprefix("+")
    return value


def _address_fields(value: str | None) -> tuple[int, int, str]:
    """TON, NPI and address for one of our stored addresses (E.164, digits or a name)."""
    if not value:
        return Ton.UNKNOWN, Npi.UNKNOWN, ""
    if value.startswith("+") and value[1:].isdigit():
        return Ton.INTERNATIONAL, Npi.ISDN, value[1:21]
    if value.isdigit():
        return Ton.UNKNOWN, Npi.ISDN, value[:20]
    return Ton.ALPHANUMERIC, Npi.UNKNOWN, value[:20]


# --- text -----------------------------------------------------------------------------------

_CODECS: dict[int, str] = {
    DataCoding.IA5: "latin-1",
    DataCoding.LATIN_1: "latin-1",
    DataCoding.CYRILLIC: "iso8859_5",
    DataCoding.LATIN_HEBREW: "iso8859_8",
}


def decode_text(data: bytes, data_coding: int) -> str:
    """The text of ``data`` (no UDH) in ``data_coding``; :class:`Refused` if we cannot."""
    if data_coding == DataCoding.UCS2:
        if len(data) % 2:
            raise Refused(_S.ESME_RINVMSGLEN, "UCS-2 text with an odd number of octets")
        return decode_ucs2(data)
    if data_coding == DataCoding.DEFAULT or 0xF0 <= data_coding <= 0xF3:
        return decode_gsm7(data) if data.isascii() else data.decode("latin-1")
    codec = _CODECS.get(data_coding)
    if codec is None:
        raise Refused(
            _S.ESME_RSUBMITFAIL,
            f"data_coding 0x{data_coding:02X} is not supported (text only: 0, 1, 3, 6, 7, 8)",
        )
    return data.decode(codec, "replace")


def content_of(pdu: Submission) -> bytes:
    """The user data of a PDU, its UDH (if any) removed."""
    short = b"" if isinstance(pdu, DataSm) else pdu.short_message
    payload = pdu.tlv(tlv.MESSAGE_PAYLOAD)
    if short and payload:
        raise Refused(_S.ESME_RINVOPTPARAMVAL, "both short_message and message_payload are set")
    data = short or payload or b""
    if pdu.esm_class & GsmFeature.UDHI:
        try:
            data = split_udh(data)[1]
        except UdhError as exc:
            raise Refused(_S.ESME_RINVESMCLASS, f"UDHI set but no valid UDH: {exc}") from exc
    return data


# --- requests -------------------------------------------------------------------------------


def _receipt_request(registered_delivery: int) -> ReceiptRequest:
    return (
        ReceiptRequest.NONE,
        ReceiptRequest.ALL,
        ReceiptRequest.FAILURE,
        ReceiptRequest.SUCCESS,
    )[registered_delivery & 0x03]


def _validity(value: str, now: datetime) -> int | None:
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        raise Refused(_S.ESME_RINVEXPIRY, str(exc)) from exc
    if parsed is None:
        return None
    seconds = (parsed - now if isinstance(parsed, datetime) else parsed).total_seconds()
    if seconds <= 0:
        raise Refused(_S.ESME_RINVEXPIRY, f"validity_period {value!r} is already over")
    return max(MIN_VALIDITY_SECONDS, math.ceil(seconds))


def _schedule(value: str, now: datetime) -> datetime | None:
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        raise Refused(_S.ESME_RINVSCHED, str(exc)) from exc
    if parsed is None:
        return None
    return parsed.astimezone(UTC) if isinstance(parsed, datetime) else now + parsed


def _check_esm_class(esm_class: int) -> None:
    if message_type(esm_class) != MessageType.DEFAULT:
        raise Refused(_S.ESME_RINVESMCLASS, f"esm_class 0x{esm_class:02X} is not a plain message")


def _request(
    pdu: Submission,
    *,
    to: str,
    text: str,
    origin: str,
    now: datetime,
    parts: int = 1,
) -> SendRequest:
    _check_esm_class(pdu.esm_class)
    if not text:
        raise Refused(_S.ESME_RINVMSGLEN, "the message is empty")
    send_at: datetime | None = None
    validity: int | None = None
    if not isinstance(pdu, DataSm):  # data_sm has neither field
        send_at = _schedule(pdu.schedule_delivery_time, now)
        validity = _validity(pdu.validity_period, now)
    return SendRequest(
        to=to,
        body=text,
        sender=source(pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr),
        send_at=send_at,
        validity_seconds=validity,
        origin=origin,
        origin_parts=parts,
        receipt_request=_receipt_request(pdu.registered_delivery),
    )


def send_request(pdu: SubmitSm | DataSm, *, origin: str, now: datetime) -> SendRequest:
    """The request a submit_sm / data_sm makes (for a part: the part's own text alone,
    which checks its fields; see :func:`whole_request` for the joined message)."""
    to = destination(pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr)
    text = decode_text(content_of(pdu), pdu.data_coding)
    return _request(pdu, to=to, text=text, origin=origin, now=now)


def multi_requests(
    pdu: SubmitMulti, *, origin: str, now: datetime
) -> list[tuple[SmeAddress, SendRequest | Refused]]:
    """One request per SME destination of a submit_multi (or why that one is refused).

    Distribution lists are not supported and come back refused (``ESME_RINVDLNAME``).
    """
    if pdu.esm_class & GsmFeature.UDHI and part_from_pdu(_as_submit(pdu)) is not None:
        raise Refused(_S.ESME_RINVESMCLASS, "submit_multi cannot carry part of a long message")
    text = decode_text(content_of(pdu), pdu.data_coding)
    out: list[tuple[SmeAddress, SendRequest | Refused]] = []
    for dest in pdu.dest_addresses:
        if not isinstance(dest, SmeAddress):
            out.append(
                (SmeAddress(0, 0, dest.dl_name[:20]), Refused(_S.ESME_RINVDLNAME, "no lists"))
            )
            continue
        try:
            to = destination(dest.dest_addr_ton, dest.dest_addr_npi, dest.destination_addr)
            out.append((dest, _request(pdu, to=to, text=text, origin=origin, now=now)))
        except Refused as refusal:
            out.append((dest, refusal))
    return out


def _as_submit(pdu: SubmitMulti) -> SubmitSm:
    return SubmitSm(esm_class=pdu.esm_class, short_message=pdu.short_message, tlvs=pdu.tlvs)


def concat_part(pdu: SubmitSm | DataSm) -> Part | None:
    """The part of a long message this PDU carries (UDH 8/16-bit or SAR), or ``None``."""
    return part_from_pdu(pdu)


def part_key(pdu: SubmitSm | DataSm, part: Part) -> str:
    """What names a part's message among an account's: addresses, reference and total."""
    return "\x1f".join(
        (
            f"{pdu.source_addr_ton}/{part.source}",
            f"{pdu.dest_addr_ton}/{part.destination}",
            str(part.reference),
            str(part.total),
        )
    )


def whole_request(
    pdus: Sequence[SubmitSm | DataSm], payloads: Sequence[bytes], *, origin: str, now: datetime
) -> SendRequest:
    """The request of a long message from all its parts, in order: the first part's fields,
    the joined payloads decoded at once, a receipt if any part asked for one."""
    first = pdus[0]
    to = destination(first.dest_addr_ton, first.dest_addr_npi, first.destination_addr)
    text = decode_text(b"".join(payloads), first.data_coding)
    request = _request(first, to=to, text=text, origin=origin, now=now, parts=len(pdus))
    wanted = max((pdu.registered_delivery & 0x03 for pdu in pdus), default=0)
    if wanted and request.receipt_request is ReceiptRequest.NONE:
        request = replace(request, receipt_request=_receipt_request(wanted))
    return request


# --- ids ------------------------------------------------------------------------------------


def part_ids(message_id: str, parts: int) -> list[str]:
    """The ids the customer got for a message it sent in ``parts`` PDUs (``msg_...`` for one,
    ``msg_....1`` to ``msg_....N`` for several)."""
    if parts <= 1:
        return [message_id]
    return [f"{message_id}.{index}" for index in range(1, parts + 1)]


def message_id_of(smpp_id: str) -> str:
    """Our message id behind an id given in a submit_sm_resp (a part's id included)."""
    return smpp_id.strip().split(".", 1)[0]


# --- errors ---------------------------------------------------------------------------------

_VALIDATION_STATUS = {
    "invalid_validity": _S.ESME_RINVEXPIRY,
    "invalid_send_at": _S.ESME_RINVSCHED,
    "invalid_country": _S.ESME_RINVDSTADR,
}


def status_for(error: Exception) -> int:
    """The command_status that reports a use-case error to an ESME.

    The caller's mistakes get the specific status (or ``ESME_RSUBMITFAIL``); anything else is
    ours and gets ``ESME_RSYSERR``, which ESMEs retry.
    """
    if isinstance(error, Refused):
        return error.status
    if isinstance(error, InvalidRecipient):
        return _S.ESME_RINVDSTADR
    if isinstance(error, InvalidSender):
        return _S.ESME_RINVSRCADR
    if isinstance(error, InvalidBody):
        return _S.ESME_RINVMSGLEN
    if isinstance(error, ValidationError):
        return _VALIDATION_STATUS.get(error.code, _S.ESME_RSUBMITFAIL)
    if isinstance(error, PigeonError) and 400 <= error.status < 500:
        return _S.ESME_RSUBMITFAIL
    return _S.ESME_RSYSERR


# --- receipts and replies -------------------------------------------------------------------


def _naive_utc(value: str) -> datetime:
    # Receipt dates carry no zone (SMPP: the SMSC's local time); ours are UTC.
    return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)


def _ascii(text: str) -> str:
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def receipt_pdus(payload: Mapping[str, Any]) -> list[DeliverSm]:
    """The deliver_sm receipts of an ``smpp_deliver`` receipt job: one per id the customer got
    (one per part it sent), each the same however often it is built."""
    stat = str(payload["stat"])
    error = str(payload["err"])
    state = stat_state(stat) or MessageState.UNKNOWN
    submitted = _naive_utc(str(payload["submitted_at"]))
    done = _naive_utc(str(payload["done_at"]))
    text = _ascii(str(payload.get("text") or ""))
    src_ton, src_npi, src = _address_fields(payload.get("recipient"))
    dst_ton, dst_npi, dst = _address_fields(payload.get("sender"))
    pdus = []
    for part_id in part_ids(str(payload["message_id"]), int(payload.get("parts") or 1)):
        body = format_receipt(
            ReceiptText(
                message_id=part_id,
                submitted=1,
                delivered=1 if state is MessageState.DELIVERED else 0,
                submit_date=submitted,
                done_date=done,
                stat=stat,
                error=error,
                text=text,
            )
        )
        tlvs = [tlv.RECEIPTED_MESSAGE_ID(part_id), tlv.MESSAGE_STATE(state)]
        if error.isdigit() and int(error) != 0:
            tlvs.append(tlv.NETWORK_ERROR_CODE(tlv.NetworkErrorCode(_GSM_NETWORK, int(error))))
        pdus.append(
            DeliverSm(
                source_addr_ton=src_ton,
                source_addr_npi=src_npi,
                source_addr=src,
                dest_addr_ton=dst_ton,
                dest_addr_npi=dst_npi,
                destination_addr=dst,
                esm_class=MessageType.SMSC_DELIVERY_RECEIPT,
                data_coding=DataCoding.DEFAULT,
                short_message=body.encode("ascii"),
                tlvs=tuple(tlvs),
            )
        )
    return pdus


def reply_pdus(payload: Mapping[str, Any]) -> list[DeliverSm]:
    """The deliver_sm(s) of a reply: GSM 03.38 (data_coding 0) when it fits, else UCS-2; a
    long reply in parts with an 8-bit UDH whose reference derives from the message id."""
    body = str(payload["body"])
    src_ton, src_npi, src = _address_fields(payload.get("source"))
    dst_ton, dst_npi, dst = _address_fields(payload.get("destination"))
    if analyse(body).encoding is Encoding.GSM7:
        coding, encode = DataCoding.DEFAULT, encode_gsm7
    else:
        coding, encode = DataCoding.UCS2, encode_ucs2
    segments = split_segments(body) or [body]
    base = DeliverSm(
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=src,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=dst,
        data_coding=coding,
    )
    if len(segments) == 1:
        return [_with(base, short_message=encode(body))]
    reference = hashlib.sha256(str(payload["message_id"]).encode()).digest()[0]
    total = len(segments)
    return [
        _with(
            base,
            esm_class=GsmFeature.UDHI,
            short_message=concat_udh(reference, total, seq) + encode(segment),
        )
        for seq, segment in enumerate(segments, 1)
    ]


def _with(pdu: DeliverSm, **changes: Any) -> DeliverSm:
    return replace(pdu, **changes)


# --- query_sm -------------------------------------------------------------------------------

_STATES = {
    MessageStatus.DELIVERED: MessageState.DELIVERED,
    MessageStatus.EXPIRED: MessageState.EXPIRED,
    MessageStatus.CANCELED: MessageState.DELETED,
    MessageStatus.UNDELIVERED: MessageState.UNDELIVERABLE,
    MessageStatus.FAILED: MessageState.UNDELIVERABLE,
    MessageStatus.REJECTED: MessageState.REJECTED,
    MessageStatus.UNKNOWN: MessageState.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The fields of a query_sm_resp."""

    final_date: str
    message_state: int
    error_code: int


def query_result(message: Message) -> QueryResult:
    """What query_sm answers about ``message``: ENROUTE until a final status."""
    state = _STATES.get(message.status, MessageState.ENROUTE)
    final = message.status.is_final and state is not MessageState.ENROUTE
    code = message.error_code or ""
    error = int(code) if code.isdigit() and int(code) <= 0xFF else 0
    return QueryResult(
        final_date=format_absolute(message.updated_at) if final else "",
        message_state=state,
        error_code=error,
    )
