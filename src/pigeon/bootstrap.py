"""The one place that wires settings -> adapters -> services."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pigeon.clock import SystemClock, TurnClock
from pigeon.config import (
    ConfigError,
    ConnectorConfig,
    Settings,
    build_routing,
    parse_peers,
    writer_batch,
    writer_tasks,
)
from pigeon.connectors.cluster_quota import ClusterQuotas
from pigeon.connectors.factory import ConnectorFactory, answer_callback, settings_for
from pigeon.connectors.simulator import SimulatorConnector, SimulatorSettings
from pigeon.connectors.smpp_client import InboundMessage
from pigeon.connectors.smpp_settings import SmppConnectorSettings
from pigeon.domain.accounts import (
    ApiKey,
    KeyMode,
    Role,
    SmppAccount,
    Tenant,
    key_digest,
    key_mode_of,
    new_key_secret,
)
from pigeon.domain.connectors import ConnectorRecord
from pigeon.ids import UlidFactory
from pigeon.ports import CarrierAnswer, CarrierRequest, Connector, Paced, Pacer
from pigeon.queue import SqlJobQueue
from pigeon.queue.lease_owners import process_owner
from pigeon.queue.wake import WakeBroadcast, WakeListener
from pigeon.services.accept import AcceptMessage, AcceptPolicy
from pigeon.services.account import DescribeAccount
from pigeon.services.authenticate import Authenticate
from pigeon.services.connector_stats import (
    ConnectorFigures,
    ReadConnectorStats,
    RecordingQualityWindow,
    sample_quality_gauges,
    sample_stored_quality_gauges,
)
from pigeon.services.connectors import LiveRouting, ManageConnectors, ManageRoutes
from pigeon.services.dispatch import DispatchMessage, ExpireMessage, SweepOverdueReceipts
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.inbound import ReceiveMessage, Reply
from pigeon.services.notify import SMPP_DELIVER, DeliverWebhook, NotifyEvent
from pigeon.services.queries import ReadMessages
from pigeon.services.receipts import ApplyReceipt, ReceiptIntake
from pigeon.services.routing import ExplainRoute, TableRouter
from pigeon.services.smpp_accounts import AuthenticateBind, ManageSmppAccounts, Passwords
from pigeon.services.webhook_endpoints import ManageWebhookEndpoints
from pigeon.services.worker import Handler, JobRunner
from pigeon.smpp_server import SmppServer, SmppServerSettings, SmppServices
from pigeon.store import (
    Database,
    SqlAccountStore,
    SqlConnectorStore,
    SqlMessageStore,
    SqlNumberStore,
    SqlPartStore,
    SqlWebhookStore,
    connect,
    migrate,
)
from pigeon.store.connector_stats import SqlConnectorStatsStore
from pigeon.telemetry import JOB_COUNT_MAX_AGE, JOBS_PENDING, ScrapeSample
from pigeon.webhooks.sender import HttpWebhookSender
from pigeon.webhooks.signing import new_secret, signature_headers

if TYPE_CHECKING:  # worker processes never load the HTTP API's stack (see ``app``)
    from litestar import Litestar

    from pigeon.api.app import ApiServices

log = logging.getLogger(__name__)

SIMULATOR_ID = "simulator"


def load_secret_key(settings: Settings) -> bytes:
    """The server secret (derives per-tenant callback signing secrets).

    From ``PIGEON_SECRET_KEY`` when set (needed when several nodes share a database), else a
    random key kept in ``<data_dir>/secret.key``, created on first start.
    """
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = settings.data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode("ascii")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


class CallbackSecrets:
    """Derives each tenant's callback signing secret: HMAC-SHA256(server key, tenant id)."""

    def __init__(self, server_key: bytes) -> None:
        self._key = server_key

    def __call__(self, tenant_id: str) -> str:
        """The tenant's ``whsec_`` secret."""
        raw = hmac.new(self._key, f"callback:{tenant_id}".encode(), hashlib.sha256).digest()
        return "whsec_" + base64.b64encode(raw).decode("ascii")


