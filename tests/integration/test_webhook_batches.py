"""A claim's webhook jobs run as one batch, on real stores and a real HTTP receiver on
loopback: the deliveries that find an idle connection are posted at once and logged (their
jobs completed) together; the others, and the answers that did not deliver, go on on their
own as a single job would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from pigeon.domain.accounts import Tenant
from pigeon.ids import UlidFactory
from pigeon.ports import EventRecord, Job, WebhookEndpoint
from pigeon.services import notify
from pigeon.services.events import EndpointDirectory
from pigeon.services.notify import CALLBACK_TARGET, DeliverWebhook, webhook_jobs
from pigeon.testing import BatchRecord
from pigeon.webhooks.sender import HttpWebhookSender
from pigeon.webhooks.signing import new_secret, signature_headers, verify

if TYPE_CHECKING:
    from conftest import Stores


@dataclass
class Hook:
    """An aiohttp receiver answering ``status``, and the bodies and headers it got."""

    url: str = ""
    status: int = 204
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    #: Answers are held while it is clear.
    gate: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def _listening() -> AsyncIterator[Hook]:
    """A webhook receiver on an ephemeral loopback port, open (its gate set) until the end."""
    state = Hook()
    state.gate.set()

    async def handle(request: web.Request) -> web.Response:
        state.received.append((dict(request.headers), await request.read()))
        await state.gate.wait()
        return web.Response(status=state.status)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    state.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    """A webhook receiver on an ephemeral loopback port."""
    async with _listening() as state:
        yield state


@dataclass
class Deliveries:
    """The handler under test, its sender and an endpoint of a tenant pointing at the hook."""

    handler: DeliverWebhook
    sender: HttpWebhookSender
    endpoint: WebhookEndpoint
    tenant: Tenant
    directory: EndpointDirectory

    async def warm_handler(self, stores: Stores, url: str, connections: int) -> DeliverWebhook:
        """Another handler, on its own sender capped at ``connections`` to the hook, all of
        them open and idle (closed with the fixture's sender)."""
        sender = HttpWebhookSender(limit_per_host=connections)
        await asyncio.gather(*(sender.send(url, {}, b"{}", 5) for _ in range(connections)))
        self.others.append(sender)
        return _handler(stores, sender, self.directory)

    others: list[HttpWebhookSender] = field(default_factory=list)


def _handler(
    stores: Stores, sender: HttpWebhookSender, directory: EndpointDirectory
) -> DeliverWebhook:
    return DeliverWebhook(
        stores.webhooks,
        stores.queue,
        sender,
        signature_headers,
        lambda _: "whsec_" + "Y2FsbGJhY2stc2VjcmV0LWZvci10ZXN0cw==",
        stores.clock,
        UlidFactory(),
        timeout=5,
        endpoints=directory,
    )


@pytest.fixture
async def deliveries(stores: Stores, hook: Hook) -> AsyncIterator[Deliveries]:
    """A ``DeliverWebhook`` with a warm endpoint cache and four idle connections to the hook."""
    ids = UlidFactory()
    now = stores.clock.now()
    tenant = Tenant(ids.new("ten"), "acme", None, now)
    await stores.accounts.create_tenant(tenant)
    endpoint = WebhookEndpoint(ids.new("whe"), tenant.id, hook.url, (), new_secret(), now)
    await stores.webhooks.create_endpoint(endpoint)
    directory = EndpointDirectory(stores.webhooks, ttl_seconds=3600)
    assert await directory.has_endpoints(tenant.id)
    sender = HttpWebhookSender(limit_per_host=8)
    await asyncio.gather(*(sender.send(hook.url, {}, b"{}", 5) for _ in range(4)))
    hook.received.clear()
    made = Deliveries(_handler(stores, sender, directory), sender, endpoint, tenant, directory)
    yield made
    for used in (sender, *made.others):
        await used.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _claim(
    stores: Stores, deliveries: Deliveries, events: int, *extra: str, first: int = 0
) -> list[Job]:
    """Webhook jobs for ``events`` events (numbered from ``first``) to the endpoint, and one
    to each ``extra`` target (an endpoint id, or ``callback`` to a closed port), claimed."""
    now = stores.clock.now()
    jobs = []
    for n in range(first, first + events + len(extra)):
        event = EventRecord(
            f"evt_{n}", deliveries.tenant.id, None, "message.sent", None, n, now, None, {"n": n}
        )
        made = webhook_jobs(event, [deliveries.endpoint], None)
        if n >= first + events:
            target = extra[n - first - events]
            url = f"http://127.0.0.1:{_closed_port()}/gone"
            made = [
                job.__class__(
                    id=f"{job.id}:{target}",
                    kind=job.kind,
                    payload={**job.payload, "target": target, "url": url},
                    run_at=job.run_at,
                    priority=job.priority,
                )
                for job in made
            ]
        jobs.extend(made)
    await stores.queue.enqueue(jobs)
    claimed = await stores.queue.claim(["webhook"], 100, "batch", 60)
    assert len(claimed) == len(jobs)
    return claimed


async def test_deliveries_of_a_batch_are_posted_and_logged_together(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """Three deliveries on three idle connections: each is posted, signed, logged as
    delivered and its job completed, without a job handed back; one to a target whose
    endpoint is not cached and one to an unreachable callback URL are handed back."""
    jobs = await _claim(stores, deliveries, 3, "whe_not_there", CALLBACK_TARGET)
    record = BatchRecord()
    await deliveries.handler.run_each(record.batch(jobs))
    assert len(hook.received) == 3
    now = int(stores.clock.now().timestamp())
    for headers, body in hook.received:
        verify(deliveries.endpoint.secret, headers, body, now)
    assert sorted(json.loads(body)["id"] for _, body in hook.received) == [
        "evt_0",
        "evt_1",
        "evt_2",
    ]
    for n in range(3):
        [attempt] = await stores.webhooks.attempts_for(f"evt_{n}")
        assert attempt.status_code == 204
        assert attempt.endpoint_id == deliveries.endpoint.id
    handed = {str(job.payload["target"]): run for job, run in record.alone}
    assert set(handed) == {"whe_not_there", CALLBACK_TARGET}
    assert handed["whe_not_there"] is None  # the handler looks it up on its own
    assert record.released == 5
    assert await stores.queue.pending() == {"webhook": 2}  # the two handed back, still leased
    callback = handed[CALLBACK_TARGET]
    assert callback is not None
    await callback()  # connection refused: logged, and retried later
    [attempt] = await stores.webhooks.attempts_for("evt_4")
    assert attempt.status_code is None
    assert "connect" in (attempt.error or "")


async def test_answers_that_do_not_deliver_go_on_as_single_jobs(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """Answered 500: both deliveries are handed back with their answer, and concluding
    them logs the status and schedules the retry, as a single job does."""
    hook.status = 500
    jobs = await _claim(stores, deliveries, 2)
    record = BatchRecord()
    await deliveries.handler.run_each(record.batch(jobs))
    assert len(hook.received) == 2
    assert len(record.alone) == 2
    assert await stores.webhooks.attempts_for("evt_0") == []  # not logged until concluded
    for _, run in record.alone:
        assert run is not None
        await run()
    for n in range(2):
        [attempt] = await stores.webhooks.attempts_for(f"evt_{n}")
        assert attempt.status_code == 500
    assert await stores.queue.claim(["webhook"], 10, "later", 60) == []  # due after backoff
    stores.clock.advance(10)
    again = await stores.queue.claim(["webhook"], 10, "later", 60)
    assert sorted(job.id for job in again) == sorted(job.id for job in jobs)
    assert all(job.attempts == 1 for job in again)


async def test_deliveries_beyond_the_idle_connections_go_out_as_answers_free_them(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """Ten deliveries, four idle connections: the batch posts four, then the others on the
    connections their answers free, and hands none back."""
    jobs = await _claim(stores, deliveries, 10)
    record = BatchRecord()
    await deliveries.handler.run_each(record.batch(jobs))
    assert record.alone == []
    assert record.released == 10
    assert len(hook.received) == 10
    assert await stores.queue.pending() == {}


async def test_a_batch_finding_every_connection_held_by_another_waits_for_them_in_batch(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """Two batches of ten at once on four connections (the cap), all idle: the first takes
    them, the second finds none and waits for them in its batch (``connection_wait``)
    instead of handing its deliveries back; all twenty are delivered and logged."""
    handler = await deliveries.warm_handler(stores, hook.url, 4)
    hook.received.clear()
    first = await _claim(stores, deliveries, 10)
    second = await _claim(stores, deliveries, 10, first=10)
    records = [BatchRecord(), BatchRecord()]
    await asyncio.gather(
        handler.run_each(records[0].batch(first)), handler.run_each(records[1].batch(second))
    )
    assert [record.alone for record in records] == [[], []]
    assert [record.released for record in records] == [10, 10]
    assert len(hook.received) == 20
    assert await stores.queue.pending() == {}
    for n in (0, 10, 19):
        [attempt] = await stores.webhooks.attempts_for(f"evt_{n}")
        assert attempt.status_code == 204


async def test_deliveries_waiting_in_batch_past_the_bound_go_on_on_their_own(
    stores: Stores, deliveries: Deliveries, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When no connection comes free within ``CONNECTION_WAIT`` (the receiver holds every
    answer), the waiting batch hands its deliveries back; they are delivered on their own
    once the receiver answers, as are the first batch's."""
    monkeypatch.setattr(notify, "CONNECTION_WAIT", 0.2)
    handler = await deliveries.warm_handler(stores, hook.url, 2)
    hook.received.clear()
    hook.gate.clear()
    first = await _claim(stores, deliveries, 2)
    second = await _claim(stores, deliveries, 3, first=2)
    records = [BatchRecord(), BatchRecord()]
    holding = asyncio.ensure_future(handler.run_each(records[0].batch(first)))
    try:
        for _ in range(500):  # until the first batch holds both connections
            if len(hook.received) == 2:
                break
            await asyncio.sleep(0.01)
        await handler.run_each(records[1].batch(second))
        assert not holding.done()
    finally:
        hook.gate.set()
    assert sorted(str(job.payload["event_id"]) for job, _ in records[1].alone) == [
        "evt_2",
        "evt_3",
        "evt_4",
    ]
    await holding
    assert records[0].alone == []
    for _, run in records[1].alone:
        assert run is not None
        await run()
    assert len(hook.received) == 5
    assert await stores.queue.pending() == {}
    for n in range(5):
        [attempt] = await stores.webhooks.attempts_for(f"evt_{n}")
        assert attempt.status_code == 204


def _sharing(stores: Stores, deliveries: Deliveries, slots: int) -> DeliverWebhook:
    """A handler on the fixture's sender whose receivers hold at most ``slots`` slots each."""
    return DeliverWebhook(
        stores.webhooks,
        stores.queue,
        deliveries.sender,
        signature_headers,
        lambda _: "whsec_" + "Y2FsbGJhY2stc2VjcmV0LWZvci10ZXN0cw==",
        stores.clock,
        UlidFactory(),
        timeout=5,
        endpoints=deliveries.directory,
        slots_per_host=slots,
    )


async def _answered_slowly(handler: DeliverWebhook, hook: Hook, job: Job) -> None:
    """Run ``job`` through ``handler`` with the hook answering after 0.6 s (well above
    ``SLOW_ANSWER``, whatever the endpoint's look-up took first): the handler now knows the
    hook as a slow receiver."""
    hook.gate.clear()
    running = asyncio.ensure_future(handler(job))
    await asyncio.sleep(0.6)
    hook.gate.set()
    await running
    hook.received.clear()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (up to 5 s) until ``condition`` holds."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_a_receiver_holding_its_share_leaves_the_other_slots_to_another(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """A receiver known to answer slowly may hold 2 slots: of a batch of five deliveries to
    it and two to another tenant's receiver, two are posted to it, the other three go back
    to the queue untried (not leased, no attempt counted, due again later), and the other
    receiver gets its two at once, while the first still holds its answers."""
    async with _listening() as other:
        ids = UlidFactory()
        now = stores.clock.now()
        tenant = Tenant(ids.new("ten"), "globex", None, now)
        await stores.accounts.create_tenant(tenant)
        endpoint = WebhookEndpoint(ids.new("whe"), tenant.id, other.url, (), new_secret(), now)
        await stores.webhooks.create_endpoint(endpoint)
        assert await deliveries.directory.has_endpoints(tenant.id)
        handler = _sharing(stores, deliveries, 2)
        # Two idle connections to the other receiver, as the hook has four.
        await asyncio.gather(*(deliveries.sender.send(other.url, {}, b"{}", 5) for _ in "ab"))
        other.received.clear()
        [warm] = await _claim(stores, deliveries, 1, first=100)
        await _answered_slowly(handler, hook, warm)
        hook.gate.clear()
        jobs = []
        for n in range(7):
            owner = (deliveries.tenant, deliveries.endpoint) if n < 5 else (tenant, endpoint)
            event = EventRecord(
                f"evt_{n}", owner[0].id, None, "message.sent", None, n, now, None, {"n": n}
            )
            jobs.extend(webhook_jobs(event, [owner[1]], None))
        await stores.queue.enqueue(jobs)
        claimed = await stores.queue.claim(["webhook"], 100, "batch", 60)
        record = BatchRecord()
        running = asyncio.ensure_future(handler.run_each(record.batch(claimed)))
        try:
            await _until(lambda: len(other.received) == 2 and len(hook.received) == 2)
            await _until(lambda: record.released == 5)  # three given back, two delivered
            assert not running.done()
            assert await stores.queue.claim(["webhook"], 100, "now", 60) == []
        finally:
            hook.gate.set()
        await running
        assert record.alone == []
        assert record.released == 7
        assert len(hook.received) == 2
        stores.clock.advance(61)  # past the spacing's bound
        back = await stores.queue.claim(["webhook"], 100, "later", 60)
        assert len(back) == 3
        assert {job.attempts for job in back} == {0}
        assert {str(job.payload["url"]) for job in back} == {hook.url}
        for n in range(5, 7):
            [attempt] = await stores.webhooks.attempts_for(f"evt_{n}")
            assert attempt.status_code == 204


async def test_a_single_delivery_beyond_its_receivers_share_is_given_back(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """A slow receiver's share of one slot held by a delivery it has not answered, a second
    delivery to it run on its own is given back untried at once; once answered, the next
    one goes out."""
    handler = _sharing(stores, deliveries, 1)
    warm, first, second = await _claim(stores, deliveries, 3)
    await _answered_slowly(handler, hook, warm)
    hook.gate.clear()
    holding = asyncio.ensure_future(handler(first))
    try:
        await _until(lambda: len(hook.received) == 1)
        await asyncio.wait_for(handler(second), 5)
        assert await stores.webhooks.attempts_for(str(second.payload["event_id"])) == []
        assert not holding.done()
    finally:
        hook.gate.set()
    await holding
    stores.clock.advance(61)
    [back] = await stores.queue.claim(["webhook"], 10, "later", 60)
    assert (back.id, back.attempts) == (second.id, 0)
    await handler(back)
    assert len(hook.received) == 2


async def test_a_fast_receiver_past_its_share_for_a_moment_is_not_held_to_it(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """A receiver whose answers come at once may hold more than its share (a claim's batch
    between its posts and their answers): a batch of ten with a share of two posts all ten
    and gives none back."""
    handler = _sharing(stores, deliveries, 2)
    [warm] = await _claim(stores, deliveries, 1, first=100)
    await handler(warm)
    hook.received.clear()
    jobs = await _claim(stores, deliveries, 10)
    record = BatchRecord()
    await handler.run_each(record.batch(jobs))
    assert record.alone == []
    assert record.released == 10
    assert len(hook.received) == 10
    assert await stores.queue.pending() == {}


async def test_a_receiver_holding_its_share_unanswered_counts_as_slow(
    stores: Stores, deliveries: Deliveries, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that has not answered once yet, holding its whole share of two slots for
    longer than ``SLOW_ANSWER``, is slow: a further batch of three to it is given back
    untried, and the log says so once."""
    handler = _sharing(stores, deliveries, 2)
    hook.gate.clear()
    first = await _claim(stores, deliveries, 2)
    record = BatchRecord()
    holding = asyncio.ensure_future(handler.run_each(record.batch(first)))
    try:
        await _until(lambda: len(hook.received) == 2)
        await asyncio.sleep(notify.SLOW_ANSWER + 0.05)
        later = await _claim(stores, deliveries, 3, first=2)
        again = BatchRecord()
        with caplog.at_level(logging.WARNING, logger="pigeon.services.notify"):
            await asyncio.wait_for(handler.run_each(again.batch(later)), 5)
        assert (again.released, again.alone) == (3, [])
        assert len(hook.received) == 2
        assert [r.getMessage() for r in caplog.records if "is slow" in r.getMessage()] == [
            f"webhook receiver {hook.url.removesuffix('/hook')} is slow (no answer yet): with "
            "the other slow ones, its deliveries beyond 2 at once wait in the queue"
        ]
    finally:
        hook.gate.set()
    await holding
    stores.clock.advance(61)
    back = await stores.queue.claim(["webhook"], 10, "later", 60)
    assert sorted(str(job.payload["event_id"]) for job in back) == ["evt_2", "evt_3", "evt_4"]
    assert {job.attempts for job in back} == {0}


async def test_slow_receivers_share_one_share_between_them(
    stores: Stores, deliveries: Deliveries, hook: Hook
) -> None:
    """Two receivers known to answer slowly, a share of three slots: with two held by the
    first, a batch of three to the second gets one slot and gives two back untried."""
    handler = _sharing(stores, deliveries, 3)
    async with _listening() as other:
        ids = UlidFactory()
        now = stores.clock.now()
        tenant = Tenant(ids.new("ten"), "initech", None, now)
        await stores.accounts.create_tenant(tenant)
        endpoint = WebhookEndpoint(ids.new("whe"), tenant.id, other.url, (), new_secret(), now)
        await stores.webhooks.create_endpoint(endpoint)
        assert await deliveries.directory.has_endpoints(tenant.id)

        async def claimed_for_other(numbers: range) -> list[Job]:
            made = []
            for n in numbers:
                event = EventRecord(
                    f"evt_{n}", tenant.id, None, "message.sent", None, n, now, None, {"n": n}
                )
                made.extend(webhook_jobs(event, [endpoint], None))
            await stores.queue.enqueue(made)
            return await stores.queue.claim(["webhook"], 100, "other", 60)

        [warm] = await _claim(stores, deliveries, 1, first=100)
        await _answered_slowly(handler, hook, warm)
        [warm_other] = await claimed_for_other(range(200, 201))
        await _answered_slowly(handler, other, warm_other)
        hook.gate.clear()
        other.gate.clear()
        first = await _claim(stores, deliveries, 2)
        held = BatchRecord()
        holding = asyncio.ensure_future(handler.run_each(held.batch(first)))
        second = BatchRecord()
        try:
            await _until(lambda: len(hook.received) == 2)
            later = await claimed_for_other(range(10, 13))
            running = asyncio.ensure_future(handler.run_each(second.batch(later)))
            await _until(lambda: len(other.received) == 1 and second.released == 2)
            assert not running.done()
        finally:
            hook.gate.set()
            other.gate.set()
        await holding
        await running
        assert (second.released, second.alone) == (3, [])
        assert len(other.received) == 1
        stores.clock.advance(61)
        back = await stores.queue.claim(["webhook"], 10, "later", 60)
        assert len(back) == 2
        assert {str(job.payload["url"]) for job in back} == {other.url}
