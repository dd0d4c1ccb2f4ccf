"""Turning status changes into stored events, notify jobs for subscribed tenants, and the
``smpp_deliver`` jobs that carry receipts and replies to SMPP customers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from pigeon.domain.messages import Message, StatusChange
from pigeon.ports import Clock, EventRecord, IdFactory, NewJob, WebhookStore
from pigeon.services.notify import smpp_receipt_job, smpp_reply_job
from pigeon.services.representation import WEBHOOK_STATUSES, event_payload, event_type
from pigeon.telemetry import MESSAGE_STATUS

NOTIFY_PRIORITY = 25


#: A tenant's webhook subscriptions: every event type (an endpoint with no filter), or these.
Subscriptions = tuple[bool, frozenset[str]]


class EndpointDirectory:
    """Which tenants have webhook endpoints and for which event types, cached briefly so hot
    paths skip a query and events nobody subscribed to cost no notify job.

    Changes made through this process are seen at once (``forget``); changes made by another
    node are seen within ``ttl_seconds``.
    """

    def __init__(self, webhooks: WebhookStore, ttl_seconds: float = 5.0) -> None:
        self._webhooks = webhooks
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Subscriptions]] = {}
        self._lookups: dict[str, asyncio.Future[Subscriptions]] = {}
        self._generations: dict[str, int] = {}

    async def has_endpoints(self, tenant_id: str) -> bool:
        """Whether the tenant has at least one enabled endpoint.

        Concurrent callers share one lookup, so a burst of messages costs one query.
        """
        every, types = await self._subscriptions(tenant_id)
        return every or bool(types)

    def subscribed(self, tenant_id: str, event_type: str) -> bool:
        """Whether some endpoint of the tenant wants ``event_type``, from the cache that
        ``has_endpoints`` just filled; ``True`` when nothing is cached (never drop an event)."""
        cached = self._cache.get(tenant_id)
        if cached is None:
            return True
        every, types = cached[1]
        return every or event_type in types

    async def _subscriptions(self, tenant_id: str) -> Subscriptions:
        cached = self._cache.get(tenant_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        lookup = self._lookups.get(tenant_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(tenant_id))
            self._lookups[tenant_id] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(tenant_id, None))
        return await asyncio.shield(lookup)

    async def _lookup(self, tenant_id: str) -> Subscriptions:
        started = time.monotonic()
        generation = self._generations.get(tenant_id, 0)
        endpoints = [
            e for e in await self._webhooks.list_endpoints(tenant_id) if e.disabled_at is None
        ]
        found: Subscriptions = (
            any(not endpoint.events for endpoint in endpoints),
            frozenset(name for endpoint in endpoints for name in endpoint.events),
        )
        if self._generations.get(tenant_id, 0) == generation:
            self._cache[tenant_id] = (started, found)
        return found

    def forget(self, tenant_id: str) -> None:
        """Drop the cached answer after this process changed the tenant's endpoints."""
        self._cache.pop(tenant_id, None)
        self._lookups.pop(tenant_id, None)
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1


class EventRecorder:
    """Makes the event rows, notify jobs and SMPP deliveries that go with status changes.

    All of them are returned to the caller, which writes them in the same transaction as the
    change (so a receipt owed to an SMPP customer exists exactly when the status does).
    """

    def __init__(self, ids: IdFactory, clock: Clock, endpoints: EndpointDirectory) -> None:
        self._ids = ids
        self._clock = clock
        self._endpoints = endpoints

    async def wants_notifications(self, message: Message) -> bool:
        """Whether events of ``message`` go anywhere (a callback URL or an endpoint)."""
        if message.callback_url:
            return True
        return await self._endpoints.has_endpoints(message.tenant_id)

    def record(
        self, message: Message, changes: Iterable[StatusChange | None], *, notify: bool
    ) -> tuple[list[EventRecord], list[NewJob]]:
        """Events for ``changes`` (``None`` entries skipped), notify jobs if ``notify``, and the
        SMPP receipts and replies the changes owe."""
        events: list[EventRecord] = []
        jobs: list[NewJob] = []
        for change in changes:
            if change is None:
                continue
            event = EventRecord(
                id=self._ids.new("evt"),
                tenant_id=message.tenant_id,
                message_id=message.id,
                type=event_type(change.status),
                status=change.status,
                sequence=change.sequence,
                at=change.at,
                detail=change.detail,
                payload=event_payload(message, change),
            )
            events.append(event)
            MESSAGE_STATUS.labels(
                change.status.value, message.category.value, message.connector_id or "-"
            ).inc()
            if (
                notify
                and change.status in WEBHOOK_STATUSES
                and (
                    message.callback_url
                    or self._endpoints.subscribed(message.tenant_id, event.type)
                )
            ):
                jobs.append(
                    NewJob(
                        id=f"notify:{event.id}",
                        kind="notify",
                        payload={"event_id": event.id},
                        run_at=change.at,
                        priority=NOTIFY_PRIORITY,
                    )
                )
            smpp = smpp_receipt_job(message, change) or smpp_reply_job(message, change)
            if smpp is not None:
                jobs.append(smpp)
        return events, jobs
