"""``LiveRouting`` on the real store (SQLite and PostgreSQL): the router follows the stored
connectors and routes, rebuilding only what changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pigeon.domain.connectors import ConnectorRecord, RouteRecord
from pigeon.domain.routing import Candidate, Route, RoutingTable
from pigeon.services.connectors import LiveRouting
from pigeon.services.routing import TableRouter
from pigeon.store import Database, SqlConnectorStore
from pigeon.testing import FakeClock, FakeConnector


class RecordingBuilder:
    """``ports.ConnectorBuilder`` making ``FakeConnector``s and remembering each one."""

    def __init__(self) -> None:
        self.built: list[FakeConnector] = []

    def check(self, connector_type: str, connector_id: str, options: Mapping[str, Any]) -> None:
        """Everything is valid."""

    def build(
        self, connector_type: str, connector_id: str, options: Mapping[str, Any]
    ) -> FakeConnector:
        """A new fake connector."""
        connector = FakeConnector(connector_id)
        self.built.append(connector)
        return connector


def _record(clock: FakeClock, connector_id: str, **changes: Any) -> ConnectorRecord:
    values: dict[str, Any] = {
        "id": connector_id,
        "type": "smpp",
        "options": {"host": "a"},
        "enabled": True,
        "created_at": clock.now(),
        "updated_at": clock.now(),
    }
    values.update(changes)
    return ConnectorRecord(**values)


def _live(database: Database) -> tuple[LiveRouting, TableRouter, RecordingBuilder]:
    sandbox = FakeConnector("simulator")
    router = TableRouter(
        RoutingTable([], Route("default", (), (Candidate("simulator"),))), {}, sandbox, FakeClock()
    )
    builder = RecordingBuilder()
    return LiveRouting(SqlConnectorStore(database), builder, router), router, builder


async def test_only_changed_connectors_are_rebuilt(database: Database, clock: FakeClock) -> None:
    """Reloading without changes keeps the running connector; new options rebuild it and stop
    the old one; disabling stops and unregisters it but keeps it for callbacks."""
    store = SqlConnectorStore(database)
    live, router, builder = _live(database)
    await store.put_connector(_record(clock, "a"))
    await live.reload()
    first = router.connectors["a"]
    assert first.ready
    await live.reload()
    assert router.connectors["a"] is first
    assert len(builder.built) == 1

    await store.put_connector(_record(clock, "a", options={"host": "b"}))
    await live.reload()
    second = router.connectors["a"]
    assert second is not first
    assert second.ready
    assert not first.ready

    await store.put_connector(_record(clock, "a", options={"host": "b"}, enabled=False))
    await live.reload()
    assert "a" not in router.connectors
    assert not second.ready
    assert live.callback_target("a") is second
    assert not router.connector("a").ready


async def test_routes_follow_the_store_and_bad_tables_keep_the_old(
    database: Database, clock: FakeClock
) -> None:
    """A stored table is applied; one that no longer validates is not, and the old one stays."""
    store = SqlConnectorStore(database)
    live, router, _ = _live(database)
    await store.put_connector(_record(clock, "a"))
    await store.replace_routes(
        [RouteRecord("main", {"default": True, "candidates": ["a"]})], clock.now()
    )
    await live.reload()
    assert router.table.default.id == "main"
    await store.replace_routes(
        [RouteRecord("broken", {"default": True, "candidates": ["nowhere"]})], clock.now()
    )
    await live.reload()
    assert router.table.default.id == "main"


async def test_refresh_reloads_only_when_the_version_moved(
    database: Database, clock: FakeClock
) -> None:
    """``refresh`` is a no-op until another writer changes the store."""
    store = SqlConnectorStore(database)
    live, router, _ = _live(database)
    await live.reload()
    assert await live.refresh() is False
    await store.put_connector(_record(clock, "a"))
    assert await live.refresh() is True
    assert "a" in router.connectors
    assert await live.refresh() is False
    await live.close()
    assert "a" not in router.connectors
