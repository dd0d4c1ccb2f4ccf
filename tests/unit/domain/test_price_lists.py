"""Price lists: longest-prefix lookup, country and default prices, exact CSV import."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.errors import ValidationError
from pigeon.domain.price_lists import (
    DEFAULT_KEY,
    MAX_PRICE_MICROS,
    PriceList,
    PriceListError,
    parse_price,
    parse_price_list_csv,
)
from pigeon.domain.pricing import Money


def usd(micros: int) -> Money:
    return Money(micros, "USD")


UK = PriceList(
    "carrier_a",
    "USD",
    {"+44": 30_000, "+447": 20_000, "+4477": 10_000, "GB": 40_000, DEFAULT_KEY: 90_000},
)


def test_longest_prefix_wins() -> None:
    """+4477... takes the +4477 price over the shorter +447 and +44 prefixes."""
    assert UK.price_for("+447700900123", "GB") == usd(10_000)
    assert UK.price_for("+447800900123", "GB") == usd(20_000)
    assert UK.price_for("+442079460000", "GB") == usd(30_000)


def test_country_then_default_price_when_no_prefix_matches() -> None:
    """Without a matching prefix the country price applies, then the default price."""
    no_prefix = PriceList("c", "USD", {"GB": 40_000, DEFAULT_KEY: 90_000})
    assert no_prefix.price_for("+447700900123", "GB") == usd(40_000)
    assert no_prefix.price_for("+33612345678", "FR") == usd(90_000)


def test_uncovered_destination_has_no_price() -> None:
    """A list with neither a matching prefix, country nor default prices nothing."""
    only_uk = PriceList("c", "EUR", {"+44": 1})
    assert only_uk.price_for("+33612345678", "FR") is None


def test_match_says_which_entry_priced_the_destination() -> None:
    """The match names the entry and its kind, which explain shows."""
    assert UK.match("+447700900123", "GB") is not None
    found = UK.match("+447700900123", "GB")
    assert found is not None
    assert (found.key, found.kind) == ("+4477", "prefix")
    by_country = PriceList("c", "USD", {"GB": 5}).match("+447700900123", "GB")
    assert by_country is not None
    assert by_country.kind == "country"
    by_default = UK.match("+33612345678", "FR")
    assert by_default is not None
    assert by_default.kind == "default"


prefixes = st.text(alphabet="0123456789", min_size=1, max_size=6).map(lambda d: "+" + d)


@given(
    entries=st.dictionaries(prefixes, st.integers(0, 10**9), max_size=30),
    number=st.text(alphabet="0123456789", min_size=6, max_size=15),
)
def test_lookup_agrees_with_a_linear_scan(entries: dict[str, int], number: str) -> None:
    """The indexed lookup returns the price of the longest matching prefix, as a scan would."""
    e164 = "+" + number
    matching = [key for key in entries if e164.startswith(key)]
    expected = usd(entries[max(matching, key=len)]) if matching else None
    assert PriceList("c", "USD", entries).price_for(e164, "ZZ") == expected


@pytest.mark.parametrize(
    ("entries", "currency"),
    [
        ({"44": 1}, "USD"),
        ({"+44x": 1}, "USD"),
        ({"XX": 1}, "USD"),
        ({"+44": -1}, "USD"),
        ({"+44": 1.5}, "USD"),
        ({"+44": 1}, "usd"),
    ],
)
def test_price_list_rejects_bad_entries(entries: dict[str, object], currency: str) -> None:
    """Keys must be +prefixes, known countries or '*'; prices non-negative ints; ISO currency."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails for its own reason
        PriceList("c", currency, entries)  # type: ignore[arg-type]


def test_entries_cannot_be_changed_after_construction() -> None:
    """A price list is immutable: its entries are a read-only view of a private copy."""
    source = {"+44": 1}
    price_list = PriceList("c", "USD", source)
    source["+44"] = 2
    assert price_list.price_for("+447700900123", "GB") == usd(1)
    with pytest.raises(TypeError):
        price_list.entries["+44"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0.0125", 12_500),
        ("1", 1_000_000),
        ("0.000001", 1),
        ("0", 0),
        ("0.0125000", 12_500),
        ("12.", 12_000_000),
        (".5", 500_000),
        ("1e-3", 1_000),
        ("2.5E2", 250_000_000),
        (" 0.07 ", 70_000),
    ],
)
def test_prices_convert_exactly_to_micro_units(text: str, micros: int) -> None:
    """Decimal strings become integer micro-units exactly, with no float on the way."""
    assert parse_price(text) == micros


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("0.0000001", "more than 6 decimal places"),
        ("0.1234567", "more than 6 decimal places"),
        ("-0.01", "negative"),
        ("abc", "not a decimal"),
        ("NaN", "not a decimal"),
        ("Infinity", "not a decimal"),
        ("1_000", "not a decimal"),
        ("", "not a decimal"),
        ("0,05", "not a decimal"),
        ("1e30", "too large"),
        ("2000000", "too large"),
    ],
)
def test_bad_prices_are_rejected(text: str, complaint: str) -> None:
    """Inexact, negative, non-numeric and absurd prices raise ValueError saying why."""
    with pytest.raises(ValueError, match=complaint):
        parse_price(text)


