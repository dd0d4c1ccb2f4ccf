"""Settings: one TOML file plus ``PIGEON_*`` environment variables, validated once at start.

Precedence: environment variable > ``pigeon.toml`` > default. Settings are built once by the
CLI and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pigeon.domain.addressing import SenderKind
from pigeon.domain.connectors import CONNECTOR_TYPES as KNOWN_CONNECTOR_TYPES
from pigeon.domain.messages import Category
from pigeon.domain.price_lists import PriceList, PriceListError, parse_price_list_csv
from pigeon.domain.routing import (
    Candidate,
    LeastCost,
    Priority,
    Route,
    RouteFilter,
    RoutingTable,
    Strategy,
    Weighted,
    category_in,
    country_in,
    prefix_in,
    sender_kind_in,
    time_window,
)

#: The job kinds a runner can take (``job_kinds``); ``smpp_deliver`` runs where the SMPP
#: server is.
JOB_KINDS = frozenset({"dispatch", "receipt", "expire", "notify", "webhook"})


#: The values of ``job_lane``.
JOB_LANES = ("all", "urgent", "regular")


def parse_peers(text: str) -> list[tuple[str, int]]:
    """``"127.0.0.1:7001,[::1]:7002"`` -> ``[("127.0.0.1", 7001), ("::1", 7002)]``;
    ``ValueError`` for anything else (``wake_peers``)."""
    peers: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a wake peer is host:port, not {item!r}")
        peers.append((host.strip("[]"), int(port)))
    return peers


class ConfigError(Exception):
    """The configuration is invalid; the message lists every problem found."""


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One ``[[connectors]]`` table of ``pigeon.toml``: a carrier link.

    ``type`` picks the adapter (``smpp``, ``generic_http``, ``twilio``, ``infobip``);
    ``options`` are the adapter's own settings (for ``smpp``: host, port, system_id, password,
    window, binds, throughput_per_second...), checked by ``connectors.factory`` at start.
    """

    id: str
    type: str
    options: Mapping[str, Any]


#: ``smpp``, ``generic_http``, ``twilio`` or ``infobip`` (see ``docs/connectors.md``).
CONNECTOR_TYPES = KNOWN_CONNECTOR_TYPES

