"""The SMPP client connector submitting to our SMSC simulator over loopback.

Binds, window, throughput, concatenation, data coding, and every error path of ``submit``.
Assertions are about counts and order as the simulator saw them, never about durations.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from pigeon.connectors.smpp_client import SmppClientConnector, SmppConnectorSettings
from pigeon.domain.encoding import analyse
from pigeon.domain.errors import PermanentFailure, TemporaryFailure, Throttled
from pigeon.domain.messages import Category, Direction, Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt
from pigeon.smpp.constants import CommandStatus
from pigeon.smsc_sim import Faults, SmscSimConfig, SmscSimulator
from pigeon.testing import FakeClock

LONG_GSM = "Pigeon {long} message: " + "abcdefghij" * 38  # 3 GSM segments, with escapes
LONG_UCS2 = "Привет, это длинное сообщение Pigeon 🐦 " * 4  # 3 UCS-2 segments, a surrogate pair


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


Factory = Callable[..., Awaitable[tuple[SmscSimulator, SmppClientConnector]]]


@pytest.fixture
async def carrier() -> AsyncIterator[Factory]:
    """Builds a started simulator and a started connector bound to it; stops both after."""
    made: list[tuple[SmscSimulator, SmppClientConnector]] = []

    async def make(
        sim_config: SmscSimConfig | None = None, **settings: Any
    ) -> tuple[SmscSimulator, SmppClientConnector]:
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
            "reconnect_max_delay": 0.2,
            "throttle_pause_min": 0.05,
            "throttle_pause_max": 0.2,
            "drain_timeout": 0.5,
            "unbind_timeout": 0.5,
        }
        options.update(settings)
        receipts: list[DeliveryReceipt] = []

        async def sink(receipt: DeliveryReceipt) -> None:
            receipts.append(receipt)

        connector = SmppClientConnector(SmppConnectorSettings(**options), sink, FakeClock())
        connector.receipts = receipts  # type: ignore[attr-defined]
        made.append((sim, connector))
        await connector.start()
        return sim, connector

    yield make
    for sim, connector in made:
        await connector.stop()
        await sim.stop()


def sim_with(**faults: Any) -> SmscSimConfig:
    """A simulator config on a free port with the given faults."""
    return SmscSimConfig(port=0, receipt_delay=0.01, faults=Faults(**faults))


# --- binds ----------------------------------------------------------------------------------


async def test_transceiver_binds_open_as_many_as_configured(carrier: Factory) -> None:
    """bind_mode trx with binds=3 opens three transceiver binds and the connector is ready."""
    sim, connector = await carrier(binds=3, bind_mode="trx")
    await sim.wait_until(lambda: len(sim.stats.binds) == 3)
    assert connector.ready
    assert sorted(b.mode for b in sim.stats.binds) == ["trx", "trx", "trx"]
    result = await connector.submit(message())
    assert len(result.carrier_message_ids) == 1


async def test_transmitter_mode_binds_transmitters_only(carrier: Factory) -> None:
    """bind_mode tx opens transmitter binds only, which submit but never get receipts."""
    sim, connector = await carrier(binds=2, bind_mode="tx")
    await sim.wait_until(lambda: len(sim.stats.binds) == 2)
    assert [b.mode for b in sim.stats.binds] == ["tx", "tx"]
    await connector.submit(message())
    assert sim.stats.receipts_sent == 0


async def test_rx_tx_mode_pairs_a_receiver_with_each_transmitter(carrier: Factory) -> None:
    """bind_mode rx+tx opens one transmitter and one receiver per slot; receipts use the rx."""
    sim, connector = await carrier(binds=2, bind_mode="rx+tx")
    await sim.wait_until(lambda: len(sim.stats.binds) == 4)
    assert sorted(b.mode for b in sim.stats.binds) == ["rx", "rx", "tx", "tx"]
    result = await connector.submit(message())
    await sim.wait_until(lambda: sim.stats.receipts_acked == 1)
    receipt_binds = [b for b in sim.stats.binds if b.receipts_sent]
    assert [b.mode for b in receipt_binds] == ["rx"]
    receipts: list[DeliveryReceipt] = connector.receipts  # type: ignore[attr-defined]
    assert [r.carrier_message_id for r in receipts] == list(result.carrier_message_ids)


# --- flow control ---------------------------------------------------------------------------


async def test_window_is_never_exceeded_and_is_used(carrier: Factory) -> None:
    """With answers delayed, no bind ever holds more than `window` submits unanswered."""
    sim, connector = await carrier(sim_with(response_delay=0.05), binds=2, window=4)
    await sim.wait_until(lambda: len(sim.stats.binds) == 2)
    results = await asyncio.gather(*(connector.submit(message()) for _ in range(40)))
    assert len(results) == 40
    assert sim.stats.submits_accepted == 40
    assert all(b.max_in_flight <= 4 for b in sim.stats.binds)
    assert sim.stats.max_in_flight == 4


async def test_throughput_limit_paces_submits(carrier: Factory) -> None:
    """throughput_per_second=20 spreads 30 submits over at least (30 - burst) / 20 seconds."""
    sim, connector = await carrier(throughput_per_second=20.0, window=50)
    await asyncio.gather(*(connector.submit(message()) for _ in range(30)))
    times = sorted(sim.submit_times)
    assert len(times) == 30
    # The bucket holds a tenth of a second (2 tokens). A loaded machine only slows submits
    # down, so a lower bound on the spread is safe; 0.4 s of slack covers a late first read.
    burst = 2
    assert times[-1] - times[0] >= (30 - burst) / 20 - 0.4


# --- text -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concat", "ids", "seen_as"),
    [("udh8", 3, "udh8"), ("udh16", 3, "udh16"), ("sar", 3, "sar"), ("payload", 1, "payload")],
)
async def test_long_messages_arrive_whole_in_each_concat_mode(
    carrier: Factory, concat: str, ids: int, seen_as: str
) -> None:
    """A 3-segment text is sent per the concat setting and the carrier reassembles it whole."""
    sim, connector = await carrier(concat=concat)
    result = await connector.submit(message(LONG_GSM))
    assert len(result.carrier_message_ids) == ids
    [received] = sim.messages
    assert received.text == LONG_GSM
    assert received.concat == seen_as
    assert received.message_ids == result.carrier_message_ids


async def test_unicode_text_goes_as_ucs2(carrier: Factory) -> None:
    """A non-GSM text goes with data_coding 8 and survives split into UDH parts."""
    sim, connector = await carrier(concat="udh16")
    result = await connector.submit(message(LONG_UCS2))
    assert len(result.carrier_message_ids) == analyse(LONG_UCS2).segments
    [received] = sim.messages
    assert (received.data_coding, received.text) == (8, LONG_UCS2)


async def test_gsm_text_goes_as_default_alphabet(carrier: Factory) -> None:
    """A GSM text with extension characters goes with data_coding 0 as GSM septets."""
    sim, connector = await carrier()
    text = "Price: 5€ [promo] ~ {today}"
    await connector.submit(message(text))
    [received] = sim.messages
    assert (received.data_coding, received.text) == (0, text)


async def test_latin1_carrier_gets_latin1_for_data_coding_0(carrier: Factory) -> None:
    """Where 0 means Latin-1, a GSM text goes as Latin-1 octets, a text with € as UCS-2."""
    sim, connector = await carrier(
        SmscSimConfig(port=0, receipt_delay=0.01, default_alphabet="latin1"),
        data_coding_default="latin1",
    )
    await connector.submit(message("Café à 10h {ok}"))
    await connector.submit(message("Only 5€"))
    first, second = sim.messages
    assert (first.data_coding, first.text) == (0, "Café à 10h {ok}")
    assert (second.data_coding, second.text) == (8, "Only 5€")


# --- errors ---------------------------------------------------------------------------------


async def test_refusal_status_is_a_permanent_failure_with_its_code(carrier: Factory) -> None:
    """ESME_RINVDSTADR in submit_sm_resp raises PermanentFailure coded smpp_0x0000000b."""
    _, connector = await carrier(sim_with(error_status=CommandStatus.ESME_RINVDSTADR))
    with pytest.raises(PermanentFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "smpp_0x0000000b"
    assert "ESME_RINVDSTADR" in caught.value.detail


async def test_system_error_status_is_a_temporary_failure(carrier: Factory) -> None:
    """ESME_RSYSERR raises TemporaryFailure (not Throttled) coded smpp_0x00000008."""
    _, connector = await carrier(sim_with(error_status=CommandStatus.ESME_RSYSERR))
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert not isinstance(caught.value, Throttled)
    assert caught.value.code == "smpp_0x00000008"


async def test_partial_send_names_the_accepted_segments(carrier: Factory) -> None:
    """When segment 2 of 3 is refused, the error says which segments the carrier took."""
    _, connector = await carrier(
        sim_with(error_status=CommandStatus.ESME_RSUBMITFAIL, error_every=2)
    )
    with pytest.raises(PermanentFailure) as caught:
        await connector.submit(message(LONG_GSM))
    assert caught.value.code == "smpp_0x00000045"
    assert "2 of 3 segments were accepted" in caught.value.detail


async def test_throttled_submits_slow_down_and_all_succeed(carrier: Factory) -> None:
    """Past the carrier's 20 submits/s, ESME_RTHROTTLED pauses the bind and retries succeed."""
    sim, connector = await carrier(sim_with(throttle_per_second=20), window=30)
    results = await asyncio.gather(*(connector.submit(message()) for _ in range(30)))
    assert len(results) == 30
    assert sim.stats.submits_accepted == 30
    assert sim.stats.submits_refused[CommandStatus.ESME_RTHROTTLED] > 0


