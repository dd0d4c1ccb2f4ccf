"""The ``pigeon`` command line."""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import typer
import uvloop
from rich.console import Console

from pigeon.config import ConfigError, Settings, load_settings, writer_batch, writer_tasks
from pigeon.domain.accounts import KeyMode, Role
from pigeon.enum_members import drop_enum_getattr_fallback
from pigeon.ports import Pacer
from pigeon.store.sqlite_library import set_up_sqlite_library
from pigeon.supervisor import WorkerProcesses, free_udp_port
from pigeon.telemetry import add_peer_source, remove_peer_source
from pigeon.worker_reports import WorkerReport, WorkerReports

app = typer.Typer(help="Pigeon: a self-hosted global SMS aggregator.", no_args_is_help=True)
tenants_app = typer.Typer(help="Manage tenants.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
messages_app = typer.Typer(help="Inspect messages.", no_args_is_help=True)
smpp_accounts_app = typer.Typer(help="Manage SMPP accounts (customers binding to us).")
smpp_accounts_app.info.no_args_is_help = True
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(messages_app, name="messages")
app.add_typer(smpp_accounts_app, name="smpp-accounts")
numbers_app = typer.Typer(help="The numbers inventory: replies go to a number's owner.")
numbers_app.info.no_args_is_help = True
app.add_typer(numbers_app, name="numbers")
connectors_app = typer.Typer(
    help="Carrier connectors as data (a running gateway applies changes within seconds)."
)
connectors_app.info.no_args_is_help = True
app.add_typer(connectors_app, name="connectors")
routes_app = typer.Typer(help="The routing table (a running gateway applies it within seconds).")
routes_app.info.no_args_is_help = True
app.add_typer(routes_app, name="routes")

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default ./pigeon.toml).")
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config_file=config)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    if settings.log_format == "json":
        fmt = (
            '{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
        )
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # Alembic narrates every migration step at INFO; only its warnings matter at start.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))


def _run_on_uvloop(
    main: Coroutine[Any, Any, None], *, command: str = "serve", profile_dir: str = ""
) -> None:
    """Run the gateway's ``main`` on uvloop: the same asyncio API, with the loop, sockets and
    timers in C (about a tenth less CPU per message end to end, docs/benchmarks.md).

    With ``profile_dir``, under ``cProfile``, whose statistics are written to
    ``<profile_dir>/<command>-<pid>.pstats`` when ``main`` ends, however it ends."""
    # Before any connection (ADR 48): SQLite without its own locks, NULLs bound directly.
    sqlite_library = set_up_sqlite_library()
    logging.getLogger("pigeon.store").info("SQLite library: %s", sqlite_library.describe())
    # Enum members read from their classes as fast as other class attributes (ADR 49).
    drop_enum_getattr_fallback()
    profiler = cProfile.Profile() if profile_dir else None
    if profiler is not None:
        profiler.enable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    finally:
        if profiler is not None:
            profiler.disable()
            folder = Path(profile_dir)
            folder.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(folder / f"{command}-{os.getpid()}.pstats")


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run API, SMPP server, workers and the carrier simulator in one process (the embedded
    gateway)."""
    settings = _settings(config)
    _configure_logging(settings)
    try:
        _run_on_uvloop(_serve(settings, config), profile_dir=settings.profile_dir)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


ParentOption = Annotated[
    int | None,
    typer.Option("--parent-pid", hidden=True, help="Stop when this process is gone."),
]


@app.command()
def worker(config: ConfigOption = None, parent_pid: ParentOption = None) -> None:
    """Run job runners and carrier links only (no API, no SMPP server): dispatch, receipts,
    webhooks. ``pigeon serve`` starts these itself with ``worker_processes``."""
    settings = _settings(config)
    _configure_logging(settings)
    try:
        _run_on_uvloop(
            _work(dataclasses.replace(settings, run_smpp=False, run_workers=True), parent_pid),
            command="worker",
            profile_dir=settings.profile_dir,
        )
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


async def _work(settings: Settings, parent_pid: int | None = None) -> None:
    from pigeon.bootstrap import open_gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # A worker process of ``serve`` (``parent_pid``) starts once ``serve`` has migrated.
    gateway = await open_gateway(settings, migrate_store=parent_pid is None)
    watch: asyncio.Task[None] | None = None
    if parent_pid is not None:
        watch = asyncio.create_task(_stop_when_orphaned(parent_pid, stop))
    reported = asyncio.Event()
    report: asyncio.Task[None] | None = None
    if settings.worker_report_dir:
        folder = Path(settings.worker_report_dir)
        writer = WorkerReport(folder, links=gateway.link_states, pacers=gateway.pacers)
        report = asyncio.create_task(writer.run(reported))
    try:
        await gateway.start_workers()
        if parent_pid is None and not settings.redis_url:
            _warn_caps_kept_alone(gateway.pacers())
        freeze_startup_heap()
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        await gateway.close()
        if report is not None:  # its last snapshot after everything was counted
            reported.set()
            await report


def _warn_caps_kept_alone(pacers: Mapping[str, Pacer]) -> None:
    """A ``pigeon worker`` started on its own, without ``redis_url``: each capped carrier's
    cap is this process's alone, so other processes sending to it add to it (ADR 41)."""
    for connector_id, pacer in sorted(pacers.items()):
        logging.getLogger(__name__).warning(
            "connector %s is capped at %g submits/s in this process alone: other processes "
            "sending to it add to that (set redis_url to keep the cap across them)",
            connector_id,
            pacer.cap,
        )


