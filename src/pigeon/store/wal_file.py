"""The WAL file a SQLite writer syncs itself (ADR 30), and the program of the process that
syncs it (ADR 36): ``python -I -S wal_file.py FD PATH`` serves sync requests on the socket
``FD`` inherited from its writer (``pigeon.store.wal_sync.WalSyncProcess``).

Only the standard library's ``os``, ``signal``, ``socket`` and ``sys``: the child starts in
about 20 ms, without Pigeon's packages or the virtualenv's site.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable

#: A sync request (writer to child), and the answers: done, or failed (then ``errno:text``).
SYNC = b"s"
SYNCED = b"\x00"
FAILED = b"\x01"
#: The argument that makes the child a batch task (``run_as_batch``).
BATCH = "batch"


class WalFile:
    """The WAL file a writer syncs itself (ADR 30): opened once, opened again if the file at
    its path is another one (the WAL is deleted when the last connection to the database
    closes, and made anew by the next). Used from one thread at a time."""

    def __init__(self, path: str, sync: Callable[[int], None]) -> None:
        self.path = path
        self._sync = sync
        self._fd: int | None = None

    def sync(self) -> None:
        """Make every frame written to the WAL so far durable (``fdatasync``). A WAL that is
        gone had its frames checkpointed into the database, which SQLite synced then; the
        database file is synced again all the same."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            database = os.open(self.path.removesuffix("-wal"), os.O_RDONLY)
            try:
                self._sync(database)
            finally:
                os.close(database)
            return
        fd = self._fd
        if fd is not None:
            held = os.fstat(fd)
            if (held.st_dev, held.st_ino) != (current.st_dev, current.st_ino):
                self.close()
                fd = None
        if fd is None:
            fd = self._fd = os.open(self.path, os.O_RDONLY)
        self._sync(fd)

    def close(self) -> None:
        """Close the file (the next ``sync`` opens it again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def serve_syncs(sock: socket.socket, path: str) -> None:
    """The child's loop: a sync of ``path``'s WAL for each request on ``sock``, answered with
    ``SYNCED`` or ``FAILED`` and the error, until the socket closes."""
    wal = WalFile(path, os.fdatasync)
    try:
        while True:
            try:
                request = sock.recv(16)
            except InterruptedError:  # pragma: no cover - retried by Python already
                continue
            if not request:
                return
            try:
                wal.sync()
            except OSError as exc:
                sock.send(FAILED + f"{exc.errno or 0}:{exc.strerror or exc}".encode()[:1000])
            else:
                sock.send(SYNCED)
    except OSError:  # the parent is gone mid-answer: nothing left to do
        return
    finally:
        wal.close()


def run_as_batch() -> bool:
    """Schedule this process as a batch task (Linux's ``SCHED_BATCH``; ADR 52): when a sync
    request wakes it, it does not preempt the process running on the core, but runs when
    that one sleeps or its time slice ends. Whether the policy took (not on other systems)."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError:
        return False
    return True


def main(argv: list[str]) -> None:
    """``wal_file.py FD PATH [batch]``: serve sync requests on the inherited socket ``FD``
    (as a batch task with ``batch``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if argv[2:] == [BATCH]:
        run_as_batch()
    fd, path = int(argv[0]), argv[1]
    with socket.socket(fileno=fd) as sock:
        serve_syncs(sock, path)


if __name__ == "__main__":
    main(sys.argv[1:])
