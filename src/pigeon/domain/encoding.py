"""SMS text encoding: GSM 03.38 7-bit default alphabet vs UCS-2, and segmentation.

A message goes out in the GSM 7-bit default alphabet (3GPP TS 23.038, section 6.2.1, with the
default extension table of 6.2.1.1) when every character is in it, otherwise in UCS-2 (sent as
UTF-16-BE, so characters outside the BMP cost two code units). One SMS carries 160 septets or
70 UCS-2 units; a longer text is split into segments that each give up room for a concatenation
header (UDH): 153 septets or 67 units per segment. An extension character costs two septets
(ESC + code) and its two septets never straddle a segment boundary; a surrogate pair is never
split either. Because of that rule a few texts need one segment more than ``ceil(units / 153)``
(or ``/ 67``): ``analyse`` counts the segments ``split_segments`` really produces, so the count
we price is the count we send.

Everything here sits on the accept path, so the common cases run in C: ``str.encode``,
``bytes.translate``, compiled regular expressions and big-integer arithmetic, no loop per
character in Python.
"""

from __future__ import annotations

import codecs
import enum
import re
from dataclasses import field

from pigeon.domain.value_objects import value_object

__all__ = [
    "GSM7_MULTI",
    "GSM7_SINGLE",
    "UCS2_MULTI",
    "UCS2_SINGLE",
    "Encoding",
    "NotGsmEncodable",
    "TextAnalysis",
    "analyse",
    "decode_gsm7",
    "decode_ucs2",
    "encode_gsm7",
    "encode_ucs2",
    "is_gsm7",
    "pack_septets",
    "smart_replace",
    "split_segments",
    "unpack_septets",
]

GSM7_SINGLE = 160
"""Septets in a single, unsegmented SMS."""
GSM7_MULTI = 153
"""Septets per segment of a concatenated SMS (160 minus a 6-octet UDH, rounded to septets)."""
UCS2_SINGLE = 70
"""UTF-16 code units in a single, unsegmented SMS."""
UCS2_MULTI = 67
"""UTF-16 code units per segment of a concatenated SMS (70 minus a 6-octet UDH)."""

_ESC = 0x1B

# 3GPP TS 23.038 6.2.1, the GSM 7-bit default alphabet: the character at index i has code i.
# 0x1B is the escape to the extension table, not a character: it is excluded from every derived
# table below.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "\N{GREEK CAPITAL LETTER DELTA}_\N{GREEK CAPITAL LETTER PHI}\N{GREEK CAPITAL LETTER GAMMA}"
    "\N{GREEK CAPITAL LETTER LAMDA}\N{GREEK CAPITAL LETTER OMEGA}\N{GREEK CAPITAL LETTER PI}"
    "\N{GREEK CAPITAL LETTER PSI}\N{GREEK CAPITAL LETTER SIGMA}\N{GREEK CAPITAL LETTER THETA}"
    "\N{GREEK CAPITAL LETTER XI}\x1bÆæßÉ"  # 0x10-0x1F
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)

