"""SMPP 3.4 wire codec: PDUs to bytes and back, with no I/O.

* :func:`encode` turns a PDU into one frame and refuses (``ValueError``) what the spec forbids,
  so we never put on the wire a PDU that a strict peer would reject.
* :class:`PduDecoder` is incremental: feed it whatever the socket returned, get back every
  complete frame as a :class:`~pigeon.smpp.pdu.Pdu` or a :class:`DecodeError`. It never raises
  on peer input. A :class:`DecodeError` carries the command_status to answer with and the
  request's sequence_number; :meth:`DecodeError.response` builds that answer. Only a broken
  frame length (``fatal=True``) loses the framing; the driver then answers and closes.
* :func:`response_for` builds the ``*_resp`` (or generic_nack) matching a request.

Field size limits are the specification's, counted like the spec counts them: a C-Octet
string of "max 21" holds 20 characters and the terminating NUL.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pigeon.smpp.constants import RESPONSE_BIT, CommandId, CommandStatus, DestFlag
from pigeon.smpp.pdu import (
    PDU_CLASSES,
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    DestAddress,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnsuccessSme,
)
from pigeon.smpp.tlv import LENGTH_BOUNDS, Tlv

__all__ = [
    "DEFAULT_MAX_COMMAND_LENGTH",
    "HEADER_LENGTH",
    "MAX_SM_LENGTH",
    "DecodeError",
    "DecodeResult",
    "PduDecoder",
    "decode",
    "encode",
    "response_for",
]

HEADER_LENGTH = 16
DEFAULT_MAX_COMMAND_LENGTH = 64 * 1024
MAX_SM_LENGTH = 254
MAX_DESTS = 254

# C-Octet string sizes, NUL included (SMPP 3.4, section 4).
SYSTEM_ID = 16
PASSWORD = 9
SYSTEM_TYPE = 13
ADDRESS_RANGE = 41
SERVICE_TYPE = 6
ADDR = 21  # source_addr / destination_addr of submit_sm, deliver_sm, query_sm ...
ADDR_65 = 65  # data_sm and alert_notification addresses
MESSAGE_ID = 65
TIME = 17  # schedule_delivery_time, validity_period, final_date: empty or 16 characters
DL_NAME = 21

_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_U32 = struct.Struct(">I")
_B2 = struct.Struct(">BB")
_B3 = struct.Struct(">BBB")
_B5 = struct.Struct(">BBBBB")

_S = CommandStatus


# ============================================================================ encoding


def _c(value: str, size: int, name: str) -> bytes:
    if not value:  # most optional fields (service_type, the times, a response's message_id)
        return b"\x00"
    if len(value) >= size:
        raise ValueError(f"{name}: {len(value)} characters, at most {size - 1} allowed")
    if "\x00" in value:
        raise ValueError(f"{name}: contains NUL")
    return value.encode("latin-1") + b"\x00"


def _t(value: str, name: str) -> bytes:
    if not value:
        return b"\x00"
    if len(value) != 16:
        raise ValueError(f"{name}: an SMPP time is empty or 16 characters, got {value!r}")
    return _c(value, TIME, name)


def _sm(short_message: bytes) -> bytes:
    if len(short_message) > MAX_SM_LENGTH:
        raise ValueError(
            f"short_message: {len(short_message)} octets, at most {MAX_SM_LENGTH} "
            "(use the message_payload TLV for longer content)"
        )
    return bytes(short_message)


def _enc_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    parts = []
    for tag, value in tlvs:
        if len(value) > 0xFFFF:
            raise ValueError(f"TLV 0x{tag:04X}: value longer than 65535 octets")
        parts.append(_TLV_HEAD.pack(tag, len(value)))
        parts.append(value)
    return b"".join(parts)


def _enc_empty(p: Pdu) -> bytes:
    return b""


def _enc_bind(p: BindTransmitter | BindReceiver | BindTransceiver) -> bytes:
    return b"".join(
        (
            _c(p.system_id, SYSTEM_ID, "system_id"),
            _c(p.password, PASSWORD, "password"),
            _c(p.system_type, SYSTEM_TYPE, "system_type"),
            _B3.pack(p.interface_version, p.addr_ton, p.addr_npi),
            _c(p.address_range, ADDRESS_RANGE, "address_range"),
        )
    )


def _enc_bind_resp(p: BindTransmitterResp | BindReceiverResp | BindTransceiverResp) -> bytes:
    # 4.1.2: no body when command_status is an error.
    if p.command_status and not p.system_id and not p.tlvs:
        return b""
    return _c(p.system_id, SYSTEM_ID, "system_id")


def _enc_outbind(p: Outbind) -> bytes:
    return _c(p.system_id, SYSTEM_ID, "system_id") + _c(p.password, PASSWORD, "password")


def _enc_sm(p: SubmitSm | DeliverSm) -> bytes:
    sm = _sm(p.short_message)
    return b"".join(
        (
            _c(p.service_type, SERVICE_TYPE, "service_type"),
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR, "source_addr"),
            _B2.pack(p.dest_addr_ton, p.dest_addr_npi),
            _c(p.destination_addr, ADDR, "destination_addr"),
            _B3.pack(p.esm_class, p.protocol_id, p.priority_flag),
            _t(p.schedule_delivery_time, "schedule_delivery_time"),
            _t(p.validity_period, "validity_period"),
            _B5.pack(
                p.registered_delivery,
                p.replace_if_present_flag,
                p.data_coding,
                p.sm_default_msg_id,
                len(sm),
            ),
            sm,
        )
    )


def _enc_message_id_resp(p: SubmitSmResp | DeliverSmResp | DataSmResp) -> bytes:
    # 4.4.2: submit_sm_resp has no body when command_status is an error; same for data_sm_resp
    # without TLVs. deliver_sm_resp always carries its (unused) NUL message_id.
    if p.command_status and not p.message_id and not p.tlvs and not isinstance(p, DeliverSmResp):
        return b""
    return _c(p.message_id, MESSAGE_ID, "message_id")


def _enc_dest(d: DestAddress) -> bytes:
    if isinstance(d, SmeAddress):
        return _B3.pack(DestFlag.SME_ADDRESS, d.dest_addr_ton, d.dest_addr_npi) + _c(
            d.destination_addr, ADDR, "destination_addr"
        )
    return bytes((DestFlag.DISTRIBUTION_LIST,)) + _c(d.dl_name, DL_NAME, "dl_name")


def _enc_submit_multi(p: SubmitMulti) -> bytes:
    if not 1 <= len(p.dest_addresses) <= MAX_DESTS:
        raise ValueError(f"number_of_dests: {len(p.dest_addresses)}, allowed 1..{MAX_DESTS}")
    sm = _sm(p.short_message)
    return b"".join(
        (
            _c(p.service_type, SERVICE_TYPE, "service_type"),
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR, "source_addr"),
            bytes((len(p.dest_addresses),)),
            *(_enc_dest(d) for d in p.dest_addresses),
            _B3.pack(p.esm_class, p.protocol_id, p.priority_flag),
            _t(p.schedule_delivery_time, "schedule_delivery_time"),
            _t(p.validity_period, "validity_period"),
            _B5.pack(
                p.registered_delivery,
                p.replace_if_present_flag,
                p.data_coding,
                p.sm_default_msg_id,
                len(sm),
            ),
            sm,
        )
    )


def _enc_unsuccess(u: UnsuccessSme) -> bytes:
    return b"".join(
        (
            _B2.pack(u.dest_addr_ton, u.dest_addr_npi),
            _c(u.destination_addr, ADDR, "destination_addr"),
            _U32.pack(u.error_status_code),
        )
    )


def _enc_submit_multi_resp(p: SubmitMultiResp) -> bytes:
    if len(p.unsuccess_smes) > MAX_DESTS:
        raise ValueError(f"no_unsuccess: {len(p.unsuccess_smes)}, at most {MAX_DESTS}")
    return b"".join(
        (
            _c(p.message_id, MESSAGE_ID, "message_id"),
            bytes((len(p.unsuccess_smes),)),
            *(_enc_unsuccess(u) for u in p.unsuccess_smes),
        )
    )


def _enc_data_sm(p: DataSm) -> bytes:
    return b"".join(
        (
            _c(p.service_type, SERVICE_TYPE, "service_type"),
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR_65, "source_addr"),
            _B2.pack(p.dest_addr_ton, p.dest_addr_npi),
            _c(p.destination_addr, ADDR_65, "destination_addr"),
            _B3.pack(p.esm_class, p.registered_delivery, p.data_coding),
        )
    )


def _enc_query_sm(p: QuerySm) -> bytes:
    return b"".join(
        (
            _c(p.message_id, MESSAGE_ID, "message_id"),
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR, "source_addr"),
        )
    )


def _enc_query_sm_resp(p: QuerySmResp) -> bytes:
    return b"".join(
        (
            _c(p.message_id, MESSAGE_ID, "message_id"),
            _t(p.final_date, "final_date"),
            _B2.pack(p.message_state, p.error_code),
        )
    )


def _enc_cancel_sm(p: CancelSm) -> bytes:
    return b"".join(
        (
            _c(p.service_type, SERVICE_TYPE, "service_type"),
            _c(p.message_id, MESSAGE_ID, "message_id"),
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR, "source_addr"),
            _B2.pack(p.dest_addr_ton, p.dest_addr_npi),
            _c(p.destination_addr, ADDR, "destination_addr"),
        )
    )


def _enc_replace_sm(p: ReplaceSm) -> bytes:
    sm = _sm(p.short_message)
    return b"".join(
        (
            _c(p.message_id, MESSAGE_ID, "message_id"),
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR, "source_addr"),
            _t(p.schedule_delivery_time, "schedule_delivery_time"),
            _t(p.validity_period, "validity_period"),
            _B3.pack(p.registered_delivery, p.sm_default_msg_id, len(sm)),
            sm,
        )
    )


def _enc_alert(p: AlertNotification) -> bytes:
    return b"".join(
        (
            _B2.pack(p.source_addr_ton, p.source_addr_npi),
            _c(p.source_addr, ADDR_65, "source_addr"),
            _B2.pack(p.esme_addr_ton, p.esme_addr_npi),
            _c(p.esme_addr, ADDR_65, "esme_addr"),
        )
    )


# Each encoder takes the PDU class it is registered for; the table erases that to Pdu.
_ENCODERS: dict[type[Pdu], Callable[[Pdu], bytes]] = {
    BindTransmitter: _enc_bind,  # type: ignore[dict-item]
    BindReceiver: _enc_bind,  # type: ignore[dict-item]
    BindTransceiver: _enc_bind,  # type: ignore[dict-item]
    BindTransmitterResp: _enc_bind_resp,  # type: ignore[dict-item]
    BindReceiverResp: _enc_bind_resp,  # type: ignore[dict-item]
    BindTransceiverResp: _enc_bind_resp,  # type: ignore[dict-item]
    Outbind: _enc_outbind,  # type: ignore[dict-item]
    Unbind: _enc_empty,
    UnbindResp: _enc_empty,
    GenericNack: _enc_empty,
    EnquireLink: _enc_empty,
    EnquireLinkResp: _enc_empty,
    SubmitSm: _enc_sm,  # type: ignore[dict-item]
    DeliverSm: _enc_sm,  # type: ignore[dict-item]
    SubmitSmResp: _enc_message_id_resp,  # type: ignore[dict-item]
    DeliverSmResp: _enc_message_id_resp,  # type: ignore[dict-item]
    SubmitMulti: _enc_submit_multi,  # type: ignore[dict-item]
    SubmitMultiResp: _enc_submit_multi_resp,  # type: ignore[dict-item]
    DataSm: _enc_data_sm,  # type: ignore[dict-item]
    DataSmResp: _enc_message_id_resp,  # type: ignore[dict-item]
    QuerySm: _enc_query_sm,  # type: ignore[dict-item]
    QuerySmResp: _enc_query_sm_resp,  # type: ignore[dict-item]
    CancelSm: _enc_cancel_sm,  # type: ignore[dict-item]
    CancelSmResp: _enc_empty,
    ReplaceSm: _enc_replace_sm,  # type: ignore[dict-item]
    ReplaceSmResp: _enc_empty,
    AlertNotification: _enc_alert,  # type: ignore[dict-item]
}


def encode(pdu: Pdu) -> bytes:
    """One complete frame for ``pdu``; ``ValueError`` if a field breaks the specification."""
    encoder = _ENCODERS.get(type(pdu))
    if encoder is None:
        raise TypeError(f"not an SMPP PDU: {type(pdu).__name__}")
    try:
        body = encoder(pdu)
        if pdu.tlvs:
            body += _enc_tlvs(pdu.tlvs)
        return (
            _HEADER.pack(
                HEADER_LENGTH + len(body),
                pdu.command_id,
                pdu.command_status,
                pdu.sequence_number,
            )
            + body
        )
    except struct.error as exc:  # an integer field out of its range
        raise ValueError(f"{type(pdu).__name__}: {exc}") from exc


# ============================================================================ decoding


@dataclass(slots=True, frozen=True)
class DecodeError:
    """A frame that could not be decoded, and how to answer it.

    ``status`` is the command_status for the answer; ``command_id`` and ``sequence_number``
    are the frame's header values. ``fatal`` means framing is lost (bad command_length): answer
    with :meth:`response` and close the connection. Otherwise the frame was skipped and the
    connection can go on.
    """

    status: int
    command_id: int
    sequence_number: int
    reason: str
    fatal: bool = False
    frame: bytes = field(default=b"", repr=False)

    @property
    def is_response(self) -> bool:
        """True if the frame was a response PDU (which must not be answered)."""
        return (
            not self.fatal
            and bool(self.command_id & RESPONSE_BIT)
            and self.command_id in PDU_CLASSES
        )

    def response(self) -> Pdu | None:
        """The PDU to answer with: the request's ``*_resp`` or generic_nack; None for responses."""
        if self.fatal or self.command_id not in PDU_CLASSES:
            return GenericNack(sequence_number=self.sequence_number, command_status=self.status)
        if self.command_id & RESPONSE_BIT:
            return None
        return _response(self.command_id, self.sequence_number, self.status)


