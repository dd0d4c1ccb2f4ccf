"""The use cases together on a real database: accept, dispatch, receipts, expiry, webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant
from pigeon.domain.errors import CarrierError, PermanentFailure, TemporaryFailure
from pigeon.domain.messages import Category, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.ids import UlidFactory
from pigeon.ports import Mutation, NewJob, SweepMark
from pigeon.services.accept import AcceptMessage, SendRequest
from pigeon.services.authenticate import Caller
from pigeon.services.dispatch import (
    DispatchMessage,
    ExpireMessage,
    RetryPolicy,
    SandboxRouter,
    SweepOverdueReceipts,
)
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.notify import DeliverWebhook, NotifyEvent
from pigeon.services.receipts import ApplyReceipt
from pigeon.services.webhook_endpoints import ManageWebhookEndpoints
from pigeon.testing import FakeConnector
from pigeon.webhooks.sender import HttpWebhookSender
from pigeon.webhooks.signing import new_secret, signature_headers, verify

if TYPE_CHECKING:
    from conftest import Factory, Stores

S = MessageStatus


class Receiver:
    """A real HTTP server on loopback that records webhooks and answers a scripted status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def types(self) -> list[str]:
        return [json.loads(body)["type"] for _, body in self.received]


@dataclass
class Pipeline:
    """Every use case wired on the test's stores, run job by job with a fake clock."""

    stores: Stores
    connector: FakeConnector
    caller: Caller
    accept: AcceptMessage
    endpoints: ManageWebhookEndpoints
    receipts: ApplyReceipt
    handlers: dict[str, Callable[[Any], Any]]
    callback_secret: Callable[[str], str]
    script: dict[str, CarrierError | list[CarrierError]]
    sweep: SweepOverdueReceipts
    recorder: EventRecorder
    ran: list[str] = field(default_factory=list)

    async def drain(self, rounds: int = 20) -> None:
        """Sweep overdue receipts and run due jobs until none is due."""
        for _ in range(rounds):
            await self.sweep()
            jobs = await self.stores.queue.claim(list(self.handlers), 100, "test", 30)
            if not jobs:
                return
            for job in jobs:
                self.ran.append(job.kind)
                await self.handlers[job.kind](job)

    async def send(self, **fields: Any) -> Message:
        """Accept a message through the use case."""
        fields.setdefault("to", "+14155550100")
        fields.setdefault("body", "hello")
        return (await self.accept(self.caller, SendRequest(**fields))).message

    async def status(self, message_id: str) -> MessageStatus:
        message = await self.stores.messages.get_message(message_id)
        assert message is not None
        return message.status


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on loopback."""
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
async def pipeline(stores: Stores) -> AsyncIterator[Pipeline]:
    """The use cases on real stores, with a scriptable carrier."""
    script: dict[str, CarrierError | list[CarrierError]] = {}

    def outcome(message: Message) -> CarrierError | None:
        planned = script.get(message.to)
        if isinstance(planned, list):
            return planned.pop(0) if planned else None
        return planned

    ids = UlidFactory()
    clock = stores.clock
    connector = FakeConnector("fake", outcome)
    directory = EndpointDirectory(stores.webhooks, ttl_seconds=0)
    recorder = EventRecorder(ids, clock, directory)
    tenant = Tenant(ids.new("ten"), "acme", None, clock.now())
    await stores.accounts.create_tenant(tenant)
    key = ApiKey(ids.new("key"), tenant.id, KeyMode.LIVE, Role.TENANT, "d" * 64, "pk", clock.now())
    sender = HttpWebhookSender()
    receipts = ApplyReceipt(stores.messages, stores.queue, recorder, clock)

    def callback_secret(tenant_id: str) -> str:
        return "whsec_" + "Y2FsbGJhY2stc2VjcmV0LWZvci10ZXN0cw=="

    handlers: dict[str, Callable[[Any], Any]] = {
        "dispatch": DispatchMessage(
            stores.messages,
            stores.queue,
            SandboxRouter(connector, connector),
            recorder,
            clock,
            ids,
            RetryPolicy(delays=(2, 5)),
        ),
        "receipt": receipts.from_job,
        "expire": ExpireMessage(stores.messages, recorder, clock),
        "notify": NotifyEvent(stores.messages, stores.webhooks, stores.queue),
        "webhook": DeliverWebhook(
            stores.webhooks,
            stores.queue,
            sender,
            signature_headers,
            callback_secret,
            clock,
            ids,
            timeout=5,
        ),
    }
    built = Pipeline(
        stores=stores,
        connector=connector,
        caller=Caller(tenant, key),
        accept=AcceptMessage(stores.messages, clock, ids, recorder),
        endpoints=ManageWebhookEndpoints(stores.webhooks, ids, clock, directory, new_secret),
        receipts=receipts,
        handlers=handlers,
        callback_secret=callback_secret,
        script=script,
        sweep=SweepOverdueReceipts(stores.messages, recorder, clock),
        recorder=recorder,
    )
    yield built
    await sender.close()


async def test_message_goes_from_accept_to_delivered(pipeline: Pipeline) -> None:
    """accept -> queued, dispatch -> sent with a carrier id, DELIVRD receipt -> delivered."""
    message = await pipeline.send()
    assert message.status is S.QUEUED
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.status is S.SENT
    carrier_id = stored.parts[0].carrier_message_id
    assert carrier_id is not None
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.DELIVRD))
    events = await pipeline.stores.messages.events_of(message.id)
    assert [e.status for e in events] == [S.QUEUED, S.SENDING, S.SENT, S.DELIVERED]
    assert [e.sequence for e in events] == [1, 2, 3, 4]


async def test_an_accepted_message_holds_each_field_where_the_request_put_it(
    pipeline: Pipeline,
) -> None:
    """Every field of an accepted message, stored and read back, is the one the request and
    the accept gave it (the message is made by position: no two fields swapped)."""
    clock = pipeline.stores.clock
    send_at = clock.now() + timedelta(minutes=5)
    message = await pipeline.send(
        to="+447400123456",
        body="field by field",
        sender="Pigeon",
        category=Category.OTP,
        callback_url=" https://example.com/cb ",
        client_ref="ref-1",
        send_at=send_at,
        validity_seconds=900,
    )
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    expires_at = send_at + timedelta(seconds=900)
    assert (stored.to, stored.country, stored.body) == ("+447400123456", "GB", "field by field")
    assert (stored.sender, stored.category) == ("Pigeon", Category.OTP)
    assert (stored.callback_url, stored.client_ref) == ("https://example.com/cb", "ref-1")
    assert (stored.send_at, stored.expires_at) == (send_at, expires_at)
    assert stored.receipt_due_at == expires_at + timedelta(minutes=10)
    assert stored.created_at == clock.now()
    assert (stored.encoding, stored.segments) == ("gsm7", 1)
    assert (stored.status, stored.status_sequence) == (MessageStatus.SCHEDULED, 1)
    assert (stored.error_code, stored.connector_id, stored.price, stored.currency) == (
        None,
        None,
        None,
        None,
    )
    assert (stored.is_test, stored.attempts, stored.parts) == (False, 0, [])
    assert (stored.origin, stored.origin_parts) == (None, 1)
    assert message.tenant_id == pipeline.caller.tenant.id


async def test_a_message_awaits_its_receipt_until_its_deadline_without_a_job(
    pipeline: Pipeline,
) -> None:
    """Accepting sets when the receipt is due (validity + 10 min grace) and no status change
    writes it again; sending leaves no job, and the sweep finds the message waiting until a
    final receipt, not after."""
    message = await pipeline.send(validity_seconds=600)
    accepted = await pipeline.stores.messages.get_message(message.id)
    assert accepted is not None
    assert accepted.expires_at is not None
    deadline = accepted.expires_at + timedelta(minutes=10)
    assert accepted.receipt_due_at == deadline
    await pipeline.drain()
    assert await pipeline.stores.queue.pending() == {}
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    assert (stored.status, stored.receipt_due_at) == (S.SENT, deadline)
    later = deadline + timedelta(days=1)
    store = pipeline.stores.messages
    assert (await store.overdue_receipts(later, 10)).waiting == [message.id]
    carrier_id = stored.parts[0].carrier_message_id or ""
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.ENROUTE))
    assert (await store.overdue_receipts(later, 10)).waiting == [message.id]
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.UNDELIV))
    assert await pipeline.status(message.id) is S.UNDELIVERED
    final = await store.get_message(message.id)
    assert final is not None
    assert final.receipt_due_at == deadline
    page = await store.overdue_receipts(later, 10)
    assert (page.waiting, page.last) == ([], SweepMark(deadline, message.id))
    assert "expire" not in await pipeline.stores.queue.pending()


async def test_accepts_at_one_instant_get_the_deadlines_of_their_own_validity(
    pipeline: Pipeline,
) -> None:
    """Messages accepted at one instant expire, and await their receipts, after their own
    validity (the accept keeps the last message's deadlines for the next with the same start
    and validity only); a later instant or a ``send_at`` makes new ones."""
    clock = pipeline.stores.clock
    grace = timedelta(minutes=10)
    now = clock.now()
    sends = [
        await pipeline.send(validity_seconds=600),
        await pipeline.send(validity_seconds=600),
        await pipeline.send(validity_seconds=900),
        await pipeline.send(validity_seconds=600, send_at=now + timedelta(minutes=5)),
    ]
    clock.advance(30)
    sends.append(await pipeline.send(validity_seconds=600))
    starts = [now, now, now, now + timedelta(minutes=5), now + timedelta(seconds=30)]
    validities = [600, 600, 900, 600, 600]
    for message, start, validity in zip(sends, starts, validities, strict=True):
        stored = await pipeline.stores.messages.get_message(message.id)
        assert stored is not None
        expires_at = start + timedelta(seconds=validity)
        assert (stored.expires_at, stored.receipt_due_at) == (expires_at, expires_at + grace)


async def test_the_sweep_ends_only_waits_that_are_due(pipeline: Pipeline, factory: Factory) -> None:
    """The sweep makes a sent message whose receipt is overdue unknown, leaves one not yet due
    and one whose status moved on, and reads no deadline twice; the one not yet due is swept
    once it is due."""
    tenant = await factory.tenant()
    clock = pipeline.stores.clock
    now = clock.now()
    past, future = now - timedelta(seconds=1), now + timedelta(minutes=5)
    overdue = factory.message(tenant, status=S.SENT, receipt_due_at=past)
    not_due = factory.message(tenant, status=S.SENT, receipt_due_at=future)
    moved_on = factory.message(tenant, status=S.DELIVERED, receipt_due_at=past)
    for message in (overdue, not_due, moved_on):
        await pipeline.stores.messages.accept(factory.acceptance(message))

    assert await pipeline.sweep() == 1

    store = pipeline.stores.messages
    assert await pipeline.status(overdue.id) is S.UNKNOWN
    assert [e.status for e in await store.events_of(overdue.id)][-1] is S.UNKNOWN
    assert await pipeline.status(not_due.id) is S.SENT
    assert await pipeline.status(moved_on.id) is S.DELIVERED
    assert (await store.overdue_receipts(future, 10)).waiting == [not_due.id]
    assert await pipeline.sweep() == 0
    assert len(await store.events_of(overdue.id)) == 2  # queued by the factory, then unknown
    clock.advance(6 * 60)
    assert await pipeline.sweep() == 1
    assert await pipeline.status(not_due.id) is S.UNKNOWN
    assert await pipeline.sweep() == 0


async def test_the_sweep_walks_every_deadline_in_batches(
    pipeline: Pipeline, factory: Factory
) -> None:
    """With deadlines more than a batch, steps continue while batches come back full and every
    waiting message is swept exactly once, deadlines shared by several included."""
    tenant = await factory.tenant()
    now = pipeline.stores.clock.now()
    waiting = []
    for index in range(7):
        due = now - timedelta(seconds=10 - index // 2)  # pairs share a deadline
        message = factory.message(tenant, status=S.SENT, receipt_due_at=due)
        await pipeline.stores.messages.accept(factory.acceptance(message))
        waiting.append(message.id)
    sweep = SweepOverdueReceipts(
        pipeline.stores.messages, pipeline.recorder, pipeline.stores.clock, batch=3
    )

    steps = [await sweep.step() for _ in range(4)]

    assert steps == [(3, True), (3, True), (1, False), (0, False)]
    for message_id in waiting:
        assert await pipeline.status(message_id) is S.UNKNOWN
        events = await pipeline.stores.messages.events_of(message_id)
        assert [e.status for e in events] == [S.SENT, S.UNKNOWN]


async def test_an_expire_job_from_before_the_sweep_still_ends_the_wait(pipeline: Pipeline) -> None:
    """A message sent by an older version waits on an ``expire`` job: the job still makes it
    unknown when no receipt came."""
    message = await pipeline.send()
    await pipeline.drain()
    await pipeline.stores.queue.enqueue(
        [
            NewJob(
                id=f"expire:{message.id}",
                kind="expire",
                payload={"message_id": message.id},
                run_at=pipeline.stores.clock.now(),
            )
        ]
    )
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.UNKNOWN
    assert pipeline.ran.count("expire") == 1


async def test_duplicate_receipts_change_nothing(pipeline: Pipeline) -> None:
    """The same receipt applied twice yields one delivered event."""
    message = await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    carrier_id = stored.parts[0].carrier_message_id or ""
    for _ in range(2):
        await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.DELIVRD))
    events = await pipeline.stores.messages.events_of(message.id)
    assert [e.status for e in events].count(S.DELIVERED) == 1


async def test_temporary_failure_is_retried_with_backoff(pipeline: Pipeline) -> None:
    """A temporary failure leaves the message queued, logs the attempt and retries later."""
    pipeline.script["+14155550100"] = [TemporaryFailure("busy")]
    message = await pipeline.send()
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.QUEUED
    events = await pipeline.stores.messages.events_of(message.id)
    assert events[-1].type == "message.attempt_failed"
    pipeline.stores.clock.advance(1)
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.QUEUED
    pipeline.stores.clock.advance(2)
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.SENT
    assert len(pipeline.connector.submitted) == 2


async def test_temporary_failures_past_the_budget_fail(pipeline: Pipeline) -> None:
    """When every retry fails, the message fails with the carrier's error code."""
    pipeline.script["+14155550100"] = TemporaryFailure("down")
    message = await pipeline.send()
    for _ in range(4):
        await pipeline.drain()
        pipeline.stores.clock.advance(10)
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.status is S.FAILED
    assert stored.error_code == "carrier_temporary_failure"
    assert len(pipeline.connector.submitted) == 3


