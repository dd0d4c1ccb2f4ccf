"""The seams between use cases and the outside world, as Protocols.

Adapters (store, queue, connectors, webhooks) implement these; ``pigeon.testing`` has a fake of
each. Services depend on nothing but these and the domain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from pigeon.domain.accounts import ApiKey, SmppAccount, Tenant
from pigeon.domain.connectors import ConnectorRecord, RouteRecord
from pigeon.domain.messages import Message, MessageStatus
from pigeon.domain.numbers import OwnedNumber
from pigeon.domain.receipts import DeliveryReceipt
from pigeon.domain.value_objects import value_object

JsonObject = dict[str, Any]


class Clock(Protocol):
    """The time source; always timezone-aware UTC."""

    def now(self) -> datetime: ...


class IdFactory(Protocol):
    """Makes prefixed, time-ordered ids such as ``msg_01JD...``."""

    def new(self, prefix: str) -> str: ...


# --- jobs -----------------------------------------------------------------------------------


@value_object
class NewJob:
    """A job to enqueue. Ids derive from domain ids (``dispatch:msg_...``); a duplicate id is
    ignored, which makes enqueueing idempotent."""

    id: str
    kind: str
    payload: JsonObject
    run_at: datetime
    priority: int = 0


@value_object
class Job:
    """A claimed job: its lease runs until ``lease_until``; after that anyone may take it."""

    id: str
    kind: str
    payload: JsonObject
    priority: int
    run_at: datetime
    attempts: int
    lease_owner: str
    lease_until: datetime


class JobQueue(Protocol):
    """A durable lease queue living in the same database as the messages (an outbox)."""

    async def enqueue(self, jobs: Sequence[NewJob]) -> None: ...

    async def claim(
        self,
        kinds: Sequence[str],
        limit: int,
        owner: str,
        lease_seconds: float,
        *,
        min_priority: int | None = None,
        max_priority: int | None = None,
        ceiling_grace: timedelta | None = None,
        alone: bool = True,
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs, highest priority first, then earliest ``run_at``
        (only jobs of at least ``min_priority`` and at most ``max_priority``, when given; above
        ``max_priority`` also those due for ``ceiling_grace`` or longer, when given).

        ``alone``: the claim must not wait for other writes (it may take an OTP). Otherwise
        a store with a group-commit writer may make it part of its next batch of writes."""
        ...

    async def complete(self, job_id: str, owner: str) -> None: ...

    async def retry(self, job_id: str, owner: str, run_at: datetime, error: str) -> None:
        """Give the job back, due again at ``run_at``; its ``attempts`` grows by one."""
        ...

    async def postpone(self, jobs: Sequence[tuple[str, str, datetime]]) -> None:
        """Give jobs back untried: each ``(job id, owner, run_at)`` is due again at its
        ``run_at`` if ``owner`` still holds it; ``attempts`` stays as it is."""
        ...

    async def pending(self) -> dict[str, int]:
        """How many jobs wait, by kind."""
        ...

    async def probe(self) -> None:
        """Read the queue as a claim would, touching at most one job: raises when it cannot
        be read (a readiness check, as cheap with a backlog as without)."""
        ...

    async def wake(self, id_prefix: str) -> int:
        """Make every job whose id starts with ``id_prefix`` and that nobody holds due now;
        returns how many jobs that touched (``id_prefix`` must not be empty)."""
        ...

    async def release_gone_leases(self) -> list[str]:
        """Make the jobs leased by owners known to have ended due now, as if their leases had
        expired; returns those owners."""
        ...


# --- messages -------------------------------------------------------------------------------


@value_object
class EventRecord:
    """A stored event: one status change (or other happening) and its payload.

    A status change's payload is its webhook data when a ``notify`` job reads it back, and
    empty otherwise (ADR 32); other happenings keep their details there."""

    id: str
    tenant_id: str
    message_id: str | None
    type: str
    status: MessageStatus | None
    sequence: int
    at: datetime
    detail: str | None
    payload: JsonObject


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """Remembers the request an ``Idempotency-Key`` was first used with."""

    tenant_id: str
    key: str
    request_hash: str
    message_id: str
    created_at: datetime


@dataclass(slots=True)
class Acceptance:
    """Everything accepting one message writes, durably and atomically."""

    message: Message
    events: list[EventRecord]
    jobs: list[NewJob]
    idempotency: IdempotencyRecord | None = None


@value_object
class AcceptResult:
    """The stored message; ``replayed`` when an idempotency key matched an earlier request."""

    message: Message
    replayed: bool = False
    idempotency_conflict: bool = False


