"""The pipeline through a real SMPP carrier link: accept -> SMPP submit -> receipt -> final.

The carrier is our ``smsc-sim`` on loopback, here made to drop the connection in the middle of
a full window; the client connector must reconnect and every accepted message still reach a
final status.
"""

from __future__ import annotations

import asyncio
import time

from pigeon.clock import SystemClock
from pigeon.connectors.smpp_client import SmppClientConnector
from pigeon.connectors.smpp_settings import SmppConnectorSettings
from pigeon.domain.accounts import ApiKey, KeyMode, Role, Tenant
from pigeon.domain.messages import MessageStatus
from pigeon.ids import UlidFactory
from pigeon.queue import SqlJobQueue
from pigeon.services.accept import AcceptMessage, SendRequest
from pigeon.services.authenticate import Caller
from pigeon.services.dispatch import DispatchMessage, ExpireMessage, RetryPolicy, SandboxRouter
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.receipts import ApplyReceipt
from pigeon.services.worker import JobRunner
from pigeon.smsc_sim import Faults, SmscSimConfig, SmscSimulator
from pigeon.store import Database, SqlAccountStore, SqlMessageStore, SqlWebhookStore

FINAL = {
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.EXPIRED,
    MessageStatus.FAILED,
    MessageStatus.REJECTED,
    MessageStatus.UNKNOWN,
}


async def test_carrier_dropping_mid_window_loses_no_message(database: Database) -> None:
    """A disconnect with a full window in flight: reconnect, retry, every message final."""
    clock = SystemClock()
    ids = UlidFactory()
    messages = SqlMessageStore(database, clock)
    accounts = SqlAccountStore(database)
    queue = SqlJobQueue(database, clock)
    recorder = EventRecorder(ids, clock, EndpointDirectory(SqlWebhookStore(database)))
    receipts = ApplyReceipt(messages, queue, recorder, clock)
    sim = SmscSimulator(
        SmscSimConfig(
            port=0,
            receipt_delay=0.05,
            window=200,
            faults=Faults(disconnect_after=40, disconnect_times=1),
        )
    )
    port = await sim.start()
    connector = SmppClientConnector(
        SmppConnectorSettings(
            id="carrier",
            host="127.0.0.1",
            port=port,
            system_id="pigeon",
            password="secret",
            window=100,
            reconnect_min_delay=0.05,
            reconnect_max_delay=0.2,
            response_timeout=2,
        ),
        receipts,
        clock,
    )
    await connector.start()
    tenant = Tenant(ids.new("ten"), "acme", None, clock.now())
    await accounts.create_tenant(tenant)
    key = ApiKey(ids.new("key"), tenant.id, KeyMode.LIVE, Role.TENANT, "e" * 64, "pk", clock.now())
    caller = Caller(tenant, key)
    accept = AcceptMessage(messages, clock, ids, recorder)
    runner = JobRunner(
        queue,
        {
            "dispatch": DispatchMessage(
                messages,
                queue,
                SandboxRouter(connector, connector),
                recorder,
                clock,
                ids,
                RetryPolicy(delays=(0.2, 0.5, 1, 1, 1, 1, 1, 1)),
            ),
            "receipt": receipts.from_job,
            "expire": ExpireMessage(messages, recorder, clock),
        },
        clock,
        "test-runner",
        idle_seconds=0.05,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        assert await connector.wait_ready(10)
        accepted = await asyncio.gather(
            *(
                accept(caller, SendRequest(to="+14155550100", body=f"window test {n}"))
                for n in range(200)
            )
        )
        pending = {result.message.id for result in accepted}
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            for message_id in list(pending):
                message = await messages.get_message(message_id)
                assert message is not None
                if message.status in FINAL:
                    pending.discard(message_id)
            await asyncio.sleep(0.2)
        assert sim.stats.disconnects >= 1
        assert not pending, f"{len(pending)} messages never reached a final status"
        delivered = [
            m for r in accepted if (m := await messages.get_message(r.message.id)) is not None
        ]
        assert all(m.status is MessageStatus.DELIVERED for m in delivered)
    finally:
        stop.set()
        await running
        await connector.stop()
        await sim.stop()
