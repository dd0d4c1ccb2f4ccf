"""SMPP 3.4 numeric constants: command ids, command statuses and field values.

Every value here comes from the SMPP v3.4 specification (issue 1.2), sections 5.1 and 5.2.
Fields that carry these values stay plain ``int`` in the PDUs: peers send vendor-specific
values (statuses 0x400-0x4FF, private TON/NPI) that must survive decoding unchanged.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "RESPONSE_BIT",
    "CommandId",
    "CommandStatus",
    "DataCoding",
    "DestFlag",
    "GsmFeature",
    "InterfaceVersion",
    "MessageState",
    "MessageType",
    "MessagingMode",
    "Npi",
    "PriorityFlag",
    "ReceiptRequest",
    "SmeAck",
    "Ton",
    "esm_class",
    "is_delivery_receipt",
    "message_type",
    "messaging_mode",
    "receipt_request",
    "registered_delivery",
    "status_name",
]

RESPONSE_BIT = 0x80000000
"""Set in the command_id of every response PDU (SMPP 3.4, 5.1.2.1)."""


class CommandId(IntEnum):
    """command_id values (SMPP 3.4, 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(IntEnum):
    """command_status / error_status_code values (SMPP 3.4, 5.1.3)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


def status_name(status: int) -> str:
    """Name of a command_status for logs: ``ESME_RTHROTTLED`` or ``0x00000401`` if unknown."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


class Ton(IntEnum):
    """Type of number (SMPP 3.4, 5.2.5)."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    """Numbering plan indicator (SMPP 3.4, 5.2.6)."""

    UNKNOWN = 0
    ISDN = 1  # E.163 / E.164
    DATA = 3  # X.121
    TELEX = 4  # F.69
    LAND_MOBILE = 6  # E.212
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14  # IP
    WAP = 18  # WAP client id


class InterfaceVersion(IntEnum):
    """interface_version / sc_interface_version (SMPP 3.4, 5.2.4)."""

    V33 = 0x33
    V34 = 0x34


class MessagingMode(IntEnum):
    """esm_class bits 1-0 (SMPP 3.4, 5.2.12)."""

    DEFAULT = 0x00
    DATAGRAM = 0x01
    FORWARD = 0x02  # transaction mode
    STORE_AND_FORWARD = 0x03


class MessageType(IntEnum):
    """esm_class bits 5-2 (SMPP 3.4, 5.2.12)."""

    DEFAULT = 0x00
    SMSC_DELIVERY_RECEIPT = 0x04
    ESME_DELIVERY_ACK = 0x08
    ESME_MANUAL_ACK = 0x10
    CONVERSATION_ABORT = 0x18  # Korean CDMA
    INTERMEDIATE_DELIVERY_NOTIFICATION = 0x20


class GsmFeature(IntFlag):
    """esm_class bits 7-6 (SMPP 3.4, 5.2.12)."""

    NONE = 0x00
    UDHI = 0x40  # short_message starts with a User Data Header
    REPLY_PATH = 0x80


_MODE_MASK = 0x03
_TYPE_MASK = 0x3C


def esm_class(
    mode: int = MessagingMode.DEFAULT,
    kind: int = MessageType.DEFAULT,
    features: int = GsmFeature.NONE,
) -> int:
    """Compose an esm_class octet from its three parts."""
    return (mode & _MODE_MASK) | (kind & _TYPE_MASK) | (features & 0xC0)


def messaging_mode(esm: int) -> int:
    """The messaging mode bits of an esm_class (a :class:`MessagingMode` value)."""
    return esm & _MODE_MASK


def message_type(esm: int) -> int:
    """The message type bits of an esm_class (compare with :class:`MessageType`)."""
    return esm & _TYPE_MASK


def is_delivery_receipt(esm: int) -> bool:
    """True if a deliver_sm / data_sm with this esm_class carries an SMSC delivery receipt.

    Intermediate notifications count too: both carry a receipt text and receipted_message_id.
    """
    kind = esm & _TYPE_MASK
    return kind in (
        MessageType.SMSC_DELIVERY_RECEIPT,
        MessageType.INTERMEDIATE_DELIVERY_NOTIFICATION,
    )


class ReceiptRequest(IntEnum):
    """registered_delivery bits 1-0: SMSC delivery receipt (SMPP 3.4, 5.2.17)."""

    NONE = 0x00
    SUCCESS_OR_FAILURE = 0x01
    FAILURE = 0x02
    SUCCESS = 0x03  # reserved in 3.4, "success only" in SMPP 5.0; widely understood


class SmeAck(IntEnum):
    """registered_delivery bits 3-2: SME originated acknowledgement (SMPP 3.4, 5.2.17)."""

    NONE = 0x00
    DELIVERY = 0x04
    MANUAL = 0x08
    BOTH = 0x0C


INTERMEDIATE_NOTIFICATION = 0x10
"""registered_delivery bit 4: intermediate notification requested."""


def registered_delivery(
    receipt: int = ReceiptRequest.NONE,
    ack: int = SmeAck.NONE,
    *,
    intermediate: bool = False,
) -> int:
    """Compose a registered_delivery octet."""
    return (receipt & 0x03) | (ack & 0x0C) | (INTERMEDIATE_NOTIFICATION if intermediate else 0)


def receipt_request(registered: int) -> ReceiptRequest:
    """Which SMSC delivery receipt a registered_delivery octet asks for."""
    return ReceiptRequest(registered & 0x03)


class DataCoding(IntEnum):
    """data_coding values (SMPP 3.4, 5.2.19). 0xF0-0xFF are GSM message-class codings."""

    DEFAULT = 0x00  # SMSC default alphabet (usually GSM 03.38)
    IA5 = 0x01  # IA5 / ASCII
    OCTET_UNSPECIFIED_2 = 0x02  # 8-bit binary
    LATIN_1 = 0x03  # ISO-8859-1
    OCTET_UNSPECIFIED = 0x04  # 8-bit binary
    JIS = 0x05  # X 0208-1990
    CYRILLIC = 0x06  # ISO-8859-5
    LATIN_HEBREW = 0x07  # ISO-8859-8
    UCS2 = 0x08  # ISO/IEC-10646
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A  # music codes
    EXTENDED_KANJI = 0x0D  # JIS X 0212-1990
    KS_C_5601 = 0x0E


class PriorityFlag(IntEnum):
    """priority_flag values (SMPP 3.4, 5.2.14); the meaning of each level is network specific."""

    LEVEL_0 = 0
    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3


class MessageState(IntEnum):
    """message_state values (SMPP 3.4, 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class DestFlag(IntEnum):
    """dest_flag of a submit_multi destination (SMPP 3.4, 5.2.25)."""

    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2
