"""Scaffolding shared by the HTTP carrier tests: aiohttp servers on loopback playing a carrier,
and our callback endpoints mounted as the REST layer mounts them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from pigeon.connectors.http import CallbackResult, CarrierCallback, HttpCarrierConnector

AnyHttpConnector = HttpCarrierConnector[Any]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on an ephemeral 127.0.0.1 port; the runner (to clean up) and base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def answer(result: CallbackResult) -> web.Response:
    """The aiohttp response for a connector's ``CallbackResult``."""
    headers = {"Content-Type": result.content_type} if result.content_type else {}
    return web.Response(status=result.status, body=result.body, headers=headers)


async def carrier_callback(request: web.Request) -> CarrierCallback:
    """An aiohttp request as the ``CarrierCallback`` the connectors' handlers take."""
    return CarrierCallback(request.method, str(request.url), request.headers, await request.read())


@asynccontextmanager
async def callback_server(
    connector: Callable[[], AnyHttpConnector | None],
) -> AsyncIterator[str]:
    """``/v1/carriers/{id}/receipts`` and ``.../inbound`` on loopback, handed to the connector
    ``connector()`` returns; yields the base URL."""

    def current() -> AnyHttpConnector:
        found = connector()
        assert found is not None, "no connector to hand the callback to"
        return found

    async def receipts(request: web.Request) -> web.Response:
        return await answer(
            await current().handle_receipt_callback(await carrier_callback(request))
        )

    async def inbound(request: web.Request) -> web.Response:
        return await answer(
            await current().handle_inbound_callback(await carrier_callback(request))
        )

    app = web.Application()
    app.router.add_route("*", "/v1/carriers/{connector_id}/receipts", receipts)
    app.router.add_route("*", "/v1/carriers/{connector_id}/inbound", inbound)
    runner, url = await serve(app)
    try:
        yield url
    finally:
        await runner.cleanup()
