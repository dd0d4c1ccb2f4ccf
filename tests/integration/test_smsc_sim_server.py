"""The SMSC simulator on its own: flags, binds, ids, outcomes, the control endpoint, the
process entry point, and a third-party ESME (smpplib) talking to it."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import AsyncIterator

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from pigeon.smpp import tlv
from pigeon.smpp.codec import PduDecoder, encode
from pigeon.smpp.constants import CommandStatus, DataCoding
from pigeon.smpp.pdu import BindTransmitter, DataSm, DataSmResp, Pdu, SubmitSm
from pigeon.smsc_sim import (
    Faults,
    SmscSimConfig,
    SmscSimulator,
    build_config_from_args,
    parse_fault,
)


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    """A started simulator with the HTTP control endpoint, stopped after the test."""
    simulator = SmscSimulator(SmscSimConfig(port=0, receipt_delay=0.01, control_port=0))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def http(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, object]:
    """One HTTP/1.1 request to 127.0.0.1:port; returns status and decoded JSON."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(payload)


def test_flags_build_the_config() -> None:
    """Every documented flag lands in the config, faults included."""
    config = build_config_from_args(
        [
            "--port",
            "0",
            "--system-id",
            "acme",
            "--password",
            "pw",
            "--ids",
            "HEX",
            "--receipt-ids",
            "decimal",
            "--id-width",
            "12",
            "--receipt-delay",
            "2.5",
            "--outcome",
            "+4477009=UNDELIV",
            "--outcome",
            "1555=none",
            "--outcome-mix",
            "DELIVRD=90,EXPIRED=10",
            "--fault",
            "throttle:50",
            "--fault",
            "error:0x0B:4",
            "--fault",
            "disconnect:5",
            "--fault",
            "receipt-before-resp",
            "--control-port",
            "8776",
        ]
    )
    assert (config.port, config.system_id, config.password) == (0, "acme", "pw")
    assert (config.message_ids, config.receipt_ids, config.id_width) == ("HEX", "decimal", 12)
    assert config.receipt_delay == 2.5
    assert dict(config.outcomes) == {"4477009": "UNDELIV", "1555": "none"}
    assert dict(config.outcome_mix) == {"DELIVRD": 90.0, "EXPIRED": 10.0}
    assert config.faults == Faults(
        throttle_per_second=50.0,
        error_status=0x0B,
        error_every=4,
        disconnect_after=5,
        receipt_before_response=True,
    )
    assert config.control_port == 8776


@pytest.mark.parametrize("spec", ["explode", "throttle:fast", "error:"])
def test_bad_faults_are_refused(spec: str) -> None:
    """An unknown or malformed --fault is a ValueError naming it."""
    with pytest.raises(ValueError, match="fault"):
        parse_fault(spec)


def test_outcomes_by_prefix_then_mix_then_default() -> None:
    """The longest matching prefix decides, else the weighted mix, else the default."""
    only_expired = SmscSimulator(
        SmscSimConfig(outcomes={"44": "UNDELIV", "4477": "REJECTD"}, outcome_mix={"EXPIRED": 1})
    )
    assert only_expired.outcome_for("+447700900123") == "REJECTD"
    assert only_expired.outcome_for("+449999") == "UNDELIV"
    assert only_expired.outcome_for("+15551234") == "EXPIRED"
    assert SmscSimulator(SmscSimConfig()).outcome_for("+15551234") == "DELIVRD"


async def test_control_endpoint_reports_stats_and_injects_mo(sim: SmscSimulator) -> None:
    """GET /stats answers the counters; POST /mo queues an MO until a receiver binds."""
    assert sim.control_port is not None
    status, stats = await http(sim.control_port, "GET", "/stats")
    assert status == 200
    assert isinstance(stats, dict)
    assert stats["submits_received"] == 0
    body = json.dumps({"source": "+447700900123", "destination": "1", "text": "hi"}).encode()
    status, answer = await http(sim.control_port, "POST", "/mo", body)
    assert (status, answer) == (202, {"parts": 1})
    status, _ = await http(sim.control_port, "POST", "/mo", b"{}")
    assert status == 400
    status, _ = await http(sim.control_port, "GET", "/nowhere")
    assert status == 404


def smpplib_session(port: int, password: str) -> tuple[list[int], list[str], list[bytes]]:
    """Bind smpplib as transceiver, submit one message, read one receipt (blocking)."""
    statuses: list[int] = []
    ids: list[str] = []
    receipts: list[bytes] = []
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)

    def on_sent(pdu: object) -> None:
        statuses.append(pdu.status)  # type: ignore[attr-defined]
        ids.append(pdu.message_id.decode())  # type: ignore[attr-defined]

    def on_message(pdu: object) -> None:
        receipts.append(pdu.short_message)  # type: ignore[attr-defined]

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_message)
    client.connect()
    try:
        client.bind_transceiver(system_id="pigeon", password=password)
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="Pigeon",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr="447700900123",
            short_message=b"hello from smpplib",
            registered_delivery=True,
        )
        while not receipts:
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return statuses, ids, receipts


async def test_third_party_esme_submits_and_gets_a_receipt(sim: SmscSimulator) -> None:
    """smpplib binds, submits, gets an id and a receipt with that id from the simulator."""
    statuses, ids, receipts = await asyncio.wait_for(
        asyncio.to_thread(smpplib_session, sim.port, "secret"), 10
    )
    assert statuses == [0]
    assert receipts[0].startswith(f"id:{ids[0]} ".encode())
    assert [m.text for m in sim.messages] == ["hello from smpplib"]