async def test_permanent_failure_fails_at_once(pipeline: Pipeline) -> None:
    """A permanent carrier failure fails the message on the first attempt, with a code."""
    pipeline.script["+14155550100"] = PermanentFailure("no route")
    message = await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.status is S.FAILED
    assert stored.error_code == "carrier_rejected"


async def test_silent_carrier_ends_unknown_and_late_receipt_corrects(pipeline: Pipeline) -> None:
    """No receipt within the validity -> unknown; a late DELIVRD still makes it delivered."""
    message = await pipeline.send(validity_seconds=600)
    await pipeline.drain()
    pipeline.stores.clock.advance(600 + 11 * 60)
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.UNKNOWN
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    carrier_id = stored.parts[0].carrier_message_id or ""
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.DELIVRD))
    assert await pipeline.status(message.id) is S.DELIVERED


async def test_receipt_before_submit_result_is_parked_then_applied(pipeline: Pipeline) -> None:
    """A receipt that overtakes the submit result waits as a job and applies afterwards."""
    expected_id = "FAKE-00000001"  # the fake carrier's first id, in another letter case
    matched = await pipeline.receipts(DeliveryReceipt("fake", expected_id, ReceiptStatus.DELIVRD))
    assert not matched
    message = await pipeline.send()
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.SENT
    pipeline.stores.clock.advance(6)
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.DELIVERED


