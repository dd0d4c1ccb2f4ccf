"""Egress of the SMPP client connector: submit_sm/s to our SMSC simulator on loopback.

Run: ``.venv/bin/python bench/smpp_egress.py [--count N] [--binds B] [--window W]
[--concurrency C] [--receipts] [--sim-process] [--mode workers|tasks|started] [--uvloop]``.

Each message is one ``SmppClientConnector.submit`` (one GSM segment), ``C`` of them in flight
at once (default: binds x window, so the windows stay full). The figure is messages whose
submit_sm_resp came back, per second of wall time, after a warm-up of 1,000, and this
process's CPU per message. ``--mode`` says how the submits are made: ``workers`` (``C``
coroutines each submitting one message after the other), ``tasks`` (groups of ``C``
messages, a task per message, as the job runner ran dispatch jobs before batches) or
``started`` (groups of ``C``, each started with ``start_submit`` and the group awaited
together, as a dispatch batch does). By default the
simulator runs in the same process and event loop as the client (both share one core); with
``--sim-process`` it runs as ``python -m pigeon.smsc_sim`` so each side has its own core.
``--receipts`` asks for a delivery receipt per message (the simulator sends them and the
client hands each to a no-op sink before answering), which is the realistic load.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from datetime import UTC, datetime

from pigeon.connectors.smpp_client import SmppClientConnector, SmppConnectorSettings
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt
from pigeon.smsc_sim import SmscSimConfig, SmscSimulator
from pigeon.testing import FakeClock

WARMUP = 1_000


def make_message(index: int) -> Message:
    """A one-segment OTP message."""
    now = datetime.now(UTC)
    return Message(
        id=f"msg_{index:010d}",
        tenant_id="ten_bench",
        direction=Direction.MT,
        to=f"+4477009{index % 100000:05d}",
        sender="Pigeon",
        body=f"Your Pigeon code is {index % 1000000:06d}. It expires in 10 minutes.",
        category=Category.OTP,
        encoding="gsm7",
        segments=1,
        status=MessageStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )


async def start_sim_process(receipts: bool) -> tuple[asyncio.subprocess.Process, int]:
    """Start ``python -m pigeon.smsc_sim`` on a free port; return it and its port."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pigeon.smsc_sim",
        "--port",
        "0",
        "--window",
        "100",
        "--receipt-delay",
        "0.01",
        *(() if receipts else ("--default-outcome", "none")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = (await process.stdout.readline()).decode()
    return process, int(line.strip().rsplit(":", 1)[1])


async def run(args: argparse.Namespace) -> float:
    """Run one measurement; return submits per second."""
    process = None
    sim = None
    if args.sim_process:
        process, port = await start_sim_process(args.receipts)
    else:
        sim = SmscSimulator(
            SmscSimConfig(
                port=0,
                window=100,
                receipt_delay=0.01,
                default_outcome="DELIVRD" if args.receipts else "none",
            )
        )
        port = await sim.start()
    receipts = 0

    async def sink(receipt: DeliveryReceipt) -> None:
        nonlocal receipts
        receipts += 1

    settings = SmppConnectorSettings(
        id="bench",
        host="127.0.0.1",
        port=port,
        system_id="pigeon",
        password="secret",  # noqa: S106 - the simulator's default test account
        binds=args.binds,
        window=args.window,
        registered_delivery=args.receipts,
        response_timeout=30.0,
    )
    connector = SmppClientConnector(settings, sink, FakeClock())
    await connector.start()
    concurrency = args.concurrency or args.binds * args.window

    async def send(count: int) -> None:
        # ``concurrency`` workers sharing one counter: each submits, then takes the next.
        remaining = iter(range(count))

        async def worker() -> None:
            for index in remaining:
                await connector.submit(make_message(index))

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def send_grouped(count: int) -> None:
        # Groups of ``concurrency`` messages, each group in flight together.
        for first in range(0, count, concurrency):
            messages = [make_message(i) for i in range(first, min(first + concurrency, count))]
            if args.mode == "tasks":
                await asyncio.gather(
                    *(asyncio.create_task(connector.submit(message)) for message in messages)
                )
                continue
            futures: list[asyncio.Future[object]] = []
            for message in messages:
                started = connector.start_submit(message)
                futures.append(
                    started
                    if started is not None
                    else asyncio.ensure_future(connector.submit(message))
                )
            await asyncio.wait(futures)
            for future in futures:
                future.result()

    sender = send if args.mode == "workers" else send_grouped
    try:
        await sender(WARMUP)
        start = time.perf_counter()
        cpu = time.process_time()
        await sender(args.count)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    finally:
        await connector.stop()
        if sim is not None:
            await sim.stop()
        if process is not None:
            process.terminate()
            await process.wait()
    if args.receipts:
        print(f"receipts handed to the sink during the run: {receipts}")
    print(f"this process's CPU per message: {cpu / args.count * 1e6:.1f} us")
    return float(args.count) / elapsed


def main() -> None:
    """Parse flags, run, print the figure and the command that produced it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--receipts", action="store_true")
    parser.add_argument("--sim-process", action="store_true")
    parser.add_argument("--mode", choices=("workers", "tasks", "started"), default="workers")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as pigeon does)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop  # optional: imported only when asked for

        rate = uvloop.run(run(args))
    else:
        rate = asyncio.run(run(args))
    where = "simulator in its own process" if args.sim_process else "simulator in-process"
    print(
        f"smpp egress: {rate:,.0f} submit_sm/s ({args.count} messages, {args.binds} binds x "
        f"window {args.window}, {where}, receipts {'on' if args.receipts else 'off'}, "
        f"mode {args.mode}; "
        f"Python {platform.python_version()})"
    )
    print("command: .venv/bin/python bench/smpp_egress.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
