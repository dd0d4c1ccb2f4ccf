"""Authenticate: from a bearer API key to the calling tenant."""

from __future__ import annotations

import asyncio
import time

from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant, key_digest, key_mode_of
from pigeon.domain.errors import Forbidden, Unauthorized
from pigeon.domain.value_objects import value_object
from pigeon.ports import AccountStore


@value_object
class Caller:
    """Who is calling: the tenant and the key used (its mode decides live vs test)."""

    tenant: Tenant
    key: ApiKey

    @property
    def is_test(self) -> bool:
        """Test keys never reach a real carrier."""
        return self.key.mode is KeyMode.TEST

    def require_operator(self) -> None:
        """Raise ``Forbidden`` unless the key is an operator key."""
        if self.key.role is not Role.OPERATOR:
            raise Forbidden("This needs an operator key.")


#: ``Authorization`` values kept by ``Authenticate.cached`` at most (emptied when full).
_HEADERS_KEPT = 10_000


class Authenticate:
    """Looks keys up by their SHA-256 digest, with a short cache to spare the store.

    When a key's entry expires, the requests that find it expired share ONE lookup: at
    1,000 requests/s on PostgreSQL every request doing its own two reads at once took every
    pooled connection, the writer's included, and stalled accepts for up to a second every
    ``cache_seconds``.
    """

    def __init__(self, accounts: AccountStore, cache_seconds: float = 10.0) -> None:
        self._accounts = accounts
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Caller]] = {}
        #: The same entries by the ``Authorization`` value that found them fresh: a lookup
        #: of the value spares ``cached`` the parsing and the SHA-256 of every request (about
        #: 3 us of a REST accept's CPU, session 47). An entry expires with its digest's (the
        #: same time); only values whose key was valid are kept, at most ``_HEADERS_KEPT``.
        self._by_header: dict[str, tuple[float, Caller]] = {}
        self._lookups: dict[str, asyncio.Future[Caller]] = {}

    async def __call__(self, authorization: str | None) -> Caller:
        """The caller behind an ``Authorization: Bearer <key>`` header value."""
        if not authorization:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
        if key_mode_of(secret) is None:
            raise Unauthorized("That is not a Pigeon API key.")
        digest = key_digest(secret)
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(digest))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda done: self._settled(digest, done))
        # Shielded: a caller that gives up (its client went away) does not cancel the others'.
        return await asyncio.shield(lookup)

    def cached(self, authorization: str | None) -> Caller | None:
        """The caller behind ``authorization`` if the cache holds it fresh, without a read;
        ``None`` otherwise (then call this object, which decides and explains)."""
        if not authorization:
            return None
        now = time.monotonic()
        cached = self._by_header.get(authorization)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or key_mode_of(secret) is None:
            return None
        cached = self._cache.get(key_digest(secret))
        if cached is not None and now - cached[0] < self._cache_seconds:
            if len(self._by_header) >= _HEADERS_KEPT:
                self._by_header.clear()
            self._by_header[authorization] = cached
            return cached[1]
        return None

    def _settled(self, digest: str, lookup: asyncio.Future[Caller]) -> None:
        if self._lookups.get(digest) is lookup:
            del self._lookups[digest]
        if not lookup.cancelled():
            lookup.exception()  # retrieved here: every waiter may have gone

    async def _lookup(self, digest: str) -> Caller:
        started = time.monotonic()
        key = await self._accounts.find_api_key(digest)
        if key is None or key.revoked:
            raise Unauthorized("The API key is not valid.")
        tenant = await self._accounts.get_tenant(key.tenant_id)
        if tenant is None:
            raise Unauthorized("The API key is not valid.")
        caller = Caller(tenant=tenant, key=key)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (started, caller)
        return caller
