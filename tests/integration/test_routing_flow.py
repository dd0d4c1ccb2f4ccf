"""Routing wired into dispatch on a real database: failover, least cost, overrides, explain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pigeon.config import ConnectorConfig, RouteConfig, Settings, build_routing
from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant
from pigeon.domain.errors import (
    CarrierError,
    Fault,
    Forbidden,
    PermanentFailure,
    TemporaryFailure,
)
from pigeon.domain.messages import Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.domain.routing import RoutingTable
from pigeon.ids import UlidFactory
from pigeon.services.accept import AcceptMessage, SendRequest
from pigeon.services.authenticate import Caller
from pigeon.services.dispatch import DispatchMessage, RetryPolicy
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.receipts import ApplyReceipt
from pigeon.services.routing import ExplainRoute, TableRouter
from pigeon.testing import FakeConnector

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Stores

S = MessageStatus
UK = "+447400123456"


@dataclass
class Routed:
    """Dispatch and receipts over a ``TableRouter`` with carriers ``a``, ``b`` (and the sandbox)."""

    stores: Stores
    router: TableRouter
    carriers: dict[str, FakeConnector]
    accept: AcceptMessage
    dispatch: DispatchMessage
    receipts: ApplyReceipt
    caller: Caller
    failing: dict[str, Callable[[Message], CarrierError | None]] = field(default_factory=dict)

    async def drain(self, rounds: int = 20) -> None:
        """Run due dispatch and receipt jobs until none is due."""
        for _ in range(rounds):
            jobs = await self.stores.queue.claim(["dispatch", "receipt"], 100, "test", 30)
            if not jobs:
                return
            for job in jobs:
                if job.kind == "dispatch":
                    await self.dispatch(job)
                else:
                    await self.receipts.from_job(job)

    async def send(self, **fields: Any) -> Message:
        """Accept a live message."""
        fields.setdefault("to", UK)
        fields.setdefault("body", "hello")
        return (await self.accept(self.caller, SendRequest(**fields))).message

    async def stored(self, message_id: str) -> Message:
        message = await self.stores.messages.get_message(message_id)
        assert message is not None
        return message

    async def failovers(self, message_id: str) -> list[tuple[str, str]]:
        """(connector, reason) of each ``message.attempt_failed`` event that moved on."""
        events = await self.stores.messages.events_of(message_id)
        return [
            (str(e.payload["connector"]), str(e.payload["reason"]))
            for e in events
            if e.type == "message.attempt_failed" and e.payload.get("failover")
        ]


def _settings(tmp_path: Path, routes: list[dict[str, Any]], prices: bool = False) -> Settings:
    connectors = []
    for connector_id, price in (("a", "0.010"), ("b", "0.020")):
        options: dict[str, Any] = {"host": "127.0.0.1", "port": 1}
        if prices:
            (tmp_path / f"{connector_id}.csv").write_text(
                f"country,price,currency\nGB,{price},EUR\n", encoding="utf-8"
            )
            options["prices"] = f"{connector_id}.csv"
        connectors.append(ConnectorConfig(connector_id, "smpp", options))
    configs = [RouteConfig(str(r["id"]), {k: v for k, v in r.items() if k != "id"}) for r in routes]
    return Settings(connectors=tuple(connectors), routes=tuple(configs), config_dir=tmp_path)


async def _routed(
    stores: Stores, table: RoutingTable, prices: Any = None, tenant_name: str = "acme"
) -> Routed:
    ids = UlidFactory()
    clock = stores.clock
    failing: dict[str, Callable[[Message], CarrierError | None]] = {}

    def script(connector_id: str) -> Callable[[Message], CarrierError | None]:
        def outcome(message: Message) -> CarrierError | None:
            rule = failing.get(connector_id)
            return rule(message) if rule is not None else None

        return outcome

    carriers = {name: FakeConnector(name, script(name)) for name in ("a", "b")}
    for carrier in carriers.values():
        await carrier.start()
    sandbox = FakeConnector("simulator")
    await sandbox.start()
    router = TableRouter(table, carriers, sandbox, clock, prices=prices)
    recorder = EventRecorder(ids, clock, EndpointDirectory(stores.webhooks, ttl_seconds=0))
    tenant = Tenant(ids.new("ten"), tenant_name, None, clock.now())
    await stores.accounts.create_tenant(tenant)
    key = ApiKey(
        ids.new("key"), tenant.id, KeyMode.LIVE, Role.OPERATOR, "e" * 64, "pk", clock.now()
    )
    return Routed(
        stores=stores,
        router=router,
        carriers=carriers,
        accept=AcceptMessage(stores.messages, clock, ids, recorder),
        dispatch=DispatchMessage(
            stores.messages, stores.queue, router, recorder, clock, ids, RetryPolicy(delays=(2, 5))
        ),
        receipts=ApplyReceipt(
            stores.messages, stores.queue, recorder, clock, on_outcomes=router.outcomes
        ),
        caller=Caller(tenant, key),
        failing=failing,
    )


PRIORITY_AB = [{"id": "main", "default": True, "candidates": ["a", "b"]}]


@pytest.fixture
async def routed(stores: Stores, tmp_path: Path) -> Routed:
    """Carriers a then b by priority."""
    return await _routed(stores, build_routing(_settings(tmp_path, PRIORITY_AB)).table)


async def test_failover_when_preferred_carrier_is_not_ready(routed: Routed) -> None:
    """A connector that is down is skipped at once: the message goes out through the next one."""
    await routed.carriers["a"].stop()
    message = await routed.send()
    await routed.drain()
    stored = await routed.stored(message.id)
    assert stored.status is S.SENT
    assert stored.connector_id == "b"
    assert routed.carriers["a"].submitted == []


async def test_failover_on_permanent_failure_in_the_same_job(routed: Routed) -> None:
    """A permanent refusal by the first carrier re-routes to the second without waiting."""
    routed.failing["a"] = lambda m: PermanentFailure("refused (0x45)", code="smpp_0x00000045")
    message = await routed.send()
    await routed.drain(rounds=1)
    stored = await routed.stored(message.id)
    assert stored.status is S.SENT
    assert stored.connector_id == "b"
    assert await routed.failovers(message.id) == [("a", "permanent")]


async def test_message_fault_fails_without_failover(routed: Routed) -> None:
    """A refusal that blames the message (invalid destination) fails it; b is never tried."""
    routed.failing["a"] = lambda m: PermanentFailure(
        "invalid destination (0x0B)", code="smpp_0x0000000b", fault=Fault.MESSAGE
    )
    message = await routed.send()
    await routed.drain()
    stored = await routed.stored(message.id)
    assert stored.status is S.FAILED
    assert stored.error_code == "smpp_0x0000000b"
    assert stored.connector_id == "a"
    assert routed.carriers["b"].submitted == []
    assert await routed.failovers(message.id) == []


async def test_temporary_failure_fails_over_at_once_when_another_carrier_is_up(
    routed: Routed,
) -> None:
    """A temporary failure (a 5xx, a timeout) moves to the next ready carrier in the same job."""
    routed.failing["a"] = lambda m: TemporaryFailure("HTTP 503", code="http_5xx")
    message = await routed.send()
    await routed.drain(rounds=1)
    stored = await routed.stored(message.id)
    assert stored.status is S.SENT
    assert stored.connector_id == "b"
    assert len(routed.carriers["a"].submitted) == 1
    assert await routed.failovers(message.id) == [("a", "temporary")]


async def test_temporary_failures_spend_the_budget_when_nowhere_else_is_up(
    routed: Routed,
) -> None:
    """With the other carrier down, the preferred one gets its budget before the last resort."""
    routed.failing["a"] = lambda m: TemporaryFailure("busy")
    await routed.carriers["b"].stop()
    message = await routed.send()
    for _ in range(3):
        await routed.drain()
        routed.stores.clock.advance(10)
    stored = await routed.stored(message.id)
    assert len(routed.carriers["a"].submitted) == 3
    assert await routed.failovers(message.id) == [("a", "temporary")]
    assert stored.connector_id == "b"


async def test_every_candidate_failing_fails_with_the_last_code(routed: Routed) -> None:
    """When every candidate refused, the message fails with the last carrier's error code."""
    routed.failing["a"] = lambda m: PermanentFailure("no", code="code_a")
    routed.failing["b"] = lambda m: PermanentFailure("no", code="code_b")
    message = await routed.send()
    await routed.drain()
    stored = await routed.stored(message.id)
    assert stored.status is S.FAILED
    assert stored.error_code == "code_b"
    assert stored.connector_id == "b"


