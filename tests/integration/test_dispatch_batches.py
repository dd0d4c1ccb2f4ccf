"""A claim's dispatch jobs run as one batch against a real SMPP carrier (our ``smsc-sim`` on
loopback): the submits that can go out at once are written together and recorded ``sent``
together; a refused one continues on its own as a single job would; the messages that do
not fit the batch are handed back untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from pigeon.clock import SystemClock
from pigeon.connectors.smpp_client import SmppClientConnector
from pigeon.connectors.smpp_settings import SmppConnectorSettings
from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant
from pigeon.domain.messages import Message, MessageStatus
from pigeon.ids import UlidFactory
from pigeon.ports import Job
from pigeon.queue import SqlJobQueue
from pigeon.services import dispatch as dispatch_module
from pigeon.services.accept import AcceptMessage, SendRequest
from pigeon.services.authenticate import Caller
from pigeon.services.dispatch import DispatchMessage, RetryPolicy, SandboxRouter
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.receipts import ApplyReceipt
from pigeon.smpp.constants import CommandStatus
from pigeon.smsc_sim import Faults, SmscSimConfig, SmscSimulator
from pigeon.store import Database, SqlAccountStore, SqlMessageStore, SqlWebhookStore
from pigeon.testing import BatchRecord


class CountingRouter(SandboxRouter):
    """The sandbox routing, noting the submits reported to it together (``submitted_many``)."""

    def __init__(self, default: SmppClientConnector, sandbox: SmppClientConnector) -> None:
        super().__init__(default, sandbox)
        self.waves: list[tuple[str, int]] = []
        self.one_by_one = 0

    def submitted(self, connector_id: str, message: Message, at: datetime) -> None:
        self.one_by_one += 1

    def submitted_many(self, connector_id: str, count: int, at: datetime) -> None:
        self.waves.append((connector_id, count))


@dataclass
class Carrier:
    """The stores, a connector bound to the simulator, and the dispatch handler."""

    messages: SqlMessageStore
    queue: SqlJobQueue
    webhooks: SqlWebhookStore
    router: CountingRouter
    dispatch: DispatchMessage
    accept: AcceptMessage
    caller: Caller


async def _carrier(
    database: Database, faults: Faults, window: int = 100, **settings: Any
) -> AsyncIterator[Carrier]:
    clock = SystemClock()
    ids = UlidFactory()
    messages = SqlMessageStore(database, clock)
    queue = SqlJobQueue(database, clock)
    webhooks = SqlWebhookStore(database)
    recorder = EventRecorder(ids, clock, EndpointDirectory(webhooks))
    sim = SmscSimulator(SmscSimConfig(port=0, receipt_delay=30, faults=faults))
    port = await sim.start()
    connector = SmppClientConnector(
        SmppConnectorSettings(
            id="carrier",
            host="127.0.0.1",
            port=port,
            system_id="pigeon",
            password="secret",
            window=window,
            **settings,
        ),
        ApplyReceipt(messages, queue, recorder, clock),
        clock,
    )
    await connector.start()
    accounts = SqlAccountStore(database)
    tenant = Tenant(ids.new("ten"), "acme", None, clock.now())
    await accounts.create_tenant(tenant)
    key = ApiKey(ids.new("key"), tenant.id, KeyMode.LIVE, Role.TENANT, "f" * 64, "pk", clock.now())
    try:
        assert await connector.wait_ready(10)
        router = CountingRouter(connector, connector)
        yield Carrier(
            messages,
            queue,
            webhooks,
            router,
            DispatchMessage(messages, queue, router, recorder, clock, ids),
            AcceptMessage(messages, clock, ids, recorder),
            Caller(tenant, key),
        )
    finally:
        await connector.stop()
        await sim.stop()


@pytest.fixture
async def carrier(database: Database) -> AsyncIterator[Carrier]:
    """A carrier that accepts every submit."""
    async for made in _carrier(database, Faults()):
        yield made


@pytest.fixture
async def narrow(database: Database) -> AsyncIterator[Carrier]:
    """A carrier that accepts every submit, through a window of 4."""
    async for made in _carrier(database, Faults(), window=4):
        yield made


@pytest.fixture
async def slow(database: Database) -> AsyncIterator[Carrier]:
    """A carrier with a window of 4 that answers each submit after 0.3 s."""
    async for made in _carrier(database, Faults(response_delay=0.3), window=4):
        yield made


@pytest.fixture
async def dropping(database: Database) -> AsyncIterator[Carrier]:
    """A carrier with a window of 4 that answers no submit and drops the connection at the
    fourth (once); the connector binds again within a fraction of a second."""
    async for made in _carrier(
        database,
        Faults(disconnect_after=4),
        window=4,
        reconnect_min_delay=0.05,
        reconnect_max_delay=0.2,
    ):
        yield made


@pytest.fixture
async def refusing(database: Database) -> AsyncIterator[Carrier]:
    """A carrier that answers every third submit with ESME_RSYSERR (a temporary refusal)."""
    async for made in _carrier(
        database, Faults(error_status=CommandStatus.ESME_RSYSERR, error_every=3)
    ):
        yield made


async def _claimed(carrier: Carrier, bodies: list[str]) -> tuple[list[str], list[Job]]:
    ids = [
        (await carrier.accept(carrier.caller, SendRequest(to="+14155550100", body=body))).message.id
        for body in bodies
    ]
    jobs = await carrier.queue.claim(["dispatch"], 100, "batch", 60)
    assert len(jobs) == len(bodies)
    await carrier.dispatch.prefetch(jobs)
    return ids, jobs


async def _sent_carrier_ids(carrier: Carrier, ids: list[str]) -> set[str]:
    """The carrier ids of messages ``ids``, each of which must be ``sent``."""
    found: set[str] = set()
    for message_id in ids:
        message = await carrier.messages.get_message(message_id)
        assert message is not None
        assert message.status is MessageStatus.SENT
        carrier_id = message.parts[0].carrier_message_id
        assert carrier_id
        found.add(carrier_id)
    return found


async def test_submits_of_a_batch_go_out_together_and_are_each_recorded_sent(
    carrier: Carrier,
) -> None:
    """30 one-segment messages: no job is handed back, each is ``sent`` with its own carrier
    id and its ``sending`` and ``sent`` events, every job is completed, and routing hears of
    the submits a wave at a time."""
    ids, jobs = await _claimed(carrier, [f"batch {n}" for n in range(30)])
    handed = BatchRecord()
    await carrier.dispatch.run_each(handed.batch(jobs))
    assert handed.alone == []
    assert handed.released == 30
    carrier_ids = set()
    for message_id in ids:
        message = await carrier.messages.get_message(message_id)
        assert message is not None
        assert message.status is MessageStatus.SENT
        assert message.attempts == 1
        assert message.connector_id == "carrier"
        assert len(message.parts) == 1
        assert message.parts[0].carrier_message_id
        carrier_ids.add(message.parts[0].carrier_message_id)
        types = [event.type for event in await carrier.messages.events_of(message_id)]
        assert types[-2:] == ["message.sending", "message.sent"]
    assert len(carrier_ids) == 30
    assert await carrier.queue.claim(["dispatch"], 100, "after", 60) == []
    # Routing learns of the 30 submits once per wave of answers, not once per message.
    assert carrier.router.one_by_one == 0
    assert {connector for connector, _ in carrier.router.waves} == {"carrier"}
    assert sum(count for _, count in carrier.router.waves) == 30


async def test_a_batch_larger_than_the_window_waits_for_slots_in_the_batch(
    narrow: Carrier,
) -> None:
    """25 messages through a window of 4: each waits in the batch for a slot its earlier
    submits free, none is handed back to wait in a task of its own, and all are ``sent``
    with distinct carrier ids."""
    ids, jobs = await _claimed(narrow, [f"narrow {n}" for n in range(25)])
    handed = BatchRecord()
    await narrow.dispatch.run_each(handed.batch(jobs))
    assert handed.alone == []
    assert handed.released == 25
    assert len(await _sent_carrier_ids(narrow, ids)) == 25
    assert sum(count for _, count in narrow.router.waves) == 25


async def test_a_long_message_behind_a_full_window_starts_in_the_batch_once_a_slot_frees(
    narrow: Carrier,
) -> None:
    """Behind four short messages filling the window, a two-segment message waits in the
    batch; when a slot frees it starts there (a further segment waits for a slot of its
    own), and it and the short message after it are ``sent`` in the batch, none alone."""
    bodies = [f"first {n}" for n in range(4)] + ["y" * 200, "last"]
    ids, jobs = await _claimed(narrow, bodies)
    handed = BatchRecord()
    await narrow.dispatch.run_each(handed.batch(jobs))
    assert handed.alone == []
    assert handed.released == 6
    assert len(await _sent_carrier_ids(narrow, ids)) == 6
    long = await narrow.messages.get_message(ids[4])
    assert long is not None
    assert [part.index for part in long.parts] == [0, 1]
    assert all(part.carrier_message_id for part in long.parts)


async def test_batches_that_find_the_window_full_wait_in_line_in_their_batch(
    narrow: Carrier,
) -> None:
    """Two claims dispatched at once through a window of 4: the second finds every slot
    taken by the first, and its messages still wait for slots in their batch (none is handed
    back to wait in a task of its own); all 14 are ``sent``."""
    ids, jobs = await _claimed(narrow, [f"crowd {n}" for n in range(14)])
    first, second = BatchRecord(), BatchRecord()
    await asyncio.gather(
        narrow.dispatch.run_each(first.batch(jobs[:6])),
        narrow.dispatch.run_each(second.batch(jobs[6:])),
    )
    assert first.alone == []
    assert second.alone == []
    assert (first.released, second.released) == (6, 8)
    assert len(await _sent_carrier_ids(narrow, ids)) == 14


async def test_messages_waiting_for_a_slot_too_long_go_on_alone(
    slow: Carrier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With slots freed only every 0.3 s and a batch wait of 0.05 s, the messages beyond the
    window are handed back untouched to wait on their own, and then sent that way."""
    monkeypatch.setattr(dispatch_module, "DEFERRED_WAIT", 0.05)
    ids, jobs = await _claimed(slow, [f"slow {n}" for n in range(6)])
    handed = BatchRecord()
    await slow.dispatch.run_each(handed.batch(jobs))
    assert sorted(job.payload["message_id"] for job, _ in handed.alone) == sorted(ids[4:])
    assert all(run is None for _, run in handed.alone)
    for message_id in ids[4:]:
        untouched = await slow.messages.get_message(message_id)
        assert untouched is not None
        assert untouched.status is MessageStatus.QUEUED
    await asyncio.gather(*(slow.dispatch(job) for job, _ in handed.alone))
    assert len(await _sent_carrier_ids(slow, ids)) == 6


