"""GSM 03.38 / UCS-2 encoding and segmentation, checked against ``gsmcodecs`` as an oracle.

The oracle is the ``gsm23.038`` codec that ``gsmcodecs`` registers (TS 23.038 default alphabet
with the default extension table). It agrees with us on every code point: which characters
are encodable (``\\f`` as ESC 0x0A, ``§`` and ``¤`` in, backtick and ``ç`` out) and what they
encode to. Deliberate differences, all on decoding input it calls invalid, where it raises:
  * ESC + a code the extension table does not define: we follow TS 23.038 6.2.1.1 and show
    the basic-table character of that code;
  * a lone ESC at the end of the data: we drop it;
  * octets 0x80-0xFF (not septets): we decode them as U+FFFD.
"""

from __future__ import annotations

import math

import gsmcodecs  # noqa: F401 - importing registers the "gsm23.038" codec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.domain import encoding as encoding_module
from pigeon.domain.encoding import (
    GSM7_MULTI,
    UCS2_MULTI,
    Encoding,
    NotGsmEncodable,
    TextAnalysis,
    analyse,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    is_gsm7,
    pack_septets,
    smart_replace,
    split_segments,
    unpack_septets,
)

ORACLE = "gsm23.038"
# No example database: tests leave no files behind.
# No deadline: a wall-clock limit per example flakes on a loaded machine (no timing assertions).
props = settings(database=None, max_examples=300, deadline=None)


def oracle_encode(text: str) -> bytes | None:
    """The oracle's unpacked septets for ``text``, or None when it cannot encode it."""
    try:
        return text.encode(ORACLE)
    except UnicodeEncodeError:
        return None


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-be", "surrogatepass")) // 2


def gsm7_septets(text: str) -> int:
    return len(encode_gsm7(text))


def reference_pack(septets: bytes, fill_bits: int) -> bytes:
    """Plain GSM 7-bit packing: septet i at bits 7i.. of a little-endian bit string."""
    value = sum(s << (fill_bits + 7 * i) for i, s in enumerate(septets))
    return value.to_bytes(math.ceil((7 * len(septets) + fill_bits) / 8), "little")


BASIC_CHARS = [decode_gsm7(bytes([code])) for code in range(128) if code != 0x1B]
EXTENSION_CHARS = list("\f^{}\\[~]|€")
GSM_ALPHABET = BASIC_CHARS + EXTENSION_CHARS

gsm_text = st.text(alphabet=st.sampled_from(GSM_ALPHABET), max_size=500)
# Mostly GSM with some Latin-1 outsiders, Cyrillic, CJK and emoji (astral) sprinkled in.
mixed_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM_ALPHABET),
        st.sampled_from(list("`çáí\t\u00a0жЖ你😀🎉\U0010ffff")),
        st.characters(),
    ),
    max_size=400,
)
septet_strings = st.binary(max_size=400).map(lambda b: bytes(x & 0x7F for x in b))
fill = st.integers(min_value=0, max_value=6)


# --- the alphabet ------------------------------------------------------------------------


def test_basic_table_matches_oracle_code_for_code() -> None:
    """Each basic code but ESC decodes to the character the oracle encodes to that code."""
    assert len(set(BASIC_CHARS)) == 127
    for code, char in zip([c for c in range(128) if c != 0x1B], BASIC_CHARS, strict=True):
        assert char.encode(ORACLE) == bytes([code])
        assert encode_gsm7(char) == bytes([code])


def test_extension_table_matches_oracle() -> None:
    """Each extension character is ESC + the code the oracle gives, and costs two septets."""
    for char in EXTENSION_CHARS:
        assert encode_gsm7(char) == char.encode(ORACLE)
        assert encode_gsm7(char)[0] == 0x1B
        assert analyse(char).units == 2


def test_tricky_characters() -> None:
    """§ and ¤ are single septets, form feed is an extension, backtick, ç and ESC are not GSM."""
    assert encode_gsm7("§¤") == b"\x5f\x24"
    assert encode_gsm7("\f") == b"\x1b\x0a"
    for char in ("`", "ç", "\x1b", "\t"):
        assert not is_gsm7(char)
        assert analyse(char).encoding is Encoding.UCS2


