"""Phone numbers and sender ids: E.164 normalisation, validation, typing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType, re_util

from pigeon.domain.addressing import (
    NumberType,
    SenderKind,
    _type_by_descriptions,
    international_number,
    normalise_region,
    number_type_for,
    parse_msisdn,
    parse_sender,
    region_and_type,
    type_of_national,
)
from pigeon.domain.errors import InvalidRecipient, InvalidSender


def test_international_number_is_normalised() -> None:
    """Spaces and punctuation go; the result is E.164 with its country and type."""
    number = parse_msisdn("+44 7400 123-456")
    assert number.e164 == "+447400123456"
    assert number.country == "GB"
    assert number.number_type is NumberType.MOBILE


def test_national_number_needs_and_uses_region() -> None:
    """A national format is accepted with a region and normalised to E.164."""
    assert parse_msisdn("07400 123456", "gb").e164 == "+447400123456"
    with pytest.raises(InvalidRecipient):
        parse_msisdn("07400 123456")


def test_double_zero_prefix_is_international() -> None:
    """00 followed by a country code is read as +."""
    assert parse_msisdn("0033612345678").e164 == "+33612345678"


@pytest.mark.parametrize("raw", ["", "   ", "hello", "+1", "+99912345678", "+4479111234567890"])
def test_invalid_numbers_raise(raw: str) -> None:
    """Empty, non-numeric, too short and impossible numbers raise invalid_recipient."""
    with pytest.raises(InvalidRecipient) as info:
        parse_msisdn(raw)
    assert info.value.code == "invalid_recipient"
    assert info.value.field == "to"


def test_magic_simulator_numbers_are_valid() -> None:
    """The simulator's documented magic numbers pass validation."""
    for last in range(100, 160, 10):
        assert parse_msisdn(f"+14155550{last}").e164 == f"+14155550{last}"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("Pigeon", SenderKind.ALPHANUMERIC),
        ("ACME Bank", SenderKind.ALPHANUMERIC),
        ("12345", SenderKind.SHORT_CODE),
        ("+447911123456", SenderKind.LONG_CODE),
    ],
)
def test_sender_kinds(raw: str, kind: SenderKind) -> None:
    """Alphanumeric ids, short codes and E.164 numbers are told apart."""
    assert parse_sender(raw).kind is kind


@pytest.mark.parametrize("raw", ["", "ThisIsTooLongSender", "12", "+99912345678", "€€€"])
def test_invalid_senders_raise(raw: str) -> None:
    """Over-long, too-short, non-numeric-only junk and impossible numbers are refused."""
    with pytest.raises(InvalidSender):
        parse_sender(raw)


_COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=400, deadline=None)
@given(
    country_code=st.sampled_from(_COUNTRY_CODES),
    digits=st.text(alphabet="0123456789", min_size=4, max_size=13),
)
def test_validity_and_type_agree_with_libphonenumber(country_code: int, digits: str) -> None:
    """A number is accepted exactly when libphonenumber calls it valid, typed as it types it."""
    raw = f"+{country_code}{digits}"
    try:
        reference = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return  # not a number at all: parse_msisdn refuses it before any validity check
    if phonenumbers.is_valid_number(reference):
        parsed = parse_msisdn(raw)
        assert parsed.e164 == phonenumbers.format_number(
            reference, phonenumbers.PhoneNumberFormat.E164
        )
        assert parsed.country == phonenumbers.region_code_for_number(reference)
        assert parsed.number_type is not NumberType.UNKNOWN
    else:
        with pytest.raises(InvalidRecipient):
            parse_msisdn(raw)


