"""Ingress of the customer SMPP server: submit_sm/s answered OK, each after a durable accept.

Run: ``.venv/bin/python bench/smpp_ingress.py [--seconds 15] [--binds 1] [--window 100]
[--database-url postgresql://...]``.

Starts ``pigeon serve`` as a child process (SQLite in a temporary directory unless a database
URL is given: it must name an existing, empty database) with the workers off, so the figure is
the SMPP ingress alone: decode, account throttle check, ``accept`` (validate, normalise,
encode, one group-committed transaction with the message, its event and its dispatch job) and
submit_sm_resp. An SMPP account without a throughput limit is made with the CLI first. The load
generator is this process: our own codec over asyncio, ``--binds`` transmitter sessions each
keeping ``--window`` submit_sm in flight.
Prints submit_sm_resp OK per second after a 2 s warm-up, latency percentiles and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
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

from harness import free_port, percentiles, rss_mb

from pigeon.domain.encoding import encode_gsm7
from pigeon.smpp.codec import PduDecoder, encode
from pigeon.smpp.constants import CommandStatus
from pigeon.smpp.pdu import BindTransmitter, Pdu, SubmitSm, Unbind

SYSTEM_ID = "bench"
PASSWORD = "bench123"  # noqa: S105 - a throwaway account in a throwaway database
WARMUP = 2.0


class Gateway:
    """``pigeon serve`` (workers off) with an unthrottled SMPP account."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.http_port = free_port()
        self.smpp_port = free_port()
        self.env = {
            **os.environ,
            "PIGEON_DATA_DIR": str(data_dir),
            "PIGEON_HTTP_PORT": str(self.http_port),
            "PIGEON_SMPP_PORT": str(self.smpp_port),
            "PIGEON_RUN_WORKERS": "false",
            "PIGEON_LOG_LEVEL": "WARNING",
        }
        if database_url:
            self.env["PIGEON_DATABASE_URL"] = database_url
        else:
            self.env.pop("PIGEON_DATABASE_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gateway:
        pigeon = [sys.executable, "-m", "pigeon"]
        subprocess.run(
            [*pigeon, "tenants", "create", "bench"], env=self.env, check=True, capture_output=True
        )
        subprocess.run(
            [
                *pigeon,
                "smpp-accounts",
                "create",
                "--tenant",
                "bench",
                "--system-id",
                SYSTEM_ID,
                "--password",
                PASSWORD,
                "--throughput",
                "0",
                "--max-binds",
                "64",
                "--test",
            ],
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            [*pigeon, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{self.http_port}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
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


class Bind:
    """One transmitter session keeping ``window`` submit_sm in flight until ``deadline``."""

    def __init__(self, window: int, started: float, deadline: float) -> None:
        self.window = window
        self.started = started
        self.deadline = deadline
        self.ok = 0
        self.refused: dict[int, int] = {}
        self.latencies: list[float] = []
        self._sent: dict[int, float] = {}
        self._sequence = 0
        self._room = asyncio.Event()

    def _submit(self, writer: asyncio.StreamWriter, n: int) -> None:
        self._sequence += 1
        pdu = SubmitSm(
            sequence_number=self._sequence,
            source_addr_ton=5,
            source_addr="Pigeon",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=f"1415555{n % 10000:04d}",
            short_message=encode_gsm7(f"Your Pigeon code is {n % 1000000:06d}."),
        )
        self._sent[self._sequence] = time.perf_counter()
        writer.write(encode(pdu))

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        decoder = PduDecoder()
        writer.write(
            encode(BindTransmitter(sequence_number=1, system_id=SYSTEM_ID, password=PASSWORD))
        )
        self._sequence = 1
        bound = False
        while not bound:
            for item in decoder.feed(await reader.read(65536)):
                if not isinstance(item, Pdu) or item.command_status != 0:
                    raise RuntimeError(f"bind refused: {item}")
                bound = True
        n = 0
        for _ in range(self.window):
            n += 1
            self._submit(writer, n)
        while time.perf_counter() < self.deadline or self._sent:
            data = await reader.read(65536)
            if not data:
                break
            now = time.perf_counter()
            for item in decoder.feed(data):
                if not isinstance(item, Pdu) or item.sequence_number not in self._sent:
                    continue
                sent = self._sent.pop(item.sequence_number)
                if now >= self.started + WARMUP and now < self.deadline:
                    if item.command_status == CommandStatus.ESME_ROK:
                        self.ok += 1
                        self.latencies.append(now - sent)
                    else:
                        status = item.command_status
                        self.refused[status] = self.refused.get(status, 0) + 1
                if now < self.deadline:
                    n += 1
                    self._submit(writer, n)
        writer.write(encode(Unbind(sequence_number=self._sequence + 1)))
        await writer.drain()
        writer.close()


async def load(port: int, binds: int, window: int, seconds: float) -> list[Bind]:
    started = time.perf_counter()
    deadline = started + WARMUP + seconds
    sessions = [Bind(window, started, deadline) for _ in range(binds)]
    await asyncio.gather(*(session.run(port) for session in sessions))
    return sessions


def ingress(
    seconds: float, binds: int = 1, window: int = 100, database_url: str | None = None
) -> dict[str, Any]:
    """Scenario b: ``binds`` transmitters keep ``window`` submit_sm in flight for ``seconds``
    (after a warm-up); submit_sm_resp OK per second, latency percentiles, peak RSS."""
    with tempfile.TemporaryDirectory() as tmp, Gateway(Path(tmp), database_url) as gateway:
        sessions = asyncio.run(load(gateway.smpp_port, binds, window, seconds))
        rss = gateway.rss_mb()
    ok = sum(s.ok for s in sessions)
    refused: dict[int, int] = {}
    for session in sessions:
        for status, count in session.refused.items():
            refused[status] = refused.get(status, 0) + count
    p50, p99 = percentiles([latency for s in sessions for latency in s.latencies])
    return {
        "ok": ok,
        "rate": ok / seconds,
        "p50_ms": p50,
        "p99_ms": p99,
        "refused": {f"0x{k:08X}": v for k, v in refused.items()},
        "rss_mb": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--binds", type=int, default=1)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    result = ingress(args.seconds, args.binds, args.window, args.database_url)
    engine = "PostgreSQL" if args.database_url else "SQLite"
    print(f"# {platform.python_implementation()} {platform.python_version()}, {engine}")
    print("| binds x window | submit_sm_resp OK/s | p50 | p99 | refused | peak RSS |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.binds} x {args.window} | {result['rate']:,.0f} | {result['p50_ms']:.1f} ms"
        f" | {result['p99_ms']:.1f} ms | {result['refused'] or 0} | {result['rss_mb']:.0f} MB |"
    )


if __name__ == "__main__":
    main()
