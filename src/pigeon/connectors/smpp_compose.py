"""Text <-> SMPP short_message octets, the way one carrier wants them.

:func:`encode_text` turns a message body into the octets and concatenation markers of each
submit_sm: GSM 03.38 (unpacked, one septet per octet: the SMSC packs), Latin-1 for carriers
where data_coding 0 means ISO-8859-1, or UCS-2 (data_coding 8); long texts split exactly as
:func:`pigeon.domain.encoding.split_segments` priced them, tagged by UDH (8- or 16-bit
reference), SAR TLVs, or sent whole in message_payload. :func:`decode_text` is the reverse,
for mobile-originated messages.
"""

from __future__ import annotations

from pigeon.connectors.smpp_settings import ConcatMode, DefaultAlphabet
from pigeon.domain.encoding import (
    UCS2_MULTI,
    UCS2_SINGLE,
    Encoding,
    analyse,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    split_segments,
)
from pigeon.domain.value_objects import value_object
from pigeon.smpp import tlv
from pigeon.smpp.concat import concat_udh
from pigeon.smpp.constants import DataCoding, GsmFeature
from pigeon.smpp.tlv import Tlv

__all__ = ["EncodedSegment", "EncodedText", "decode_text", "encode_text"]


@value_object
class EncodedSegment:
    """What one submit_sm carries: short_message (UDH included), esm_class bits, TLVs."""

    short_message: bytes
    esm_class: int = 0
    tlvs: tuple[Tlv, ...] = ()


@value_object
class EncodedText:
    """A text ready to submit: its data_coding and one entry per submit_sm."""

    data_coding: int
    segments: tuple[EncodedSegment, ...]


def _split_ucs2(text: str) -> list[str]:
    # Only used for GSM texts that Latin-1 cannot carry (Greek capitals, the euro sign): all
    # in the BMP, so one character is one UTF-16 unit and plain slicing keeps pairs whole.
    if len(text) <= UCS2_SINGLE:
        return [text]
    return [text[i : i + UCS2_MULTI] for i in range(0, len(text), UCS2_MULTI)]


def encode_text(
    text: str, *, concat: ConcatMode, default_alphabet: DefaultAlphabet, reference: int
) -> EncodedText:
    """Encode ``text`` for submission; ``reference`` tags the parts of a long message.

    A GSM text goes out with data_coding 0: as septets where 0 means GSM, as Latin-1 where it
    means Latin-1 (or, if Latin-1 lacks one of its characters, as UCS-2, which may need more
    segments than the GSM count). Any other text goes out as UCS-2.
    """
    info = analyse(text)
    coding = DataCoding.UCS2
    if info.encoding is Encoding.GSM7:
        if default_alphabet == "gsm7":
            coding, parts, encode = DataCoding.DEFAULT, split_segments(text, info), encode_gsm7
        else:
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                parts, encode = _split_ucs2(text), encode_ucs2
            else:
                coding, parts, encode = DataCoding.DEFAULT, split_segments(text, info), _latin1
    else:
        parts, encode = split_segments(text, info), encode_ucs2
    if len(parts) == 1:
        return EncodedText(coding, (EncodedSegment(encode(text)),))
    if concat == "payload":
        whole = b"".join(encode(part) for part in parts)
        return EncodedText(coding, (EncodedSegment(b"", 0, (tlv.MESSAGE_PAYLOAD(whole),)),))
    total = len(parts)
    if concat == "sar":
        ref = reference & 0xFFFF
        return EncodedText(
            coding,
            tuple(
                EncodedSegment(
                    encode(part),
                    0,
                    (
                        tlv.SAR_MSG_REF_NUM(ref),
                        tlv.SAR_TOTAL_SEGMENTS(total),
                        tlv.SAR_SEGMENT_SEQNUM(seq),
                    ),
                )
                for seq, part in enumerate(parts, 1)
            ),
        )
    sixteen = concat == "udh16"
    ref = reference & (0xFFFF if sixteen else 0xFF)
    return EncodedText(
        coding,
        tuple(
            EncodedSegment(
                concat_udh(ref, total, seq, sixteen_bit=sixteen) + encode(part),
                GsmFeature.UDHI,
            )
            for seq, part in enumerate(parts, 1)
        ),
    )


def _latin1(text: str) -> bytes:
    return text.encode("latin-1")


def decode_text(data: bytes, data_coding: int, default_alphabet: DefaultAlphabet) -> str:
    """The text of short_message octets (without UDH) in ``data_coding``; never raises.

    0 is the carrier's default alphabet (octets above 0x7F cannot be septets: then Latin-1);
    1 (IA5) and 3 are Latin-1, 8 is UCS-2, 0xF0-0xF3 are GSM with a message class; binary
    and unknown codings are returned as Latin-1 so that no octet is lost.
    """
    if data_coding == DataCoding.UCS2:
        return decode_ucs2(data)
    gsm = data_coding in range(0xF0, 0xF4) or (
        data_coding == DataCoding.DEFAULT and default_alphabet == "gsm7"
    )
    if gsm and data.isascii():
        return decode_gsm7(data)
    return data.decode("latin-1")
