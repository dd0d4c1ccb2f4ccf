"""What ``pigeon serve``'s worker processes tell it, and the throughput it gives them.

With ``worker_processes``, dispatch and receipts happen in child processes that serve no
HTTP and hold the SMPP binds. Each child writes a report to a folder ``serve`` made for them,
once a second and when it stops (``WorkerReport``): a snapshot of its own counters and
histograms (``pigeon.telemetry.snapshot``), whether each of its carrier links is ready, and
how it used its part of each carrier's throughput cap. ``serve`` reads the reports
(``WorkerReports``): it sums the snapshots into every scrape of its ``/metrics``, answers
for the links it leaves to the workers (``/readyz``, route explanations) with what they
report, and once a second shares each cap among the workers by what they used
(``pigeon.domain.pacing``) in a file the workers read back (``share_pacing``): together they
never send a carrier more than its ``throughput_per_second``. Files are replaced whole
(written beside, then renamed), so a reader never sees half of one.

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

from pigeon.domain.pacing import PacerUse, granted_rates, shared_rates
from pigeon.ports import Pacer
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
#: Where ``serve`` writes each worker's part of each cap.
PACING_FILE = "pacing.json"


def _replace(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` whole: beside it, then renamed over it."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(scratch, path)


class WorkerReport:
    """Writes this process's report to ``folder`` every ``interval`` seconds."""

    def __init__(
        self,
        folder: Path,
        links: Callable[[], Mapping[str, bool]] = dict,
        interval: float = REPORT_INTERVAL_SECONDS,
        metrics: Callable[[], Snapshot] = snapshot,
        pacers: Callable[[], Mapping[str, Pacer]] = dict,
        clock: Callable[[], float] = time.monotonic,
        pid: int | None = None,
    ) -> None:
        self._folder = folder
        self._links = links
        self._interval = interval
        self._metrics = metrics
        self._pacers = pacers
        self._clock = clock
        self._pid = os.getpid() if pid is None else pid
        #: Each pacer's counts at the last report: (taken, waits, when).
        self._last: dict[str, tuple[int, int, float]] = {}

    @property
    def path(self) -> Path:
        """This process's file."""
        return self._folder / f"{_PREFIX}{self._pid}{_SUFFIX}"

    def write(self) -> None:
        """Take up the parts of the caps ``serve`` gave this process, then replace this
        process's file with a report made now."""
        pacers = dict(self._pacers())
        self._apply_shares(pacers)
        report = {
            "pid": self._pid,
            "metrics": self._metrics(),
            "links": dict(self._links()),
            "pacing": self._pacing(pacers),
        }
        _replace(self.path, report)

    def _pacing(self, pacers: Mapping[str, Pacer]) -> dict[str, dict[str, Any]]:
        """How each pacer was used since the last report."""
        now = self._clock()
        used: dict[str, dict[str, Any]] = {}
        for connector_id, pacer in pacers.items():
            taken, waits, then = self._last.get(connector_id, (pacer.taken, pacer.waits, now))
            elapsed = now - then
            used[connector_id] = {
                "cap": pacer.cap,
                "rate": pacer.rate,
                "demand": (pacer.taken - taken) / elapsed if elapsed > 0 else 0.0,
                "waited": pacer.waits > waits,
            }
            self._last[connector_id] = (pacer.taken, pacer.waits, now)
        return used

    def _apply_shares(self, pacers: Mapping[str, Pacer]) -> None:
        """Set each pacer to the part ``serve`` last gave this process (kept as it is when
        there is none yet)."""
        try:
            shares: Any = json.loads((self._folder / PACING_FILE).read_text(encoding="utf-8"))
            rates = shares["rates"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # none written yet
        if not isinstance(rates, dict):
            return
        for connector_id, pacer in pacers.items():
            parts = rates.get(connector_id)
            part = parts.get(str(self._pid)) if isinstance(parts, dict) else None
            if isinstance(part, int | float) and part > 0 and part != pacer.rate:
                pacer.set_rate(float(part))

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
    #: By connector: (its whole cap, how this process used its part).
    pacing: dict[str, tuple[float, PacerUse]]


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

    def share_pacing(self) -> dict[str, dict[str, float]]:
        """Share each carrier's cap among the live workers pacing it, by how they used their
        parts lately, and write the parts where the workers read them (``PACING_FILE``).
        Returns them: by connector, by process id."""
        self._read()
        uses: dict[str, dict[str, PacerUse]] = {}
        caps: dict[str, float] = {}
        for report in self._live:
            for connector_id, (cap, use) in report.pacing.items():
                uses.setdefault(connector_id, {})[str(report.pid)] = use
                caps[connector_id] = max(cap, caps.get(connector_id, 0.0))
        rates = {
            connector_id: granted_rates(
                caps[connector_id],
                shared_rates(caps[connector_id], by_pid),
                {pid: use.rate for pid, use in by_pid.items()},
            )
            for connector_id, by_pid in uses.items()
        }
        _replace(self.folder / PACING_FILE, {"rates": rates})
        return rates

    async def run_pacing(self, stop: asyncio.Event) -> None:
        """``share_pacing`` every report interval until ``stop`` (failures logged)."""
        while not stop.is_set():
            try:
                self.share_pacing()
            except OSError as exc:  # the folder gone (stopping) or a full disk: next time
                log.warning("pacing shares not written to %s: %s", self.folder, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_INTERVAL_SECONDS)

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
        pacing = {
            str(connector_id): (
                float(used["cap"]),
                PacerUse(float(used["demand"]), used["waited"] is True, float(used["rate"])),
            )
            for connector_id, used in data.get("pacing", {}).items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # gone since the listing, or not a report
    if not isinstance(metrics, dict) or not isinstance(links, dict):
        return None
    links_ready = {str(k): v is True for k, v in links.items()}
    return _Report(pid, metrics, links_ready, written_at, pacing)
