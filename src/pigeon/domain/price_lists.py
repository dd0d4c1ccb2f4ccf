"""What a connector charges per segment, by destination prefix or country, and its CSV form.

A price list maps *keys* to a per-segment price in integer micro-units of one currency:

* an E.164 prefix such as ``"+4477"`` (the longest matching prefix wins),
* an ISO 3166 alpha-2 country such as ``"GB"`` (used when no prefix matches),
* ``"*"``, the default price for everything else.

Lookups are a handful of dict probes (one per distinct prefix length), never a scan.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

import phonenumbers

from pigeon.domain.errors import ValidationError
from pigeon.domain.pricing import Money

#: The key of the price used when neither a prefix nor the country has one.
DEFAULT_KEY = "*"

#: Micro-units per currency unit; prices are converted exactly, never through floats.
MICRO_PLACES = 6

#: A per-segment price above this (one million currency units) is a typo, not a price.
MAX_PRICE_MICROS = 10**12

_PREFIX = re.compile(r"^\+[0-9]{1,15}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Plain decimals, optionally with a short exponent: no sign, no "_", no NaN or Infinity.
_DECIMAL = re.compile(r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$")


class PriceListError(ValidationError, ValueError):
    """A price list (usually its CSV form) cannot be read; ``problems`` holds each bad line.

    It is a ``ValueError`` for plain Python callers and a ``ValidationError`` (422,
    ``code=invalid_price_list``) when it reaches the API.
    """

    code = "invalid_price_list"

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        shown = "; ".join(f"line {line}: {text}" for line, text in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"invalid price list: {shown}{more}")
        #: ``(line number, what is wrong)`` for every problem found, in file order.
        self.problems: tuple[tuple[int, str], ...] = tuple(problems)


@dataclass(frozen=True, slots=True)
class PriceMatch:
    """The price list entry that priced a destination, and its per-segment price."""

    key: str
    price: Money

    @property
    def kind(self) -> str:
        """``"prefix"``, ``"country"`` or ``"default"``: how the destination was matched."""
        if self.key == DEFAULT_KEY:
            return "default"
        return "prefix" if self.key.startswith("+") else "country"


@dataclass(frozen=True, slots=True)
class PriceList:
    """A connector's per-segment prices in one currency, keyed by prefix, country or ``"*"``."""

    connector_id: str
    currency: str
    entries: Mapping[str, int] = field(hash=False)
    # Derived at construction: prefix lengths longest first, each with its prefixes.
    _by_length: tuple[tuple[int, dict[str, PriceMatch]], ...] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _by_country: dict[str, PriceMatch] = field(init=False, repr=False, compare=False, hash=False)
    _default: PriceMatch | None = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code such as 'EUR': {self.currency!r}")
        entries = dict(self.entries)
        by_length: dict[int, dict[str, PriceMatch]] = {}
        by_country: dict[str, PriceMatch] = {}
        default: PriceMatch | None = None
        for key, micros in entries.items():
            if not isinstance(micros, int) or isinstance(micros, bool) or micros < 0:
                raise ValueError(f"price for {key!r} must be a non-negative int of micro-units")
            match = PriceMatch(key, Money(micros, self.currency))
            if key == DEFAULT_KEY:
                default = match
            elif _PREFIX.match(key):
                by_length.setdefault(len(key), {})[key] = match
            elif key in phonenumbers.SUPPORTED_REGIONS:
                by_country[key] = match
            else:
                raise ValueError(
                    f"price list key {key!r} is not an E.164 prefix ('+4477'), "
                    "an ISO 3166 country ('GB') or '*'"
                )
        object.__setattr__(self, "entries", MappingProxyType(entries))
        ordered = tuple(sorted(by_length.items(), reverse=True))
        object.__setattr__(self, "_by_length", ordered)
        object.__setattr__(self, "_by_country", by_country)
        object.__setattr__(self, "_default", default)

    def match(self, e164: str, country: str) -> PriceMatch | None:
        """The entry pricing ``e164``: longest prefix, else ``country``, else the default."""
        size = len(e164)
        for length, prefixes in self._by_length:
            if length <= size:
                found = prefixes.get(e164[:length])
                if found is not None:
                    return found
        found = self._by_country.get(country)
        if found is not None:
            return found
        return self._default

    def price_for(self, e164: str, country: str) -> Money | None:
        """The per-segment price to ``e164`` (in ``country``), or ``None`` if not covered."""
        found = self.match(e164, country)
        return None if found is None else found.price