#: Keys of a ``[[connectors]]`` table that Pigeon reads itself (not passed to the adapter).
CONNECTOR_COMMON_KEYS = frozenset({"prices"})


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One ``[[routes]]`` table of ``pigeon.toml``, as written; turned into a domain ``Route``
    (and checked) by ``pigeon.routing_config.build_routing`` at start."""

    id: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of a Pigeon process. Field names are the TOML keys; the environment
    variable is ``PIGEON_`` + the upper-cased name."""

    data_dir: Path = Path("pigeon-data")
    database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    public_url: str = ""
    bootstrap_api_key: str = ""
    bootstrap_smpp_password: str = ""
    bootstrap_admin_key: str = ""
    secret_key: str = ""
    max_segments: int = 10
    max_body_bytes: int = 1_048_576
    default_validity_seconds: int = 48 * 3600
    simulator_receipt_delay: float = 1.0
    worker_concurrency: int = 256
    worker_batch: int = 128
    #: Jobs of at least this priority (OTP messages' dispatch: 30) take the urgent lane: a
    #: runner whose ``worker_concurrency`` slots are all busy (a marketing backlog) still
    #: claims them at once, into ``worker_urgent_slots`` extra slots.
    worker_urgent_priority: int = 30
    worker_urgent_slots: int = 32
    lease_seconds: float = 60.0
    run_workers: bool = True
    run_smpp: bool = True
    #: ``pigeon serve`` also starts this many ``pigeon worker`` processes and leaves dispatch,
    #: receipts and webhooks to them (0: everything in the one process).
    worker_processes: int = 0
    #: With ``worker_processes``: this many more worker processes that send only the urgent
    #: lane's jobs (``worker_urgent_priority`` and up: OTPs), which the others then leave to
    #: them. Their event loop is idle when an OTP comes, however long the marketing backlog
    #: the others work through. Each opens its own binds to every SMPP carrier.
    worker_urgent_processes: int = 1
    #: The other workers still take an urgent job due for this long (seconds): the OTP workers
    #: may be down (restarting) or unable to bind to the carrier.
    worker_urgent_takeover_seconds: float = 2.0
    #: Which jobs this process's runner takes by priority: ``all``; ``urgent`` (at least
    #: ``worker_urgent_priority``); ``regular`` (below it). ``serve`` sets it for its workers.
    job_lane: str = "all"
    #: UDP port on loopback this process hears "jobs are due" on (0: none), and the peers it
    #: tells (``host:port,...``); ``serve`` sets both for the workers it starts.
    wake_port: int = 0
    wake_peers: str = ""
    #: Peers that run only the urgent lane (``job_lane = "urgent"``: the OTP workers), told
    #: only of urgent jobs: any other wake would cost them a turn of their loop for nothing.
    wake_urgent_peers: str = ""
    #: A folder this process writes a report to every second (``pigeon.worker_reports``: a
    #: snapshot of its counters and histograms, and whether its carrier links are ready;
    #: empty: none). ``serve`` sets it for the worker processes it starts, sums their
    #: snapshots into its ``/metrics`` and answers for their links.
    worker_report_dir: str = ""
    #: The part of each connector's ``throughput_per_second`` this process paces its submits
    #: to at first (0 < share <= 1). ``serve`` gives its worker processes an even part each;
    #: from their reports it then shares each cap by what they use (``pigeon.worker_reports``).
    connector_rate_share: float = 1.0
    #: A Redis server (``redis://host:port/db``, ``rediss://`` or ``unix://``) through which
    #: every process keeps each connector's ``throughput_per_second`` together, across nodes
    #: (ADR 41); empty: each process paces alone (with ADR 40's parts under one ``serve``).
    redis_url: str = ""
    #: The prefix of Pigeon's Redis keys (several gateways may share one Redis).
    redis_key_prefix: str = "pigeon:"
    #: The job kinds this process's runner takes (comma-separated; empty: every kind). ``serve``
    #: with ``worker_processes`` keeps ``webhook,notify`` and gives the rest to its workers.
    job_kinds: str = ""
    #: Most operations in one group-commit transaction (smaller: shorter lock holds, more
    #: fsyncs). 0: by database (``writer_batch``): 64 on SQLite and PostgreSQL.
    writer_max_batch: int = 0
    #: ``writer_max_batch`` of the worker processes ``serve`` starts. 0: by database, 64 on
    #: SQLite (32 held the shared write lock for less time, for OTP claims before OTPs had
    #: their own workers; 64 drains a backlog ~15% faster), 256 on PostgreSQL (no shared lock
    #: there: larger batches save round trips and commits; the regular workers' one
    #: transaction at a time reached 128 at times, ADR 38).
    worker_writer_max_batch: int = 0
    #: PostgreSQL: group-commit transactions this process's writer runs at once (several
    #: overlap one batch's round trips and commit with the next one's; one gathers larger
    #: batches). 0: by role (``writer_tasks``), 4. SQLite has one writer whatever this says.
    writer_tasks: int = 0
    #: ``writer_tasks`` of the regular worker processes ``serve`` starts (the urgent ones
    #: keep ``writer_tasks``). 0: by role, 1 while OTPs have workers of their own: dispatch
    #: and receipts are CPU-bound, and one transaction at a time makes larger batches and
    #: fewer commits (ADR 38); else ``writer_tasks``'s default.
    worker_writer_tasks: int = 0
    #: On: every COMMIT is on disk before its callers are answered (an accepted message
    #: survives a power cut). Off: the database writes its log out soon after (SQLite
    #: ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``): an accepted message
    #: survives Pigeon's crash and restart, not the database's or the machine's; fewer
    #: fsyncs, more messages per second.
    synchronous_commit: bool = True
    #: Seconds between two sweeps for messages whose receipt is overdue (they become
    #: ``unknown``), in the processes that run expiries.
    receipt_sweep_seconds: float = 1.0
    #: Webhook deliveries in flight to one host at once (per process): what one receiver's
    #: answer time allows per second (256 at 50 ms: 5,120/s; ADR 46).
    webhook_connections_per_host: int = 256
    #: Job slots (of ``worker_concurrency``) one webhook receiver's deliveries may hold at
    #: once per process, posting or waiting for its connections; beyond that they go back to
    #: the queue untried, spaced by its answer time, and a slow receiver leaves the other
    #: slots to every other receiver (ADR 47). Below ``worker_concurrency`` to mean anything.
    webhook_slots_per_host: int = 128
    log_level: str = "INFO"
    log_format: str = "console"
    #: A folder: each gateway process (``serve``, ``worker``) runs under ``cProfile`` and
    #: writes its statistics there when it stops (``<command>-<pid>.pstats``); empty: off.
    #: A diagnostic: the profiler doubles the CPU a message costs.
    profile_dir: str = ""
    #: Carrier links from ``[[connectors]]`` tables (TOML only).
    connectors: tuple[ConnectorConfig, ...] = ()
    #: The connector live traffic goes to; empty: the first configured one, else the simulator.
    default_connector: str = ""
    #: Routes from ``[[routes]]`` tables (TOML only); none: everything goes to the default.
    routes: tuple[RouteConfig, ...] = ()
    #: The folder relative paths in the config file (price lists) are resolved against.
    config_dir: Path = Path(".")

    @property
    def job_kinds_wanted(self) -> frozenset[str]:
        """``job_kinds`` as a set (empty: every kind)."""
        return frozenset(k.strip() for k in self.job_kinds.split(",") if k.strip())

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'pigeon.db'}"

    @property
    def effective_public_url(self) -> str:
        """The base URL printed for users (curl examples)."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}

#: Group-commit batch bounds when the settings leave them at 0: (serve, workers) by database.
#: SQLite's one write lock is shared by every process, so the workers' batches stay short
#: (lower OTP latency, docs/benchmarks.md). PostgreSQL has no such lock and pays a round trip
#: per statement: the workers' larger batches carry more messages per round trip (end to end
#: +20-35% webhooks/s), while ``serve`` keeps 64, which spreads accepts over its parallel
#: writer transactions (256 doubled to quadrupled the accept p99 at 1,000/s offered).
_WRITER_BATCH = {"sqlite": (64, 64), "postgresql": (64, 256)}


def writer_batch(settings: Settings, *, worker: bool = False) -> int:
    """The group-commit batch bound in effect: ``writer_max_batch`` (of the workers ``serve``
    starts, with ``worker``), or the database's default when that is 0."""
    value = settings.worker_writer_max_batch if worker else settings.writer_max_batch
    if value:
        return value
    engine = "postgresql" if settings.effective_database_url.startswith("postgres") else "sqlite"
    serve, workers = _WRITER_BATCH[engine]
    return workers if worker else serve


