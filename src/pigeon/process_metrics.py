"""The worker processes' metrics, summed into ``pigeon serve``'s ``/metrics``.

With ``worker_processes``, dispatch, receipts and their counts (status changes, submits,
receipt latencies) happen in child processes that serve no HTTP. Each child writes a snapshot
of its own counters and histograms (``pigeon.telemetry.snapshot``) to a file in a folder
``serve`` made for them, once a second and when it stops (``MetricsReport``); ``serve`` reads
the files at every scrape and sums them with its own (``PeerMetrics``). A file is replaced
whole (written beside it, then renamed), so a scrape never reads half of one.

A child that has died leaves its last snapshot: ``serve`` keeps it as a retired total and
deletes the file, so its replacement, counting from zero again, does not make the sums go
down (Prometheus would read a drop as a counter reset). What a child counted after its last
write before it was killed is lost: a second's counts at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pigeon.telemetry import Snapshot, merge_snapshots, snapshot

log = logging.getLogger(__name__)

#: Seconds between two snapshots of a worker process.
REPORT_INTERVAL_SECONDS = 1.0
_PREFIX = "worker-"
_SUFFIX = ".json"


class MetricsReport:
    """Writes this process's snapshot to ``folder`` every ``interval`` seconds."""

    def __init__(
        self,
        folder: Path,
        interval: float = REPORT_INTERVAL_SECONDS,
        take: Callable[[], Snapshot] = snapshot,
    ) -> None:
        self._folder = folder
        self._interval = interval
        self._take = take
        self._pid = os.getpid()

    @property
    def path(self) -> Path:
        """This process's file."""
        return self._folder / f"{_PREFIX}{self._pid}{_SUFFIX}"

    def write(self) -> None:
        """Replace this process's file with a snapshot taken now."""
        text = json.dumps({"pid": self._pid, "metrics": self._take()}, separators=(",", ":"))
        scratch = self._folder / f".{_PREFIX}{self._pid}.tmp"
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, self.path)

    async def run(self, stop: asyncio.Event) -> None:
        """Write a snapshot every interval until ``stop``, and a last one then."""
        while not stop.is_set():
            self._write_logged()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
        self._write_logged()

    def _write_logged(self) -> None:
        try:
            self.write()
        except OSError as exc:  # the folder gone (serve stopping) or a full disk: next time
            log.warning("metrics snapshot not written to %s: %s", self._folder, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


class PeerMetrics:
    """The snapshots the worker processes wrote to ``folder``, for ``add_peer_source``."""

    def __init__(self, folder: Path, alive: Callable[[int], bool] = _alive) -> None:
        self._folder = folder
        self._alive = alive
        #: What the processes that have died had counted, summed.
        self._retired: Snapshot = {}

    def __call__(self) -> list[Snapshot]:
        """The retired totals and every live process's last snapshot."""
        live: list[Snapshot] = []
        try:
            paths = sorted(self._folder.glob(f"{_PREFIX}*{_SUFFIX}"))
        except OSError:
            paths = []
        for path in paths:
            report = self._read(path)
            if report is None:
                continue
            pid, metrics = report
            if self._alive(pid):
                live.append(metrics)
                continue
            self._retired = merge_snapshots([self._retired, metrics])
            with contextlib.suppress(OSError):
                path.unlink()
        return [self._retired, *live]

    @staticmethod
    def _read(path: Path) -> tuple[int, Snapshot] | None:
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            pid = int(data["pid"])
            metrics = data["metrics"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # gone since the listing, or not a report
        if not isinstance(metrics, dict):
            return None
        return pid, metrics