async def test_receipts_applied_together_each_get_their_own_outcome(pipeline: Pipeline) -> None:
    """``each`` applies a carrier's burst of receipts at once: every matched one moves its
    message, a repeat changes nothing, an unknown id is parked as a job, all on their own."""
    sent = [await pipeline.send(to=f"+1415555010{i}") for i in range(3)]
    await pipeline.drain()
    carrier_ids = []
    for message in sent:
        stored = await pipeline.stores.messages.get_message(message.id)
        assert stored is not None
        carrier_id = stored.parts[0].carrier_message_id
        assert carrier_id is not None
        carrier_ids.append(carrier_id)
    burst = [
        DeliveryReceipt("fake", carrier_ids[0], ReceiptStatus.DELIVRD),
        DeliveryReceipt("fake", "never-sent", ReceiptStatus.DELIVRD),
        DeliveryReceipt("fake", carrier_ids[1], ReceiptStatus.UNDELIV, "011"),
        DeliveryReceipt("fake", carrier_ids[0], ReceiptStatus.DELIVRD),
        DeliveryReceipt("fake", carrier_ids[2].lower(), ReceiptStatus.EXPIRED),
    ]

    assert await pipeline.receipts.each(burst) == [None] * len(burst)

    assert [await pipeline.status(m.id) for m in sent] == [S.DELIVERED, S.UNDELIVERED, S.EXPIRED]
    first_events = await pipeline.stores.messages.events_of(sent[0].id)
    assert [e.status for e in first_events].count(S.DELIVERED) == 1
    # One notification per message changed (none for the repeat), one parked receipt.
    assert await pipeline.stores.queue.pending() == {"notify": 3, "receipt": 1}