#: PostgreSQL's writer transactions at once (``writer_tasks``): ``serve`` and the OTP workers,
#: where a client or an OTP waits on each commit; the regular workers beside OTP workers.
_WRITER_TASKS: Final = 4
_REGULAR_WORKER_WRITER_TASKS: Final = 1


def writer_tasks(settings: Settings, *, worker: bool = False) -> int:
    """The writer transactions at once in effect (PostgreSQL): ``writer_tasks``, or with
    ``worker`` that of the regular worker processes ``serve`` starts."""
    if worker:
        if settings.worker_writer_tasks:
            return settings.worker_writer_tasks
        if settings.worker_urgent_processes:
            return _REGULAR_WORKER_WRITER_TASKS
    return settings.writer_tasks or _WRITER_TASKS


def _convert(name: str, raw: Any, kind: Any, problems: list[str], source: str) -> Any:
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind in (int, "int"):
            if isinstance(raw, bool):
                raise ValueError(f"not an integer: {raw!r}")
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError) as exc:
        problems.append(f"{name} (from {source}): {exc}")
        return None


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build and validate the settings; raises ``ConfigError`` listing every problem."""
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    values: dict[str, Any] = {}
    path = config_file or Path(env.get("PIGEON_CONFIG", "pigeon.toml"))
    if path.exists():
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        for key, raw in document.items():
            if key == "connectors":
                values[key] = _connectors(raw, problems, str(path))
                continue
            if key == "routes":
                values[key] = _routes(raw, problems, str(path))
                continue
            if key == "config_dir":
                problems.append(f"{path}: unknown setting {key!r}")
                continue
            if key not in _FIELDS:
                problems.append(f"{path}: unknown setting {key!r}")
                continue
            values[key] = _convert(key, raw, _FIELDS[key].type, problems, str(path))
        values["config_dir"] = path.resolve().parent
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")
    for name, spec in _FIELDS.items():
        if name in ("connectors", "routes", "config_dir"):
            continue
        variable = f"PIGEON_{name.upper()}"
        if variable in env:
            values[name] = _convert(name, env[variable], spec.type, problems, variable)
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    problems.extend(_validate(settings))
    if not problems:
        try:
            build_routing(settings)
        except ConfigError as exc:
            problems.extend(line.removeprefix("  - ") for line in str(exc).splitlines()[1:])
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return settings


def _connectors(raw: Any, problems: list[str], source: str) -> tuple[ConnectorConfig, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.append(f"{source}: connectors must be [[connectors]] tables")
        return ()
    found: list[ConnectorConfig] = []
    for number, table in enumerate(raw, start=1):
        options = dict(table)
        connector_id = options.pop("id", None)
        kind = options.pop("type", None)
        if not isinstance(connector_id, str) or not connector_id:
            problems.append(f"{source}: connector #{number} needs an id")
            continue
        if kind not in CONNECTOR_TYPES:
            problems.append(
                f"{source}: connector {connector_id!r} has type {kind!r}; "
                f"known types: {', '.join(sorted(CONNECTOR_TYPES))}"
            )
            continue
        found.append(ConnectorConfig(id=connector_id, type=kind, options=options))
    return tuple(found)


def _routes(raw: Any, problems: list[str], source: str) -> tuple[RouteConfig, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        problems.append(f"{source}: routes must be [[routes]] tables")
        return ()
    found: list[RouteConfig] = []
    for number, table in enumerate(raw, start=1):
        options = dict(table)
        route_id = options.pop("id", None)
        if not isinstance(route_id, str) or not route_id:
            problems.append(f"{source}: route #{number} needs an id")
            continue
        found.append(RouteConfig(id=route_id, options=options))
    return tuple(found)


def _validate(settings: Settings) -> list[str]:
    problems = []
    ids = [connector.id for connector in settings.connectors]
    if len(ids) != len(set(ids)):
        problems.append("connector ids must be unique")
    if "simulator" in ids:
        problems.append("the connector id 'simulator' is reserved for the built-in simulator")
    if settings.default_connector and settings.default_connector not in {*ids, "simulator"}:
        problems.append(
            f"default_connector {settings.default_connector!r} is not a configured connector"
        )
    for name in ("http_port", "smpp_port", "wake_port"):
        port = getattr(settings, name)
        if not 0 <= port <= 65535:
            problems.append(f"{name} must be between 0 and 65535, not {port}")
    url = settings.effective_database_url
    if not url.startswith(("sqlite", "postgresql", "postgres")):
        problems.append(f"database_url must be sqlite:///PATH or postgresql://..., not {url!r}")
    key = settings.bootstrap_api_key
    if key and not key.startswith(("pk_live_", "pk_test_")):
        problems.append("bootstrap_api_key must start with pk_live_ or pk_test_")
    if key and len(key) < 24:
        problems.append("bootstrap_api_key must be at least 24 characters long")
    smpp_password = settings.bootstrap_smpp_password
    if smpp_password and not (
        len(smpp_password) <= 8 and smpp_password.isascii() and smpp_password.isprintable()
    ):
        problems.append("bootstrap_smpp_password must be 1-8 printable ASCII characters (SMPP)")
    admin = settings.bootstrap_admin_key
    if admin and (not admin.startswith("pk_live_") or len(admin) < 24):
        problems.append("bootstrap_admin_key must start with pk_live_ and be 24+ characters")
    if not 1 <= settings.max_segments <= 255:
        problems.append("max_segments must be between 1 and 255")
    if settings.max_body_bytes < 1024:
        problems.append("max_body_bytes must be at least 1024")
    if settings.simulator_receipt_delay < 0:
        problems.append("simulator_receipt_delay must not be negative")
    if settings.worker_concurrency < 1 or settings.worker_batch < 1:
        problems.append("worker_concurrency and worker_batch must be positive")
    if settings.worker_urgent_slots < 0:
        problems.append("worker_urgent_slots must not be negative")
    unknown_kinds = settings.job_kinds_wanted - JOB_KINDS
    if unknown_kinds:
        problems.append(
            f"job_kinds: unknown {', '.join(sorted(unknown_kinds))} "
            f"(known: {', '.join(sorted(JOB_KINDS))})"
        )
    for name in ("writer_max_batch", "worker_writer_max_batch"):
        if not 0 <= getattr(settings, name) <= 100_000:
            problems.append(f"{name} must be between 0 (by database) and 100000")
    for name in ("writer_tasks", "worker_writer_tasks"):
        if not 0 <= getattr(settings, name) <= 64:
            problems.append(f"{name} must be between 0 (by role) and 64")
    if not 1 <= settings.webhook_connections_per_host <= 1000:
        problems.append("webhook_connections_per_host must be between 1 and 1000")
    if not 1 <= settings.webhook_slots_per_host <= 10_000:
        problems.append("webhook_slots_per_host must be between 1 and 10000")
    if not 0 <= settings.worker_processes <= 64:
        problems.append("worker_processes must be between 0 and 64")
    if not 0 <= settings.worker_urgent_processes <= 8:
        problems.append("worker_urgent_processes must be between 0 and 8")
    if not 0 < settings.connector_rate_share <= 1:
        problems.append("connector_rate_share must be above 0 and at most 1")
    if settings.redis_url:
        if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("redis_url must start with redis://, rediss:// or unix://")
        else:
            try:
                _parse_redis_url(settings.redis_url)
            except ValueError as exc:
                problems.append(f"redis_url: {exc}")
    if not 0 < settings.worker_urgent_takeover_seconds <= 3600:
        problems.append("worker_urgent_takeover_seconds must be above 0 and at most 3600")
    if settings.job_lane not in JOB_LANES:
        problems.append(f"job_lane must be one of {', '.join(JOB_LANES)}")
    for name in ("wake_peers", "wake_urgent_peers"):
        try:
            parse_peers(getattr(settings, name))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if settings.log_format not in ("console", "json"):
        problems.append("log_format must be 'console' or 'json'")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
    return problems


def _parse_redis_url(url: str) -> dict[str, Any]:
    """redis-py's own reading of ``url`` (raises ``ValueError``); imported only when a
    ``redis_url`` is set, so that the CLI's other commands do not load redis-py."""
    from redis import connection

    # The ignore: redis-py leaves ``parse_url`` unannotated.
    parsed: dict[str, Any] = connection.parse_url(url)  # type: ignore[no-untyped-call]
    return parsed


