"""SQLite's own work for the rows Pigeon writes per message, statement by statement.

    .venv/bin/python bench/statement_costs.py                        # this tree
    .venv/bin/python bench/statement_costs.py --without ix_events_message_id
    .venv/bin/python bench/statement_costs.py --variant "DROP TRIGGER messages_write_stamp"

The worker's fast loop (``bench/status_changes.py``: messages accepted, dispatched, their
receipts applied, on a SQLite file) runs once with ``pigeon.raw_sql``'s two entry points
(``execute``, ``execute_many``: every hot statement on SQLite goes through them) and the
dialect's COMMIT recorded: each statement with its parameters, in transactions as the writers
committed them, and the database as it was before the first of them. The recording is then
replayed on copies of that database, with nothing but ``sqlite3`` around it: each statement's
CPU (``time.process_time``) is SQLite's work and the driver's binding of the parameters, none
of Pigeon's Python. Per statement it reports the rows per message, the CPU per row and per
message; per transaction the COMMIT's CPU and the WAL frames (pages) it wrote per message
(``wal_autocheckpoint`` off, so that no checkpoint is counted in a COMMIT).

``--without INDEX`` and ``--variant SQL`` (repeatable; ``;;`` separates statements of one
variant) replay the same recording on a copy changed first, alternating with the unchanged
copy over ``--rounds`` rounds; the lowest CPU of each is compared. This is how the cost of an
index, a trigger or a condition is measured apart from the noise of the whole pipeline: an
index's condition written as ``IN (...)`` was found this way to cost three of the eight
microseconds of each event row (migration 0012).

The writers' connections use ``synchronous=NORMAL`` and sync the WAL in a child process
(ADR 36): the replay does the same, without the sync.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: One recorded statement: its SQL, and its parameters (one row) or its rows (``many``).
Statement = tuple[str, list[Any], bool]

#: Where the first of the recorded statements found the database: copied there.
SNAPSHOT = "snapshot.db"


@dataclass
class Recording:
    """What the fast loop wrote: transactions of statements, and the database before them."""

    snapshot: Path
    transactions: list[list[Statement]] = field(default_factory=list)
    messages: int = 0


@contextmanager
def recorded(database: Path, folder: Path) -> Iterator[Recording]:
    """Record the statements run on SQLite while the block runs (see the module's text)."""
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    import pigeon.raw_sql as raw_sql
    import pigeon.store.bulk as bulk
    import pigeon.store.messages as store_messages

    recording = Recording(folder / SNAPSHOT)
    current: list[Statement] = []
    original_execute, original_many = raw_sql.execute, raw_sql.execute_many
    original_commit = SQLiteDialect.do_commit

    def snapshot() -> None:
        # Taken before the first recorded statement writes anything: the file and its WAL,
        # as any later reader would find them.
        if not recording.snapshot.exists():
            for suffix in ("", "-wal"):
                source = Path(f"{database}{suffix}")
                if source.exists():
                    shutil.copyfile(source, f"{recording.snapshot}{suffix}")

    def execute(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> Any:
        snapshot()
        current.append((sql, list(parameters), False))
        return original_execute(connection, sql, parameters)

    def execute_many(
        connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        snapshot()
        current.append((sql, [list(row) for row in rows], True))
        original_many(connection, sql, rows)

    def do_commit(dialect: Any, connection: Any) -> None:
        original_commit(dialect, connection)
        if current:
            recording.transactions.append(list(current))
            current.clear()

    modules: list[Any] = [raw_sql, bulk, store_messages]
    patched = [module for module in modules if hasattr(module, "execute_many")]
    for module in modules:
        if hasattr(module, "execute"):
            module.execute = execute
        if hasattr(module, "execute_many"):
            module.execute_many = execute_many
    SQLiteDialect.do_commit = do_commit  # type: ignore[method-assign]
    try:
        yield recording
    finally:
        SQLiteDialect.do_commit = original_commit  # type: ignore[method-assign]
        for module in modules:
            if hasattr(module, "execute"):
                module.execute = original_execute
            if module in patched:
                module.execute_many = original_many


def record(messages: int, concurrency: int, folder: Path) -> Recording:
    """Run the fast loop on a SQLite file in ``folder`` and record what it wrote."""
    import uvloop
    from status_changes import measure

    database = folder / "bench.db"
    with recorded(database, folder) as recording:
        uvloop.run(measure(messages, concurrency, f"sqlite:///{database}"))
    recording.messages = messages
    return recording


def kind(sql: str) -> str:
    """A statement's kind, for the report: its verb and table (``IN`` lists' lengths aside)."""
    words = sql.replace('"', "").replace("\n", " ").split()
    verb = words[0].upper()
    if verb == "INSERT" and "ON" in words and "CONFLICT" in words:
        verb = "UPSERT" if "UPDATE" in words[words.index("CONFLICT") :] else "INSERT"
    table = ""
    for marker in ("INTO", "UPDATE", "FROM"):
        if marker in (word.upper() for word in words):
            index = [word.upper() for word in words].index(marker)
            if index + 1 < len(words):
                table = words[index + 1].split("(")[0]
                break
    return f"{verb} {table}".strip()


@dataclass
class Replay:
    """One replay's CPU per statement kind (seconds), COMMITs, and WAL frames written."""

    statements: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    commit: float = 0.0
    frames: int = 0

    @property
    def total(self) -> float:
        return sum(self.statements.values()) + self.commit


def replay(recording: Recording, changes: Sequence[str], scratch: Path) -> Replay:
    """Replay ``recording`` on a copy of its snapshot changed by ``changes`` first."""
    target = scratch / "replay.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    for suffix in ("", "-wal"):
        source = Path(f"{recording.snapshot}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{target}{suffix}")
    connection = sqlite3.connect(target, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        for change in changes:
            connection.execute(change)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA foreign_keys=ON")
        wal = Path(f"{target}-wal")
        page = int(connection.execute("PRAGMA page_size").fetchone()[0])
        found = Replay()
        clock = time.process_time
        for transaction in recording.transactions:
            connection.execute("BEGIN IMMEDIATE")
            for sql, parameters, many in transaction:
                name = kind(sql)
                started = clock()
                if many:
                    connection.executemany(sql, parameters)
                else:
                    connection.execute(sql, parameters).fetchall()
                found.statements[name] = found.statements.get(name, 0.0) + clock() - started
                found.rows[name] = found.rows.get(name, 0) + (len(parameters) if many else 1)
            started = clock()
            connection.execute("COMMIT")
            found.commit += clock() - started
        # Each frame is the page and a 24-byte header; the file starts with a 32-byte one.
        found.frames = max(0, wal.stat().st_size - 32) // (page + 24) if wal.exists() else 0
        return found
    finally:
        connection.close()


def lowest(replays: Sequence[Replay]) -> Replay:
    """Each figure's lowest over ``replays`` (the least disturbed run of each part)."""
    best = Replay(rows=dict(replays[0].rows), frames=replays[0].frames)
    for name in replays[0].statements:
        best.statements[name] = min(run.statements.get(name, 0.0) for run in replays)
    best.commit = min(run.commit for run in replays)
    return best


def report(recording: Recording, labelled: dict[str, Replay]) -> str:
    """The table: per statement kind, rows and CPU per message of each replay."""
    messages = recording.messages
    labels = list(labelled)
    base = labelled[labels[0]]
    head = "| statement | rows per message | " + " | ".join(
        f"{label}: us per row, per message" for label in labels
    )
    lines = [head + " |", "|---|---|" + "---|" * len(labels)]
    names = sorted(base.statements, key=lambda name: -base.statements[name])
    for name in names:
        rows = base.rows[name]
        cells = []
        for replayed in labelled.values():
            seconds = replayed.statements.get(name, 0.0)
            cells.append(f"{seconds * 1e6 / rows:.2f}, {seconds * 1e6 / messages:.2f}")
        lines.append(f"| {name} | {rows / messages:.2f} | " + " | ".join(cells) + " |")
    commits = " | ".join(
        f"COMMIT {replayed.commit * 1e6 / messages:.2f} us, "
        f"{replayed.frames / messages:.2f} pages" + " per message"
        for replayed in labelled.values()
    )
    lines.append(f"| (transactions: {len(recording.transactions)}) | | {commits} |")
    totals = " | ".join(
        f"**{replayed.total * 1e6 / messages:.2f}**" for replayed in labelled.values()
    )
    lines.append(f"| **all, us per message** | | {totals} |")
    if len(labels) > 1:
        ratios = ", ".join(
            f"{label} / {labels[0]} {labelled[label].total / base.total:.3f}"
            for label in labels[1:]
        )
        lines.append("")
        lines.append(f"All of SQLite's CPU, lowest of the rounds: {ratios}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=100, help="receipts at once")
    parser.add_argument("--rounds", type=int, default=5, help="replays of each variant")
    parser.add_argument(
        "--without", action="append", default=[], metavar="INDEX", help="an index dropped"
    )
    parser.add_argument(
        "--variant", action="append", default=[], metavar="SQL", help="statements run first"
    )
    args = parser.parse_args(argv)
    variants: dict[str, list[str]] = {"as is": []}
    for index in args.without:
        variants[f"without {index}"] = [f"DROP INDEX {index}"]
    for number, sql in enumerate(args.variant, start=1):
        variants[f"variant {number}"] = [part for part in sql.split(";;") if part.strip()]
    with tempfile.TemporaryDirectory(prefix="pigeon-statements-") as directory:
        folder = Path(directory)
        recording = record(args.messages, args.concurrency, folder)
        replays: dict[str, list[Replay]] = {label: [] for label in variants}
        for _ in range(args.rounds):
            for label, changes in variants.items():
                replays[label].append(replay(recording, changes, folder))
    print(report(recording, {label: lowest(runs) for label, runs in replays.items()}))
    for number, sql in enumerate(args.variant, start=1):
        print(f"variant {number}: {sql}")
    print(f"\ncommand: {' '.join(['python', *sys.argv])}")
    print(f"{args.messages:,} messages accepted, sent and delivered; {args.rounds} rounds")


if __name__ == "__main__":
    main()
