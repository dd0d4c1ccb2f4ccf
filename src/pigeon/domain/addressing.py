"""Phone numbers and sender ids: E.164 normalisation, validation and typing."""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberType,
    phonenumberutil,
)

from pigeon.domain.errors import InvalidRecipient, InvalidSender
from pigeon.domain.value_objects import value_object

# libphonenumber matches a number against its region's patterns, given as text, and by default
# asks ``re.compile`` for each one every time. ``re`` keeps only the last 512 patterns; the
# metadata of every region holds a few thousand, so numbers from many countries (a global
# gateway's traffic) compile them again and again: 180 us per new number against 12 us with
# the library's own cache of compiled patterns, which this turns on for the whole process
# (``bench/number_classification.py``; ~1,100 patterns, no measurable memory).
phonenumbers.enable_pattern_cache()


class NumberType(enum.StrEnum):
    """What kind of line a number is, as libphonenumber classifies it."""

    MOBILE = "mobile"
    FIXED_LINE = "fixed_line"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL = "personal"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"


_TYPES: dict[int, NumberType] = {
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
}

_REGION = re.compile(r"^[A-Z]{2}$")


@value_object
class Msisdn:
    """A validated phone number in E.164 form (``+`` and up to 15 digits)."""

    e164: str
    country: str
    number_type: NumberType

    def __str__(self) -> str:
        return self.e164


def normalise_region(region: str | None) -> str | None:
    """Upper-case an ISO 3166 alpha-2 region, or ``None`` if it is not one."""
    if region is None:
        return None
    candidate = region.strip().upper()
    return candidate if _REGION.match(candidate) else None


def parse_msisdn(raw: str, region: str | None = None, *, field: str = "to") -> Msisdn:
    """Normalise ``raw`` to E.164, accepting national formats when ``region`` is given.

    Raises ``InvalidRecipient`` for anything that is not a valid, dialable number.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise InvalidRecipient("The phone number is empty.", field=field)
    if len(text) > 32:
        raise InvalidRecipient("The phone number is too long.", field=field)
    if text.startswith("00"):
        text = "+" + text[2:]
    default_region = normalise_region(region)
    if not text.startswith("+") and default_region is None:
        if text.isdigit() and len(text) >= 8:
            text = "+" + text
        else:
            raise InvalidRecipient(
                f"{raw!r} is not in international format; give 'country' for a national number.",
                field=field,
            )
    found = _numbers.get((text, default_region))
    if found is None:
        found = _classify(text, default_region)
        if len(_numbers) >= _NUMBERS_KEPT:
            _numbers.clear()
        _numbers[(text, default_region)] = found
    if isinstance(found, Msisdn):
        return found
    raise InvalidRecipient(f"{raw!r} {found}", field=field)


#: Numbers classified lately, and why the refused ones were refused: libphonenumber's parse
#: and classification cost ~45 us, most of a REST accept's own work, and one recipient gets
#: many messages (OTPs, alerts, campaigns sent again). Answers depend only on the text and the
#: region; the bound keeps it a few MB (cleared whole when full).
_NUMBERS_KEPT = 16_384
_numbers: dict[tuple[str, str | None], Msisdn | str] = {}


def _classify(text: str, default_region: str | None) -> Msisdn | str:
    """The number ``text`` is, or why it is none (what follows the number in the error)."""
    parts = international_parts(text)
    if parts is not None:
        # Its E.164 form is its text: ``+``, the calling code and the national digits, none
        # of them a leading zero, which is what E.164 formatting writes.
        country, kind = _region_and_type(*parts)
        e164 = text
        number: PhoneNumber | None = None
    else:
        try:
            number = phonenumbers.parse(text, default_region)
        except NumberParseException as exc:
            reason = str(exc).split(") ", 1)[-1].rstrip(".")
            return f"is not a phone number: {reason}."
        country, kind = region_and_type(number)
        e164 = ""
    # ``number_type`` is UNKNOWN exactly when ``is_valid_number`` is false (both match the
    # number against the metadata of the region ``region_code_for_number`` finds); asking
    # for the type alone spares is_valid_number's second pass over the metadata patterns
    # (a property test holds the two equal).
    if kind == PhoneNumberType.UNKNOWN:
        return "is not a valid phone number."
    if number is not None:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Msisdn(
        e164=e164, country=country or "ZZ", number_type=_TYPES.get(kind, NumberType.UNKNOWN)
    )


#: The descriptions libphonenumber tries after the general one, in its order, with the type
#: each gives (``_number_type_helper``); the fixed-line and mobile ones follow them.
_SPECIAL_TYPES: tuple[tuple[str, int], ...] = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)

#: One pattern per region's metadata and national number length: the descriptions that length
#: can match, as one alternation in libphonenumber's order (the first alternative that matches
#: the whole number wins, as the first description does there), behind a lookahead for the
#: general description; and the type of each alternative. ``None`` where the general
#: description cannot match that length. Bounded by the metadata: every region's every
#: possible length makes 640 patterns, 2.4 MB, 0.19 s of CPU to make them all (session 48).
_TYPE_PATTERNS: dict[
    tuple[str | None, int | None, int], tuple[re.Pattern[str], dict[str, int]] | None
] = {}


def _may_match(desc: Any, length: int) -> str | None:
    """The pattern of ``desc`` if a national number of ``length`` digits can match it."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return str(desc.national_number_pattern)