async def test_a_lost_connection_hands_every_message_of_the_batch_back(
    dropping: Carrier,
) -> None:
    """The connection drops with the window full and six messages waiting for a slot: the
    four unanswered submits go back with their failure, the six waiting ones go back
    untouched, and nothing stays held. Run on their own while the carrier is down, all ten
    record a failed attempt and a retry; when the retries come due the connector has bound
    again and every message is sent."""
    ids, jobs = await _claimed(dropping, [f"dropped {n}" for n in range(10)])
    handed = BatchRecord()
    await dropping.dispatch.run_each(handed.batch(jobs))
    assert handed.released == 10
    assert len(handed.alone) == 10
    assert sum(run is not None for _, run in handed.alone) == 4
    await asyncio.gather(
        *(run() if run is not None else dropping.dispatch(job) for job, run in handed.alone)
    )
    for message_id in ids:
        message = await dropping.messages.get_message(message_id)
        assert message is not None
        assert message.status is MessageStatus.QUEUED
        assert message.attempts == 1
    await asyncio.sleep(RetryPolicy().delays[0] + 0.2)  # the first retry's delay
    retried = await dropping.queue.claim(["dispatch"], 100, "again", 60)
    assert sorted(job.payload["message_id"] for job in retried) == sorted(ids)
    await asyncio.gather(*(dropping.dispatch(job) for job in retried))  # retries run alone
    assert len(await _sent_carrier_ids(dropping, ids)) == 10


