"""smpplib (a third-party ESME, PyPI) against our SMPP server in a real ``pigeon serve``.

smpplib is blocking: each test drives it from a worker thread with a socket timeout, so a
silent server fails the test instead of hanging it. Its own GSM splitter is buggy, so long
messages are sent as pre-encoded UDH parts.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from pigeon.domain.encoding import encode_gsm7, encode_ucs2
from pigeon.smpp.concat import concat_udh
from pigeon.smpp.receipt import parse_receipt
from support.gateway import (
    API_KEY,
    SMPP_PASSWORD,
    SMPP_SYSTEM_ID,
    GatewayProcess,
    new_gateway,
)

TO = "14155550100"
LONG = "".join(f"Multipart line {n:02d} sent through smpplib. " for n in range(8))
FINAL = {"delivered", "undelivered", "expired", "failed", "rejected", "canceled", "unknown"}


@dataclass
class Esme:
    """An smpplib client and what it received, read in its own thread."""

    client: smpplib.client.Client
    sent: dict[int, str] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)
    receipts: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def bind(cls, port: int, mode: str = "trx") -> Esme:
        """Connect and bind as ``trx`` or ``rx`` with the demo account."""
        # A generous timeout for the bind (argon2 on a loaded machine can take seconds), then a
        # short one so the reading loop polls.
        client = smpplib.client.Client("127.0.0.1", port, timeout=30, allow_unknown_opt_params=True)
        esme = cls(client)
        client.set_message_sent_handler(esme._on_sent)
        client.set_message_received_handler(esme._on_received)
        client.set_error_pdu_handler(esme._on_error)
        client.connect()
        try:
            binder = client.bind_transceiver if mode == "trx" else client.bind_receiver
            binder(system_id=SMPP_SYSTEM_ID, password=SMPP_PASSWORD)
        except Exception:
            client.disconnect()
            raise
        client._socket.settimeout(0.5)
        return esme

    def _on_sent(self, pdu: Any, **_: Any) -> None:
        with self.lock:
            self.sent[pdu.sequence] = pdu.message_id.decode()

    def _on_received(self, pdu: Any, **_: Any) -> int:
        with self.lock:
            self.receipts.append(pdu)
        return 0

    def _on_error(self, pdu: Any) -> None:
        with self.lock:
            self.refused.append(pdu.status)

    def submit(self, short_message: bytes, **fields: Any) -> int:
        """Send one submit_sm (not waiting for its response); returns its sequence."""
        values: dict[str, Any] = {
            "source_addr_ton": smpplib.consts.SMPP_TON_ALNUM,
            "source_addr": "Pigeon",
            "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
            "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
            "destination_addr": TO,
            "short_message": short_message,
            "registered_delivery": 1,
        }
        values.update(fields)
        return int(self.client.send_message(**values).sequence)

    def read_until(self, done: Callable[[], bool], seconds: float = 60) -> None:
        """Read PDUs (answering deliver_sm) until ``done()`` or the deadline."""
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "the server did not send what was expected"
            try:
                self.client.read_once(auto_send_enquire_link=False)
            except TimeoutError:
                continue

    def close(self) -> None:
        """Unbind (tolerating a receipt in the way) and disconnect."""
        with contextlib.suppress(smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError):
            self.client.unbind()
        self.client.disconnect()


def in_thread(work: Callable[[], Any]) -> Any:
    """Run blocking smpplib work in a worker thread and return its result."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=180)