def test_a_number_asked_again_gets_the_same_answer() -> None:
    """A remembered number comes back equal, and a refusal again names the text as given."""
    first = parse_msisdn("+44 7400 123-457")
    assert parse_msisdn("+44 7400 123-457") == first
    details = []
    for raw in ("+99912345678", " +99912345678 ", "+99912345678"):
        with pytest.raises(InvalidRecipient) as info:
            parse_msisdn(raw, field="from")
        assert info.value.detail.startswith(f"{raw!r} is not a")
        assert info.value.field == "from"
        details.append(info.value.detail)
    assert details[0] == details[2]
    assert details[0] != details[1]


def test_the_region_is_part_of_what_is_remembered() -> None:
    """One national text read under two regions gives each region's number."""
    assert parse_msisdn("07400 123458", "GB").e164 == "+447400123458"
    assert parse_msisdn("0612345678", "FR").e164 == "+33612345678"
    with pytest.raises(InvalidRecipient):
        parse_msisdn("0612345678", "GB")


def test_remembering_stays_bounded() -> None:
    """Past its bound the memory of numbers starts again, and answers stay right."""
    from pigeon.domain import addressing

    for index in range(addressing._NUMBERS_KEPT + 10):
        addressing.parse_msisdn(f"+1415555{index % 10_000:04d}", "US" if index > 9_999 else None)
    assert len(addressing._numbers) <= addressing._NUMBERS_KEPT
    assert parse_msisdn("+14155550123").country == "US"


def _examples_of_every_type() -> list[str]:
    """Every region's example number of every type, in E.164."""
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(
                    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                )
    return numbers


_TYPED_EXAMPLES = _examples_of_every_type()


@settings(max_examples=1500, deadline=None)
@given(
    example=st.sampled_from(_TYPED_EXAMPLES),
    tail=st.text(alphabet="0123456789", min_size=0, max_size=4),
    cut=st.integers(min_value=0, max_value=5),
)
def test_type_of_national_is_libphonenumbers_near_valid_numbers(
    example: str, tail: str, cut: int
) -> None:
    """Numbers near the examples of every type (last digits changed, dropped or added) get
    ``number_type``'s type from the region's combined pattern, and from the fallback that
    tries the descriptions one by one: each type's branch, and the lengths at the edges of
    each description."""
    text = example[: max(4, len(example) - cut)] + tail
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return
    region = phonenumbers.region_code_for_number(number)
    if region is None:
        return
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        number.country_code, region
    )
    assert metadata is not None
    national = phonenumbers.national_significant_number(number)
    expected = phonenumbers.number_type(number)
    assert type_of_national(national, metadata) == expected
    assert _type_by_descriptions(national, metadata) == expected


@settings(max_examples=600, deadline=None)
@given(
    country_code=st.sampled_from(_COUNTRY_CODES),
    digits=st.text(alphabet="0123456789", min_size=4, max_size=13),
    region=st.sampled_from([None, "US", "GB", "DE", "RU", "IT", "FR"]),
)
def test_the_international_fast_path_reads_as_parse_does(
    country_code: int, digits: str, region: str | None
) -> None:
    """Wherever the fast path makes a number, libphonenumber's parse makes the same one."""
    raw = f"+{country_code}{digits}"
    made = international_number(raw)
    if made is None:
        return
    assert made == phonenumbers.parse(raw, region)


@pytest.mark.parametrize(
    "raw",
    [
        "+14155550123",  # the plain case
        "+114155550123",  # the US national prefix after the calling code: parse drops it
        "+390612345678",  # Italy keeps its leading zero
        "+78005553535",  # Russia's national prefix is 8
        "+4407400123456",  # a UK trunk zero written after +44
        "+012345678",  # no calling code starts with 0
        "+1 415 555 0123",  # spaces: parse's
    ],
)
def test_the_fast_path_leaves_what_parse_may_read_otherwise(raw: str) -> None:
    """Texts parse could read differently (prefixes, zeros, spacing) go to parse; the answer
    is the same either way."""
    made = international_number(raw)
    if made is not None:
        assert made == phonenumbers.parse(raw, None)
    try:
        reference = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        with pytest.raises(InvalidRecipient):
            parse_msisdn(raw)
        return
    if phonenumbers.is_valid_number(reference):
        assert parse_msisdn(raw).e164 == phonenumbers.format_number(
            reference, phonenumbers.PhoneNumberFormat.E164
        )
    else:
        with pytest.raises(InvalidRecipient):
            parse_msisdn(raw)


