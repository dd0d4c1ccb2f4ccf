"""Which permanent HTTP carrier refusals blame the message and which blame the route."""

from __future__ import annotations

import pytest

from pigeon.connectors.http.base import HttpAnswer, HttpCarrierClient, HttpConnectorSettings
from pigeon.connectors.http.twilio import TwilioStyleSettings
from pigeon.domain.errors import Fault, PermanentFailure

TWILIO = TwilioStyleSettings(id="tw", account_sid="AC1", auth_token="token")


@pytest.mark.parametrize(
    ("code", "fault"),
    [
        ("21211", Fault.MESSAGE),
        ("21614", Fault.MESSAGE),
        ("21408", Fault.ROUTE),
        (None, Fault.ROUTE),
    ],
)
def test_twilio_style_codes_decide_the_fault(code: str | None, fault: Fault) -> None:
    """A 400 with Twilio's invalid-number codes fails the message; others fail over."""
    error = HttpCarrierClient(TWILIO).error_for(HttpAnswer(400, {}, b""), carrier_code=code)
    assert isinstance(error, PermanentFailure)
    assert error.fault is fault


def test_generic_settings_blame_the_route_unless_told() -> None:
    """Without configured message-fault codes every 4xx refusal fails over."""
    plain = HttpCarrierClient(HttpConnectorSettings(id="g"))
    told = HttpCarrierClient(HttpConnectorSettings(id="g", message_fault_codes=frozenset({"E1"})))
    answer = HttpAnswer(422, {}, b"")
    assert getattr(plain.error_for(answer, carrier_code="E1"), "fault", None) is Fault.ROUTE
    assert getattr(told.error_for(answer, carrier_code="E1"), "fault", None) is Fault.MESSAGE


def test_auth_refusals_blame_the_route() -> None:
    """A 401 that is configured permanent is still the route's fault (our credentials)."""
    settings = HttpConnectorSettings(id="g", auth_failure_permanent=True)
    error = HttpCarrierClient(settings).error_for(HttpAnswer(401, {}, b""))
    assert isinstance(error, PermanentFailure)
    assert error.fault is Fault.ROUTE
