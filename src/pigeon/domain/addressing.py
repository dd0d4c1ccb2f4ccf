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


#: ``normalise_region``'s answers by what it was given (each dispatch asks for its message's
#: country); bounded, since callers may pass any text.
_NORMALISED_REGIONS: dict[str, str | None] = {}
_NORMALISED_REGIONS_KEPT = 1024


def normalise_region(region: str | None) -> str | None:
    """Upper-case an ISO 3166 alpha-2 region, or ``None`` if it is not one."""
    if region is None:
        return None
    try:
        return _NORMALISED_REGIONS[region]
    except KeyError:
        pass
    candidate = region.strip().upper()
    normalised = candidate if _REGION.match(candidate) else None
    if len(_NORMALISED_REGIONS) < _NORMALISED_REGIONS_KEPT:
        _NORMALISED_REGIONS[region] = normalised
    return normalised


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

#: The descriptions of the fixed-line and mobile types, after the others.
_FIXED, _MOBILE = "fixed_line", "mobile"


class _RegionTypes:
    """A region's type lookup: its general description's pattern, then one pattern for its
    other descriptions in libphonenumber's order, as one alternation (the first alternative
    that matches the whole number is the first description that does), each alternative a
    named group with the type it gives and the description it needs. A fixed-line match is
    also a mobile one (both types) when the mobile pattern, matched on its own, agrees.

    A description applies only to the lengths it lists, which the pattern does not know: the
    alternative that matched gives its type only where its description allows the number's
    length, and otherwise (rare: a description's pattern matches lengths it does not list)
    the descriptions are tried one by one (``_type_by_descriptions``). Each description's
    pattern is in one compiled pattern only, so making them costs about what compiling
    libphonenumber's own does."""

    __slots__ = (
        "_needs",
        "allowed",
        "fixed_group",
        "general",
        "metadata",
        "mobile",
        "pattern",
        "types",
    )

    def __init__(self, metadata: PhoneMetadata) -> None:
        self.metadata = metadata
        alternatives: list[tuple[str, int, str]] = []
        for name, kind in _SPECIAL_TYPES:
            pattern = _pattern_of(getattr(metadata, name))
            if pattern is not None:
                alternatives.append((pattern, kind, name))
        fixed = _pattern_of(metadata.fixed_line)
        mobile = _pattern_of(metadata.mobile)
        same = metadata.same_mobile_and_fixed_line_pattern
        self.fixed_group: str | None = None
        self.mobile: re.Pattern[str] | None = None
        if fixed is not None:
            if not same:
                self.fixed_group = f"{_GROUP}{len(alternatives)}"
                self.mobile = _compiled(mobile) if mobile is not None else None
            kind = PhoneNumberType.FIXED_LINE_OR_MOBILE if same else PhoneNumberType.FIXED_LINE
            alternatives.append((fixed, kind, _FIXED))
        if mobile is not None and not same:
            alternatives.append((mobile, PhoneNumberType.MOBILE, _MOBILE))
        general = _pattern_of(metadata.general_desc)
        self.general = _compiled(general) if general is not None else None
        # Each alternative a named group around its pattern: the last group a match closed
        # (``lastgroup``) is the alternative's, whatever groups its own pattern holds (the
        # metadata's hold none today; a test gives one some).
        either = "|".join(
            f"(?P<{_GROUP}{index}>{pattern})" for index, (pattern, _, _) in enumerate(alternatives)
        )
        self.pattern = re.compile(either) if alternatives else None
        self.types = {f"{_GROUP}{index}": kind for index, (_, kind, _) in enumerate(alternatives)}
        self._needs = {f"{_GROUP}{index}": name for index, (_, _, name) in enumerate(alternatives)}
        #: Per national number length, the alternatives whose description allows it, and
        #: ``_MOBILE`` if the mobile description does (``None``: the general one does not).
        self.allowed: dict[int, frozenset[str] | None] = {}

    def type_of(self, national: str) -> int:
        length = len(national)
        try:
            allowed = self.allowed[length]
        except KeyError:
            allowed = self.allowed[length] = self._allowed(length)
        if allowed is None or self.pattern is None or self.general is None:
            return int(PhoneNumberType.UNKNOWN)
        if self.general.fullmatch(national) is None:
            return int(PhoneNumberType.UNKNOWN)
        matched = self.pattern.fullmatch(national)
        if matched is None:
            return int(PhoneNumberType.UNKNOWN)
        group = matched.lastgroup
        if group not in allowed:
            return _type_by_descriptions(national, self.metadata)
        if group == self.fixed_group:
            mobile = self.mobile
            if mobile is not None and _MOBILE in allowed and mobile.fullmatch(national):
                return int(PhoneNumberType.FIXED_LINE_OR_MOBILE)
            return int(PhoneNumberType.FIXED_LINE)
        return self.types[group]

    def _allowed(self, length: int) -> frozenset[str] | None:
        metadata = self.metadata
        if not _allows(metadata.general_desc, length):
            return None
        allowed = {
            group for group, name in self._needs.items() if _allows(getattr(metadata, name), length)
        }
        if _allows(metadata.mobile, length):
            allowed.add(_MOBILE)
        return frozenset(allowed)


