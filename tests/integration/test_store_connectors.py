"""``SqlConnectorStore`` on SQLite and PostgreSQL: connectors, routes and the version marker."""

from __future__ import annotations

from pigeon.domain.connectors import ConnectorRecord, RouteRecord
from pigeon.store import Database, SqlConnectorStore
from pigeon.testing import FakeClock


def _record(
    clock: FakeClock, connector_id: str = "carrier-a", **changes: object
) -> ConnectorRecord:
    now = clock.now()
    values: dict[str, object] = {
        "id": connector_id,
        "type": "smpp",
        "options": {"host": "127.0.0.1", "port": 2775, "password": "s3cret", "binds": 2},
        "enabled": True,
        "created_at": now,
        "updated_at": now,
        "prices_csv": "country,price,currency\nGB,0.03,EUR\n",
        "source": "api",
    }
    values.update(changes)
    return ConnectorRecord(**values)  # type: ignore[arg-type]


async def test_connectors_round_trip_and_update_keeps_created_at(
    database: Database, clock: FakeClock
) -> None:
    """A stored connector reads back as written; replacing it keeps its creation time."""
    store = SqlConnectorStore(database)
    first = _record(clock)
    await store.put_connector(first)
    assert await store.get_connector("carrier-a") == first

    clock.advance(60)
    changed = _record(
        clock, enabled=False, options={"host": "10.0.0.1"}, prices_csv=None, created_at=clock.now()
    )
    await store.put_connector(changed)
    found = await store.get_connector("carrier-a")
    assert found is not None
    assert found.created_at == first.created_at
    assert (found.enabled, found.options, found.prices_csv) == (False, {"host": "10.0.0.1"}, None)
    assert found.updated_at == clock.now()


async def test_connectors_list_by_id_and_delete(database: Database, clock: FakeClock) -> None:
    """Connectors list by id; deleting says whether the connector existed."""
    store = SqlConnectorStore(database)
    await store.put_connector(_record(clock, "b"))
    await store.put_connector(_record(clock, "a", type="twilio"))
    assert [c.id for c in await store.list_connectors()] == ["a", "b"]
    assert await store.delete_connector("a", clock.now()) is True
    assert await store.delete_connector("a", clock.now()) is False
    assert [c.id for c in await store.list_connectors()] == ["b"]
    assert await store.get_connector("a") is None


async def test_routes_are_replaced_whole_and_keep_their_order(
    database: Database, clock: FakeClock
) -> None:
    """Replacing the routing table stores exactly the new routes, in the given order."""
    store = SqlConnectorStore(database)
    await store.replace_routes(
        [RouteRecord("z", {"countries": ["GB"], "candidates": ["a"]}), RouteRecord("a", {})],
        clock.now(),
    )
    await store.replace_routes(
        [
            RouteRecord("uk", {"countries": ["GB"], "candidates": [{"connector": "a"}]}),
            RouteRecord("main", {"default": True, "candidates": ["a", "b"]}),
        ],
        clock.now(),
    )
    assert await store.list_routes() == [
        RouteRecord("uk", {"countries": ["GB"], "candidates": [{"connector": "a"}]}),
        RouteRecord("main", {"default": True, "candidates": ["a", "b"]}),
    ]


async def test_every_change_bumps_the_version(database: Database, clock: FakeClock) -> None:
    """Writes to connectors or routes change the version; reads and no-op deletes do not."""
    store = SqlConnectorStore(database)
    assert await store.version() == 0
    await store.put_connector(_record(clock))
    after_put = await store.version()
    await store.replace_routes([], clock.now())
    after_routes = await store.version()
    await store.delete_connector("missing", clock.now())
    assert await store.version() == after_routes
    await store.delete_connector("carrier-a", clock.now())
    assert 0 < after_put < after_routes < await store.version()