async def test_validity_ending_before_dispatch_expires(pipeline: Pipeline) -> None:
    """A message whose validity ended while queued expires without reaching the carrier."""
    message = await pipeline.send(validity_seconds=60)
    pipeline.stores.clock.advance(61)
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.EXPIRED
    assert pipeline.connector.submitted == []


async def test_scheduled_message_waits_for_send_at(pipeline: Pipeline) -> None:
    """send_at in the future -> scheduled, dispatched only once that time has come."""
    send_at = pipeline.stores.clock.now() + timedelta(minutes=5)
    message = await pipeline.send(send_at=send_at)
    assert message.status is S.SCHEDULED
    await pipeline.drain()
    assert pipeline.connector.submitted == []
    pipeline.stores.clock.advance(301)
    await pipeline.drain()
    assert await pipeline.status(message.id) is S.SENT


async def test_otp_is_claimed_before_marketing(pipeline: Pipeline) -> None:
    """With a marketing backlog queued, an OTP accepted later is dispatched first."""
    for n in range(5):
        await pipeline.send(body=f"promo {n}", category=Category.MARKETING)
    otp = await pipeline.send(body="code 1234", category=Category.OTP)
    jobs = await pipeline.stores.queue.claim(["dispatch"], 1, "test", 30)
    assert jobs[0].payload["message_id"] == otp.id