# 3GPP TS 23.038 6.2.1.1, the default extension table: code after ESC -> character.
_EXTENSION = {
    0x0A: "\f",  # page break, mapped to FORM FEED
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_SINGLE_CHARS = frozenset(_BASIC) - {"\x1b"}
_EXT_CHARS = frozenset(_EXTENSION.values())
_GSM_CHARS = _SINGLE_CHARS | _EXT_CHARS


def _char_class(chars: frozenset[str]) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


# A character that is not GSM; an extension character; a surrogate code point (a str holds one
# only when built with errors="surrogatepass" or the like: a lone surrogate is not text).
_NON_GSM = re.compile(f"[^{_char_class(_GSM_CHARS)}]")
_EXT_RE = re.compile(f"[{_char_class(_EXT_CHARS)}]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Latin-1 fast paths work on ``text.encode("latin-1")``: delete sets and a byte table.
_LATIN1_SINGLE = bytes(sorted(ord(c) for c in _SINGLE_CHARS if ord(c) < 0x100))
_LATIN1_EXT = bytes(sorted(ord(c) for c in _EXT_CHARS if ord(c) < 0x100))
_LATIN1_TO_GSM = bytes(_BASIC.index(chr(b)) if chr(b) in _SINGLE_CHARS else 0 for b in range(0x100))

# General encoder: str.translate to one latin-1 character per septet, then encode latin-1.
_ENCODE_MAP: dict[int, str] = {ord(c): chr(code) for code, c in enumerate(_BASIC) if code != _ESC}
_ENCODE_MAP.update({ord(c): f"\x1b{chr(code)}" for code, c in _EXTENSION.items()})

# Decoder for septets without ESC; octets 0x80-0xFF are not septets and decode to U+FFFD.
_DECODE_TABLE = _BASIC + "\N{REPLACEMENT CHARACTER}" * 0x80
# TS 23.038 6.2.1.1: ESC ESC is reserved for a further extension table and is shown as a space;
# any other code the extension table does not define is shown as its basic-table character.
_DECODE_ESCAPED = "".join(
    _EXTENSION.get(code, " " if code == _ESC else c) for code, c in enumerate(_DECODE_TABLE)
)


class Encoding(enum.StrEnum):
    """The data coding of a message's text."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


class NotGsmEncodable(ValueError):
    """A character is not in the GSM 7-bit default alphabet or its extension table."""

    def __init__(self, char: str, position: int) -> None:
        super().__init__(char, position)
        self.char = char
        self.position = position

    def __str__(self) -> str:
        return (
            f"character {self.char!r} (U+{ord(self.char):04X}) at position {self.position} "
            "is not in the GSM 03.38 alphabet"
        )


@value_object
class TextAnalysis:
    """How a text will be sent: encoding, size and number of SMS segments."""

    encoding: Encoding
    units: int
    """GSM7: septets (an extension character counts 2). UCS2: UTF-16 code units."""
    segments: int
    """SMS segments ``split_segments`` produces; 1 for the empty text."""
    ucs2_text: str = field(default="", compare=False, repr=False)
    """The text, kept for ``non_gsm_chars`` when it is UCS2 (empty for GSM7)."""

    @property
    def non_gsm_chars(self) -> tuple[str, ...]:
        """Distinct characters that forced UCS-2, in order of first appearance; empty for
        GSM7. Worked out when asked: sending a message never asks (a few microseconds for a
        text of another script), only a preview does."""
        return _non_gsm(self.ucs2_text) if self.encoding is Encoding.UCS2 else ()


# Frozen dataclass construction costs more than the analysis of a short text, so the results
# for every single-segment GSM7 size are built once and shared (they are immutable).
_GSM7_SINGLE_RESULTS = tuple(
    TextAnalysis(Encoding.GSM7, units, 1) for units in range(GSM7_SINGLE + 1)
)


def analyse(text: str) -> TextAnalysis:
    """Choose the encoding of ``text`` and count its units and segments."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return _analyse_wide(text)
    rest = raw.translate(None, _LATIN1_SINGLE)  # extension characters and non-GSM ones
    if not rest:
        return _gsm7(text, len(raw), has_ext=False)
    bad = rest.translate(None, _LATIN1_EXT)
    if not bad:
        return _gsm7(text, len(raw) + len(rest), has_ext=True)
    units = len(raw)  # every latin-1 character is one UTF-16 unit
    segments = 1 if units <= UCS2_SINGLE else -(-units // UCS2_MULTI)
    return TextAnalysis(Encoding.UCS2, units, segments, text)


def _analyse_wide(text: str) -> TextAnalysis:
    if _NON_GSM.search(text) is None:  # GSM with Greek capitals or the euro sign
        ext = len(_EXT_RE.findall(text))
        return _gsm7(text, len(text) + ext, has_ext=ext > 0)
    utf16 = text.encode("utf-16-be", "surrogatepass")
    units = len(utf16) >> 1
    if units <= UCS2_SINGLE:
        segments = 1
    elif units == len(text):  # no surrogate pair to keep whole
        segments = -(-units // UCS2_MULTI)
    else:
        segments = len(_ucs2_ends(utf16))
    return TextAnalysis(Encoding.UCS2, units, segments, text)


def _gsm7(text: str, units: int, *, has_ext: bool) -> TextAnalysis:
    if units <= GSM7_SINGLE:
        return _GSM7_SINGLE_RESULTS[units]
    segments = len(_gsm7_ends(_encode_valid(text))) if has_ext else -(-units // GSM7_MULTI)
    return TextAnalysis(Encoding.GSM7, units, segments)


def _non_gsm(text: str) -> tuple[str, ...]:
    """The distinct non-GSM characters of ``text``, in order of first appearance."""
    # Iterating a str makes an object per character; for the usual handful of culprits (one
    # emoji repeated, a few accented letters) a search and a str.replace each are cheaper.
    found: list[str] = []
    pos = 0
    while (match := _NON_GSM.search(text, pos)) is not None:
        pos = match.start()
        if len(found) == 8:  # many culprits (another script): one pass over what is left
            found.extend(c for c in dict.fromkeys(text[pos:]) if c not in _GSM_CHARS)
            break
        char = match.group()
        found.append(char)
        text = text.replace(char, "")  # only from pos on: all before it is GSM
    return tuple(found)


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM 7-bit alphabet (with extensions)."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return _NON_GSM.search(text) is None
    return not raw.translate(None, _LATIN1_SINGLE).translate(None, _LATIN1_EXT)


def split_segments(text: str, info: TextAnalysis | None = None) -> list[str]:
    """Split ``text`` into the texts of the SMS segments it will be sent as (``info``: its
    ``analyse``, when the caller has it already).

    GSM7 segments hold at most 153 septets and never split an ESC + code pair; UCS2 segments
    hold at most 67 UTF-16 units and never split a surrogate pair. Each segment is filled as
    far as those rules allow, and the segments concatenate to ``text``. A text that fits one
    SMS comes back whole, as ``[text]``.
    """
    if info is None:
        info = analyse(text)
    if info.segments == 1:
        return [text]
    if info.units == len(text):  # no extension character, no surrogate pair
        size = GSM7_MULTI if info.encoding is Encoding.GSM7 else UCS2_MULTI
        return [text[i : i + size] for i in range(0, len(text), size)]
    if info.encoding is Encoding.GSM7:
        septets = _encode_valid(text)
        # The characters before a septet offset: the septets minus the ESCs among them.
        char_ends = [end - septets.count(_ESC, 0, end) for end in _gsm7_ends(septets)]
    else:
        utf16 = text.encode("utf-16-be", "surrogatepass")
        ends = _ucs2_ends(utf16)
        if _SURROGATE.search(text) is None:  # then decoding gives back exactly the slices
            starts = [0, *ends[:-1]]
            return [
                utf16[2 * s : 2 * e].decode("utf-16-be") for s, e in zip(starts, ends, strict=True)
            ]
        char_ends = _char_ends(text, ends)
    return [text[start:end] for start, end in zip([0, *char_ends[:-1]], char_ends, strict=True)]


def _gsm7_ends(septets: bytes) -> list[int]:
    """Septet offsets where the segments of a multi-segment GSM7 text end."""
    ends = []
    start, total = 0, len(septets)
    while start < total:
        end = start + GSM7_MULTI
        if end >= total:
            end = total
        elif septets[end - 1] == _ESC:  # the pair would straddle: move it to the next segment
            end -= 1
        ends.append(end)
        start = end
    return ends


def _ucs2_ends(utf16: bytes) -> list[int]:
    """Unit offsets where the segments of a multi-segment UTF-16-BE text end."""
    ends = []
    start, total = 0, len(utf16) >> 1
    while start < total:
        end = start + UCS2_MULTI
        if end >= total:
            end = total
        elif 0xD8 <= utf16[2 * end - 2] <= 0xDB and 0xDC <= utf16[2 * end] <= 0xDF:
            end -= 1  # a high surrogate ends the segment and its low one starts the next
        ends.append(end)
        start = end
    return ends


def _char_ends(text: str, unit_ends: list[int]) -> list[int]:
    """Map UTF-16 unit offsets of ``text`` (which holds surrogate code points) to its indexes."""
    char_ends = []
    char = units = 0
    for end in unit_ends:
        while units < end:  # an offset never falls inside a character: lands on ``end``
            units += 2 if text[char] > "\uffff" else 1
            char += 1
        char_ends.append(char)
    return char_ends


def encode_gsm7(text: str) -> bytes:
    """Encode ``text`` as unpacked septets, one per octet; extensions as ESC + code.

    Raises ``NotGsmEncodable`` (a ``ValueError``) on the first character outside the alphabet.
    """
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        if not raw.translate(None, _LATIN1_SINGLE):
            return raw.translate(_LATIN1_TO_GSM)
    bad = _NON_GSM.search(text)
    if bad is not None:
        raise NotGsmEncodable(bad.group(), bad.start())
    return _encode_valid(text)


def _encode_valid(text: str) -> bytes:
    return text.translate(_ENCODE_MAP).encode("latin-1")


def decode_gsm7(data: bytes) -> str:
    """Decode unpacked septets (the inverse of ``encode_gsm7``); never raises.

    Following TS 23.038 6.2.1.1, ESC followed by a code the extension table does not define
    decodes as that code's basic character, and ESC ESC as a space. A lone ESC at the very
    end carries no character and is dropped. Octets 0x80-0xFF are not septets: U+FFFD.
    """
    first = data.find(_ESC)
    if first == -1:
        return codecs.charmap_decode(data, "strict", _DECODE_TABLE)[0]
    parts = []
    start, total = 0, len(data)
    esc = first
    while esc != -1:
        parts.append(codecs.charmap_decode(data[start:esc], "strict", _DECODE_TABLE)[0])
        if esc + 1 == total:  # lone trailing ESC
            start = total
            break
        parts.append(_DECODE_ESCAPED[data[esc + 1]])
        start = esc + 2
        esc = data.find(_ESC, start)
    parts.append(codecs.charmap_decode(data[start:], "strict", _DECODE_TABLE)[0])
    return "".join(parts)


# GSM 7-bit packing (TS 23.038 6.1.2.1.1): septet i occupies bits 7i..7i+6 of a little-endian
# bit string. The packers below do it with big-integer bit tricks: septets sit one per octet,
# adjacent slots are merged pairwise (16-, 32-, then 64-bit slots holding 14, 28, 56 bits), and
# the empty top octet of every 64-bit slot is deleted (unpacking runs the steps backwards).
_SLOT_MASKS = (
    0x007F007F007F007F,  # low septet of each 16-bit slot
    0x3F803F803F803F80,  # second septet of each 16-bit slot, once packed
    0x00003FFF00003FFF,  # low 14 bits of each 32-bit slot
    0x0FFFC0000FFFC000,  # next 14 bits of each 32-bit slot, once packed
    0x000000000FFFFFFF,  # low 28 bits of each 64-bit slot
    0x00FFFFFFF0000000,  # next 28 bits of each 64-bit slot, once packed
)


def _masks(slots: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(m.to_bytes(8, "little") * slots, "little") for m in _SLOT_MASKS)


_MASKS_SLOTS = 32  # covers 256 septets, more than any one SMS; wider inputs build their own
_MASKS = _masks(_MASKS_SLOTS)


def _check_fill(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, got {fill_bits}")


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (one per octet, as ``encode_gsm7`` gives) into GSM 7-bit octets.

    ``fill_bits`` zero bits come first, to align the text on a septet boundary after an
    odd-length UDH. The result has ``ceil((7 * len(septets) + fill_bits) / 8)`` octets. No
    <CR> padding is added: an SMS's user-data length counts septets, so 7 spare bits at the
    end are not mistaken for ``@`` (<CR> padding is for cell broadcast and USSD).
    """
    _check_fill(fill_bits)
    if not septets.isascii():
        raise ValueError("septets must be 0x00-0x7F")
    count = len(septets)
    size = (7 * count + fill_bits + 7) >> 3
    slots = (count + 7) >> 3
    lo1, hi1, lo2, hi2, lo3, hi3 = _MASKS if slots <= _MASKS_SLOTS else _masks(slots)
    value = int.from_bytes(septets, "little")
    value = (value & lo1) | ((value >> 1) & hi1)
    value = (value & lo2) | ((value >> 2) & hi2)
    value = (value & lo3) | ((value >> 4) & hi3)
    octets = bytearray(value.to_bytes(8 * slots, "little"))
    del octets[7::8]
    if fill_bits:
        return (int.from_bytes(octets, "little") << fill_bits).to_bytes(size, "little")
    return bytes(octets[:size])


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Unpack ``count`` septets from GSM 7-bit octets, skipping ``fill_bits`` leading bits.

    Raises ``ValueError`` when ``data`` is too short to hold them. Octets beyond the last
    septet (padding) are ignored.
    """
    _check_fill(fill_bits)
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if count and 8 * len(data) < 7 * count + fill_bits:
        raise ValueError(f"{len(data)} octets cannot hold {count} septets after {fill_bits} bits")
    slots = (count + 7) >> 3
    lo1, hi1, lo2, hi2, lo3, hi3 = _MASKS if slots <= _MASKS_SLOTS else _masks(slots)
    value = (int.from_bytes(data, "little") >> fill_bits) & ((1 << 7 * count) - 1)
    packed = value.to_bytes(7 * slots, "little")
    spread = bytearray(8 * slots)
    for i in range(7):
        spread[i::8] = packed[i::7]
    value = int.from_bytes(spread, "little")
    value = (value & lo3) | ((value & hi3) << 4)
    value = (value & lo2) | ((value & hi2) << 2)
    value = (value & lo1) | ((value & hi1) << 1)
    return value.to_bytes(8 * slots, "little")[:count]


def encode_ucs2(text: str) -> bytes:
    """Encode ``text`` as UTF-16-BE (what SMS calls UCS-2); lone surrogates pass through."""
    return text.encode("utf-16-be", "surrogatepass")


def decode_ucs2(data: bytes) -> str:
    """Decode UTF-16-BE; never raises.

    Surrogate pairs decode to their character. A lone surrogate (for instance half a pair that
    a sender split across segments) and an odd trailing octet decode to U+FFFD, so the result
    can always be stored as UTF-8. Reassemble segments' bytes before decoding to keep pairs.
    """
    return data.decode("utf-16-be", "replace")


# Characters with an obvious GSM equivalent, for the optional "smart encoding".
_SMART: dict[int, str | None] = {
    ord(c): r
    for chars, r in (
        ("\t", " "),
        # no-break, en/em, thin, hair, figure, narrow no-break, ideographic ... spaces
        ("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a", " "),
        ("\u202f\u205f\u3000", " "),
        ("\u2028\u2029", "\n"),  # line and paragraph separators
        ("`\u00b4\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u2039\u203a", "'"),
        ("\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb", '"'),
        ("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),  # hyphens, dashes, minus sign
        ("\u2024", "."),  # one dot leader
        ("\u2026", "..."),  # horizontal ellipsis
    )
    for c in chars
}
# Invisible characters with nothing to show: soft hyphen, zero-width space, word joiner, BOM.
# (Zero-width joiners are kept: they shape emoji and several scripts.)
_SMART.update(dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff")))


def smart_replace(text: str) -> str:
    """Replace typographic characters by their plain GSM equivalents.

    Curly quotes, primes and guillemets become straight quotes, dashes and the minus sign
    ``-``, the ellipsis ``...``, exotic spaces a space, and invisible characters vanish. Other
    characters are kept, so the result may still need UCS-2; a caller that wants the
    replacement only when it avoids UCS-2 checks ``is_gsm7`` on the result.
    """
    return text.translate(_SMART)