@settings(max_examples=300, deadline=None)
@given(
    country_code=st.sampled_from(_COUNTRY_CODES),
    digits=st.text(alphabet="0123456789", min_size=4, max_size=13),
)
def test_the_type_lookup_agrees_withnumber_type_for(country_code: int, digits: str) -> None:
    """The type found from the region already looked up is libphonenumber's ``number_type``."""
    try:
        number = phonenumbers.parse(f"+{country_code}{digits}", None)
    except phonenumbers.NumberParseException:
        return
    region = phonenumbers.region_code_for_number(number)
    assert number_type_for(number, region) == phonenumbers.number_type(number)


@settings(max_examples=300, deadline=None)
@given(
    country_code=st.sampled_from(_COUNTRY_CODES),
    digits=st.text(alphabet="0123456789", min_size=4, max_size=13),
)
def test_region_and_type_are_libphonenumbers(country_code: int, digits: str) -> None:
    """The region and type found in one pass are ``region_code_for_number`` and
    ``number_type`` of any number libphonenumber parses."""
    try:
        number = phonenumbers.parse(f"+{country_code}{digits}", None)
    except phonenumbers.NumberParseException:
        return
    expected = (phonenumbers.region_code_for_number(number), phonenumbers.number_type(number))
    assert region_and_type(number) == expected


def _every_metadata() -> list[phonenumbers.PhoneMetadata]:
    """The metadata of every region and of every non-geographic calling code."""
    found = [
        phonenumbers.PhoneMetadata.metadata_for_region(region)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
    ] + [
        phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
        for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    ]
    return [metadata for metadata in found if metadata is not None]


