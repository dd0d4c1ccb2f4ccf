"""The ``pigeon worker`` processes that ``pigeon serve`` runs next to itself.

With ``worker_processes = N``, ``serve`` keeps the REST API and the SMPP server and leaves the
job runners and carrier links (dispatch, receipts, webhooks) to N child processes on the same
database: Python runs one core per process, and a gateway's work is mostly in those runners.
``worker_urgent_processes`` more children send only the urgent lane's jobs (OTPs).
Each child gets a wake port and its peers' (``pigeon.queue.wake``), is restarted with a backoff
when it dies, and is stopped (SIGTERM, then SIGKILL after ``stop_timeout``) with ``serve``.
Nothing is lost when a child dies: its leased jobs are taken over when their lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nobody uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class WorkerProcesses:
    """Children running ``argv`` with ``env`` plus their own wake settings: one per entry of
    ``roles``, the variables that child adds (``PIGEON_JOB_LANE`` for instance)."""

    def __init__(
        self,
        roles: Sequence[Mapping[str, str]],
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        parent_wake_port: int,
        host: str = "127.0.0.1",
        restart_min_delay: float = 1.0,
        restart_max_delay: float = 30.0,
        stop_timeout: float = 20.0,
        reports_folder: Path | None = None,
    ) -> None:
        self._argv = list(argv)
        #: Where the children write their reports (``pigeon.worker_reports``); removed by
        #: ``stop``.
        self.reports_folder = reports_folder
        self._env = dict(env)
        self._host = host
        self._parent = (host, parent_wake_port)
        self._roles = [dict(role) for role in roles]
        count = len(self._roles)
        self.ports = [free_udp_port(host) for _ in range(count)]
        self._restart_min = restart_min_delay
        self._restart_max = restart_max_delay
        self._stop_timeout = stop_timeout
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        #: How many times each child was started (restarts show as counts above one).
        self.starts = [0] * count

    @property
    def peers(self) -> list[tuple[str, int]]:
        """The children's wake addresses (the parent's wake peers)."""
        return [(self._host, port) for port in self.ports]

    def _urgent_only(self, index: int) -> bool:
        """Whether child ``index`` runs the urgent lane alone (an OTP worker)."""
        return self._roles[index].get("PIGEON_JOB_LANE") == "urgent"

    def wake_peers(self, excluding: int | None = None) -> tuple[str, str]:
        """The children's wake addresses but ``excluding``'s, as ``wake_peers`` and
        ``wake_urgent_peers`` (those of the urgent lane alone, told only of urgent jobs)."""
        regular: list[str] = []
        urgent: list[str] = []
        for index, port in enumerate(self.ports):
            if index != excluding:
                (urgent if self._urgent_only(index) else regular).append(f"{self._host}:{port}")
        return ",".join(regular), ",".join(urgent)

    @property
    def pids(self) -> list[int]:
        """The children running now."""
        return [process.pid for process in self._processes.values()]

    def env_for(self, index: int) -> dict[str, str]:
        """The environment of child ``index``: the parent's plus its worker role."""
        siblings, urgent = self.wake_peers(excluding=index)
        parent = f"{self._parent[0]}:{self._parent[1]}"
        return {
            **self._env,
            **self._roles[index],
            "PIGEON_RUN_WORKERS": "true",
            "PIGEON_RUN_SMPP": "false",
            "PIGEON_WORKER_PROCESSES": "0",
            "PIGEON_WAKE_PORT": str(self.ports[index]),
            "PIGEON_WAKE_PEERS": f"{parent},{siblings}" if siblings else parent,
            "PIGEON_WAKE_URGENT_PEERS": urgent,
            "PIGEON_WORKER_REPORT_DIR": str(self.reports_folder or ""),
        }

    async def start(self) -> None:
        """Start every child (and keep restarting those that die)."""
        for index in range(len(self.ports)):
            self._watchers.append(asyncio.create_task(self._keep_running(index)))

    async def _keep_running(self, index: int) -> None:
        delay = self._restart_min
        while not self._stopping.is_set():
            process = await asyncio.create_subprocess_exec(*self._argv, env=self.env_for(index))
            self._processes[index] = process
            self.starts[index] += 1
            code = await process.wait()
            self._processes.pop(index, None)
            if self._stopping.is_set():
                return
            log.warning("worker process %d exited with %s; restarting in %gs", index, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._restart_max)

    async def stop(self) -> None:
        """Stop every child: SIGTERM (they finish what they hold), SIGKILL after the timeout."""
        self._stopping.set()
        processes = list(self._processes.values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.ensure_future(process.wait()) for process in processes]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=self._stop_timeout)
            for process in processes:
                if process.returncode is None:
                    log.warning("worker process %d did not stop; killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for watcher in self._watchers:
            watcher.cancel()
        for watcher in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        self._watchers.clear()
        if self.reports_folder is not None:
            shutil.rmtree(self.reports_folder, ignore_errors=True)