@dataclass
class Gateway:
    """Everything one Pigeon process runs, wired."""

    settings: Settings
    database: Database
    messages: SqlMessageStore
    accounts: SqlAccountStore
    webhooks: SqlWebhookStore
    queue: SqlJobQueue
    clock: SystemClock
    ids: UlidFactory
    accept: AcceptMessage
    read: ReadMessages
    authenticate: Authenticate
    endpoints: ManageWebhookEndpoints
    receipts: ApplyReceipt
    runner: JobRunner
    connectors: dict[str, Connector]
    router: TableRouter
    sender: HttpWebhookSender
    callback_secrets: CallbackSecrets
    smpp_accounts: ManageSmppAccounts
    numbers: SqlNumberStore
    inbound: ReceiveMessage
    connector_store: SqlConnectorStore
    live: LiveRouting
    manage_connectors: ManageConnectors
    manage_routes: ManageRoutes
    connector_builder: ConnectorFactory
    smpp: SmppServer | None = None
    smpp_runner: JobRunner | None = None
    #: Hears "jobs are due" from the other processes on this database (``wake_port``).
    wake_listener: WakeListener | None = None
    wake_broadcast: WakeBroadcast | None = None
    #: Seconds between polls of the store's routing version (changes made by other processes).
    routing_poll_seconds: float = 1.0
    #: Quality figures per connector, flushed to the store (``None``: not kept).
    figures: ConnectorFigures | None = None
    #: Makes messages whose receipt is overdue ``unknown`` (``None``: not in this process).
    receipt_sweep: SweepOverdueReceipts | None = None
    #: The connectors' buckets in Redis (``redis_url``; ``None``: none).
    quotas: ClusterQuotas | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _runner_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: The queued jobs' count by kind, shared by the scrapes (made at the first scrape).
    _job_counts: ScrapeSample[dict[str, int]] | None = None

    async def import_declared(self) -> None:
        """Upsert ``pigeon.toml``'s connectors into the store (it is the source of the ids it
        declares) and, when it has ``[[routes]]``, make them the routing table."""
        for record in toml_connector_records(self.settings, self.clock.now()):
            await self.manage_connectors.put(record)
        if self.settings.routes:
            await ManageRoutes(self.connector_store, self.clock).replace(
                [{"id": route.id, **route.options} for route in self.settings.routes]
            )

    def offline_management(self) -> tuple[ManageConnectors, ManageRoutes]:
        """Connector and route management that only writes the store (the CLI): running
        gateways pick the change up through the store's version marker."""
        return (
            ManageConnectors(self.connector_store, self.connector_builder, self.clock),
            ManageRoutes(self.connector_store, self.clock),
        )

    async def start_workers(self) -> None:
        """Start connectors (the simulator, then those of the store) and the job runners."""
        for connector in self.connectors.values():
            await connector.start()
        await self.live.reload()
        self._runner_tasks.append(
            asyncio.create_task(self.live.watch(self._stop, self.routing_poll_seconds))
        )
        if self.figures is not None:
            self._runner_tasks.append(asyncio.create_task(self.figures.run(self._stop)))
        if self.wake_listener is not None:
            await self.wake_listener.start()
        if self.settings.run_workers:
            await self._release_gone_leases()
            self._runner_tasks.append(asyncio.create_task(self.runner.run(self._stop)))
            if self.receipt_sweep is not None:
                every = self.settings.receipt_sweep_seconds
                sweep = self.receipt_sweep.run(self._stop, every)
                self._runner_tasks.append(asyncio.create_task(sweep))
            if self.smpp_runner is not None:
                self._runner_tasks.append(asyncio.create_task(self.smpp_runner.run(self._stop)))

    async def _release_gone_leases(self) -> None:
        """Take over at once the jobs that processes of this machine held when they died (a
        restart after a crash; a worker process replacing a killed one), rather than after
        their leases expire. A failure only leaves them to expire."""
        try:
            gone = await self.queue.release_gone_leases()
        except Exception:
            log.exception("looking for the leases of ended processes failed")
            return
        if gone:
            log.warning(
                "took over the jobs leased by %d ended process(es): %s", len(gone), ", ".join(gone)
            )

    async def start_smpp(self) -> int | None:
        """Start the customer SMPP server (if configured); returns its port."""
        if self.smpp is None:
            return None
        return await self.smpp.start()

    async def close(self) -> None:
        """Unbind SMPP customers, stop the runners and connectors, close the store (pending
        writes are drained)."""
        if self.smpp is not None:
            await self.smpp.stop()
        self._stop.set()
        for task in self._runner_tasks:
            await task
        if self.wake_listener is not None:
            self.wake_listener.close()
        if self.wake_broadcast is not None:
            self.wake_broadcast.close()
        await self.live.close()
        for connector in self.connectors.values():
            await connector.stop()
        await self.sender.close()
        if self.quotas is not None:
            await self.quotas.close()
        if self.figures is not None:
            try:
                await self.figures.flush()
            except Exception:  # the figures of the last seconds are lost, nothing else
                log.exception("last flush of connector figures failed")
        await self.database.close()

    async def readiness(self) -> dict[str, bool]:
        """Whether the store, queue, connectors and (if configured) SMPP listener can serve."""
        store_ok = await self.database.ping()
        try:
            await self.queue.probe()
            queue_ok = True
        except Exception:  # readiness reports failures instead of raising them
            queue_ok = False
        connectors_ok = all(c.ready for c in self.router.connectors.values())
        checks = {"store": store_ok, "queue": queue_ok, "connectors": connectors_ok}
        if self.smpp is not None:
            checks["smpp"] = self.smpp.listening
        return checks

    async def sample_metrics(self) -> None:
        """Refresh gauges sampled at scrape time (the queued jobs' count shared by the scrapes
        of ``JOB_COUNT_MAX_AGE`` seconds)."""
        if self._job_counts is None:
            self._job_counts = ScrapeSample(self.queue.pending, JOB_COUNT_MAX_AGE)
        for kind, count in (await self._job_counts.get()).items():
            JOBS_PENDING.labels(kind).set(count)
        now = self.clock.now()
        if self.figures is not None and not self.sees_receipts:
            # Receipts are applied in other processes (``serve`` with worker processes): the
            # figures they all store, at most a flush interval old.
            await sample_stored_quality_gauges(
                self.figures.store, self.figures, self.router.connectors, now
            )
        else:
            sample_quality_gauges(self.router.quality, self.router.connectors, now)

    def pacers(self) -> dict[str, Pacer]:
        """The pacers of this process's capped carrier links, by connector id."""
        found: dict[str, Pacer] = {}
        for connector_id, connector in self.router.connectors.items():
            pacing = connector.pacing if isinstance(connector, Paced) else None
            if pacing is not None:
                found[connector_id] = pacing
        return found

    def link_states(self) -> dict[str, bool]:
        """Whether each of this process's carrier links is ready, by connector id."""
        return {
            connector_id: connector.ready
            for connector_id, connector in self.router.connectors.items()
        }

    @property
    def sees_receipts(self) -> bool:
        """Whether this process applies carriers' receipts (its routing then sees every
        outcome); not ``serve`` with worker processes, which leaves them to the workers."""
        kinds = self.settings.job_kinds_wanted
        return self.settings.run_workers and (not kinds or "receipt" in kinds)

    def api_services(self) -> ApiServices:
        """The use cases the REST API calls."""
        from pigeon.api.app import ApiServices

        return ApiServices(
            authenticate=self.authenticate,
            accept=self.accept,
            read=self.read,
            endpoints=self.endpoints,
            readiness=self.readiness,
            before_metrics=self.sample_metrics,
            account=DescribeAccount(self.callback_secrets),
            explain=ExplainRoute(self.router, self.clock),
            connector_stats=self._read_connector_stats(),
            connectors=self.manage_connectors,
            routes=self.manage_routes,
            carrier_callbacks=self.carrier_callback,
        )

    async def carrier_callback(
        self, connector_id: str, request: CarrierRequest
    ) -> CarrierAnswer | None:
        """Hand a carrier's HTTP callback to its connector; ``None`` for an unknown one."""
        target = self.live.callback_target(connector_id)
        return None if target is None else await answer_callback(target, request)

    def _read_connector_stats(self) -> ReadConnectorStats | None:
        if self.figures is None:
            return None
        router = self.router
        return ReadConnectorStats(
            self.figures.store,
            self.figures,
            self.clock,
            lambda connector_id: connector_id in router.connectors,
        )

    def app(self) -> Litestar:
        """The REST application. Imported here, not with this module: worker processes,
        which answer no HTTP, then never load Litestar and the API (tens of MB each)."""
        from pigeon.api.app import create_app

        return create_app(self.api_services(), max_body_bytes=self.settings.max_body_bytes)


