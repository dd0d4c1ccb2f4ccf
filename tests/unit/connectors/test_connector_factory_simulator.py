"""Simulator connectors as data: options, validation and the built adapter."""

from __future__ import annotations

import pytest

from pigeon.connectors.factory import ConnectorFactory, settings_for
from pigeon.connectors.simulator import Outcome, SimulatorSettings
from pigeon.connectors.smpp_client import InboundMessage
from pigeon.domain.receipts import DeliveryReceipt
from pigeon.testing import FakeClock


async def _receipts(receipt: DeliveryReceipt) -> None:
    """A receipt sink that drops everything."""


async def _inbound(message: InboundMessage) -> None:
    """An MO sink that drops everything."""


def test_simulator_options_add_prefix_outcomes_to_the_magic_numbers() -> None:
    """Prefixes add to the magic numbers; the default outcome and receipt delay are set."""
    settings = settings_for(
        "simulator",
        "sim2",
        {"receipt_delay_seconds": 0.5, "prefixes": {"+4477": "undelivered"}, "default": "expired"},
    )
    assert isinstance(settings, SimulatorSettings)
    assert settings.receipt_delay_seconds == 0.5
    assert settings.outcome_for("+447700900123") is Outcome.UNDELIVERED
    assert settings.outcome_for("+14155550110") is Outcome.UNDELIVERED  # a magic number
    assert settings.outcome_for("+33612345678") is Outcome.EXPIRED


@pytest.mark.parametrize(
    "options",
    [
        {"default": "teleported"},
        {"prefixes": {"+1": "nope"}},
        {"receipt_delay_seconds": -1},
        {"receipt_delay_seconds": "soon"},
        {"colour": "blue"},
    ],
)
def test_bad_simulator_options_are_refused(options: dict[str, object]) -> None:
    """Unknown outcomes, negative or non-numeric delays and unknown settings are ValueErrors."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message differs by case; the type is the contract
        settings_for("simulator", "sim2", options)


def test_the_factory_builds_a_simulator_only_with_a_queue() -> None:
    """A simulator needs the job queue for its receipts; without one it is refused."""
    without = ConnectorFactory(FakeClock(), _receipts, _inbound)
    with pytest.raises(ValueError, match="job queue"):
        without.build("simulator", "sim2", {})
