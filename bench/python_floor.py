"""The Python floor: the least a Python relay on Pigeon's stack spends per message, end to end.

Not a gateway: a yardstick for scenario c (``kannel_side_by_side.py --floor``). One process
on uvloop relays each ``POST /v1/messages`` to the carrier simulator and each receipt to a
webhook, with the same libraries and wire formats as ``pigeon serve``, and nothing else:

- HTTP in: an ``asyncio.Protocol`` over httptools (uvicorn's parser), the bearer key checked,
  the JSON body decoded with msgspec, ``202`` with the message as JSON;
- SMPP out: one transceiver bind with a window of 100, Pigeon's own codec
  (:mod:`pigeon.smpp.codec`), receipts parsed by :func:`pigeon.smpp.receipt.receipt_from_pdu`;
- webhooks: ``message.delivered`` as JSON, signed (:mod:`pigeon.webhooks.signing`) and POSTed
  with Pigeon's keep-alive client (:class:`pigeon.webhooks.http_client.HttpClient`).

What it leaves out is what makes Pigeon a gateway: no store (an accepted message lives only
in memory, so a crash loses it), no job queue, no routing, no number parsing, no events, no
statistics, no retries, one process. Its CPU per message is therefore a lower bound for any
Python design of this pipeline on this stack, and its ratio to Kannel in the same run says
whether the issue's targets are reachable in Python at all.

    python bench/python_floor.py --port P --sim-port S --sim-user U --sim-password W \\
        --webhook-url http://127.0.0.1:R/hook --key K
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import os
import signal
import socket
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httptools
import msgspec
import uvloop
from prometheus_client import CollectorRegistry, Counter, Histogram

from pigeon.domain.addressing import parse_msisdn
from pigeon.domain.encoding import TextAnalysis, analyse
from pigeon.domain.errors import InvalidRecipient
from pigeon.enum_members import drop_enum_getattr_fallback
from pigeon.ids import UlidFactory
from pigeon.services.representation import iso
from pigeon.smpp.codec import DecodeError, PduDecoder, encode, response_for
from pigeon.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from pigeon.smpp.receipt import receipt_from_pdu
from pigeon.store.sqlite_library import set_up_sqlite_library
from pigeon.webhooks.http_client import HttpClient
from pigeon.webhooks.signing import new_secret, signature_headers

WINDOW = 100
#: ``--role deliver``: how often the dispatcher looks for jobs when the last look found none.
POLL = 0.002


class Inbound(msgspec.Struct):
    """The accepted part of ``POST /v1/messages``."""

    to: str
    body: str
    sender: str = msgspec.field(name="from", default="Pigeon")


class Store:
    """``--store``: one SQLite row per message (WAL, ``synchronous=FULL``), written in group
    commits on one thread; a write's future resolves once its commit is on disk."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, recipient TEXT NOT NULL,"
        " sender TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, carrier_id TEXT,"
        " created_at REAL NOT NULL, updated_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS messages_carrier_id ON messages (carrier_id)",
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL,"
        " type TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS events_message ON events (message_id)",
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
        " payload TEXT NOT NULL, run_at REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
        " status INTEGER NOT NULL, created_at REAL NOT NULL)",
    )
    PARTS = (
        "CREATE TABLE IF NOT EXISTS parts (message_id TEXT NOT NULL, part_index INTEGER NOT NULL,"
        " status TEXT NOT NULL, carrier_id TEXT, carrier_id_normalised TEXT,"
        " PRIMARY KEY (message_id, part_index))",
        "CREATE INDEX IF NOT EXISTS parts_carrier_id ON parts (carrier_id_normalised)",
    )
    PART = "INSERT INTO parts VALUES (?, 0, 'queued', NULL, NULL)"
    PART_SENT = (
        "UPDATE parts SET status = 'sent', carrier_id = ?, carrier_id_normalised = ?"
        " WHERE message_id = ? AND part_index = 0"
    )
    PART_DELIVERED = "UPDATE parts SET status = 'delivered' WHERE message_id = ? AND part_index = 0"
    EVENT = "INSERT INTO events (message_id, type, payload, created_at) VALUES (?, ?, ?, ?)"
    JOB = "INSERT INTO jobs VALUES (?, ?, ?, ?)"
    JOB_DONE = "DELETE FROM jobs WHERE id = ?"
    ATTEMPT = "INSERT INTO attempts (event_id, status, created_at) VALUES (?, ?, ?)"
    INSERT = "INSERT INTO messages VALUES (?, ?, ?, ?, 'queued', NULL, ?, ?)"
    SENT = "UPDATE messages SET status = 'sent', carrier_id = ?, updated_at = ? WHERE id = ?"
    DELIVERED = "UPDATE messages SET status = 'delivered', updated_at = ? WHERE id = ?"

    def __init__(self, path: str, *, full: bool) -> None:
        self.full = full  # also the rows Pigeon keeps: events, jobs, webhook attempts
        self.loop = asyncio.get_running_loop()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        for statement in (*self.SCHEMA, *self.PARTS):
            self.db.execute(statement)
        self.thread = ThreadPoolExecutor(1)
        self.batch: list[tuple[str, tuple[Any, ...]]] = []
        self.waiting: list[asyncio.Future[None]] = []
        self.busy = self.scheduled = False

    def write(self, sql: str, params: tuple[Any, ...]) -> asyncio.Future[None]:
        """Queue one statement for the next commit."""
        future = self.loop.create_future()
        self.batch.append((sql, params))
        self.waiting.append(future)
        if not self.busy and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        self.scheduled = False
        if self.busy or not self.batch:
            return
        batch, waiting = self.batch, self.waiting
        self.batch, self.waiting, self.busy = [], [], True
        done = self.loop.run_in_executor(self.thread, self.commit, batch)
        done.add_done_callback(lambda result: self.committed(result, waiting))

    def commit(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        start = 0
        while start < len(batch):  # runs of one statement as one executemany
            sql, end = batch[start][0], start + 1
            while end < len(batch) and batch[end][0] is sql:
                end += 1
            self.db.executemany(sql, [params for _, params in batch[start:end]])
            start = end
        self.db.execute("COMMIT")

    def claim(self, kind: str, limit: int) -> asyncio.Future[list[tuple[Any, ...]]]:
        """Lease up to ``limit`` due jobs of ``kind`` for a minute, in one transaction with
        the reads their work needs: ``(message id, recipient, sender, body)`` of a dispatch,
        ``(job id, payload)`` of a webhook."""
        return self.loop.run_in_executor(self.thread, self._claim, kind, limit)

    def _claim(self, kind: str, limit: int) -> list[tuple[Any, ...]]:
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            leased = self.db.execute(
                "UPDATE jobs SET run_at = ? WHERE id IN (SELECT id FROM jobs WHERE kind = ?"
                " AND run_at <= ? ORDER BY run_at LIMIT ?) RETURNING id, payload",
                (now + 60, kind, now, limit),
            ).fetchall()
            if kind == "webhook" or not leased:
                return leased
            ids = [job_id[1:] for job_id, _ in leased]
            marks = ",".join("?" * len(ids))
            # S608: only "?" placeholders are formatted in; the ids are bound parameters.
            columns = "id, recipient, sender, body, created_at"
            select = f"SELECT {columns} FROM messages WHERE id IN ({marks})"  # noqa: S608
            return self.db.execute(select, ids).fetchall()
        finally:
            self.db.execute("COMMIT")

    def committed(self, result: asyncio.Future[None], waiting: list[asyncio.Future[None]]) -> None:
        self.busy = False
        result.result()  # a failed commit ends the relay: a floor, not a gateway
        for future in waiting:
            future.set_result(None)
        if self.batch:
            self.flush()


class Relay:
    """The whole pipeline's state: messages in flight, the SMPP link and the webhook client."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.auth = f"Bearer {args.key}".encode()
        self.ids = itertools.count(1)
        self.outbox: deque[tuple[str, Inbound]] = deque()
        self.ready = asyncio.Event()
        # ``--wake-port`` with ``--role accept``: a datagram to the delivering process after
        # each commit that wrote dispatch jobs (one per loop turn), as Pigeon's processes wake
        # each other, instead of leaving them to its poll.
        self.wake_to = ("127.0.0.1", args.wake_port) if args.wake_port else None
        self.wake_socket: socket.socket | None = None
        if self.wake_to is not None and args.role == "accept":
            self.wake_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.wake_socket.setblocking(False)
        self.wake_pending = False
        self.window = asyncio.Semaphore(WINDOW)
        self.sequence = itertools.count(1)
        self.pending: dict[int, tuple[str, Inbound]] = {}
        self.by_carrier_id: dict[str, tuple[str, Inbound]] = {}
        self.early: dict[str, DeliverSm] = {}  # receipts that beat their submit_sm_resp
        self.transport: asyncio.Transport | None = None
        self.decoder = PduDecoder()
        self.secret = new_secret()
        self.client: HttpClient | None = None
        self.encoder = msgspec.json.Encoder()
        self.store = Store(args.store, full=args.full_store) if args.store else None
        self.posting: set[asyncio.Future[None]] = set()
        self.hooks_ready = asyncio.Event()
        # --features: what Pigeon works out per message, done plainly
        self.features = bool(args.features)
        self.ulids = UlidFactory()
        self.records: dict[str, dict[str, Any]] = {}
        self.routes = {"US": "sim", "GB": "sim"}
        registry = CollectorRegistry()
        self.changes = Counter("floor_changes", "status changes", ["status"], registry=registry)
        self.delivery = Histogram(
            "floor_delivery_seconds", "accept to delivered", registry=registry
        )

    # -- HTTP in ---------------------------------------------------------------------------

    def accept(
        self, authorization: bytes, body: bytes
    ) -> tuple[int, bytes, asyncio.Future[None] | None]:
        """Answer one ``POST /v1/messages``: status, JSON body, and with ``--store`` the
        commit to wait for before answering."""
        if authorization != self.auth:
            return 401, b'{"code":"unauthorized"}', None
        try:
            inbound = msgspec.json.decode(body, type=Inbound)
        except msgspec.ValidationError:
            return 422, b'{"code":"invalid_request"}', None
        if self.features:
            return self.accept_with_features(inbound)
        message_id = f"msg_{next(self.ids):020d}"
        payload = self.encoder.encode(
            {"id": message_id, "to": inbound.to, "from": inbound.sender, "status": "queued"}
        )
        if self.store is None:
            self.queue((message_id, inbound))
            return 202, payload, None
        now = time.time()
        stored = self.store.write(
            Store.INSERT, (message_id, inbound.to, inbound.sender, inbound.body, now, now)
        )
        if self.store.full:
            self.store.write(Store.EVENT, (message_id, "message.queued", payload.decode(), now))
            stored = self.store.write(Store.JOB, (f"d{message_id}", "dispatch", "{}", now))
        if self.args.claims:  # the dispatcher claims the job from the database
            stored.add_done_callback(self.jobs_written)
        else:
            stored.add_done_callback(lambda _: self.queue((message_id, inbound)))
        return 202, payload, stored

    def accept_with_features(
        self, inbound: Inbound
    ) -> tuple[int, bytes, asyncio.Future[None] | None]:
        """``--features``: the accept with what Pigeon works out per message: the number
        parsed and classified, the text's encoding and segments, a route looked up, ULIDs, the
        message's whole public form (the 202's body and every event's payload), a part row and
        a counter; then the rows of ``--full-store`` (``--claims`` hands the work on)."""
        try:
            msisdn = parse_msisdn(inbound.to)
        except InvalidRecipient:
            return 422, b'{"code":"invalid_to"}', None
        analysis = analyse(inbound.body)
        if self.routes.get(msisdn.country) is None:
            return 422, b'{"code":"no_route"}', None
        message_id = self.ulids.new("msg")
        now = datetime.now(UTC)
        record = self.record_of(
            message_id, msisdn.e164, inbound.sender, inbound.body, now, analysis
        )
        if self.args.role == "all":  # the delivering process reads it back otherwise
            self.records[message_id] = record
        payload = self.encoder.encode(record)
        assert self.store is not None
        seconds = now.timestamp()
        self.store.write(
            Store.INSERT, (message_id, msisdn.e164, inbound.sender, inbound.body, seconds, seconds)
        )
        self.store.write(Store.PART, (message_id,))
        queued = self.event("queued", record)
        self.store.write(Store.EVENT, (message_id, "message.queued", queued, seconds))
        stored = self.store.write(Store.JOB, (f"d{message_id}", "dispatch", "{}", seconds))
        stored.add_done_callback(self.jobs_written)
        return 202, payload, stored

    def jobs_written(self, _: object) -> None:
        """Dispatch jobs were committed: the dispatcher (here, or woken over UDP) looks."""
        self.ready.set()
        if self.wake_socket is not None and not self.wake_pending:
            self.wake_pending = True
            asyncio.get_running_loop().call_soon(self.send_wake)

    def send_wake(self) -> None:
        self.wake_pending = False
        assert self.wake_socket is not None
        assert self.wake_to is not None
        with contextlib.suppress(OSError):  # a lost wake costs the delivering side one poll
            self.wake_socket.sendto(b"w", self.wake_to)

    def record_of(
        self,
        message_id: str,
        to: str,
        sender: str,
        body: str,
        created: datetime,
        analysis: TextAnalysis | None = None,
    ) -> dict[str, Any]:
        """``--features``: the message's whole public form, as Pigeon's API gives it."""
        if analysis is None:
            analysis = analyse(body)
        stamp = iso(created)
        return {
            "id": message_id,
            "status": "queued",
            "direction": "outbound",
            "to": to,
            "from": sender,
            "body": body,
            "category": "transactional",
            "encoding": str(analysis.encoding),
            "segments": analysis.segments,
            "price": None,
            "client_ref": None,
            "error_code": None,
            "send_at": None,
            "expires_at": None,
            "test": False,
            "created_at": stamp,
            "updated_at": stamp,
        }

    def event(self, status: str, record: dict[str, Any] | None = None) -> str:
        """``--features``: an event with the message's whole public form, and its count."""
        self.changes.labels(status).inc()
        return self.encoder.encode(
            {"id": self.ulids.new("evt"), "type": f"message.{status}", "data": record}
        ).decode()

    def queue(self, entry: tuple[str, Inbound]) -> None:
        self.outbox.append(entry)
        self.ready.set()

    # -- SMPP out --------------------------------------------------------------------------

    async def run_link(self) -> None:
        """Bind to the simulator and submit the outbox, at most ``WINDOW`` unanswered."""
        loop = asyncio.get_running_loop()
        bound = loop.create_future()
        relay = self

        class Link(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                relay.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport

            def data_received(self, data: bytes) -> None:
                for pdu in relay.decoder.feed(data):
                    relay.on_pdu(pdu, bound)

        deadline = time.monotonic() + 30
        while True:  # the simulator may still be starting
            try:
                await loop.create_connection(Link, "127.0.0.1", self.args.sim_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self.send(
            BindTransceiver(
                sequence_number=next(self.sequence),
                system_id=self.args.sim_user,
                password=self.args.sim_password,
            )
        )
        await bound
        while self.args.claims:
            if self.args.role == "deliver":  # the accepts are another process's: poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ready.wait(), POLL)
            else:
                await self.ready.wait()
            self.ready.clear()
            while True:
                assert self.store is not None
                rows = await self.store.claim("dispatch", WINDOW)
                if not rows:
                    break
                for message_id, to, sender, body, created in rows:
                    if self.features and message_id not in self.records:  # accepted elsewhere
                        self.records[message_id] = self.record_of(
                            message_id, to, sender, body, datetime.fromtimestamp(created, UTC)
                        )
                    self.outbox.append((message_id, Inbound(to=to, body=body, sender=sender)))
                while self.outbox:
                    await self.window.acquire()
                    self.submit(*self.outbox.popleft())
        while True:
            await self.ready.wait()
            while self.outbox:
                await self.window.acquire()
                self.submit(*self.outbox.popleft())
            self.ready.clear()

    def submit(self, message_id: str, inbound: Inbound) -> None:
        """One submit_sm; the caller holds a slot of the window."""
        sequence = next(self.sequence)
        self.pending[sequence] = (message_id, inbound)
        self.send(
            SubmitSm(
                sequence_number=sequence,
                source_addr=inbound.sender,
                source_addr_ton=5,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=inbound.to.lstrip("+"),
                registered_delivery=1,
                short_message=inbound.body.encode("latin-1", "replace"),
            )
        )

    def send(self, pdu: Pdu) -> None:
        assert self.transport is not None
        self.transport.write(encode(pdu))

    def on_pdu(self, pdu: Pdu | DecodeError, bound: asyncio.Future[None]) -> None:
        """One PDU from the simulator."""
        if isinstance(pdu, DecodeError):
            answer = pdu.response()
            if answer is not None:
                self.send(answer)
            return
        if isinstance(pdu, SubmitSmResp):
            entry = self.pending.pop(pdu.sequence_number, None)
            self.window.release()
            if entry is None or pdu.command_status:
                return
            if self.store is not None:
                now = time.time()
                self.store.write(Store.SENT, (pdu.message_id, now, entry[0]))
                if self.features:  # Pigeon records sending and sent, and the part's carrier id
                    carrier_id = pdu.message_id
                    self.store.write(
                        Store.PART_SENT, (carrier_id, carrier_id.lower().lstrip("0"), entry[0])
                    )
                    self.store.write(
                        Store.EVENT,
                        (entry[0], "message.sending", self.snapshot(entry, "sending"), now),
                    )
                if self.store.full:
                    self.store.write(Store.JOB_DONE, (f"d{entry[0]}",))
                    self.store.write(
                        Store.EVENT, (entry[0], "message.sent", self.snapshot(entry, "sent"), now)
                    )
            early = self.early.pop(pdu.message_id, None)
            if early is not None:
                self.deliver(entry, early)
            else:
                self.by_carrier_id[pdu.message_id] = entry
        elif isinstance(pdu, DeliverSm):
            self.send(response_for(pdu))
            receipt = receipt_from_pdu(pdu)
            if receipt is None:
                return
            entry = self.by_carrier_id.pop(receipt.message_id, None)
            if entry is None:
                self.early[receipt.message_id] = pdu
            else:
                self.deliver(entry, pdu)
        elif isinstance(pdu, EnquireLink):
            self.send(EnquireLinkResp(sequence_number=pdu.sequence_number))
        elif isinstance(pdu, BindTransceiverResp) and not bound.done():
            if pdu.command_status:
                bound.set_exception(RuntimeError(f"bind refused: {pdu.command_status:#x}"))
            else:
                bound.set_result(None)

    # -- webhooks --------------------------------------------------------------------------

    def deliver(self, entry: tuple[str, Inbound], receipt: DeliverSm) -> None:
        """Record the receipt (``--store``), then send the webhook."""
        if self.store is None:
            self.notify(entry, receipt)
            return
        now = time.time()
        stored = self.store.write(Store.DELIVERED, (now, entry[0]))
        if self.features:
            self.store.write(Store.PART_DELIVERED, (entry[0],))
            created = self.records[entry[0]]["created_at"]
            self.delivery.observe(max(0.0, now - datetime.fromisoformat(created).timestamp()))
        if self.store.full:
            snapshot = self.snapshot(entry, "delivered")
            self.store.write(Store.EVENT, (entry[0], "message.delivered", snapshot, now))
            stored = self.store.write(Store.JOB, (f"w{entry[0]}", "webhook", snapshot, now))
        if self.args.claims:  # the webhook loop claims the job from the database
            stored.add_done_callback(lambda _: self.hooks_ready.set())
        else:
            stored.add_done_callback(lambda _: self.notify(entry, receipt))

    async def run_webhooks(self) -> None:
        """``--claims``: claim webhook jobs and POST each job's stored snapshot."""
        assert self.store is not None
        while True:
            await self.hooks_ready.wait()
            self.hooks_ready.clear()
            while rows := await self.store.claim("webhook", WINDOW):
                now = time.time()
                for job_id, snapshot in rows:
                    message_id = job_id[1:]
                    if self.features:  # the job's payload is the event itself
                        self.records.pop(message_id, None)
                        event_id = msgspec.json.decode(snapshot)["id"]
                        self.post_soon(message_id, event_id, snapshot.encode(), int(now))
                        continue
                    event_id = f"evt_{message_id[4:]}"
                    body = b'{"id":"%s","type":"message.delivered","created_at":%f,"data":%s}' % (
                        event_id.encode(),
                        now,
                        snapshot.encode(),
                    )
                    self.post_soon(message_id, event_id, body, int(now))

    def snapshot(self, entry: tuple[str, Inbound], status: str) -> str:
        """The message as an event stores it."""
        message_id, inbound = entry
        if self.features:
            record = self.records[message_id]
            record["status"] = status
            record["updated_at"] = iso(datetime.now(UTC))
            return self.event(status, record)
        return self.encoder.encode(
            {
                "id": message_id,
                "to": inbound.to,
                "from": inbound.sender,
                "body": inbound.body,
                "status": status,
                "updated_at": time.time(),
            }
        ).decode()

    def notify(self, entry: tuple[str, Inbound], receipt: DeliverSm) -> None:
        """Send ``message.delivered`` for ``entry`` (not retried: a floor, not a gateway)."""
        message_id, inbound = entry
        now = time.time()
        event_id = f"evt_{message_id[4:]}"
        body = self.encoder.encode(
            {
                "id": event_id,
                "type": "message.delivered",
                "created_at": now,
                "data": {
                    "id": message_id,
                    "to": inbound.to,
                    "from": inbound.sender,
                    "body": inbound.body,
                    "status": "delivered",
                    "carrier_receipt": receipt.short_message.decode("latin-1"),
                },
            }
        )
        self.post_soon(message_id, event_id, body, int(now))

    def post_soon(self, message_id: str, event_id: str, body: bytes, timestamp: int) -> None:
        """Sign and POST one webhook in a task of its own."""
        headers = signature_headers(self.secret, event_id, timestamp, body)
        task = asyncio.ensure_future(self.post(message_id, event_id, body, headers))
        self.posting.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self.posting.discard)

    async def post(
        self, message_id: str, event_id: str, body: bytes, headers: dict[str, str]
    ) -> None:
        assert self.client is not None
        status = await self.client.post(self.args.webhook_url, headers, body, 10.0)
        if self.store is not None and self.store.full:
            self.store.write(Store.ATTEMPT, (event_id, status, time.time()))
            self.store.write(Store.JOB_DONE, (f"w{message_id}",))


class HttpIn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.authorization = b""
        self.header_name = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()

    def on_message_begin(self) -> None:
        self.body.clear()
        self.authorization = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self.authorization = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status, payload, stored = self.relay.accept(self.authorization, b"".join(self.body))
        if stored is None:
            self.answer(status, payload)
        else:
            stored.add_done_callback(lambda _: self.answer(status, payload))

    def answer(self, status: int, payload: bytes) -> None:
        reason = {202: b"Accepted", 401: b"Unauthorized", 422: b"Unprocessable Content"}[status]
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason, len(payload), payload)
        )