@dataclass(slots=True)
class Mutation:
    """A change to one message computed by a use case: its new state plus what follows."""

    message: Message
    events: list[EventRecord] = field(default_factory=list)
    jobs: list[NewJob] = field(default_factory=list)
    #: Ids of jobs the change makes pointless (deleted with it; unknown ids are ignored).
    done_jobs: list[str] = field(default_factory=list)


@value_object
class MessageChange:
    """One read-modify-write of ``MessageStore.mutate_each``: as ``mutate``'s arguments."""

    message_id: str
    change: Callable[[Message], Mutation | None]
    complete_job: str | None = None


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Filters for listing messages; the cursor is the last id of the previous page."""

    status: MessageStatus | None = None
    to: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of messages, newest first, and the cursor of the next page."""

    messages: list[Message]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, order=True)
class SweepMark:
    """A point of the receipt sweep's walk: deadlines are walked by time, then message id."""

    due_at: datetime
    message_id: str


@dataclass(frozen=True, slots=True)
class OverdueReceipts:
    """The next deadlines after the sweep's mark, up to a time: the messages among them still
    waiting for their receipt (``sent`` or ``sending``), and the last deadline read."""

    waiting: list[str]
    #: Where the walk stands once these are done (``None``: no deadline was read).
    last: SweepMark | None
    #: Whether ``limit`` deadlines were read (there may be more up to that time).
    full: bool


class MessageStore(Protocol):
    """Messages, their events and the idempotency records, scoped by tenant."""

    async def accept(self, acceptance: Acceptance) -> AcceptResult:
        """Write message, events, jobs and idempotency record in one durable transaction.

        Concurrent calls share a transaction (group commit); this returns only once it is
        durable. A known idempotency key returns the earlier message instead (``replayed``),
        or flags ``idempotency_conflict`` when the request hash differs.
        """
        ...

    def accept_started(self, acceptance: Acceptance) -> Awaitable[AcceptResult]:
        """``accept`` handed over now: await the result (what ``accept`` returns or raises)."""
        ...

    async def get_message(self, message_id: str, tenant_id: str | None = None) -> Message | None:
        """The message with its parts; ``None`` when absent or owned by another tenant."""
        ...

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, Message]:
        """The messages of ``message_ids`` that exist, with their parts, by id (one read for
        all of them)."""
        ...

    async def list_messages(self, tenant_id: str, query: MessageQuery) -> MessagePage:
        """A page of the tenant's messages, newest first; a page filtered by status may end
        short, even empty, while ``next_cursor`` goes on."""
        ...

    async def events_of(self, message_id: str, tenant_id: str | None = None) -> list[EventRecord]:
        """The message's events, oldest first."""
        ...

    async def get_event(self, event_id: str) -> EventRecord | None: ...

    async def mutate(
        self,
        message_id: str,
        change: Callable[[Message], Mutation | None],
        *,
        complete_job: str | None = None,
    ) -> Message | None:
        """Read-modify-write one message atomically.

        Inside one transaction: load the message (locked on PostgreSQL), call ``change`` (pure,
        no I/O), write the new state, its parts, events and jobs, and complete ``complete_job``.
        ``change`` returning ``None`` writes nothing but still completes the job. Returns the
        message as stored afterwards (``None`` if it does not exist). What was fixed when the
        message was accepted (recipient, sender, body, category, encoding, ...) stays fixed:
        a change that alters it raises ``ValueError`` to the caller and writes nothing.
        """
        ...

    async def mutate_each(
        self, changes: Sequence[MessageChange]
    ) -> list[Message | Exception | None]:
        """``mutate`` for each of ``changes``, handed to the writer together (one await for
        them all, not one per change): per change the message as stored afterwards
        (``None`` if it does not exist), or the exception that failed it alone (its
        ``change`` raised, or its transaction failed). Nothing else is raised."""
        ...

    async def find_by_carrier_id(
        self, connector_id: str, carrier_message_ids: Sequence[str]
    ) -> tuple[str, str] | None:
        """The (message id, stored carrier id) of the part a carrier knows by any of the given
        ids (normalised forms: lower-case, hex or decimal)."""
        ...

    async def find_each_by_carrier_id(
        self, lookups: Sequence[tuple[str, Sequence[str]]]
    ) -> list[tuple[str, str] | None]:
        """``find_by_carrier_id`` for each ``(connector id, carrier ids)`` of ``lookups``."""
        ...

    async def overdue_receipts(self, due_by: datetime, limit: int) -> OverdueReceipts:
        """The next ``limit`` receipt deadlines (``receipt_due_at``) after the sweep's stored
        mark and at ``due_by`` or earlier, in order; the messages among them still waiting.
        The mark stays where it is until ``mark_receipts_swept``."""
        ...

    async def mark_receipts_swept(self, mark: SweepMark) -> None:
        """Move the sweep's mark to ``mark`` (never backwards: the furthest mark stays)."""
        ...