async def test_wrong_password_is_refused_with_esme_rinvpaswd(sim: SmscSimulator) -> None:
    """A bind with a wrong password gets ESME_RINVPASWD and the connection closes."""
    with pytest.raises(smpplib.exceptions.PDUError) as caught:
        await asyncio.wait_for(asyncio.to_thread(smpplib_session, sim.port, "nope"), 10)
    assert caught.value.args[1] == CommandStatus.ESME_RINVPASWD
    assert sim.stats.binds_refused == 1


async def test_runs_as_a_process_and_prints_its_port() -> None:
    """`python -m pigeon.smsc_sim --port 0` listens, prints where, and accepts a bind."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pigeon.smsc_sim",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert line.startswith("smsc-sim listening on 127.0.0.1:")
        port = int(line.strip().rsplit(":", 1)[1])
        statuses, _, _ = await asyncio.wait_for(
            asyncio.to_thread(smpplib_session, port, "secret"), 10
        )
        assert statuses == [0]
    finally:
        process.terminate()
        await process.wait()


async def test_data_sm_is_answered_with_an_id_and_recorded(sim: SmscSimulator) -> None:
    """A raw ESME sending data_sm with message_payload gets data_sm_resp OK with an id."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    decoder = PduDecoder()

    async def exchange(pdu: Pdu) -> Pdu:
        writer.write(encode(pdu))
        while True:
            frames = decoder.feed(await reader.read(4096))
            if frames:
                answer = frames[0]
                assert isinstance(answer, Pdu)
                return answer

    try:
        bound = await exchange(
            BindTransmitter(sequence_number=1, system_id="pigeon", password="secret")
        )
        assert bound.command_status == 0
        answer = await exchange(
            DataSm(
                sequence_number=2,
                source_addr="Pigeon",
                destination_addr="447700900123",
                data_coding=DataCoding.UCS2,
                tlvs=(tlv.MESSAGE_PAYLOAD("Привет".encode("utf-16-be")),),
            )
        )
    finally:
        writer.close()
        await writer.wait_closed()
    assert isinstance(answer, DataSmResp)
    assert answer.command_status == 0
    [received] = sim.messages
    assert (received.text, received.message_ids, received.concat) == (
        "Привет",
        (answer.message_id,),
        "payload",
    )


async def test_received_lists_messages_with_arrival_times_from_an_index(
    sim: SmscSimulator,
) -> None:
    """GET /received pages through messages from ``since``, filters by text, times each."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    decoder = PduDecoder()
    before = time.monotonic()
    try:
        writer.write(
            encode(BindTransmitter(sequence_number=1, system_id="pigeon", password="secret"))
        )
        for number, text in enumerate(["promo 1", "code 111", "promo 2", "code 222"], 2):
            writer.write(
                encode(
                    SubmitSm(
                        sequence_number=number,
                        source_addr="Pigeon",
                        destination_addr="447700900123",
                        short_message=text.encode(),
                    )
                )
            )
        answered = 0
        while answered < 5:
            answered += len(decoder.feed(await reader.read(4096)))
    finally:
        writer.close()
        await writer.wait_closed()
    after = time.monotonic()
    assert sim.control_port is not None
    status, page = await http(sim.control_port, "GET", "/received?since=1&match=code")
    assert status == 200
    assert isinstance(page, dict)
    assert (page["total"], page["next"]) == (4, 4)
    assert [(m["index"], m["text"]) for m in page["messages"]] == [(1, "code 111"), (3, "code 222")]
    assert all(before <= m["monotonic"] <= after for m in page["messages"])
    assert all(abs(m["wall"] - time.time()) < 60 for m in page["messages"])
    status, page = await http(sim.control_port, "GET", "/received?limit=2")
    assert isinstance(page, dict)
    assert (page["next"], [m["text"] for m in page["messages"]]) == (2, ["promo 1", "code 111"])
    status, _ = await http(sim.control_port, "GET", "/received?since=x")
    assert status == 400


async def test_delayed_answers_and_receipts_leave_no_reference_cycles() -> None:
    """Submit responses and receipts sent after a delay leave no cyclic garbage behind: in a
    loaded run, collecting it stalled the simulator for ~150 ms (late arrival times)."""
    simulator = SmscSimulator(
        SmscSimConfig(port=0, receipt_delay=0.001, faults=Faults(response_delay=0.001))
    )
    await simulator.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    decoder = PduDecoder()
    answers: list[Pdu] = []

    async def answered(count: int) -> None:
        while len(answers) < count:
            answers.extend(p for p in decoder.feed(await reader.read(4096)) if isinstance(p, Pdu))

    count = 50
    gc.collect()
    gc.disable()
    try:
        writer.write(
            encode(BindTransmitter(sequence_number=1, system_id="pigeon", password="secret"))
        )
        await answered(1)
        for n in range(count):
            pdu = SubmitSm(
                sequence_number=2 + n,
                source_addr="Pigeon",
                destination_addr="447700900123",
                registered_delivery=1,
                short_message=f"cycle {n}".encode(),
            )
            writer.write(encode(pdu))
        await answered(1 + count)
        await asyncio.sleep(0.1)  # the receipts' timers fire (kept for a receiver to bind)
        garbage = gc.collect()
    finally:
        gc.enable()
        writer.close()
        await writer.wait_closed()
        await simulator.stop()
    assert all(answer.command_status == 0 for answer in answers)
    # Two timers per message (answer, receipt); a cycle each made ~five objects apiece.
    assert garbage < count
