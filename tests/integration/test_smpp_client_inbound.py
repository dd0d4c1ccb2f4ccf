"""What the SMPP client connector receives from our SMSC simulator: receipts and MO.

Receipts reach the sink with the carrier's id exactly as sent, before deliver_sm_resp; MO
parts are reassembled (UDH 8/16-bit, SAR, message_payload) and given whole to the MO sink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from pigeon.connectors.smpp_client import (
    InboundMessage,
    SmppClientConnector,
    SmppConnectorSettings,
)
from pigeon.domain.encoding import analyse
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.smpp import tlv
from pigeon.smpp.constants import MessageState, MessageType
from pigeon.smpp.pdu import DeliverSm
from pigeon.smsc_sim import Faults, SmscSimConfig, SmscSimulator
from pigeon.testing import FakeClock

LONG_MO = "Reply from the handset, long enough to need several parts: " + "xyz " * 60
LONG_MO_UCS2 = "Ответ абонента, достаточно длинный для нескольких частей 🐦 " * 3


def message(body: str = "Your code is 123456", to: str = "+447700900123") -> Message:
    """A queued MT message as dispatch hands it to a connector."""
    info = analyse(body)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Message(
        id="msg_test",
        tenant_id="ten_test",
        direction=Direction.MT,
        to=to,
        sender="Pigeon",
        body=body,
        category=Category.TRANSACTIONAL,
        encoding=info.encoding.value,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )


class Recorder:
    """Receipt and MO sinks that record what they get (and the order of events)."""

    def __init__(self) -> None:
        self.receipts: list[DeliveryReceipt] = []
        self.inbound: list[InboundMessage] = []
        self.events: list[str] = []
        self.fail_receipts = 0
        self.fail_mo = 0

    async def receipt(self, receipt: DeliveryReceipt) -> None:
        if self.fail_receipts:
            self.fail_receipts -= 1
            raise RuntimeError("store unavailable")
        self.receipts.append(receipt)
        self.events.append(f"receipt {receipt.carrier_message_id}")

    async def mo(self, inbound: InboundMessage) -> None:
        if self.fail_mo:
            self.fail_mo -= 1
            raise RuntimeError("store unavailable")
        self.inbound.append(inbound)


Factory = Callable[..., Awaitable[tuple[SmscSimulator, SmppClientConnector, Recorder]]]


@pytest.fixture
async def carrier() -> AsyncIterator[Factory]:
    """Builds a started simulator and a connector bound to it, with recording sinks."""
    made: list[tuple[SmscSimulator, SmppClientConnector]] = []

    async def make(
        sim_config: SmscSimConfig | None = None, *, mo: bool = True, **settings: Any
    ) -> tuple[SmscSimulator, SmppClientConnector, Recorder]:
        sim = SmscSimulator(sim_config or SmscSimConfig(port=0, receipt_delay=0.01))
        port = await sim.start()
        options: dict[str, Any] = {
            "id": "carrier",
            "host": "127.0.0.1",
            "port": port,
            "system_id": "pigeon",
            "password": "secret",
            "response_timeout": 2.0,
            "reconnect_min_delay": 0.05,
            "drain_timeout": 0.5,
            "unbind_timeout": 0.5,
        }
        options.update(settings)
        recorder = Recorder()
        connector = SmppClientConnector(
            SmppConnectorSettings(**options),
            recorder.receipt,
            FakeClock(),
            recorder.mo if mo else None,
        )
        made.append((sim, connector))
        await connector.start()
        return sim, connector, recorder

    yield make
    for sim, connector in made:
        await connector.stop()
        await sim.stop()


# --- receipts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "receipt_ids"),
    [("hex", None), ("HEX", None), ("decimal", None), ("hex", "decimal"), ("decimal", "HEX")],
)
async def test_receipts_carry_the_id_as_the_carrier_sent_it(
    carrier: Factory, ids: str, receipt_ids: str | None
) -> None:
    """The sink gets the receipt's id verbatim, whatever its format vs submit_sm_resp's."""
    config = SmscSimConfig(port=0, receipt_delay=0.01, message_ids=ids, receipt_ids=receipt_ids)  # type: ignore[arg-type]
    sim, connector, recorder = await carrier(config)
    result = await connector.submit(message())
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1)
    [submitted] = result.carrier_message_ids
    number = config.id_start
    expected_submit = {"hex": f"{number:x}", "HEX": f"{number:X}", "decimal": str(number)}[ids]
    expected_receipt = {"hex": f"{number:x}", "HEX": f"{number:X}", "decimal": str(number)}[
        receipt_ids or ids
    ]
    assert submitted == expected_submit
    [receipt] = recorder.receipts
    assert receipt.carrier_message_id == expected_receipt
    assert (receipt.connector_id, receipt.status) == ("carrier", ReceiptStatus.DELIVRD)


async def test_receipt_text_only_is_parsed(carrier: Factory) -> None:
    """Without TLVs the id and stat come from the receipt text, leading zeros kept."""
    config = SmscSimConfig(port=0, receipt_delay=0.01, receipt_tlvs=False, id_width=12)
    sim, connector, recorder = await carrier(config)
    result = await connector.submit(message())
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1)
    [receipt] = recorder.receipts
    assert receipt.carrier_message_id == result.carrier_message_ids[0]
    assert receipt.carrier_message_id.startswith("0000")


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [
        ("UNDELIV", ReceiptStatus.UNDELIV, "001"),
        ("EXPIRED", ReceiptStatus.EXPIRED, "002"),
        ("REJECTD", ReceiptStatus.REJECTD, "003"),
    ],
)
async def test_failed_outcomes_reach_the_sink_with_their_error(
    carrier: Factory, outcome: str, status: ReceiptStatus, error: str
) -> None:
    """Outcomes chosen by destination prefix arrive with their status and err code."""
    config = SmscSimConfig(port=0, receipt_delay=0.01, outcomes={"4477009": outcome})  # type: ignore[dict-item]
    sim, connector, recorder = await carrier(config)
    await connector.submit(message(to="+447700900999"))
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1)
    [receipt] = recorder.receipts
    assert (receipt.status, receipt.error_code) == (status, error)


async def test_no_receipt_outcome_sends_none(carrier: Factory) -> None:
    """Destinations with outcome none get no receipt, others do."""
    config = SmscSimConfig(port=0, receipt_delay=0.01, outcomes={"1555": "none"})
    sim, connector, recorder = await carrier(config)
    await connector.submit(message(to="+15550000000"))
    await connector.submit(message(to="+447700900123"))
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1)
    assert sim.stats.receipts_sent == 1
    assert len(recorder.receipts) == 1


async def test_receipt_before_submit_response_is_passed_first(carrier: Factory) -> None:
    """A receipt overtaking its submit_sm_resp reaches the sink before submit returns."""
    config = SmscSimConfig(port=0, receipt_delay=0.01, faults=Faults(receipt_before_response=True))
    _, connector, recorder = await carrier(config)
    result = await connector.submit(message())
    recorder.events.append(f"submitted {result.carrier_message_ids[0]}")
    carrier_id = result.carrier_message_ids[0]
    assert recorder.events == [f"receipt {carrier_id}", f"submitted {carrier_id}"]


async def test_duplicate_receipts_are_all_passed(carrier: Factory) -> None:
    """A receipt the carrier repeats reaches the sink twice (the store makes it idempotent)."""
    config = SmscSimConfig(port=0, receipt_delay=0.01, faults=Faults(duplicate_receipts=True))
    sim, connector, recorder = await carrier(config)
    result = await connector.submit(message())
    await sim.wait_until(lambda: sim.stats.receipts_acked == 2)
    assert [r.carrier_message_id for r in recorder.receipts] == list(result.carrier_message_ids * 2)


async def test_sink_failure_makes_the_carrier_resend(carrier: Factory) -> None:
    """A sink failure refuses the deliver_sm, so the carrier resends and the receipt is kept."""
    sim, connector, recorder = await carrier(
        SmscSimConfig(port=0, receipt_delay=0.01, redelivery_delay=0.05)
    )
    recorder.fail_receipts = 1
    result = await connector.submit(message())
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1, timeout=5.0)
    assert sim.stats.receipts_sent == 2
    assert [r.carrier_message_id for r in recorder.receipts] == list(result.carrier_message_ids)


async def test_receipt_for_an_unknown_id_is_passed_verbatim(carrier: Factory) -> None:
    """A receipt with an id we never saw (odd case, padding) still goes to the sink as is."""
    sim, _, recorder = await carrier()
    receipt = DeliverSm(
        source_addr="447700900123",
        destination_addr="Pigeon",
        esm_class=MessageType.SMSC_DELIVERY_RECEIPT,
        short_message=b"id:00AbC123 sub:001 dlvrd:001 submit date:2601011200 done date:2601011201"
        b" stat:DELIVRD err:000 text:",
        tlvs=(tlv.MESSAGE_STATE(MessageState.DELIVERED),),
    )
    status = await sim.send_deliver(receipt)
    assert status == 0
    [got] = recorder.receipts
    assert (got.carrier_message_id, got.status) == ("00AbC123", ReceiptStatus.DELIVRD)


class BatchSink:
    """A receipt sink that takes the receipts of one read at once (``ReceiptBatchSink``); it
    refuses the receipts of ``refuse_once`` the first time it sees each."""

    def __init__(self, refuse_once: set[str]) -> None:
        self.calls: list[list[str]] = []
        self.applied: list[str] = []
        self.refuse_once = set(refuse_once)

    async def __call__(self, receipt: DeliveryReceipt) -> None:
        [failure] = await self.each([receipt])
        if failure is not None:
            raise failure

    async def each(self, receipts: Sequence[DeliveryReceipt]) -> list[Exception | None]:
        self.calls.append([r.carrier_message_id for r in receipts])
        failures: list[Exception | None] = []
        for receipt in receipts:
            if receipt.carrier_message_id in self.refuse_once:
                self.refuse_once.discard(receipt.carrier_message_id)
                failures.append(RuntimeError("store unavailable"))
            else:
                self.applied.append(receipt.carrier_message_id)
                failures.append(None)
        return failures


def receipt_pdu(carrier_id: str) -> DeliverSm:
    """A DELIVRD receipt for ``carrier_id`` as a carrier sends it."""
    return DeliverSm(
        source_addr="447700900123",
        destination_addr="Pigeon",
        esm_class=MessageType.SMSC_DELIVERY_RECEIPT,
        short_message=f"id:{carrier_id} sub:001 dlvrd:001 submit date:2601011200 done date:"
        "2601011201 stat:DELIVRD err:000 text:".encode(),
        tlvs=(tlv.MESSAGE_STATE(MessageState.DELIVERED),),
    )


async def test_receipts_arriving_together_reach_a_batch_sink_together() -> None:
    """Receipts read together go to the sink in one call; one it fails alone is refused."""
    sim = SmscSimulator(SmscSimConfig(port=0, receipt_delay=0.01, redelivery_delay=0.05))
    port = await sim.start()
    sink = BatchSink(refuse_once={"c3"})
    connector = SmppClientConnector(
        SmppConnectorSettings(
            id="carrier", host="127.0.0.1", port=port, system_id="pigeon", password="secret"
        ),
        sink,
        FakeClock(),
    )
    await connector.start()
    try:
        assert await connector.wait_bound(5.0)
        ids = [f"c{i}" for i in range(6)]
        statuses = await asyncio.gather(*(sim.send_deliver(receipt_pdu(i)) for i in ids))
    finally:
        await connector.stop()
        await sim.stop()
    assert statuses == [0] * len(ids)
    assert max(len(call) for call in sink.calls) > 1
    assert sorted(sink.applied) == ids
    # Only the refused receipt was sent again: the others of its call were acknowledged.
    assert sim.stats.receipts_sent == len(ids) + 1


# --- mobile originated ----------------------------------------------------------------------


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar", "payload"])
@pytest.mark.parametrize("text", [LONG_MO, LONG_MO_UCS2], ids=["gsm", "ucs2"])
async def test_mo_parts_are_reassembled_for_the_sink(
    carrier: Factory, concat: str, text: str
) -> None:
    """A multi-part MO reaches the MO sink once, whole, whatever its concatenation."""
    sim, _, recorder = await carrier()
    parts = await sim.send_mo("+447700900123", "12345", text, concat=concat)  # type: ignore[arg-type]
    assert parts == (1 if concat == "payload" else analyse(text).segments)
    [inbound] = recorder.inbound
    assert inbound.text == text
    assert (inbound.source, inbound.destination) == ("+447700900123", "12345")
    assert inbound.connector_id == "carrier"


async def test_short_mo_is_delivered_at_once(carrier: Factory) -> None:
    """A one-part MO goes straight to the sink; receipts are never mistaken for MO."""
    sim, connector, recorder = await carrier()
    await sim.send_mo("+447700900123", "Pigeon", "STOP")
    await connector.submit(message())
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1)
    assert [m.text for m in recorder.inbound] == ["STOP"]
    assert len(recorder.receipts) == 1


async def test_mo_without_a_sink_is_acknowledged(carrier: Factory) -> None:
    """Without an MO sink the connector still acknowledges MO, so the carrier moves on."""
    sim, _, recorder = await carrier(mo=False)
    await sim.send_mo("+447700900123", "12345", LONG_MO)
    assert sim.stats.mo_acked == analyse(LONG_MO).segments
    assert recorder.inbound == []


async def test_mo_sink_failure_is_retried_when_the_carrier_resends(carrier: Factory) -> None:
    """An MO sink failure refuses the last part; its resend delivers the whole text once."""
    sim, _, recorder = await carrier(
        SmscSimConfig(port=0, receipt_delay=0.01, redelivery_delay=0.05)
    )
    recorder.fail_mo = 1
    parts = await sim.send_mo("+447700900123", "12345", LONG_MO)
    assert sim.stats.mo_sent == parts + 1
    assert [m.text for m in recorder.inbound] == [LONG_MO]
