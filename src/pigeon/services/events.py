"""Turning status changes into stored events, webhook jobs for subscribed endpoints, and the
``smpp_deliver`` jobs that carry receipts and replies to SMPP customers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from pigeon.domain.messages import Direction, Message, StatusChange
from pigeon.ports import Clock, EventRecord, IdFactory, NewJob, WebhookEndpoint, WebhookStore
from pigeon.services.notify import smpp_receipt_job, smpp_reply_job, webhook_jobs
from pigeon.services.representation import (
    WEBHOOK_STATUSES,
    event_payload,
    event_type,
    message_to_dict,
    webhook_body_of,
)
from pigeon.telemetry import MESSAGE_STATUS

NOTIFY_PRIORITY = 25

#: How many TTLs a cached answer still counts while it is being looked up again.
STALE_TTLS = 12

log = logging.getLogger(__name__)


@lru_cache(maxsize=4096)
def _status_counter(status: str, category: str, connector_id: str) -> Any:
    """``MESSAGE_STATUS``'s child for these labels: finding it costs more than counting."""
    return MESSAGE_STATUS.labels(status, category, connector_id)


def _log_failed_refresh(lookup: asyncio.Future[tuple[WebhookEndpoint, ...]]) -> None:
    if not lookup.cancelled() and lookup.exception() is not None:
        log.warning("refreshing webhook endpoints failed: %s", lookup.exception())


class EndpointDirectory:
    """Each tenant's enabled webhook endpoints, cached briefly: hot paths skip a query, events
    nobody subscribed to cost no job, and deliveries find their endpoint's secret in memory.

    Changes made through this process are seen at once (``forget``); changes made by another
    node are seen within ``ttl_seconds`` (plus one lookup, for the hot paths that keep using a
    stale answer while it is looked up again).
    """

    def __init__(
        self,
        webhooks: WebhookStore,
        ttl_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._webhooks = webhooks
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, tuple[WebhookEndpoint, ...]]] = {}
        self._lookups: dict[str, asyncio.Future[tuple[WebhookEndpoint, ...]]] = {}
        self._generations: dict[str, int] = {}

    async def has_endpoints(self, tenant_id: str) -> bool:
        """Whether the tenant has at least one enabled endpoint.

        Concurrent callers share one lookup, so a burst of messages costs one query.
        """
        return bool(await self._endpoints(tenant_id))

    def cached(self, tenant_id: str, *, fresh: bool = False) -> tuple[WebhookEndpoint, ...] | None:
        """The tenant's enabled endpoints as ``has_endpoints`` last loaded them (``None`` when
        nothing is cached: the caller must not conclude that nobody listens). With ``fresh``,
        only an answer loaded within the TTL counts.

        Synchronous, so it never refreshes: the senders' ``has_endpoints`` calls keep it warm.
        """
        cached = self._cache.get(tenant_id)
        if cached is None:
            return None
        if fresh:
            age = self._monotonic() - cached[0]
            if age >= self._ttl * STALE_TTLS:
                return None
            if age >= self._ttl:
                # Stale while revalidating: a lookup starts in the background and the answer
                # counts for a while longer, so a receipt that comes seconds after its send
                # does not cost a notify job; past ``STALE_TTLS`` it no longer counts.
                self._refresh(tenant_id)
        return cached[1]

    def listening(self, tenant_id: str) -> bool:
        """Whether the tenant has an enabled endpoint, from the cache; ``True`` when nothing
        fresh is cached (a notify job then reads the endpoints when it runs)."""
        endpoints = self.cached(tenant_id, fresh=True)
        return True if endpoints is None else bool(endpoints)

    def subscribed(self, tenant_id: str, event_type: str) -> bool:
        """Whether some endpoint of the tenant wants ``event_type``, from the cache that
        ``has_endpoints`` just filled; ``True`` when nothing is cached (never drop an event)."""
        endpoints = self.cached(tenant_id)
        if endpoints is None:
            return True
        return _wanted(endpoints, event_type)

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        """The enabled endpoint ``endpoint_id`` of the tenant (from the cache when fresh), or
        ``None`` when it was deleted or disabled."""
        for endpoint in await self._endpoints(tenant_id):
            if endpoint.id == endpoint_id:
                return endpoint
        # Not among the cached ones: perhaps made since; ask the store.
        found = await self._webhooks.get_endpoint(endpoint_id)
        if found is None or found.tenant_id != tenant_id or found.disabled_at is not None:
            return None
        return found

    def fresh(self, tenant_id: str) -> tuple[WebhookEndpoint, ...] | None:
        """The tenant's enabled endpoints if loaded within the TTL (what ``has_endpoints``
        answers without a read), else ``None``."""
        cached = self._cache.get(tenant_id)
        if cached is None or self._monotonic() - cached[0] >= self._ttl:
            return None
        return cached[1]

    def cached_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        """The enabled endpoint ``endpoint_id`` of the tenant from a fresh cache, without a
        read; ``None`` when it is not there (``endpoint`` then looks further)."""
        for endpoint in self.fresh(tenant_id) or ():
            if endpoint.id == endpoint_id:
                return endpoint
        return None

    async def _endpoints(self, tenant_id: str) -> tuple[WebhookEndpoint, ...]:
        cached = self._cache.get(tenant_id)
        if cached is not None and self._monotonic() - cached[0] < self._ttl:
            return cached[1]
        return await asyncio.shield(self._lookup_once(tenant_id))

    def _lookup_once(self, tenant_id: str) -> asyncio.Future[tuple[WebhookEndpoint, ...]]:
        """The lookup in flight for the tenant, started if there is none (callers share it)."""
        lookup = self._lookups.get(tenant_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(tenant_id))
            self._lookups[tenant_id] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(tenant_id, None))
        return lookup

    def _refresh(self, tenant_id: str) -> None:
        """Start a lookup in the background (when a loop runs and none is in flight)."""
        if tenant_id in self._lookups:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        lookup = self._lookup_once(tenant_id)
        # Nobody awaits it: a failure is logged here, and the next caller tries again.
        lookup.add_done_callback(_log_failed_refresh)

    async def _lookup(self, tenant_id: str) -> tuple[WebhookEndpoint, ...]:
        started = self._monotonic()
        generation = self._generations.get(tenant_id, 0)
        found = tuple(
            e for e in await self._webhooks.list_endpoints(tenant_id) if e.disabled_at is None
        )
        if self._generations.get(tenant_id, 0) == generation:
            self._cache[tenant_id] = (started, found)
        return found

    def forget(self, tenant_id: str) -> None:
        """Drop the cached answer after this process changed the tenant's endpoints."""
        self._cache.pop(tenant_id, None)
        self._lookups.pop(tenant_id, None)
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1