_DESCRIPTIONS = (
    "general_desc",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


#: libphonenumber's types: FIXED_LINE (0) to VOICEMAIL (10), and UNKNOWN.
_TYPE_VALUES = {*range(11), PhoneNumberType.UNKNOWN}


def test_every_regions_patterns_compile_for_every_length() -> None:
    """The combined pattern of every region and of every length its general description
    allows compiles, and classifies a number of that length (``UNKNOWN`` at worst)."""
    made = 0
    for metadata in _every_metadata():
        for length in metadata.general_desc.possible_length or ():
            assert type_of_national("5" * length, metadata) in _TYPE_VALUES
            made += 1
    assert made > 500


def _description(pattern: str | None, *lengths: int) -> SimpleNamespace:
    """A stand-in for a ``PhoneNumberDesc``: a pattern and its possible lengths."""
    return SimpleNamespace(national_number_pattern=pattern, possible_length=lengths)


_STAND_IN_CODES: list[int] = []


def _region(**descriptions: SimpleNamespace) -> Any:
    """A stand-in for a region's metadata: the descriptions given, the others absent. Each
    gets a calling code of its own: a region's type lookup is kept by its id and code."""
    fields = {name: descriptions.get(name) for name in _DESCRIPTIONS}
    _STAND_IN_CODES.append(len(_STAND_IN_CODES) + 90_000)
    return SimpleNamespace(
        id="QQ",
        country_code=_STAND_IN_CODES[-1],
        same_mobile_and_fixed_line_pattern=False,
        **fields,
    )


def test_the_type_is_the_alternatives_even_when_a_pattern_holds_groups_of_its_own() -> None:
    """A description's pattern with capturing groups of its own (libphonenumber's hold none
    today) does not confuse which alternative matched: toll free before fixed line, both
    fixed line and mobile, one of them, or none, with the lengths each allows."""
    region = _region(
        general_desc=_description(r"\d{6,8}"),
        toll_free=_description(r"(8)(00)\d{3,5}", 6, 8),
        fixed_line=_description(r"([2-5])(\d)\d{4,6}"),
        mobile=_description(r"([4-7])\d{5,6}(\d)?", 6, 7),
    )
    assert type_of_national("800123", region) == PhoneNumberType.TOLL_FREE
    assert type_of_national("8001234", region) == PhoneNumberType.UNKNOWN  # 7: not toll free
    assert type_of_national("4123456", region) == PhoneNumberType.FIXED_LINE_OR_MOBILE
    assert type_of_national("2123456", region) == PhoneNumberType.FIXED_LINE
    assert type_of_national("6123456", region) == PhoneNumberType.MOBILE
    assert type_of_national("41234567", region) == PhoneNumberType.FIXED_LINE  # 8: not mobile's
    assert type_of_national("912345", region) == PhoneNumberType.UNKNOWN
    assert type_of_national("12345", region) == PhoneNumberType.UNKNOWN  # not general


def test_a_description_matching_a_length_it_does_not_list_gives_way_to_the_next() -> None:
    """A description's pattern that matches a number of a length the description does not
    list does not give its type: the descriptions after it decide, as in libphonenumber."""
    region = _region(
        general_desc=_description(r"\d{6,8}"),
        toll_free=_description(r"800\d{3,5}", 6),
        fixed_line=_description(r"[2-8]\d{5,7}", 7, 8),
    )
    assert type_of_national("800123", region) == PhoneNumberType.TOLL_FREE
    assert type_of_national("8001234", region) == PhoneNumberType.FIXED_LINE
    assert type_of_national("80012345", region) == PhoneNumberType.FIXED_LINE
    assert type_of_national("212345", region) == PhoneNumberType.UNKNOWN  # 6: not fixed


def test_region_and_type_hold_for_every_regions_example_numbers() -> None:
    """Every region's example number of every type (valid numbers, including those of calling
    codes that several regions share) gets libphonenumber's region and type."""
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):  # PhoneNumberType's values, FIXED_LINE to VOICEMAIL
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            expected = (
                phonenumbers.region_code_for_number(number),
                phonenumbers.number_type(number),
            )
            assert region_and_type(number) == expected, (region, kind)
            checked += 1
    assert checked > 1000


def _mobile_examples() -> list[str]:
    """libphonenumber's example mobile number of every region that has one, in E.164."""
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is not None:
            numbers.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return numbers


def test_numbers_of_every_region_compile_no_pattern_a_second_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once numbers of every region were classified, classifying new ones compiles no pattern:
    libphonenumber keeps its compiled patterns instead of leaving them to ``re``'s cache of
    512, which numbers of many countries overflow."""
    examples = _mobile_examples()
    assert len(examples) > 200
    for number in examples:
        parse_msisdn(number)
    compiled: list[str] = []
    compile_pattern = re_util.re.compile

    def counted(pattern: str, flags: int = 0) -> object:
        compiled.append(pattern)
        return compile_pattern(pattern, flags)

    monkeypatch.setattr(re_util.re, "compile", counted)
    for number in examples:
        # The last digit changed: a number not in Pigeon's own cache of classified numbers.
        parse_msisdn(number[:-1] + ("1" if number[-1] == "0" else "0"))
    assert compiled == []


@given(st.one_of(st.text(max_size=4), st.sampled_from(["gb", " us ", "US", "USA", "G1", "zz\n"])))
def test_a_region_normalised_again_is_answered_as_the_first_time(region: str) -> None:
    """``normalise_region`` remembers its answers: asked twice, it answers as the rule says
    (stripped, upper-case, two letters A-Z, else ``None``) both times."""
    candidate = region.strip().upper()
    expected = (
        candidate if len(candidate) == 2 and all("A" <= c <= "Z" for c in candidate) else None
    )
    assert normalise_region(region) == expected
    assert normalise_region(region) == expected