def smpp_settings_from(config: ConnectorConfig) -> SmppConnectorSettings:
    """The SMPP connector settings a ``[[connectors]]`` table describes; ``ConfigError`` if
    they are not valid."""
    settings = connector_settings_from(config)
    if not isinstance(settings, SmppConnectorSettings):
        raise ConfigError(f"connector {config.id!r} is not an smpp connector")
    return settings


def connector_settings_from(config: ConnectorConfig, public_url: str | None = None) -> object:
    """The adapter settings a ``[[connectors]]`` table describes (any type); ``ConfigError``
    if they are not valid."""
    options = {k: v for k, v in config.options.items() if k != "enabled"}
    try:
        return settings_for(config.type, config.id, options, callback_base_url=public_url)
    except ValueError as exc:
        raise ConfigError(f"connector {config.id!r}: {exc}") from exc


def toml_connector_records(settings: Settings, now: datetime) -> list[ConnectorRecord]:
    """The ``[[connectors]]`` of ``pigeon.toml`` as store records (price files read in)."""
    records = []
    for config in settings.connectors:
        options = {k: v for k, v in config.options.items() if k not in ("prices", "enabled")}
        prices_csv: str | None = None
        if "prices" in config.options:
            path = settings.config_dir / str(config.options["prices"])
            prices_csv = path.read_text(encoding="utf-8")
        records.append(
            ConnectorRecord(
                id=config.id,
                type=config.type,
                options=options,
                enabled=bool(config.options.get("enabled", True)),
                created_at=now,
                updated_at=now,
                prices_csv=prices_csv,
                source="toml",
            )
        )
    return records