def _wanted(endpoints: Iterable[WebhookEndpoint], event_type: str) -> bool:
    """Whether one of ``endpoints`` subscribes to ``event_type``."""
    # A loop, not ``any()`` over a generator: a generator left at its first match is closed
    # by raising ``GeneratorExit`` in it, about half a microsecond per event (session 46).
    for endpoint in endpoints:  # noqa: SIM110  # the loop is the point (above)
        if endpoint.wants(event_type):
            return True
    return False


def _with_payload(event: EventRecord, payload: dict[str, Any]) -> EventRecord:
    """``event`` with ``payload``: made directly, where ``dataclasses.replace`` costs several
    times a construction (once per notified change)."""
    return EventRecord(
        event.id,
        event.tenant_id,
        event.message_id,
        event.type,
        event.status,
        event.sequence,
        event.at,
        event.detail,
        payload,
    )


class EventRecorder:
    """Makes the event rows, webhook deliveries and SMPP deliveries that go with status changes.

    All of them are returned to the caller, which writes them in the same transaction as the
    change (so a receipt owed to an SMPP customer exists exactly when the status does).
    """

    def __init__(self, ids: IdFactory, clock: Clock, endpoints: EndpointDirectory) -> None:
        self._ids = ids
        self._clock = clock
        self._endpoints = endpoints

    async def wants_notifications(self, message: Message) -> bool:
        """Whether events of ``message`` go anywhere (a callback URL or an endpoint)."""
        # Asked even with a callback URL: it fills the cache ``record`` reads the endpoints from.
        listening = await self._endpoints.has_endpoints(message.tenant_id)
        return listening or bool(message.callback_url)

    def cached_notifications(self, message: Message) -> bool | None:
        """``wants_notifications`` answered from a fresh cache, without a read; ``None`` when
        the tenant's endpoints are not cached fresh (then ask ``wants_notifications``)."""
        endpoints = self._endpoints.fresh(message.tenant_id)
        if endpoints is None:
            return None
        return bool(endpoints) or bool(message.callback_url)

    async def endpoints_listening(self, tenant_id: str) -> bool:
        """Whether the tenant has an enabled webhook endpoint: ``wants_notifications`` for
        every message of the tenant without a callback URL (a batch asks once per tenant)."""
        return await self._endpoints.has_endpoints(tenant_id)

    def record(
        self,
        message: Message,
        changes: Iterable[StatusChange | None],
        *,
        notify: bool | None = None,
    ) -> tuple[list[EventRecord], list[NewJob]]:
        """Events for ``changes`` (``None`` entries skipped), their webhook jobs if ``notify``
        (a ``notify`` job instead when the tenant's endpoints are not cached), and the SMPP
        receipts and replies the changes owe."""
        # A caller that says ``notify`` just asked ``wants_notifications``: the cache is as
        # fresh as it gets. Otherwise it is decided here from a fresh cache entry (none counts
        # as listening: the notify job fallback reads the endpoints), with no read beforehand.
        fresh = notify is None
        tenant_id = message.tenant_id
        callback_url = message.callback_url
        if notify is None:
            notify = bool(callback_url) or self._endpoints.listening(tenant_id)
        events: list[EventRecord] = []
        jobs: list[NewJob] = []
        # What every change of the call shares, worked out once.
        message_id = message.id
        new_id = self._ids.new
        category = str(message.category)
        connector_label = message.connector_id or "-"
        # Only a message submitted over SMPP owes its customer receipts, and only a reply
        # (``smpp_reply_job``) is handed to SMPP sessions.
        owes_smpp = message.origin is not None or message.direction is Direction.MO
        as_dict: dict[str, Any] | None = None
        endpoints: tuple[WebhookEndpoint, ...] | None = None
        looked_up = False
        for change in changes:
            if change is None:
                continue
            status = change.status
            kind = event_type(status)
            event = EventRecord(
                new_id("evt"),
                tenant_id,
                message_id,
                kind,
                status,
                change.sequence,
                change.at,
                change.detail,
                {},
            )
            _status_counter(str(status), category, connector_label).inc()
            if notify and status in WEBHOOK_STATUSES:
                # The webhook data (the message as it is now) is made only for an event that
                # goes somewhere (ADR 32): the stored event keeps it only when a notify job
                # will read it back; planned deliveries carry it in their bodies.
                if not looked_up:
                    endpoints = self._endpoints.cached(tenant_id, fresh=fresh)
                    looked_up = True
                if endpoints is not None and (callback_url or _wanted(endpoints, kind)):
                    # The deliveries themselves, written with the change (one job stage
                    # less); the stored event keeps no payload. Their body is made
                    # straight from the message and the change, without the dicts.
                    body = webhook_body_of(event.id, kind, message, change)
                    jobs.extend(webhook_jobs(event, endpoints, callback_url, body=body))
                elif endpoints is None:  # nothing cached: a notify job reads them when it runs
                    if as_dict is None:  # what every change's data starts from
                        as_dict = message_to_dict(message)
                    payload = event_payload(message, change, as_dict)
                    event = _with_payload(event, payload)
                    jobs.append(
                        NewJob(
                            id=f"notify:{event.id}",
                            kind="notify",
                            payload={"event_id": event.id},
                            run_at=change.at,
                            priority=NOTIFY_PRIORITY,
                        )
                    )
            events.append(event)
            if owes_smpp:
                smpp = smpp_receipt_job(message, change) or smpp_reply_job(message, change)
                if smpp is not None:
                    jobs.append(smpp)
        return events, jobs
