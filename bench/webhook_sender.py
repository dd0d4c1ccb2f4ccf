"""Webhook sender benchmark: our HTTP/1.1 client against an aiohttp ClientSession.

A receiver (aiohttp.web, answering ``204``) runs in a child process on 127.0.0.1, so the CPU
time measured here (``time.process_time`` of this process) is the sending side only. The two
senders take turns, round after round, posting ``--requests`` signed-looking JSON webhooks each
with ``--concurrency`` tasks; the totals give requests per second and CPU microseconds per
request for each, and their ratio.

    .venv/bin/python bench/webhook_sender.py --requests 20000 --concurrency 32 --rounds 3

``--paths`` compares two ways of driving our client instead, in groups of ``--concurrency``
requests (as a claim of webhook jobs): ``tasks``, a task per request awaiting ``send`` (the
job runner before batches), and ``started``, each request started with ``start_send`` and
the group awaited together (a batch of ``DeliverWebhook.run_each``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from pigeon.webhooks.sender import MAX_RESPONSE_BYTES, USER_AGENT, HttpWebhookSender

BODY = (
    b'{"id":"evt_01HZX","type":"message.delivered",'
    b'"data":{"message_id":"msg_1","to":"+31600000000"}}'
)
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "evt_01HZX",
    "webhook-timestamp": "1764000000",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}
TIMEOUT = 10.0

Post = Callable[[str], Awaitable[int]]


def _receiver(conn: multiprocessing.connection.Connection) -> None:
    """Child process: serve ``POST /hook`` with 204 until the parent closes the pipe."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        conn.send(runner.addresses[0][1])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _recv_bytes_or_eof, conn)
        await runner.cleanup()

    asyncio.run(serve())


def _recv_bytes_or_eof(conn: multiprocessing.connection.Connection) -> None:
    try:
        conn.recv_bytes()
    except EOFError:
        return


@dataclass
class Tally:
    """Totals of one sender over all rounds."""

    name: str
    requests: int = 0
    wall: float = 0.0
    cpu: float = 0.0

    def add(self, round_no: int, requests: int, wall: float, cpu: float) -> None:
        """Count one run of the round ``round_no`` (from 0) and print it."""
        self.requests += requests
        self.wall += wall
        self.cpu += cpu
        print(
            f"round {round_no + 1} {self.name:>8}: {requests / wall:,.0f} req/s, "
            f"{cpu / requests * 1e6:,.1f} CPU µs/request",
            flush=True,
        )

    def line(self) -> str:
        """One printed line: requests per second and CPU microseconds per request."""
        return (
            f"{self.name:>8}: {self.requests} requests, {self.requests / self.wall:,.0f} req/s, "
            f"{self.cpu / self.requests * 1e6:,.1f} CPU µs/request"
        )


async def _run(post: Post, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """Post ``requests`` webhooks with ``concurrency`` tasks; (wall, cpu) seconds."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status = await post(url)
            if status != 204:
                raise RuntimeError(f"unexpected status {status}")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def _run_grouped(
    sender: HttpWebhookSender, url: str, requests: int, group: int, *, started: bool
) -> tuple[float, float]:
    """Post ``requests`` webhooks in groups of ``group``: a task per request, or each
    started with ``start_send`` (a task only for one that cannot start); (wall, cpu)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for first in range(0, requests, group):
        count = min(group, requests - first)
        futures: list[asyncio.Future[int]] = []
        for _ in range(count):
            begun = sender.start_send(url, HEADERS, BODY, TIMEOUT) if started else None
            if begun is None:
                begun = asyncio.ensure_future(sender.send(url, HEADERS, BODY, TIMEOUT))
            futures.append(begun)
        await asyncio.wait(futures)
        for future in futures:
            if future.result() != 204:
                raise RuntimeError(f"unexpected status {future.result()}")
    return time.perf_counter() - wall, time.process_time() - cpu


async def _bench_paths(args: argparse.Namespace, port: int) -> None:
    url = f"http://127.0.0.1:{port}/hook"
    ours = HttpWebhookSender(limit=max(100, args.concurrency), limit_per_host=args.concurrency)
    tallies = {"tasks": Tally("tasks"), "started": Tally("started")}
    try:
        for name in tallies:  # warm up: connections, caches
            await _run_grouped(ours, url, 1000, args.concurrency, started=name == "started")
        for round_no in range(args.rounds):
            order = list(tallies) if round_no % 2 == 0 else list(reversed(tallies))
            for name in order:
                wall, cpu = await _run_grouped(
                    ours, url, args.requests, args.concurrency, started=name == "started"
                )
                tallies[name].add(round_no, args.requests, wall, cpu)
    finally:
        await ours.close()
    for tally in tallies.values():
        print(tally.line())


async def _aiohttp_drain(response: aiohttp.ClientResponse) -> None:
    """What the former aiohttp sender did with a body: read up to 64 KiB, then drop it."""
    remaining = MAX_RESPONSE_BYTES
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            return
        remaining -= len(chunk)
    if not response.content.at_eof():
        response.close()


async def _bench(args: argparse.Namespace, port: int) -> None:
    url = f"http://127.0.0.1:{port}/hook"
    ours = HttpWebhookSender(limit=max(100, args.concurrency), limit_per_host=args.concurrency)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max(100, args.concurrency), limit_per_host=args.concurrency
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
        auto_decompress=False,
    )

    async def post_ours(target: str) -> int:
        return await ours.send(target, HEADERS, BODY, TIMEOUT)

    async def post_aiohttp(target: str) -> int:
        async with session.post(
            target,
            data=BODY,
            headers=HEADERS,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        ) as response:
            await _aiohttp_drain(response)
            return response.status

    tallies = {"new": Tally("new"), "aiohttp": Tally("aiohttp")}
    posts: dict[str, Post] = {"new": post_ours, "aiohttp": post_aiohttp}
    try:
        for post in posts.values():  # warm up: connections, caches
            await _run(post, url, min(1000, args.requests), args.concurrency)
        for round_no in range(args.rounds):
            order = ["new", "aiohttp"] if round_no % 2 == 0 else ["aiohttp", "new"]
            for name in order:
                wall, cpu = await _run(posts[name], url, args.requests, args.concurrency)
                tallies[name].add(round_no, args.requests, wall, cpu)
    finally:
        await ours.close()
        await session.close()
    new, old = tallies["new"], tallies["aiohttp"]
    print(new.line())
    print(old.line())
    cpu_ratio = (old.cpu / old.requests) / (new.cpu / new.requests)
    rate_ratio = (new.requests / new.wall) / (old.requests / old.wall)
    print(
        f"ratio: aiohttp uses x{cpu_ratio:.2f} the CPU per request; new has x{rate_ratio:.2f} req/s"
    )


def main() -> None:
    """Parse the flags, start the receiver, run the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="webhooks per sender per round")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent deliveries")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both senders")
    parser.add_argument("--uvloop", action="store_true", help="run the senders on uvloop")
    parser.add_argument(
        "--paths", action="store_true", help="our client: a task per request against started"
    )
    args = parser.parse_args()
    bench = _bench_paths if args.paths else _bench

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    receiver = context.Process(target=_receiver, args=(child,), daemon=True)
    receiver.start()
    try:
        port = int(parent.recv())
        if args.uvloop:
            import uvloop  # optional: imported only when asked for

            uvloop.run(bench(args, port))
        else:
            asyncio.run(bench(args, port))
    finally:
        parent.close()
        receiver.join(timeout=5)
        if receiver.is_alive():
            receiver.terminate()


if __name__ == "__main__":
    main()
