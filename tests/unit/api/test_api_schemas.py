"""Strict decoding of request bodies and the problems it raises."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.api.problems import PROBLEMS, ApiError
from pigeon.api.schemas import (
    CreateWebhookEndpointRequest,
    SendMessageRequest,
    decode_body,
)
from pigeon.domain.errors import PigeonError, ValidationError
from pigeon.domain.messages import Category


def _problem(raw: bytes, schema: type = SendMessageRequest) -> PigeonError:
    with pytest.raises(PigeonError) as caught:
        decode_body(raw, schema)
    assert caught.value.code in PROBLEMS
    return caught.value


def test_valid_body_decodes_with_from_renamed() -> None:
    """JSON `from` lands in `sender` and the category defaults to transactional."""
    body = decode_body(b'{"to": "+447400123456", "from": "Acme", "body": "hi"}', SendMessageRequest)
    request = body.to_send_request()
    assert request.sender == "Acme"
    assert request.category is Category.TRANSACTIONAL


def test_every_field_of_the_body_lands_in_its_field_of_the_request() -> None:
    """Each field a body gives is the request's field of that name (the request is made by
    position: no two fields swapped)."""
    raw = (
        b'{"to": "+447400123456", "body": "hi", "country": "GB", "from": "Acme",'
        b' "category": "otp", "callback_url": "https://example.com/cb", "client_ref": "r1",'
        b' "send_at": "2030-01-02T03:04:05Z", "validity_seconds": 600}'
    )
    request = decode_body(raw, SendMessageRequest).to_send_request()
    assert (request.to, request.body, request.country) == ("+447400123456", "hi", "GB")
    assert (request.sender, request.category) == ("Acme", Category.OTP)
    assert (request.callback_url, request.client_ref) == ("https://example.com/cb", "r1")
    assert request.send_at is not None
    assert request.send_at.isoformat() == "2030-01-02T03:04:05+00:00"
    assert request.validity_seconds == 600


def test_unknown_field_is_named() -> None:
    """A field the schema does not know is a 422 unknown_field naming it."""
    error = _problem(b'{"to": "+447400123456", "colour": "red"}')
    assert (error.status, error.code, error.field) == (422, "unknown_field", "colour")


def test_wrong_type_is_invalid_field() -> None:
    """A wrong JSON type is a 422 invalid_field naming the field."""
    error = _problem(b'{"to": 447400123456}')
    assert (error.status, error.code, error.field) == (422, "invalid_field", "to")


def test_wrong_type_inside_a_list_names_the_path() -> None:
    """A wrong item type in a list names the field and the index."""
    error = _problem(b'{"url": "https://a.example", "events": [1]}', CreateWebhookEndpointRequest)
    assert (error.code, error.field) == ("invalid_field", "events[0]")


def test_missing_required_field_is_named() -> None:
    """An absent required field is a 422 missing_field naming it."""
    error = _problem(b'{"body": "hi"}')
    assert (error.status, error.code, error.field) == (422, "missing_field", "to")


def test_malformed_json_is_400() -> None:
    """Bytes that are not JSON are a 400 malformed_json."""
    error = _problem(b'{"to": ')
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (400, "malformed_json")


@pytest.mark.parametrize("raw", [b"", b"  \n", b"[]", b'"text"', b"null", b"42"])
def test_empty_or_non_object_body_is_invalid_request(raw: bytes) -> None:
    """An empty body or a JSON value that is not an object is a 422 invalid_request."""
    error = _problem(raw)
    assert (error.status, error.code, error.field) == (422, "invalid_request", None)


def test_unknown_category_is_invalid_field() -> None:
    """A category outside otp/transactional/marketing is a 422 invalid_field."""
    error = _problem(b'{"to": "+447400123456", "category": "spam"}')
    assert (error.code, error.field) == ("invalid_field", "category")


def test_nul_character_is_refused() -> None:
    """A NUL character in a text field is a 422 invalid_field (it cannot be stored)."""
    error = _problem(b'{"to": "+447400123456", "from": "A\\u0000"}')
    assert (error.code, error.field) == ("invalid_field", "from")


@given(body=st.text(), sender=st.text(max_size=11))
def test_nul_is_refused_exactly_when_a_decoded_text_holds_one(body: str, sender: str) -> None:
    """Whatever the texts and however they are escaped, a NUL in one is refused, else nothing."""
    raw = msgspec.json.encode({"to": "+447400123456", "from": sender, "body": body})
    if "\x00" in body or "\x00" in sender:
        error = _problem(raw)
        assert error.code == "invalid_field"
    else:
        decoded = decode_body(raw, SendMessageRequest)
        assert (decoded.body, decoded.sender) == (body, sender)


def test_template_is_not_supported_yet() -> None:
    """A template, whatever its shape, is a 422 unsupported_field."""
    body = decode_body(b'{"to": "+447400123456", "template": {"id": "t"}}', SendMessageRequest)
    with pytest.raises(ValidationError) as caught:
        body.to_send_request()
    assert (caught.value.code, caught.value.field) == ("unsupported_field", "template")


@pytest.mark.parametrize("price", ['"0.05"', '"12"', "0", "0.5", "3"])
def test_max_price_accepts_non_negative_decimals(price: str) -> None:
    """max_price may be a decimal string or a number; it is accepted and ignored."""
    raw = f'{{"to": "+447400123456", "body": "hi", "max_price": {price}}}'.encode()
    assert decode_body(raw, SendMessageRequest).to_send_request().body == "hi"


@pytest.mark.parametrize("price", ['"abc"', '"-1"', '"NaN"', '"Infinity"', "-0.5", '""'])
def test_max_price_refuses_non_decimals(price: str) -> None:
    """A max_price that is not a non-negative decimal is a 422 invalid_field."""
    raw = f'{{"to": "+447400123456", "max_price": {price}}}'.encode()
    body = decode_body(raw, SendMessageRequest)
    with pytest.raises(ValidationError) as caught:
        body.to_send_request()
    assert (caught.value.code, caught.value.field) == ("invalid_field", "max_price")


def test_max_price_refuses_booleans() -> None:
    """true is not a price: a 422 invalid_field from the decoder."""
    error = _problem(b'{"to": "+447400123456", "max_price": true}')
    assert (error.code, error.field) == ("invalid_field", "max_price")


def test_client_ref_is_at_most_255_characters() -> None:
    """A client_ref over 255 characters is a 422 invalid_field."""
    raw = b'{"to": "+447400123456", "client_ref": "' + b"x" * 256 + b'"}'
    error = _problem(raw)
    assert (error.code, error.field) == ("invalid_field", "client_ref")
