"""The ``pigeon`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console

from pigeon.config import ConfigError, Settings, load_settings
from pigeon.domain.accounts import KeyMode, Role

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


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run API, SMPP server, workers and the carrier simulator in one process (the embedded
    gateway)."""
    settings = _settings(config)
    _configure_logging(settings)
    try:
        asyncio.run(_serve(settings))
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


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


async def _serve(settings: Settings) -> None:
    from pigeon.bootstrap import ensure_demo_tenant, open_gateway

    _let_shutdown_finish()
    gateway = await open_gateway(settings)
    try:
        boot = await ensure_demo_tenant(gateway)
        await gateway.start_workers()
        smpp_port = await gateway.start_smpp()
        _print_banner(settings, boot.tenant.id, boot.api_key, boot.created)
        if boot.admin_key_created:
            print("Operator key created from bootstrap_admin_key (PIGEON_BOOTSTRAP_ADMIN_KEY).")
        if smpp_port is not None and boot.smpp_account is not None:
            _print_smpp_banner(settings, smpp_port, boot.smpp_account.system_id, boot.smpp_password)
        server = uvicorn.Server(
            uvicorn.Config(
                gateway.app(),
                host=settings.http_host,
                port=settings.http_port,
                log_level="warning",
                access_log=False,
                lifespan="on",
            )
        )
        await server.serve()
    finally:
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
