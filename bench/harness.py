"""What every benchmark shares: processes on loopback, the carrier simulator, callbacks, figures.

Imported by the scripts next to it (``bench/`` is on ``sys.path`` when one of them runs):

- ``Processes``: every child process a run starts, stopped in reverse order whatever happens;
- ``Sim``: a ``pigeon smsc-sim`` process and its HTTP control port (``/stats``, ``/received``);
- ``Receiver``: an aiohttp server in this process counting callbacks (webhooks, Kannel DLRs);
- ``start_pigeon``: ``pigeon serve`` wired to a ``Sim`` by a ``[[connectors]]`` table;
- ``fresh_database``: a new SQLite directory or a new PostgreSQL database, dropped afterwards;
- ``Result``: one scenario's figures (what ``bench/suite.py`` tabulates and writes as JSON);
- ``rss_mb``, ``percentiles``, ``machine_info``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

KEY = "pk_live_bench_0123456789abcdefghijklmnop"
SIM_USER, SIM_PASSWORD = "pigeon", "secret"
POSTGRES_URL = os.environ.get(
    "PIGEON_BENCH_POSTGRES_URL",
    os.environ.get("PIGEON_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)

SOURCE: list[str] = []
"""A directory put first on PYTHONPATH of every pigeon child (``--pigeon-src``), if given."""


def quiet_collector() -> None:
    """Keep a load generator's own garbage collections out of what it measures.

    A full collection of a generator that has imported aiohttp walks every object it holds:
    70-105 ms on the 2-core machines of session 12, during which responses wait unread and
    count as the gateway's latency. Everything alive now is frozen (never traced again) and
    young objects are collected less often; what the run allocates is still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment plus ``extra`` (and ``SOURCE`` first on PYTHONPATH)."""
    env = {**os.environ, **extra}
    if SOURCE:
        env["PYTHONPATH"] = os.pathsep.join([*SOURCE, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def free_port() -> int:
    """An unused TCP port on 127.0.0.1, for a child process to bind later: below the kernel's
    ephemeral range where there is room, so that no outgoing connection (nor a bind on port 0)
    takes it before the child binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(100):
        with socket.socket() as sock:
            try:
                sock.bind(
                    ("127.0.0.1", secrets.randbelow(low - 20000) + 20000 if low > 21000 else 0)
                )
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The live children of ``pid`` (``pigeon worker`` processes of a ``pigeon serve``)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def descendant_pids(pid: int) -> list[int]:
    """Every live process under ``pid``: its workers and each one's WAL sync process (ADR 36)."""
    found: list[int] = []
    for child in child_pids(pid):
        found.append(child)
        found.extend(descendant_pids(child))
    return found


def is_wal_sync(pid: int) -> bool:
    """Whether ``pid`` is a writer's WAL sync process (``pigeon/store/wal_file.py``)."""
    try:
        return b"wal_file.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def gateway_pids(pid: int) -> dict[str, int]:
    """The processes of the ``pigeon serve`` at ``pid`` by label: ``pigeon serve``, ``pigeon
    worker N`` in start order, and ``pigeon wal sync ...`` for each one's WAL sync process."""
    pids = {"pigeon serve": pid}
    workers = [child for child in child_pids(pid) if not is_wal_sync(child)]
    for owner, label in ((pid, "serve"), *((w, f"worker {n}") for n, w in enumerate(workers, 1))):
        if owner != pid:
            pids[f"pigeon {label}"] = owner
        for number, syncer in enumerate(c for c in child_pids(owner) if is_wal_sync(c)):
            pids[f"pigeon wal sync of {label}" + (f" ({number + 1})" if number else "")] = syncer
    return pids


def rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (``VmHWM``), in MB; 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``latencies`` (seconds), in milliseconds; (0, 0) without samples."""
    if not latencies:
        return 0.0, 0.0
    ordered = sorted(latencies)
    last = len(ordered) - 1
    return (
        ordered[round(last * 0.50)] * 1000,
        ordered[round(last * 0.99)] * 1000,
    )


def http_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 or 202 (False if it cannot be reached)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status in (200, 202)
    except OSError:
        return False


def http_json(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """GET (or POST ``body`` as JSON to) ``url``; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