# --------------------------------------------------------------------------- routing

_ROUTE_KEYS = frozenset(
    {
        "tenant",
        "countries",
        "prefixes",
        "categories",
        "sender_kinds",
        "hours",
        "strategy",
        "min_delivery_rate",
        "max_p90_latency",
        "min_samples",
        "candidates",
        "default",
    }
)


@dataclass(frozen=True, slots=True)
class Routing:
    """The routing table and the connectors' price lists built from the settings."""

    table: RoutingTable
    prices: Mapping[str, PriceList]
    default_connector: str


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError(f"{name} must be a non-empty list of strings")


def _route_filters(options: Mapping[str, Any]) -> list[RouteFilter]:
    filters: list[RouteFilter] = []
    if "countries" in options:
        filters.append(country_in(*_strings(options["countries"], "countries")))
    if "prefixes" in options:
        filters.append(prefix_in(*_strings(options["prefixes"], "prefixes")))
    if "categories" in options:
        filters.append(category_in(*map(Category, _strings(options["categories"], "categories"))))
    if "sender_kinds" in options:
        kinds = _strings(options["sender_kinds"], "sender_kinds")
        filters.append(sender_kind_in(*(None if k == "none" else SenderKind(k) for k in kinds)))
    if "hours" in options:
        hours = options["hours"]
        if not isinstance(hours, dict) or not {"start", "end"} <= set(hours):
            raise ValueError('hours must be a table {start="08:00", end="20:00", tz="UTC"}')
        unknown = set(hours) - {"start", "end", "tz"}
        if unknown:
            raise ValueError(f"hours has unknown keys {', '.join(sorted(unknown))}")
        filters.append(
            time_window(str(hours["start"]), str(hours["end"]), str(hours.get("tz", "UTC")))
        )
    return filters