@dataclass(frozen=True, slots=True)
class _Lane:
    """The priority bounds of a process's job runner (``job_lane``)."""

    min_priority: int | None = None
    max_priority: int | None = None
    ceiling_grace: timedelta | None = None


def claims_otps(settings: Settings) -> bool:
    """Whether this process's job runner claims the urgent lane's dispatch jobs (OTPs): then
    its WAL syncs, which its claims wait for, are not background work (ADR 52)."""
    if settings.job_lane == "regular":
        return False
    kinds = settings.job_kinds_wanted
    return not kinds or "dispatch" in kinds


def _lane(settings: Settings) -> _Lane:
    """An OTP worker takes urgent jobs only; the other workers leave them to it unless one
    has waited ``worker_urgent_takeover_seconds``."""
    urgent = settings.worker_urgent_priority
    if settings.job_lane == "urgent":
        return _Lane(min_priority=urgent)
    if settings.job_lane == "regular":
        grace = timedelta(seconds=settings.worker_urgent_takeover_seconds)
        return _Lane(max_priority=urgent - 1, ceiling_grace=grace)
    return _Lane()


async def open_gateway(
    settings: Settings,
    *,
    smpp_links_elsewhere: Callable[[str], bool] | None = None,
    migrate_store: bool = True,
) -> Gateway:
    """Connect and migrate the store, then wire every adapter and use case.

    ``smpp_links_elsewhere``: other processes bind this gateway's SMPP carriers (``serve``'s
    worker processes) and this tells whether a carrier's link is ready there; its SMPP
    connectors are then ``LinkHeldElsewhere``, which never bind. ``migrate_store`` false:
    the store is known to be migrated already (``serve`` starts its worker processes once it
    has migrated), so Alembic is not even loaded."""
    for config in settings.connectors:
        connector_settings_from(config)
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate_store:
        await migrate(url)
    clock = SystemClock()
    # For the work a turn of the loop does many of at once (accepts, webhook attempts): one
    # instant per turn, so that its stored and public forms are made once (``TurnClock``).
    turn_clock = TurnClock(clock)
    ids = UlidFactory()
    # PostgreSQL: a few batches in flight at once, so one batch's round trips and commit do
    # not hold up the next; one at a time in the regular workers (ADR 38). SQLite has one
    # writer whatever this says.
    database = await connect(
        url,
        writer_tasks=writer_tasks(settings),
        max_batch=writer_batch(settings),
        synchronous_commit=settings.synchronous_commit,
        background_syncs=not claims_otps(settings),
    )
    messages = SqlMessageStore(database, clock)
    accounts = SqlAccountStore(database)
    webhooks = SqlWebhookStore(database)
    queue = SqlJobQueue(database, clock)
    directory = EndpointDirectory(webhooks)
    recorder = EventRecorder(ids, clock, directory)
    numbers = SqlNumberStore(database)
    inbound = ReceiveMessage(messages, numbers, recorder, clock, ids)

    async def mo_sink(reply: InboundMessage) -> None:
        await inbound(
            Reply(
                reply.connector_id, reply.source, reply.destination, reply.text, reply.received_at
            )
        )

    simulator = SimulatorConnector(
        SIMULATOR_ID,
        queue,
        clock,
        SimulatorSettings(receipt_delay_seconds=settings.simulator_receipt_delay),
    )
    routing = build_routing(settings)

    receipt_sink = ReceiptIntake()  # applied by ``receipts``, made once the router is
    connectors: dict[str, Connector] = {SIMULATOR_ID: simulator}
    # Quality figures: counted in memory, stored per minute, warmed from the last 24 hours.
    quality = RecordingQualityWindow()
    figures = ConnectorFigures(SqlConnectorStatsStore(database), quality, clock)
    await figures.warm_up()
    router = TableRouter(
        routing.table, connectors, simulator, clock, prices=routing.prices, quality=quality
    )
    # Each capped connector's submits also pass a bucket in Redis, shared by every process
    # and node (ADR 41).
    quotas = (
        ClusterQuotas(settings.redis_url, prefix=settings.redis_key_prefix)
        if settings.redis_url
        else None
    )
    factory = ConnectorFactory(
        clock,
        receipt_sink,
        mo_sink,
        callback_base_url=settings.effective_public_url,
        queue=queue,
        smpp_links_elsewhere=smpp_links_elsewhere,
        rate_share=settings.connector_rate_share,
        quotas=quotas,
    )
    connector_store = SqlConnectorStore(database)
    live = LiveRouting(
        connector_store,
        factory,
        router,
        preferred_default=settings.default_connector
        or (settings.connectors[0].id if settings.connectors else ""),
    )
    manage_connectors = ManageConnectors(connector_store, factory, clock, live)
    manage_routes = ManageRoutes(connector_store, clock, live)
    receipts = ApplyReceipt(messages, queue, recorder, clock, on_outcomes=router.outcomes)
    receipt_sink.apply_with(receipts)
    per_host = settings.webhook_connections_per_host
    sender = HttpWebhookSender(limit=max(100, per_host), limit_per_host=per_host)
    callback_secrets = CallbackSecrets(load_secret_key(settings))
    owner = process_owner()
    handlers: dict[str, Handler] = {
        "dispatch": DispatchMessage(messages, queue, router, recorder, clock, ids),
        "receipt": receipts.from_job,
        "expire": ExpireMessage(messages, recorder, clock),
        "notify": NotifyEvent(messages, webhooks, queue),
        "webhook": DeliverWebhook(
            webhooks,
            queue,
            sender,
            signature_headers,
            callback_secrets,
            turn_clock,
            ids,
            endpoints=directory,
            slots_per_host=settings.webhook_slots_per_host,
        ),
    }
    kinds = settings.job_kinds_wanted
    lane = _lane(settings)
    # Where expiries run (not in the OTP workers): messages past their receipt's due time.
    sweeps = (not kinds or "expire" in kinds) and settings.job_lane != "urgent"
    receipt_sweep = SweepOverdueReceipts(messages, recorder, clock) if sweeps else None
    runner = JobRunner(
        queue,
        {kind: handler for kind, handler in handlers.items() if not kinds or kind in kinds},
        clock,
        owner,
        concurrency=settings.worker_concurrency,
        batch=settings.worker_batch,
        lease_seconds=settings.lease_seconds,
        urgent_priority=settings.worker_urgent_priority,
        urgent_slots=settings.worker_urgent_slots,
        min_priority=lane.min_priority,
        max_priority=lane.max_priority,
        ceiling_grace=lane.ceiling_grace,
        # Dispatch jobs carry the OTPs: their claims go ahead of other writes. A runner
        # without them (``serve`` beside worker processes: webhooks) claims with the writes.
        claims_alone=not kinds or "dispatch" in kinds,
    )
    accept = AcceptMessage(
        messages,
        turn_clock,
        ids,
        recorder,
        AcceptPolicy(
            max_segments=settings.max_segments,
            default_validity_seconds=settings.default_validity_seconds,
        ),
        on_accepted=lambda priority: jobs_due(priority >= settings.worker_urgent_priority),
    )
    read = ReadMessages(messages)
    passwords = Passwords()
    smpp: SmppServer | None = None
    smpp_runner: JobRunner | None = None
    if settings.run_smpp:
        smpp = SmppServer(
            SmppServerSettings(
                host=settings.smpp_host,
                port=settings.smpp_port,
                max_segments=settings.max_segments,
            ),
            SmppServices(
                authenticate=AuthenticateBind(accounts, passwords),
                accept=accept,
                read=read,
                parts=SqlPartStore(database),
                queue=queue,
                accounts=accounts,
                clock=clock,
                ids=ids,
            ),
        )
        # Its own runner: a slow customer holding deliveries never starves dispatch.
        smpp_runner = JobRunner(
            queue,
            {SMPP_DELIVER: smpp.deliver},
            clock,
            owner,
            concurrency=settings.worker_concurrency,
            batch=settings.worker_batch,
            lease_seconds=settings.lease_seconds,
        )
        smpp.on_receiver_bound = smpp_runner.nudge

    def wake_local(urgent: bool = False) -> None:
        runner.nudge(urgent)
        if smpp_runner is not None:
            smpp_runner.nudge()

    # Other processes on this database (``worker_processes``) hear about due jobs too.
    broadcast = WakeBroadcast(
        parse_peers(settings.wake_peers), parse_peers(settings.wake_urgent_peers)
    )

    def jobs_due(urgent: bool = False) -> None:
        wake_local(urgent)
        broadcast(urgent)

    # Jobs made in this process (dispatch, notify, webhook, receipt, deliver_sm) start at once
    # instead of at the runners' next poll.
    messages.on_due_jobs = jobs_due
    queue.on_due_jobs = jobs_due
    wake_listener = (
        WakeListener("127.0.0.1", settings.wake_port, wake_local) if settings.wake_port else None
    )
    return Gateway(
        settings=settings,
        database=database,
        messages=messages,
        accounts=accounts,
        webhooks=webhooks,
        queue=queue,
        clock=clock,
        ids=ids,
        accept=accept,
        read=read,
        authenticate=Authenticate(accounts),
        endpoints=ManageWebhookEndpoints(webhooks, ids, clock, directory, new_secret),
        receipts=receipts,
        runner=runner,
        connectors=connectors,
        router=router,
        sender=sender,
        callback_secrets=callback_secrets,
        smpp_accounts=ManageSmppAccounts(accounts, ids, clock, passwords),
        numbers=numbers,
        inbound=inbound,
        smpp=smpp,
        smpp_runner=smpp_runner,
        wake_listener=wake_listener,
        wake_broadcast=broadcast,
        figures=figures,
        receipt_sweep=receipt_sweep,
        quotas=quotas,
        connector_store=connector_store,
        live=live,
        manage_connectors=manage_connectors,
        manage_routes=manage_routes,
        connector_builder=factory,
    )


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just made: the secret is shown once and never stored."""

    key: ApiKey
    secret: str


async def create_tenant(gateway: Gateway, name: str, region: str | None = None) -> Tenant:
    """A new tenant."""
    tenant = Tenant(
        id=gateway.ids.new("ten"),
        name=name,
        default_region=region,
        created_at=gateway.clock.now(),
    )
    await gateway.accounts.create_tenant(tenant)
    return tenant


async def create_key(
    gateway: Gateway,
    tenant_id: str,
    *,
    mode: KeyMode = KeyMode.LIVE,
    role: Role = Role.TENANT,
    secret: str | None = None,
) -> CreatedKey:
    """A new API key for ``tenant_id`` (``secret`` given, or a fresh random one)."""
    if secret is not None:
        announced = key_mode_of(secret)
        if announced is None:
            raise ValueError("an API key must start with pk_live_ or pk_test_")
        mode = announced
    value = secret or new_key_secret(mode)
    key = ApiKey(
        id=gateway.ids.new("key"),
        tenant_id=tenant_id,
        mode=mode,
        role=role,
        digest=key_digest(value),
        prefix=value[:12],
        created_at=gateway.clock.now(),
    )
    await gateway.accounts.create_api_key(key)
    return CreatedKey(key=key, secret=value)


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What first start created (secrets only when they were generated or given now)."""

    tenant: Tenant
    api_key: str | None
    created: bool
    smpp_account: SmppAccount | None = None
    smpp_password: str | None = None
    #: Whether the operator key of ``bootstrap_admin_key`` was created now.
    admin_key_created: bool = False
    #: An operator key generated now (no operator key existed and none was configured).
    admin_key: str | None = None