class AccountStore(Protocol):
    """Tenants, API keys and SMPP accounts."""

    async def create_tenant(self, tenant: Tenant) -> None: ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def find_tenant_by_name(self, name: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def create_api_key(self, key: ApiKey) -> None: ...

    async def find_api_key(self, digest: str) -> ApiKey | None:
        """The unrevoked key with this SHA-256 digest."""
        ...

    async def create_smpp_account(self, account: SmppAccount) -> None:
        """Store a new SMPP account; a taken ``system_id`` raises ``ValidationError``."""
        ...

    async def find_smpp_account(self, system_id: str) -> SmppAccount | None:
        """The account that binds with this ``system_id``."""
        ...

    async def list_smpp_accounts(self, tenant_id: str) -> list[SmppAccount]:
        """The tenant's SMPP accounts, oldest first."""
        ...


# --- SMPP concatenation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingPart:
    """One part of a long message a customer submits in several PDUs, kept durably until the
    message is whole (so a part that was answered survives a crash).

    ``key`` names the message among the account's (source, destination, reference, total);
    ``message_id`` is the id this part reserves for the message if it is the first one seen;
    ``payload`` is the part's content (compared to tell a retransmission from a reused
    reference); ``pdu`` is the whole PDU as received, opaque to the store.
    """

    account_id: str
    key: str
    seqnum: int
    total: int
    message_id: str
    payload: bytes
    pdu: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class PartProgress:
    """What adding a part led to: the message id reserved for the set, every part in order
    once all are in (``None`` before), and whether the part was a retransmission."""

    message_id: str
    complete: list[PendingPart] | None
    duplicate: bool = False
    accepted: bool = False


class PartStore(Protocol):
    """Parts of customers' long messages waiting for the rest of their message."""

    async def add_part(self, part: PendingPart) -> PartProgress:
        """Store ``part`` durably (a retransmission is not stored twice); returns once durable.

        A part of a set already accepted (``mark_accepted``) with the same payload is a
        retransmission (``duplicate`` and ``accepted``); with another payload the sender reused
        the reference and a new set starts.
        """
        ...

    async def mark_accepted(self, account_id: str, key: str) -> None:
        """Remember that the set's message was accepted (its retransmissions are duplicates)."""
        ...

    async def expire_parts(self, before: datetime) -> int:
        """Forget parts received before ``before``; returns how many."""
        ...


# --- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where a tenant wants its events; an empty ``events`` tuple means every event type."""

    id: str
    tenant_id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    disabled_at: datetime | None = None

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribes to ``event_type``."""
        return self.disabled_at is None and (not self.events or event_type in self.events)


@value_object
class WebhookAttempt:
    """One try at delivering one event to one URL, kept for the delivery log and replay."""

    id: str
    event_id: str
    endpoint_id: str | None
    url: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookStore(Protocol):
    """Webhook endpoints and the log of delivery attempts."""

    async def create_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]: ...

    async def get_endpoint(
        self, endpoint_id: str, tenant_id: str | None = None
    ) -> WebhookEndpoint | None: ...

    async def delete_endpoint(self, endpoint_id: str, tenant_id: str) -> bool: ...

    async def disable_endpoint(self, endpoint_id: str, at: datetime) -> None: ...

    async def record_attempt(
        self, attempt: WebhookAttempt, *, complete_job: tuple[str, str] | None = None
    ) -> None:
        """Log ``attempt``; with ``complete_job`` (job id, lease owner), complete that job in
        the same transaction (as ``JobQueue.complete``: deleted if the owner still holds it)."""
        ...

    async def record_attempt_each(
        self, attempts: Sequence[tuple[WebhookAttempt, tuple[str, str] | None]]
    ) -> list[Exception | None]:
        """``record_attempt`` for each (attempt, job to complete), handed to the store
        together; per attempt ``None``, or the exception that failed it."""
        ...

    async def attempts_for(self, event_id: str) -> list[WebhookAttempt]: ...


class WebhookSender(Protocol):
    """Posts a signed webhook; returns the HTTP status. Network failures raise
    ``TemporaryFailure``."""

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> int: ...


@runtime_checkable
class SendStarting(Protocol):
    """A ``WebhookSender`` that can also start a post without a coroutine (a batch of
    deliveries then needs no task per delivery)."""

    def start_send(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> asyncio.Future[int] | None:
        """The post started now: the future of what ``send`` would return or raise. ``None``
        when it cannot start at once; then ``send`` it (or wait: ``connection_wait``)."""
        ...

    def connection_wait(self, url: str) -> asyncio.Future[None] | None:
        """After ``start_send`` gave ``None`` because every connection to ``url``'s receiver
        is busy: a future that the next of them to come free ends, in line with the other
        waiting posts; ``start_send`` may then start (and if another took it first, wait
        again). ``None`` when waiting would not help; then ``send``. Cancel it to stop."""
        ...


# --- carriers -------------------------------------------------------------------------------


@value_object
class SubmitResult:
    """What the carrier answered: its id for each part it accepted, in part order."""

    carrier_message_ids: tuple[str, ...]


ReceiptSink = Callable[[DeliveryReceipt], Awaitable[None]]


@runtime_checkable
class ReceiptBatchSink(Protocol):
    """A ``ReceiptSink`` that also takes the receipts that arrived together at once."""

    async def __call__(self, receipt: DeliveryReceipt) -> None: ...

    async def each(self, receipts: Sequence[DeliveryReceipt]) -> list[Exception | None]:
        """Apply every receipt of ``receipts``; per receipt ``None``, or the exception that
        failed it alone (the others are applied all the same)."""
        ...


class Connector(Protocol):
    """A link to one carrier. ``submit`` raises ``TemporaryFailure``, ``Throttled`` or
    ``PermanentFailure`` (from ``pigeon.domain.errors``) and nothing else."""

    @property
    def id(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, message: Message) -> SubmitResult: ...


class Pacer(Protocol):
    """Paces a connector's submits to ``rate`` per second, a part of its whole ``cap`` (its
    ``throughput_per_second``), and counts its use (``pigeon.connectors.pacing``)."""

    cap: float
    rate: float
    #: Tokens taken, and how many of those takes had to wait, since the start.
    taken: int
    waits: int

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` from now on."""
        ...


