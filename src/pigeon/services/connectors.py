"""Connectors and routes as data: manage them, and apply every change live, without a restart.

``LiveRouting`` keeps the running gateway in step with the store: it builds, starts and
registers the connectors that are enabled, stops and unregisters the others, and swaps the
routing table and price lists in ``TableRouter``. ``ManageConnectors`` and ``ManageRoutes``
validate and persist changes (REST API and CLI), then ask ``LiveRouting`` to apply them. A
gateway whose store is changed by another process (the CLI) notices through the store's
version marker (``LiveRouting.watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pigeon.config import ConfigError, RouteConfig, routing_table
from pigeon.domain.connectors import CONNECTOR_TYPES, MASK, ConnectorRecord, RouteRecord, masked
from pigeon.domain.errors import NotFound, PigeonError, ValidationError
from pigeon.domain.price_lists import PriceList, PriceListError, parse_price_list_csv
from pigeon.ports import Clock, Connector, ConnectorBuilder, ConnectorStore
from pigeon.services.routing import TableRouter

log = logging.getLogger(__name__)

SIMULATOR_ID = "simulator"
_CONNECTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConnectorConflict(PigeonError):
    """The change clashes with what exists (a taken id, a connector routes still use)."""

    code = "connector_exists"
    status = 409


def _key(record: ConnectorRecord) -> str:
    """What a running connector was built from: a change rebuilds it."""
    return json.dumps([record.type, record.options], sort_keys=True, default=str)


class LiveRouting:
    """The connectors, prices and routing table a running gateway uses, kept equal to the store.

    ``reload`` is idempotent and serialised; connectors whose type and options did not change
    keep running untouched. Removed HTTP connectors stay reachable for their callbacks
    (``callback_target``), so receipts of messages they accepted still arrive.
    """

    def __init__(
        self,
        store: ConnectorStore,
        builder: ConnectorBuilder,
        router: TableRouter,
        *,
        preferred_default: str = "",
    ) -> None:
        self._store = store
        self._builder = builder
        self._router = router
        self._preferred_default = preferred_default
        self._running: dict[str, tuple[str, Connector]] = {}
        self._retired: dict[str, Connector] = {}
        self._lock = asyncio.Lock()
        self._version: int | None = None

    @property
    def version(self) -> int | None:
        """The store version last applied."""
        return self._version

    def callback_target(self, connector_id: str) -> Connector | None:
        """The connector a carrier's callback for ``connector_id`` goes to (running or retired)."""
        running = self._running.get(connector_id)
        return running[1] if running is not None else self._retired.get(connector_id)

    async def reload(self) -> None:
        """Apply the store's connectors, prices and routes to the router."""
        async with self._lock:
            version = await self._store.version()
            records = await self._store.list_connectors()
            routes = await self._store.list_routes()
            await self._apply_connectors(records)
            self._router.set_prices(_prices(records))
            fallback = self._fallback(records)
            known = {record.id for record in records} | {SIMULATOR_ID}
            try:
                table = routing_table(
                    [RouteConfig(route.id, route.options) for route in routes], known, fallback
                )
            except ConfigError as exc:
                log.error("routing table not applied (the previous one stays): %s", exc)
            else:
                self._router.replace_table(table)
            self._version = version

    async def refresh(self) -> bool:
        """Reload if the store changed since the last reload; whether it did."""
        if await self._store.version() == self._version:
            return False
        await self.reload()
        return True

    async def watch(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Until ``stop`` is set, poll the store's version and reload on change."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.refresh()
            except Exception:  # a failed poll must not end the watch
                log.exception("could not reload connectors and routes")

    async def close(self) -> None:
        """Stop every connector started here."""
        async with self._lock:
            for _, connector in self._running.values():
                self._router.remove_connector(connector.id)
                await connector.stop()
            self._running.clear()

    def _fallback(self, records: Sequence[ConnectorRecord]) -> str:
        enabled = [record for record in records if record.enabled]
        ids = {record.id for record in records}
        if self._preferred_default in ids | {SIMULATOR_ID}:
            return self._preferred_default
        if enabled:
            return min(enabled, key=lambda record: (record.created_at, record.id)).id
        return SIMULATOR_ID

    async def _apply_connectors(self, records: Sequence[ConnectorRecord]) -> None:
        wanted = {record.id: record for record in records if record.enabled}
        for connector_id in list(self._running):
            if connector_id not in wanted:
                _, connector = self._running.pop(connector_id)
                self._router.remove_connector(connector_id)
                await connector.stop()
                self._retired[connector_id] = connector
                log.info("connector %s stopped and removed from routing", connector_id)
        for connector_id, record in wanted.items():
            key = _key(record)
            running = self._running.get(connector_id)
            if running is not None and running[0] == key:
                continue
            try:
                connector = self._builder.build(record.type, record.id, record.options)
                await connector.start()
            except Exception:  # a bad carrier must not stop the others from applying
                log.exception("connector %s could not be started", connector_id)
                continue
            self._router.put_connector(connector)
            self._running[connector_id] = (key, connector)
            self._retired.pop(connector_id, None)
            if running is not None:
                self._retired[connector_id] = running[1]
                await running[1].stop()
            log.info("connector %s (%s) started", connector_id, record.type)


def _prices(records: Sequence[ConnectorRecord]) -> dict[str, PriceList]:
    prices: dict[str, PriceList] = {}
    for record in records:
        if record.prices_csv:
            try:
                prices[record.id] = parse_price_list_csv(record.prices_csv, record.id)
            except PriceListError as exc:
                log.error("connector %s: stored prices not applied: %s", record.id, exc)
    return prices


def connector_view(record: ConnectorRecord) -> dict[str, Any]:
    """A connector as the API and CLI show it: credentials masked."""
    return {
        "id": record.id,
        "type": record.type,
        "enabled": record.enabled,
        "options": masked(record.options),
        "prices": record.prices_csv,
        "source": record.source,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


def prices_csv_from_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """JSON price rows (``prefix``/``country``, ``price``, ``currency``) in the CSV form."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prefix", "country", "price", "currency"])
    for row in rows:
        if not isinstance(row, Mapping):
            raise ValidationError("each price row must be an object", code="invalid_price_list")
        writer.writerow(
            [str(row.get(name) or "") for name in ("prefix", "country", "price", "currency")]
        )
    return out.getvalue()


class ManageConnectors:
    """List, add, change, enable, disable, price and remove connectors; applied at once."""

    def __init__(
        self,
        store: ConnectorStore,
        builder: ConnectorBuilder,
        clock: Clock,
        live: LiveRouting | None = None,
    ) -> None:
        self._store = store
        self._builder = builder
        self._clock = clock
        self._live = live

    async def list_connectors(self) -> list[dict[str, Any]]:
        """Every connector, credentials masked."""
        return [connector_view(record) for record in await self._store.list_connectors()]

    async def get(self, connector_id: str) -> dict[str, Any]:
        """One connector, credentials masked; ``NotFound`` if unknown."""
        return connector_view(await self._find(connector_id))

    async def add(
        self,
        connector_id: str,
        connector_type: str,
        options: Mapping[str, Any],
        *,
        enabled: bool = True,
        prices_csv: str | None = None,
        source: str = "api",
    ) -> dict[str, Any]:
        """Create a connector; ``ConnectorConflict`` if the id is taken."""
        if not isinstance(connector_id, str) or not _CONNECTOR_ID.match(connector_id):
            raise ValidationError(
                "id must be 1-64 letters, digits, '.', '_' or '-'",
                code="invalid_connector",
                field="id",
            )
        if connector_id == SIMULATOR_ID:
            raise ValidationError(
                "the id 'simulator' is reserved for the built-in simulator",
                code="invalid_connector",
                field="id",
            )
        if await self._store.get_connector(connector_id) is not None:
            raise ConnectorConflict(f"a connector {connector_id!r} exists already", field="id")
        now = self._clock.now()
        record = ConnectorRecord(
            id=connector_id,
            type=connector_type,
            options=dict(options),
            enabled=enabled,
            created_at=now,
            updated_at=now,
            prices_csv=prices_csv,
            source=source,
        )
        await self._save(record)
        return connector_view(record)

    async def put(self, record: ConnectorRecord) -> None:
        """Create or replace ``record`` as it is (the TOML import at start); validated."""
        await self._save(record, apply=False)

    async def update(
        self,
        connector_id: str,
        *,
        connector_type: str | None = None,
        options: Mapping[str, Any] | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change a connector. ``options`` are merged: a key set to ``null`` is removed, and a
        credential given back masked keeps its stored value."""
        record = await self._find(connector_id)
        merged = dict(record.options)
        for name, value in (options or {}).items():
            if value is None:
                merged.pop(name, None)
            elif value == MASK and name in record.options:
                continue
            else:
                merged[name] = value
        changed = replace(
            record,
            type=connector_type or record.type,
            options=merged,
            enabled=record.enabled if enabled is None else enabled,
            updated_at=self._clock.now(),
        )
        await self._save(changed)
        return connector_view(changed)

    async def set_prices(self, connector_id: str, prices_csv: str | None) -> dict[str, Any]:
        """Replace the connector's price list (CSV; ``None`` removes it)."""
        record = await self._find(connector_id)
        changed = replace(record, prices_csv=prices_csv, updated_at=self._clock.now())
        await self._save(changed)
        return connector_view(changed)

    async def remove(self, connector_id: str) -> None:
        """Delete a connector; ``ConnectorConflict`` (``connector_in_use``) while a route
        names it."""
        await self._find(connector_id)
        for route in await self._store.list_routes():
            if connector_id in _candidate_ids(route.options):
                raise ConnectorConflict(
                    f"route {route.id!r} still sends to {connector_id!r}; change the routes first",
                    code="connector_in_use",
                )
        await self._store.delete_connector(connector_id, self._clock.now())
        if self._live is not None:
            await self._live.reload()

    async def _find(self, connector_id: str) -> ConnectorRecord:
        record = await self._store.get_connector(connector_id)
        if record is None:
            raise NotFound(f"no connector {connector_id!r}")
        return record

    def _check(self, record: ConnectorRecord) -> None:
        if record.type not in CONNECTOR_TYPES:
            raise ValidationError(
                f"type {record.type!r} is not one of {', '.join(sorted(CONNECTOR_TYPES))}",
                code="invalid_connector",
                field="type",
            )
        if not isinstance(record.enabled, bool):
            raise ValidationError("enabled must be true or false", code="invalid_connector")
        try:
            self._builder.check(record.type, record.id, record.options)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"connector {record.id!r}: {exc}", code="invalid_connector", field="options"
            ) from exc
        if record.prices_csv is not None:
            parse_price_list_csv(record.prices_csv, record.id)

    async def _save(self, record: ConnectorRecord, *, apply: bool = True) -> None:
        self._check(record)
        await self._store.put_connector(record)
        if apply and self._live is not None:
            await self._live.reload()


def _candidate_ids(options: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    candidates = options.get("candidates")
    for item in candidates if isinstance(candidates, list) else ():
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, Mapping) and isinstance(item.get("connector"), str):
            found.add(item["connector"])
    return found


class ManageRoutes:
    """Read and replace the ordered routing table; applied at once."""

    def __init__(
        self, store: ConnectorStore, clock: Clock, live: LiveRouting | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._live = live

    async def list_routes(self) -> list[dict[str, Any]]:
        """The routing table in order, each route as ``{"id": ..., **options}``."""
        return [{"id": route.id, **route.options} for route in await self._store.list_routes()]

    async def replace(self, table: object) -> list[dict[str, Any]]:
        """Validate and store ``table`` (route objects with an ``id``) as the whole table."""
        if not isinstance(table, list | tuple):
            raise ValidationError("routes must be a list of route objects", code="invalid_routes")
        records: list[RouteRecord] = []
        for number, item in enumerate(table, start=1):
            if not isinstance(item, Mapping):
                raise ValidationError(f"route #{number} is not an object", code="invalid_routes")
            options = dict(item)
            route_id = options.pop("id", None)
            if not isinstance(route_id, str) or not route_id:
                raise ValidationError(f"route #{number} needs an id", code="invalid_routes")
            records.append(RouteRecord(route_id, options))
        known = {record.id for record in await self._store.list_connectors()} | {SIMULATOR_ID}
        try:
            routing_table([RouteConfig(r.id, r.options) for r in records], known, SIMULATOR_ID)
        except ConfigError as exc:
            detail = "; ".join(line.removeprefix("  - ") for line in str(exc).splitlines()[1:])
            raise ValidationError(detail or str(exc), code="invalid_routes") from exc
        await self._store.replace_routes(records, self._clock.now())
        if self._live is not None:
            await self._live.reload()
        return await self.list_routes()