async def test_never_rerouted_after_a_carrier_accepted(routed: Routed) -> None:
    """Once a carrier accepted a message, a failed receipt never sends it anywhere else."""
    message = await routed.send()
    await routed.drain()
    stored = await routed.stored(message.id)
    assert stored.connector_id == "a"
    carrier_id = stored.parts[0].carrier_message_id or ""
    await routed.receipts(DeliveryReceipt("a", carrier_id, ReceiptStatus.UNDELIV))
    await routed.drain()
    assert (await routed.stored(message.id)).status is S.UNDELIVERED
    assert routed.carriers["b"].submitted == []
    assert await routed.stores.queue.claim(["dispatch"], 10, "test", 30) == []


async def test_least_cost_switches_when_the_cheap_carrier_delivers_badly(
    stores: Stores, tmp_path: Path
) -> None:
    """Least cost uses the cheaper carrier until receipts push its delivery rate under the guard."""
    routes = [
        {
            "id": "cheap",
            "default": True,
            "strategy": "least_cost",
            "min_delivery_rate": 0.8,
            "min_samples": 10,
            "candidates": ["b", "a"],
        }
    ]
    routing = build_routing(_settings(tmp_path, routes, prices=True))
    routed = await _routed(stores, routing.table, routing.prices)
    for _ in range(10):
        message = await routed.send()
        await routed.drain()
        stored = await routed.stored(message.id)
        assert stored.connector_id == "a"
        carrier_id = stored.parts[0].carrier_message_id or ""
        await routed.receipts(DeliveryReceipt("a", carrier_id, ReceiptStatus.UNDELIV))
    message = await routed.send()
    await routed.drain()
    assert (await routed.stored(message.id)).connector_id == "b"


