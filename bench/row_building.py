"""The store's hottest rows, made and converted for their statements: microseconds per row.

    .venv/bin/python bench/row_building.py                    # this tree
    .venv/bin/python bench/row_building.py --compare OLD/src  # OLD/src and this tree

Each delivered message has its row inserted once and updated twice (``sent``, ``delivered``),
four events and two or three jobs written; the rows are made in the writer's batches, in
``serve`` and in the worker. What is timed is that work alone for one message update row
(``id`` and the mutable columns), one event row and one job row, as SQLite's statements take
them: through ``_Statement.row_builder`` where the tree has it (session 19), else through the
dict the store built before and ``_Statement.convert``. Best of ``--repeat`` runs of
``--number`` rows each, so that a shared, noisy machine disturbs it little; ``--compare``
runs each tree in its own process (``PYTHONPATH``) and prints both and their ratio. The rows
made by both trees are compared too: they must be equal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import timeit
from datetime import UTC, datetime, timedelta
from typing import Any

KINDS = ("message_update", "event", "job")


def measure(number: int, repeat: int) -> dict[str, Any]:
    """Microseconds per row of each kind with the tree on ``sys.path``, and the rows made."""
    from pigeon.domain.messages import Category, Direction, Message, MessageStatus
    from pigeon.ports import EventRecord, NewJob
    from pigeon.store import messages as store
    from pigeon.store.bulk import BulkInsert, BulkUpdate
    from pigeon.store.tables import events, jobs
    from pigeon.store.tables import messages as messages_table

    now = datetime(2026, 12, 4, 19, 0, 0, 123456, tzinfo=UTC)
    message = Message(
        id="msg_01JD3ABCDEFGHJKMNPQRSTVWXY",
        tenant_id="demo",
        direction=Direction.MT,
        to="+14155550100",
        sender="Acme",
        body="Your code is 123456",
        category=Category.OTP,
        encoding="gsm7",
        segments=1,
        status=MessageStatus.SENT,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(days=1),
        receipt_due_at=now + timedelta(days=1, minutes=10),
        connector_id="sim",
        attempts=1,
        status_sequence=3,
    )
    event = EventRecord(
        id="evt_01JD3ABCDEFGHJKMNPQRSTVWXY",
        tenant_id="demo",
        message_id=message.id,
        type="message.sent",
        status=MessageStatus.SENT,
        sequence=3,
        at=now,
        detail="accepted by sim",
        payload={"id": message.id, "status": "sent", "to": message.to, "segments": 1},
    )
    job = NewJob(
        id=f"webhook:{event.id}:cb", kind="webhook", payload={"event_id": event.id}, run_at=now
    )
    update = BulkUpdate(messages_table, "sqlite", key="id", columns=store._MUTABLE)
    insert_event = BulkInsert(events, "sqlite")
    insert_job = BulkInsert(jobs, "sqlite", ignore_duplicates=True)
    makers: dict[str, Any]
    if hasattr(update, "row_builder"):
        from pigeon.store.statements import JOB_ROW

        update_row = {name: store._MESSAGE_ROW[name] for name in ("id", *store._MUTABLE)}
        build_update = update.row_builder("m, stamp", update_row)
        build_event = insert_event.row_builder("e", store._EVENT_ROW)
        build_job = insert_job.row_builder("job, now", JOB_ROW)
        makers = {
            "message_update": lambda: build_update(message, 7),
            "event": lambda: build_event(event),
            "job": lambda: build_job(job, now),
        }
    else:  # before session 19: a dict per row, converted by name (names this tree lacks)
        from pigeon.store import statements

        message_row = vars(store)["_message_row"]
        event_row = vars(store)["_event_row"]
        job_row = vars(statements)["job_row"]
        makers = {
            "message_update": lambda: update.convert([message_row(message, 7)])[0],
            "event": lambda: insert_event.convert([event_row(event)])[0],
            "job": lambda: insert_job.convert([job_row(job, now)])[0],
        }
    results: dict[str, Any] = {"rows": {kind: repr(make()) for kind, make in makers.items()}}
    for kind, make in makers.items():
        best = min(timeit.repeat(make, number=number, repeat=repeat))
        results[kind] = best / number * 1e6
    return results


def _run_tree(source: str | None, number: int, repeat: int) -> dict[str, Any]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = source
    completed = subprocess.run(
        [sys.executable, __file__, "--number", str(number), "--repeat", str(repeat), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=50_000, help="rows per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (the best counts)")
    parser.add_argument("--compare", metavar="OLD_SRC", help="another tree's src directory")
    parser.add_argument("--json", action="store_true", help="one JSON line (for --compare)")
    args = parser.parse_args()
    if args.compare is None:
        results = measure(args.number, args.repeat)
        if args.json:
            print(json.dumps(results))
            return
        for kind in KINDS:
            print(f"{kind:16} {results[kind]:.2f} us per row")
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    old = _run_tree(args.compare, args.number, args.repeat)
    new = _run_tree(os.path.normpath(here), args.number, args.repeat)
    print(f"| us per row | before ({args.compare}) | after | after / before |")
    print("|---|---|---|---|")
    for kind in KINDS:
        print(f"| {kind} | {old[kind]:.2f} | {new[kind]:.2f} | {new[kind] / old[kind]:.3f} |")
    same = old["rows"] == new["rows"]
    print(f"\nthe rows made by both trees are {'equal' if same else 'DIFFERENT'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
