"""Connectors and routes as data: what the store keeps of each carrier link and route.

A connector is a carrier link of one ``type`` (``smpp``, ``generic_http``, ``twilio``,
``infobip``) with the adapter's own ``options``; a route is one ``[[routes]]`` table. Both come
from ``pigeon.toml`` (``source="toml"``), the REST API or the CLI (``source="api"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The adapters a connector can be built with.
CONNECTOR_TYPES = frozenset({"simulator", "smpp", "generic_http", "twilio", "infobip"})

#: Option names (or parts of names) that hold credentials: never shown back.
SECRET_WORDS = ("password", "token", "secret", "api_key", "credential")

#: What a masked credential reads as.
MASK = "********"


def is_secret_option(name: str) -> bool:
    """Whether the option ``name`` holds a credential."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def masked(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with every credential replaced by ``MASK`` (nested tables too)."""
    shown: dict[str, Any] = {}
    for name, value in options.items():
        if is_secret_option(name) and value not in (None, ""):
            shown[name] = MASK
        elif isinstance(value, Mapping):
            shown[name] = masked(value)
        else:
            shown[name] = value
    return shown


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A stored connector: its adapter ``type`` and ``options``, and its price list as CSV."""

    id: str
    type: str
    options: Mapping[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    #: The price list in its CSV form (see ``domain.price_lists``), if priced.
    prices_csv: str | None = None
    #: ``"toml"`` when ``pigeon.toml`` declares it, else ``"api"``.
    source: str = "api"


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """A stored route: its id and the keys of a ``[[routes]]`` table; order is the table's."""

    id: str
    options: Mapping[str, Any]