#: The cyclic collector's thresholds once the gateway runs (``gc.set_threshold``): a young
#: collection after 20,000 net container allocations instead of Python's 700. Nearly all of a
#: message's objects are freed by reference counting within the request or job that made them,
#: so collecting 28 times less often scans about as many survivors each time at a 28th of the
#: rate; end to end it saved ~5% of the gateway's CPU per message, with the OTP latency and the
#: accept p99 unchanged (docs/benchmarks.md, session 11).
GC_THRESHOLDS: Final = (20_000, 50, 20)


def freeze_startup_heap() -> None:
    """Take what is alive once the gateway has started out of the cyclic garbage collector's
    scans (``gc.freeze``): modules, classes, functions, compiled statements, about 150,000
    objects in a worker. They live as long as the process; scanning them at every full
    collection stopped the event loop for ~90 ms every ~2 s under load, which set the OTP
    latency's p99 (docs/benchmarks.md). Objects made later are collected as before, less often
    (``GC_THRESHOLDS``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """Set ``stop`` once the parent is gone (killed without stopping its children)."""
    # Polling: nothing signals a parent's death to a child (without prctl, Linux only).
    while os.getppid() == parent_pid:  # noqa: ASYNC110 - no event exists to wait on
        await asyncio.sleep(1.0)
    logging.getLogger(__name__).warning("parent %d is gone; stopping", parent_pid)
    stop.set()


def _worker_processes(
    settings: Settings, config: Path | None
) -> tuple[Settings, WorkerProcesses | None]:
    """With ``worker_processes``, the child processes and this process's settings (its own
    runners off, wake ports on); otherwise ``settings`` unchanged."""
    if settings.worker_processes < 1:
        return settings, None
    argv = [sys.executable, "-m", "pigeon", "worker", "--parent-pid", str(os.getpid())]
    if config is not None:
        argv += ["--config", str(config.resolve())]
    port = free_udp_port()
    roles = worker_roles(settings)
    env = {
        **os.environ,
        "PIGEON_JOB_KINDS": WORKER_JOB_KINDS,
        "PIGEON_WRITER_MAX_BATCH": str(writer_batch(settings, worker=True)),
        # Each starts with an even part of every carrier's cap; serve then shares the caps by
        # what they use (pigeon.worker_reports).
        "PIGEON_CONNECTOR_RATE_SHARE": repr(1 / len(roles)),
    }
    # The regular workers leave the urgent lane's jobs (OTPs) to the urgent ones, whose event
    # loop is free when one comes: behind a marketing backlog a regular worker's loop is busy
    # (turns of 10-20 ms on PostgreSQL), and every await of a dispatch waits for one.
    # The children report their metrics and carrier links to this process through files there.
    reports = Path(tempfile.mkdtemp(prefix="pigeon-workers-"))
    children = WorkerProcesses(roles, argv, env, parent_wake_port=port, reports_folder=reports)
    # The OTP workers hear only of urgent jobs: every accept batch would wake them otherwise.
    peers, urgent_peers = children.wake_peers()
    # This process keeps the webhook deliveries (its loop has the time: it only accepts),
    # the workers take dispatch, receipts and expiries: the CPU splits about evenly.
    own = dataclasses.replace(
        settings,
        job_kinds=SERVE_JOB_KINDS,
        wake_port=port,
        wake_peers=peers,
        wake_urgent_peers=urgent_peers,
    )
    return own, children


def worker_roles(settings: Settings) -> list[dict[str, str]]:
    """What each worker process ``serve`` starts adds to its environment: its lane and, for
    the OTP workers, its job kinds, and its writer's transactions at once (PostgreSQL)."""
    urgent = settings.worker_urgent_processes
    regular = {
        "PIGEON_JOB_LANE": "regular" if urgent else "all",
        "PIGEON_WRITER_TASKS": str(writer_tasks(settings, worker=True)),
    }
    otp = {
        "PIGEON_JOB_LANE": "urgent",
        "PIGEON_JOB_KINDS": URGENT_JOB_KINDS,
        "PIGEON_WRITER_TASKS": str(writer_tasks(settings)),
    }
    return [dict(regular) for _ in range(settings.worker_processes)] + [
        dict(otp) for _ in range(urgent)
    ]