async def test_queue_full_is_retried_until_accepted(carrier: Factory) -> None:
    """Every third submit answered ESME_RMSGQFUL is retried and every message gets through."""
    sim, connector = await carrier(sim_with(queue_full_every=3))
    for _ in range(6):
        await connector.submit(message())
    assert sim.stats.submits_accepted == 6
    assert sim.stats.submits_refused[CommandStatus.ESME_RMSGQFUL] >= 2


async def test_throttling_without_end_raises_throttled(carrier: Factory) -> None:
    """A carrier that never stops throttling makes submit raise Throttled after the budget."""
    _, connector = await carrier(sim_with(queue_full_every=1), throttle_retry_for=0.2)
    with pytest.raises(Throttled) as caught:
        await connector.submit(message())
    assert caught.value.code == "smpp_0x00000014"


async def test_no_response_is_a_temporary_failure(carrier: Factory) -> None:
    """A submit the carrier never answers raises TemporaryFailure coded smpp_timeout."""
    _, connector = await carrier(sim_with(no_response_every=1), response_timeout=0.2)
    assert await connector.wait_bound(10)  # the bind has the same 0.2 s; a slow one retries
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "smpp_timeout"


async def test_consecutive_timeouts_make_the_bind_reconnect(carrier: Factory) -> None:
    """After unhealthy_after_timeouts timeouts in a row the connection is dropped and re-bound."""
    sim, connector = await carrier(
        sim_with(no_response_every=1), response_timeout=0.2, unhealthy_after_timeouts=2
    )
    assert await connector.wait_bound(10)  # the bind has the same 0.2 s; a slow one retries
    binds_before = len(sim.stats.binds)
    for _ in range(2):
        with pytest.raises(TemporaryFailure):
            await connector.submit(message())
    await sim.wait_until(lambda: len(sim.stats.binds) == binds_before + 1)
    assert sim.stats.binds[binds_before - 1].open is False


