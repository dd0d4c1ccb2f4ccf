"""The ``pigeon`` command line, run as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from support.esme import Esme
from support.gateway import GatewayProcess


def pigeon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``pigeon ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pigeon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "PIGEON_DATA_DIR": str(data_dir), "PIGEON_LOG_LEVEL": "WARNING"}
    env.pop("PIGEON_DATABASE_URL", None)
    env.pop("PIGEON_API_KEY", None)
    return env


def test_tenants_and_keys_are_created_and_keys_work(gateway: GatewayProcess) -> None:
    """tenants create + keys create print an id and a key that the running API accepts."""
    env = cli_env(gateway.data_dir)
    created = pigeon("tenants", "create", "acme", "--region", "gb", env=env)
    assert created.returncode == 0, created.stderr
    tenant_id = created.stdout.strip()
    assert tenant_id.startswith("ten_")
    duplicate = pigeon("tenants", "create", "acme", env=env)
    assert duplicate.returncode == 1
    key = pigeon("keys", "create", "--tenant", "acme", "--test", env=env)
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip()
    assert secret.startswith("pk_test_")
    sent = pigeon(
        "send",
        "--to",
        "07400 123456",
        "--country",
        "GB",
        "--body",
        "hi from the CLI",
        "--key",
        secret,
        "--url",
        gateway.base_url,
        env=env,
    )
    assert sent.returncode == 0, sent.stderr
    message = json.loads(sent.stdout)
    assert message["to"] == "+447400123456"
    shown = pigeon(
        "messages", "show", message["id"], "--key", secret, "--url", gateway.base_url, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == message["id"]


def test_send_with_a_bad_number_reports_the_problem(gateway: GatewayProcess) -> None:
    """A rejected request exits 1 and prints the problem's code."""
    env = cli_env(gateway.data_dir)
    key = pigeon("keys", "create", "--tenant", "demo", "--test", env=env).stdout.strip()
    sent = pigeon(
        "send", "--to", "12", "--body", "x", "--key", key, "--url", gateway.base_url, env=env
    )
    assert sent.returncode == 1
    assert "invalid_recipient" in sent.stderr


def test_invalid_configuration_is_refused_with_every_problem(tmp_path: Path) -> None:
    """serve with bad settings exits 2 naming each bad setting."""
    env = cli_env(tmp_path / "data")
    env["PIGEON_HTTP_PORT"] = "not-a-port"
    env["PIGEON_MAX_SEGMENTS"] = "0"
    result = pigeon("serve", env=env)
    assert result.returncode == 2
    assert "http_port" in result.stderr
    assert "max_segments" in result.stderr


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    """migrate twice on a new data directory succeeds both times."""
    env = cli_env(tmp_path / "data")
    for _ in range(2):
        result = pigeon("migrate", env=env)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "pigeon.db").exists()


def test_smpp_accounts_are_created_listed_and_bind(gateway: GatewayProcess) -> None:
    """smpp-accounts create prints a password that binds; list shows it; a taken id exits 1."""
    env = cli_env(gateway.data_dir)
    created = pigeon("smpp-accounts", "create", "--tenant", "demo", "--system-id", "acme", env=env)
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(": ", 1) for line in created.stdout.strip().splitlines())
    password = lines["password (shown once)"]
    assert lines["system_id"] == "acme"
    assert len(password) == 8
    taken = pigeon("smpp-accounts", "create", "--tenant", "demo", "--system-id", "acme", env=env)
    assert taken.returncode == 1
    listed = pigeon("smpp-accounts", "list", "--tenant", "demo", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "\tacme\t" in listed.stdout
    assert "\tdemo\t" in listed.stdout

    async def bind() -> int:
        client = await Esme.open(gateway.smpp_port)
        try:
            return (await client.bind("acme", password, "trx")).command_status
        finally:
            await client.close()

    assert asyncio.run(bind()) == 0