async def test_webhooks_are_signed_and_ordered(pipeline: Pipeline, receiver: Receiver) -> None:
    """An endpoint gets queued/sent/delivered events that verify, with growing sequences."""
    endpoint = await pipeline.endpoints.create(pipeline.caller, receiver.url, None)
    message = await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    carrier_id = stored.parts[0].carrier_message_id or ""
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.DELIVRD))
    await pipeline.drain()
    assert receiver.types() == [
        "message.queued",
        "message.sent",
        "message.delivered",
    ]
    now = int(pipeline.stores.clock.now().timestamp())
    sequences = []
    for headers, body in receiver.received:
        verify(endpoint.secret, headers, body, now)
        data = json.loads(body)["data"]
        assert data["id"] == message.id
        sequences.append(data["status_sequence"])
    assert sequences == sorted(sequences)


async def test_callback_url_gets_events_signed_with_tenant_secret(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """A message's callback_url receives its events, signed with the tenant's callback secret."""
    await pipeline.send(callback_url=receiver.url)
    await pipeline.drain()
    assert receiver.types() == ["message.queued", "message.sent"]
    secret = pipeline.callback_secret(pipeline.caller.tenant.id)
    now = int(pipeline.stores.clock.now().timestamp())
    for headers, body in receiver.received:
        verify(secret, headers, body, now)


async def test_failed_webhook_is_retried_and_every_attempt_logged(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """A 500 is retried after the backoff; both attempts are in the delivery log."""
    await pipeline.endpoints.create(pipeline.caller, receiver.url, ["message.queued"])
    receiver.status = 500
    await pipeline.send()
    await pipeline.drain()
    assert len(receiver.received) == 1
    event_id = json.loads(receiver.received[0][1])["id"]
    receiver.status = 200
    pipeline.stores.clock.advance(6)
    await pipeline.drain()
    assert len(receiver.received) == 2
    attempts = await pipeline.stores.webhooks.attempts_for(event_id)
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 200)]
    assert receiver.received[0][1] == receiver.received[1][1]


