"""Tenants and their API keys."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime


class KeyMode(enum.StrEnum):
    """A live key reaches real carriers; a test key only ever reaches the simulator."""

    LIVE = "live"
    TEST = "test"


class Role(enum.StrEnum):
    """What a key may do: a tenant's own traffic, or operating the whole gateway."""

    TENANT = "tenant"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A customer of the gateway; every message and key belongs to exactly one."""

    id: str
    name: str
    default_region: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: only the SHA-256 digest of the secret is kept."""

    id: str
    tenant_id: str
    mode: KeyMode
    role: Role
    digest: str
    prefix: str
    created_at: datetime
    revoked: bool = False


KEY_PREFIXES = {KeyMode.LIVE: "pk_live_", KeyMode.TEST: "pk_test_"}


def new_key_secret(mode: KeyMode) -> str:
    """A fresh random API key secret such as ``pk_live_<43 url-safe chars>``."""
    return KEY_PREFIXES[mode] + secrets.token_urlsafe(32)


def key_digest(secret: str) -> str:
    """The SHA-256 hex digest that stands for a key in the store."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_mode_of(secret: str) -> KeyMode | None:
    """The mode a key's prefix announces, or ``None`` when it is not one of ours."""
    for mode, prefix in KEY_PREFIXES.items():
        if secret.startswith(prefix):
            return mode
    return None
