"""Pigeon benchmarks: sustained REST accept rate and end-to-end delivered rate.

Starts ``pigeon serve`` as a real process (SQLite in a temporary directory, the built-in
simulator as the carrier), drives it from a separate load-generator process over loopback and
prints the figures as Markdown rows for ``docs/benchmarks.md``.

    .venv/bin/python bench/run.py [--seconds 15] [--concurrency 64] [--messages 5000]

``bench/suite.py`` (``make bench``) runs :func:`accept` as its scenario a, on SQLite and
PostgreSQL, followed by an open-loop load at a fixed rate (:func:`paced`).

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
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from harness import count_messages, free_port, percentiles, quiet_collector, rss_mb

KEY = "pk_live_bench_0123456789abcdefghijklmnop"
BODY = {"to": "+14155550100", "body": "Your verification code is 123456"}


class Server:
    """``pigeon serve`` in a child process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: bool,
        receipt_delay: float,
        database_url: str | None = None,
    ) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.database_url = database_url or f"sqlite:///{data_dir / 'pigeon.db'}"
        self.env = {
            **os.environ,
            "PIGEON_DATA_DIR": str(data_dir),
            "PIGEON_HTTP_PORT": str(self.port),
            "PIGEON_SMPP_PORT": str(free_port()),
            "PIGEON_BOOTSTRAP_API_KEY": KEY,
            "PIGEON_RUN_WORKERS": "true" if workers else "false",
            "PIGEON_SIMULATOR_RECEIPT_DELAY": str(receipt_delay),
            "PIGEON_LOG_LEVEL": "WARNING",
            "PIGEON_CONFIG": str(data_dir / "none.toml"),
        }
        if database_url:
            self.env["PIGEON_DATABASE_URL"] = database_url
        else:
            self.env.pop("PIGEON_DATABASE_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "none.toml").write_text("")
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
        return rss_mb(self.process.pid)

    def count(self, status: str) -> int:
        return count_messages(self.database_url, status)


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

    quiet_collector()
    elapsed = asyncio.run(main())
    out.put((elapsed, shared["latencies"], shared["errors"]))


def drive(url: str, seconds: float, concurrency: int, limit: int | None = None) -> dict[str, Any]:
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_load, args=(url, seconds, concurrency, limit, queue))
    process.start()
    elapsed, latencies, errors = queue.get()
    process.join()
    p50, p99 = percentiles(latencies)
    return {
        "accepted": len(latencies),
        "errors": errors,
        "elapsed": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def _paced_load(url: str, rate: float, seconds: float, warmup: float, out: Any) -> None:
    """Load-generator process body: one POST every ``1/rate`` s (open loop) for ``warmup +
    seconds``, report back the latencies of the requests started after ``warmup``, and
    separately of those started before."""
    latencies: list[float] = []
    warming: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession, counted: bool) -> None:
        nonlocal errors
        started = time.perf_counter()
        headers = {"Authorization": f"Bearer {KEY}"}
        try:
            async with session.post(f"{url}/v1/messages", json=BODY, headers=headers) as reply:
                await reply.read()
                ok = reply.status == 202
        except aiohttp.ClientError:
            ok = False
        if not ok:
            errors += 1
        else:
            (latencies if counted else warming).append(time.perf_counter() - started)

    async def main() -> float:
        connector = aiohttp.TCPConnector(limit=512)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = counted_from = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            warm = int(rate * warmup)
            for n in range(warm + int(rate * seconds)):
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                if n == warm:
                    counted_from = time.monotonic()
                task = asyncio.create_task(one(session, n >= warm))
                pending.add(task)  # only the ones in flight: no ever-growing list to collect
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
            return time.monotonic() - counted_from

    quiet_collector()
    elapsed = asyncio.run(main())
    out.put((elapsed, latencies, errors, warming))


#: Seconds of the paced load before its latencies count: the load generator is a new process
#: whose connections the gateway accepts (and whose pools both sides fill) in that time.
PACED_WARMUP_SECONDS = 1.0


def paced(
    url: str, rate: float, seconds: float, warmup: float = PACED_WARMUP_SECONDS
) -> dict[str, Any]:
    """Offer ``rate`` requests/s for ``warmup`` then ``seconds`` (open loop, from another
    process); the achieved rate, errors and latency percentiles after the warm-up, and the
    warm-up's own p99 (``warmup_p99_ms``)."""
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_paced_load, args=(url, rate, seconds, warmup, queue))
    process.start()
    elapsed, latencies, errors, warming = queue.get()
    process.join()
    p50, p99 = percentiles(latencies)
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "accepted": len(latencies),
        "errors": errors,
        "rate": len(latencies) / elapsed,
        "p50_ms": p50,
        "p99_ms": p99,
        "warmup_seconds": warmup,
        "warmup_p99_ms": percentiles(warming)[1] if warming else 0.0,
    }


#: How long the paced load of scenario a lasts by default: longer than the kernel's
#: ``vm.dirty_expire_centisecs`` (30 s by default), so that its latencies include the periodic
#: writeback of the pages the load itself dirtied, as a gateway at that rate sees all day.
PACED_SECONDS = 40.0


def accept(
    seconds: float,
    concurrency: int,
    database_url: str | None = None,
    offered_rate: float = 0.0,
    paced_seconds: float = PACED_SECONDS,
) -> dict[str, Any]:
    """Scenario a: ``concurrency`` clients post single messages for ``seconds`` to a gateway
    with its workers off; the figures of ``drive`` plus ``rss_mb``, the gateway's peak RSS,
    and with an ``offered_rate``, ``paced``: the figures of ``paced`` at that rate for
    ``paced_seconds``.

    The paced load runs first, on the warmed-up gateway: run after the closed loop, it met
    the kernel's writeback of everything the closed loop had written at three times its rate,
    30 s later, in the middle of its window, and measured that burst's aftermath instead of
    the accept at the offered rate (docs/benchmarks.md, session 13)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        Server(
            Path(tmp) / "data", workers=False, receipt_delay=0.1, database_url=database_url
        ) as server,
    ):
        drive(server.url, 2, min(concurrency, 8))  # warm-up
        paced_figures = paced(server.url, offered_rate, paced_seconds) if offered_rate else None
        result = drive(server.url, seconds, concurrency)
        if paced_figures is not None:
            result["paced"] = paced_figures
        result["rss_mb"] = server.rss_mb()
    return result


def accept_scenario(seconds: float, concurrency: int) -> str:
    result = accept(seconds, concurrency)
    rss = result["rss_mb"]
    return (
        f"| REST accept, SQLite, workers off | {concurrency} clients, {seconds:.0f} s | "
        f"{result['rate']:,.0f} msg/s | {result['p50_ms']:.1f} ms | {result['p99_ms']:.1f} ms | "
        f"{rss:.0f} MB | {result['errors']} errors |"
    )


def e2e_scenario(messages: int, concurrency: int) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Server(Path(tmp) / "data", workers=True, receipt_delay=0.1) as server,
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