#: What ``serve``'s own runner takes when it has worker processes (they take the rest).
SERVE_JOB_KINDS = "webhook,notify"
WORKER_JOB_KINDS = "dispatch,receipt,expire"
#: What the urgent worker processes take (of the urgent lane's priority only).
URGENT_JOB_KINDS = "dispatch"


@app.command(
    "smsc-sim",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def smsc_sim(context: typer.Context) -> None:
    """Run the standalone SMPP carrier simulator (flags: pigeon smsc-sim --help)."""
    from pigeon.smsc_sim import main as run_simulator

    raise typer.Exit(run_simulator(list(context.args)))


def _let_shutdown_finish() -> None:
    """Install SIGINT/SIGTERM handlers under uvicorn's.

    uvicorn catches the signal that stops it and, once it has returned, raises it again to
    whatever handler it found installed: with Python's defaults that kills the process before
    the SMPP server unbinds its customers and the store drains. With these the shutdown runs;
    a second signal during it interrupts it.
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


async def _serve(settings: Settings, config: Path | None = None) -> None:
    from pigeon.bootstrap import ensure_demo_tenant, open_gateway

    _let_shutdown_finish()
    settings, children = _worker_processes(settings, config)
    reports = None
    if children is not None and children.reports_folder is not None:
        reports = WorkerReports(children.reports_folder)
        add_peer_source(reports)
    pacing_stop = asyncio.Event()
    pacing: asyncio.Task[None] | None = None
    # Its SMPP carriers are bound by the workers, which send: no bind of its own (ADR 39).
    gateway = await open_gateway(
        settings, smpp_links_elsewhere=None if reports is None else reports.link_ready
    )
    try:
        boot = await ensure_demo_tenant(gateway)
        await gateway.import_declared()
        await gateway.start_workers()
        if children is not None:  # after the migrations and the bootstrap rows are in place
            await children.start()
        smpp_port = await gateway.start_smpp()
        _print_banner(settings, boot.tenant.id, boot.api_key, boot.created)
        if boot.admin_key_created:
            print("Operator key created from bootstrap_admin_key (PIGEON_BOOTSTRAP_ADMIN_KEY).")
        if boot.admin_key:
            print(f"Operator key (connectors, routes; shown once): {boot.admin_key}", flush=True)
        if smpp_port is not None and boot.smpp_account is not None:
            _print_smpp_banner(settings, smpp_port, boot.smpp_account.system_id, boot.smpp_password)
        if reports is not None:  # the workers' parts of the carriers' caps, once a second
            pacing = asyncio.create_task(reports.run_pacing(pacing_stop))
        # Here, not with this module: worker processes answer no HTTP and never load uvicorn.
        import uvicorn

        from pigeon.api.http_protocol import CoalescingHttpToolsProtocol

        app = gateway.app()
        freeze_startup_heap()
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.http_host,
                port=settings.http_port,
                # A response's head and body in one write (pigeon.api.http_protocol).
                http=CoalescingHttpToolsProtocol,
                log_level="warning",
                access_log=False,
                lifespan="on",
            )
        )
        await server.serve()
    finally:
        pacing_stop.set()
        if pacing is not None:
            await pacing
        if children is not None:
            await children.stop()
        if reports is not None:
            remove_peer_source(reports)
        await gateway.close()


def _print_banner(settings: Settings, tenant_id: str, api_key: str | None, created: bool) -> None:
    base = settings.effective_public_url
    database = _safe_url(settings.effective_database_url)
    lines = [f"Pigeon is listening on {base} (database: {database})", f"API docs: {base}/docs"]
    if api_key:
        lines.append(f"Demo tenant {tenant_id} API key (shown once): {api_key}")
        lines.append("Send a message:")
        lines.append(
            f"curl -s {base}/v1/messages -H 'Authorization: Bearer {api_key}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"to": "+14155550100", "body": "Hello from Pigeon"}\''
        )
    elif not created:
        lines.append(
            f"Demo tenant {tenant_id} exists; its key was printed at first start "
            "(or create one: pigeon keys create --tenant demo)."
        )
    # Plain print: rich would wrap the curl line and break copy-paste.
    print("\n".join(lines), flush=True)


def _print_smpp_banner(settings: Settings, port: int, system_id: str, password: str | None) -> None:
    lines = [f"SMPP server on {settings.smpp_host}:{port}"]
    if password:
        lines.append(f"Demo SMPP account: system_id {system_id}, password (shown once): {password}")
    else:
        lines.append(f"Demo SMPP account: system_id {system_id} (password printed at first start)")
    print("\n".join(lines), flush=True)


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema."""
    from pigeon.store import migrate as run_migrations

    settings = _settings(config)
    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_migrations(settings.effective_database_url))
    console.print("Database is up to date.")


