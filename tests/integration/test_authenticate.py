"""``Authenticate`` on the real account store: concurrent requests whose cached key expired
share one lookup, and a refused key is refused to each of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant, key_digest
from pigeon.domain.errors import Unauthorized
from pigeon.ids import UlidFactory
from pigeon.services.authenticate import Authenticate
from pigeon.store import Database, SqlAccountStore

SECRET = "pk_live_authenticate_test_0123456789abcdef"


class CountingAccounts(SqlAccountStore):
    """The real store, counting the key lookups that reach it."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.key_lookups = 0

    async def find_api_key(self, digest: str) -> ApiKey | None:
        self.key_lookups += 1
        return await super().find_api_key(digest)


async def _tenant_with_key(accounts: SqlAccountStore, revoked: bool = False) -> Tenant:
    ids, now = UlidFactory(), datetime.now(UTC)
    tenant = Tenant(id=ids.new("ten"), name=ids.new("name"), default_region=None, created_at=now)
    await accounts.create_tenant(tenant)
    await accounts.create_api_key(
        ApiKey(
            id=ids.new("key"),
            tenant_id=tenant.id,
            mode=KeyMode.LIVE,
            role=Role.TENANT,
            digest=key_digest(SECRET),
            prefix=SECRET[:12],
            created_at=now,
            revoked=revoked,
        )
    )
    return tenant


async def test_requests_after_the_cache_expired_share_one_lookup(database: Database) -> None:
    """200 requests at once with an expired (here: no) cache entry read the key once, and all
    get the caller; later ones within the cache time read nothing."""
    accounts = CountingAccounts(database)
    tenant = await _tenant_with_key(accounts)
    authenticate = Authenticate(accounts, cache_seconds=60.0)

    callers = await asyncio.gather(*(authenticate(f"Bearer {SECRET}") for _ in range(200)))

    assert {caller.tenant.id for caller in callers} == {tenant.id}
    assert accounts.key_lookups == 1
    await authenticate(f"Bearer {SECRET}")
    assert accounts.key_lookups == 1


async def test_an_expired_entry_is_looked_up_again(database: Database) -> None:
    """With no cache time, each round of requests reads the key again (once per round)."""
    accounts = CountingAccounts(database)
    await _tenant_with_key(accounts)
    authenticate = Authenticate(accounts, cache_seconds=0.0)

    for round_ in range(1, 4):
        await asyncio.gather(*(authenticate(f"Bearer {SECRET}") for _ in range(20)))
        assert accounts.key_lookups == round_


async def test_a_revoked_key_is_refused_to_every_waiting_request(database: Database) -> None:
    """A shared lookup that finds the key revoked refuses each request, and the next request
    looks again (refusals are not cached)."""
    accounts = CountingAccounts(database)
    await _tenant_with_key(accounts, revoked=True)
    authenticate = Authenticate(accounts)

    results = await asyncio.gather(
        *(authenticate(f"Bearer {SECRET}") for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(result, Unauthorized) for result in results)
    assert accounts.key_lookups == 1
    with pytest.raises(Unauthorized):
        await authenticate(f"Bearer {SECRET}")
    assert accounts.key_lookups == 2


async def test_a_caller_that_gives_up_does_not_cancel_the_others(database: Database) -> None:
    """One waiting request cancelled (its client went away) leaves the shared lookup to the
    rest."""
    accounts = CountingAccounts(database)
    tenant = await _tenant_with_key(accounts)
    authenticate = Authenticate(accounts)

    first = asyncio.ensure_future(authenticate(f"Bearer {SECRET}"))
    others = [asyncio.ensure_future(authenticate(f"Bearer {SECRET}")) for _ in range(5)]
    await asyncio.sleep(0)
    first.cancel()

    callers = await asyncio.gather(*others)
    assert {caller.tenant.id for caller in callers} == {tenant.id}
    assert accounts.key_lookups == 1


async def test_cached_answers_by_the_header_only_while_the_key_is_fresh(database: Database) -> None:
    """``cached`` finds a key the cache holds (however the header spells the scheme), keeps
    answering that header without a read, and stops once the entry expires."""
    accounts = CountingAccounts(database)
    tenant = await _tenant_with_key(accounts)
    authenticate = Authenticate(accounts, cache_seconds=0.5)

    assert authenticate.cached(f"Bearer {SECRET}") is None  # nothing looked up yet
    await authenticate(f"Bearer {SECRET}")
    for header in (f"Bearer {SECRET}", f"bearer  {SECRET} ", f"Bearer {SECRET}"):
        caller = authenticate.cached(header)
        assert caller is not None
        assert caller.tenant.id == tenant.id
    assert authenticate.cached(f"Bearer {SECRET}x") is None
    assert authenticate.cached("Basic abc") is None
    await asyncio.sleep(0.6)
    assert authenticate.cached(f"Bearer {SECRET}") is None
    assert authenticate.cached(f"bearer  {SECRET} ") is None
    assert accounts.key_lookups == 1
