"""Notify: tell customers what happened to their messages.

Webhooks: fan an event out to its webhook targets and deliver it, signed, with retries.
SMPP customers: a final status of a message submitted over SMPP with a receipt requested, and
a reply to the tenant, become an ``smpp_deliver`` job written with the status change itself
(the outbox); the SMPP server handles those jobs, so receipts wait durably while the customer
is unbound. Job ids are ``smpp_deliver:<account or tenant id>:<message id>:<suffix>``: a bind
wakes every job of its account and tenant by that prefix.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from pigeon.domain.accounts import SMPP_ORIGIN
from pigeon.domain.errors import TemporaryFailure
from pigeon.domain.messages import Direction, Message, MessageStatus, StatusChange
from pigeon.domain.receipts import receipt_error, receipt_for
from pigeon.ports import (
    Clock,
    EventRecord,
    IdFactory,
    Job,
    JobQueue,
    MessageStore,
    NewJob,
    SendStarting,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookSender,
    WebhookStore,
)
from pigeon.services.completions import Completions
from pigeon.services.representation import iso
from pigeon.services.worker import JobBatch
from pigeon.telemetry import WEBHOOK_ATTEMPTS, WEBHOOK_POSTPONED

log = logging.getLogger(__name__)

#: Signs a webhook: (secret, webhook id, unix timestamp, body) -> headers.
Signer = Callable[[str, str, int, bytes], Mapping[str, str]]

#: Waits between delivery attempts; together they span more than 24 hours.
WEBHOOK_DELAYS: tuple[int, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 28800)
MAX_WEBHOOK_ATTEMPTS = len(WEBHOOK_DELAYS) + 1
#: How long a batch's deliveries wait together for a receiver's connections, none of the
#: batch's own being busy, before each waits on its own (as ``send`` does, up to its timeout).
CONNECTION_WAIT = 5.0

#: The shortest wait of a delivery given back because its receiver holds its share of the
#: job slots (``ReceiverShares``); the longest it is spaced out to.
POSTPONE_MIN = 0.5
POSTPONE_MAX = 60.0
#: A receiver whose answers take this long on average (seconds) is held to its share.
SLOW_ANSWER = 0.25

#: ``WEBHOOK_ATTEMPTS``' children by outcome (``labels()`` costs more than the count).
_ATTEMPTS = {outcome: WEBHOOK_ATTEMPTS.labels(outcome) for outcome in ("ok", "disabled", "failed")}
_POSTPONED = WEBHOOK_POSTPONED.labels()
WEBHOOK_PRIORITY = 25
CALLBACK_TARGET = "callback"


#: The job kind the SMPP server handles: a deliver_sm (receipt or reply) for a customer.
SMPP_DELIVER = "smpp_deliver"
SMPP_DELIVER_PRIORITY = 25


def smpp_deliver_prefix(owner_id: str) -> str:
    """The id prefix of every ``smpp_deliver`` job for an SMPP account or a tenant."""
    return f"{SMPP_DELIVER}:{owner_id}:"


def smpp_account_of(message: Message) -> str | None:
    """The SMPP account a message was submitted through, if any."""
    origin = message.origin
    if origin is None or not origin.startswith(SMPP_ORIGIN):
        return None
    return origin[len(SMPP_ORIGIN) :] or None


def smpp_receipt_job(message: Message, change: StatusChange) -> NewJob | None:
    """The job that sends the SMPP customer its receipt for ``change``, if it asked for one.

    The payload holds everything the deliver_sm is built from, fixed now: a receipt sent again
    after a reconnect or a crash is the same receipt.
    """
    if message.origin is None:  # a REST message (most of them): no SMPP customer to tell
        return None
    account_id = smpp_account_of(message)
    stat = receipt_for(change.status)
    if account_id is None or stat is None or not message.receipt_request.wants(change.status):
        return None
    return NewJob(
        id=f"{smpp_deliver_prefix(account_id)}{message.id}:{change.sequence}",
        kind=SMPP_DELIVER,
        payload={
            "kind": "receipt",
            "account_id": account_id,
            "message_id": message.id,
            "parts": message.origin_parts,
            "recipient": message.to,
            "sender": message.sender,
            "submitted_at": iso(message.created_at),
            "done_at": iso(change.at),
            "stat": stat.value,
            "err": receipt_error(change.status, change.error_code or message.error_code),
            "text": message.body[:20],
            "created_at": iso(change.at),
        },
        run_at=change.at,
        priority=SMPP_DELIVER_PRIORITY,
    )


def smpp_reply_job(message: Message, change: StatusChange) -> NewJob | None:
    """The job that hands a reply (an inbound message) to the tenant's bound SMPP sessions.

    Made for every received message; the SMPP server drops it at once for a tenant without
    SMPP accounts.
    """
    if message.direction is not Direction.MO or change.status is not MessageStatus.RECEIVED:
        return None
    return NewJob(
        id=f"{smpp_deliver_prefix(message.tenant_id)}{message.id}:mo",
        kind=SMPP_DELIVER,
        payload={
            "kind": "mo",
            "tenant_id": message.tenant_id,
            "message_id": message.id,
            "source": message.sender,
            "destination": message.to,
            "body": message.body,
            "created_at": iso(change.at),
        },
        run_at=change.at,
        priority=SMPP_DELIVER_PRIORITY,
    )


def webhook_delay(attempt: int) -> timedelta:
    """The wait after the ``attempt``-th failed delivery (1-based)."""
    index = min(max(attempt, 1), len(WEBHOOK_DELAYS)) - 1
    return timedelta(seconds=WEBHOOK_DELAYS[index])


#: Compact UTF-8 JSON, ~10x faster than ``json.dumps`` for a webhook body.
_JSON = msgspec.json.Encoder()


def webhook_body(event: EventRecord, payload: dict[str, Any] | None = None) -> str:
    """The JSON a webhook carries for ``event`` (the same bytes on every attempt); its data
    is ``payload`` when given, else the event's own."""
    return _JSON.encode(
        {
            "id": event.id,
            "type": event.type,
            "created_at": iso(event.at),
            "data": event.payload if payload is None else payload,
        }
    ).decode()


