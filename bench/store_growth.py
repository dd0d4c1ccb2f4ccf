"""The SQLite store's writes as it grows: pages written and time per message, empty vs seeded.

    .venv/bin/python bench/store_growth.py                          # this tree, 0 and 1M stored
    .venv/bin/python bench/store_growth.py --compare OLD/src        # OLD/src and this tree

Seeds a fresh SQLite file with ``--stored`` delivered messages (``bench/seed.py``, as scenario
e does), then sends ``--messages`` new ones through the real ``SqlMessageStore`` the way the
gateway does, in three phases of group-committed batches (``--callers`` concurrent callers):
accept, then a mutation to ``sent`` (the part gets its carrier id), then one to ``delivered``
(the receipt). For each phase it reports the pages the phase wrote to the WAL per message and
the microseconds per message.

Pages written do not depend on the machine's speed: they are what each transaction has to
write and fsync, and what another process waits for while the write lock is held. The WAL's
automatic checkpoints are turned off while a phase runs, and ``PRAGMA wal_checkpoint`` counts
the phase's frames afterwards. ``--compare`` runs each tree in its own process
(``PYTHONPATH``), on one seeded file copied for each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ulid import ULID

PHASES = ("accept", "sent", "delivered")


def _frames_and_reset(path: Path) -> int:
    """The frames in the WAL of ``path`` (written since the last reset), then reset it."""
    connection = sqlite3.connect(path)
    try:
        # TRUNCATE answers 0 frames once it emptied the WAL: PASSIVE counts them first.
        _busy, frames, _done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    return int(frames)


async def measure(path: Path, messages: int, callers: int) -> dict[str, float]:
    """Pages per message and µs per message of each phase on the store at ``path``."""
    from pigeon.domain.messages import Category, Direction, Message, MessageStatus, Part
    from pigeon.ports import Acceptance, EventRecord, Mutation, NewJob
    from pigeon.store import SqlMessageStore, connect
    from pigeon.testing import FakeClock

    clock = FakeClock(datetime.now(UTC))
    database = await connect(f"sqlite:///{path}")
    try:
        store = SqlMessageStore(database, clock)

        async def no_autocheckpoint(connection: Any) -> None:
            await connection.exec_driver_sql("PRAGMA wal_autocheckpoint=0")

        await database.write(no_autocheckpoint)
        tenant_id = sqlite3.connect(path).execute("SELECT id FROM tenants").fetchone()[0]
        ids = [f"msg_{ULID()}" for _ in range(messages)]

        def acceptance(index: int) -> Acceptance:
            now = clock.now()
            message = Message(
                id=ids[index],
                tenant_id=tenant_id,
                direction=Direction.MT,
                # The seed's recipients: 10,000 numbers, each with a hundred messages at 1M.
                to=f"+1415555{(index * 7919) % 10_000:04d}",
                sender="Pigeon",
                body="Your code is 123456",
                category=Category.TRANSACTIONAL,
                encoding="gsm7",
                segments=1,
                status=MessageStatus.QUEUED,
                created_at=now,
                updated_at=now,
                country="US",
                expires_at=now + timedelta(hours=1),
                status_sequence=1,
                parts=[Part(0)],
            )
            event = EventRecord(
                id=f"evt_{ULID()}",
                tenant_id=tenant_id,
                message_id=message.id,
                type="message.queued",
                status=message.status,
                sequence=1,
                at=now,
                detail=None,
                payload={"id": message.id, "status": "queued"},
            )
            job = NewJob(f"dispatch:{message.id}", "dispatch", {"message_id": message.id}, now)
            return Acceptance(message=message, events=[event], jobs=[job], idempotency=None)

        def step(status: MessageStatus, index: int) -> Callable[[Message], Mutation]:
            def change(message: Message) -> Mutation:
                at = clock.now()
                if status is MessageStatus.SENT:
                    message.transition(MessageStatus.SENDING, at)
                message.transition(status, at)
                message.connector_id = "sim"
                carrier_id = f"{0xA1B2C300 + index:x}"
                message.parts = [Part(0, status, carrier_id)]
                event = EventRecord(
                    id=f"evt_{ULID()}",
                    tenant_id=message.tenant_id,
                    message_id=message.id,
                    type=f"message.{status}",
                    status=status,
                    sequence=message.status_sequence,
                    at=at,
                    detail=None,
                    payload={"id": message.id, "status": str(status)},
                )
                return Mutation(message, [event], [])

            return change

        calls: dict[str, Callable[[int], Awaitable[Any]]] = {
            "accept": lambda i: store.accept(acceptance(i)),
            "sent": lambda i: store.mutate(
                ids[i], step(MessageStatus.SENT, i), complete_job=f"dispatch:{ids[i]}"
            ),
            "delivered": lambda i: store.mutate(ids[i], step(MessageStatus.DELIVERED, i)),
        }
        results: dict[str, float] = {}
        for phase in PHASES:
            _frames_and_reset(path)
            pending = iter(range(messages))

            async def caller(call: Callable[[int], Awaitable[Any]], indexes: Iterator[int]) -> None:
                for index in indexes:
                    await call(index)

            started = time.perf_counter()
            await asyncio.gather(*(caller(calls[phase], pending) for _ in range(callers)))
            elapsed = time.perf_counter() - started
            results[f"{phase}_pages"] = _frames_and_reset(path) / messages
            results[f"{phase}_us"] = elapsed / messages * 1e6
        return results
    finally:
        await database.close()


def seeded(directory: Path, stored: int) -> Path:
    """A migrated SQLite file in ``directory`` holding ``stored`` delivered messages."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from seed import seed

    path = directory / f"seeded-{stored}.db"
    asyncio.run(seed(f"sqlite:///{path}", stored=stored))
    _frames_and_reset(path)
    return path