@runtime_checkable
class Paced(Protocol):
    """A ``Connector`` whose submits are paced (``None``: it has no throughput cap)."""

    @property
    def pacing(self) -> Pacer | None: ...


@runtime_checkable
class SubmitStarting(Protocol):
    """A ``Connector`` that can also start a submit without a coroutine (a dispatcher with a
    batch of messages then needs no task per message)."""

    def start_submit(self, message: Message) -> asyncio.Future[SubmitResult] | None:
        """The submit of ``message`` started now: the future of what ``submit`` would return
        or raise. ``None`` when it cannot start at once; then ``submit`` it."""
        ...

    def slot_wait(self, message: Message) -> asyncio.Future[None] | None:
        """After ``start_submit`` gave ``None``: a future that ends when a slot frees for
        ``message`` (then try ``start_submit`` again), or ``None`` when no slot was the
        obstacle (then ``submit`` it)."""
        ...


# --- numbers --------------------------------------------------------------------------------


class NumberStore(Protocol):
    """The numbers inventory: which tenant owns which number (replies go to the owner)."""

    async def add_number(self, number: OwnedNumber) -> None:
        """Store a number; ``ValidationError`` (``already_exists``) when someone owns it."""
        ...

    async def find_owner(self, values: Sequence[str]) -> OwnedNumber | None:
        """The owned number matching any of ``values`` (forms of one address)."""
        ...

    async def list_numbers(self, tenant_id: str) -> list[OwnedNumber]: ...


# --- connectors and routes as data ----------------------------------------------------------


class ConnectorStore(Protocol):
    """Connectors and the routing table, with a version bumped by every change."""

    async def list_connectors(self) -> list[ConnectorRecord]: ...

    async def get_connector(self, connector_id: str) -> ConnectorRecord | None: ...

    async def put_connector(self, record: ConnectorRecord) -> None:
        """Create or replace (keeping ``created_at``)."""
        ...

    async def delete_connector(self, connector_id: str, at: datetime) -> bool: ...

    async def list_routes(self) -> list[RouteRecord]: ...

    async def replace_routes(self, table: Sequence[RouteRecord], at: datetime) -> None: ...

    async def version(self) -> int: ...


class ConnectorBuilder(Protocol):
    """Builds connectors from their stored ``(type, options)``: lives with the adapters."""

    def check(self, connector_type: str, connector_id: str, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` (naming every problem) unless the options build a connector."""
        ...

    def build(
        self, connector_type: str, connector_id: str, options: Mapping[str, Any]
    ) -> Connector:
        """A new, not yet started connector."""
        ...


@dataclass(frozen=True, slots=True)
class CarrierRequest:
    """A carrier's HTTP request to ``/v1/carriers/{id}/receipts`` or ``.../inbound``."""

    kind: str
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class CarrierAnswer:
    """What to answer the carrier: status, body and its content type."""

    status: int
    body: bytes = b""
    content_type: str | None = None


#: Hands a carrier's callback to connector ``id``; ``None`` when no such HTTP connector exists.
CarrierCallbacks = Callable[[str, CarrierRequest], Awaitable[CarrierAnswer | None]]