def parse_price(text: str) -> int:
    """A decimal string such as ``"0.0125"`` as exact micro-units (``12500``).

    Raises ``ValueError`` for anything that is not a finite, non-negative amount representable
    in micro-units (more than six significant decimal places), or an absurdly large one.
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"price {text!r} is negative")
    if not _DECIMAL.match(stripped):
        raise ValueError(f"price {text!r} is not a decimal number such as 0.0125")
    _, digits, raw_exponent = Decimal(stripped).as_tuple()
    exponent = int(raw_exponent)  # always an int: the pattern admits finite numbers only
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0:
        return 0
    # Work on the digits, not the Decimal context, so nothing is ever rounded.
    if len(digits) + exponent > 13:
        raise ValueError(f"price {text!r} is too large")
    shift = exponent + MICRO_PLACES
    scale: int = 10 ** abs(shift)
    if shift >= 0:
        micros = coefficient * scale
    else:
        micros, rest = divmod(coefficient, scale)
        if rest:
            raise ValueError(
                f"price {text!r} has more than {MICRO_PLACES} decimal places (micro-units)"
            )
    if micros > MAX_PRICE_MICROS:
        raise ValueError(f"price {text!r} is too large")
    return micros


def _key_of(prefix: str, country: str) -> str:
    """The entry key a row's ``prefix`` or ``country`` cell stands for."""
    if prefix and country:
        raise ValueError("give a prefix or a country, not both")
    if prefix:
        if prefix == DEFAULT_KEY:
            return DEFAULT_KEY
        digits = prefix.replace(" ", "")
        digits = digits[1:] if digits.startswith("+") else digits
        digits = digits[2:] if digits.startswith("00") else digits
        key = "+" + digits
        if not _PREFIX.match(key):
            raise ValueError(f"prefix {prefix!r} is not an E.164 prefix such as +4477")
        return key
    if country:
        if country == DEFAULT_KEY:
            return DEFAULT_KEY
        region = country.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"country {country!r} is not an ISO 3166 alpha-2 code such as GB")
        return region
    raise ValueError("a prefix or a country is required ('*' for the default price)")


def parse_price_list_csv(text: str, connector_id: str) -> PriceList:
    """Read a price list from CSV: a header, then one price per line.

    Columns (case-insensitive, in any order, others ignored): ``prefix`` and/or ``country``
    (each row fills exactly one; ``*`` is the default price), ``price`` (a decimal string per
    segment, at most six decimal places) and ``currency`` (the same ISO 4217 code on every row).
    Every bad line is reported at once in a ``PriceListError`` with its line number.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
            break
    if header is None:
        raise PriceListError([(1, "empty: a header row (prefix/country,price,currency) is needed")])
    header_line = reader.line_num
    missing = [name for name in ("price", "currency") if name not in header]
    if "prefix" not in header and "country" not in header:
        missing.insert(0, "prefix or country")
    if missing:
        raise PriceListError([(header_line, f"header lacks {', '.join(missing)}")])
    column: dict[str, int] = {
        name: header.index(name)
        for name in ("prefix", "country", "price", "currency")
        if name in header
    }

    def cell(row: list[str], name: str) -> str:
        index = column.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    problems: list[tuple[int, str]] = []
    entries: dict[str, int] = {}
    first_line: dict[str, int] = {}
    currency: str | None = None
    currency_line = 0
    for row in reader:
        line = reader.line_num
        if not any(value.strip() for value in row):
            continue
        try:
            key = _key_of(cell(row, "prefix"), cell(row, "country"))
            micros = parse_price(cell(row, "price"))
            row_currency = cell(row, "currency").upper()
            if not _CURRENCY.match(row_currency):
                raise ValueError(f"currency {cell(row, 'currency')!r} is not an ISO 4217 code")
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        if currency is None:
            currency, currency_line = row_currency, line
        elif row_currency != currency:
            problems.append(
                (line, f"currency {row_currency} differs from {currency} on line {currency_line}")
            )
            continue
        if key in entries:
            problems.append((line, f"{key} is already priced on line {first_line[key]}"))
            continue
        entries[key] = micros
        first_line[key] = line
    if problems:
        raise PriceListError(problems)
    if currency is None:
        raise PriceListError([(header_line, "no prices after the header")])
    return PriceList(connector_id, currency, entries)
