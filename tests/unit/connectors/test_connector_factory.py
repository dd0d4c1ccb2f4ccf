"""``connectors.factory``: one validator turns stored ``(type, options)`` into adapter settings."""

from __future__ import annotations

from typing import Any, cast

import pytest

from pigeon.connectors.cluster_quota import ClusterGate, ClusterQuotas
from pigeon.connectors.elsewhere import LinkHeldElsewhere
from pigeon.connectors.factory import ConnectorFactory, settings_for
from pigeon.connectors.http import GenericHttpConnector, GenericHttpSettings, TwilioStyleSettings
from pigeon.connectors.pacing import TokenBucket
from pigeon.connectors.smpp_client import InboundMessage
from pigeon.connectors.smpp_settings import SmppConnectorSettings
from pigeon.domain.connectors import MASK, masked
from pigeon.domain.errors import TemporaryFailure
from pigeon.domain.messages import Message
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.ports import Paced
from pigeon.testing import FakeClock

TWILIO = {"account_sid": "AC1", "auth_token": "secret-token"}


async def _receipts(receipt: DeliveryReceipt) -> None:
    """A receipt sink that drops everything."""


async def _inbound(message: InboundMessage) -> None:
    """An MO sink that drops everything."""


def test_json_lists_become_sets_and_status_maps_become_statuses() -> None:
    """Lists fill frozenset fields and status map values become receipt statuses."""
    settings = settings_for(
        "generic_http",
        "g",
        {
            "url": "https://carrier.example/send",
            "fields": {"to": "{to}"},
            "success_statuses": [200, 202],
            "receipt_status_map": {"OK": "DELIVRD"},
        },
    )
    assert isinstance(settings, GenericHttpSettings)
    assert settings.success_statuses == frozenset({200, 202})
    assert settings.receipt_status_map == {"OK": ReceiptStatus.DELIVRD}


def test_http_connectors_advertise_the_public_url_unless_they_set_their_own() -> None:
    """``callback_base_url`` defaults to the gateway's public URL; an explicit one wins."""
    default = settings_for("twilio", "tw", TWILIO, callback_base_url="https://sms.example")
    own = settings_for(
        "twilio",
        "tw",
        {**TWILIO, "callback_base_url": "https://other.example"},
        callback_base_url="https://sms.example",
    )
    assert isinstance(default, TwilioStyleSettings)
    assert default.callback_url("receipts") == "https://sms.example/v1/carriers/tw/receipts"
    assert own.callback_base_url == "https://other.example"


def test_smpp_options_ignore_the_price_file_key() -> None:
    """``prices`` is Pigeon's own key, not the adapter's."""
    options = {"host": "127.0.0.1", "port": 2775, "system_id": "me", "prices": "p.csv"}
    settings = settings_for("smpp", "s", options)
    assert isinstance(settings, SmppConnectorSettings)
    assert settings.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("kind", "options", "text"),
    [
        ("fax", {}, "type 'fax'"),
        ("twilio", {**TWILIO, "colour": "red"}, "unknown settings colour"),
        ("twilio", {**TWILIO, "id": "other"}, "unknown settings id"),
        ("twilio", {"account_sid": "AC1"}, "auth_token"),
        ("smpp", {"host": "h", "system_id": "me"}, "port"),
    ],
)
def test_bad_options_raise_value_error(kind: str, options: dict[str, Any], text: str) -> None:
    """Unknown types, unknown or missing settings and bad values are ``ValueError``s."""
    with pytest.raises(ValueError, match=text):
        settings_for(kind, "c", options)


def test_factory_builds_the_adapter_of_each_type() -> None:
    """The factory builds the adapter class of the type, not started."""
    factory = ConnectorFactory(FakeClock(), _receipts, _inbound)
    built = factory.build(
        "generic_http", "g", {"url": "https://carrier.example/send", "fields": {"to": "{to}"}}
    )
    assert isinstance(built, GenericHttpConnector)
    assert built.id == "g"
    assert not built.ready