@dataclass
class Processes:
    """Every child process started, stopped in reverse order whatever happens."""

    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    inner: list[int] = field(default_factory=list)
    """Processes under a wrapper (the server under py-spy): signalled first."""

    def start(
        self, name: str, argv: list[str], log: Path, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``log``."""
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self.started.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop one process started here (SIGTERM, then SIGKILL after 15 s)."""
        self.started = [(n, p) for n, p in self.started if p is not process]
        _terminate(process)

    def stop_all(self) -> None:
        """Stop everything started here, newest first."""
        while self.inner:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.inner.pop(), signal.SIGTERM)
        while self.started:
            _, process = self.started.pop()
            _terminate(process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Sim:
    """A ``pigeon smsc-sim`` process with its control port."""

    def __init__(
        self,
        processes: Processes,
        tmp: Path,
        name: str,
        delay: float,
        *,
        window: int = 100,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port, self.control = free_port(), free_port()
        argv = [
            *(sys.executable, "-m", "pigeon", "smsc-sim", "--port", str(self.port)),
            *("--control-port", str(self.control), "--ids", "hex", "--window", str(window)),
            *("--receipt-delay", str(delay), "--default-outcome", "DELIVRD"),
            *("--system-id", SIM_USER, "--password", SIM_PASSWORD, *extra),
        ]
        self.process = processes.start(name, argv, tmp / f"{name}.log", env=child_env())

    def stats(self) -> dict[str, Any]:
        """The simulator's counters (``GET /stats``)."""
        return dict(http_json(f"http://127.0.0.1:{self.control}/stats"))

    def received(self, since: int, match: str = "", limit: int = 10_000) -> dict[str, Any]:
        """Messages received from index ``since`` on, with arrival times (``GET /received``)."""
        query = urllib.parse.urlencode({"since": since, "match": match, "limit": limit})
        return dict(http_json(f"http://127.0.0.1:{self.control}/received?{query}"))

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the control port answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("smsc-sim did not start")

    def open_binds(self) -> int:
        """How many binds are open now."""
        return sum(1 for bind in self.stats()["binds"] if bind["open"])


#: The receiver's listen backlog (aiohttp's default is 128). Kannel's smsbox opens a connection
#: per DLR callback, up to a hundred at once: with 128, the accept queue overflowed now and
#: then (``TcpExtListenOverflows``), and each dropped SYN was sent again a second later, a
#: ~0.9 s gap before the last callbacks that cut Kannel's callbacks/s by up to a fifth in a
#: 10,000-message phase (docs/benchmarks.md, session 14). Pigeon's webhooks reuse keep-alive
#: connections and never met it.
LISTEN_BACKLOG = 4096


class Receiver:
    """An aiohttp server in this process counting callbacks (Kannel DLRs, Pigeon webhooks)."""

    def __init__(self, latency: float = 0.0) -> None:
        #: Seconds each callback waits before its answer, as a receiver that does some work.
        self.latency = latency
        self.count = 0
        self.last = 0.0
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.arrived = asyncio.Event()

    async def _hit(self, request: web.Request) -> web.Response:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if request.method == "POST":
            event = json.loads(await request.read())
            if event.get("type") not in ("message.delivered", "message.undelivered"):
                return web.Response(text="ignored")
        self.count += 1
        self.last = time.monotonic()
        self.arrived.set()
        return web.Response(text="ok")

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1, with a listen backlog of ``LISTEN_BACKLOG``."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._hit)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=LISTEN_BACKLOG).start()

    async def first(self, timeout: float) -> None:
        """Wait for one callback (the warm-up's), then reset the count."""
        await asyncio.wait_for(self.arrived.wait(), timeout)
        self.count = 0

    async def stop(self) -> None:
        """Stop listening."""
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Pigeon:
    """A started ``pigeon serve``: its process, base URL and database."""

    process: subprocess.Popen[bytes]
    base: str
    database_url: str
    smpp_port: int

    @property
    def pid(self) -> int:
        return self.process.pid


async def start_pigeon(
    processes: Processes,
    tmp: Path,
    sim: Sim | None,
    *,
    database_url: str | None = None,
    binds: int = 1,
    workers: bool = True,
    worker_processes: int = 0,
    profile: str | None = None,
    extra_env: dict[str, str] | None = None,
    python: str | None = None,
    throughput: int = 0,
) -> Pigeon:
    """``pigeon serve`` on ``database_url`` (SQLite in ``tmp`` by default) with the live key
    ``KEY``; with a ``sim``, one ``[[connectors]]`` SMPP table to it (``binds`` transceivers,
    window 100), else the built-in simulator. Returns once ready (and bound to the sim).
    ``python``: the interpreter of the gateway (and so of its workers), if not this one's.
    ``throughput``: the connector's ``throughput_per_second`` (0: none)."""
    config = tmp / "pigeon.toml"
    if sim is not None:
        config.write_text(
            '[[connectors]]\nid = "sim"\ntype = "smpp"\nhost = "127.0.0.1"\n'
            f'port = {sim.port}\nsystem_id = "{SIM_USER}"\npassword = "{SIM_PASSWORD}"\n'
            f'bind_mode = "trx"\nbinds = {binds}\nwindow = 100\n'
            + (f"throughput_per_second = {throughput}\n" if throughput else "")
        )
    else:
        config.write_text("")
    data_dir = tmp / "pigeon-data"
    http_port, smpp_port = free_port(), free_port()
    env = child_env(
        PIGEON_CONFIG=str(config),
        PIGEON_DATA_DIR=str(data_dir),
        PIGEON_HTTP_PORT=str(http_port),
        PIGEON_SMPP_PORT=str(smpp_port),
        PIGEON_BOOTSTRAP_API_KEY=KEY,
        PIGEON_LOG_LEVEL="WARNING",
        PIGEON_RUN_WORKERS="true" if workers else "false",
        PIGEON_WORKER_PROCESSES=str(worker_processes if workers else 0),
        **(extra_env or {}),
    )
    if database_url:
        env["PIGEON_DATABASE_URL"] = database_url
    else:
        env.pop("PIGEON_DATABASE_URL", None)
    argv = [python or sys.executable, "-m", "pigeon", "serve"]
    if profile:
        argv = [
            str(Path(sys.executable).with_name("py-spy")),
            *(
                "record",
                "--rate",
                "100",
                "--subprocesses",
                "--idle",
                "--threads",
                "--format",
                "raw",
            ),
            *("-o", profile, "--", *argv),
        ]
    log = tmp / "pigeon.out"
    server = processes.start("pigeon serve", argv, log, env=env)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 120
    wanted_binds = binds if (sim is not None and workers) else 0
    while True:
        if await asyncio.to_thread(http_ok, f"{base}/readyz"):
            if sim is None or wanted_binds == 0:
                break
            with contextlib.suppress(OSError):
                if await asyncio.to_thread(sim.open_binds) >= wanted_binds:
                    break
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError(f"pigeon serve did not get ready; see {log}")
        await asyncio.sleep(0.2)
    url = database_url or f"sqlite:///{data_dir / 'pigeon.db'}"
    return Pigeon(server, base, url, smpp_port)


def stop_profiled(pigeon: Pigeon, timeout: float = 60.0) -> None:
    """Stop a ``pigeon serve`` started under py-spy (``start_pigeon(profile=...)``): SIGTERM
    to serve itself, then wait for py-spy to write its file and exit. (Stopping py-spy
    first would lose the file.)"""
    for child in child_pids(pigeon.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        pigeon.process.wait(timeout)


def count_messages(database_url: str, status: str) -> int:
    """How many messages have ``status`` (a direct read of the gateway's database)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("sqlite:///", 1)[1]
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            row = db.execute("SELECT count(*) FROM messages WHERE status = ?", (status,)).fetchone()
        return int(row[0])
    return int(
        asyncio.run(
            _postgres_fetchval(
                database_url, "SELECT count(*) FROM messages WHERE status = $1", status
            )
        )
    )


async def _postgres_fetchval(url: str, query: str, *args: Any) -> Any:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


def postgres_backends(database_url: str) -> list[int]:
    """The process ids of the PostgreSQL backends connected to ``database_url``'s database
    (other than the asking one): the server's share of a gateway's work is theirs."""
    pids = blocking(
        _postgres_fetchval(
            database_url,
            "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
    )
    return [int(pid) for pid in pids]


def blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on its own loop in another thread (callable from inside
    a running event loop as well as outside one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _postgres_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


async def _postgres_admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _jobs_left(url: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(url.replace("+asyncpg", "", 1))
    try:
        if await connection.fetchval("SELECT to_regclass('public.jobs')") is None:
            return 0
        return int(await connection.fetchval("SELECT count(*) FROM jobs"))
    finally:
        await connection.close()


def postgres_jobs_left(url: str) -> int:
    """How many jobs a PostgreSQL database at ``url`` still holds (0 when it has no ``jobs``
    table): an earlier run's jobs, whose webhook receiver and carrier are gone, would be
    retried during the next run and slow it down run by run."""
    return blocking(_jobs_left(url))


@contextlib.contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str | None]:
    """A new, empty database for one scenario: ``None`` for SQLite (the gateway makes its file
    in its data directory under ``tmp``), else the URL of a new PostgreSQL database
    ``pigeon_bench_<pid>_<random>`` on ``POSTGRES_URL``'s server, dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database {kind!r}")
    name = f"pigeon_bench_{os.getpid()}_{secrets.token_hex(4)}"
    blocking(_postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _postgres_url(name)
    finally:
        blocking(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_available() -> str:
    """Empty if the PostgreSQL server answers, else why not."""
    try:
        blocking(_postgres_admin("SELECT 1"))
    except Exception as exc:  # any failure to connect means: skip PostgreSQL
        return f"{type(exc).__name__}: {exc}"
    return ""


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary directory, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Result:
    """One scenario on one database: the figures ``bench/suite.py`` reports."""

    scenario: str
    name: str
    database: str
    messages: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    peak_rss_mb: float = 0.0
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``msg_per_s`` for the rate."""
        return {
            "scenario": self.scenario,
            "name": self.name,
            "database": self.database,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "msg_per_s": round(self.rate, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "errors": self.errors,
            "extra": self.extra,
            "skipped": self.skipped,
        }


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else ""


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--database`` (repeatable; both by default) and ``--tree LABEL=SRC`` (repeatable; this
    checkout by default): the options of the benchmarks that time ``pigeon serve`` on each
    database, one tree after the other."""
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql"), action="append", help="default: both"
    )
    parser.add_argument(
        "--tree",
        action="append",
        metavar="LABEL=SRC",
        help="run pigeon serve from SRC (PYTHONPATH); repeatable (default: this checkout)",
    )


def trees_and_databases(
    args: argparse.Namespace,
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The ``--tree`` options as (label, absolute src; ``None`` for this checkout) and the
    ``--database`` ones that can run (PostgreSQL is left out, and why said, when it does not
    answer)."""
    trees: list[tuple[str, str | None]] = [("this", None)]
    if args.tree:
        trees = []
        for spec in args.tree:
            label, _, source = spec.partition("=")
            trees.append((label, str(Path(source).resolve())))
    databases = []
    for kind in args.database or ["sqlite", "postgresql"]:
        if kind == "postgresql" and (why := postgres_available()):
            print(f"PostgreSQL skipped: {why}", file=sys.stderr)
            continue
        databases.append(kind)
    return trees, databases


def command_and_machine(script: str, argv: list[str] | None) -> str:
    """The lines a benchmark ends its report with: its command and the machine."""
    info = machine_info()
    arguments = " ".join(sys.argv[1:] if argv is None else argv)
    return (
        f"command: python bench/{script} {arguments}\n"
        f"machine: {info['cores']} vCPU {info['cpu']}, Python {info['python']}, "
        f"SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}"
    )


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, kernel, OS, Python, SQLite and PostgreSQL versions."""
    model = ""
    with contextlib.suppress(OSError), Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    os_name = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    postgres = ""
    with contextlib.suppress(Exception):
        postgres = str(blocking(_postgres_fetchval(POSTGRES_URL, "SHOW server_version")))
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(memory, 1),
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "kannel": _first_line(["dpkg-query", "-W", "-f=${Version}", "kannel"]),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