class WakeIn(asyncio.DatagramProtocol):
    """``--role deliver`` with ``--wake-port``: a datagram means dispatch jobs are due."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.relay.ready.set()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay(args)
    relay.client = HttpClient(
        limit=args.webhook_connections,
        limit_per_host=args.webhook_connections,
        user_agent="pigeon-floor",
        max_body=65536,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    waiting: list[Any] = [asyncio.ensure_future(stop.wait())]
    link = hooks = server = None
    if args.role == "deliver" and args.wake_port:
        await loop.create_datagram_endpoint(
            lambda: WakeIn(relay), local_addr=("127.0.0.1", args.wake_port)
        )
    if args.role != "accept":
        link = asyncio.ensure_future(relay.run_link())
        hooks = asyncio.ensure_future(relay.run_webhooks()) if args.claims else None
        waiting.append(link)
    if args.role != "deliver":
        server = await loop.create_server(
            lambda: HttpIn(relay), "127.0.0.1", args.port, backlog=4096
        )
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if link in done:
        link.result()  # the link failed: say why
    if server is not None:
        server.close()
    if hooks is not None:
        hooks.cancel()
    await relay.client.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sim-port", type=int, required=True)
    parser.add_argument("--sim-user", required=True)
    parser.add_argument("--sim-password", required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--webhook-connections", type=int, default=64)
    parser.add_argument(
        "--store", metavar="PATH", help="keep one SQLite row per message there (durable accept)"
    )
    parser.add_argument(
        "--full-store",
        action="store_true",
        help="with --store, also Pigeon's other rows: an event per status, a dispatch and a "
        "webhook job (inserted and deleted), a webhook attempt",
    )
    parser.add_argument(
        "--claims",
        action="store_true",
        help="with --full-store, hand work on through the jobs table: the dispatcher and the "
        "webhook loop lease jobs and read their messages back, instead of taking them from "
        "memory",
    )
    parser.add_argument(
        "--features",
        action="store_true",
        help="with --claims, also the per-message work Pigeon does, done plainly: number "
        "parsing, encoding and segments, a route, ULIDs, the whole message as every event's "
        "payload, a part row, counters",
    )
    parser.add_argument(
        "--role",
        choices=["all", "accept", "deliver"],
        default="all",
        help="with --claims, one of two processes on one database, as Pigeon splits serve and "
        "its worker: accept (HTTP in, rows written) or deliver (jobs claimed, SMPP, webhooks)",
    )
    parser.add_argument(
        "--wake-port",
        type=int,
        default=0,
        help="with --role: the UDP port on 127.0.0.1 the accepting process wakes the "
        "delivering one on after each commit of dispatch jobs (0: the delivering one polls "
        f"every {POLL * 1000:.0f} ms only)",
    )
    args = parser.parse_args()
    if args.role != "all" and not args.claims:
        parser.error("--role accept or deliver needs --claims")
    if args.claims and not args.full_store:
        parser.error("--claims needs --store and --full-store")
    if args.features and not args.claims:
        parser.error("--features needs --store, --full-store and --claims")
    return args


def run_profiled_if_asked(arguments: argparse.Namespace) -> None:
    """Run the relay; with ``PIGEON_PROFILE_DIR`` set (as ``pigeon serve`` reads it), under
    ``cProfile`` on the loop's thread, its statistics written there as ``floor-<pid>.pstats``
    when it stops (``bench/call_counts.py --floor`` reads them)."""
    set_up_sqlite_library()  # as Pigeon's processes do (ADR 48): the floor stays a floor
    drop_enum_getattr_fallback()  # and ADR 49
    folder = os.environ.get("PIGEON_PROFILE_DIR")
    profiler = cProfile.Profile() if folder else None
    if profiler is not None:
        profiler.enable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main(arguments))
    finally:
        if profiler is not None and folder:
            profiler.disable()
            Path(folder).mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(Path(folder) / f"floor-{os.getpid()}.pstats"))


if __name__ == "__main__":
    run_profiled_if_asked(parse_args())
