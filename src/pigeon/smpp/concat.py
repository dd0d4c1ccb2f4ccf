"""Concatenated short messages: UDH information elements and reassembly.

A long message travels as parts, each tagged either by a User Data Header at the start of
short_message (esm_class UDHI bit; 3GPP TS 23.040 9.2.3.24: IEI 0x00 with an 8-bit
reference, IEI 0x08 with a 16-bit one) or by the SAR TLVs (sar_msg_ref_num,
sar_total_segments, sar_segment_seqnum). :func:`part_from_pdu` reads either into a
:class:`Part`; :class:`Reassembler` collects parts into whole messages. Everything is pure:
the clock is the ``now`` argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pigeon.smpp import tlv
from pigeon.smpp.constants import GsmFeature
from pigeon.smpp.pdu import DataSm, DeliverSm, SubmitSm

__all__ = [
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "ConcatInfo",
    "InformationElement",
    "Part",
    "PartSet",
    "Reassembler",
    "UdhError",
    "UserDataHeader",
    "build_udh",
    "concat_udh",
    "parse_udh",
    "part_from_pdu",
    "split_udh",
]

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08


class UdhError(ValueError):
    """The octets do not hold a well-formed User Data Header."""


@dataclass(slots=True, frozen=True)
class InformationElement:
    """One UDH information element: identifier and data."""

    iei: int
    data: bytes


@dataclass(slots=True, frozen=True)
class ConcatInfo:
    """Where a part sits in its message."""

    reference: int
    total: int
    seqnum: int
    sixteen_bit: bool = False


@dataclass(slots=True, frozen=True)
class UserDataHeader:
    """A parsed UDH (its information elements, in order)."""

    elements: tuple[InformationElement, ...]

    def concat(self) -> ConcatInfo | None:
        """The first valid concatenation element, or None.

        Per 23.040 an element with total 0, seqnum 0 or seqnum > total is ignored.
        """
        for ie in self.elements:
            if ie.iei == IEI_CONCAT_8BIT and len(ie.data) == 3:
                ref, total, seq = ie.data[0], ie.data[1], ie.data[2]
                sixteen = False
            elif ie.iei == IEI_CONCAT_16BIT and len(ie.data) == 4:
                ref, total, seq = (ie.data[0] << 8) | ie.data[1], ie.data[2], ie.data[3]
                sixteen = True
            else:
                continue
            if total and 1 <= seq <= total:
                return ConcatInfo(ref, total, seq, sixteen)
        return None


def parse_udh(udh: bytes) -> UserDataHeader:
    """Parse a UDH given with its length octet (UDHL) and nothing after it."""
    if not udh or udh[0] != len(udh) - 1:
        raise UdhError("UDHL does not match the header length")
    elements = []
    pos, end = 1, len(udh)
    while pos < end:
        if pos + 2 > end:
            raise UdhError("truncated information element header")
        iei, length = udh[pos], udh[pos + 1]
        stop = pos + 2 + length
        if stop > end:
            raise UdhError(f"information element 0x{iei:02X} overruns the UDH")
        elements.append(InformationElement(iei, udh[pos + 2 : stop]))
        pos = stop
    return UserDataHeader(tuple(elements))


def split_udh(user_data: bytes) -> tuple[UserDataHeader, bytes]:
    """Split short_message (with UDHI set) into its parsed UDH and the payload after it."""
    if not user_data:
        raise UdhError("empty user data has no UDH")
    end = 1 + user_data[0]
    if end > len(user_data):
        raise UdhError("UDHL longer than the user data")
    return parse_udh(user_data[:end]), user_data[end:]


def build_udh(elements: Iterable[InformationElement]) -> bytes:
    """Encode information elements as a UDH, length octet included."""
    body = bytearray()
    for ie in elements:
        if not (0 <= ie.iei <= 0xFF and len(ie.data) <= 0xFF):
            raise ValueError(f"information element 0x{ie.iei:02X} does not fit")
        body += bytes((ie.iei, len(ie.data))) + ie.data
    if len(body) > 0xFF:
        raise ValueError("UDH longer than 255 octets")
    return bytes((len(body),)) + bytes(body)


def concat_udh(reference: int, total: int, seqnum: int, *, sixteen_bit: bool = False) -> bytes:
    """The UDH of part ``seqnum`` of ``total`` (8-bit IEI 0x00 or 16-bit IEI 0x08 reference)."""
    if not 1 <= total <= 255 or not 1 <= seqnum <= total:
        raise ValueError(f"part {seqnum} of {total} is not valid")
    if sixteen_bit:
        if not 0 <= reference <= 0xFFFF:
            raise ValueError("a 16-bit reference is 0..65535")
        data = bytes((reference >> 8, reference & 0xFF, total, seqnum))
        return build_udh((InformationElement(IEI_CONCAT_16BIT, data),))
    if not 0 <= reference <= 0xFF:
        raise ValueError("an 8-bit reference is 0..255")
    return build_udh((InformationElement(IEI_CONCAT_8BIT, bytes((reference, total, seqnum))),))


@dataclass(slots=True, frozen=True)
class Part:
    """One part of a concatenated message, with the payload after its UDH."""

    source: str
    destination: str
    reference: int
    total: int
    seqnum: int
    payload: bytes

    @property
    def key(self) -> tuple[str, str, int, int]:
        """What identifies the message this part belongs to."""
        return (self.source, self.destination, self.reference, self.total)


def part_from_pdu(pdu: SubmitSm | DeliverSm | DataSm) -> Part | None:
    """The concatenation part a PDU carries (UDH first, then SAR TLVs), or None.

    None also for a malformed UDH: the caller then handles the PDU as a whole message.
    """
    content = b"" if isinstance(pdu, DataSm) else pdu.short_message
    if not content:
        content = pdu.tlv(tlv.MESSAGE_PAYLOAD) or b""
    if pdu.esm_class & GsmFeature.UDHI:
        try:
            udh, payload = split_udh(content)
        except UdhError:
            return None
        info = udh.concat()
        if info is not None:
            return Part(
                pdu.source_addr,
                pdu.destination_addr,
                info.reference,
                info.total,
                info.seqnum,
                payload,
            )
    reference = pdu.tlv(tlv.SAR_MSG_REF_NUM)
    total = pdu.tlv(tlv.SAR_TOTAL_SEGMENTS)
    seqnum = pdu.tlv(tlv.SAR_SEGMENT_SEQNUM)
    if reference is None or total is None or seqnum is None or not 1 <= seqnum <= total:
        return None
    if pdu.esm_class & GsmFeature.UDHI:
        # SAR tags and a UDH without a concatenation element: drop the UDH from the payload.
        try:
            content = split_udh(content)[1]
        except UdhError:
            return None
    return Part(pdu.source_addr, pdu.destination_addr, reference, total, seqnum, content)


@dataclass(slots=True, frozen=True)
class PartSet:
    """The parts received for one message, ordered by seqnum."""

    source: str
    destination: str
    reference: int
    total: int
    parts: tuple[Part, ...]

    @property
    def complete(self) -> bool:
        """True when every part from 1 to total is here."""
        return len(self.parts) == self.total

    @property
    def payload(self) -> bytes:
        """The payloads joined in order (only the parts received, if incomplete)."""
        return b"".join(part.payload for part in self.parts)


class _Pending:
    __slots__ = ("first_seen", "parts")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.parts: dict[int, Part] = {}


class Reassembler:
    """Collects parts into whole messages; pure, the caller passes the time.

    Parts are grouped by (source, destination, reference, total). A part whose seqnum is
    already held is a duplicate and ignored. A set still incomplete ``timeout`` seconds after
    its first part arrived is dropped by :meth:`expire`. Completed sets are remembered for
    ``timeout`` seconds too, so a late retransmission of a part already delivered (same
    payload) does not start a new set; a different payload with a reused reference does.
    At most ``max_pending`` incomplete sets are held; past that the oldest is dropped.
    """

    def __init__(self, timeout: float = 300.0, max_pending: int = 10_000) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.duplicates = 0
        self._pending: dict[tuple[str, str, int, int], _Pending] = {}
        self._done: dict[tuple[str, str, int, int], tuple[float, dict[int, bytes]]] = {}
        self._dropped: list[PartSet] = []

    @property
    def pending(self) -> int:
        """How many incomplete messages are held."""
        return len(self._pending)

    def add(self, part: Part, now: float) -> PartSet | None:
        """Add one part; return the complete message if this part finished it."""
        if not 1 <= part.seqnum <= part.total:
            return None
        key = part.key
        done = self._done.get(key)
        if done is not None and done[1].get(part.seqnum) == part.payload:
            self.duplicates += 1
            return None
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                oldest = next(iter(self._pending))
                self._dropped.append(self._set(oldest, self._pending.pop(oldest)))
            entry = self._pending[key] = _Pending(now)
        elif part.seqnum in entry.parts:
            self.duplicates += 1
            return None
        entry.parts[part.seqnum] = part
        if len(entry.parts) < part.total:
            return None
        del self._pending[key]
        self._done.pop(key, None)  # re-insert so _done stays in completion order
        self._done[key] = (now, {seq: p.payload for seq, p in entry.parts.items()})
        return self._set(key, entry)

    def expire(self, now: float) -> list[PartSet]:
        """Drop and return incomplete messages older than the timeout (and evicted ones)."""
        dropped, self._dropped = self._dropped, []
        deadline = now - self.timeout
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if entry.first_seen > deadline:
                break
            del self._pending[key]
            dropped.append(self._set(key, entry))
        while self._done:
            key, (completed, _) = next(iter(self._done.items()))
            if completed > deadline:
                break
            del self._done[key]
        return dropped

    @staticmethod
    def _set(key: tuple[str, str, int, int], entry: _Pending) -> PartSet:
        parts = tuple(entry.parts[seq] for seq in sorted(entry.parts))
        return PartSet(key[0], key[1], key[2], key[3], parts)