DecodeResult: TypeAlias = Pdu | DecodeError
"""What the decoder yields per frame."""


class _BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _short(name: str) -> _BodyError:
    return _BodyError(_S.ESME_RINVCMDLEN, f"body ends before {name}")


def _cstr(buf: bytes, pos: int, end: int, size: int, status: int, name: str) -> tuple[str, int]:
    """A C-Octet string of at most ``size`` octets (NUL included) at ``pos``."""
    if pos >= end:
        raise _short(name)
    stop = pos + size
    nul = buf.find(b"\x00", pos, stop if stop < end else end)
    if nul < 0:
        raise _BodyError(
            status,
            f"{name}: no NUL within {size} octets"
            if stop <= end
            else f"{name}: no NUL before end of body",
        )
    return buf[pos:nul].decode("latin-1"), nul + 1


def _time(buf: bytes, pos: int, end: int, status: int, name: str) -> tuple[str, int]:
    value, pos = _cstr(buf, pos, end, TIME, status, name)
    if len(value) not in (0, 16):
        raise _BodyError(status, f"{name}: an SMPP time is empty or 16 characters")
    return value, pos


def _tlvs(buf: bytes, pos: int, end: int) -> tuple[Tlv, ...]:
    if pos == end:
        return ()
    out = []
    unpack = _TLV_HEAD.unpack_from
    while pos < end:
        if end - pos < 4:
            raise _BodyError(_S.ESME_RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = unpack(buf, pos)
        pos += 4
        stop = pos + length
        if stop > end:
            raise _BodyError(
                _S.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X}: length {length} past end of PDU"
            )
        bounds = LENGTH_BOUNDS.get(tag)
        if bounds is not None and not bounds[0] <= length <= bounds[1]:
            raise _BodyError(
                _S.ESME_RINVPARLEN,
                f"TLV 0x{tag:04X}: length {length}, allowed {bounds[0]}..{bounds[1]}",
            )
        out.append((tag, buf[pos:stop]))
        pos = stop
    return tuple(out)