def _route_strategy(options: Mapping[str, Any]) -> Strategy:
    name = options.get("strategy", "priority")
    guard_keys = {"min_delivery_rate", "max_p90_latency", "min_samples"} & set(options)
    if name == "priority" or name == "weighted":
        if guard_keys:
            raise ValueError(f"{', '.join(sorted(guard_keys))} apply to least_cost routes only")
        return Priority() if name == "priority" else Weighted()
    if name == "least_cost":
        guard: dict[str, Any] = {}
        if "min_delivery_rate" in options:
            guard["min_delivery_rate"] = float(options["min_delivery_rate"])
        if "max_p90_latency" in options:
            guard["max_p90_latency"] = float(options["max_p90_latency"])
        if "min_samples" in options:
            samples = options["min_samples"]
            if not isinstance(samples, int) or isinstance(samples, bool):
                raise ValueError("min_samples must be an integer")
            guard["min_samples"] = samples
        return LeastCost(**guard)
    raise ValueError(f"strategy {name!r} is not priority, weighted or least_cost")


def _route_candidates(raw: Any, known: Collection[str]) -> list[Candidate]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("candidates must be a non-empty list of connector ids or tables")
    found: list[Candidate] = []
    for priority, item in enumerate(raw):
        if isinstance(item, str):
            connector, weight = item, 1
        elif isinstance(item, dict) and isinstance(item.get("connector"), str):
            unknown = set(item) - {"connector", "weight"}
            if unknown:
                raise ValueError(f"candidate has unknown keys {', '.join(sorted(unknown))}")
            connector, weight = item["connector"], item.get("weight", 1)
        else:
            raise ValueError('a candidate is a connector id or {connector="id", weight=1}')
        if connector not in known:
            raise ValueError(f"candidate {connector!r} is not a configured connector")
        found.append(Candidate(connector, weight=weight, priority=priority))
    return found