def webhook_jobs(
    event: EventRecord,
    endpoints: Iterable[WebhookEndpoint],
    callback_url: str | None,
    payload: dict[str, Any] | None = None,
    body: str | None = None,
) -> list[NewJob]:
    """One ``webhook`` job per endpoint wanting ``event``, and one for the callback URL; the
    webhook data is ``payload`` when given (an event stored without it), else the event's;
    ``body``, when given, is the whole body already made (``representation.webhook_body_of``)."""
    targets: list[tuple[str, str]] = []
    for endpoint in endpoints:  # a loop: a comprehension's function object per event
        if endpoint.wants(event.type):
            targets.append((endpoint.id, endpoint.url))
    if callback_url:
        targets.append((CALLBACK_TARGET, callback_url))
    if not targets:
        return []
    if body is None:
        body = webhook_body(event, payload)
    # By position (id, kind, payload, run_at, priority): a dataclass made by keyword costs
    # about twice as much. A loop: no comprehension's function object per event.
    jobs: list[NewJob] = []
    for target, url in targets:
        jobs.append(
            NewJob(
                f"webhook:{event.id}:{target}",
                "webhook",
                {
                    "event_id": event.id,
                    "tenant_id": event.tenant_id,
                    "target": target,
                    "url": url,
                    "body": body,
                },
                event.at,
                WEBHOOK_PRIORITY,
            )
        )
    return jobs


