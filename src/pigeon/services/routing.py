"""Routing in the pipeline: the routing table, price lists and learned quality, per message."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pigeon.domain.addressing import parse_msisdn
from pigeon.domain.errors import TemporaryFailure, ValidationError
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.price_lists import PriceList
from pigeon.domain.quality import QualityWindow
from pigeon.domain.routing import Candidate, Route, RouteContext, RoutePlan, RoutingTable
from pigeon.ports import Clock, Connector, SubmitResult
from pigeon.services.authenticate import Caller


class TableRouter:
    """Plans each message's failover order from a ``RoutingTable`` and feeds its quality.

    Test-key messages always go to ``sandbox`` alone, whatever the table says. A connector is
    available when it is ``ready``; unavailable ones go last in a plan, never dropped.
    """

    def __init__(
        self,
        table: RoutingTable,
        connectors: Mapping[str, Connector],
        sandbox: Connector,
        clock: Clock,
        *,
        prices: Mapping[str, PriceList] | None = None,
        quality: QualityWindow | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._table = table
        self._connectors = dict(connectors)
        self._connectors.setdefault(sandbox.id, sandbox)
        self._sandbox = sandbox
        self._sandbox_table = RoutingTable([], Route("sandbox", (), (Candidate(sandbox.id),)))
        self._clock = clock
        self._prices = dict(prices or {})
        self.quality = quality or QualityWindow()
        self._rng = rng or random.Random()  # noqa: S311 - weighted draws, not secrets

    def _available(self, connector_id: str) -> bool:
        connector = self._connectors.get(connector_id)
        return connector is not None and connector.ready

    def plan(self, message: Message) -> RoutePlan:
        """The route ``message`` takes now and its connectors in failover order."""
        now = self._clock.now()
        context = RouteContext.for_message(message, now)
        table = self._sandbox_table if message.is_test else self._table
        return table.plan(context, self._prices, self.quality, self._available, self._rng)

    def connector(self, connector_id: str) -> Connector:
        """The connector with ``connector_id`` (a never-ready stand-in once it is removed)."""
        found = self._connectors.get(connector_id)
        return found if found is not None else AbsentConnector(connector_id)

    @property
    def table(self) -> RoutingTable:
        """The routing table plans are made from."""
        return self._table

    @property
    def connectors(self) -> Mapping[str, Connector]:
        """The registered connectors by id (the sandbox included)."""
        return dict(self._connectors)

    def replace_table(self, table: RoutingTable) -> None:
        """Plan from ``table`` from now on (one reference swap: plans see old or new)."""
        self._table = table

    def put_connector(self, connector: Connector) -> None:
        """Register ``connector`` (replacing one with the same id)."""
        connectors = dict(self._connectors)
        connectors[connector.id] = connector
        self._connectors = connectors

    def remove_connector(self, connector_id: str) -> Connector | None:
        """Unregister the connector (the sandbox stays); the one removed, if any."""
        if connector_id == self._sandbox.id:
            return None
        connectors = dict(self._connectors)
        removed = connectors.pop(connector_id, None)
        self._connectors = connectors
        return removed

    def set_prices(self, prices: Mapping[str, PriceList]) -> None:
        """Price candidates with ``prices`` from now on."""
        self._prices = dict(prices)

    def choose(self, message: Message) -> Connector:
        """The connector ``message`` tries first."""
        return self.connector(self.plan(message).chosen)

    def submitted(self, connector_id: str, message: Message, at: datetime) -> None:
        """A carrier accepted ``message``."""
        self.quality.record_submit(connector_id, at)

    def submitted_many(self, connector_id: str, count: int, at: datetime) -> None:
        """A carrier accepted ``count`` messages at ``at`` (a wave of answers)."""
        self.quality.record_submits(connector_id, count, at)

    def failed(self, connector_id: str, code: str, at: datetime) -> None:
        """A submit to ``connector_id`` failed with ``code``."""
        self.quality.record_error(connector_id, code, at)

    def outcome(
        self, connector_id: str, delivered: bool, latency_seconds: float | None, at: datetime
    ) -> None:
        """A final receipt arrived for a message sent through ``connector_id``."""
        self.quality.record_outcome(connector_id, delivered, latency_seconds, at)

    def outcomes(
        self, connector_id: str, outcomes: Sequence[tuple[bool, float | None]], at: datetime
    ) -> None:
        """Final receipts arrived together for messages sent through ``connector_id``:
        (delivered, seconds after submit) each."""
        self.quality.record_outcomes(connector_id, outcomes, at)


class AbsentConnector:
    """Stands in for a connector a plan names that is no longer registered (removed or
    disabled): never ready, and every submit is a temporary failure, so dispatch moves on."""

    def __init__(self, connector_id: str) -> None:
        self._id = connector_id

    @property
    def id(self) -> str:
        """The missing connector's id."""
        return self._id

    @property
    def ready(self) -> bool:
        """Never."""
        return False

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def submit(self, message: Message) -> SubmitResult:
        """Refuse: the connector is gone."""
        raise TemporaryFailure(f"connector {self._id!r} is not configured", code="connector_absent")


class ExplainRoute:
    """Answers "where would this message go, and why?" with the plan dispatch would make."""

    def __init__(self, router: TableRouter, clock: Clock) -> None:
        self._router = router
        self._clock = clock

    def __call__(
        self,
        caller: Caller,
        to: str,
        *,
        category: str | None = None,
        tenant_id: str | None = None,
        sender: str | None = None,
    ) -> dict[str, Any]:
        """The explanation of the plan for a live message; operator keys only."""
        caller.require_operator()
        number = parse_msisdn(to)
        try:
            kind = Category(category) if category else Category.TRANSACTIONAL
        except ValueError as exc:
            raise ValidationError(
                f"category must be one of {', '.join(c.value for c in Category)}"
            ) from exc
        now = self._clock.now()
        message = Message(
            id="msg_explain",
            tenant_id=tenant_id or caller.tenant.id,
            direction=Direction.MT,
            to=number.e164,
            sender=sender or None,
            body="",
            category=kind,
            encoding="gsm7",
            segments=1,
            status=MessageStatus.QUEUED,
            created_at=now,
            updated_at=now,
            country=number.country,
        )
        plan = self._router.plan(message)
        return {**plan.explanation.as_dict(), "order": list(plan.order)}
