"""uvicorn on a loopback port with Pigeon's HTTP protocol, as ``pigeon serve`` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from pigeon.api.http_protocol import CoalescingHttpToolsProtocol


@contextlib.asynccontextmanager
async def serving(app: Any, **config: Any) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 with ``CoalescingHttpToolsProtocol`` until the block ends;
    yields the port. ``config`` overrides the ``uvicorn.Config`` defaults used here (no
    lifespan, no websockets, warnings only, no access log)."""
    options: dict[str, Any] = {
        "lifespan": "off",
        "ws": "none",
        "log_level": "warning",
        "access_log": False,
        **config,
    }
    server = uvicorn.Server(uvicorn.Config(app, http=CoalescingHttpToolsProtocol, **options))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    running = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if running.done():
                running.result()  # its failure, if it failed to start
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await running
        sock.close()
