"""SMPP accounts: creating them, and authenticating the binds made with them.

Passwords are hashed with argon2 (``argon2-cffi``): SMPP 3.4 caps them at 8 characters, so
only a slow hash makes a stolen table expensive to crack. Checking one costs ~50 ms of CPU,
so :class:`AuthenticateBind` runs it in a worker thread (a few at a time, so a flood of binds
cannot take every core) and remembers successful (system_id, password digest) pairs briefly:
a customer that reconnects its 4 binds at once pays for one check.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pigeon.domain.accounts import (
    ApiKey,
    KeyMode,
    Role,
    SmppAccount,
    new_smpp_password,
    valid_smpp_password,
    valid_system_id,
)
from pigeon.domain.errors import Unauthorized, ValidationError
from pigeon.ports import AccountStore, Clock, IdFactory
from pigeon.services.authenticate import Caller

#: ``Unauthorized.code`` of a bind with a system_id nobody has.
UNKNOWN_SYSTEM_ID = "unknown_system_id"
#: ``Unauthorized.code`` of a bind with a wrong password.
WRONG_PASSWORD = "wrong_password"  # noqa: S105 - an error code, not a password


@dataclass(frozen=True, slots=True)
class SmppLogin:
    """A successful bind: the account, and the caller its submits are accepted as."""

    account: SmppAccount
    caller: Caller


@dataclass(frozen=True, slots=True)
class CreatedSmppAccount:
    """An account just made; ``password`` is shown once and never stored."""

    account: SmppAccount
    password: str


class Passwords:
    """argon2id hashing with argon2-cffi's defaults (RFC 9106 low-memory profile)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    def hash(self, password: str) -> str:
        """The PHC string to store for ``password``."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (slow on purpose)."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class ManageSmppAccounts:
    """Creates and lists a tenant's SMPP accounts."""

    def __init__(
        self, accounts: AccountStore, ids: IdFactory, clock: Clock, passwords: Passwords
    ) -> None:
        self._accounts = accounts
        self._ids = ids
        self._clock = clock
        self._passwords = passwords

    async def create(
        self,
        tenant_id: str,
        *,
        system_id: str | None = None,
        password: str | None = None,
        max_binds: int = 4,
        throughput_per_second: int | None = 200,
        mode: KeyMode = KeyMode.LIVE,
    ) -> CreatedSmppAccount:
        """A new account; a random system_id and password unless given.

        Raises ``ValidationError``: ``invalid_system_id``, ``invalid_password``,
        ``invalid_limits``, or from the store ``already_exists`` / ``unknown_tenant``.
        """
        account_id = self._ids.new("sma")
        chosen = system_id if system_id is not None else "c" + account_id[-14:].lower()
        if not valid_system_id(chosen):
            raise ValidationError(
                "system_id must be 1-15 letters, digits, '_', '.' or '-'.",
                code="invalid_system_id",
                field="system_id",
            )
        secret = password if password is not None else new_smpp_password()
        if not valid_smpp_password(secret):
            raise ValidationError(
                "An SMPP password is 1-8 printable ASCII characters (SMPP 3.4).",
                code="invalid_password",
                field="password",
            )
        if max_binds < 1 or (throughput_per_second is not None and throughput_per_second < 1):
            raise ValidationError(
                "max_binds and throughput_per_second must be positive.",
                code="invalid_limits",
                field="max_binds",
            )
        hashed = await asyncio.to_thread(self._passwords.hash, secret)
        account = SmppAccount(
            id=account_id,
            tenant_id=tenant_id,
            system_id=chosen,
            password_hash=hashed,
            created_at=self._clock.now(),
            max_binds=max_binds,
            throughput_per_second=throughput_per_second,
            mode=mode,
        )
        await self._accounts.create_smpp_account(account)
        return CreatedSmppAccount(account, secret)

    async def list(self, tenant_id: str) -> list[SmppAccount]:
        """The tenant's accounts, oldest first."""
        return await self._accounts.list_smpp_accounts(tenant_id)


class AuthenticateBind:
    """Checks a bind's system_id and password; see the module docstring for the cost."""

    def __init__(
        self,
        accounts: AccountStore,
        passwords: Passwords,
        *,
        cache_seconds: float = 30.0,
        parallel_checks: int = 2,
    ) -> None:
        self._accounts = accounts
        self._passwords = passwords
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, SmppLogin]] = {}
        self._checks = asyncio.Semaphore(parallel_checks)

    async def __call__(self, system_id: str, password: str) -> SmppLogin:
        """The login behind a bind; ``Unauthorized`` with code ``unknown_system_id`` or
        ``wrong_password`` otherwise."""
        digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()
        key = (system_id, digest)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        account = await self._accounts.find_smpp_account(system_id)
        if account is None:
            raise Unauthorized(f"No SMPP account {system_id!r}.", code=UNKNOWN_SYSTEM_ID)
        async with self._checks:
            matches = await asyncio.to_thread(
                self._passwords.verify, account.password_hash, password
            )
        if not matches:
            raise Unauthorized("Wrong SMPP password.", code=WRONG_PASSWORD)
        tenant = await self._accounts.get_tenant(account.tenant_id)
        if tenant is None:
            raise Unauthorized(f"No SMPP account {system_id!r}.", code=UNKNOWN_SYSTEM_ID)
        login = SmppLogin(account, Caller(tenant=tenant, key=_credential(account)))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), login)
        return login


def _credential(account: SmppAccount) -> ApiKey:
    # Use cases take a Caller (tenant + credential); an SMPP bind acts like a tenant key of the
    # account's mode, named after the account so that logs point at it.
    return ApiKey(
        id=account.id,
        tenant_id=account.tenant_id,
        mode=account.mode,
        role=Role.TENANT,
        digest="",
        prefix=f"smpp:{account.system_id}",
        created_at=account.created_at,
    )
