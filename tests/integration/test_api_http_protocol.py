"""uvicorn with ``CoalescingHttpToolsProtocol`` on a real loopback socket answers as HTTP/1.1
requires: keep-alive, pipelined requests in order, streamed bodies whole, a close after the
response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from pigeon.api.http_protocol import FLUSH_BYTES
from support.http_server import serving

CHUNK = b"0123456789abcdef" * 2048  # 32 KiB
CHUNKS = 40


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app: ``/echo`` answers the request body, ``/stream`` streams CHUNKS."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(CHUNKS):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = scope["path"].encode() + b":" + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """uvicorn serving ``app`` with the coalescing protocol on a loopback port."""
    async with serving(app, lifespan="on") as bound:
        yield bound


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout=10)


async def test_keep_alive_requests_on_one_connection(port: int) -> None:
    """Several requests on one kept-alive connection each get their own whole answer."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for index in range(5):
            response = await client.post(f"/echo/{index}", content=b"x" * index)
            assert response.status_code == 200
            assert response.content == f"/echo/{index}:".encode() + b"x" * index


async def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    """Three requests sent at once are answered in order, and a close follows the last."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    requests = b"".join(
        b"POST /p%d HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n%s\r\n%d"
        % (index, b"connection: close\r\n" if index == 2 else b"", index)
        for index in range(3)
    )
    writer.write(requests)
    await writer.drain()
    data = await _read_all(reader)
    writer.close()
    assert data.count(b"HTTP/1.1 200 OK") == 3
    positions = [data.index(b"/p%d:%d" % (index, index)) for index in range(3)]
    assert positions == sorted(positions)
    assert data.endswith(b"/p2:2")


async def test_a_streamed_body_arrives_whole(port: int) -> None:
    """A body streamed in chunks past FLUSH_BYTES arrives whole and in order."""
    assert len(CHUNK) * CHUNKS > 10 * FLUSH_BYTES
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        response = await client.get("/stream")
    assert response.status_code == 200
    assert response.content == CHUNK * CHUNKS


async def test_connection_close_comes_after_the_response(port: int) -> None:
    """With ``Connection: close`` the whole response is sent before the connection closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /bye HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    await writer.drain()
    data = await _read_all(reader)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n/bye:")
