"""Builds connectors from their stored ``(type, options)``: the one validator of their options.

``pigeon.toml``'s ``[[connectors]]`` tables, the REST API and the CLI all go through
:class:`ConnectorFactory`, so they accept and refuse exactly the same options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pigeon.config import CONNECTOR_COMMON_KEYS
from pigeon.connectors.cluster_quota import ClusterQuotas
from pigeon.connectors.elsewhere import LinkHeldElsewhere
from pigeon.connectors.http import (
    CarrierCallback,
    GenericHttpConnector,
    GenericHttpSettings,
    HttpCarrierConnector,
    InfobipStyleConnector,
    InfobipStyleSettings,
    TwilioStyleConnector,
    TwilioStyleSettings,
)
from pigeon.connectors.pacing import TokenBucket
from pigeon.connectors.simulator import (
    MAGIC_PREFIXES,
    Outcome,
    SimulatorConnector,
    SimulatorSettings,
)
from pigeon.connectors.smpp_client import MoSink, SmppClientConnector
from pigeon.connectors.smpp_settings import SmppConnectorSettings
from pigeon.domain.receipts import ReceiptStatus
from pigeon.ports import (
    CarrierAnswer,
    CarrierRequest,
    Clock,
    Connector,
    JobQueue,
    Paced,
    ReceiptSink,
)

__all__ = ["ConnectorFactory", "answer_callback", "settings_for"]

_SETTINGS: dict[str, type[Any]] = {
    "simulator": SimulatorSettings,
    "smpp": SmppConnectorSettings,
    "generic_http": GenericHttpSettings,
    "twilio": TwilioStyleSettings,
    "infobip": InfobipStyleSettings,
}


def settings_for(
    connector_type: str,
    connector_id: str,
    options: Mapping[str, Any],
    *,
    callback_base_url: str | None = None,
) -> Any:
    """The adapter settings ``options`` describe; ``ValueError`` naming what is wrong.

    JSON and TOML have no sets: lists become the ``frozenset`` fields that need them, and
    ``receipt_status_map`` values become receipt statuses. HTTP connectors advertise
    ``callback_base_url`` (the gateway's public URL) unless their options set their own.
    """
    kind = _SETTINGS.get(connector_type)
    if kind is None:
        raise ValueError(f"type {connector_type!r} is not one of {', '.join(sorted(_SETTINGS))}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    values = {k: v for k, v in options.items() if k not in CONNECTOR_COMMON_KEYS}
    unknown = sorted(set(values) - set(fields) | ({"id"} & set(values)))
    if unknown:
        raise ValueError(f"unknown settings {', '.join(unknown)}")
    if kind is SimulatorSettings:
        return _simulator_settings(values)
    for name, value in list(values.items()):
        annotation = str(fields[name].type)
        if "frozenset" in annotation and isinstance(value, list | tuple):
            values[name] = frozenset(value)
        elif name == "receipt_status_map" and isinstance(value, Mapping):
            values[name] = {str(k): ReceiptStatus(v) for k, v in value.items()}
    if "callback_base_url" in fields and "callback_base_url" not in values and callback_base_url:
        values["callback_base_url"] = callback_base_url
    try:
        return kind(id=connector_id, **values)
    except TypeError as exc:
        raise ValueError(str(exc).split(".__init__() ", 1)[-1]) from exc


def _simulator_settings(values: Mapping[str, Any]) -> SimulatorSettings:
    """A simulator's settings: ``receipt_delay_seconds``, ``prefixes`` (destination prefix ->
    outcome, added to the magic numbers) and the ``default`` outcome."""
    try:
        prefixes = dict(MAGIC_PREFIXES)
        for prefix, outcome in dict(values.get("prefixes", {})).items():
            prefixes[str(prefix)] = Outcome(outcome)
        default = Outcome(values.get("default", Outcome.DELIVERED))
        delay = float(values.get("receipt_delay_seconds", 1.0))
    except (TypeError, ValueError) as exc:
        outcomes = ", ".join(o.value for o in Outcome)
        raise ValueError(f"{exc} (outcomes: {outcomes})") from exc
    if delay < 0:
        raise ValueError("receipt_delay_seconds must not be negative")
    return SimulatorSettings(receipt_delay_seconds=delay, prefixes=prefixes, default=default)


class ConnectorFactory:
    """``ports.ConnectorBuilder``: every connector type, wired to the gateway's sinks."""

    def __init__(
        self,
        clock: Clock,
        receipt_sink: ReceiptSink,
        mo_sink: MoSink,
        *,
        callback_base_url: str | None = None,
        queue: JobQueue | None = None,
        smpp_links_elsewhere: Callable[[str], bool] | None = None,
        rate_share: float = 1.0,
        quotas: ClusterQuotas | None = None,
    ) -> None:
        self._queue = queue
        #: Where each capped connector's submits also take their tokens, across processes
        #: and nodes (ADR 41); ``None``: this process paces alone.
        self._quotas = quotas
        #: The part of each cap (``throughput_per_second``) a connector built here starts at.
        self._rate_share = rate_share
        #: Set in a process whose SMPP carriers other processes bind (``serve`` with worker
        #: processes): whether a carrier's link is ready there; its connectors are then
        #: ``LinkHeldElsewhere``.
        self._smpp_elsewhere = smpp_links_elsewhere
        self._clock = clock
        self._receipt_sink = receipt_sink
        self._mo_sink = mo_sink
        self._callback_base_url = callback_base_url

    def check(self, connector_type: str, connector_id: str, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` unless ``options`` describe a valid connector."""
        settings_for(
            connector_type, connector_id, options, callback_base_url=self._callback_base_url
        )

    def build(
        self, connector_type: str, connector_id: str, options: Mapping[str, Any]
    ) -> Connector:
        """A new connector (not started), pacing at its part of its cap."""
        connector = self._build(connector_type, connector_id, options)
        pacing = connector.pacing if isinstance(connector, Paced) else None
        if pacing is not None and self._rate_share < 1:
            pacing.set_rate(pacing.cap * self._rate_share)
        if isinstance(pacing, TokenBucket) and self._quotas is not None:
            pacing.gate = self._quotas.gate(connector_id, pacing.cap)
        return connector

    def _build(
        self, connector_type: str, connector_id: str, options: Mapping[str, Any]
    ) -> Connector:
        settings = settings_for(
            connector_type, connector_id, options, callback_base_url=self._callback_base_url
        )
        if isinstance(settings, SimulatorSettings):
            if self._queue is None:
                raise ValueError("simulator connectors need the job queue")
            return SimulatorConnector(connector_id, self._queue, self._clock, settings)
        if isinstance(settings, SmppConnectorSettings):
            if self._smpp_elsewhere is not None:
                return LinkHeldElsewhere(connector_id, self._smpp_elsewhere)
            return SmppClientConnector(settings, self._receipt_sink, self._clock, self._mo_sink)
        if isinstance(settings, TwilioStyleSettings):
            return TwilioStyleConnector(settings, self._receipt_sink, self._clock, self._mo_sink)
        if isinstance(settings, InfobipStyleSettings):
            return InfobipStyleConnector(settings, self._receipt_sink, self._clock, self._mo_sink)
        return GenericHttpConnector(settings, self._receipt_sink, self._clock, self._mo_sink)


async def answer_callback(connector: object, request: CarrierRequest) -> CarrierAnswer | None:
    """Hand ``request`` to ``connector``'s callback handler; ``None`` unless it is an HTTP
    carrier connector."""
    if not isinstance(connector, HttpCarrierConnector):
        return None
    callback = CarrierCallback(request.method, request.url, request.headers, request.body)
    if request.kind == "receipts":
        result = await connector.handle_receipt_callback(callback)
    else:
        result = await connector.handle_inbound_callback(callback)
    return CarrierAnswer(result.status, result.body, result.content_type)