def test_every_bmp_code_point_agrees_with_oracle() -> None:
    """For every BMP character, encodability, septet count and septets equal the oracle's."""
    for code_point in range(0x10000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue  # a lone surrogate is not text; the oracle cannot encode it either
        char = chr(code_point)
        expected = oracle_encode(char)
        info = analyse(char)
        assert is_gsm7(char) is (expected is not None), char
        if expected is None:
            assert info.encoding is Encoding.UCS2, char
            assert info.non_gsm_chars == (char,)
        else:
            assert info.encoding is Encoding.GSM7, char
            assert info.units == len(expected), char
            assert encode_gsm7(char) == expected, char


# --- analyse -----------------------------------------------------------------------------


@props
@given(mixed_text)
def test_analyse_agrees_with_oracle(text: str) -> None:
    """GSM7 exactly when the oracle can encode the text, with the oracle's septet count."""
    expected = oracle_encode(text)
    info = analyse(text)
    assert is_gsm7(text) is (expected is not None)
    if expected is not None:
        assert info == TextAnalysis(Encoding.GSM7, len(expected), info.segments)
    else:
        assert info.encoding is Encoding.UCS2
        assert info.units == utf16_units(text)


@props
@given(mixed_text)
def test_non_gsm_chars_lists_distinct_culprits_in_order(text: str) -> None:
    """non_gsm_chars holds each character the oracle rejects, once, in order of appearance."""
    culprits = tuple(dict.fromkeys(c for c in text if oracle_encode(c) is None))
    assert analyse(text).non_gsm_chars == culprits


def test_non_gsm_chars_example() -> None:
    """The characters that force UCS-2 are named; GSM ones like ö and € are not."""
    info = analyse("Grüße 😀 aus Köln, ça coûte 5€ 😀")
    assert info.non_gsm_chars == ("😀", "ç", "û")
    pangram = "Съешь же ещё этих мягких французских булок, да выпей чаю"
    assert analyse(pangram).non_gsm_chars == tuple(
        dict.fromkeys(c for c in pangram if c not in " ,")
    )


def test_empty_text() -> None:
    """The empty text is GSM7, zero septets, one segment."""
    assert analyse("") == TextAnalysis(Encoding.GSM7, 0, 1)
    assert split_segments("") == [""]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("a" * 158 + "€", Encoding.GSM7, 160, 1),
        ("a" * 159 + "€", Encoding.GSM7, 161, 2),
        ("ж" * 70, Encoding.UCS2, 70, 1),
        ("ж" * 71, Encoding.UCS2, 71, 2),
        ("ж" * 134, Encoding.UCS2, 134, 2),
        ("ж" * 135, Encoding.UCS2, 135, 3),
        ("😀" * 35, Encoding.UCS2, 70, 1),
        ("😀" * 36, Encoding.UCS2, 72, 2),
        ("ç" * 71, Encoding.UCS2, 71, 2),
    ],
)
def test_segment_thresholds(text: str, encoding: Encoding, units: int, segments: int) -> None:
    """One SMS holds 160 septets / 70 units; beyond, segments hold 153 septets / 67 units."""
    info = analyse(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    assert len(split_segments(text)) == segments


# --- segments ----------------------------------------------------------------------------


def test_escape_pair_at_boundary_moves_to_next_segment() -> None:
    """An extension character whose ESC would be septet 153 starts the next segment."""
    text = "a" * 152 + "€" + "b" * 10
    assert split_segments(text) == ["a" * 152, "€" + "b" * 10]


def test_escape_pair_just_fitting_stays() -> None:
    """An extension character filling septets 152-153 stays in the first segment."""
    text = "a" * 151 + "€" + "b" * 10
    assert split_segments(text) == ["a" * 151 + "€", "b" * 10]


def test_moved_escape_pair_can_add_a_segment() -> None:
    """306 septets need 3 segments when a pair straddles 153; analyse counts them too."""
    text = "a" * 152 + "€" + "b" * 152
    assert analyse(text).units == 306
    assert split_segments(text) == ["a" * 152, "€" + "b" * 151, "b"]
    assert analyse(text).segments == 3


def test_surrogate_pair_at_boundary_moves_to_next_segment() -> None:
    """An emoji whose first unit would be unit 67 starts the next segment."""
    text = "ж" * 66 + "😀" + "ж" * 10
    assert split_segments(text) == ["ж" * 66, "😀" + "ж" * 10]
    assert analyse(text).segments == 2


def test_moved_surrogate_pair_can_add_a_segment() -> None:
    """134 units need 3 segments when a pair straddles unit 67; analyse counts them too."""
    text = "ж" * 66 + "😀" + "ж" * 66
    assert analyse(text).units == 134
    assert split_segments(text) == ["ж" * 66, "😀" + "ж" * 65, "ж"]
    assert analyse(text).segments == 3


def test_single_segment_text_is_returned_whole() -> None:
    """A text that fits one SMS is its only segment."""
    for text in ("hello", "a" * 160, "😀" * 35, "ж"):
        assert split_segments(text) == [text]


@props
@given(st.one_of(gsm_text, mixed_text))
def test_segments_concatenate_fit_and_fill(text: str) -> None:
    """Segments rebuild the text, fit 153 septets / 67 units, are full, and match analyse."""
    info = analyse(text)
    parts = split_segments(text)
    assert "".join(parts) == text
    assert len(parts) == info.segments
    if info.segments == 1:
        assert parts == [text]
        return
    gsm = info.encoding is Encoding.GSM7
    size = gsm7_septets if gsm else utf16_units
    limit = GSM7_MULTI if gsm else UCS2_MULTI
    for i, part in enumerate(parts):
        assert 0 < size(part) <= limit
        if i + 1 < len(parts):  # greedy: the next character would not have fitted
            assert size(part + parts[i + 1][0]) > limit


@props
@given(st.text(alphabet=st.sampled_from(list("ж😀a€")), min_size=60, max_size=300))
def test_ucs2_segments_never_split_surrogate_pairs_on_the_wire(text: str) -> None:
    """Each UCS-2 segment's UTF-16 bytes are at most 134 octets and decode on their own."""
    text = "ж" + text  # UCS-2 for sure
    parts = split_segments(text)
    for part in parts:
        wire = encode_ucs2(part)
        assert len(wire) <= 2 * UCS2_MULTI or len(parts) == 1
        assert wire.decode("utf-16-be") == part  # strict: a split pair would raise


@props
@given(st.text(alphabet=st.sampled_from(list("ab€{")), min_size=150, max_size=500))
def test_gsm7_segments_never_split_escape_pairs(text: str) -> None:
    """No GSM7 segment ends with a lone ESC or exceeds 153 septets."""
    parts = split_segments(text)
    for part in parts:
        septets = encode_gsm7(part)
        assert septets[-1:] != b"\x1b"
        assert len(septets) <= GSM7_MULTI or len(parts) == 1
        assert decode_gsm7(septets) == part


# --- GSM 7-bit encode / decode -----------------------------------------------------------


@props
@given(gsm_text)
def test_gsm7_round_trip(text: str) -> None:
    """decode_gsm7(encode_gsm7(text)) is the text, and the septets are the oracle's."""
    septets = encode_gsm7(text)
    assert septets == text.encode(ORACLE)
    assert decode_gsm7(septets) == text


@props
@given(septet_strings)
def test_gsm7_decode_agrees_with_oracle_on_valid_input(data: bytes) -> None:
    """Where the oracle decodes some septets, we decode them to the same text."""
    try:
        expected = data.decode(ORACLE)
    except UnicodeDecodeError:
        return  # invalid escapes: see the module docstring and the tests below
    assert decode_gsm7(data) == expected


@props
@given(st.binary(max_size=300))
def test_gsm7_decode_never_raises(data: bytes) -> None:
    """Any octets decode to some text."""
    assert isinstance(decode_gsm7(data), str)


def test_gsm7_decode_unknown_escape_and_reserved_codes() -> None:
    """ESC + undefined code -> basic character, ESC ESC -> space, trailing ESC dropped."""
    assert decode_gsm7(b"\x1bA") == "A"
    assert decode_gsm7(b"\x1b\x00x") == "@x"
    assert decode_gsm7(b"\x1b\x1bA") == " A"
    assert decode_gsm7(b"ab\x1b") == "ab"
    assert decode_gsm7(b"\x1b\x65\x1b") == "€"
    assert decode_gsm7(b"a\x80b\x1b\xff") == "a\ufffdb\ufffd"


def test_encode_gsm7_rejects_non_gsm_with_the_culprit() -> None:
    """NotGsmEncodable is a ValueError naming the first bad character and its position."""
    with pytest.raises(NotGsmEncodable) as raised:
        encode_gsm7("Hi {you} `x` 😀")
    assert isinstance(raised.value, ValueError)
    assert (raised.value.char, raised.value.position) == ("`", 9)
    assert "U+0060" in str(raised.value)
    with pytest.raises(NotGsmEncodable) as raised:
        encode_gsm7("€ 😀")
    assert (raised.value.char, raised.value.position) == ("😀", 2)


@props
@given(mixed_text)
def test_encode_gsm7_raises_exactly_when_oracle_does(text: str) -> None:
    """encode_gsm7 succeeds with the oracle's septets or raises on the oracle's first failure."""
    expected = oracle_encode(text)
    if expected is not None:
        assert encode_gsm7(text) == expected
        return
    with pytest.raises(NotGsmEncodable) as raised:
        encode_gsm7(text)
    position = next(i for i, c in enumerate(text) if oracle_encode(c) is None)
    assert (raised.value.char, raised.value.position) == (text[position], position)


# --- packing -----------------------------------------------------------------------------


def test_pack_known_vector() -> None:
    """'hellohello' packs to the textbook E8329BFD4697D9EC37."""
    assert pack_septets(encode_gsm7("hellohello")) == bytes.fromhex("E8329BFD4697D9EC37")
    assert unpack_septets(bytes.fromhex("E8329BFD4697D9EC37"), 10) == encode_gsm7("hellohello")


def test_pack_with_fill_bits_after_udh() -> None:
    """With fill bits the septets start that many bits in, the low bits being zero."""
    assert pack_septets(b"\x7f", 1) == b"\xfe"
    assert pack_septets(b"\x7f", 6) == b"\xc0\x1f"
    assert pack_septets(b"", 3) == b"\x00"
    assert pack_septets(b"") == b""


@props
@given(septet_strings, fill)
def test_pack_matches_reference_and_round_trips(septets: bytes, fill_bits: int) -> None:
    """Packing equals a plain bit-string packing and unpacking restores the septets."""
    packed = pack_septets(septets, fill_bits)
    assert packed == reference_pack(septets, fill_bits)
    assert len(packed) == math.ceil((7 * len(septets) + fill_bits) / 8)
    assert unpack_septets(packed, len(septets), fill_bits) == septets


@props
@given(st.binary(max_size=200), fill)
def test_unpack_reads_any_prefix(data: bytes, fill_bits: int) -> None:
    """Unpacking as many septets as the octets hold gives values that pack back to a prefix."""
    count = max(0, (8 * len(data) - fill_bits) // 7)
    septets = unpack_septets(data, count, fill_bits)
    assert len(septets) == count
    assert septets.isascii()
    repacked = int.from_bytes(pack_septets(septets, fill_bits), "little")
    mask = ((1 << 7 * count) - 1) << fill_bits
    assert repacked == int.from_bytes(data, "little") & mask


def test_pack_long_input_beyond_precomputed_masks() -> None:
    """Inputs longer than one SMS (here 2,001 septets) pack and unpack too."""
    septets = bytes(i % 128 for i in range(2001))
    packed = pack_septets(septets, 5)
    assert packed == reference_pack(septets, 5)
    assert unpack_septets(packed, 2001, 5) == septets


def test_pack_and_unpack_reject_bad_arguments() -> None:
    """Octets above 0x7F, fill bits outside 0-6 and short data are ValueErrors."""
    with pytest.raises(ValueError, match="0x7F"):
        pack_septets(b"\x80")
    with pytest.raises(ValueError, match="fill_bits"):
        pack_septets(b"a", 7)
    with pytest.raises(ValueError, match="fill_bits"):
        unpack_septets(b"a", 1, -1)
    with pytest.raises(ValueError, match="cannot hold"):
        unpack_septets(b"\x00" * 7, 9)
    with pytest.raises(ValueError, match="negative"):
        unpack_septets(b"", -1)


# --- UCS-2 -------------------------------------------------------------------------------


@props
@given(st.text())
def test_ucs2_round_trip(text: str) -> None:
    """UCS-2 is UTF-16-BE, surrogate pairs included, and decodes back to the text."""
    data = encode_ucs2(text)
    assert data == text.encode("utf-16-be")
    assert decode_ucs2(data) == text


@props
@given(st.binary(max_size=300))
def test_ucs2_decode_never_raises(data: bytes) -> None:
    """Any octets decode to text that can be stored as UTF-8."""
    text = decode_ucs2(data)
    text.encode("utf-8")  # no lone surrogate left behind


def test_ucs2_decode_replaces_invalid_sequences() -> None:
    """A lone surrogate and an odd trailing octet become U+FFFD."""
    assert decode_ucs2(b"\xd8\x3d\x00A") == "\ufffdA"
    assert decode_ucs2(b"\x00A\x00") == "A\ufffd"
    assert decode_ucs2("😀".encode("utf-16-be")) == "😀"


# --- smart encoding ----------------------------------------------------------------------


def test_smart_replace_makes_curly_text_gsm() -> None:
    """Curly quotes, dashes, ellipsis and odd spaces become their plain GSM look-alikes."""
    # The look-alikes are the point of this test.
    text = "“Don’t” – it’s ‘fine’…\u00a0really — «oui» \u2009 `ok`\u200b"  # noqa: RUF001
    replaced = smart_replace(text)
    assert not is_gsm7(text)
    assert is_gsm7(replaced)
    assert replaced == "\"Don't\" - it's 'fine'... really - \"oui\"   'ok'"


def test_smart_replace_keeps_what_has_no_equivalent() -> None:
    """Emoji, other scripts and letters without a GSM form are left alone."""
    assert smart_replace("“ça” 😀 жук") == '"ça" 😀 жук'


@props
@given(gsm_text)
def test_smart_replace_leaves_gsm_text_unchanged(text: str) -> None:
    """Text that is already GSM comes back as it is."""
    assert smart_replace(text) == text


@props
@given(mixed_text)
def test_smart_replace_is_idempotent_and_never_adds_culprits(text: str) -> None:
    """Replacing twice is replacing once, and no new non-GSM character appears."""
    once = smart_replace(text)
    assert smart_replace(once) == once
    assert set(analyse(once).non_gsm_chars) <= set(analyse(text).non_gsm_chars)


@props
@given(st.text(alphabet=st.sampled_from(["\ud83d", "\ude00", "😀", "ж"]), max_size=300))
def test_lone_surrogates_are_counted_and_split_consistently(text: str) -> None:
    """A str holding lone surrogates (not text, but possible) still splits into itself."""
    parts = split_segments(text)
    assert "".join(parts) == text
    assert len(parts) == analyse(text).segments
    assert analyse(text).units == utf16_units(text)
    assert all(utf16_units(part) <= UCS2_MULTI for part in parts) or len(parts) == 1


def test_culprits_are_worked_out_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Analysing a text of another script does not list its non-GSM characters (sending
    never needs them); asking ``non_gsm_chars`` does, and gives them."""
    calls: list[str] = []
    real = encoding_module._non_gsm

    def counted(text: str) -> tuple[str, ...]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(encoding_module, "_non_gsm", counted)
    info = analyse("Ваш код 123456")
    assert (info.encoding, calls) == (Encoding.UCS2, [])
    assert info.non_gsm_chars == tuple("Вашкод")
    assert len(calls) == 1
