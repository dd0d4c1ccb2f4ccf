"""SMPP accounts: creation rules, password hashing and bind authentication with its cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher

from pigeon.domain.accounts import KeyMode, SmppAccount, Tenant
from pigeon.domain.errors import Unauthorized, ValidationError
from pigeon.services.smpp_accounts import (
    UNKNOWN_SYSTEM_ID,
    WRONG_PASSWORD,
    AuthenticateBind,
    ManageSmppAccounts,
    Passwords,
)
from pigeon.testing import FakeClock, SequentialIds

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TENANT = Tenant("ten_1", "acme", None, NOW)


class Accounts:
    """Just enough of ``ports.AccountStore`` for these use cases, counting lookups."""

    def __init__(self) -> None:
        self.accounts: dict[str, SmppAccount] = {}
        self.lookups = 0

    async def create_smpp_account(self, account: SmppAccount) -> None:
        self.accounts[account.system_id] = account

    async def find_smpp_account(self, system_id: str) -> SmppAccount | None:
        self.lookups += 1
        return self.accounts.get(system_id)

    async def list_smpp_accounts(self, tenant_id: str) -> list[SmppAccount]:
        return [a for a in self.accounts.values() if a.tenant_id == tenant_id]

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return TENANT if tenant_id == TENANT.id else None


def cheap() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def manage(store: Accounts) -> ManageSmppAccounts:
    return ManageSmppAccounts(store, SequentialIds(), FakeClock(NOW), cheap())  # type: ignore[arg-type]


async def test_only_an_argon2_hash_of_the_password_is_kept() -> None:
    """A created account stores an argon2id hash that verifies the password it was given."""
    store = Accounts()
    created = await manage(store).create(TENANT.id, system_id="acme", password="s3cret")

    stored = store.accounts["acme"]
    assert created.password == "s3cret"
    assert stored.password_hash.startswith("$argon2id$")
    assert "s3cret" not in stored.password_hash
    assert cheap().verify(stored.password_hash, "s3cret")
    assert not cheap().verify(stored.password_hash, "S3cret")


async def test_defaults_are_generated_and_fit_smpp() -> None:
    """Without a system_id or password both are generated; limits default to 4 binds, 200/s."""
    created = await manage(Accounts()).create(TENANT.id, mode=KeyMode.TEST)

    account = created.account
    assert 1 <= len(account.system_id) <= 15
    assert len(created.password) == 8
    assert (account.max_binds, account.throughput_per_second, account.mode) == (
        4,
        200,
        KeyMode.TEST,
    )
    assert account.origin == f"smpp:{account.id}"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"system_id": "much-too-long-system-id"}, "invalid_system_id"),
        ({"system_id": "has space"}, "invalid_system_id"),
        ({"password": "ninechars"}, "invalid_password"),
        ({"password": ""}, "invalid_password"),
        ({"max_binds": 0}, "invalid_limits"),
        ({"throughput_per_second": 0}, "invalid_limits"),
    ],
)
async def test_bad_accounts_are_refused(options: dict[str, Any], code: str) -> None:
    """system_ids over 15 characters, passwords over 8 and non-positive limits are refused."""
    with pytest.raises(ValidationError) as raised:
        await manage(Accounts()).create(TENANT.id, **options)
    assert raised.value.code == code


async def test_binds_are_checked_and_successes_cached() -> None:
    """Right password: the tenant, then cached; wrong password or system_id: their codes."""
    store = Accounts()
    await manage(store).create(TENANT.id, system_id="acme", password="s3cret", mode=KeyMode.TEST)
    authenticate = AuthenticateBind(store, cheap())  # type: ignore[arg-type]

    login = await authenticate("acme", "s3cret")
    again = await authenticate("acme", "s3cret")
    lookups = store.lookups
    with pytest.raises(Unauthorized) as wrong:
        await authenticate("acme", "wrong")
    with pytest.raises(Unauthorized) as unknown:
        await authenticate("nobody", "s3cret")

    assert again is login
    assert lookups == 1
    assert login.caller.tenant == TENANT
    assert login.caller.is_test
    assert (wrong.value.code, unknown.value.code) == (WRONG_PASSWORD, UNKNOWN_SYSTEM_ID)
