"""Syncing a SQLite writer's WAL after COMMIT (ADR 30), in a small process of its own (ADR 36).

The writer makes each committed batch durable with an ``fdatasync`` of the WAL before it
answers the batch's callers. Done in a thread of the writer's process, every sync wakes that
thread, which then takes the GIL twice (to start the call and to hand its result back) from
a loop that holds it nearly all the time. ``WalSyncProcess`` runs the syncs in a child process
instead: the writer sends it one byte and the event loop reads its one-byte answer, with no
second thread in the writer's process (docs/benchmarks.md, session 30, has the figures).

The child runs ``pigeon/store/wal_file.py`` as a script, which imports only a few modules of
the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys

from pigeon.store import wal_file
from pigeon.store.wal_file import SYNC, SYNCED

log = logging.getLogger(__name__)

#: How long ``close`` waits for the child to exit once its socket is closed.
EXIT_WAIT_SECONDS = 5.0


class WalSyncProcessGone(OSError):
    """The sync process exited or stopped answering: the sync it was asked for did not
    happen (the writer syncs in its thread from then on)."""


class WalSyncProcess:
    """A child process that syncs one WAL file on request, one sync at a time; with
    ``batch``, scheduled as a batch task (ADR 52: its wake-ups do not preempt the writer).

    ``sync()`` sends the request and returns a future of the event loop it was called on,
    resolved when the child answers: ``None`` once the WAL is durable, the ``OSError`` the
    sync raised, or ``WalSyncProcessGone`` if the child is gone. The child exits when its
    socket closes (``close``, or this process's end), and ignores ``SIGINT`` so that a Ctrl-C
    at the terminal leaves the writer's last syncs to finish.
    """

    def __init__(self, path: str, *, batch: bool = False) -> None:
        self.path = path
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, "-I", "-S", wal_file.__file__, str(theirs.fileno()), path]
        if batch:
            command.append(wal_file.BATCH)
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own script, no shell
                command,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket: socket.socket | None = ours
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    @property
    def usable(self) -> bool:
        """Whether syncs can still be asked of the child."""
        return self._socket is not None

    def sync(self) -> asyncio.Future[None]:
        """Ask for a sync of the WAL; the future resolves with the child's answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        sock = self._socket
        if sock is None:
            future.set_exception(WalSyncProcessGone("the WAL sync process is closed"))
            return future
        if self._waiting is not None:
            raise RuntimeError("one WAL sync at a time")
        if self._loop is None:
            self._loop = loop
            loop.add_reader(sock.fileno(), self._answered)
        try:
            sock.send(SYNC)
        except OSError as exc:  # the child is gone (or its socket is full: it is stuck)
            self._give_up()
            future.set_exception(WalSyncProcessGone(f"the WAL sync process is gone: {exc}"))
            return future
        self._waiting = future
        return future

    def _answered(self) -> None:
        sock = self._socket
        if sock is None:
            return
        try:
            answer = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            answer = b""
        waiting, self._waiting = self._waiting, None
        if not answer:  # the child exited
            self._give_up()
            error: OSError | None = WalSyncProcessGone("the WAL sync process exited")
        elif answer[:1] == SYNCED:
            error = None
        else:
            number, _, text = answer[1:].decode("utf-8", "replace").partition(":")
            error = OSError(int(number) if number.isdigit() else 0, text)
        if waiting is None or waiting.done():
            return
        if error is None:
            waiting.set_result(None)
        else:
            waiting.set_exception(error)

    def _give_up(self) -> None:
        """Stop using the child: no more requests, its socket closed (it exits on EOF)."""
        sock, self._socket = self._socket, None
        if sock is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):  # a closed loop has no reader left
                self._loop.remove_reader(sock.fileno())
        sock.close()
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_exception(WalSyncProcessGone("the WAL sync process was closed"))

    def close(self) -> None:
        """Close the socket (the child exits) and reap the child (killed if it lingers)."""
        self._give_up()
        try:
            self._process.wait(EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("the WAL sync process %d did not exit: killed", self._process.pid)
            self._process.kill()
            self._process.wait()
