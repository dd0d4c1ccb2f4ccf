"""Routing in the pipeline: the routing table, price lists and learned quality, per message."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pigeon.domain.addressing import parse_msisdn
from pigeon.domain.errors import ValidationError
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.price_lists import PriceList
from pigeon.domain.quality import QualityWindow
from pigeon.domain.routing import Candidate, Route, RouteContext, RoutePlan, RoutingTable
from pigeon.ports import Clock, Connector
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
        """The connector with ``connector_id``."""
        return self._connectors[connector_id]

    def choose(self, message: Message) -> Connector:
        """The connector ``message`` tries first."""
        return self.connector(self.plan(message).chosen)

    def submitted(self, connector_id: str, message: Message, at: datetime) -> None:
        """A carrier accepted ``message``."""
        self.quality.record_submit(connector_id, at)

    def failed(self, connector_id: str, code: str, at: datetime) -> None:
        """A submit to ``connector_id`` failed with ``code``."""
        self.quality.record_error(connector_id, code, at)

    def outcome(
        self, connector_id: str, delivered: bool, latency_seconds: float | None, at: datetime
    ) -> None:
        """A final receipt arrived for a message sent through ``connector_id``."""
        self.quality.record_outcome(connector_id, delivered, latency_seconds, at)


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