_Decoder = Callable[[bytes, int, int, int, int], Pdu]


def _dec_empty(cls: type[Pdu]) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
        return cls(sequence_number=seq, command_status=status, tlvs=_tlvs(buf, pos, end))

    return decode


def _dec_bind(cls: type[BindTransmitter | BindReceiver | BindTransceiver]) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
        system_id, pos = _cstr(buf, pos, end, SYSTEM_ID, _S.ESME_RINVSYSID, "system_id")
        password, pos = _cstr(buf, pos, end, PASSWORD, _S.ESME_RINVPASWD, "password")
        system_type, pos = _cstr(buf, pos, end, SYSTEM_TYPE, _S.ESME_RINVSYSTYP, "system_type")
        if pos + 3 > end:
            raise _short("interface_version")
        version, ton, npi = buf[pos], buf[pos + 1], buf[pos + 2]
        pos += 3
        if pos == end:
            # Tolerated: some ESMEs drop the trailing empty address_range altogether.
            address_range = ""
        else:
            address_range, pos = _cstr(
                buf, pos, end, ADDRESS_RANGE, _S.ESME_RBINDFAIL, "address_range"
            )
        return cls(
            sequence_number=seq,
            command_status=status,
            system_id=system_id,
            password=password,
            system_type=system_type,
            interface_version=version,
            addr_ton=ton,
            addr_npi=npi,
            address_range=address_range,
            tlvs=_tlvs(buf, pos, end),
        )

    return decode


