"""A tiny HTTP control endpoint for a running simulator (loopback only, no dependencies).

Routes (JSON in and out, one request per connection):

* ``GET /stats``: the counters (submits, receipts, MO, binds with their in-flight maxima);
* ``GET /messages``: the last 1,000 messages received, reassembled;
* ``GET /received?since=N&limit=M&match=TEXT``: messages received from index ``N`` on (0 is
  the first message since start), at most ``M`` (default 10,000), only those whose text
  contains ``TEXT`` when given; each with its ``index`` and when it arrived (``monotonic``:
  ``time.monotonic()`` of the host, comparable across processes; ``wall``: Unix time).
  Answers ``{"total": ..., "next": ..., "messages": [...]}``: ask again with ``since=next``;
* ``POST /mo`` with ``{"source": "+447700900123", "destination": "12345", "text": "hi",
  "concat": "udh8"}``: inject a mobile-originated message; answers ``{"parts": n}``.

Example::

    curl -s -X POST localhost:8776/mo -d '{"source":"+4477","destination":"1","text":"hi"}'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pigeon.smsc_sim.server import SmscSimulator

__all__ = ["received_document", "start_control", "stats_document"]

_MAX_BODY = 64 * 1024
_RECEIVED_LIMIT = 10_000
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 504: "Timeout"}


def stats_document(sim: SmscSimulator) -> dict[str, Any]:
    """The simulator's counters as a JSON-ready dict."""
    stats = sim.stats
    return {
        "port": sim.port,
        "connections": stats.connections,
        "binds_refused": stats.binds_refused,
        "submits_received": stats.submits_received,
        "submits_accepted": stats.submits_accepted,
        "submits_dropped": stats.submits_dropped,
        "submits_refused": {f"0x{k:08X}": v for k, v in stats.submits_refused.items()},
        "receipts_sent": stats.receipts_sent,
        "receipts_acked": stats.receipts_acked,
        "mo_sent": stats.mo_sent,
        "mo_acked": stats.mo_acked,
        "disconnects": stats.disconnects,
        "enquire_links": stats.enquire_links,
        "unbinds": stats.unbinds,
        "max_in_flight": stats.max_in_flight,
        "binds": [
            {
                "number": b.number,
                "system_id": b.system_id,
                "mode": b.mode,
                "open": b.open,
                "submits": b.submits,
                "in_flight": b.in_flight,
                "max_in_flight": b.max_in_flight,
                "receipts_sent": b.receipts_sent,
                "mo_sent": b.mo_sent,
            }
            for b in stats.binds
        ],
    }


def received_document(
    sim: SmscSimulator, since: int = 0, limit: int = _RECEIVED_LIMIT, match: str = ""
) -> dict[str, Any]:
    """Messages received from index ``since`` on (at most ``limit`` scanned), with their
    arrival times; only those whose text contains ``match`` when it is not empty."""
    messages = sim.messages
    total = len(messages)
    start = max(0, min(since, total))
    end = min(total, start + max(0, limit))
    found = []
    for index in range(start, end):
        m = messages[index]
        if match and match not in m.text:
            continue
        found.append(
            {
                "index": index,
                "source": m.source,
                "destination": m.destination,
                "text": m.text,
                "message_ids": list(m.message_ids),
                "monotonic": m.received_at,
                "wall": m.received_wall,
            }
        )
    return {"total": total, "next": end, "messages": found}


def _query_int(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    return int(values[0]) if values else default


async def _route(
    sim: SmscSimulator, method: str, path: str, body: bytes, query: str = ""
) -> tuple[int, Any]:
    if method == "GET" and path == "/received":
        try:
            params = urllib.parse.parse_qs(query)
            since = _query_int(params, "since", 0)
            limit = _query_int(params, "limit", _RECEIVED_LIMIT)
        except ValueError as exc:
            return 400, {"error": f"bad request: {exc}"}
        match = params.get("match", [""])[0]
        return 200, received_document(sim, since, limit, match)
    if method == "GET" and path == "/stats":
        return 200, stats_document(sim)
    if method == "GET" and path == "/messages":
        return 200, [
            {
                "source": m.source,
                "destination": m.destination,
                "text": m.text,
                "data_coding": m.data_coding,
                "message_ids": list(m.message_ids),
                "concat": m.concat,
            }
            for m in sim.messages[-1000:]
        ]
    if method == "POST" and path == "/mo":
        try:
            data = json.loads(body or b"{}")
            source, destination, text = data["source"], data["destination"], data["text"]
            concat = data.get("concat", "udh8")
            if concat not in ("udh8", "udh16", "sar", "payload"):
                raise ValueError("concat must be udh8, udh16, sar or payload")
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": f"bad request: {exc!r}"}
        parts = await sim.send_mo(
            str(source), str(destination), str(text), concat=concat, timeout=None
        )
        return 202, {"parts": parts}
    return 404, {"error": "not found"}


async def _serve(
    sim: SmscSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        lines = head.decode("latin-1").split("\r\n")
        method, path, *_ = lines[0].split(" ")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = min(int(value.strip() or "0"), _MAX_BODY)
        body = await asyncio.wait_for(reader.readexactly(length), 10.0) if length else b""
        target, _, query = path.partition("?")
        status, document = await _route(sim, method.upper(), target, body, query)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        status, document = 400, {"error": "bad request"}
    payload = json.dumps(document).encode()
    writer.write(
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n".encode("latin-1")
        + payload
    )
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def start_control(sim: SmscSimulator, host: str, port: int) -> asyncio.Server:
    """Start the control endpoint on ``host:port`` (0: any free port)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve(sim, reader, writer)

    return await asyncio.start_server(handle, host, port)