def _type_pattern(
    metadata: PhoneMetadata, length: int
) -> tuple[re.Pattern[str], dict[str, int]] | None:
    general = _may_match(metadata.general_desc, length)
    if general is None:
        return None
    alternatives: list[str] = []
    types: list[int] = []
    for name, kind in _SPECIAL_TYPES:
        pattern = _may_match(getattr(metadata, name), length)
        if pattern is not None:
            alternatives.append(pattern)
            types.append(kind)
    fixed = _may_match(metadata.fixed_line, length)
    mobile = _may_match(metadata.mobile, length)
    if metadata.same_mobile_and_fixed_line_pattern:
        if fixed is not None:
            alternatives.append(fixed)
            types.append(PhoneNumberType.FIXED_LINE_OR_MOBILE)
    else:
        if fixed is not None and mobile is not None:
            alternatives.append(rf"(?=(?:{fixed})\Z)(?:{mobile})")
            types.append(PhoneNumberType.FIXED_LINE_OR_MOBILE)
        if fixed is not None:
            alternatives.append(fixed)
            types.append(PhoneNumberType.FIXED_LINE)
        if mobile is not None:
            alternatives.append(mobile)
            types.append(PhoneNumberType.MOBILE)
    if not alternatives:
        return None
    # Each alternative is a named group around its pattern: the last group closed in a match
    # (``lastgroup``) is the alternative's, whatever groups its own pattern holds (the
    # metadata's hold none today; a test gives one some).
    either = "|".join(
        f"(?P<{_GROUP}{index}>{alternative})" for index, alternative in enumerate(alternatives)
    )
    named = {f"{_GROUP}{index}": kind for index, kind in enumerate(types)}
    return re.compile(rf"(?=(?:{general})\Z)(?:{either})"), named


#: The prefix of the alternatives' group names (``_type_pattern``).
_GROUP = "pigeon_type_"


def type_of_national(national: str, metadata: PhoneMetadata) -> int:
    """libphonenumber's type of the national significant number ``national`` in the region
    ``metadata`` describes (its ``_number_type_helper``), with one regular expression match
    where it makes ten calls that match up to ten (a property test holds the two equal)."""
    key = (metadata.id, metadata.country_code, len(national))
    try:
        found = _TYPE_PATTERNS[key]
    except KeyError:
        found = _TYPE_PATTERNS[key] = _type_pattern(metadata, len(national))
    if found is None:
        return int(PhoneNumberType.UNKNOWN)
    pattern, types = found
    matched = pattern.fullmatch(national)
    if matched is None or matched.lastgroup is None:
        return int(PhoneNumberType.UNKNOWN)
    return types[matched.lastgroup]


def number_type_for(number: PhoneNumber, region: str | None) -> int:
    """``phonenumbers.number_type(number)``, given ``region_code_for_number(number)``."""
    if region is None or number.country_code is None:
        return int(PhoneNumberType.UNKNOWN)  # no metadata: what ``number_type`` says too
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if metadata is None:
        return int(PhoneNumberType.UNKNOWN)
    return type_of_national(phonenumbers.national_significant_number(number), metadata)


