"""The Litestar application factory of the REST API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from litestar import Litestar, Request, Response, Router, get
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Tag
from litestar.types import (
    ExceptionHandlersMap,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)

from pigeon.api.dependencies import (
    SECURITY_SCHEME,
    SECURITY_SCHEME_NAME,
    ApiServices,
    provide_caller,
)
from pigeon.api.docs import DocsPlugin, SchemaPlugin, openapi_document
from pigeon.api.fast_accept import FastAccept
from pigeon.api.problems import handle_http_exception, handle_pigeon_error, handle_unexpected
from pigeon.api.routes import (
    account,
    connector_stats,
    connectors,
    messages,
    operations,
    routing,
    webhook_endpoints,
)
from pigeon.domain.errors import PigeonError

__all__ = ["ApiServices", "PigeonApp", "create_app"]

API_VERSION = "1.0.0"

DESCRIPTION = (
    "Pigeon is a self-hosted SMS gateway. Every `/v1` route needs "
    "`Authorization: Bearer <API key>`; a `pk_test_` key runs the whole pipeline against the "
    "built-in carrier simulator. Times are UTC ISO-8601, ids are prefixed (`msg_`, `whe_`), "
    "lists are cursor-paginated (`?limit=&cursor=` -> `{data, next_cursor}`), and errors are "
    "`application/problem+json` with a stable `code`."
)


@get(
    "/openapi.json",
    include_in_schema=False,
    media_type="application/vnd.oai.openapi+json",
    sync_to_thread=False,
)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The OpenAPI 3.1 document."""
    return Response(openapi_document(request.app))


class PigeonApp(Litestar):
    """The Litestar app with ``POST /v1/messages`` answered first by ``fast_accept`` when set.

    Every other request (and that one too when ``fast_accept`` is ``None``) goes to Litestar
    unchanged; see ``pigeon.api.fast_accept`` for why.
    """

    fast_accept: FastAccept | None = None

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        """Serve one ASGI connection (or the lifespan)."""
        fast = self.fast_accept
        if fast is not None and fast.serves(scope):
            await fast(scope, cast("Receive", receive), cast("Send", send))
            return
        await super().__call__(scope, receive, send)


def create_app(
    services: ApiServices,
    *,
    max_body_bytes: int = 1_048_576,
    lifespan: Sequence[Callable[[Litestar], AbstractAsyncContextManager[None]]] = (),
    fast_accept: bool = True,
) -> PigeonApp:
    """The REST API over ``services``: ``/v1`` routes, operations endpoints and offline docs.

    Request bodies larger than ``max_body_bytes`` are refused with ``413`` (checked on the
    announced ``Content-Length`` and on the bytes actually received). ``fast_accept=False``
    leaves ``POST /v1/messages`` to the Litestar route too (same answers, more CPU): the
    equivalence tests compare the two.
    """

    def provide_services() -> ApiServices:
        return services

    v1 = Router(
        path="/v1",
        route_handlers=[
            *messages.ROUTES,
            *webhook_endpoints.ROUTES,
            *account.ROUTES,
            *routing.ROUTES,
            *connector_stats.ROUTES,
            *connectors.ROUTES,
        ],
        dependencies={"caller": Provide(provide_caller)},
        security=[{SECURITY_SCHEME_NAME: []}],
    )
    exception_handlers: ExceptionHandlersMap = {
        PigeonError: handle_pigeon_error,
        HTTPException: handle_http_exception,
        Exception: handle_unexpected,
    }
    app = PigeonApp(
        route_handlers=[v1, *connectors.CALLBACK_ROUTES, *operations.ROUTES, openapi_json],
        dependencies={"services": Provide(provide_services, sync_to_thread=False, use_cache=True)},
        exception_handlers=exception_handlers,
        request_max_body_size=max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Pigeon",
            version=API_VERSION,
            description=DESCRIPTION,
            path="/docs",
            render_plugins=[DocsPlugin(path="/"), SchemaPlugin(path="/openapi.json")],
            components=Components(security_schemes={SECURITY_SCHEME_NAME: SECURITY_SCHEME}),
            tags=[
                Tag(name="Messages", description="Send, preview, read and list messages."),
                Tag(name="Webhook endpoints", description="Where signed events are posted."),
                Tag(name="Routing", description="Which carriers a message would try, and why."),
                Tag(name="Connectors", description="Carrier links and how well they deliver."),
                Tag(name="Carrier callbacks", description="HTTP carriers' receipts and replies."),
                Tag(name="Operations", description="Health, readiness and metrics."),
            ],
            use_handler_docstrings=False,
        ),
        lifespan=list(lifespan),
        logging_config=None,
    )
    if fast_accept:
        app.fast_accept = FastAccept(services, max_body_bytes=max_body_bytes)
    return app