async def test_a_refused_submit_of_a_batch_continues_on_its_own(refusing: Carrier) -> None:
    """Of 9 messages the carrier refuses 3 (temporarily): those are handed back with the
    rest of their dispatch, which records the failed attempt and schedules a retry, as a
    single job does; the other 6 are ``sent``."""
    ids, jobs = await _claimed(refusing, [f"refused {n}" for n in range(9)])
    handed = BatchRecord()
    await refusing.dispatch.run_each(handed.batch(jobs))
    assert len(handed.alone) == 3
    assert handed.released == 9  # 6 jobs finished, 3 handed on
    for _, run in handed.alone:
        assert run is not None
        await run()
    statuses = []
    for message_id in ids:
        message = await refusing.messages.get_message(message_id)
        assert message is not None
        statuses.append(message.status)
        if message.status is MessageStatus.QUEUED:
            assert message.attempts == 1
            events = await refusing.messages.events_of(message_id)
            assert events[-1].type == "message.attempt_failed"
            assert "retry at" in (events[-1].detail or "")
    assert statuses.count(MessageStatus.SENT) == 6
    assert statuses.count(MessageStatus.QUEUED) == 3
    retried = {job.id for job, _ in handed.alone}
    assert await refusing.queue.claim(["dispatch"], 100, "after", 60) == []  # due later
    assert retried <= {job.id for job in jobs}