async def _with_gateway(settings: Settings, action: Any) -> Any:
    from pigeon.bootstrap import open_gateway

    gateway = await open_gateway(settings)
    try:
        return await action(gateway)
    finally:
        await gateway.close()


@tenants_app.command("create")
def tenants_create(
    name: str,
    region: Annotated[
        str | None, typer.Option(help="Default ISO region for national numbers.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a tenant and print its id."""
    from pigeon.bootstrap import create_tenant

    settings = _settings(config)

    async def action(gateway: Any) -> None:
        if await gateway.accounts.find_tenant_by_name(name) is not None:
            err_console.print(f"[red]A tenant named {name!r} exists already.[/red]")
            raise typer.Exit(1)
        tenant = await create_tenant(gateway, name, region.upper() if region else None)
        console.print(tenant.id)

    asyncio.run(_with_gateway(settings, action))


@tenants_app.command("list")
def tenants_list(config: ConfigOption = None) -> None:
    """List tenants."""
    settings = _settings(config)

    async def action(gateway: Any) -> None:
        for tenant in await gateway.accounts.list_tenants():
            console.print(f"{tenant.id}\t{tenant.name}\t{tenant.default_region or '-'}")

    asyncio.run(_with_gateway(settings, action))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    test: Annotated[bool, typer.Option("--test", help="A test key (simulator only).")] = False,
    operator: Annotated[bool, typer.Option("--operator", help="An operator key.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create an API key and print it (it is shown only this once)."""
    from pigeon.bootstrap import create_key

    settings = _settings(config)

    async def action(gateway: Any) -> None:
        found = await gateway.accounts.get_tenant(tenant)
        if found is None:
            found = await gateway.accounts.find_tenant_by_name(tenant)
        if found is None:
            err_console.print(f"[red]No tenant {tenant!r}.[/red]")
            raise typer.Exit(1)
        created = await create_key(
            gateway,
            found.id,
            mode=KeyMode.TEST if test else KeyMode.LIVE,
            role=Role.OPERATOR if operator else Role.TENANT,
        )
        print(created.secret)

    asyncio.run(_with_gateway(settings, action))


async def _find_tenant(gateway: Any, tenant: str) -> Any:
    found = await gateway.accounts.get_tenant(tenant)
    if found is None:
        found = await gateway.accounts.find_tenant_by_name(tenant)
    if found is None:
        err_console.print(f"[red]No tenant {tenant!r}.[/red]")
        raise typer.Exit(1)
    return found


@smpp_accounts_app.command("create")
def smpp_accounts_create(
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    system_id: Annotated[
        str | None, typer.Option("--system-id", help="1-15 characters (default: generated).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="1-8 characters (default: generated and printed once).")
    ] = None,
    max_binds: Annotated[int, typer.Option(help="Sessions open at once.")] = 4,
    throughput: Annotated[
        int, typer.Option(help="Submits per second over all binds (0: unlimited).")
    ] = 200,
    test: Annotated[bool, typer.Option("--test", help="Messages reach the simulator only.")] = (
        False
    ),
    config: ConfigOption = None,
) -> None:
    """Create an SMPP account; prints its system_id and, when generated, its password."""
    from pigeon.domain.errors import ValidationError

    settings = _settings(config)

    async def action(gateway: Any) -> None:
        found = await _find_tenant(gateway, tenant)
        try:
            created = await gateway.smpp_accounts.create(
                found.id,
                system_id=system_id,
                password=password,
                max_binds=max_binds,
                throughput_per_second=throughput or None,
                mode=KeyMode.TEST if test else KeyMode.LIVE,
            )
        except ValidationError as exc:
            err_console.print(f"[red]{exc.detail}[/red]")
            raise typer.Exit(1) from exc
        print(f"system_id: {created.account.system_id}")
        if password is None:
            print(f"password (shown once): {created.password}")

    asyncio.run(_with_gateway(settings, action))


@numbers_app.command("add")
def numbers_add(
    number: Annotated[str, typer.Argument(help="E.164 long code, short code or sender id.")],
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    config: ConfigOption = None,
) -> None:
    """Give a number to a tenant: replies sent to it become that tenant's messages."""
    from pigeon.domain.errors import ValidationError
    from pigeon.domain.numbers import OwnedNumber, normalise_number

    settings = _settings(config)

    async def action(gateway: Any) -> None:
        found = await _find_tenant(gateway, tenant)
        try:
            value, kind = normalise_number(number)
            await gateway.numbers.add_number(
                OwnedNumber(value, found.id, kind, gateway.clock.now())
            )
        except ValidationError as exc:
            err_console.print(f"[red]{exc.detail}[/red]")
            raise typer.Exit(1) from exc
        print(value)

    asyncio.run(_with_gateway(settings, action))


@numbers_app.command("list")
def numbers_list(
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    config: ConfigOption = None,
) -> None:
    """List a tenant's numbers."""
    settings = _settings(config)

    async def action(gateway: Any) -> None:
        found = await _find_tenant(gateway, tenant)
        for owned in await gateway.numbers.list_numbers(found.id):
            print(f"{owned.value}\t{owned.kind.value}")

    asyncio.run(_with_gateway(settings, action))


@smpp_accounts_app.command("list")
def smpp_accounts_list(
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    config: ConfigOption = None,
) -> None:
    """List a tenant's SMPP accounts."""
    settings = _settings(config)

    async def action(gateway: Any) -> None:
        found = await _find_tenant(gateway, tenant)
        for account in await gateway.smpp_accounts.list(found.id):
            limit = account.throughput_per_second or "unlimited"
            print(
                f"{account.id}\t{account.system_id}\t{account.mode.value}\t"
                f"binds {account.max_binds}\t{limit}/s"
            )

    asyncio.run(_with_gateway(settings, action))


def _option_value(text: str) -> Any:
    """A ``--set`` value: a TOML value (``2775``, ``true``, ``["a", "b"]``), else the text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _options(pairs: list[str] | None, options_json: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if options_json:
        try:
            loaded = json.loads(options_json)
        except ValueError as exc:
            err_console.print(f"[red]--options-json is not JSON: {exc}[/red]")
            raise typer.Exit(2) from exc
        if not isinstance(loaded, dict):
            err_console.print("[red]--options-json must be a JSON object[/red]")
            raise typer.Exit(2)
        options.update(loaded)
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            err_console.print(f"[red]--set takes KEY=VALUE, not {pair!r}[/red]")
            raise typer.Exit(2)
        options[name.strip()] = _option_value(value.strip())
    return options


def _print_json(data: Any) -> None:
    # Plain print: rich would wrap long values (price lists) and break the JSON.
    print(json.dumps(data, indent=2, ensure_ascii=False), flush=True)


def _manage(settings: Settings, change: Any) -> Any:
    """Run ``change(connectors, routes)`` on the store; errors are printed, exit code 1."""
    from pigeon.domain.errors import PigeonError

    async def action(gateway: Any) -> Any:
        connectors, routes = gateway.offline_management()
        try:
            return await change(connectors, routes)
        except PigeonError as exc:
            err_console.print(f"[red]{exc.code}: {exc.detail}[/red]")
            raise typer.Exit(1) from exc

    return asyncio.run(_with_gateway(settings, action))


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="An option KEY=VALUE (VALUE read as TOML, else text); repeat."),
]
OptionsJson = Annotated[
    str | None, typer.Option("--options-json", help="Options as one JSON object.")
]


@connectors_app.command("list")
def connectors_list(config: ConfigOption = None) -> None:
    """List connectors as JSON (credentials masked)."""
    settings = _settings(config)

    async def change(connectors: Any, routes: Any) -> Any:
        return await connectors.list_connectors()

    _print_json(_manage(settings, change))


@connectors_app.command("add")
def connectors_add(
    connector_id: Annotated[str, typer.Argument(help="The connector id.")],
    kind: Annotated[str, typer.Option("--type", help="smpp, generic_http, twilio or infobip.")],
    set_options: SetOption = None,
    options_json: OptionsJson = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it disabled.")] = False,
    prices: Annotated[Path | None, typer.Option(help="A price list CSV file.")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a connector (validated as pigeon.toml's [[connectors]] are)."""
    settings = _settings(config)
    options = _options(set_options, options_json)
    prices_csv = prices.read_text(encoding="utf-8") if prices else None

    async def change(connectors: Any, routes: Any) -> Any:
        return await connectors.add(
            connector_id, kind, options, enabled=not disabled, prices_csv=prices_csv
        )

    _print_json(_manage(settings, change))


@connectors_app.command("update")
def connectors_update(
    connector_id: Annotated[str, typer.Argument(help="The connector id.")],
    set_options: SetOption = None,
    options_json: OptionsJson = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="Remove an option; repeat.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--type", help="A new adapter type.")] = None,
    config: ConfigOption = None,
) -> None:
    """Change a connector's options (merged) or type."""
    settings = _settings(config)
    options: dict[str, Any] = {**_options(set_options, options_json)}
    options.update(dict.fromkeys(unset or []))

    async def change(connectors: Any, routes: Any) -> Any:
        return await connectors.update(connector_id, connector_type=kind, options=options)

    _print_json(_manage(settings, change))


def _set_enabled(connector_id: str, enabled: bool, config: Path | None) -> None:
    settings = _settings(config)

    async def change(connectors: Any, routes: Any) -> Any:
        return await connectors.update(connector_id, enabled=enabled)

    _manage(settings, change)
    print(f"{connector_id} {'enabled' if enabled else 'disabled'}")


@connectors_app.command("enable")
def connectors_enable(connector_id: str, config: ConfigOption = None) -> None:
    """Enable a connector: it starts and joins route plans."""
    _set_enabled(connector_id, True, config)


@connectors_app.command("disable")
def connectors_disable(connector_id: str, config: ConfigOption = None) -> None:
    """Disable a connector: it stops and leaves route plans."""
    _set_enabled(connector_id, False, config)


@connectors_app.command("remove")
def connectors_remove(connector_id: str, config: ConfigOption = None) -> None:
    """Remove a connector no route names."""
    settings = _settings(config)

    async def change(connectors: Any, routes: Any) -> None:
        await connectors.remove(connector_id)

    _manage(settings, change)
    print(f"{connector_id} removed")


@connectors_app.command("prices")
def connectors_prices(
    connector_id: str,
    file: Annotated[
        Path | None, typer.Option("--file", help="CSV: prefix/country,price,currency.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the price list.")] = False,
    config: ConfigOption = None,
) -> None:
    """Replace (--file) or remove (--clear) a connector's price list."""
    if (file is None) == (not clear):
        err_console.print("[red]give exactly one of --file and --clear[/red]")
        raise typer.Exit(2)
    settings = _settings(config)
    text = file.read_text(encoding="utf-8") if file is not None else None

    async def change(connectors: Any, routes: Any) -> Any:
        return await connectors.set_prices(connector_id, text)

    _manage(settings, change)
    print(f"{connector_id} prices {'cleared' if clear else 'set'}")


@routes_app.command("list")
def routes_list(config: ConfigOption = None) -> None:
    """Print the routing table as JSON, in order."""
    settings = _settings(config)

    async def change(connectors: Any, routes: Any) -> Any:
        return await routes.list_routes()

    _print_json(_manage(settings, change))


@routes_app.command("set")
def routes_set(
    file: Annotated[Path, typer.Option("--file", help="A TOML file of [[routes]] tables.")],
    config: ConfigOption = None,
) -> None:
    """Replace the whole routing table with the [[routes]] of a TOML file (validated)."""
    settings = _settings(config)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        err_console.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from exc
    table = document.get("routes", [])

    async def change(connectors: Any, routes: Any) -> Any:
        return await routes.replace(table)

    _manage(settings, change)
    print(f"{len(table)} routes set")


def _api(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own gateway
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        problem = exc.read().decode(errors="replace")
        err_console.print(f"[red]HTTP {exc.code}[/red] {problem}")
        raise typer.Exit(1) from exc
    except urllib.error.URLError as exc:
        err_console.print(f"[red]Cannot reach {url}: {exc.reason}[/red]")
        raise typer.Exit(1) from exc


KeyOption = Annotated[str, typer.Option(envvar="PIGEON_API_KEY", help="API key to use.")]
UrlOption = Annotated[str, typer.Option(envvar="PIGEON_API_URL", help="Base URL of the gateway.")]


@app.command()
def send(
    to: Annotated[str, typer.Option(help="Recipient, E.164 or national with --country.")],
    body: Annotated[str, typer.Option(help="Message text.")],
    key: KeyOption,
    sender: Annotated[str | None, typer.Option("--from", help="Sender id.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO region of a national number.")] = None,
    category: Annotated[str, typer.Option(help="otp, transactional or marketing.")] = (
        "transactional"
    ),
    url: UrlOption = "http://127.0.0.1:8080",
) -> None:
    """Send one message through a running gateway and print it as JSON."""
    payload: dict[str, Any] = {"to": to, "body": body, "category": category}
    if sender:
        payload["from"] = sender
    if country:
        payload["country"] = country
    result = _api("POST", f"{url.rstrip('/')}/v1/messages", key, payload)
    console.print_json(data=result)


@messages_app.command("show")
def messages_show(
    message_id: str, key: KeyOption, url: UrlOption = "http://127.0.0.1:8080"
) -> None:
    """Show one message with its events."""
    result = _api("GET", f"{url.rstrip('/')}/v1/messages/{message_id}", key)
    console.print_json(data=result)


def main() -> None:
    """Entry point of the ``pigeon`` command."""
    app()