async def test_gone_endpoint_is_disabled(pipeline: Pipeline, receiver: Receiver) -> None:
    """A 410 answer disables the endpoint; later events are not sent to it."""
    endpoint = await pipeline.endpoints.create(pipeline.caller, receiver.url, None)
    receiver.status = 410
    await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.webhooks.get_endpoint(endpoint.id)
    assert stored is not None
    assert stored.disabled_at is not None
    count = len(receiver.received)
    await pipeline.send()
    await pipeline.drain()
    assert len(receiver.received) == count


async def test_events_nobody_subscribed_to_cost_no_job(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """An endpoint wanting only message.delivered costs no job for queued and sent."""
    await pipeline.endpoints.create(pipeline.caller, receiver.url, ["message.delivered"])
    message = await pipeline.send()
    await pipeline.drain()
    assert "notify" not in pipeline.ran
    assert "webhook" not in pipeline.ran
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    carrier_id = stored.parts[0].carrier_message_id or ""
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.DELIVRD))
    await pipeline.drain()
    assert pipeline.ran.count("webhook") == 1
    assert receiver.types() == ["message.delivered"]


async def test_stored_events_keep_no_webhook_data_nobody_reads_back(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """Events that go to no webhook are stored without the message's public form; an event
    whose deliveries a notify job plans keeps it, and that is what the webhook carries."""
    await pipeline.endpoints.create(pipeline.caller, receiver.url, ["message.delivered"])
    message = await pipeline.send(body="hello payloads")
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    carrier_id = stored.parts[0].carrier_message_id or ""
    await pipeline.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.DELIVRD))
    await pipeline.drain()
    events = await pipeline.stores.messages.events_of(message.id)
    assert [event.type for event in events] == [
        "message.queued",
        "message.sending",
        "message.sent",
        "message.delivered",
    ]
    assert [event.payload for event in events[:3]] == [{}, {}, {}]
    assert pipeline.ran.count("notify") == 1  # the receipt side had no endpoints cached
    data = json.loads(receiver.received[0][1])["data"]
    assert data == events[3].payload
    assert (data["id"], data["body"], data["status"]) == (message.id, "hello payloads", "delivered")
    assert (data["previous_status"], data["status_sequence"]) == ("sent", events[3].sequence)