@given(st.integers(0, MAX_PRICE_MICROS))
def test_any_micro_amount_round_trips_through_its_decimal_string(micros: int) -> None:
    """Money's own six-place decimal string parses back to the same micro-units."""
    assert parse_price(Money(micros, "USD").as_decimal_string()) == micros


def test_csv_import_reads_prefixes_countries_and_default() -> None:
    """A CSV with prefix and country columns becomes the same price list built by hand."""
    text = (
        "prefix,country,price,currency\n"
        "+4477,,0.0100,USD\n"
        "447,,0.02,usd\n"
        ",gb,0.04,USD\n"
        "*,,0.09,USD\n"
    )
    parsed = parse_price_list_csv(text, "carrier_a")
    assert parsed == PriceList(
        "carrier_a", "USD", {"+4477": 10_000, "+447": 20_000, "GB": 40_000, "*": 90_000}
    )
    assert parsed.price_for("+447700900123", "GB") == usd(10_000)


def test_csv_header_is_flexible_about_case_order_bom_and_extra_columns() -> None:
    """Header names are case-insensitive in any order; a BOM, blanks and extra columns pass."""
    text = "\ufeffCurrency, Price ,Country,Operator\n\nEUR,0.05,FR,Orange\n\nEUR,0.06,DE,\n"
    parsed = parse_price_list_csv(text, "c")
    assert parsed.currency == "EUR"
    assert dict(parsed.entries) == {"FR": 50_000, "DE": 60_000}


def test_csv_prefixes_are_normalised() -> None:
    """Prefixes may come with '+', '00', spaces or bare digits; all become +digits."""
    text = "prefix,price,currency\n+44 77,0.01,USD\n0033,0.02,USD\n49,0.03,USD\n"
    assert dict(parse_price_list_csv(text, "c").entries) == {
        "+4477": 10_000,
        "+33": 20_000,
        "+49": 30_000,
    }


def test_csv_errors_name_every_bad_line() -> None:
    """Every bad row is reported at once with its line number and reason."""
    text = (
        "prefix,country,price,currency\n"  # line 1
        "+44,,0.01,USD\n"  # 2: fine
        "+33,,0.1234567,USD\n"  # 3: seven places
        ",UK,0.01,USD\n"  # 4: UK is not ISO 3166
        "+44,,0.02,USD\n"  # 5: duplicate
        "+49,,0.02,EUR\n"  # 6: other currency
        "+1,GB,0.02,USD\n"  # 7: both prefix and country
        ",,0.02,USD\n"  # 8: neither
        "+34,,-1,USD\n"  # 9: negative
        "+35,,0.01,US\n"  # 10: bad currency
    )
    with pytest.raises(PriceListError) as caught:
        parse_price_list_csv(text, "c")
    lines = [line for line, _ in caught.value.problems]
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10]
    reasons = dict(caught.value.problems)
    assert "more than 6 decimal places" in reasons[3]
    assert "'UK'" in reasons[4]
    assert "already priced on line 2" in reasons[5]
    assert "differs from USD on line 2" in reasons[6]
    assert "not both" in reasons[7]
    assert "required" in reasons[8]
    assert "negative" in reasons[9]
    assert "ISO 4217" in reasons[10]
    assert "line 3:" in str(caught.value)


def test_csv_line_numbers_count_physical_lines() -> None:
    """Blank lines and quoted line breaks do not shift the reported line numbers."""
    text = 'prefix,price,currency,note\n\n+44,0.01,USD,"two\nlines"\n+33,oops,USD,\n'
    with pytest.raises(PriceListError) as caught:
        parse_price_list_csv(text, "c")
    assert caught.value.problems[0][0] == 5


@pytest.mark.parametrize(
    ("text", "line", "complaint"),
    [
        ("", 1, "header row"),
        ("\n\n", 1, "header row"),
        ("+44,0.01,USD\n", 1, "header lacks prefix or country, price, currency"),
        ("prefix,price\n+44,0.01\n", 1, "header lacks currency"),
        ("prefix,price,currency\n", 1, "no prices"),
        ("\nprefix,price,currency\n\n", 2, "no prices"),
    ],
)
def test_csv_needs_a_header_and_rows(text: str, line: int, complaint: str) -> None:
    """A missing or incomplete header, or a file without prices, is an error at its line."""
    with pytest.raises(PriceListError) as caught:
        parse_price_list_csv(text, "c")
    assert caught.value.problems[0][0] == line
    assert complaint in caught.value.problems[0][1]


def test_price_list_error_is_a_value_error_and_a_422() -> None:
    """Plain callers catch ValueError; the API maps it as a validation error with a code."""
    with pytest.raises(PriceListError) as caught:
        parse_price_list_csv("prefix,price,currency\n+44,x,USD\n", "c")
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.code == "invalid_price_list"
    assert caught.value.status == 422


def test_many_errors_are_summarised_in_the_message() -> None:
    """The message shows the first twenty problems and counts the rest; all are kept."""
    rows = "".join(f"+{n},bad,USD\n" for n in range(30))
    with pytest.raises(PriceListError) as caught:
        parse_price_list_csv("prefix,price,currency\n" + rows, "c")
    assert len(caught.value.problems) == 30
    assert "and 10 more" in str(caught.value)
