"""Pure parts of the HTTP carrier connectors: parsing, templates, signatures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from pigeon.connectors.http.base import (
    BadCallback,
    CarrierCallback,
    international,
    lookup,
    retry_after_seconds,
    url_variants,
)
from pigeon.connectors.http.generic import GenericHttpSettings, render
from pigeon.connectors.http.infobip import InfobipStyleSettings
from pigeon.connectors.http.twilio import TwilioStyleSettings, twilio_signature

SECRET = "s3cr3t-never-shown"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    """Retry-After is read as delay-seconds or an HTTP date; nonsense gives None."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(value, now) == seconds


def test_lookup_follows_dotted_paths_through_objects_and_arrays() -> None:
    """messages.0.id finds the id; absent keys, bad indexes and wrong types give None."""
    data = {"messages": [{"id": 7, "status": {"groupName": "PENDING"}}], "n": None}
    assert lookup(data, "messages.0.id") == 7
    assert lookup(data, "messages.-1.status.groupName") == "PENDING"
    assert lookup(data, "messages.1.id") is None
    assert lookup(data, "messages.x") is None
    assert lookup(data, "n.id") is None
    assert lookup(data, "") is data
    assert lookup("text", "a") is None


def test_international_adds_plus_to_long_digit_strings_only() -> None:
    """Bare MSISDNs get their + back; short codes and alphanumerics stay as they are."""
    assert international("447700900123") == "+447700900123"
    assert international("+447700900123") == "+447700900123"
    assert international("12345") == "12345"
    assert international("ACME") == "ACME"


def test_url_variants_add_and_remove_the_default_port() -> None:
    """An https URL is also tried with :443, one with :443 without it, others as given."""
    assert url_variants("https://a.example/x?y=1") == [
        "https://a.example/x?y=1",
        "https://a.example:443/x?y=1",
    ]
    assert url_variants("https://a.example:443/x") == [
        "https://a.example:443/x",
        "https://a.example/x",
    ]
    assert url_variants("http://127.0.0.1:8080/x") == ["http://127.0.0.1:8080/x"]


def test_render_fills_placeholders_keeps_numbers_and_unescapes_braces() -> None:
    """Strings are filled, a lone {segments} stays an int, {{ }} are literal braces."""
    values = {"to": "+4479", "body": "héllo {x}", "segments": 2, "to_digits": "4479"}
    template = {
        "dest": ["{to}"],
        "text": "{body}",
        "parts": "{segments}",
        "note": "{{literal}} {segments} part(s)",
        "flag": True,
    }
    assert render(template, values) == {
        "dest": ["+4479"],
        "text": "héllo {x}",
        "parts": 2,
        "note": "{literal} 2 part(s)",
        "flag": True,
    }
    assert render("https://c.example/{to}?t={body}", values, quote_values=True) == (
        "https://c.example/%2B4479?t=h%C3%A9llo%20%7Bx%7D"
    )


def test_generic_settings_refuse_unknown_placeholders_and_bad_shapes() -> None:
    """Typos in placeholders, nested form fields and missing credentials fail at start."""
    base: dict[str, Any] = {"id": "g", "url": "https://c.example/send"}
    with pytest.raises(ValueError, match="unknown placeholders: 'too'"):
        GenericHttpSettings(**base, fields={"to": "{too}"})
    with pytest.raises(ValueError, match="flat"):
        GenericHttpSettings(**base, fields={"to": {"n": "{to}"}}, body_format="form")
    with pytest.raises(ValueError, match="token"):
        GenericHttpSettings(**base, fields={}, auth="bearer")
    with pytest.raises(ValueError, match="url"):
        GenericHttpSettings(id="g", url="ftp://c.example/{to}", fields={})
    with pytest.raises(ValueError, match="2xx"):
        GenericHttpSettings(**base, fields={}, success_statuses=frozenset({302}))


def test_settings_reprs_hide_every_credential() -> None:
    """Tokens, passwords, API keys and callback secrets are absent from settings' reprs."""
    settings = [
        TwilioStyleSettings(
            id="t", account_sid="AC1", auth_token=SECRET, api_key_sid="SK1", api_key_secret=SECRET
        ),
        InfobipStyleSettings(
            id="i", base_url="https://x.api.example", api_key=SECRET, callback_secret=SECRET
        ),
        GenericHttpSettings(
            id="g",
            url=f"https://c.example/send?key={SECRET}",
            fields={"k": SECRET},
            headers={"X-Key": SECRET},
            auth="basic",
            username="u",
            password=SECRET,
            token=SECRET,
            callback_hmac_secret=SECRET,
        ),
    ]
    for item in settings:
        assert SECRET not in repr(item)
        assert SECRET not in str(item)


@st.composite
def _form(draw: st.DrawFn) -> MultiDict[str]:
    text = st.text(st.characters(codec="utf-8"), max_size=12)
    pairs = draw(st.lists(st.tuples(text, text), max_size=8))
    return MultiDict(pairs)


@given(
    token=st.text(min_size=1, max_size=32),
    path=st.text(st.characters(codec="ascii", categories=("L", "N")), max_size=10),
    params=_form(),
)
def test_twilio_signature_matches_the_reference_validator(
    token: str, path: str, params: MultiDict[str]
) -> None:
    """Our X-Twilio-Signature equals the twilio package's for any URL and form fields."""
    url = f"https://pigeon.example/v1/carriers/tw/receipts/{path}?a=1"
    ours = twilio_signature(token, url, {k: params.getall(k) for k in params})
    assert ours == RequestValidator(token).compute_signature(url, params)


def test_carrier_callback_reads_headers_case_insensitively_and_parses_lazily() -> None:
    """Header names match in any case; form, query and JSON views parse on demand."""
    callback = CarrierCallback(
        "post",
        "https://p.example/v1/carriers/c/receipts?token=abc&x=1",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "X-Thing": "v"},
        b"a=1&a=2&b=&c=%C3%A9",
    )
    assert callback.method == "POST"
    assert callback.header("x-thing") == callback.header("X-THING") == "v"
    assert callback.content_type == "application/x-www-form-urlencoded"
    assert callback.form == {"a": ("1", "2"), "b": ("",), "c": ("é",)}
    assert callback.query["token"] == ("abc",)
    assert callback.field("a") == "1"
    assert callback.field("x") == "1"
    assert callback.field("missing") is None
    with pytest.raises(BadCallback):
        _ = callback.json


def test_carrier_callback_refuses_unreadable_bodies() -> None:
    """Non-UTF-8 forms and non-JSON bodies raise BadCallback (a ValueError)."""
    callback = CarrierCallback("POST", "https://p.example/x", {}, b"\xff\xfe=1")
    with pytest.raises(BadCallback):
        _ = callback.form
    with pytest.raises(ValueError, match="JSON"):
        _ = callback.json
