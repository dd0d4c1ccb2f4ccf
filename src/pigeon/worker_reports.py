"""What ``pigeon serve``'s worker processes tell it: their metrics and their carrier links.

With ``worker_processes``, dispatch and receipts happen in child processes that serve no
HTTP and hold the SMPP binds. Each child writes a report to a folder ``serve`` made for them,
once a second and when it stops (``WorkerReport``): a snapshot of its own counters and
histograms (``pigeon.telemetry.snapshot``) and whether each of its carrier links is ready.
``serve`` reads the reports (``WorkerReports``): it sums the snapshots into every scrape of
its ``/metrics``, and answers for the links it leaves to the workers (``/readyz``, route
explanations) with what they report. A report is replaced whole (written beside it, then
renamed), so a reader never sees half of one.

A child that has died leaves its last report: ``serve`` keeps its counts as a retired total
and deletes the file, so its replacement, counting from zero again, does not make the sums
go down (Prometheus would read a drop as a counter reset). What a child counted after its
last report before it was killed is lost: a second's counts at most. A report older than
``STALE_AFTER_SECONDS`` (a child that hangs) no longer counts for its links.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pigeon.telemetry import Snapshot, merge_snapshots, snapshot

log = logging.getLogger(__name__)

#: Seconds between two reports of a worker process.
REPORT_INTERVAL_SECONDS = 1.0
#: A report this old says nothing about its process's links any more.
STALE_AFTER_SECONDS = 5.0
#: Reports read once serve the link questions of this many seconds.
READ_EVERY_SECONDS = 0.5
_PREFIX = "worker-"
_SUFFIX = ".json"


class WorkerReport:
    """Writes this process's report to ``folder`` every ``interval`` seconds."""

    def __init__(
        self,
        folder: Path,
        links: Callable[[], Mapping[str, bool]] = dict,
        interval: float = REPORT_INTERVAL_SECONDS,
        metrics: Callable[[], Snapshot] = snapshot,
    ) -> None:
        self._folder = folder
        self._links = links
        self._interval = interval
        self._metrics = metrics
        self._pid = os.getpid()

    @property
    def path(self) -> Path:
        """This process's file."""
        return self._folder / f"{_PREFIX}{self._pid}{_SUFFIX}"

    def write(self) -> None:
        """Replace this process's file with a report made now."""
        report = {"pid": self._pid, "metrics": self._metrics(), "links": dict(self._links())}
        scratch = self._folder / f".{_PREFIX}{self._pid}.tmp"
        scratch.write_text(json.dumps(report, separators=(",", ":")), encoding="utf-8")
        os.replace(scratch, self.path)

    async def run(self, stop: asyncio.Event) -> None:
        """Write a report every interval until ``stop``, and a last one then."""
        while not stop.is_set():
            self._write_logged()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
        self._write_logged()

    def _write_logged(self) -> None:
        try:
            self.write()
        except OSError as exc:  # the folder gone (serve stopping) or a full disk: next time
            log.warning("worker report not written to %s: %s", self._folder, exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


@dataclass(frozen=True)
class _Report:
    pid: int
    metrics: Snapshot
    links: dict[str, bool]
    written_at: float


class WorkerReports:
    """The reports the worker processes wrote to ``folder``: their metrics as a peer source
    (``pigeon.telemetry.add_peer_source``) and their links' state (``link_ready``)."""

    def __init__(
        self,
        folder: Path,
        alive: Callable[[int], bool] = _alive,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self._alive = alive
        self._clock = clock
        #: What the processes that have died had counted, summed.
        self._retired: Snapshot = {}
        self._live: list[_Report] = []
        self._read_at: float | None = None

    def __call__(self) -> list[Snapshot]:
        """The retired totals and every live process's last snapshot (read now)."""
        self._read()
        return [self._retired, *(report.metrics for report in self._live)]

    def link_ready(self, connector_id: str) -> bool:
        """Whether a live worker process reported, lately, that its link to
        ``connector_id`` is ready."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= READ_EVERY_SECONDS:
            self._read()
        return any(
            report.links.get(connector_id) is True and now - report.written_at < STALE_AFTER_SECONDS
            for report in self._live
        )

    def _read(self) -> None:
        self._read_at = self._clock()
        live: list[_Report] = []
        try:
            paths = sorted(self.folder.glob(f"{_PREFIX}*{_SUFFIX}"))
        except OSError:
            paths = []
        for path in paths:
            report = _read(path)
            if report is None:
                continue
            if self._alive(report.pid):
                live.append(report)
                continue
            self._retired = merge_snapshots([self._retired, report.metrics])
            with contextlib.suppress(OSError):
                path.unlink()
        self._live = live


def _read(path: Path) -> _Report | None:
    try:
        written_at = path.stat().st_mtime
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        pid = int(data["pid"])
        metrics = data["metrics"]
        links = data.get("links", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # gone since the listing, or not a report
    if not isinstance(metrics, dict) or not isinstance(links, dict):
        return None
    return _Report(pid, metrics, {str(k): v is True for k, v in links.items()}, written_at)
