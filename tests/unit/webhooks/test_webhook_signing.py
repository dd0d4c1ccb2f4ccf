"""Standard Webhooks signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.webhooks.signing import (
    InvalidSignature,
    hmac_sha256,
    new_secret,
    sign,
    signature_headers,
    verify,
)

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
MSG_ID = "evt_01JD0000000000000000000000"
NOW = 1_700_000_000
BODY = b'{"id":"evt_01JD0000000000000000000000","type":"message.delivered"}'


def _independent_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_") :])
    content = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


# --- secrets ---------------------------------------------------------------------------------


def test_new_secret_is_whsec_prefixed_base64_of_24_to_32_bytes() -> None:
    """A new secret is ``whsec_`` followed by the base64 of 24 to 32 random bytes."""
    secret = new_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert 24 <= len(key) <= 32


def test_new_secrets_differ() -> None:
    """Two new secrets are never the same."""
    assert len({new_secret() for _ in range(50)}) == 50


# --- signing ---------------------------------------------------------------------------------


def test_sign_matches_an_independently_computed_hmac() -> None:
    """The signature is v1 and the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""
    expected = _independent_signature(SECRET, MSG_ID, NOW, BODY)
    assert sign(SECRET, MSG_ID, NOW, BODY) == f"v1,{expected}"