def _dec_bind_resp(
    cls: type[BindTransmitterResp | BindReceiverResp | BindTransceiverResp],
) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
        system_id, pos = _cstr(buf, pos, end, SYSTEM_ID, _S.ESME_RINVSYSID, "system_id")
        return cls(
            sequence_number=seq,
            command_status=status,
            system_id=system_id,
            tlvs=_tlvs(buf, pos, end),
        )

    return decode


def _dec_outbind(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    system_id, pos = _cstr(buf, pos, end, SYSTEM_ID, _S.ESME_RINVSYSID, "system_id")
    password, pos = _cstr(buf, pos, end, PASSWORD, _S.ESME_RINVPASWD, "password")
    return Outbind(
        sequence_number=seq,
        command_status=status,
        system_id=system_id,
        password=password,
        tlvs=_tlvs(buf, pos, end),
    )


def _dec_sm(cls: type[SubmitSm | DeliverSm]) -> _Decoder:
    # The hot path: C-strings are found with bytes.find, integers read by index.
    new = object.__new__

    def decode(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
        find = buf.find
        # service_type: usually empty
        if pos < end and buf[pos] == 0:
            nul = pos
            service_type = ""
        else:
            stop = pos + SERVICE_TYPE
            nul = find(b"\x00", pos, stop if stop < end else end)
            if nul < 0:
                if pos >= end:
                    raise _short("service_type")
                raise _BodyError(_S.ESME_RINVSERTYP, "service_type: not a C-Octet string of max 6")
            service_type = buf[pos:nul].decode("latin-1")
        pos = nul + 3
        if pos > end:
            raise _short("source_addr_ton")
        src_ton = buf[nul + 1]
        src_npi = buf[nul + 2]
        # source_addr
        stop = pos + ADDR
        nul = find(b"\x00", pos, stop if stop < end else end)
        if nul < 0:
            if pos >= end:
                raise _short("source_addr")
            raise _BodyError(_S.ESME_RINVSRCADR, "source_addr: not a C-Octet string of max 21")
        source_addr = buf[pos:nul].decode("latin-1")
        pos = nul + 3
        if pos > end:
            raise _short("dest_addr_ton")
        dst_ton = buf[nul + 1]
        dst_npi = buf[nul + 2]
        # destination_addr
        stop = pos + ADDR
        nul = find(b"\x00", pos, stop if stop < end else end)
        if nul < 0:
            if pos >= end:
                raise _short("destination_addr")
            raise _BodyError(_S.ESME_RINVDSTADR, "destination_addr: not a C-Octet string of max 21")
        destination_addr = buf[pos:nul].decode("latin-1")
        pos = nul + 4
        if pos > end:
            raise _short("esm_class")
        esm = buf[nul + 1]
        pid = buf[nul + 2]
        priority = buf[nul + 3]
        # schedule_delivery_time / validity_period: usually empty
        if pos < end and buf[pos] == 0:
            schedule = ""
            pos += 1
        else:
            schedule, pos = _time(buf, pos, end, _S.ESME_RINVSCHED, "schedule_delivery_time")
        if pos < end and buf[pos] == 0:
            validity = ""
            pos += 1
        else:
            validity, pos = _time(buf, pos, end, _S.ESME_RINVEXPIRY, "validity_period")
        if pos + 5 > end:
            raise _short("registered_delivery")
        sm_length = buf[pos + 4]
        sm_start = pos + 5
        sm_end = sm_start + sm_length
        if sm_length > MAX_SM_LENGTH or sm_end > end:
            raise _BodyError(
                _S.ESME_RINVMSGLEN, f"sm_length {sm_length} exceeds the PDU or {MAX_SM_LENGTH}"
            )
        # Built slot by slot, without ``__init__``'s keyword binding: this is the decoder's
        # hot path. A PDU is a ``value_object``, immutable to the type checker only (ADR 33),
        # so plain assignments set its slots (``Any`` tells mypy so); calling each slot
        # descriptor's ``__set__`` cost a method-wrapper call per field (session 46). Every
        # field is set (the round-trip tests compare all of them).
        pdu: Any = new(cls)
        pdu.sequence_number = seq
        pdu.command_status = status
        pdu.tlvs = _tlvs(buf, sm_end, end) if sm_end < end else ()
        pdu.service_type = service_type
        pdu.source_addr_ton = src_ton
        pdu.source_addr_npi = src_npi
        pdu.source_addr = source_addr
        pdu.dest_addr_ton = dst_ton
        pdu.dest_addr_npi = dst_npi
        pdu.destination_addr = destination_addr
        pdu.esm_class = esm
        pdu.protocol_id = pid
        pdu.priority_flag = priority
        pdu.schedule_delivery_time = schedule
        pdu.validity_period = validity
        pdu.registered_delivery = buf[pos]
        pdu.replace_if_present_flag = buf[pos + 1]
        pdu.data_coding = buf[pos + 2]
        pdu.sm_default_msg_id = buf[pos + 3]
        pdu.short_message = buf[sm_start:sm_end]
        decoded: Pdu = pdu
        return decoded

    return decode


def _dec_message_id_resp(cls: type[SubmitSmResp | DeliverSmResp | DataSmResp]) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
        if buf.find(b"\x00", pos, end) < 0 and end - pos < MESSAGE_ID:
            # Tolerated: SMSCs that send the message_id without its NUL. Rejecting the
            # response would make us resubmit a message the carrier accepted.
            return cls(
                sequence_number=seq,
                command_status=status,
                message_id=buf[pos:end].decode("latin-1"),
            )
        message_id, pos = _cstr(buf, pos, end, MESSAGE_ID, _S.ESME_RINVMSGID, "message_id")
        return cls(
            sequence_number=seq,
            command_status=status,
            message_id=message_id,
            tlvs=_tlvs(buf, pos, end) if pos < end else (),
        )

    return decode


def _dec_submit_multi(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    service_type, pos = _cstr(buf, pos, end, SERVICE_TYPE, _S.ESME_RINVSERTYP, "service_type")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    src_ton, src_npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr(buf, pos + 2, end, ADDR, _S.ESME_RINVSRCADR, "source_addr")
    if pos >= end:
        raise _short("number_of_dests")
    count = buf[pos]
    pos += 1
    if not 1 <= count <= MAX_DESTS:
        raise _BodyError(_S.ESME_RINVNUMDESTS, f"number_of_dests {count}")
    dests: list[DestAddress] = []
    for _ in range(count):
        if pos >= end:
            raise _short("dest_flag")
        flag = buf[pos]
        if flag == DestFlag.SME_ADDRESS:
            if pos + 3 > end:
                raise _short("dest_addr_ton")
            ton, npi = buf[pos + 1], buf[pos + 2]
            addr, pos = _cstr(buf, pos + 3, end, ADDR, _S.ESME_RINVDSTADR, "destination_addr")
            dests.append(SmeAddress(ton, npi, addr))
        elif flag == DestFlag.DISTRIBUTION_LIST:
            name, pos = _cstr(buf, pos + 1, end, DL_NAME, _S.ESME_RINVDLNAME, "dl_name")
            dests.append(DistributionList(name))
        else:
            raise _BodyError(_S.ESME_RINVDESTFLAG, f"dest_flag {flag}")
    if pos + 3 > end:
        raise _short("esm_class")
    esm, pid, priority = buf[pos], buf[pos + 1], buf[pos + 2]
    schedule, pos = _time(buf, pos + 3, end, _S.ESME_RINVSCHED, "schedule_delivery_time")
    validity, pos = _time(buf, pos, end, _S.ESME_RINVEXPIRY, "validity_period")
    if pos + 5 > end:
        raise _short("registered_delivery")
    sm_length = buf[pos + 4]
    sm_end = pos + 5 + sm_length
    if sm_length > MAX_SM_LENGTH or sm_end > end:
        raise _BodyError(_S.ESME_RINVMSGLEN, f"sm_length {sm_length}")
    return SubmitMulti(
        sequence_number=seq,
        command_status=status,
        service_type=service_type,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=source_addr,
        dest_addresses=tuple(dests),
        esm_class=esm,
        protocol_id=pid,
        priority_flag=priority,
        schedule_delivery_time=schedule,
        validity_period=validity,
        registered_delivery=buf[pos],
        replace_if_present_flag=buf[pos + 1],
        data_coding=buf[pos + 2],
        sm_default_msg_id=buf[pos + 3],
        short_message=buf[pos + 5 : sm_end],
        tlvs=_tlvs(buf, sm_end, end),
    )


def _dec_submit_multi_resp(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    message_id, pos = _cstr(buf, pos, end, MESSAGE_ID, _S.ESME_RINVMSGID, "message_id")
    if pos >= end:
        raise _short("no_unsuccess")
    count = buf[pos]
    pos += 1
    failed = []
    for _ in range(count):
        if pos + 2 > end:
            raise _short("unsuccess_sme")
        ton, npi = buf[pos], buf[pos + 1]
        addr, pos = _cstr(buf, pos + 2, end, ADDR, _S.ESME_RINVDSTADR, "destination_addr")
        if pos + 4 > end:
            raise _short("error_status_code")
        failed.append(UnsuccessSme(ton, npi, addr, _U32.unpack_from(buf, pos)[0]))
        pos += 4
    return SubmitMultiResp(
        sequence_number=seq,
        command_status=status,
        message_id=message_id,
        unsuccess_smes=tuple(failed),
        tlvs=_tlvs(buf, pos, end),
    )


def _dec_data_sm(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    service_type, pos = _cstr(buf, pos, end, SERVICE_TYPE, _S.ESME_RINVSERTYP, "service_type")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    src_ton, src_npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr(buf, pos + 2, end, ADDR_65, _S.ESME_RINVSRCADR, "source_addr")
    if pos + 2 > end:
        raise _short("dest_addr_ton")
    dst_ton, dst_npi = buf[pos], buf[pos + 1]
    dest, pos = _cstr(buf, pos + 2, end, ADDR_65, _S.ESME_RINVDSTADR, "destination_addr")
    if pos + 3 > end:
        raise _short("esm_class")
    return DataSm(
        sequence_number=seq,
        command_status=status,
        service_type=service_type,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=source_addr,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=dest,
        esm_class=buf[pos],
        registered_delivery=buf[pos + 1],
        data_coding=buf[pos + 2],
        tlvs=_tlvs(buf, pos + 3, end),
    )


def _dec_query_sm(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    message_id, pos = _cstr(buf, pos, end, MESSAGE_ID, _S.ESME_RINVMSGID, "message_id")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    ton, npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr(buf, pos + 2, end, ADDR, _S.ESME_RINVSRCADR, "source_addr")
    return QuerySm(
        sequence_number=seq,
        command_status=status,
        message_id=message_id,
        source_addr_ton=ton,
        source_addr_npi=npi,
        source_addr=source_addr,
        tlvs=_tlvs(buf, pos, end),
    )


def _dec_query_sm_resp(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    message_id, pos = _cstr(buf, pos, end, MESSAGE_ID, _S.ESME_RINVMSGID, "message_id")
    final_date, pos = _time(buf, pos, end, _S.ESME_RSYSERR, "final_date")
    if pos + 2 > end:
        raise _short("message_state")
    return QuerySmResp(
        sequence_number=seq,
        command_status=status,
        message_id=message_id,
        final_date=final_date,
        message_state=buf[pos],
        error_code=buf[pos + 1],
        tlvs=_tlvs(buf, pos + 2, end),
    )


def _dec_cancel_sm(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    service_type, pos = _cstr(buf, pos, end, SERVICE_TYPE, _S.ESME_RINVSERTYP, "service_type")
    message_id, pos = _cstr(buf, pos, end, MESSAGE_ID, _S.ESME_RINVMSGID, "message_id")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    src_ton, src_npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr(buf, pos + 2, end, ADDR, _S.ESME_RINVSRCADR, "source_addr")
    if pos + 2 > end:
        raise _short("dest_addr_ton")
    dst_ton, dst_npi = buf[pos], buf[pos + 1]
    dest, pos = _cstr(buf, pos + 2, end, ADDR, _S.ESME_RINVDSTADR, "destination_addr")
    return CancelSm(
        sequence_number=seq,
        command_status=status,
        service_type=service_type,
        message_id=message_id,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=source_addr,
        dest_addr_ton=dst_ton,
        dest_addr_npi=dst_npi,
        destination_addr=dest,
        tlvs=_tlvs(buf, pos, end),
    )


def _dec_replace_sm(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    message_id, pos = _cstr(buf, pos, end, MESSAGE_ID, _S.ESME_RINVMSGID, "message_id")
    if pos + 2 > end:
        raise _short("source_addr_ton")
    ton, npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr(buf, pos + 2, end, ADDR, _S.ESME_RINVSRCADR, "source_addr")
    schedule, pos = _time(buf, pos, end, _S.ESME_RINVSCHED, "schedule_delivery_time")
    validity, pos = _time(buf, pos, end, _S.ESME_RINVEXPIRY, "validity_period")
    if pos + 3 > end:
        raise _short("registered_delivery")
    sm_length = buf[pos + 2]
    sm_end = pos + 3 + sm_length
    if sm_length > MAX_SM_LENGTH or sm_end > end:
        raise _BodyError(_S.ESME_RINVMSGLEN, f"sm_length {sm_length}")
    return ReplaceSm(
        sequence_number=seq,
        command_status=status,
        message_id=message_id,
        source_addr_ton=ton,
        source_addr_npi=npi,
        source_addr=source_addr,
        schedule_delivery_time=schedule,
        validity_period=validity,
        registered_delivery=buf[pos],
        sm_default_msg_id=buf[pos + 1],
        short_message=buf[pos + 3 : sm_end],
        tlvs=_tlvs(buf, sm_end, end),
    )


def _dec_alert(buf: bytes, pos: int, end: int, seq: int, status: int) -> Pdu:
    if pos + 2 > end:
        raise _short("source_addr_ton")
    src_ton, src_npi = buf[pos], buf[pos + 1]
    source_addr, pos = _cstr(buf, pos + 2, end, ADDR_65, _S.ESME_RINVSRCADR, "source_addr")
    if pos + 2 > end:
        raise _short("esme_addr_ton")
    esme_ton, esme_npi = buf[pos], buf[pos + 1]
    esme_addr, pos = _cstr(buf, pos + 2, end, ADDR_65, _S.ESME_RINVDSTADR, "esme_addr")
    return AlertNotification(
        sequence_number=seq,
        command_status=status,
        source_addr_ton=src_ton,
        source_addr_npi=src_npi,
        source_addr=source_addr,
        esme_addr_ton=esme_ton,
        esme_addr_npi=esme_npi,
        esme_addr=esme_addr,
        tlvs=_tlvs(buf, pos, end),
    )


_DECODERS: dict[int, _Decoder] = {
    CommandId.BIND_TRANSMITTER: _dec_bind(BindTransmitter),
    CommandId.BIND_RECEIVER: _dec_bind(BindReceiver),
    CommandId.BIND_TRANSCEIVER: _dec_bind(BindTransceiver),
    CommandId.BIND_TRANSMITTER_RESP: _dec_bind_resp(BindTransmitterResp),
    CommandId.BIND_RECEIVER_RESP: _dec_bind_resp(BindReceiverResp),
    CommandId.BIND_TRANSCEIVER_RESP: _dec_bind_resp(BindTransceiverResp),
    CommandId.OUTBIND: _dec_outbind,
    CommandId.UNBIND: _dec_empty(Unbind),
    CommandId.UNBIND_RESP: _dec_empty(UnbindResp),
    CommandId.GENERIC_NACK: _dec_empty(GenericNack),
    CommandId.ENQUIRE_LINK: _dec_empty(EnquireLink),
    CommandId.ENQUIRE_LINK_RESP: _dec_empty(EnquireLinkResp),
    CommandId.SUBMIT_SM: _dec_sm(SubmitSm),
    CommandId.DELIVER_SM: _dec_sm(DeliverSm),
    CommandId.SUBMIT_SM_RESP: _dec_message_id_resp(SubmitSmResp),
    CommandId.DELIVER_SM_RESP: _dec_message_id_resp(DeliverSmResp),
    CommandId.SUBMIT_MULTI: _dec_submit_multi,
    CommandId.SUBMIT_MULTI_RESP: _dec_submit_multi_resp,
    CommandId.DATA_SM: _dec_data_sm,
    CommandId.DATA_SM_RESP: _dec_message_id_resp(DataSmResp),
    CommandId.QUERY_SM: _dec_query_sm,
    CommandId.QUERY_SM_RESP: _dec_query_sm_resp,
    CommandId.CANCEL_SM: _dec_cancel_sm,
    CommandId.CANCEL_SM_RESP: _dec_empty(CancelSmResp),
    CommandId.REPLACE_SM: _dec_replace_sm,
    CommandId.REPLACE_SM_RESP: _dec_empty(ReplaceSmResp),
    CommandId.ALERT_NOTIFICATION: _dec_alert,
}


def _decode_frame(
    buf: bytes, pos: int, end: int, command_id: int, status: int, seq: int
) -> DecodeResult:
    """Decode the frame ``buf[pos:end]`` whose header is already unpacked."""
    decoder = _DECODERS.get(command_id)
    if decoder is None:
        return DecodeError(
            _S.ESME_RINVCMDID,
            command_id,
            seq,
            f"unknown command_id 0x{command_id:08X}",
            frame=buf[pos:end],
        )
    body = pos + HEADER_LENGTH
    if body == end and command_id & RESPONSE_BIT:
        # A response may omit its body, which error responses do (e.g. 4.4.2).
        return PDU_CLASSES[command_id](sequence_number=seq, command_status=status)
    try:
        return decoder(buf, body, end, seq, status)
    except _BodyError as exc:
        return DecodeError(exc.status, command_id, seq, exc.reason, frame=buf[pos:end])
    except Exception as exc:
        return _unexpected(exc, buf, pos, end, command_id, seq)


def _unexpected(
    exc: Exception, buf: bytes, pos: int, end: int, command_id: int, seq: int
) -> DecodeError:
    # Safety net: peer input must never escape as an exception. The fuzz tests assert that no
    # frame ever lands here ("unexpected" in the reason would reveal a decoder bug).
    return DecodeError(_S.ESME_RSYSERR, command_id, seq, f"unexpected: {exc!r}", frame=buf[pos:end])


def decode(frame: bytes) -> DecodeResult:
    """Decode exactly one complete frame (tests, tools); see :class:`PduDecoder` for streams."""
    frame = bytes(frame)
    if len(frame) < HEADER_LENGTH:
        return DecodeError(
            _S.ESME_RINVCMDLEN, 0, 0, "frame shorter than a header", fatal=True, frame=frame
        )
    length, command_id, status, seq = _HEADER.unpack_from(frame)
    if length != len(frame):
        return DecodeError(
            _S.ESME_RINVCMDLEN,
            command_id,
            seq,
            f"command_length {length} but frame has {len(frame)} octets",
            fatal=True,
            frame=frame[:HEADER_LENGTH],
        )
    return _decode_frame(frame, 0, length, command_id, status, seq)


class PduDecoder:
    """Incremental decoder: bytes in, one :data:`DecodeResult` per complete frame out.

    Partial frames are buffered until complete; several frames in one chunk all come out.
    A command_length below 16 or above ``max_command_length`` is fatal: the decoder yields
    one ``DecodeError(fatal=True)``, then ignores all further input (:attr:`failed`).
    """

    __slots__ = ("_failed", "_max", "_need", "_pending")

    def __init__(self, max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        if max_command_length < HEADER_LENGTH:
            raise ValueError("max_command_length must be at least 16")
        self._max = max_command_length
        self._pending = bytearray()
        self._need = HEADER_LENGTH  # octets to hold before trying to decode again
        self._failed = False

    @property
    def failed(self) -> bool:
        """True after a fatal framing error: the connection must be closed."""
        return self._failed

    @property
    def buffered(self) -> int:
        """Octets held of an incomplete frame (non-zero at EOF means a truncated frame)."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> list[DecodeResult]:
        """Add received octets; return the frames they completed, in order."""
        if self._failed or not data:
            return []
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._need:
                return []
            buf = bytes(pending)
            pending.clear()
        else:
            buf = bytes(data)
        out: list[DecodeResult] = []
        append = out.append
        unpack = _HEADER.unpack_from
        decoders = _DECODERS
        limit = self._max
        size = len(buf)
        pos = 0
        need = HEADER_LENGTH
        while size - pos >= HEADER_LENGTH:
            length, command_id, status, seq = unpack(buf, pos)
            if length < HEADER_LENGTH or length > limit:
                append(
                    DecodeError(
                        _S.ESME_RINVCMDLEN,
                        command_id,
                        seq,
                        f"command_length {length} outside {HEADER_LENGTH}..{limit}",
                        fatal=True,
                        frame=buf[pos : pos + HEADER_LENGTH],
                    )
                )
                self._failed = True
                return out
            end = pos + length
            if end > size:
                need = length
                break
            decoder = decoders.get(command_id)
            if decoder is None or end == pos + HEADER_LENGTH:
                append(_decode_frame(buf, pos, end, command_id, status, seq))
            else:
                # The common case, inlined from _decode_frame for speed.
                try:
                    append(decoder(buf, pos + HEADER_LENGTH, end, seq, status))
                except _BodyError as exc:
                    append(DecodeError(exc.status, command_id, seq, exc.reason, frame=buf[pos:end]))
                except Exception as exc:  # safety net, see _decode_frame
                    append(_unexpected(exc, buf, pos, end, command_id, seq))
            pos = end
        if pos < size:
            pending += memoryview(buf)[pos:]
        self._need = need
        return out


# ============================================================================ responses

_RESPONSES: dict[int, type[Pdu]] = {
    cid & ~RESPONSE_BIT: cls
    for cid, cls in PDU_CLASSES.items()
    if cid & RESPONSE_BIT and cid != CommandId.GENERIC_NACK
}
"""Request command_id -> its response class (outbind and alert_notification have none)."""


def _response(command_id: int, sequence_number: int, status: int) -> Pdu:
    cls = _RESPONSES.get(command_id, GenericNack)
    return cls(sequence_number=sequence_number, command_status=status)


def response_for(request: Pdu, status: int = CommandStatus.ESME_ROK) -> Pdu:
    """The ``*_resp`` answering ``request`` with ``status`` and its sequence_number.

    Body fields stay empty: set ``message_id`` and the like with ``dataclasses.replace`` or
    build the response directly. outbind and alert_notification have no response; for them
    this returns a generic_nack (use it only to report an error). Raises ``ValueError`` for a
    response PDU: responses are never answered.
    """
    if request.is_response:
        raise ValueError(f"{type(request).__name__} is a response and is never answered")
    return _response(request.command_id, request.sequence_number, status)