async def test_disconnect_mid_window_then_reconnect_and_submit(carrier: Factory) -> None:
    """Submits in flight when the carrier drops the link fail temporarily; later ones succeed."""
    sim, connector = await carrier(sim_with(disconnect_after=3), window=5)
    outcomes = await asyncio.gather(
        *(connector.submit(message()) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, TemporaryFailure) for o in outcomes)
    assert {o.code for o in outcomes if isinstance(o, TemporaryFailure)} == {"smpp_connection_lost"}
    assert await connector.wait_bound(5.0)
    result = await connector.submit(message())
    assert len(result.carrier_message_ids) == 1
    assert len(sim.stats.binds) == 2
    assert sim.stats.disconnects == 1


async def test_wrong_password_is_not_ready_and_logged(
    carrier: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused bind leaves the connector not ready, logs why, and submit fails at once."""
    caplog.set_level(logging.ERROR, logger="pigeon.connectors.smpp_link")
    sim, connector = await carrier(password="wrong")
    assert not connector.ready
    assert sim.stats.binds_refused >= 1
    assert any("ESME_RINVPASWD" in r.getMessage() for r in caplog.records)
    with pytest.raises(TemporaryFailure) as caught:
        await connector.submit(message())
    assert caught.value.code == "smpp_not_bound"


async def test_unreachable_carrier_fails_submits_quickly() -> None:
    """With nothing listening, start returns not ready and submit raises TemporaryFailure."""
    sim = SmscSimulator(SmscSimConfig(port=0))
    port = await sim.start()
    await sim.stop()  # the port is now closed

    async def sink(receipt: DeliveryReceipt) -> None:
        raise AssertionError("no receipt expected")

    settings = SmppConnectorSettings(
        id="down", host="127.0.0.1", port=port, system_id="pigeon", reconnect_min_delay=0.05
    )
    connector = SmppClientConnector(settings, sink, FakeClock())
    await connector.start()
    try:
        assert not connector.ready
        with pytest.raises(TemporaryFailure):
            await connector.submit(message())
    finally:
        await connector.stop()


async def test_stop_unbinds_and_refuses_new_submits(carrier: Factory) -> None:
    """stop() unbinds every bind (the carrier sees them close) and submit then fails."""
    sim, connector = await carrier(binds=2)
    await sim.wait_until(lambda: len(sim.stats.binds) == 2)
    await connector.stop()
    await sim.wait_until(lambda: not any(b.open for b in sim.stats.binds))
    assert sim.stats.unbinds == 2
    assert not connector.ready
    with pytest.raises(TemporaryFailure):
        await connector.submit(message())


async def test_carrier_unbind_is_answered_and_the_bind_comes_back(carrier: Factory) -> None:
    """When the carrier unbinds us (maintenance), we answer, reconnect, and submit again."""
    sim, connector = await carrier()
    assert sim.unbind_all() == 1
    await sim.wait_until(lambda: len(sim.stats.binds) == 2 and sim.stats.binds[1].open)
    assert sim.stats.unbinds == 1
    assert await connector.wait_bound(5.0)
    result = await connector.submit(message())
    assert len(result.carrier_message_ids) == 1


async def test_idle_bind_sends_enquire_link(carrier: Factory) -> None:
    """An idle bind keeps the link alive with enquire_link after the configured silence."""
    sim, _ = await carrier(enquire_link_interval=0.05)
    await sim.wait_until(lambda: sim.stats.enquire_links >= 2)
    assert len(sim.stats.binds) == 1


async def test_settings_reject_unknown_modes() -> None:
    """Settings refuse a bind mode or concat mode that does not exist."""
    base = SmppConnectorSettings(id="x", host="127.0.0.1", port=1, system_id="s")
    with pytest.raises(ValueError, match="bind_mode"):
        dataclasses.replace(base, bind_mode="rx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="concat"):
        dataclasses.replace(base, concat="udh7")  # type: ignore[arg-type]


async def test_an_otp_overtakes_marketing_queued_at_a_full_window(carrier: Factory) -> None:
    """With the window full of marketing, a later OTP gets the next free slot, not the last."""
    # A waiter for the slot gives up after response_timeout: far longer than the 9 x 50 ms.
    _, connector = await carrier(sim_with(response_delay=0.05), window=1, response_timeout=10)
    finished: list[str] = []

    async def send(name: str, category: Category) -> None:
        await connector.submit(dataclasses.replace(message(), id=name, category=category))
        finished.append(name)

    marketing = [asyncio.create_task(send(f"m{n}", Category.MARKETING)) for n in range(8)]
    await asyncio.sleep(0.01)  # the first one holds the slot, seven wait behind it
    otp = asyncio.create_task(send("otp", Category.OTP))
    await asyncio.gather(*marketing, otp)
    assert finished.index("otp") <= 2
    assert finished[-1] != "otp"


async def test_slot_wait_is_none_while_a_slot_is_free(carrier: Factory) -> None:
    """With a free window slot the windows are not what stops a start: no wait is offered."""
    sim, connector = await carrier(window=2)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    assert connector.slot_wait(message()) is None


async def test_slot_wait_ends_when_a_submit_frees_a_slot(carrier: Factory) -> None:
    """With the window full of started submits, the wait is pending until one is answered;
    then a new submit starts at once."""
    sim, connector = await carrier(sim_with(response_delay=0.2), window=2)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    first = connector.start_submit(message())
    second = connector.start_submit(message())
    assert first is not None
    assert second is not None
    assert connector.start_submit(message()) is None
    wait = connector.slot_wait(message())
    assert wait is not None
    assert not wait.done()
    await asyncio.wait_for(wait, 5)
    assert first.done() or second.done()
    third = connector.start_submit(message())
    assert third is not None
    results = await asyncio.gather(first, second, third)
    assert len({r.carrier_message_ids for r in results}) == 3


async def test_slot_wait_serves_an_otp_before_marketing(carrier: Factory) -> None:
    """Waits are in the line of waiting submits: an OTP's wait ends before an earlier
    marketing one's."""
    sim, connector = await carrier(sim_with(response_delay=0.2), window=1)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    started = connector.start_submit(message())
    assert started is not None
    marketing = connector.slot_wait(dataclasses.replace(message(), category=Category.MARKETING))
    otp = connector.slot_wait(dataclasses.replace(message(), category=Category.OTP))
    assert marketing is not None
    assert otp is not None
    ended: list[str] = []
    marketing.add_done_callback(lambda _: ended.append("marketing"))
    otp.add_done_callback(lambda _: ended.append("otp"))
    await started
    await asyncio.wait_for(otp, 5)
    assert ended[0] == "otp"
    marketing.cancel()


async def test_one_answered_submit_wakes_one_waiting_submit(carrier: Factory) -> None:
    """A window of one, two waits: the answer that frees the slot ends the first wait only
    (the second keeps its place in line rather than being woken for a slot already taken)."""
    sim, connector = await carrier(sim_with(response_delay=0.2), window=1)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    started = connector.start_submit(message())
    assert started is not None
    first = connector.slot_wait(message())
    second = connector.slot_wait(message())
    assert first is not None
    assert second is not None
    await started
    await asyncio.wait_for(first, 5)
    await asyncio.sleep(0.05)  # every callback of the answer has run
    assert not second.done()
    assert connector.start_submit(message()) is not None
    second.cancel()


async def test_the_late_answer_of_an_abandoned_submit_wakes_a_waiting_one(
    carrier: Factory,
) -> None:
    """A submit abandoned while in flight gives its reservation back at once, but its window
    slot stays taken until the carrier answers: that answer wakes the waiting submit."""
    sim, connector = await carrier(sim_with(response_delay=0.3), window=1)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    abandoned = asyncio.ensure_future(connector.submit(message()))
    await sim.wait_until(lambda: sim.stats.submits_received == 1)
    abandoned.cancel()
    await asyncio.gather(abandoned, return_exceptions=True)
    assert connector.start_submit(message()) is None  # the slot is still the carrier's
    wait = connector.slot_wait(message())
    assert wait is not None
    await asyncio.wait_for(wait, 5)
    started = connector.start_submit(message())
    assert started is not None
    await started


async def test_slot_wait_is_none_once_stopping(carrier: Factory) -> None:
    """A stopped connector offers no wait (its submits are refused instead)."""
    sim, connector = await carrier(window=1)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    await connector.stop()
    assert connector.slot_wait(message()) is None


# --- long messages started without a task ---------------------------------------------------


@pytest.mark.parametrize("concat", ["udh8", "sar", "payload"])
async def test_a_started_long_message_arrives_whole(carrier: Factory, concat: str) -> None:
    """``start_submit`` writes every segment of a long message and its future ends with the
    carrier's ids in segment order, as ``submit`` returns them."""
    sim, connector = await carrier(concat=concat)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    started = connector.start_submit(message(LONG_GSM))
    assert started is not None
    result = await asyncio.wait_for(started, 5)
    [received] = sim.messages
    assert received.text == LONG_GSM
    assert received.message_ids == result.carrier_message_ids


async def test_a_started_long_message_waits_for_the_slots_it_lacks(carrier: Factory) -> None:
    """With fewer free slots than segments, the first segments go at once and the rest wait
    for slots; the future ends once all three are taken, never past the window."""
    sim, connector = await carrier(sim_with(response_delay=0.1), window=2)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    started = connector.start_submit(message(LONG_GSM))
    assert started is not None
    assert sim.stats.submits_received <= 2
    result = await asyncio.wait_for(started, 5)
    assert len(result.carrier_message_ids) == 3
    assert sim.stats.max_in_flight <= 2
    [received] = sim.messages
    assert received.text == LONG_GSM
    assert received.message_ids == result.carrier_message_ids


async def test_a_started_long_message_names_the_accepted_segments(carrier: Factory) -> None:
    """A started long message whose second segment is refused ends with the worst error,
    naming the segments the carrier took, as ``submit`` raises it."""
    _, connector = await carrier(
        sim_with(error_status=CommandStatus.ESME_RSUBMITFAIL, error_every=2)
    )
    await connector.wait_bound(10)
    started = connector.start_submit(message(LONG_GSM))
    assert started is not None
    with pytest.raises(PermanentFailure) as caught:
        await asyncio.wait_for(started, 5)
    assert caught.value.code == "smpp_0x00000045"
    assert "2 of 3 segments were accepted" in caught.value.detail


async def test_a_started_long_message_retries_a_throttled_segment(carrier: Factory) -> None:
    """A segment answered ESME_RMSGQFUL is tried again and the message still ends accepted,
    every segment once."""
    sim, connector = await carrier(sim_with(queue_full_every=2))
    await connector.wait_bound(10)
    started = connector.start_submit(message(LONG_GSM))
    assert started is not None
    result = await asyncio.wait_for(started, 5)
    assert len(result.carrier_message_ids) == 3
    assert sim.stats.submits_accepted == 3
    assert sim.stats.submits_refused[CommandStatus.ESME_RMSGQFUL] >= 1


async def test_a_paced_connector_starts_submits_while_its_tokens_last(carrier: Factory) -> None:
    """With throughput_per_second=20 (a burst of 2 tokens), two submits start at once
    without a task; the third finds no token and is not started (nor offered a slot wait,
    the windows being free): ``submit`` paces it, and all three are accepted."""
    sim, connector = await carrier(throughput_per_second=20.0, window=10)
    await sim.wait_until(lambda: len(sim.stats.binds) == 1)
    first = connector.start_submit(message())
    second = connector.start_submit(message())
    assert first is not None
    assert second is not None
    assert connector.start_submit(message()) is None
    assert connector.slot_wait(message()) is None
    third = await asyncio.wait_for(connector.submit(message()), 5)
    results = await asyncio.gather(first, second)
    assert len({*(r.carrier_message_ids for r in results), third.carrier_message_ids}) == 3
    assert sim.stats.submits_accepted == 3