def test_credentials_are_masked_at_any_depth() -> None:
    """Passwords, tokens, secrets and API keys read as the mask; other options are kept."""
    shown = masked(
        {"password": "p", "api_key": "k", "host": "h", "headers": {"X-Secret": "s"}, "token": ""}
    )
    assert shown == {
        "password": MASK,
        "api_key": MASK,
        "host": "h",
        "headers": {"X-Secret": MASK},
        "token": "",
    }


async def test_smpp_carriers_linked_elsewhere_are_routed_but_never_bound() -> None:
    """With ``smpp_links_elsewhere``, an SMPP carrier is a ``LinkHeldElsewhere``: ready as
    the other processes report, nothing to start, every submit a temporary failure; an HTTP
    carrier is still built for this process."""
    reported = {"carrier-a": True}
    factory = ConnectorFactory(
        FakeClock(), _receipts, _inbound, smpp_links_elsewhere=lambda c: reported.get(c, False)
    )
    options = {"host": "127.0.0.1", "port": 1, "system_id": "s", "password": "p"}
    carrier = factory.build("smpp", "carrier-a", options)
    assert isinstance(carrier, LinkHeldElsewhere)
    await carrier.start()
    assert carrier.ready
    reported["carrier-a"] = False
    assert not carrier.ready
    with pytest.raises(TemporaryFailure) as refused:
        await carrier.submit(cast("Message", None))
    assert refused.value.code == "connector_elsewhere"
    await carrier.stop()
    http = factory.build(
        "generic_http", "g", {"url": "https://carrier.example/send", "fields": {"to": "{to}"}}
    )
    assert isinstance(http, GenericHttpConnector)


def test_a_connector_starts_at_its_part_of_the_cap() -> None:
    """With ``rate_share``, a capped connector paces at that part of its cap; an uncapped one
    has no pacer."""
    factory = ConnectorFactory(FakeClock(), _receipts, _inbound, rate_share=0.25)
    options = {"host": "127.0.0.1", "port": 1, "system_id": "s", "password": "p"}
    capped = factory.build("smpp", "a", {**options, "throughput_per_second": 200})
    assert isinstance(capped, Paced)
    assert capped.pacing is not None
    assert (capped.pacing.cap, capped.pacing.rate) == (200, 50)
    uncapped = factory.build("smpp", "b", options)
    assert isinstance(uncapped, Paced)
    assert uncapped.pacing is None


async def test_with_cluster_quotas_a_capped_connector_passes_its_redis_gate() -> None:
    """With ``quotas`` (``redis_url``), a capped connector's pacer gets the gate of its own
    bucket at its whole cap, whatever part of it the process paces at; an uncapped one none."""
    quotas = ClusterQuotas("redis://127.0.0.1:1/0", prefix="p:")  # not reached here
    try:
        factory = ConnectorFactory(FakeClock(), _receipts, _inbound, rate_share=0.5, quotas=quotas)
        options = {"host": "127.0.0.1", "port": 1, "system_id": "s", "password": "p"}
        capped = factory.build("smpp", "a", {**options, "throughput_per_second": 200})
        assert isinstance(capped, Paced)
        pacing = capped.pacing
        assert isinstance(pacing, TokenBucket)
        assert isinstance(pacing.gate, ClusterGate)
        assert (pacing.gate.key, pacing.gate.cap, pacing.rate) == ("p:cap:a", 200, 100)
        http = factory.build("twilio", "b", {**TWILIO, "throughput_per_second": 30})
        assert isinstance(http, Paced)
        assert isinstance(http.pacing, TokenBucket)
        assert isinstance(http.pacing.gate, ClusterGate)
        assert http.pacing.gate.key == "p:cap:b"
        uncapped = factory.build("smpp", "c", options)
        assert isinstance(uncapped, Paced)
        assert uncapped.pacing is None
    finally:
        await quotas.close()
