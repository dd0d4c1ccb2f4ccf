"""Settings: one TOML file plus ``PIGEON_*`` environment variables, validated once at start.

Precedence: environment variable > ``pigeon.toml`` > default. Settings are built once by the
CLI and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration is invalid; the message lists every problem found."""


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One ``[[connectors]]`` table of ``pigeon.toml``: a carrier link.

    ``type`` picks the adapter (``smpp`` today); ``options`` are the adapter's own settings
    (for ``smpp``: host, port, system_id, password, window, binds, throughput_per_second...),
    checked when the adapter is built at start.
    """

    id: str
    type: str
    options: Mapping[str, Any]


CONNECTOR_TYPES = frozenset({"smpp"})


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
    lease_seconds: float = 60.0
    run_workers: bool = True
    run_smpp: bool = True
    log_level: str = "INFO"
    log_format: str = "console"
    #: Carrier links from ``[[connectors]]`` tables (TOML only).
    connectors: tuple[ConnectorConfig, ...] = ()
    #: The connector live traffic goes to; empty: the first configured one, else the simulator.
    default_connector: str = ""

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'pigeon.db'}"

    @property
    def effective_public_url(self) -> str:
        """The base URL printed for users (curl examples)."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


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
            if key not in _FIELDS:
                problems.append(f"{path}: unknown setting {key!r}")
                continue
            values[key] = _convert(key, raw, _FIELDS[key].type, problems, str(path))
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")
    for name, spec in _FIELDS.items():
        if name == "connectors":
            continue
        variable = f"PIGEON_{name.upper()}"
        if variable in env:
            values[name] = _convert(name, env[variable], spec.type, problems, variable)
    settings = Settings(**{k: v for k, v in values.items() if v is not None})
    problems.extend(_validate(settings))
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
    for name in ("http_port", "smpp_port"):
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
    if settings.log_format not in ("console", "json"):
        problems.append("log_format must be 'console' or 'json'")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
    return problems