async def test_a_long_message_is_sent_in_the_batch_with_every_part(
    carrier: Carrier,
) -> None:
    """A two-segment message beside a one-segment one: both are submitted in the batch (none
    goes back to run alone), and the long one is ``sent`` with a carrier id per part."""
    long_body = "x" * 200
    ids, jobs = await _claimed(carrier, ["short", long_body])
    handed = BatchRecord()
    await carrier.dispatch.run_each(handed.batch(jobs))
    assert handed.alone == []
    assert handed.released == 2
    assert len(await _sent_carrier_ids(carrier, ids)) == 2
    long = await carrier.messages.get_message(ids[1])
    assert long is not None
    assert long.attempts == 1
    assert len({part.carrier_message_id for part in long.parts}) == 2


class _Unreadable(EventRecorder):
    """A recorder whose endpoint lookup fails (the webhook store cannot be read)."""

    async def endpoints_listening(self, tenant_id: str) -> bool:
        raise ConnectionError("the endpoints cannot be read")


async def test_a_batch_that_cannot_read_the_endpoints_hands_its_jobs_back_unsent(
    carrier: Carrier,
) -> None:
    """When whether anyone listens cannot be found out, no submit is started: every job goes
    back to run (and fail, if it must) on its own."""
    ids, jobs = await _claimed(carrier, ["one", "two"])
    dispatch = DispatchMessage(
        carrier.messages,
        carrier.queue,
        carrier.router,
        _Unreadable(UlidFactory(), SystemClock(), EndpointDirectory(carrier.webhooks)),
        SystemClock(),
        UlidFactory(),
    )
    await dispatch.prefetch(jobs)
    record = BatchRecord()
    await dispatch.run_each(record.batch(jobs))
    assert [(job.id, run) for job, run in record.alone] == [(job.id, None) for job in jobs]
    for message_id in ids:
        message = await carrier.messages.get_message(message_id)
        assert message is not None
        assert message.status is MessageStatus.QUEUED
        assert message.attempts == 0