async def test_uncached_endpoints_fall_back_to_a_notify_job(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """Recording with no endpoints cached makes a notify job, which fans out to the endpoints."""
    await pipeline.endpoints.create(pipeline.caller, receiver.url, None)
    message = await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    cold = EventRecorder(
        UlidFactory(), pipeline.stores.clock, EndpointDirectory(pipeline.stores.webhooks)
    )
    change = stored.transition(S.DELIVERED, pipeline.stores.clock.now())
    events, jobs = cold.record(stored, [change], notify=True)
    assert [job.kind for job in jobs] == ["notify"]
    assert events[0].payload["status"] == "delivered"  # the notify job reads it back
    await pipeline.stores.messages.mutate(stored.id, lambda m: Mutation(stored, events, jobs))
    pipeline.ran.clear()
    receiver.received.clear()
    await pipeline.drain()
    assert pipeline.ran.count("notify") == 1
    assert pipeline.ran.count("webhook") == 1
    assert receiver.types() == ["message.delivered"]
    data = json.loads(receiver.received[0][1])["data"]
    assert (data["id"], data["status"], data["to"]) == (message.id, "delivered", stored.to)


async def test_stale_endpoint_cache_still_counts_while_it_is_looked_up_again(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """Past its TTL a cached answer still spares the notify job and starts a lookup that
    brings in endpoints added meanwhile; past twelve TTLs it no longer counts."""
    await pipeline.endpoints.create(pipeline.caller, receiver.url, ["message.delivered"])
    message = await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    now = [100.0]
    directory = EndpointDirectory(pipeline.stores.webhooks, ttl_seconds=5, monotonic=lambda: now[0])
    recorder = EventRecorder(UlidFactory(), pipeline.stores.clock, directory)
    assert await directory.has_endpoints(stored.tenant_id)
    await pipeline.endpoints.create(pipeline.caller, receiver.url + "?second", None)
    change = stored.transition(S.DELIVERED, pipeline.stores.clock.now())

    now[0] += 6  # stale: the old answer (one endpoint) is used, a lookup starts
    _, jobs = recorder.record(stored, [change])
    assert [job.kind for job in jobs] == ["webhook"]
    await asyncio.sleep(0.05)  # let the background lookup finish
    for _ in range(100):
        cached = directory.cached(stored.tenant_id)
        if cached is not None and len(cached) == 2:
            break
        await asyncio.sleep(0.05)
    _, jobs = recorder.record(stored, [change])
    assert sorted(job.payload["url"] for job in jobs) == [receiver.url, receiver.url + "?second"]

    now[0] += 5 * 12  # far too old: nothing counts, a notify job reads the endpoints later
    _, jobs = recorder.record(stored, [change])
    assert [job.kind for job in jobs] == ["notify"]


async def test_warm_endpoint_cache_makes_webhook_jobs_with_the_status(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    """With the tenant's endpoints freshly cached, a receipt-side record needs no notify job:
    the webhook job's body carries the message and the stored event keeps no copy."""
    await pipeline.endpoints.create(pipeline.caller, receiver.url, ["message.delivered"])
    message = await pipeline.send()
    await pipeline.drain()
    stored = await pipeline.stores.messages.get_message(message.id)
    assert stored is not None
    directory = EndpointDirectory(pipeline.stores.webhooks, ttl_seconds=60)
    warm = EventRecorder(UlidFactory(), pipeline.stores.clock, directory)
    assert await directory.has_endpoints(stored.tenant_id)
    change = stored.transition(S.DELIVERED, pipeline.stores.clock.now())
    events, jobs = warm.record(stored, [change])
    assert [job.kind for job in jobs] == ["webhook"]
    assert jobs[0].payload["url"] == receiver.url
    assert events[0].payload == {}  # the delivery carries the data: nothing reads it back
    data = json.loads(str(jobs[0].payload["body"]))["data"]
    assert (data["id"], data["status"], data["body"]) == (stored.id, "delivered", stored.body)