def region_and_type(number: PhoneNumber) -> tuple[str | None, int]:
    """``(region_code_for_number(number), number_type(number))``, each region's type looked up
    once. For a calling code shared by several regions (+1, +7, +44...) libphonenumber finds
    the region by trying each one's type until one is known, and ``number_type`` then looks the
    found region's type up again: half of a new number's classification (a property test and
    every region's example numbers hold the two equal)."""
    code = number.country_code
    if code is None:
        return None, int(PhoneNumberType.UNKNOWN)
    return _region_and_type(code, phonenumbers.national_significant_number(number))


def _region_and_type(code: int, national: str) -> tuple[str | None, int]:
    """``region_and_type`` of the number with calling code ``code`` and national significant
    number ``national``."""
    regions = phonenumberutil.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions:
        return None, int(PhoneNumberType.UNKNOWN)
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        if metadata is None:
            return regions[0], int(PhoneNumberType.UNKNOWN)
        return regions[0], type_of_national(national, metadata)
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if _national_prefix(metadata.leading_digits).match(national):
                return region, type_of_national(national, metadata)
            continue
        kind = type_of_national(national, metadata)
        if kind != PhoneNumberType.UNKNOWN:
            return region, kind
    return None, int(PhoneNumberType.UNKNOWN)


_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def international_number(text: str) -> PhoneNumber | None:
    """The number a plain ``+`` and 8-15 digits text is, made without ``phonenumbers.parse``
    (~35 us of generic parsing), or ``None`` where parse could read it otherwise (see
    ``international_parts``). A property test holds the two equal wherever this gives a
    number."""
    parts = international_parts(text)
    if parts is None:
        return None
    code, national = parts
    return PhoneNumber(country_code=code, national_number=int(national))


def international_parts(text: str) -> tuple[int, str] | None:
    """The calling code and national significant number of a plain ``+`` and 8-15 digits
    text, read without ``phonenumbers.parse``, or ``None`` where parse could read it
    otherwise: a national number with a leading zero (parse records the zeros), or one that
    starts with its country's national prefix (parse drops the prefix when what is left is
    still a possible length): those, and every other text, are left to ``parse``.
    """
    if not _E164.fullmatch(text):
        return None
    digits = text[1:]
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumberutil.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None  # no such calling code: parse explains why
    national = digits[size:]
    if national.startswith("0"):
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumberutil.region_code_for_country_code(code)
    )
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix is not None and _national_prefix(prefix).match(national):
        return None
    return code, national


_PREFIXES: dict[str, re.Pattern[str]] = {}


def _national_prefix(pattern: str) -> re.Pattern[str]:
    compiled = _PREFIXES.get(pattern)
    if compiled is None:
        compiled = _PREFIXES[pattern] = re.compile(pattern)
    return compiled


class SenderKind(enum.StrEnum):
    """How a sender id is presented to the handset."""

    ALPHANUMERIC = "alphanumeric"
    SHORT_CODE = "short_code"
    LONG_CODE = "long_code"


@dataclass(frozen=True, slots=True)
class SenderId:
    """A message originator: an alphanumeric id (up to 11 chars), a short code or a number."""

    value: str
    kind: SenderKind

    def __str__(self) -> str:
        return self.value


_ALPHANUMERIC = re.compile(r"^[A-Za-z0-9 .\-_&+!]{1,11}$")
_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")


@functools.lru_cache(maxsize=4096)
def parse_sender(raw: str) -> SenderId:
    """Classify and validate a sender id; raises ``InvalidSender`` when it fits no kind.

    Cached (a ``SenderId`` is immutable): a handful of senders send nearly every message, and
    the accept and the routing of each ask."""
    text = raw.strip()
    if _SHORT_CODE.match(text):
        return SenderId(text, SenderKind.SHORT_CODE)
    if text.startswith("+") or (text.isdigit() and len(text) > 8):
        try:
            number = parse_msisdn(text, field="from")
        except InvalidRecipient as exc:
            detail = exc.detail.replace("phone number", "sender number")
            raise InvalidSender(detail, field="from") from exc
        return SenderId(number.e164, SenderKind.LONG_CODE)
    if _ALPHANUMERIC.match(text) and any(ch.isalpha() for ch in text):
        return SenderId(text, SenderKind.ALPHANUMERIC)
    raise InvalidSender(
        f"{raw!r} is not a sender id: use up to 11 letters and digits, a short code "
        "or a phone number in E.164.",
        field="from",
    )
