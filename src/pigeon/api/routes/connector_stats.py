"""``/v1/connectors/{connector_id}/stats``: how well a connector delivers lately (operators)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.params import PathParameter

from pigeon.api.dependencies import CurrentCaller, Services
from pigeon.api.problems import problem_responses
from pigeon.domain.errors import Forbidden

TAGS = ["Connectors"]

ConnectorId = Annotated[str, PathParameter(description="The connector id.")]


class WindowFigures(msgspec.Struct, kw_only=True):
    """A connector's figures over one window."""

    submitted: int
    delivered: int
    undelivered: int
    delivery_rate: float | None
    latency_p50_seconds: float | None
    latency_p90_seconds: float | None
    errors: dict[str, int]


class ConnectorStats(msgspec.Struct, kw_only=True):
    """A connector's figures over the last 5 minutes, hour and 24 hours."""

    connector_id: str
    as_of: str
    windows: dict[str, WindowFigures]


@get(
    "/connectors/{connector_id:str}/stats",
    operation_id="getConnectorStats",
    tags=TAGS,
    summary="Quality figures of a connector",
    description=(
        "A connector's figures over the windows `5m`, `1h` and `24h` (operator keys only): "
        "messages its carrier accepted (`submitted`), final receipts `delivered` and "
        "`undelivered` (undelivered, expired or rejected), `delivery_rate` = delivered / "
        "(delivered + undelivered), p50/p90 of the time from submit to final receipt (within "
        "about 9%), and submit `errors` by code. Rates and latencies are `null` without "
        "receipts. Figures are kept per minute and shared by every process on the database, "
        "so a window reaches between its length minus one minute and its length into the past."
    ),
    responses=problem_responses("unauthorized", "forbidden", "connector_not_found"),
)
async def get_connector_stats(
    caller: CurrentCaller, services: Services, connector_id: ConnectorId
) -> ConnectorStats:
    """A connector's quality figures."""
    if services.connector_stats is None:
        caller.require_operator()
        raise Forbidden("Connector figures are not kept in this process.")
    figures = await services.connector_stats(caller, connector_id)
    return msgspec.convert(figures, ConnectorStats)


ROUTES = [get_connector_stats]
