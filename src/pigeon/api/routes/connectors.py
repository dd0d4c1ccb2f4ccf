"""``/v1/connectors`` and ``/v1/routes``: carrier links and the routing table as data
(operator keys only), and ``/v1/carriers/{id}/receipts|inbound``: HTTP carriers' callbacks.

Every change applies at once, without a restart. Credentials in connector options are never
answered back: they read ``********`` (send that value back in a PATCH to keep a secret).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post, put
from litestar.params import PathParameter

from pigeon.api.dependencies import CurrentCaller, Services
from pigeon.api.problems import BODY_PROBLEMS, ApiError, problem, problem_responses
from pigeon.api.schemas import decode_body
from pigeon.domain.errors import NotFound, ValidationError
from pigeon.ports import CarrierRequest
from pigeon.services.authenticate import Caller
from pigeon.services.connectors import ManageConnectors, ManageRoutes, prices_csv_from_rows

TAGS = ["Connectors"]
ConnectorId = Annotated[str, PathParameter(description="The connector id.")]
RouteId = Annotated[str, PathParameter(description="The route id.")]

_OPERATOR = ("unauthorized", "forbidden")


class CreateConnectorRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A connector to add (``POST /v1/connectors``)."""

    id: str
    type: str
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True
    #: The price list as CSV (``prefix``/``country``, ``price``, ``currency``).
    prices: str | None = None


class UpdateConnectorRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Changes to a connector (``PATCH``): options are merged, ``null`` removes a key."""

    type: str | None = None
    options: dict[str, Any] | None = None
    enabled: bool | None = None


class RoutesRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The whole routing table, in order (``PUT /v1/routes``)."""

    routes: list[dict[str, Any]]


class PricesRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Price rows as JSON (``PUT /v1/connectors/{id}/prices``)."""

    rows: list[dict[str, Any]]


def _connectors(caller: Caller, services: Services) -> ManageConnectors:
    caller.require_operator()
    if services.connectors is None:
        raise NotFound("Connectors are not managed by this process.")
    return services.connectors


def _routes(caller: Caller, services: Services) -> ManageRoutes:
    caller.require_operator()
    if services.routes is None:
        raise NotFound("Routes are not managed by this process.")
    return services.routes


def _json_body(raw: bytes) -> bytes:
    # PostgreSQL cannot store NUL characters in JSON: refuse them up front.
    if raw.find(b"\\u0000") != -1:  # ``in`` raises and clears a TypeError first
        raise ValidationError("NUL characters are not allowed.", code="invalid_field")
    return raw


@get(
    "/connectors",
    operation_id="listConnectors",
    tags=TAGS,
    summary="List connectors",
    description="Every carrier connector, credentials masked (operator keys only).",
    responses=problem_responses(*_OPERATOR),
)
async def list_connectors(caller: CurrentCaller, services: Services) -> dict[str, Any]:
    """Every connector."""
    return {"data": await _connectors(caller, services).list_connectors()}


@post(
    "/connectors",
    operation_id="createConnector",
    status_code=201,
    tags=TAGS,
    summary="Add a connector",
    description=(
        "Adds a carrier connector (`smpp`, `generic_http`, `twilio` or `infobip`) and starts "
        "it at once when `enabled`. `options` are the adapter's settings, as in `pigeon.toml`."
    ),
    opt={"request_body": CreateConnectorRequest},
    responses=problem_responses(
        *_OPERATOR, *BODY_PROBLEMS, "invalid_connector", "invalid_price_list", "connector_exists"
    ),
)
async def create_connector(
    request: Request[Any, Any, Any], caller: CurrentCaller, services: Services
) -> Response[dict[str, Any]]:
    """Add a connector."""
    manage = _connectors(caller, services)
    body = decode_body(_json_body(await request.body()), CreateConnectorRequest)
    view = await manage.add(
        body.id, body.type, body.options, enabled=body.enabled, prices_csv=body.prices
    )
    return Response(view, status_code=201, headers={"Location": f"/v1/connectors/{body.id}"})


@get(
    "/connectors/{connector_id:str}",
    operation_id="getConnector",
    tags=TAGS,
    summary="Get a connector",
    description="One connector, credentials masked.",
    responses=problem_responses(*_OPERATOR, "not_found"),
)
async def get_connector(
    caller: CurrentCaller, services: Services, connector_id: ConnectorId
) -> dict[str, Any]:
    """One connector."""
    return await _connectors(caller, services).get(connector_id)


@patch(
    "/connectors/{connector_id:str}",
    operation_id="updateConnector",
    tags=TAGS,
    summary="Change a connector",
    description=(
        "Changes `type`, `options` (merged; `null` removes a key; a masked secret keeps its "
        "value) or `enabled`. A changed connector is rebuilt and restarted at once; a "
        "disabled one stops and leaves every route plan."
    ),
    opt={"request_body": UpdateConnectorRequest},
    responses=problem_responses(*_OPERATOR, *BODY_PROBLEMS, "not_found", "invalid_connector"),
)
async def update_connector(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    services: Services,
    connector_id: ConnectorId,
) -> dict[str, Any]:
    """Change a connector."""
    manage = _connectors(caller, services)
    body = decode_body(_json_body(await request.body()), UpdateConnectorRequest)
    return await manage.update(
        connector_id, connector_type=body.type, options=body.options, enabled=body.enabled
    )


@delete(
    "/connectors/{connector_id:str}",
    operation_id="deleteConnector",
    tags=TAGS,
    summary="Remove a connector",
    description="Stops and removes a connector no route names any more.",
    responses=problem_responses(*_OPERATOR, "not_found", "connector_in_use"),
)
async def delete_connector(
    caller: CurrentCaller, services: Services, connector_id: ConnectorId
) -> None:
    """Remove a connector."""
    await _connectors(caller, services).remove(connector_id)


@put(
    "/connectors/{connector_id:str}/prices",
    operation_id="setConnectorPrices",
    tags=TAGS,
    summary="Replace a connector's price list",
    description=(
        "The per-segment prices: `text/csv` with a header (`prefix` and/or `country`, "
        '`price`, `currency`), or JSON `{"rows": [{"country": "GB", "price": "0.03", '
        '"currency": "EUR"}]}`. Least-cost routes use them at once.'
    ),
    responses=problem_responses(
        *_OPERATOR, *BODY_PROBLEMS, "not_found", "invalid_price_list", "unsupported_media_type"
    ),
)
async def set_connector_prices(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    services: Services,
    connector_id: ConnectorId,
) -> dict[str, Any]:
    """Replace a connector's prices."""
    manage = _connectors(caller, services)
    raw = await request.body()
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type in ("text/csv", "text/plain"):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("The CSV is not UTF-8.", code="invalid_price_list") from None
    elif media_type in ("application/json", ""):
        text = prices_csv_from_rows(decode_body(_json_body(raw), PricesRequest).rows)
    else:
        raise ApiError(415, "unsupported_media_type", "Send text/csv or application/json.")
    return await manage.set_prices(connector_id, text)


@delete(
    "/connectors/{connector_id:str}/prices",
    operation_id="deleteConnectorPrices",
    tags=TAGS,
    summary="Remove a connector's price list",
    description="The connector becomes unpriced (last in least-cost routes).",
    responses=problem_responses(*_OPERATOR, "not_found"),
)
async def delete_connector_prices(
    caller: CurrentCaller, services: Services, connector_id: ConnectorId
) -> None:
    """Remove a connector's prices."""
    await _connectors(caller, services).set_prices(connector_id, None)


@get(
    "/routes",
    operation_id="listRoutes",
    tags=TAGS,
    summary="Get the routing table",
    description="The routes in order, each with the keys of a `[[routes]]` table.",
    responses=problem_responses(*_OPERATOR),
)
async def list_routes(caller: CurrentCaller, services: Services) -> dict[str, Any]:
    """The routing table."""
    return {"routes": await _routes(caller, services).list_routes()}


