"""Pigeon benchmarks: sustained REST accept rate and end-to-end delivered rate.

Starts ``pigeon serve`` as a real process (SQLite in a temporary directory, the built-in
simulator as the carrier), drives it from a separate load-generator process over loopback and
prints the figures as Markdown rows for ``docs/benchmarks.md``.

    .venv/bin/python bench/run.py [--seconds 15] [--concurrency 64] [--messages 5000]

Scenarios:
  accept  N concurrent clients post single messages for --seconds; accepted msg/s and latency
          percentiles. Workers are off, so this is the durable accept path alone.
  e2e     --messages posted as fast as the clients go with workers on and receipts after 0.1 s;
          delivered msg/s from the first accept to the last ``delivered`` status.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

KEY = "pk_live_bench_0123456789abcdefghijklmnop"
BODY = {"to": "+14155550100", "body": "Your verification code is 123456"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``pigeon serve`` in a child process."""

    def __init__(self, data_dir: Path, *, workers: bool, receipt_delay: float) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "PIGEON_DATA_DIR": str(data_dir),
            "PIGEON_HTTP_PORT": str(self.port),
            "PIGEON_SMPP_PORT": str(free_port()),
            "PIGEON_BOOTSTRAP_API_KEY": KEY,
            "PIGEON_RUN_WORKERS": "true" if workers else "false",
            "PIGEON_SIMULATOR_RECEIPT_DELAY": str(receipt_delay),
            "PIGEON_LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pigeon", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("pigeon serve did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def rss_mb(self) -> float:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def count(self, status: str) -> int:
        with sqlite3.connect(self.data_dir / "pigeon.db", timeout=30) as db:
            row = db.execute("SELECT count(*) FROM messages WHERE status = ?", (status,)).fetchone()
        return int(row[0])


async def _client(url: str, deadline: float, limit: int | None, shared: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        while time.monotonic() < deadline:
            if limit is not None and shared["sent"] >= limit:
                return
            shared["sent"] += 1
            started = time.perf_counter()
            async with session.post(f"{url}/v1/messages", json=BODY, headers=headers) as reply:
                await reply.read()
                if reply.status == 202:
                    shared["latencies"].append(time.perf_counter() - started)
                else:
                    shared["errors"] += 1


def _load(url: str, seconds: float, concurrency: int, limit: int | None, out: Any) -> None:
    """Load-generator process body: post until the deadline (or the limit), report back."""
    shared: dict[str, Any] = {"sent": 0, "latencies": [], "errors": 0}

    async def main() -> float:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(_client(url, deadline, limit, shared) for _ in range(concurrency)))
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    out.put((elapsed, shared["latencies"], shared["errors"]))


def drive(url: str, seconds: float, concurrency: int, limit: int | None = None) -> dict[str, Any]:
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_load, args=(url, seconds, concurrency, limit, queue))
    process.start()
    elapsed, latencies, errors = queue.get()
    process.join()
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [0.0] * 99
    return {
        "accepted": len(latencies),
        "errors": errors,
        "elapsed": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
    }


def accept_scenario(seconds: float, concurrency: int) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Server(Path(tmp), workers=False, receipt_delay=0.1) as server,
    ):
        result = drive(server.url, seconds, concurrency)
        rss = server.rss_mb()
    return (
        f"| REST accept, SQLite, workers off | {concurrency} clients, {seconds:.0f} s | "
        f"{result['rate']:,.0f} msg/s | {result['p50_ms']:.1f} ms | {result['p99_ms']:.1f} ms | "
        f"{rss:.0f} MB | {result['errors']} errors |"
    )


def e2e_scenario(messages: int, concurrency: int) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Server(Path(tmp), workers=True, receipt_delay=0.1) as server,
    ):
        started = time.monotonic()
        result = drive(server.url, 600, concurrency, limit=messages)
        accepted = result["accepted"]
        deadline = time.monotonic() + 600
        delivered = 0
        while time.monotonic() < deadline:
            delivered = server.count("delivered")
            if delivered >= accepted:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        rss = server.rss_mb()
    return (
        f"| End to end via simulator, SQLite | {accepted} messages, {concurrency} clients | "
        f"{delivered / elapsed:,.0f} delivered msg/s | accept {result['rate']:,.0f} msg/s | "
        f"accept p99 {result['p99_ms']:.1f} ms | {rss:.0f} MB | {delivered}/{accepted} delivered |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--scenario", choices=["accept", "e2e", "all"], default="all")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"command: {' '.join(sys.argv)}")
    if args.scenario in ("accept", "all"):
        print(accept_scenario(args.seconds, args.concurrency), flush=True)
    if args.scenario in ("e2e", "all"):
        print(e2e_scenario(args.messages, args.concurrency), flush=True)


if __name__ == "__main__":
    main()
