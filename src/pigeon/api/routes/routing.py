"""``/v1/routes/explain``: which connectors a message would try, in which order, and why."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.params import QueryParameter

from pigeon.api.dependencies import CurrentCaller, Services
from pigeon.api.problems import problem_responses
from pigeon.domain.errors import Forbidden

TAGS = ["Routing"]


@get(
    "/routes/explain",
    operation_id="explainRoute",
    tags=TAGS,
    summary="Explain the route of a message",
    description=(
        "The route a live message to `to` would take now (operator keys only): the routes "
        "looked at, each candidate connector with its price and learned quality, the connector "
        "chosen and the failover `order`. It is the plan dispatch makes, from the same values. "
        "`tenant` defaults to the caller's tenant; `category` to `transactional`; `from` is "
        "the sender id."
    ),
    responses=problem_responses(
        "unauthorized", "forbidden", "invalid_request", "invalid_recipient"
    ),
    sync_to_thread=False,
)
def explain_route(
    caller: CurrentCaller,
    services: Services,
    to: Annotated[str, QueryParameter(description="The destination, E.164 (`+447700900123`).")],
    category: Annotated[
        str | None, QueryParameter(description="`otp`, `transactional` or `marketing`.")
    ] = None,
    tenant: Annotated[
        str | None, QueryParameter(description="The tenant id (default: the caller's).")
    ] = None,
    sender: Annotated[str | None, QueryParameter(name="from", description="The sender id.")] = None,
) -> dict[str, Any]:
    """Explain where a message would go."""
    if services.explain is None:
        caller.require_operator()
        raise Forbidden("Routing is not configured in this process.")
    return services.explain(caller, to, category=category, tenant_id=tenant, sender=sender)


ROUTES = [explain_route]