@put(
    "/routes",
    operation_id="replaceRoutes",
    tags=TAGS,
    summary="Replace the routing table",
    description=(
        "Replaces every route with `routes` (in order), after checking the whole table as "
        "`pigeon.toml` is checked; applied at once."
    ),
    opt={"request_body": RoutesRequest},
    responses=problem_responses(*_OPERATOR, *BODY_PROBLEMS, "invalid_routes"),
)
async def replace_routes(
    request: Request[Any, Any, Any], caller: CurrentCaller, services: Services
) -> dict[str, Any]:
    """Replace the routing table."""
    manage = _routes(caller, services)
    body = decode_body(_json_body(await request.body()), RoutesRequest)
    return {"routes": await manage.replace(body.routes)}


@post(
    "/routes",
    operation_id="addRoute",
    status_code=201,
    tags=TAGS,
    summary="Add a route",
    description="Adds one route (an object with an `id`) at the end of the table.",
    responses=problem_responses(*_OPERATOR, *BODY_PROBLEMS, "invalid_routes"),
)
async def add_route(
    request: Request[Any, Any, Any], caller: CurrentCaller, services: Services
) -> dict[str, Any]:
    """Add a route."""
    manage = _routes(caller, services)
    try:
        route = msgspec.json.decode(_json_body(await request.body()))
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(route, dict):
        raise ValidationError("Send a route object with an id.", code="invalid_request")
    return {"routes": await manage.replace([*await manage.list_routes(), route])}


@delete(
    "/routes/{route_id:str}",
    operation_id="deleteRoute",
    tags=TAGS,
    summary="Remove a route",
    description="Removes one route from the table.",
    responses=problem_responses(*_OPERATOR, "not_found", "invalid_routes"),
)
async def delete_route(caller: CurrentCaller, services: Services, route_id: RouteId) -> None:
    """Remove a route."""
    manage = _routes(caller, services)
    table = await manage.list_routes()
    kept = [route for route in table if route["id"] != route_id]
    if len(kept) == len(table):
        raise NotFound(f"no route {route_id!r}")
    await manage.replace(kept)


ROUTES = [
    list_connectors,
    create_connector,
    get_connector,
    update_connector,
    delete_connector,
    set_connector_prices,
    delete_connector_prices,
    list_routes,
    replace_routes,
    add_route,
    delete_route,
]


async def _carrier_callback(
    kind: str, request: Request[Any, Any, Any], services: Services, connector_id: str
) -> Response[bytes]:
    callbacks = services.carrier_callbacks
    carrier_request = CarrierRequest(
        kind=kind,
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        body=await request.body(),
    )
    answer = None if callbacks is None else await callbacks(connector_id, carrier_request)
    if answer is None:
        return problem(404, "not_found", f"No HTTP carrier connector {connector_id!r}.")
    return Response(content=answer.body, status_code=answer.status, media_type=answer.content_type)


@post(
    "/v1/carriers/{connector_id:str}/receipts",
    operation_id="carrierReceipts",
    tags=["Carrier callbacks"],
    summary="Delivery reports from an HTTP carrier",
    description=(
        "Where an HTTP carrier posts delivery reports. No API key: the connector checks the "
        "carrier's signature or shared secret (403 when it does not match)."
    ),
    security=[],
    status_code=200,
)
async def carrier_receipts(
    request: Request[Any, Any, Any], services: Services, connector_id: ConnectorId
) -> Response[bytes]:
    """A carrier's delivery reports."""
    return await _carrier_callback("receipts", request, services, connector_id)


@post(
    "/v1/carriers/{connector_id:str}/inbound",
    operation_id="carrierInbound",
    tags=["Carrier callbacks"],
    summary="Inbound messages from an HTTP carrier",
    description="Where an HTTP carrier posts replies (MO); checked like receipts.",
    security=[],
    status_code=200,
)
async def carrier_inbound(
    request: Request[Any, Any, Any], services: Services, connector_id: ConnectorId
) -> Response[bytes]:
    """A carrier's inbound messages."""
    return await _carrier_callback("inbound", request, services, connector_id)


CALLBACK_ROUTES = [carrier_receipts, carrier_inbound]
