"""What route handlers get injected: the use cases (``ApiServices``) and the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.openapi.spec import SecurityScheme

from pigeon.ports import CarrierCallbacks
from pigeon.services.accept import AcceptMessage
from pigeon.services.account import DescribeAccount
from pigeon.services.authenticate import Authenticate, Caller
from pigeon.services.connector_stats import ReadConnectorStats
from pigeon.services.connectors import ManageConnectors, ManageRoutes
from pigeon.services.queries import ReadMessages
from pigeon.services.routing import ExplainRoute
from pigeon.services.webhook_endpoints import ManageWebhookEndpoints


@dataclass(frozen=True)
class ApiServices:
    """Everything the REST API needs from the rest of Pigeon, handed in by ``bootstrap``."""

    authenticate: Authenticate
    accept: AcceptMessage
    read: ReadMessages
    endpoints: ManageWebhookEndpoints
    #: Readiness of each dependency, e.g. ``{"store": True, "queue": True, "connectors": True}``.
    readiness: Callable[[], Awaitable[dict[str, bool]]]
    #: Refreshes sampled gauges (queue depth...) just before a Prometheus scrape.
    before_metrics: Callable[[], Awaitable[None]]
    account: DescribeAccount
    #: Explains routing decisions (``None`` where routing is not wired, e.g. API-only tests).
    explain: ExplainRoute | None = None
    #: Quality figures per connector (operator keys; ``None`` where not wired).
    connector_stats: ReadConnectorStats | None = None
    #: Connectors and routes as data (operator keys; ``None`` where not wired).
    connectors: ManageConnectors | None = None
    routes: ManageRoutes | None = None
    #: HTTP carriers' receipt and inbound callbacks, by connector id.
    carrier_callbacks: CarrierCallbacks | None = None


#: Handler parameter types: Litestar injects the dependency registered under the parameter's name
#: (``services`` app-wide, ``caller`` on ``/v1``).
Services = NamedDependency[ApiServices]
CurrentCaller = NamedDependency[Caller]

SECURITY_SCHEME_NAME = "apiKey"

SECURITY_SCHEME = SecurityScheme(
    type="http",
    scheme="bearer",
    description="An API key (`pk_live_...` or `pk_test_...`) as a bearer token.",
)


async def provide_caller(request: Request[Any, Any, Any], services: Services) -> Caller:
    """The tenant behind the request's API key; ``Unauthorized`` (401) without a valid one."""
    return await services.authenticate(request.headers.get("authorization"))