def run_tree(source: str | None, template: Path, messages: int, callers: int) -> dict[str, Any]:
    """``measure`` on a copy of ``template``, in a process of its own on ``source``."""
    with tempfile.TemporaryDirectory(prefix="pigeon-growth-") as scratch:
        copy = Path(scratch) / "pigeon.db"
        shutil.copyfile(template, copy)
        argv = [sys.executable, __file__, "--measure", str(copy)]
        argv += ["--messages", str(messages), "--callers", str(callers)]
        env = {**os.environ}
        if source is not None:
            env["PYTHONPATH"] = source
        output = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
        return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def report(rows: Sequence[tuple[str, int, dict[str, Any]]]) -> str:
    lines = [
        "| tree | stored | "
        + " | ".join(f"{phase} pages/msg | {phase} µs/msg" for phase in PHASES)
        + " |",
        "|---|---|" + "---|---|" * len(PHASES),
    ]
    for tree, stored, found in rows:
        cells = " | ".join(
            f"{found[f'{phase}_pages']:.2f} | {found[f'{phase}_us']:.0f}" for phase in PHASES
        )
        lines.append(f"| {tree} | {stored:,} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, nargs="+", default=[0, 1_000_000])
    parser.add_argument("--messages", type=int, default=6_400)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1, help="runs per tree and size")
    parser.add_argument("--compare", metavar="OLD_SRC")
    parser.add_argument("--measure", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        found = asyncio.run(measure(Path(args.measure), args.messages, args.callers))
        print(json.dumps(found))
        return
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = [("before", args.compare), ("after", here)] if args.compare else [("this", here)]
    rows: list[tuple[str, int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="pigeon-growth-seed-") as directory:
        for stored in args.stored:
            template = seeded(Path(directory), stored)
            for _ in range(args.runs):
                for name, source in trees:
                    rows.append(
                        (name, stored, run_tree(source, template, args.messages, args.callers))
                    )
            template.unlink()
    print(report(rows))
    print(f"\ncommand: {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