class NotifyEvent:
    """Handles ``notify`` jobs: one ``webhook`` job per endpoint (and callback URL) wanting it."""

    def __init__(self, store: MessageStore, webhooks: WebhookStore, queue: JobQueue) -> None:
        self._store = store
        self._webhooks = webhooks
        self._queue = queue

    async def __call__(self, job: Job) -> None:
        """Plan the deliveries of one event."""
        event = await self._store.get_event(str(job.payload["event_id"]))
        if event is None:
            await self._queue.complete(job.id, job.lease_owner)
            return
        callback_url: str | None = None
        if event.message_id is not None:
            message = await self._store.get_message(event.message_id, event.tenant_id)
            if message is not None:
                callback_url = message.callback_url
        endpoints = await self._webhooks.list_endpoints(event.tenant_id)
        jobs = webhook_jobs(event, endpoints, callback_url)
        if jobs:
            await self._queue.enqueue(jobs)
        await self._queue.complete(job.id, job.lease_owner)


class EndpointLookup(Protocol):
    """Finds a tenant's enabled endpoint (a cache in front of the store)."""

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None: ...

    def cached_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        """The endpoint from a fresh cache, without a read; ``None`` when not there (then
        ``endpoint`` decides)."""
        ...

    def forget(self, tenant_id: str) -> None: ...


class _StoreLookup:
    def __init__(self, webhooks: WebhookStore) -> None:
        self._webhooks = webhooks

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        found = await self._webhooks.get_endpoint(endpoint_id)
        if found is None or found.tenant_id != tenant_id or found.disabled_at is not None:
            return None
        return found

    def cached_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        return None

    def forget(self, tenant_id: str) -> None:
        return None


@dataclass(slots=True)
class _ReceiverLoad:
    """One receiver's deliveries in this process: slots held, answer time, spacing."""

    held: int = 0
    #: Seconds a post takes to be answered (or to fail), a moving average from the first
    #: (``None``: none made yet).
    answer: float | None = None
    #: The monotonic time up to which its given-back deliveries are spaced.
    spaced_until: float = 0.0
    #: Whether the log said it is held to its share, since it last held fewer slots.
    told: bool = False
    #: The monotonic time since which it has held its whole share (``None``: it has not).
    full_since: float | None = None


def _slow(load: _ReceiverLoad) -> bool:
    """Whether a receiver is slow: its answers take ``SLOW_ANSWER`` or more on average, or,
    before its first answer, it has held its whole share that long."""
    if load.answer is not None:
        return load.answer >= SLOW_ANSWER
    return load.full_since is not None and time.monotonic() - load.full_since >= SLOW_ANSWER