DEMO_SYSTEM_ID = "demo"


async def ensure_demo_tenant(gateway: Gateway) -> Bootstrap:
    """On first start, create the demo tenant, its API key and its SMPP account.

    The key is ``PIGEON_BOOTSTRAP_API_KEY`` when set, else a fresh test key. A bootstrap key
    set later is added to the demo tenant if it does not exist yet. The SMPP account (system_id
    ``demo``, a test account like the generated key) gets ``PIGEON_BOOTSTRAP_SMPP_PASSWORD``
    or a fresh password, when it does not exist yet. ``PIGEON_BOOTSTRAP_ADMIN_KEY``, when set,
    becomes an operator key (``/v1/routes/explain``...) if it does not exist yet; without it,
    an operator key is generated (``admin_key``, shown once) when none exists.
    """
    settings = gateway.settings
    tenant = await gateway.accounts.find_tenant_by_name("demo")
    created = False
    if tenant is None:
        tenant = await create_tenant(gateway, "demo")
        created = True
    secret: str | None = None
    wanted = settings.bootstrap_api_key
    if wanted:
        if await gateway.accounts.find_api_key(key_digest(wanted)) is None:
            secret = (await create_key(gateway, tenant.id, secret=wanted)).secret
    elif created:
        secret = (await create_key(gateway, tenant.id, mode=KeyMode.TEST)).secret
    admin_created = False
    admin_secret: str | None = None
    admin = settings.bootstrap_admin_key
    if admin and await gateway.accounts.find_api_key(key_digest(admin)) is None:
        await create_key(gateway, tenant.id, role=Role.OPERATOR, secret=admin)
        admin_created = True
    elif not admin and not await gateway.accounts.has_operator_key():
        admin_secret = (await create_key(gateway, tenant.id, role=Role.OPERATOR)).secret
    account = await gateway.accounts.find_smpp_account(DEMO_SYSTEM_ID)
    password: str | None = None
    if account is None:
        made = await gateway.smpp_accounts.create(
            tenant.id,
            system_id=DEMO_SYSTEM_ID,
            password=settings.bootstrap_smpp_password or None,
            mode=KeyMode.TEST,
        )
        account, password = made.account, made.password
    return Bootstrap(
        tenant=tenant,
        api_key=secret,
        created=created,
        smpp_account=account,
        smpp_password=password,
        admin_key_created=admin_created,
        admin_key=admin_secret,
    )
