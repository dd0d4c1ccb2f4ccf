"""``/v1/webhook-endpoints``: where a tenant's signed events go."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.params import PathParameter

from pigeon.api.dependencies import CurrentCaller, Services
from pigeon.api.problems import BODY_PROBLEMS, problem_responses
from pigeon.api.schemas import (
    CreatedWebhookEndpoint,
    CreateWebhookEndpointRequest,
    WebhookEndpointList,
    WebhookEndpointResponse,
    created_endpoint,
    decode_body,
    endpoint_response,
    resource_id,
)

TAGS = ["Webhook endpoints"]
EndpointId = Annotated[str, PathParameter(description="The endpoint id, `whe_...`.")]


@post(
    "/webhook-endpoints",
    operation_id="createWebhookEndpoint",
    status_code=201,
    tags=TAGS,
    summary="Create a webhook endpoint",
    description=(
        "Registers a URL for the tenant's events and answers with its signing `secret` "
        "(`whsec_...`), which is shown only in this response."
    ),
    opt={"request_body": CreateWebhookEndpointRequest},
    responses=problem_responses(
        "unauthorized", *BODY_PROBLEMS, "invalid_url", "invalid_event_type"
    ),
)
async def create_webhook_endpoint(
    request: Request[Any, Any, Any], caller: CurrentCaller, services: Services
) -> Response[CreatedWebhookEndpoint]:
    """Register a webhook endpoint."""
    body = decode_body(await request.body(), CreateWebhookEndpointRequest)
    endpoint = await services.endpoints.create(caller, body.url, body.events)
    return Response(
        created_endpoint(endpoint),
        status_code=201,
        headers={"Location": f"/v1/webhook-endpoints/{endpoint.id}"},
    )


@get(
    "/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    tags=TAGS,
    summary="List webhook endpoints",
    description="Every endpoint of the tenant, without secrets.",
    responses=problem_responses("unauthorized"),
)
async def list_webhook_endpoints(caller: CurrentCaller, services: Services) -> WebhookEndpointList:
    """The tenant's webhook endpoints."""
    endpoints = await services.endpoints.list(caller)
    return WebhookEndpointList(data=[endpoint_response(endpoint) for endpoint in endpoints])


@get(
    "/webhook-endpoints/{endpoint_id:str}",
    operation_id="getWebhookEndpoint",
    tags=TAGS,
    summary="Get a webhook endpoint",
    description="One endpoint of the tenant, without its secret.",
    responses=problem_responses("unauthorized", "not_found", "invalid_parameter"),
)
async def get_webhook_endpoint(
    caller: CurrentCaller, services: Services, endpoint_id: EndpointId
) -> WebhookEndpointResponse:
    """One webhook endpoint."""
    return endpoint_response(
        await services.endpoints.get(caller, resource_id(endpoint_id, "webhook endpoint"))
    )


@delete(
    "/webhook-endpoints/{endpoint_id:str}",
    operation_id="deleteWebhookEndpoint",
    tags=TAGS,
    summary="Delete a webhook endpoint",
    description="Stops sending events to the endpoint; answers `204`.",
    responses=problem_responses("unauthorized", "not_found", "invalid_parameter"),
)
async def delete_webhook_endpoint(
    caller: CurrentCaller, services: Services, endpoint_id: EndpointId
) -> None:
    """Remove a webhook endpoint."""
    await services.endpoints.delete(caller, resource_id(endpoint_id, "webhook endpoint"))


ROUTES = [
    create_webhook_endpoint,
    list_webhook_endpoints,
    get_webhook_endpoint,
    delete_webhook_endpoint,
]