class ReceiverShares:
    """How many of a process's job slots each webhook receiver (scheme, host and port) holds
    with deliveries posting to it or waiting for its connections; the receivers whose answers
    take ``SLOW_ANSWER`` or more on average hold at most ``limit`` together: slow receivers,
    however many, cannot take every slot and hold up every other tenant's webhooks. (A fast
    one passes ``limit`` only for a moment, between a claim and its answers, and is let be.)

    Before its first answer, a receiver holding its whole share counts as slow once it has
    held it for ``SLOW_ANSWER`` (a receiver that never answers has no average to go by).

    A delivery beyond its receiver's share is given back to the queue untried (its job
    postponed), due again after at least ``POSTPONE_MIN`` seconds, and each further one a
    slot's answer time later than the one before (``answer`` / ``limit``): they come back
    about as fast as the receiver takes them, not all at once. ``limit`` ``None``: no share.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._loads: dict[str, _ReceiverLoad] = {}
        self._origins: dict[str, str] = {}

    def origin(self, url: str) -> str:
        """The receiver of ``url``: its scheme, host and port (as its connections are)."""
        found = self._origins.get(url)
        if found is None:
            parts = urllib.parse.urlsplit(url)
            found = f"{parts.scheme}://{parts.netloc}".lower()
            if len(self._origins) >= 10_000:  # per-message callback URLs: keep it bounded
                self._origins.clear()
            self._origins[url] = found
        return found

    def take(self, origin: str) -> bool:
        """A slot for a delivery to ``origin``, unless it is slow and the slow receivers hold
        their share (``False``)."""
        load = self._loads.get(origin)
        if load is None:
            if len(self._loads) >= 10_000:  # many receivers: forget the idle ones
                self._loads = {key: kept for key, kept in self._loads.items() if kept.held}
            load = self._loads[origin] = _ReceiverLoad()
        elif (
            self.limit is not None
            and _slow(load)
            and (load.held >= self.limit or self._slow_held() >= self.limit)
        ):
            if not load.told:
                load.told = True
                answer = (
                    "no answer yet" if load.answer is None else f"{load.answer:.2f} s an answer"
                )
                log.warning(
                    "webhook receiver %s is slow (%s): with the other slow ones, its "
                    "deliveries beyond %d at once wait in the queue",
                    origin,
                    answer,
                    self.limit,
                )
            return False
        load.held += 1
        if self.limit is not None and load.held >= self.limit and load.full_since is None:
            load.full_since = time.monotonic()
        return True

    def _slow_held(self) -> int:
        """The slots the slow receivers hold together."""
        return sum(load.held for load in self._loads.values() if load.held and _slow(load))

    def give(self, origin: str, answered_in: float | None = None) -> None:
        """A delivery to ``origin`` let its slot go (``answered_in``: how long its post took,
        if it was made)."""
        load = self._loads.get(origin)
        if load is None:
            return
        load.held -= 1
        if self.limit is not None and load.held < self.limit:
            load.full_since = None
            if load.told and load.held < self.limit // 2:
                load.told = False
        if answered_in is not None:
            answer = load.answer
            load.answer = answered_in if answer is None else answer + (answered_in - answer) / 5

    def wait(self, origin: str) -> float:
        """Seconds from now at which a delivery to ``origin`` given back is due again."""
        now = time.monotonic()
        load = self._loads.get(origin)
        if load is None:
            load = self._loads[origin] = _ReceiverLoad()
        gap = max(load.answer or 0.0, SLOW_ANSWER) / (self.limit or 1)
        load.spaced_until = max(load.spaced_until, now + POSTPONE_MIN) + gap
        return min(load.spaced_until - now, POSTPONE_MAX)


@dataclass(slots=True)
class _Delivery:
    """One signed attempt of a webhook job: what is posted, and when it was made."""

    event_id: str
    endpoint_id: str | None
    url: str
    body: bytes
    headers: Mapping[str, str]
    at: datetime
    started: float


class DeliverWebhook:
    """Handles ``webhook`` jobs: sign, post, log the attempt, retry with backoff.

    ``slots_per_host``: the most job slots the deliveries to one receiver may hold at once
    (``ReceiverShares``); the others go back to the queue untried until it keeps up."""

    def __init__(
        self,
        webhooks: WebhookStore,
        queue: JobQueue,
        sender: WebhookSender,
        sign: Signer,
        callback_secret: Callable[[str], str],
        clock: Clock,
        ids: IdFactory,
        timeout: float = 10.0,
        endpoints: EndpointLookup | None = None,
        slots_per_host: int | None = None,
    ) -> None:
        self._shares = ReceiverShares(slots_per_host)
        self._webhooks = webhooks
        self._endpoints = endpoints or _StoreLookup(webhooks)
        self._queue = queue
        self._sender = sender
        #: ``sender`` when it can start posts without a coroutine, looked at once: an
        #: ``isinstance`` of a runtime protocol checks each of its members every time.
        self._starting: SendStarting | None = sender if isinstance(sender, SendStarting) else None
        self._sign = sign
        self._callback_secret = callback_secret
        self._clock = clock
        self._ids = ids
        self._timeout = timeout

    async def __call__(self, job: Job) -> None:
        """One delivery attempt of one event to one target."""
        payload = job.payload
        target = str(payload["target"])
        if target == CALLBACK_TARGET:
            delivery = self._prepare(job, None, self._callback_secret(str(payload["tenant_id"])))
        else:
            endpoint = await self._endpoints.endpoint(str(payload["tenant_id"]), target)
            if endpoint is None:
                await self._queue.complete(job.id, job.lease_owner)
                return
            delivery = self._prepare(job, endpoint.id, endpoint.secret)
        await self._deliver(job, delivery)

    async def run_each(self, batch: JobBatch) -> None:
        """Run a claim's webhook jobs together: the deliveries whose endpoint is known are
        posted on idle connections to their receiver, at once or as connections come free
        (the batch's own earlier posts, or, when it has none in flight, anyone's:
        ``SendStarting.connection_wait``), and the attempts of each wave of answers that
        delivered are logged (and their jobs completed) together. Every other job, every
        answer that did not deliver, the deliveries to a receiver whose connections waiting
        would not bring, and those still waiting after ``CONNECTION_WAIT`` go on on their
        own as ``__call__`` would. Deliveries to a receiver holding its share of the slots
        (``ReceiverShares``) are given back untried."""
        shares = self._shares
        pending: dict[asyncio.Future[int], tuple[Job, _Delivery]] = {}
        waiting: deque[tuple[Job, str | None, str]] = deque()
        #: Deliveries whose receiver holds its share of the slots: given back untried.
        postponed: list[tuple[Job, str]] = []
        for job in batch.jobs:
            payload = job.payload
            origin = shares.origin(str(payload["url"]))
            if not shares.take(origin):
                postponed.append((job, origin))
                continue
            target = str(payload["target"])
            if target == CALLBACK_TARGET:
                endpoint_id = None
                secret = self._callback_secret(str(payload["tenant_id"]))
            else:
                endpoint = self._endpoints.cached_endpoint(str(payload["tenant_id"]), target)
                if endpoint is None:
                    shares.give(origin)
                    batch.alone(job)  # looked up (and perhaps gone) on its own
                    continue
                endpoint_id, secret = endpoint.id, endpoint.secret
            waiting.append((job, endpoint_id, secret))
        try:
            await self._posting(batch, pending, waiting, postponed)
        finally:  # a crash midway: what this batch still counted lets its slots go
            for job, _, _ in waiting:
                shares.give(shares.origin(str(job.payload["url"])))
            for _, delivery in pending.values():
                shares.give(shares.origin(delivery.url))

    async def _posting(
        self,
        batch: JobBatch,
        pending: dict[asyncio.Future[int], tuple[Job, _Delivery]],
        waiting: deque[tuple[Job, str | None, str]],
        postponed: list[tuple[Job, str]],
    ) -> None:
        """``run_each`` from the posting on: ``waiting`` deliveries started as connections
        allow, ``postponed`` ones given back, the answers concluded."""
        starting = self._starting
        shares = self._shares
        #: Waits for a receiver's connections, by URL, while none of the batch's are busy.
        watches: dict[asyncio.Future[None], str] = {}
        #: The posts and the waits for connections, as they complete.
        completions = Completions()
        for started in pending:
            completions.watch(started)
        loop = asyncio.get_running_loop()
        watched_since = 0.0
        if starting is not None:
            self._start_waiting(starting.start_send, waiting, pending, completions)
            if waiting and not pending:
                watched_since = loop.time()
                self._watch_connections(starting, batch, waiting, watches, completions)
        if postponed:  # while the first posts are under way
            try:
                await self._postpone(postponed)
            except Exception as exc:  # as a crash of each one's call
                for job, _ in postponed:
                    batch.failed(job, exc)
            else:
                for job, _ in postponed:
                    batch.finished(job)
        while pending or watches:
            timeout = None
            if watches:
                timeout = max(0.0, watched_since + CONNECTION_WAIT - loop.time())
            done = await completions.next(timeout)
            if not done:  # no connection came free in time: the rest go on on their own
                for watch in watches:
                    watch.cancel()
                watches.clear()
                self._go_alone(batch, waiting)
                continue
            delivered: list[tuple[Job, WebhookAttempt]] = []
            for sending in done:
                if sending in watches:
                    del watches[sending]
                    continue
                posted = pending.pop(sending, None)
                if posted is None:  # a wait for connections given up (cancelled) earlier
                    continue
                job, delivery = posted
                shares.give(shares.origin(delivery.url), time.perf_counter() - delivery.started)
                status: int | None = None
                error: str | None = None
                failure = None if sending.cancelled() else sending.exception()
                if sending.cancelled():
                    error = "the request was cancelled"
                elif isinstance(failure, TemporaryFailure):
                    error = failure.detail
                elif isinstance(failure, Exception):  # as a crash of the single job's call
                    batch.failed(job, failure)
                    continue
                else:
                    status = sending.result()
                if status is not None and 200 <= status < 300:
                    delivered.append((job, self._attempt(job, delivery, status, None)))
                else:
                    batch.alone(
                        job, functools.partial(self._conclude, job, delivery, status, error)
                    )
            if waiting and starting is not None:  # on the connections these answers freed
                self._start_waiting(starting.start_send, waiting, pending, completions)
                if waiting and not pending:
                    watched_since = loop.time()
                    self._watch_connections(starting, batch, waiting, watches, completions)
            if delivered:
                outcomes = await self._webhooks.record_attempt_each(
                    [(attempt, (job.id, job.lease_owner)) for job, attempt in delivered]
                )
                for (job, _), outcome in zip(delivered, outcomes, strict=True):
                    if outcome is None:
                        _ATTEMPTS["ok"].inc()
                        batch.finished(job)
                    else:
                        batch.failed(job, outcome)
        self._go_alone(batch, waiting)  # no connection came free for them here

    def _go_alone(self, batch: JobBatch, waiting: Iterable[tuple[Job, str | None, str]]) -> None:
        """Hand the ``waiting`` deliveries on to go on their own (``send`` waits for a
        connection; ``_deliver`` takes its receiver's slot again); ``waiting`` is left empty
        if it is a deque."""
        shares = self._shares
        for job, endpoint_id, secret in waiting:
            delivery = self._prepare(job, endpoint_id, secret)
            shares.give(shares.origin(delivery.url))
            batch.alone(job, functools.partial(self._deliver, job, delivery))
        if isinstance(waiting, deque):
            waiting.clear()

    def _watch_connections(
        self,
        sender: SendStarting,
        batch: JobBatch,
        waiting: deque[tuple[Job, str | None, str]],
        watches: dict[asyncio.Future[None], str],
        completions: Completions,
    ) -> None:
        """Wait for connections to the receivers of the ``waiting`` deliveries not waited
        for yet (``watches``); the deliveries to a receiver that waiting would not help go
        on on their own now."""
        watched = set(watches.values())
        hopeless: set[str] = set()
        for job, _, _ in waiting:
            url = str(job.payload["url"])
            if url in watched or url in hopeless:
                continue
            watch = sender.connection_wait(url)
            if watch is None:
                hopeless.add(url)
            else:
                watches[watch] = url
                completions.watch(watch)
                watched.add(url)
        if hopeless:
            kept = [item for item in waiting if str(item[0].payload["url"]) not in hopeless]
            self._go_alone(
                batch, [item for item in waiting if str(item[0].payload["url"]) in hopeless]
            )
            waiting.clear()
            waiting.extend(kept)

    def _start_waiting(
        self,
        start: Callable[[str, Mapping[str, str], bytes, float], asyncio.Future[int] | None],
        waiting: deque[tuple[Job, str | None, str]],
        pending: dict[asyncio.Future[int], tuple[Job, _Delivery]],
        completions: Completions,
    ) -> None:
        """Post the ``waiting`` deliveries that idle connections take now, in order; a URL
        that found none is not tried again in this pass (its host has none free)."""
        full: set[str] = set()
        for _ in range(len(waiting)):
            job, endpoint_id, secret = item = waiting.popleft()
            url = str(job.payload["url"])
            if url not in full:
                delivery = self._prepare(job, endpoint_id, secret)
                sending = start(url, delivery.headers, delivery.body, self._timeout)
                if sending is not None:
                    pending[sending] = (job, delivery)
                    completions.watch(sending)
                    continue
                full.add(url)
            waiting.append(item)

    def _prepare(self, job: Job, endpoint_id: str | None, secret: str) -> _Delivery:
        """The signed request of ``job``'s attempt, made now."""
        payload = job.payload
        event_id = str(payload["event_id"])
        body = str(payload["body"]).encode("utf-8")
        now = self._clock.now()
        headers = self._sign(secret, event_id, int(now.timestamp()), body)
        return _Delivery(
            event_id, endpoint_id, str(payload["url"]), body, headers, now, time.perf_counter()
        )

    async def _deliver(self, job: Job, delivery: _Delivery) -> None:
        """Post ``delivery`` and conclude its attempt; if its receiver holds its share of
        the slots, give the job back untried instead."""
        shares = self._shares
        origin = shares.origin(delivery.url)
        if not shares.take(origin):
            await self._postpone([(job, origin)])
            return
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            status = await self._sender.send(
                delivery.url, delivery.headers, delivery.body, self._timeout
            )
        except TemporaryFailure as exc:
            error = exc.detail
        finally:
            shares.give(origin, time.perf_counter() - started)
        await self._conclude(job, delivery, status, error)

    async def _postpone(self, deliveries: list[tuple[Job, str]]) -> None:
        """Give the jobs of ``deliveries`` (with their receivers) back untried, each due
        again as its receiver's share spaces it (``ReceiverShares.wait``)."""
        now = self._clock.now()
        wait = self._shares.wait
        await self._queue.postpone(
            [
                (job.id, job.lease_owner, now + timedelta(seconds=wait(origin)))
                for job, origin in deliveries
            ]
        )
        _POSTPONED.inc(len(deliveries))

    def _attempt(
        self, job: Job, delivery: _Delivery, status: int | None, error: str | None
    ) -> WebhookAttempt:
        # By position, every field in its order: half the cost of keywords.
        return WebhookAttempt(
            self._ids.new("wha"),  # id
            delivery.event_id,  # event_id
            delivery.endpoint_id,  # endpoint_id
            delivery.url,  # url
            self._attempt_number(job),  # attempt
            delivery.at,  # at
            status,  # status_code
            error,  # error
            int((time.perf_counter() - delivery.started) * 1000),  # duration_ms
        )

    async def _conclude(
        self, job: Job, delivery: _Delivery, status: int | None, error: str | None
    ) -> None:
        """Log the attempt with its answer (``status``, or ``error``: none came) and end the
        job: done, its endpoint disabled (410), given up, or retried later."""
        attempt = self._attempt(job, delivery, status, error)
        delivered = status is not None and 200 <= status < 300
        await self._webhooks.record_attempt(
            attempt,
            # Delivered: logged and done in one transaction.
            complete_job=(job.id, job.lease_owner) if delivered else None,
        )
        if delivered:
            _ATTEMPTS["ok"].inc()
            return
        endpoint_id = delivery.endpoint_id
        now = delivery.at
        if status == 410 and endpoint_id is not None:
            _ATTEMPTS["disabled"].inc()
            await self._webhooks.disable_endpoint(endpoint_id, now)
            self._endpoints.forget(str(job.payload["tenant_id"]))
            await self._queue.complete(job.id, job.lease_owner)
            return
        _ATTEMPTS["failed"].inc()
        if attempt.attempt >= MAX_WEBHOOK_ATTEMPTS:
            log.warning(
                "webhook %s to %s given up after %d attempts",
                delivery.event_id,
                delivery.url,
                attempt.attempt,
            )
            await self._queue.complete(job.id, job.lease_owner)
            return
        reason = error or f"HTTP {status}"
        await self._queue.retry(
            job.id, job.lease_owner, now + webhook_delay(attempt.attempt), reason
        )

    @staticmethod
    def _attempt_number(job: Job) -> int:
        # A job's first claim sees attempts == 0; every retry adds one.
        return job.attempts + 1