async def test_tenant_route_takes_precedence(stores: Stores, tmp_path: Path) -> None:
    """A tenant's own route wins over the global routes for that tenant's messages."""
    ids = UlidFactory()
    tenant_id = ids.new("ten")
    routes = [
        {"id": "uk", "countries": ["GB"], "candidates": ["a"]},
        {"id": "vip", "tenant": tenant_id, "countries": ["GB"], "candidates": ["b"]},
    ]
    table = build_routing(_settings(tmp_path, routes)).table
    routed = await _routed(stores, table)
    message = await routed.send()
    await routed.drain()
    assert (await routed.stored(message.id)).connector_id == "a"
    own = Tenant(tenant_id, "vip", None, stores.clock.now())
    await stores.accounts.create_tenant(own)
    routed.caller = Caller(own, routed.caller.key)
    message = await routed.send()
    await routed.drain()
    assert (await routed.stored(message.id)).connector_id == "b"


async def test_test_key_messages_go_to_the_sandbox_only(routed: Routed) -> None:
    """A test key's message goes to the simulator whatever the routing table says."""
    key = routed.caller.key
    test_key = ApiKey(
        key.id, key.tenant_id, KeyMode.TEST, key.role, key.digest, "pk", key.created_at
    )
    routed.caller = Caller(routed.caller.tenant, test_key)
    message = await routed.send()
    await routed.drain()
    assert (await routed.stored(message.id)).connector_id == "simulator"
    assert routed.carriers["a"].submitted == routed.carriers["b"].submitted == []


async def test_explain_agrees_with_dispatch(stores: Stores, tmp_path: Path) -> None:
    """The explain answer names the connector a real dispatch then uses, prices included."""
    routes = [
        {"id": "cheap", "countries": ["GB"], "strategy": "least_cost", "candidates": ["b", "a"]}
    ]
    routing = build_routing(_settings(tmp_path, routes, prices=True))
    routed = await _routed(stores, routing.table, routing.prices)
    explain = ExplainRoute(routed.router, stores.clock)
    answer = explain(routed.caller, UK)
    message = await routed.send()
    await routed.drain()
    assert answer["chosen"] == (await routed.stored(message.id)).connector_id == "a"
    assert answer["order"] == ["a", "b"]
    await routed.carriers["a"].stop()
    answer = explain(routed.caller, UK)
    message = await routed.send()
    await routed.drain()
    assert answer["chosen"] == (await routed.stored(message.id)).connector_id == "b"


async def test_explain_needs_an_operator_key(routed: Routed) -> None:
    """A tenant key asking for an explanation is refused as forbidden."""
    key = routed.caller.key
    tenant_key = ApiKey(
        key.id, key.tenant_id, key.mode, Role.TENANT, key.digest, "pk", key.created_at
    )
    explain = ExplainRoute(routed.router, routed.stores.clock)
    with pytest.raises(Forbidden):
        explain(Caller(routed.caller.tenant, tenant_key), UK)


async def test_receipts_applied_together_feed_the_quality_that_routes(
    stores: Stores, tmp_path: Path
) -> None:
    """Ten undelivered receipts applied in one batch (``each``) count as ten outcomes: least
    cost turns away from the carrier at once."""
    routes = [
        {
            "id": "cheap",
            "default": True,
            "strategy": "least_cost",
            "min_delivery_rate": 0.8,
            "min_samples": 10,
            "candidates": ["b", "a"],
        }
    ]
    routing = build_routing(_settings(tmp_path, routes, prices=True))
    routed = await _routed(stores, routing.table, routing.prices)
    receipts = []
    for _ in range(10):
        message = await routed.send()
        await routed.drain()
        stored = await routed.stored(message.id)
        assert stored.connector_id == "a"
        carrier_id = stored.parts[0].carrier_message_id or ""
        receipts.append(DeliveryReceipt("a", carrier_id, ReceiptStatus.UNDELIV))
    assert await routed.receipts.each(receipts) == [None] * 10
    message = await routed.send()
    await routed.drain()
    assert (await routed.stored(message.id)).connector_id == "b"
