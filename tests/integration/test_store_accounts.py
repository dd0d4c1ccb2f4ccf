"""SqlAccountStore on real SQLite and PostgreSQL: tenants and API keys."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant, key_digest, new_key_secret
from pigeon.domain.errors import ValidationError

if TYPE_CHECKING:
    from conftest import Factory, Stores


def _key(stores: Stores, tenant: Tenant, secret: str, **changes: Any) -> ApiKey:
    key = ApiKey(
        id=f"key_{secret[-12:]}",
        tenant_id=tenant.id,
        mode=KeyMode.TEST,
        role=Role.TENANT,
        digest=key_digest(secret),
        prefix=secret[:12],
        created_at=stores.clock.now(),
    )
    return dataclasses.replace(key, **changes)


async def test_tenants_are_stored_found_and_listed(stores: Stores, factory: Factory) -> None:
    """A tenant reads back by id and by name, and lists in creation order."""
    acme = await factory.tenant("acme")
    globex = await factory.tenant("globex")

    assert await stores.accounts.get_tenant(acme.id) == acme
    assert await stores.accounts.find_tenant_by_name("globex") == globex
    assert await stores.accounts.find_tenant_by_name("initech") is None
    assert await stores.accounts.get_tenant("ten_missing") is None
    assert await stores.accounts.list_tenants() == [acme, globex]


async def test_tenant_names_are_unique(stores: Stores, factory: Factory) -> None:
    """A second tenant with a taken name is refused with a stable code."""
    await factory.tenant("acme")

    with pytest.raises(ValidationError) as raised:
        await factory.tenant("acme")

    assert raised.value.code == "already_exists"


async def test_api_keys_are_found_by_digest_unless_revoked(
    stores: Stores, factory: Factory
) -> None:
    """A key is found by its secret's digest; a revoked key is not."""
    tenant = await factory.tenant()
    live, revoked = new_key_secret(KeyMode.LIVE), new_key_secret(KeyMode.TEST)
    key = _key(stores, tenant, live, mode=KeyMode.LIVE, role=Role.OPERATOR)
    await stores.accounts.create_api_key(key)
    await stores.accounts.create_api_key(_key(stores, tenant, revoked, revoked=True))

    assert await stores.accounts.find_api_key(key_digest(live)) == key
    assert await stores.accounts.find_api_key(key_digest(revoked)) is None
    assert await stores.accounts.find_api_key(key_digest("pk_live_unknown")) is None


async def test_api_keys_need_a_known_tenant_and_a_fresh_secret(
    stores: Stores, factory: Factory
) -> None:
    """A key for an unknown tenant or with a digest already stored is refused."""
    tenant = await factory.tenant()
    secret = new_key_secret(KeyMode.LIVE)
    await stores.accounts.create_api_key(_key(stores, tenant, secret))
    ghost = Tenant("ten_ghost", "ghost", None, stores.clock.now())

    with pytest.raises(ValidationError) as unknown:
        await stores.accounts.create_api_key(_key(stores, ghost, new_key_secret(KeyMode.LIVE)))
    with pytest.raises(ValidationError) as duplicate:
        await stores.accounts.create_api_key(_key(stores, tenant, secret, id="key_other"))

    assert unknown.value.code == "unknown_tenant"
    assert duplicate.value.code == "already_exists"
