"""Tenants, their API keys and their SMPP accounts."""

from __future__ import annotations

import enum
import hashlib
import re
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


@dataclass(frozen=True, slots=True)
class SmppAccount:
    """A tenant's credentials for binding to our SMPP server.

    ``system_id`` is unique across the gateway (SMPP gives it 15 characters); only an argon2
    hash of the password is kept, made and checked outside the domain. ``max_binds`` bounds
    the sessions open at once, ``throughput_per_second`` the submits per second over all of
    them (``None``: unlimited). A ``test`` account's messages only ever reach the simulator,
    like a test API key's.
    """

    id: str
    tenant_id: str
    system_id: str
    password_hash: str
    created_at: datetime
    max_binds: int = 4
    throughput_per_second: int | None = 200
    mode: KeyMode = KeyMode.LIVE

    @property
    def origin(self) -> str:
        """How messages submitted through this account name their origin."""
        return f"{SMPP_ORIGIN}{self.id}"


#: ``Message.origin`` of a message submitted over SMPP starts with this, then the account id.
SMPP_ORIGIN = "smpp:"

#: SMPP 3.4 sizes, NUL excluded: system_id is a C-Octet string of 16, password of 9.
SYSTEM_ID_MAX = 15
SMPP_PASSWORD_MAX = 8

_SYSTEM_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_UNAMBIGUOUS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def valid_system_id(system_id: str) -> bool:
    """Whether ``system_id`` is 1-15 letters, digits, ``_``, ``.`` or ``-``."""
    return bool(_SYSTEM_ID.match(system_id))


def valid_smpp_password(password: str) -> bool:
    """Whether ``password`` fits SMPP 3.4 (1-8 printable ASCII characters)."""
    return 1 <= len(password) <= SMPP_PASSWORD_MAX and password.isascii() and password.isprintable()


def new_smpp_password() -> str:
    """A fresh random 8-character SMPP password (the most SMPP 3.4 carries).

    8 characters of a 56-symbol alphabet (no look-alikes) are ~46 bits: weak for an offline
    attack on a plain digest, which is why the stored form is an argon2 hash.
    """
    return "".join(secrets.choice(_UNAMBIGUOUS) for _ in range(SMPP_PASSWORD_MAX))


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
