"""SMPP 3.4, sans-I/O: codec (bytes <-> PDUs), session state machine, receipts, concatenation.

Nothing here touches sockets, asyncio or the clock: the drivers in ``pigeon.connectors`` and
``pigeon.smpp_server`` feed received bytes to a :class:`PduDecoder`, pass what comes out to a
:class:`Session`, and write what the session and the application produce with :func:`encode`.

Modules: :mod:`~pigeon.smpp.constants` (command ids, statuses, field values),
:mod:`~pigeon.smpp.pdu` (the PDUs), :mod:`~pigeon.smpp.tlv` (optional parameters),
:mod:`~pigeon.smpp.codec`, :mod:`~pigeon.smpp.session`, :mod:`~pigeon.smpp.receipt`
(delivery receipt text, message-id correlation), :mod:`~pigeon.smpp.concat` (UDH and
reassembly), :mod:`~pigeon.smpp.times` (SMPP time strings).
"""

from pigeon.smpp.codec import (
    DecodeError,
    DecodeResult,
    PduDecoder,
    decode,
    encode,
    response_for,
)
from pigeon.smpp.constants import CommandId, CommandStatus
from pigeon.smpp.pdu import Pdu
from pigeon.smpp.session import Role, Session, SessionError, SessionState

__all__ = [
    "CommandId",
    "CommandStatus",
    "DecodeError",
    "DecodeResult",
    "Pdu",
    "PduDecoder",
    "Role",
    "Session",
    "SessionError",
    "SessionState",
    "decode",
    "encode",
    "response_for",
]