def build_routing(settings: Settings) -> Routing:
    """The routing table of ``settings.routes`` and the connectors' price lists.

    Without ``[[routes]]`` everything goes to the default connector (``default_connector``,
    else the first connector, else the simulator). Raises ``ConfigError`` listing every problem.
    """
    problems: list[str] = []
    known = {connector.id for connector in settings.connectors} | {"simulator"}
    prices: dict[str, PriceList] = {}
    for connector in settings.connectors:
        path_text = connector.options.get("prices")
        if path_text is None:
            continue
        path = settings.config_dir / str(path_text)
        try:
            prices[connector.id] = parse_price_list_csv(
                path.read_text(encoding="utf-8"), connector.id
            )
        except OSError as exc:
            problems.append(f"connector {connector.id!r}: cannot read prices {path}: {exc}")
        except PriceListError as exc:
            problems.append(f"connector {connector.id!r}: prices {path}: {exc}")
    fallback = settings.default_connector or (
        settings.connectors[0].id if settings.connectors else "simulator"
    )
    table: RoutingTable | None = None
    try:
        table = routing_table(settings.routes, known, fallback)
    except ConfigError as exc:
        problems.extend(line.removeprefix("  - ") for line in str(exc).splitlines()[1:])
    if problems or table is None:
        raise ConfigError("invalid routing configuration:\n  - " + "\n  - ".join(problems))
    default_connector = table.default.candidates[0].connector_id
    return Routing(table=table, prices=prices, default_connector=default_connector)


def routing_table(
    routes: Sequence[RouteConfig], known: Collection[str], fallback: str
) -> RoutingTable:
    """The routing table of ``routes`` (in order) over the connector ids in ``known``.

    Without a ``default = true`` route, the default sends everything to ``fallback``. The one
    validator of routes, whether they come from ``pigeon.toml``, the REST API or the CLI;
    raises ``ConfigError`` listing every problem.
    """
    problems: list[str] = []
    routes_built: list[Route] = []
    defaults: list[Route] = []
    ids = [config.id for config in routes]
    if len(ids) != len(set(ids)):
        problems.append("route ids must be unique")
    for config in routes:
        options = config.options
        unknown = sorted(set(options) - _ROUTE_KEYS)
        if unknown:
            problems.append(f"route {config.id!r}: unknown keys {', '.join(unknown)}")
            continue
        tenant = options.get("tenant")
        is_default = options.get("default", False)
        try:
            if tenant is not None and (not isinstance(tenant, str) or not tenant):
                raise ValueError("tenant must be a tenant id")
            if not isinstance(is_default, bool):
                raise ValueError("default must be true or false")
            filters = _route_filters(options)
            if is_default and (filters or tenant is not None):
                raise ValueError("the default route takes no filters and no tenant")
            route = Route(
                id=config.id,
                filters=tuple(filters),
                candidates=tuple(_route_candidates(options.get("candidates"), known)),
                strategy=_route_strategy(options),
                tenant_id=tenant,
            )
        except (TypeError, ValueError) as exc:
            problems.append(f"route {config.id!r}: {exc}")
            continue
        (defaults if is_default else routes_built).append(route)
    if len(defaults) > 1:
        problems.append("only one route may have default = true")
    default = defaults[0] if defaults else Route("default", (), (Candidate(fallback),), Priority())
    table: RoutingTable | None = None
    if not problems:
        try:
            table = RoutingTable(routes_built, default)
        except ValueError as exc:
            problems.append(str(exc))
    if problems or table is None:
        raise ConfigError("invalid routing configuration:\n  - " + "\n  - ".join(problems))
    return table