def test_sign_matches_the_published_standard_webhooks_example() -> None:
    """Signing reproduces the example used by Standard Webhooks libraries' test suites."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_rejects_a_secret_that_is_not_base64() -> None:
    """A malformed secret is a ValueError rather than a wrong signature."""
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not*base64!", MSG_ID, NOW, BODY)


def test_signature_headers_carry_id_timestamp_signature_and_content_type() -> None:
    """The header set has the Standard Webhooks headers and a JSON content type."""
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY)
    assert headers == {
        "content-type": "application/json",
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign(SECRET, MSG_ID, NOW, BODY),
    }


# --- verification ----------------------------------------------------------------------------


def test_verify_accepts_its_own_signature() -> None:
    """verify accepts the headers that signature_headers produced for the same body."""
    verify(SECRET, signature_headers(SECRET, MSG_ID, NOW, BODY), BODY, now=NOW)


def test_verify_looks_headers_up_case_insensitively() -> None:
    """Header names in any case are found, as HTTP requires."""
    headers = {k.title(): v for k, v in signature_headers(SECRET, MSG_ID, NOW, BODY).items()}
    verify(SECRET, headers, BODY, now=NOW)


def test_verify_rejects_a_tampered_body() -> None:
    """Changing one byte of the body makes the signature fail."""
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(InvalidSignature, match="no matching"):
        verify(SECRET, headers, BODY.replace(b"delivered", b"failed"), now=NOW)


def test_verify_rejects_a_tampered_id() -> None:
    """Changing the webhook-id makes the signature fail, since the id is signed."""
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY) | {"webhook-id": "evt_other"}
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers, BODY, now=NOW)


def test_verify_rejects_a_shifted_timestamp_within_tolerance() -> None:
    """Changing the timestamp makes the signature fail, since the timestamp is signed."""
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY) | {"webhook-timestamp": str(NOW + 1)}
    with pytest.raises(InvalidSignature, match="no matching"):
        verify(SECRET, headers, BODY, now=NOW)


def test_verify_rejects_the_wrong_secret() -> None:
    """A signature made with another secret does not verify."""
    headers = signature_headers(OTHER_SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(InvalidSignature, match="no matching"):
        verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("age", [0, 1, 299, 300, -1, -300])
def test_verify_accepts_timestamps_within_tolerance(age: int) -> None:
    """Timestamps up to 300 s before or after now are accepted."""
    headers = signature_headers(SECRET, MSG_ID, NOW - age, BODY)
    verify(SECRET, headers, BODY, now=NOW)


def test_verify_rejects_an_old_timestamp() -> None:
    """A correctly signed webhook older than the tolerance is rejected (replay protection)."""
    headers = signature_headers(SECRET, MSG_ID, NOW - 301, BODY)
    with pytest.raises(InvalidSignature, match="too old"):
        verify(SECRET, headers, BODY, now=NOW)


def test_verify_rejects_a_future_timestamp() -> None:
    """A correctly signed webhook dated further ahead than the tolerance is rejected."""
    headers = signature_headers(SECRET, MSG_ID, NOW + 301, BODY)
    with pytest.raises(InvalidSignature, match="future"):
        verify(SECRET, headers, BODY, now=NOW)


def test_verify_honours_a_custom_tolerance() -> None:
    """The tolerance argument narrows the accepted window."""
    headers = signature_headers(SECRET, MSG_ID, NOW - 10, BODY)
    verify(SECRET, headers, BODY, now=NOW, tolerance=10)
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers, BODY, now=NOW, tolerance=9)


@pytest.mark.parametrize("value", ["", "abc", "1.5e9", "-1700000000", "\uff11\uff17\uff10\uff10"])
def test_verify_rejects_a_timestamp_that_is_not_unix_seconds(value: str) -> None:
    """A timestamp that is not plain ASCII decimal digits (even full-width ones) is rejected."""
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY) | {"webhook-timestamp": value}
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_rejects_a_missing_header(missing: str) -> None:
    """Each of the three Standard Webhooks headers is required."""
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY)
    del headers[missing]
    with pytest.raises(InvalidSignature, match=f"missing {missing}"):
        verify(SECRET, headers, BODY, now=NOW)


def test_verify_accepts_any_matching_signature_among_several() -> None:
    """With several space-separated signatures, one matching v1 signature suffices."""
    good = sign(SECRET, MSG_ID, NOW, BODY)
    stale = sign(OTHER_SECRET, MSG_ID, NOW, BODY)
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY)
    for value in (f"{stale} {good}", f"{good} {stale}", f"v1a,abc= {stale}  {good}"):
        verify(SECRET, headers | {"webhook-signature": value}, BODY, now=NOW)


def test_verify_rejects_several_signatures_none_matching() -> None:
    """Several signatures, none of them right, are rejected."""
    stale = sign(OTHER_SECRET, MSG_ID, NOW, BODY)
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY)
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers | {"webhook-signature": f"{stale} v1,AAAA v1,"}, BODY, now=NOW)


def test_verify_ignores_a_correct_signature_under_another_version() -> None:
    """Only v1 entries count: the right signature labelled v2 is not accepted."""
    digest = sign(SECRET, MSG_ID, NOW, BODY).removeprefix("v1,")
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY) | {"webhook-signature": f"v2,{digest}"}
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers, BODY, now=NOW)


def test_verify_rejects_a_bare_signature_without_version() -> None:
    """A signature without its ``v1,`` prefix does not count."""
    digest = sign(SECRET, MSG_ID, NOW, BODY).removeprefix("v1,")
    headers = signature_headers(SECRET, MSG_ID, NOW, BODY) | {"webhook-signature": digest}
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers, BODY, now=NOW)


def test_invalid_signature_is_a_value_error() -> None:
    """InvalidSignature can be caught as ValueError."""
    assert issubclass(InvalidSignature, ValueError)


@given(
    body=st.binary(max_size=4096),
    msg_id=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s.isprintable()),
    timestamp=st.integers(min_value=0, max_value=2**40),
    skew=st.integers(min_value=-300, max_value=300),
    key=st.binary(min_size=1, max_size=64),
)
def test_verify_accepts_sign_for_any_input(
    body: bytes, msg_id: str, timestamp: int, skew: int, key: bytes
) -> None:
    """For any body, id, timestamp, key and clock skew within tolerance, verify(sign(x)) holds."""
    secret = "whsec_" + base64.b64encode(key).decode()
    headers = signature_headers(secret, msg_id, timestamp, body)
    assert headers["webhook-signature"] == "v1," + _independent_signature(
        secret, msg_id, timestamp, body
    )
    verify(secret, headers, body, now=timestamp + skew)


@given(body=st.binary(max_size=256), flip=st.integers(min_value=0, max_value=255))
def test_verify_rejects_any_changed_body(body: bytes, flip: int) -> None:
    """Any change to the body (here: one appended byte) is detected."""
    headers = signature_headers(SECRET, MSG_ID, NOW, body)
    with pytest.raises(InvalidSignature):
        verify(SECRET, headers, body + bytes([flip]), now=NOW)


@given(key=st.binary(max_size=200), message=st.binary(max_size=2000))
def test_hmac_sha256_equals_the_standard_librarys(key: bytes, message: bytes) -> None:
    """The HMAC from each key's kept states is the standard library's, for keys shorter than,
    as long as and longer than a SHA-256 block, the empty key included."""
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")
    assert hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()
