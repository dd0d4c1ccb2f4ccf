"""The customer SMPP server: ESMEs bind to us and submit into the same ``accept`` as REST.

State is labelled: per server (:class:`SmppServer`: the listener, the bound connections of
each account, each account's token bucket), per connection
(:class:`~pigeon.smpp_server.connection.Connection`) and per delivery (one deliver_sm until
its response).

* **Binds** are checked against SMPP accounts (argon2, see
  :mod:`pigeon.services.smpp_accounts`): unknown system_id -> ``ESME_RINVSYSID``, wrong
  password -> ``ESME_RINVPASWD``, more than ``max_binds`` open sessions of one account in this
  process -> ``ESME_RBINDFAIL``. A refused bind is answered, then the connection is closed.
* **Submits** (submit_sm, data_sm, submit_multi) over the account's throughput get
  ``ESME_RTHROTTLED`` at once; the others are accepted concurrently and each is answered with
  our message id only after its message is durable. Parts of a long message are kept durably
  (:class:`pigeon.ports.PartStore`) and answered one by one; the part that completes the set
  has the whole message accepted first (docs/adr/0005-smpp-long-messages.md).
* **Receipts and replies** are ``smpp_deliver`` jobs (written with the status change, see
  :mod:`pigeon.services.notify`); :meth:`SmppServer.deliver` is their handler: it sends the
  deliver_sm(s) on a receiving session of the account (replies: of any of the tenant's
  accounts) and completes the job when the customer acknowledged them, or puts the job back
  with a backoff while nobody is bound. A receiving bind wakes its account's jobs.
* **Stop** answers the submits being accepted, unbinds every session and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pigeon.domain.accounts import SmppAccount
from pigeon.domain.errors import NotFound
from pigeon.ports import AccountStore, Clock, IdFactory, Job, JobQueue, PartStore, PendingPart
from pigeon.services.accept import AcceptMessage, SendRequest
from pigeon.services.notify import smpp_deliver_prefix
from pigeon.services.queries import ReadMessages
from pigeon.services.smpp_accounts import AuthenticateBind, SmppLogin
from pigeon.smpp import mapping
from pigeon.smpp.codec import decode, encode, response_for
from pigeon.smpp.constants import CommandStatus, status_name
from pigeon.smpp.pdu import (
    DataSm,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    UnsuccessSme,
)
from pigeon.smpp_server.connection import Connection, DeliveryFailed
from pigeon.smpp_server.throttle import TokenBucket

__all__ = ["SmppServer", "SmppServerSettings", "SmppServices"]

log = logging.getLogger(__name__)

_S = CommandStatus

#: Waits while no receiving session is bound, by attempt: 1 s doubling to 30 s.
NO_RECEIVER_DELAYS = (1, 2, 4, 8, 16, 30)
#: Statuses with which a customer says "never send me this one again".
_PERMANENT = frozenset({_S.ESME_RX_P_APPN, _S.ESME_RINVMSGID})


@dataclass(frozen=True, slots=True)
class SmppServerSettings:
    """How the server listens and behaves towards customers."""

    host: str = "127.0.0.1"
    port: int = 2775
    #: Our system_id in bind responses.
    system_id: str = "pigeon"
    #: deliver_sm awaiting a response, per session.
    window: int = 10
    #: How long a deliver_sm or enquire_link may wait for its response.
    response_timeout: float = 30.0
    #: We send enquire_link after this much silence.
    enquire_link_interval: float = 60.0
    #: A connection that has not bound by then is closed.
    bind_timeout: float = 30.0
    #: Submits being accepted, per connection, before we stop reading from it.
    max_pending_submits: int = 2000
    #: Longest message in parts (as ``accept``'s max_segments).
    max_segments: int = 10
    #: Parts of a long message wait this long for the rest.
    concat_timeout: float = 600.0
    #: Receipts and replies wait this long for the customer to bind, then are dropped.
    outbox_retention: timedelta = timedelta(hours=72)
    #: How long stop() waits for unbind responses (and a few times that for submits).
    unbind_grace: float = 2.0


@dataclass(frozen=True, slots=True)
class SmppServices:
    """The use cases and ports the server works with."""

    authenticate: AuthenticateBind
    accept: AcceptMessage
    read: ReadMessages
    parts: PartStore
    queue: JobQueue
    accounts: AccountStore
    clock: Clock
    ids: IdFactory


@dataclass(slots=True)
class _Account:
    """Per account in this process: its bound connections and its throughput bucket."""

    connections: set[Connection] = field(default_factory=set)
    bucket: TokenBucket | None = None


class SmppServer:
    """Listens for customers' ESMEs; see the module docstring."""

    def __init__(self, settings: SmppServerSettings, services: SmppServices) -> None:
        self.settings = settings
        self.services = services
        self.port = 0
        self.stopping = False
        #: Called after a receiving bind woke its jobs (the runner that handles them).
        self.on_receiver_bound: Callable[[], None] = lambda: None
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._accounts: dict[str, _Account] = {}
        self._tenants_with_accounts: dict[str, tuple[float, bool]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether the listener is up (readiness)."""
        return self._server is not None and self._server.is_serving() and not self.stopping

    async def start(self) -> int:
        """Listen; return the port (the configured one, or the one picked for port 0)."""
        self._server = await asyncio.start_server(
            self._accept, self.settings.host, self.settings.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("smpp: listening on %s:%d", self.settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening, answer the submits in progress, unbind everyone, close."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await asyncio.gather(
            *(c.shutdown(self.settings.unbind_grace) for c in list(self._connections)),
            return_exceptions=True,
        )
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stopping:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        connection = Connection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.serve()
        except Exception:
            log.exception("smpp: connection %s crashed", connection.peer)
        finally:
            self._connections.discard(connection)
            self._handlers.discard(task)

    async def _sweep(self) -> None:
        # Parts of long messages whose other parts never came are forgotten after a while.
        while True:
            await asyncio.sleep(min(60.0, self.settings.concat_timeout / 4))
            cutoff = self.services.clock.now() - timedelta(seconds=self.settings.concat_timeout)
            try:
                dropped = await self.services.parts.expire_parts(cutoff)
            except Exception:
                log.exception("smpp: expiring parts of long messages failed")
                continue
            if dropped:
                log.warning("smpp: %d parts of incomplete long messages expired", dropped)

    # --- binds ----------------------------------------------------------------------------------

    def register(self, connection: Connection, login: SmppLogin) -> bool:
        """Count ``connection`` as a bind of its account, unless it has ``max_binds`` already."""
        account = login.account
        entry = self._accounts.setdefault(account.id, _Account())
        if len(entry.connections) >= account.max_binds:
            return False
        entry.connections.add(connection)
        return True

    def unregister(self, connection: Connection) -> None:
        """The connection ended."""
        login = connection.login
        if login is not None:
            entry = self._accounts.get(login.account.id)
            if entry is not None:
                entry.connections.discard(connection)

    def bound(self, account_id: str) -> int:
        """How many sessions of the account are bound here."""
        entry = self._accounts.get(account_id)
        return 0 if entry is None else len(entry.connections)

    async def receiver_bound(self, login: SmppLogin) -> None:
        """A receiving session came up: what waits for its account or tenant is due now."""
        queue = self.services.queue
        try:
            woken = await queue.wake(smpp_deliver_prefix(login.account.id))
            woken += await queue.wake(smpp_deliver_prefix(login.account.tenant_id))
        except Exception:
            log.exception("smpp: waking the deliveries of %s failed", login.account.system_id)
            return
        if woken:
            log.info("smpp: %d deliveries for %s are due", woken, login.account.system_id)
        self.on_receiver_bound()

    def admit(self, account: SmppAccount, now: float) -> bool:
        """Whether one more submit fits the account's throughput."""
        rate = account.throughput_per_second
        if rate is None:
            return True
        entry = self._accounts.setdefault(account.id, _Account())
        if entry.bucket is None or entry.bucket.rate != rate:
            entry.bucket = TokenBucket(rate, now=now)
        return entry.bucket.take(now)

    # --- submits --------------------------------------------------------------------------------

    async def submit(self, login: SmppLogin, pdu: SubmitSm | DataSm) -> str:
        """Accept what ``pdu`` carries; the id to answer with, once durable.

        Raises :class:`mapping.Refused` or the use case's errors (see ``mapping.status_for``).
        """
        services = self.services
        now = services.clock.now()
        part = mapping.concat_part(pdu)
        request = mapping.send_request(pdu, origin=login.account.origin, now=now)
        if part is None:
            return (await services.accept(login.caller, request)).message.id
        if part.total > self.settings.max_segments:
            raise mapping.Refused(
                _S.ESME_RINVMSGLEN,
                f"{part.total} parts; the most we take is {self.settings.max_segments}",
            )
        services.accept.preview(login.caller, request)  # this part's fields, before we keep it
        key = mapping.part_key(pdu, part)
        progress = await services.parts.add_part(
            PendingPart(
                account_id=login.account.id,
                key=key,
                seqnum=part.seqnum,
                total=part.total,
                message_id=services.ids.new("msg"),
                payload=part.payload,
                pdu=encode(pdu),
                received_at=now,
            )
        )
        if progress.complete is not None and not progress.accepted:
            pdus = [_stored(p.pdu) for p in progress.complete]
            whole = mapping.whole_request(
                pdus,
                [p.payload for p in progress.complete],
                origin=login.account.origin,
                now=now,
            )
            await services.accept(
                login.caller,
                whole,
                idempotency_key=f"smpp:{progress.message_id}",
                message_id=progress.message_id,
            )
            await services.parts.mark_accepted(login.account.id, key)
        return mapping.part_ids(progress.message_id, part.total)[part.seqnum - 1]

    async def submit_multi(self, login: SmppLogin, pdu: SubmitMulti) -> Pdu:
        """One accept per destination, concurrently; the answer names the first message
        accepted and lists the destinations that failed (all failed: the first error)."""
        services = self.services
        now = services.clock.now()
        try:
            items = mapping.multi_requests(pdu, origin=login.account.origin, now=now)
        except Exception as exc:
            return response_for(pdu, mapping.status_for(exc))

        async def one(request: SendRequest | mapping.Refused) -> str | int:
            if isinstance(request, mapping.Refused):
                return request.status
            try:
                return (await services.accept(login.caller, request)).message.id
            except Exception as exc:
                return mapping.status_for(exc)

        outcomes = await asyncio.gather(*(one(request) for _, request in items))
        ids = [outcome for outcome in outcomes if isinstance(outcome, str)]
        failed = tuple(
            UnsuccessSme(
                address.dest_addr_ton, address.dest_addr_npi, address.destination_addr, outcome
            )
            for (address, _), outcome in zip(items, outcomes, strict=True)
            if isinstance(outcome, int)
        )
        if not ids:
            return response_for(pdu, failed[0].error_status_code if failed else _S.ESME_RSUBMITFAIL)
        return SubmitMultiResp(
            sequence_number=pdu.sequence_number, message_id=ids[0], unsuccess_smes=failed
        )

    async def query(self, login: SmppLogin, pdu: QuerySm) -> Pdu:
        """The state of one of the tenant's messages (a part's id names its message)."""
        message_id = mapping.message_id_of(pdu.message_id)
        try:
            message, _ = await self.services.read.get(login.caller, message_id)
        except NotFound:
            return response_for(pdu, _S.ESME_RINVMSGID)
        result = mapping.query_result(message)
        return QuerySmResp(
            sequence_number=pdu.sequence_number,
            message_id=pdu.message_id,
            final_date=result.final_date,
            message_state=result.message_state,
            error_code=result.error_code,
        )

    # --- deliveries (the smpp_deliver job handler) ------------------------------------------------

    async def deliver(self, job: Job) -> None:
        """Send a receipt or a reply to the customer; complete the job once acknowledged."""
        services = self.services
        queue = services.queue
        payload = job.payload
        now = services.clock.now()
        created = datetime.fromisoformat(str(payload.get("created_at")))
        if now - created > self.settings.outbox_retention:
            log.warning("smpp: %s dropped: nobody bound for it within the retention", job.id)
            await queue.complete(job.id, job.lease_owner)
            return
        kind = payload.get("kind")
        if kind == "receipt":
            pdus = mapping.receipt_pdus(payload)
            connections = self._receivers(str(payload["account_id"]))
        elif kind == "mo":
            tenant_id = str(payload["tenant_id"])
            if not await self._has_accounts(tenant_id):
                await queue.complete(job.id, job.lease_owner)
                return
            pdus = mapping.reply_pdus(payload)
            connections = self._tenant_receivers(tenant_id)
        else:
            log.error("smpp: %s has an unknown kind %r; dropped", job.id, kind)
            await queue.complete(job.id, job.lease_owner)
            return
        if not connections:
            await self._later(job, "no receiving session is bound")
            return
        connection = min(connections, key=lambda c: c.busy)
        futures = connection.deliver(pdus)
        try:
            # The session fails a deliver_sm after response_timeout; the margin covers the wait
            # for the window. Both stay well inside the job's lease.
            statuses = await asyncio.wait_for(
                asyncio.gather(*futures), self.settings.response_timeout + 5
            )
        except (DeliveryFailed, TimeoutError) as exc:
            for future in futures:
                future.cancel()
            await self._later(job, f"not acknowledged: {exc}", soon=True)
            return
        refused = [status for status in statuses if status != _S.ESME_ROK]
        if not refused:
            await queue.complete(job.id, job.lease_owner)
        elif all(status in _PERMANENT for status in refused):
            log.warning("smpp: %s refused for good (%s)", job.id, status_name(refused[0]))
            await queue.complete(job.id, job.lease_owner)
        else:
            await self._later(job, f"refused with {status_name(refused[0])}")

    async def _later(self, job: Job, reason: str, *, soon: bool = False) -> None:
        delay = 1 if soon else NO_RECEIVER_DELAYS[min(job.attempts, len(NO_RECEIVER_DELAYS) - 1)]
        run_at = self.services.clock.now() + timedelta(seconds=delay)
        await self.services.queue.retry(job.id, job.lease_owner, run_at, reason)

    def _receivers(self, account_id: str) -> list[Connection]:
        entry = self._accounts.get(account_id)
        if entry is None:
            return []
        return [c for c in entry.connections if c.receives]

    def _tenant_receivers(self, tenant_id: str) -> list[Connection]:
        return [
            c
            for entry in self._accounts.values()
            for c in entry.connections
            if c.receives and c.login is not None and c.login.account.tenant_id == tenant_id
        ]

    async def _has_accounts(self, tenant_id: str) -> bool:
        cached = self._tenants_with_accounts.get(tenant_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < 30.0:
            return cached[1]
        found = bool(await self.services.accounts.list_smpp_accounts(tenant_id))
        self._tenants_with_accounts[tenant_id] = (now, found)
        return found


def _stored(frame: bytes) -> SubmitSm | DataSm:
    pdu = decode(frame)
    if not isinstance(pdu, SubmitSm | DataSm):
        raise RuntimeError(f"a stored part does not decode: {pdu!r}")
    return pdu
