"""The worker's status changes in one process: CPU per message of dispatch (``sent``) and of
receipts (``delivered``), on a SQLite file or PostgreSQL (with its backends' CPU), without
SMPP or HTTP around them.

    .venv/bin/python bench/status_changes.py                     # this tree, SQLite
    .venv/bin/python bench/status_changes.py --database postgresql
    .venv/bin/python bench/status_changes.py --compare OLD/src   # OLD/src and this tree

What runs is Pigeon's own: ``DispatchMessage`` (prefetch, routing, the ``sent`` change),
``ApplyReceipt`` (the lookup of the carrier id, the ``delivered`` change), ``EventRecorder``
(events, a ``message.delivered`` webhook job for the tenant's endpoint), the group-commit writer
and ``SqlMessageStore`` on a migrated SQLite file with ``synchronous=FULL``, or on a new
PostgreSQL database (``harness.fresh_database``: made on ``PIGEON_TEST_POSTGRES_URL``'s server,
dropped afterwards; only this process's CPU counts, not the server's). Only the carrier is a
stand-in (``pigeon.testing.FakeConnector``: the submit answers at once) and the router is the
one-connector ``SandboxRouter``. The messages are accepted first (not measured), then
dispatched as the job runner does (claimed, prefetched, 200 at a time), then their receipts
applied, ``--concurrency`` at once. The heap is frozen and the collector tuned as
``pigeon serve`` does (``freeze_startup_heap``).

Each phase reports its CPU per message, the part of it in the store's plans of the mutation
batches, and the part of those in the changes' own logic (the callbacks the services hand
the store: transitions, events, webhook jobs); the rest of a plan is the store's machinery
around them (ADR 24's fourth amendment).

It is the fast loop for work on the worker's store path (ADR 25): a run takes seconds, where
the end-to-end comparison takes minutes and moves less than its noise for a change of a few
percent. ``--compare`` runs each tree in its own process (``PYTHONPATH``), alternating, and
prints the median of the runs per tree and their ratio.

Keep ``--messages`` under the store's ``HELD_KEPT`` (32,768): all messages are sent before any
receipt comes, so more would evict the copies the receipts start from, which traffic where a
receipt follows its send within seconds does not do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

PHASES = ("dispatch_sent", "receipt_delivered")


async def measure(messages: int, concurrency: int, url: str) -> dict[str, float]:
    """CPU ms per message of each phase on the database at ``url``, and what it holds
    afterwards."""
    import sqlalchemy as sa

    from pigeon.cli import freeze_startup_heap
    from pigeon.clock import SystemClock
    from pigeon.domain.accounts import Tenant
    from pigeon.domain.messages import Category, Direction, Message, MessageStatus
    from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
    from pigeon.ids import UlidFactory
    from pigeon.ports import Acceptance, Job, NewJob, WebhookEndpoint
    from pigeon.queue import SqlJobQueue
    from pigeon.services.dispatch import DispatchMessage, SandboxRouter
    from pigeon.services.events import EndpointDirectory, EventRecorder
    from pigeon.services.receipts import ApplyReceipt
    from pigeon.store import SqlAccountStore, SqlMessageStore, SqlWebhookStore, connect, migrate
    from pigeon.testing import FakeConnector

    clock = SystemClock()
    ids = UlidFactory()
    await migrate(url)
    database = await connect(url)
    try:
        store = SqlMessageStore(database, clock)
        queue = SqlJobQueue(database, clock)
        webhooks = SqlWebhookStore(database)
        recorder = EventRecorder(ids, clock, EndpointDirectory(webhooks))
        connector = FakeConnector("sim")
        await connector.start()
        dispatch = DispatchMessage(
            store, queue, SandboxRouter(connector, connector), recorder, clock, ids
        )
        receipts = ApplyReceipt(store, queue, recorder, clock)
        planning = _PlanCpu(store)
        now = clock.now()
        tenant = Tenant(id=ids.new("ten"), name="bench", default_region="GB", created_at=now)
        await SqlAccountStore(database).create_tenant(tenant)
        await webhooks.create_endpoint(
            WebhookEndpoint(
                id=ids.new("whe"),
                tenant_id=tenant.id,
                url="http://127.0.0.1:9/hook",
                events=("message.delivered",),
                secret="s" * 32,
                created_at=now,
            )
        )

        def acceptance() -> Acceptance:
            at = clock.now()
            message = Message(
                id=ids.new("msg"),
                tenant_id=tenant.id,
                direction=Direction.MT,
                to="+447700900123",
                sender="Pigeon",
                body="Your code is 123456",
                category=Category.TRANSACTIONAL,
                encoding="gsm7",
                segments=1,
                status=MessageStatus.QUEUED,
                created_at=at,
                updated_at=at,
                country="GB",
                expires_at=at + timedelta(hours=1),
                status_sequence=1,
            )
            job = NewJob(
                id=f"dispatch:{message.id}",
                kind="dispatch",
                payload={"message_id": message.id},
                run_at=at,
                priority=50,
            )
            return Acceptance(message=message, events=[], jobs=[job], idempotency=None)

        await _run_all([lambda: store.accept(acceptance()) for _ in range(messages)], 100)
        jobs: list[Job] = []
        while claimed := await queue.claim(["dispatch"], 500, "bench", 300):
            jobs.extend(claimed)
        freeze_startup_heap()

        async def dispatch_all() -> None:
            for start in range(0, len(jobs), 200):
                batch = jobs[start : start + 200]
                await dispatch.prefetch(batch)
                await asyncio.gather(*(dispatch(job) for job in batch))

        def receipt(carrier_id: str) -> Callable[[], Awaitable[Any]]:
            status = ReceiptStatus.DELIVRD
            return lambda: receipts(DeliveryReceipt("sim", carrier_id, status))

        server = _ServerCpu(url)
        results: dict[str, float] = {}
        phases: dict[str, tuple[list[Callable[[], Awaitable[Any]]], int]] = {
            "dispatch_sent": ([dispatch_all], 1),
            "receipt_delivered": (
                [receipt(f"sim-{i:08X}") for i in range(1, messages + 1)],
                concurrency,
            ),
        }
        for phase, (calls, callers) in phases.items():
            before = server.seconds()
            planning.seconds = planning.logic_seconds = 0.0
            results[phase] = await _cpu_per_message(calls, callers, messages)
            results[f"{phase}_plan"] = planning.seconds * 1000 / messages
            results[f"{phase}_logic"] = planning.logic_seconds * 1000 / messages
            if server.measured:
                results[f"{phase}_server"] = (server.seconds() - before) * 1000 / messages
        async with database.read() as connection:
            delivered = await connection.scalar(
                sa.text("SELECT count(*) FROM messages WHERE status = 'delivered'")
            )
            hooks = await connection.scalar(
                sa.text("SELECT count(*) FROM jobs WHERE kind = 'webhook'")
            )
    finally:
        await database.close()
    results["delivered"] = int(delivered or 0)
    results["webhook_jobs"] = int(hooks or 0)
    return results


class _PlanCpu:
    """The CPU spent in the store's plans of mutation batches (``SqlMessageStore._plan``: the
    change callbacks, events, jobs and rows), summed: pure computation, without the
    statements, the commits or the event loop, so it moves less with a noisy machine than the
    phase's whole CPU does.

    ``logic_seconds`` is the part of it spent in the changes' own callbacks (transitions,
    events, webhook jobs and bodies: what the services hand the store), the rest being the
    store's machinery around them (copies, checks, part diffs, rows). Both are read on the
    one clock of the thread that plans (``thread_time``), so a callback's time is always a
    part of its plan's: wall time would count the spells the process waits for a core on a
    busy machine, which are no part of the work."""

    def __init__(self, store: Any) -> None:
        self.seconds = 0.0
        self.logic_seconds = 0.0
        plan = store._plan

        def timed(current: Any, stamps: Any, items: Any) -> Any:
            for item in items:
                if not isinstance(item.change, _TimedChange):  # a batch planned again
                    item.change = _TimedChange(item.change, self)
            started = time.thread_time()
            try:
                return plan(current, stamps, items)
            finally:
                self.seconds += time.thread_time() - started

        store._plan = timed


class _TimedChange:
    """A mutation's change callback whose time is added to ``_PlanCpu.logic_seconds``."""

    __slots__ = ("_change", "_counted")

    def __init__(self, change: Callable[[Any], Any], counted: _PlanCpu) -> None:
        self._change = change
        self._counted = counted

    def __call__(self, message: Any) -> Any:
        started = time.thread_time()
        try:
            return self._change(message)
        finally:
            self._counted.logic_seconds += time.thread_time() - started