#: The prefix of the alternatives' group names.
_GROUP = "pigeon_type_"


#: Each region's type lookup, made the first time one of its numbers is classified: 254 of
#: them for every region, 0.11 s of CPU and 1.7 MB to make them all (session 48), about what
#: libphonenumber's own patterns take to compile.
_REGION_TYPES: dict[tuple[str | None, int | None], _RegionTypes] = {}


def _pattern_of(desc: Any) -> str | None:
    """The pattern of ``desc``, or ``None`` if it has none (it then matches nothing)."""
    if desc is None or not desc.national_number_pattern:
        return None
    return str(desc.national_number_pattern)


def _allows(desc: Any, length: int) -> bool:
    """Whether ``desc`` may match a national number of ``length`` digits (it lists no lengths,
    or this one)."""
    if desc is None or not desc.national_number_pattern:
        return False
    return not desc.possible_length or length in desc.possible_length


#: The metadata's patterns compiled (descriptions, national prefixes, leading digits): bounded
#: by the metadata.
_COMPILED: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    """One of the metadata's patterns compiled, once."""
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled


def _matches(desc: Any, national: str) -> bool:
    """libphonenumber's ``_is_number_matching_desc``: the length allowed, the whole matched."""
    if not _allows(desc, len(national)):
        return False
    return _compiled(str(desc.national_number_pattern)).fullmatch(national) is not None


def _type_by_descriptions(national: str, metadata: PhoneMetadata) -> int:
    """The type libphonenumber gives, its descriptions tried one by one in its order."""
    if not _matches(metadata.general_desc, national):
        return int(PhoneNumberType.UNKNOWN)
    for name, kind in _SPECIAL_TYPES:
        if _matches(getattr(metadata, name), national):
            return kind
    if _matches(metadata.fixed_line, national):
        if metadata.same_mobile_and_fixed_line_pattern or _matches(metadata.mobile, national):
            return int(PhoneNumberType.FIXED_LINE_OR_MOBILE)
        return int(PhoneNumberType.FIXED_LINE)
    if not metadata.same_mobile_and_fixed_line_pattern and _matches(metadata.mobile, national):
        return int(PhoneNumberType.MOBILE)
    return int(PhoneNumberType.UNKNOWN)


def type_of_national(national: str, metadata: PhoneMetadata) -> int:
    """libphonenumber's type of the national significant number ``national`` in the region
    ``metadata`` describes (its ``_number_type_helper``), with one regular expression match
    where it makes ten calls that match up to ten (a property test holds the two equal)."""
    key = (metadata.id, metadata.country_code)
    types = _REGION_TYPES.get(key)
    if types is None:
        types = _REGION_TYPES[key] = _RegionTypes(metadata)
    return types.type_of(national)


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
            if _compiled(metadata.leading_digits).match(national):
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
    if prefix is not None and _compiled(prefix).match(national):
        return None
    return code, national


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
