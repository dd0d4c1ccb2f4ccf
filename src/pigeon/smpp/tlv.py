"""SMPP 3.4 optional parameters (TLVs, section 5.3).

A PDU keeps its TLVs as an ordered tuple of raw ``(tag, value)`` pairs, so that unknown and
vendor tags survive decoding and re-encoding byte for byte. Known tags have a :class:`TlvSpec`
that turns a typed value into a raw pair and back::

    pdu = SubmitSm(..., tlvs=(tlv.SAR_MSG_REF_NUM(7), tlv.SAR_TOTAL_SEGMENTS(2)))
    pdu.tlv(tlv.SAR_MSG_REF_NUM)  # -> 7

The decoder checks the length of every known tag (``ESME_RINVPARLEN`` when it is wrong), so
typed reads of a decoded PDU cannot fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = [
    "LENGTH_BOUNDS",
    "SPECS",
    "NetworkErrorCode",
    "Tag",
    "Tlv",
    "TlvSpec",
    "find",
    "named",
]

T = TypeVar("T")

Tlv = tuple[int, bytes]
"""One optional parameter as carried on the wire: tag and raw value (no length prefix)."""


class Tag(IntEnum):
    """Optional parameter tags defined by SMPP 3.4 (section 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class NetworkErrorCode(NamedTuple):
    """Value of the network_error_code TLV: network type (1=ANSI-136, 2=IS-95, 3=GSM...)."""

    network_type: int
    error_code: int


class TlvSpec(Generic[T]):
    """How one known tag's value is typed, encoded and length-checked."""

    __slots__ = ("_decode", "_encode", "max_length", "min_length", "name", "tag")

    def __init__(
        self,
        tag: Tag,
        min_length: int,
        max_length: int,
        encode: Callable[[T], bytes],
        decode: Callable[[bytes], T],
    ) -> None:
        self.tag = int(tag)
        self.name = tag.name.lower()
        self.min_length = min_length
        self.max_length = max_length
        self._encode = encode
        self._decode = decode

    def __call__(self, value: T) -> Tlv:
        """Build the raw ``(tag, value)`` pair; ``ValueError`` if the value does not fit."""
        raw = self._encode(value)
        if not self.min_length <= len(raw) <= self.max_length:
            raise ValueError(
                f"{self.name}: {len(raw)} octets, allowed {self.min_length}..{self.max_length}"
            )
        return (self.tag, raw)

    def decode(self, raw: bytes) -> T:
        """The typed value of a raw TLV value."""
        return self._decode(raw)

    def __repr__(self) -> str:
        return f"TlvSpec({self.name}, 0x{self.tag:04X})"


def _integer(size: int) -> tuple[Callable[[int], bytes], Callable[[bytes], int]]:
    limit = 1 << (8 * size)

    def encode(value: int) -> bytes:
        if not 0 <= value < limit:
            raise ValueError(f"integer {value} does not fit in {size} octet(s)")
        return value.to_bytes(size, "big")

    def decode(raw: bytes) -> int:
        return int.from_bytes(raw, "big")

    return encode, decode


def _encode_cstring(value: str) -> bytes:
    if "\x00" in value:
        raise ValueError("C-Octet string value contains NUL")
    return value.encode("latin-1") + b"\x00"


def _decode_cstring(raw: bytes) -> str:
    # Tolerant: several SMSCs omit the terminating NUL of receipted_message_id.
    nul = raw.find(b"\x00")
    return (raw if nul < 0 else raw[:nul]).decode("latin-1")


def _encode_octets(value: bytes) -> bytes:
    return bytes(value)


def _decode_octets(raw: bytes) -> bytes:
    return raw


def _encode_flag(value: bool) -> bytes:
    if value is not True:
        raise ValueError("a flag TLV is present (True) or absent: omit it instead")
    return b""


def _decode_flag(raw: bytes) -> bool:
    return True


def _encode_network_error(value: NetworkErrorCode) -> bytes:
    network_type, error_code = value
    if not (0 <= network_type <= 0xFF and 0 <= error_code <= 0xFFFF):
        raise ValueError(f"network_error_code out of range: {value!r}")
    return bytes((network_type, error_code >> 8, error_code & 0xFF))


def _decode_network_error(raw: bytes) -> NetworkErrorCode:
    return NetworkErrorCode(raw[0], (raw[1] << 8) | raw[2])


SPECS: dict[int, TlvSpec[Any]] = {}
"""Known tags -> their spec."""


def _int(tag: Tag, size: int, min_size: int | None = None) -> TlvSpec[int]:
    encode, decode = _integer(size)
    spec = TlvSpec(tag, size if min_size is None else min_size, size, encode, decode)
    SPECS[spec.tag] = spec
    return spec


def _cstr(tag: Tag, max_length: int) -> TlvSpec[str]:
    # min 0: a missing NUL (length 0 for an empty id) is tolerated on decode.
    spec = TlvSpec(tag, 0, max_length, _encode_cstring, _decode_cstring)
    SPECS[spec.tag] = spec
    return spec


def _octets(tag: Tag, min_length: int, max_length: int) -> TlvSpec[bytes]:
    spec = TlvSpec(tag, min_length, max_length, _encode_octets, _decode_octets)
    SPECS[spec.tag] = spec
    return spec


DEST_ADDR_SUBUNIT = _int(Tag.DEST_ADDR_SUBUNIT, 1)
DEST_NETWORK_TYPE = _int(Tag.DEST_NETWORK_TYPE, 1)
DEST_BEARER_TYPE = _int(Tag.DEST_BEARER_TYPE, 1)
DEST_TELEMATICS_ID = _int(Tag.DEST_TELEMATICS_ID, 2)
SOURCE_ADDR_SUBUNIT = _int(Tag.SOURCE_ADDR_SUBUNIT, 1)
SOURCE_NETWORK_TYPE = _int(Tag.SOURCE_NETWORK_TYPE, 1)
SOURCE_BEARER_TYPE = _int(Tag.SOURCE_BEARER_TYPE, 1)
# 5.3.2.6 gives source_telematics_id a 1-octet value, some stacks send 2: accept both.
SOURCE_TELEMATICS_ID = _int(Tag.SOURCE_TELEMATICS_ID, 1)
SOURCE_TELEMATICS_ID.max_length = 2
QOS_TIME_TO_LIVE = _int(Tag.QOS_TIME_TO_LIVE, 4)
PAYLOAD_TYPE = _int(Tag.PAYLOAD_TYPE, 1)
ADDITIONAL_STATUS_INFO_TEXT = _cstr(Tag.ADDITIONAL_STATUS_INFO_TEXT, 256)
RECEIPTED_MESSAGE_ID = _cstr(Tag.RECEIPTED_MESSAGE_ID, 65)
MS_MSG_WAIT_FACILITIES = _int(Tag.MS_MSG_WAIT_FACILITIES, 1)
PRIVACY_INDICATOR = _int(Tag.PRIVACY_INDICATOR, 1)
SOURCE_SUBADDRESS = _octets(Tag.SOURCE_SUBADDRESS, 2, 23)
DEST_SUBADDRESS = _octets(Tag.DEST_SUBADDRESS, 2, 23)
USER_MESSAGE_REFERENCE = _int(Tag.USER_MESSAGE_REFERENCE, 2)
USER_RESPONSE_CODE = _int(Tag.USER_RESPONSE_CODE, 1)
SOURCE_PORT = _int(Tag.SOURCE_PORT, 2)
DESTINATION_PORT = _int(Tag.DESTINATION_PORT, 2)
SAR_MSG_REF_NUM = _int(Tag.SAR_MSG_REF_NUM, 2)
LANGUAGE_INDICATOR = _int(Tag.LANGUAGE_INDICATOR, 1)
SAR_TOTAL_SEGMENTS = _int(Tag.SAR_TOTAL_SEGMENTS, 1)
SAR_SEGMENT_SEQNUM = _int(Tag.SAR_SEGMENT_SEQNUM, 1)
SC_INTERFACE_VERSION = _int(Tag.SC_INTERFACE_VERSION, 1)
CALLBACK_NUM_PRES_IND = _int(Tag.CALLBACK_NUM_PRES_IND, 1)
CALLBACK_NUM_ATAG = _octets(Tag.CALLBACK_NUM_ATAG, 0, 65)
NUMBER_OF_MESSAGES = _int(Tag.NUMBER_OF_MESSAGES, 1)
CALLBACK_NUM = _octets(Tag.CALLBACK_NUM, 4, 19)
DPF_RESULT = _int(Tag.DPF_RESULT, 1)
SET_DPF = _int(Tag.SET_DPF, 1)
MS_AVAILABILITY_STATUS = _int(Tag.MS_AVAILABILITY_STATUS, 1)
NETWORK_ERROR_CODE: TlvSpec[NetworkErrorCode] = TlvSpec(
    Tag.NETWORK_ERROR_CODE, 3, 3, _encode_network_error, _decode_network_error
)
SPECS[NETWORK_ERROR_CODE.tag] = NETWORK_ERROR_CODE
MESSAGE_PAYLOAD = _octets(Tag.MESSAGE_PAYLOAD, 0, 0xFFFF)
DELIVERY_FAILURE_REASON = _int(Tag.DELIVERY_FAILURE_REASON, 1)
MORE_MESSAGES_TO_SEND = _int(Tag.MORE_MESSAGES_TO_SEND, 1)
MESSAGE_STATE = _int(Tag.MESSAGE_STATE, 1)
USSD_SERVICE_OP = _int(Tag.USSD_SERVICE_OP, 1)
DISPLAY_TIME = _int(Tag.DISPLAY_TIME, 1)
SMS_SIGNAL = _int(Tag.SMS_SIGNAL, 2)
MS_VALIDITY = _int(Tag.MS_VALIDITY, 1)
# SMPP 3.4 defines no value (length 0); SMPP 5.0 added a 1-octet type: accept both.
ALERT_ON_MESSAGE_DELIVERY: TlvSpec[bool] = TlvSpec(
    Tag.ALERT_ON_MESSAGE_DELIVERY, 0, 1, _encode_flag, _decode_flag
)
SPECS[ALERT_ON_MESSAGE_DELIVERY.tag] = ALERT_ON_MESSAGE_DELIVERY
ITS_REPLY_TYPE = _int(Tag.ITS_REPLY_TYPE, 1)
ITS_SESSION_INFO = _octets(Tag.ITS_SESSION_INFO, 2, 2)

LENGTH_BOUNDS: dict[int, tuple[int, int]] = {
    tag: (spec.min_length, spec.max_length) for tag, spec in SPECS.items()
}
"""Known tags -> (min, max) value length, as checked by the decoder."""


def find(tlvs: Iterable[Tlv], tag: int) -> bytes | None:
    """Raw value of the first TLV with this tag, or None."""
    for t, value in tlvs:
        if t == tag:
            return value
    return None


def named(tlvs: Iterable[Tlv]) -> dict[str, object]:
    """TLVs as ``{name: typed value}`` for logs; unknown tags appear as ``0xTTTT: raw``."""
    out: dict[str, object] = {}
    for tag, value in tlvs:
        spec = SPECS.get(tag)
        if spec is None or not spec.min_length <= len(value) <= spec.max_length:
            out[f"0x{tag:04X}"] = value
        else:
            out[spec.name] = spec.decode(value)
    return out