class _ServerCpu:
    """PostgreSQL: the CPU its backends serving ``url``'s database spent so far (read outside
    the timed phases: asking for them costs this process a connection)."""

    def __init__(self, url: str) -> None:
        self.measured = url.startswith("postgresql")
        self._url = url

    def seconds(self) -> float:
        if not self.measured:
            return 0.0
        from harness import cpu_seconds, postgres_backends

        return sum(cpu_seconds(pid) for pid in postgres_backends(self._url))


async def _run_all(calls: list[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
    pending = iter(calls)

    async def caller() -> None:
        for call in pending:
            await call()

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def _cpu_per_message(
    calls: list[Callable[[], Awaitable[Any]]], concurrency: int, messages: int
) -> float:
    started = time.process_time()
    await _run_all(calls, concurrency)
    return (time.process_time() - started) * 1000 / messages


def compare(before: str, messages: int, concurrency: int, runs: int, database: str) -> None:
    """Alternate runs of ``before`` and this tree; print medians and ratios."""
    trees = {"before": before, "after": str(Path(__file__).resolve().parent.parent / "src")}
    found: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(runs):
        for name, source in trees.items():
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--json",
                    "--messages",
                    str(messages),
                    "--concurrency",
                    str(concurrency),
                    "--database",
                    database,
                ],
                env={**os.environ, "PYTHONPATH": source},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            found[name].append(json.loads(output.strip().splitlines()[-1]))
    print(f"| CPU ms per message | before ({before}) | after | after / before |")
    print("|---|---|---|---|")
    keys: list[str] = [*PHASES, "total"]
    keys += [f"{phase}_{part}" for part in ("plan", "logic") for phase in PHASES]
    if database == "postgresql":
        keys += [f"{phase}_server" for phase in PHASES]
    for key in keys:
        if any(key not in run for run in found["before"]) and key != "total":
            continue  # an older tree that does not report it
        old = statistics.median(_value(run, key) for run in found["before"])
        new = statistics.median(_value(run, key) for run in found["after"])
        ratio = f"{new / old:.3f}" if old else "-"
        print(f"| {key} | {old:.4f} | {new:.4f} | {ratio} |")
    print(f"\n{runs} runs per tree, alternating; {messages:,} messages each, {database}")
    for line in short_runs(found, messages):
        print(line)


def short_runs(found: dict[str, list[dict[str, float]]], messages: int) -> list[str]:
    """A warning for each tree whose runs did not deliver every message with its webhook
    job: its figures then count less work than the other tree's and do not compare."""
    warnings = []
    for name, runs in found.items():
        delivered = min(int(run.get("delivered", 0)) for run in runs)
        hooks = min(int(run.get("webhook_jobs", 0)) for run in runs)
        if delivered < messages or hooks < messages:
            warnings.append(
                f"WARNING: {name} delivered {delivered:,} of {messages:,} messages "
                f"({hooks:,} webhook jobs) in a run: its figures do not compare"
            )
    return warnings


def _value(run: dict[str, float], key: str) -> float:
    return sum(run[phase] for phase in PHASES) if key == "total" else run[key]


def set_up_sqlite_library_as_processes_do() -> None:
    """The SQLite library set up as ``pigeon serve`` and its workers set it up at their start
    (ADR 48), before any connection; trees from before it have no such step and run as built."""
    try:
        from pigeon.store.sqlite_library import set_up_sqlite_library
    except ImportError:
        return
    set_up_sqlite_library()
    try:  # and the enum lookups (ADR 49), in trees that have the step
        from pigeon.enum_members import drop_enum_getattr_fallback
    except ImportError:
        return
    drop_enum_getattr_fallback()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=100, help="receipts at once")
    parser.add_argument("--compare", metavar="OLD_SRC")
    parser.add_argument("--runs", type=int, default=5, help="processes per tree (--compare)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.messages, args.concurrency, args.runs, args.database)
        return
    import uvloop
    from harness import fresh_database

    set_up_sqlite_library_as_processes_do()
    with (
        tempfile.TemporaryDirectory() as directory,
        fresh_database(args.database, Path(directory)) as postgres_url,
    ):
        url = postgres_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        results = uvloop.run(measure(args.messages, args.concurrency, url))
    if args.json:
        print(json.dumps(results))
        return
    for phase in PHASES:
        print(f"{phase:20} {results[phase]:.4f} ms CPU per message")
        print(f"{'':20} {results[f'{phase}_plan']:.4f} ms of it in the store's plans,")
        print(f"{'':20} {results[f'{phase}_logic']:.4f} ms of those in the changes' own logic")
        if f"{phase}_server" in results:
            print(f"{'':20} {results[f'{phase}_server']:.4f} ms of the server's backends")
    print(f"{'total':20} {_value(results, 'total'):.4f} ms CPU per message")
    print(f"delivered {results['delivered']:,}, webhook jobs {results['webhook_jobs']:,}")


if __name__ == "__main__":
    main()