def get_message(gateway: GatewayProcess, message_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{gateway.base_url}/v1/messages/{message_id}",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def receipt_ids(esme: Esme) -> set[str]:
    with esme.lock:
        return {pdu.receipted_message_id.decode() for pdu in esme.receipts}


def test_smpplib_submits_gsm_ucs2_and_multipart_and_gets_every_receipt(
    gateway: GatewayProcess,
) -> None:
    """GSM-7, UCS-2 and UDH multipart are stored as sent and every id gets a DELIVRD receipt."""

    def run() -> tuple[Esme, list[int]]:
        esme = Esme.bind(gateway.smpp_port)
        sequences = [
            esme.submit(encode_gsm7("Hello from smpplib {ok}")),
            esme.submit(encode_ucs2("Привет из smpplib 👋"), data_coding=8),
        ]
        chunks = [LONG[i : i + 153] for i in range(0, len(LONG), 153)]
        for seq, chunk in enumerate(chunks, 1):
            sequences.append(
                esme.submit(
                    concat_udh(42, len(chunks), seq) + encode_gsm7(chunk),
                    esm_class=smpplib.consts.SMPP_GSMFEAT_UDHI,
                )
            )
        esme.read_until(lambda: len(esme.sent) == len(sequences))
        wanted = set(esme.sent.values())
        esme.read_until(lambda: wanted <= receipt_ids(esme))
        esme.close()
        return esme, sequences

    esme, sequences = in_thread(run)

    assert esme.refused == []
    ids = [esme.sent[s] for s in sequences]
    gsm, ucs2, *parts = ids
    base = parts[0].rsplit(".", 1)[0]
    assert parts == [f"{base}.{n}" for n in range(1, len(parts) + 1)]
    bodies = {message_id: get_message(gateway, message_id) for message_id in (gsm, ucs2, base)}
    assert (bodies[gsm]["body"], bodies[gsm]["status"]) == ("Hello from smpplib {ok}", "delivered")
    assert bodies[ucs2]["body"] == "Привет из smpplib 👋"
    assert bodies[base]["body"] == LONG
    assert (bodies[ucs2]["encoding"], bodies[ucs2]["status"]) == ("ucs2", "delivered")
    assert (bodies[base]["segments"], bodies[base]["status"]) == (len(parts), "delivered")
    for pdu in esme.receipts:
        parsed = parse_receipt(pdu.short_message)
        assert parsed is not None
        assert parsed.message_id == pdu.receipted_message_id.decode()
        assert (parsed.stat, parsed.error) == ("DELIVRD", "000")
        assert pdu.esm_class & 0x04  # SMSC delivery receipt


def _expected_receipt(gateway: GatewayProcess, message_id: str) -> str:
    message = get_message(gateway, message_id)
    created = datetime.fromisoformat(message["created_at"])
    done = next(
        datetime.fromisoformat(event["at"])
        for event in message["events"]
        if event["status"] == "delivered"
    )
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:{created:%y%m%d%H%M}"
        f" done date:{done:%y%m%d%H%M} stat:DELIVRD err:000 text:{message['body'][:20]}"
    )


@pytest.fixture
def late_receipts_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A started ``pigeon serve`` whose simulator sends receipts 2 s after the submit: an ESME
    that leaves once its submits are answered is gone before any receipt, however slowly
    this machine answers them."""
    process = new_gateway(tmp_path, PIGEON_SIMULATOR_RECEIPT_DELAY="2")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_receipts_wait_for_smpplib_to_bind_again(late_receipts_gateway: GatewayProcess) -> None:
    """An ESME gone before its receipts gets every one, unchanged, when it binds again (RX)."""
    gateway = late_receipts_gateway

    def submit_and_leave() -> list[str]:
        esme = Esme.bind(gateway.smpp_port)
        for n in range(5):
            esme.submit(encode_gsm7(f"Away message {n}"))
        esme.read_until(lambda: len(esme.sent) == 5)
        esme.client.disconnect()  # gone before any receipt could be read
        return list(esme.sent.values())

    ids = in_thread(submit_and_leave)
    deadline = time.monotonic() + 60
    while any(get_message(gateway, i)["status"] not in FINAL for i in ids):
        assert time.monotonic() < deadline, "messages did not reach a final status"
        time.sleep(0.2)

    def come_back() -> Esme:
        esme = Esme.bind(gateway.smpp_port, "rx")
        esme.read_until(lambda: set(ids) <= receipt_ids(esme))
        esme.close()
        return esme

    esme = in_thread(come_back)

    received = {
        pdu.receipted_message_id.decode(): pdu.short_message.decode() for pdu in esme.receipts
    }
    assert received == {message_id: _expected_receipt(gateway, message_id) for message_id in ids}
