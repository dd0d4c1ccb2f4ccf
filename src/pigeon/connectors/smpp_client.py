"""The SMPP carrier connector: ``ports.Connector`` over our sans-I/O SMPP 3.4 code.

``SmppClientConnector(settings, receipt_sink, clock, mo_sink=None)`` holds ``settings.binds``
binds to one carrier (transceivers, transmitters, or transmitter + receiver pairs), each an
:class:`~pigeon.connectors.smpp_link.SmppLink` that reconnects on its own. :meth:`submit`
sends one submit_sm per segment, spread over the binds with free window slots, paced by a
token bucket when ``throughput_per_second`` is set, and returns the carrier's ids once every
segment is accepted. :attr:`ready` is true while at least one bind that can submit is up (a
receiver alone does not count); :meth:`start` returns once one is, or every bind has tried
once; :meth:`wait_bound` waits for one. :meth:`stop` stops taking submits, waits up to
``drain_timeout`` for those in flight and the receipts being stored, unbinds (waiting up to
``unbind_timeout`` for unbind_resp; a carrier that just closes is fine) and closes.

Errors, translated at this boundary (``code`` is ``smpp_0x%08x`` of the status):

* ESME_RTHROTTLED / ESME_RMSGQFUL pause the bind (doubling pauses) and the segment is tried
  again, for up to ``throttle_retry_for`` seconds; then :class:`Throttled`.
* statuses in ``settings.temporary_statuses`` (ESME_RSYSERR, ESME_RX_T_APPN...) raise
  :class:`TemporaryFailure`; every other error status raises :class:`PermanentFailure`.
* no response within ``response_timeout`` (``smpp_timeout``) or the connection lost with the
  submit in flight (``smpp_connection_lost``): :class:`TemporaryFailure`. The carrier may have
  taken the message: a retry can duplicate it (at-least-once, as DESIGN.md says).
* no bound transmitter (``smpp_not_bound``) or no free window slot within
  ``response_timeout`` (``smpp_window_full``): :class:`TemporaryFailure`, at once.

Partial sends: the segments of a long message are submitted one after the other without
waiting (pipelined in the window). If one fails after others were accepted, the error raised
is the worst (permanent > throttled > temporary) and its detail lists the ids of the segments
the carrier took; the recipient may get those parts and a retry sends every segment again.

Receipts (deliver_sm / data_sm with a receipt esm_class) go to ``receipt_sink`` with the
carrier's id exactly as received (receipted_message_id TLV, else the text's ``id:``); the
deliver_sm is answered only after the sink returned, with ESME_RX_T_APPN if it raised, so the
carrier resends what we could not store. Receipts that overtake their submit_sm_resp are
passed the same way. Other deliver_sm are mobile-originated messages: their parts (UDH 8/16
bit or SAR) are reassembled and the whole text is given to ``mo_sink`` before the last part
is answered; without a ``mo_sink`` they are acknowledged and logged. Parts of an incomplete
message are held in memory only (a restart loses them; the carrier does not resend parts
it had acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pigeon.connectors.pacing import TokenBucket
from pigeon.connectors.smpp_compose import decode_text, encode_text
from pigeon.connectors.smpp_link import (
    ConnectionLost,
    LinkMode,
    NotSent,
    ResponseTimeout,
    SmppLink,
)
from pigeon.connectors.smpp_settings import (
    DEFAULT_MESSAGE_FAULT_STATUSES,
    DEFAULT_TEMPORARY_STATUSES,
    BindMode,
    ConcatMode,
    DefaultAlphabet,
    SmppConnectorSettings,
)
from pigeon.domain.errors import (
    CarrierError,
    Fault,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from pigeon.domain.messages import Category, Message
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus, parse_receipt_status
from pigeon.ports import Clock, ReceiptBatchSink, ReceiptSink, SubmitResult
from pigeon.smpp import tlv
from pigeon.smpp.concat import PartSet, Reassembler, UdhError, part_from_pdu, split_udh
from pigeon.smpp.constants import (
    CommandStatus,
    GsmFeature,
    MessageState,
    ReceiptRequest,
    Ton,
    is_delivery_receipt,
    status_name,
)
from pigeon.smpp.pdu import DataSm, DeliverSm, GenericNack, Pdu, SubmitSm
from pigeon.smpp.receipt import receipt_from_pdu

__all__ = [
    "DEFAULT_MESSAGE_FAULT_STATUSES",
    "DEFAULT_TEMPORARY_STATUSES",
    "BindMode",
    "ConcatMode",
    "DefaultAlphabet",
    "InboundMessage",
    "MoSink",
    "SmppClientConnector",
    "SmppConnectorSettings",
    "carrier_error",
]

log = logging.getLogger(__name__)

_S = CommandStatus
_THROTTLING = frozenset({_S.ESME_RTHROTTLED, _S.ESME_RMSGQFUL})

#: Who gets a free window slot first when submits queue at the carrier's window.
CATEGORY_PRIORITY: dict[Category, int] = {
    Category.OTP: 2,
    Category.TRANSACTIONAL: 1,
    Category.MARKETING: 0,
}
_NOT_SENT_RETRIES = 3

_STATE_STATUS: dict[int, ReceiptStatus] = {
    MessageState.ENROUTE: ReceiptStatus.ENROUTE,
    MessageState.DELIVERED: ReceiptStatus.DELIVRD,
    MessageState.EXPIRED: ReceiptStatus.EXPIRED,
    MessageState.DELETED: ReceiptStatus.DELETED,
    MessageState.UNDELIVERABLE: ReceiptStatus.UNDELIV,
    MessageState.ACCEPTED: ReceiptStatus.ACCEPTD,
    MessageState.UNKNOWN: ReceiptStatus.UNKNOWN,
    MessageState.REJECTED: ReceiptStatus.REJECTD,
}


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A mobile-originated message, reassembled. ``source`` gets a ``+`` when the carrier
    marked it international (TON 1); ``received_at`` is when its last part arrived (UTC)."""

    connector_id: str
    source: str
    destination: str
    text: str
    received_at: datetime


MoSink = Callable[[InboundMessage], Awaitable[None]]


def carrier_error(
    status: int,
    detail: str,
    temporary: frozenset[int] = DEFAULT_TEMPORARY_STATUSES,
    message_faults: frozenset[int] = DEFAULT_MESSAGE_FAULT_STATUSES,
) -> CarrierError:
    """The domain error for an SMPP error status (throttling statuses -> Throttled; statuses
    in ``message_faults`` blame the message, other permanent ones the route)."""
    code = f"smpp_0x{status:08x}"
    text = f"{detail}: {status_name(status)} (0x{status:08X})"
    if status in _THROTTLING:
        return Throttled(text, code=code)
    if status in temporary:
        return TemporaryFailure(text, code=code)
    fault = Fault.MESSAGE if status in message_faults else Fault.ROUTE
    return PermanentFailure(text, code=code, fault=fault)


def _segments_failure(ids: list[str], errors: list[CarrierError], count: int) -> CarrierError:
    """The error of a long message some of whose ``count`` segments failed with ``errors``
    (the worst wins: permanent > throttled > temporary); ``ids``: those the carrier took."""
    worst = next(
        (e for e in errors if isinstance(e, PermanentFailure)),
        next((e for e in errors if isinstance(e, Throttled)), errors[0]),
    )
    detail = (
        f"{worst.detail} (segment failure: {len(ids)} of {count} segments were "
        f"accepted as {', '.join(ids) or 'none'}; a retry resends all of them)"
    )
    return type(worst)(detail, code=worst.code)


class _SegmentsUnderWay:
    """The segments of one long message that ``start_submit`` started: ``result`` ends once
    every segment has, as ``submit`` would end (the carrier's ids in segment order, or the
    worst error)."""

    __slots__ = ("errors", "ids", "left", "result")

    def __init__(self, result: asyncio.Future[SubmitResult], count: int) -> None:
        self.result = result
        self.ids: list[str | None] = [None] * count
        self.errors: list[BaseException] = []
        self.left = count

    def accepted(self, index: int, carrier_id: str) -> None:
        """Segment ``index`` was taken by the carrier as ``carrier_id``."""
        self.ids[index] = carrier_id
        self._ended()

    def failed(self, error: BaseException) -> None:
        """A segment ended with ``error``."""
        self.errors.append(error)
        self._ended()

    def retry_ended(self, index: int, retry: asyncio.Future[str]) -> None:
        """Segment ``index`` ended as the ``_submit_segment`` task ``retry`` did."""
        if retry.cancelled():
            abandoned = "a segment's submit was abandoned"
            self.failed(TemporaryFailure(abandoned, code="smpp_connection_lost"))
        elif (error := retry.exception()) is not None:
            self.failed(error)
        else:
            self.accepted(index, retry.result())

    def _ended(self) -> None:
        self.left -= 1
        result = self.result
        if self.left or result.done():
            return
        errors = self.errors
        if not errors:
            ids = tuple(carrier_id or "" for carrier_id in self.ids)
            result.set_result(SubmitResult(carrier_message_ids=ids))
            return
        carrier_errors: list[CarrierError] = []
        for error in errors:
            if not isinstance(error, CarrierError):
                result.set_exception(error)  # a fault of ours, raised as ``submit`` would
                return
            carrier_errors.append(error)
        taken = [carrier_id for carrier_id in self.ids if carrier_id is not None]
        result.set_exception(_segments_failure(taken, carrier_errors, len(self.ids)))


def _settle_retry(result: asyncio.Future[SubmitResult], retry: asyncio.Future[str]) -> None:
    """``result`` as the retried segment ``retry`` ended (``start_submit``'s throttled case)."""
    if result.done():
        if not retry.cancelled():
            retry.exception()  # retrieved: nobody waits for it any more
        return
    if retry.cancelled():
        result.cancel()
    elif (error := retry.exception()) is not None:
        result.set_exception(error)
    else:
        result.set_result(SubmitResult(carrier_message_ids=(retry.result(),)))


def _submit_sm(sequence_number: int, **fields: Any) -> SubmitSm:
    return SubmitSm(sequence_number=sequence_number, **fields)


def _source_numbering(source: str) -> tuple[str, int, int]:
    if source.startswith("+") and source[1:].isdigit():
        return source[1:], Ton.INTERNATIONAL, 1
    if source.isdigit():
        return source, Ton.UNKNOWN, 1
    return source, Ton.ALPHANUMERIC, 0


class SmppClientConnector:
    """``ports.Connector`` for one SMPP carrier; see the module docstring."""

    def __init__(
        self,
        settings: SmppConnectorSettings,
        receipt_sink: ReceiptSink,
        clock: Clock,
        mo_sink: MoSink | None = None,
    ) -> None:
        self.settings = settings
        self._receipt_sink = receipt_sink
        #: The sink's way to take the receipts of one read at once, if it has one.
        self._receipts_each = (
            receipt_sink.each if isinstance(receipt_sink, ReceiptBatchSink) else None
        )
        self._mo_sink = mo_sink
        self._clock = clock
        modes = {
            "trx": (LinkMode.TRX,),
            "tx": (LinkMode.TX,),
            "rx+tx": (LinkMode.TX, LinkMode.RX),
        }[settings.bind_mode]
        self.links = [
            SmppLink(settings, mode, index, self._inbound, self._link_changed)
            for index in range(settings.binds)
            for mode in modes
        ]
        self._tx_links = [link for link in self.links if link.tx_capable]
        self._bucket: TokenBucket | None = (
            TokenBucket(settings.throughput_per_second) if settings.throughput_per_second else None
        )
        # Submits waiting for a window slot, best first: (-priority, arrival, future).
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._state_waiters: list[asyncio.Future[None]] = []
        self._reference = secrets.randbelow(0x10000)
        self._reassembler = Reassembler(timeout=settings.mo_reassembly_timeout)
        self._mo_codings: dict[tuple[str, str, int, int], int] = {}
        self._mo_unsent: dict[tuple[str, str, int, int], InboundMessage] = {}
        self._started = False
        #: The loop it was started on (``start``): kept to save asking
        #: ``asyncio.get_running_loop()``, a ``getpid`` system call on Python 3.11, per submit.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # --- ports.Connector --------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The connector id."""
        return self.settings.id

    @property
    def pacing(self) -> TokenBucket | None:
        """The pacer of this connector's submits (``None`` without ``throughput_per_second``)."""
        return self._bucket

    @property
    def ready(self) -> bool:
        """True when at least one bind that can submit is up."""
        # A loop, not any(generator): asked several times per dispatch (routing, failover).
        for link in self._tx_links:  # noqa: SIM110 - any(generator) costs 5x the loop
            if link.bound:
                return True
        return False

    async def start(self) -> None:
        """Open every bind; return once one can submit or every first attempt has ended."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        for link in self.links:
            link.start()
        settings = self.settings
        await self.wait_ready(settings.connect_timeout + settings.response_timeout)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until :attr:`ready`, or every bind tried once, or ``timeout``; return ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready and not all(link.attempted.is_set() for link in self.links):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._state_waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)
        return self.ready

    async def wait_bound(self, timeout: float) -> bool:
        """Wait until :attr:`ready` (binds retried as needed) or ``timeout``; return ready."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._state_waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)
        return self.ready

    async def stop(self) -> None:
        """Stop submitting, let what is in flight finish briefly, unbind and close every bind."""
        if not self._started:
            return
        self._stopping = True
        await asyncio.gather(*(link.stop() for link in self.links))
        self._started = False
        self._wake(everyone=True)

    async def submit(self, message: Message) -> SubmitResult:
        """Send ``message`` (one submit_sm per segment); see the module docstring for errors."""
        if not self._started or self._stopping:
            raise TemporaryFailure(f"{self.id}: connector not running", code="smpp_not_started")
        if not self.ready:
            raise TemporaryFailure(
                f"{self.id}: no bound transmitter to the carrier", code="smpp_not_bound"
            )
        pdus = self._compose(message)
        priority = CATEGORY_PRIORITY.get(message.category, 0)
        if len(pdus) == 1:
            segment = await self._submit_segment(pdus[0], priority)
            return SubmitResult(carrier_message_ids=(segment,))
        outcomes = await asyncio.gather(
            *(self._submit_segment(pdu, priority) for pdu in pdus), return_exceptions=True
        )
        ids: list[str] = []
        errors: list[CarrierError] = []
        for outcome in outcomes:
            if isinstance(outcome, str):
                ids.append(outcome)
            elif isinstance(outcome, CarrierError):
                errors.append(outcome)
            else:
                raise outcome
        if not errors:
            return SubmitResult(carrier_message_ids=tuple(ids))
        raise _segments_failure(ids, errors, len(pdus))

    # --- submitting -------------------------------------------------------------------------

    def _compose(self, message: Message) -> list[Callable[[int], SubmitSm]]:
        """One submit_sm builder per segment; each takes the sequence number (building the
        PDU once with it is cheaper than copying a finished PDU to set it)."""
        settings = self.settings
        self._reference = (self._reference + 1) & 0xFFFF
        try:
            text = encode_text(
                message.body,
                concat=settings.concat,
                default_alphabet=settings.data_coding_default,
                reference=self._reference,
            )
        except ValueError as exc:
            raise PermanentFailure(
                f"{self.id}: cannot encode the message: {exc}", code="smpp_encoding"
            ) from None
        source, ton, npi = _source_numbering(message.sender or settings.default_source)
        if settings.source_ton is not None:
            ton = settings.source_ton
        if settings.source_npi is not None:
            npi = settings.source_npi
        receipt = ReceiptRequest.SUCCESS_OR_FAILURE if settings.registered_delivery else 0
        builders: list[Callable[[int], SubmitSm]] = []
        for segment in text.segments:  # a loop: no comprehension's function per message
            builders.append(
                functools.partial(
                    _submit_sm,
                    service_type=settings.service_type,
                    source_addr_ton=ton,
                    source_addr_npi=npi,
                    source_addr=source,
                    dest_addr_ton=settings.dest_ton,
                    dest_addr_npi=settings.dest_npi,
                    destination_addr=message.to.removeprefix("+"),
                    esm_class=segment.esm_class,
                    registered_delivery=receipt,
                    data_coding=text.data_coding,
                    short_message=segment.short_message,
                    tlvs=segment.tlvs,
                )
            )
        return builders

    async def _submit_segment(
        self,
        pdu: Callable[[int], SubmitSm],
        priority: int = 0,
        throttled_since: float | None = None,
    ) -> str:
        not_sent = 0
        while True:
            link = await self._acquire(priority)
            try:
                if self._bucket is not None:
                    await self._bucket.take()
                response = await link.request(pdu)
            except ValueError as exc:  # from encode: a field the specification forbids
                raise PermanentFailure(
                    f"{self.id}: the message does not fit in a submit_sm: {exc}",
                    code="smpp_invalid_pdu",
                ) from None
            except NotSent as exc:
                not_sent += 1
                if not_sent > _NOT_SENT_RETRIES:
                    raise TemporaryFailure(
                        f"{self.id}: submit could not be written: {exc}", code="smpp_not_bound"
                    ) from None
                continue
            except (ResponseTimeout, ConnectionLost) as exc:
                raise self._unanswered(link, exc) from None
            finally:
                link.release()
            verdict = self._verdict(link, response, throttled_since)
            if isinstance(verdict, str):
                return verdict
            if isinstance(verdict, float):
                throttled_since = verdict
                continue
            raise verdict

    def _unanswered(self, link: SmppLink, exc: ResponseTimeout | ConnectionLost) -> CarrierError:
        """The error of a submit written on ``link`` that got no response."""
        if isinstance(exc, ResponseTimeout):
            return TemporaryFailure(
                f"{self.id}: no submit_sm_resp within {self.settings.response_timeout}s on "
                f"{link.name} (the carrier may have the message)",
                code="smpp_timeout",
            )
        return TemporaryFailure(
            f"{self.id}: connection lost with the submit in flight on {link.name}: {exc}"
            " (the carrier may have the message)",
            code="smpp_connection_lost",
        )

    def _verdict(
        self, link: SmppLink, response: Pdu, throttled_since: float | None
    ) -> str | float | CarrierError:
        """What ``response`` to a submit on ``link`` means: the carrier's id (accepted), the
        time the throttling began (try the segment again), or the error to raise."""
        status = response.command_status
        if isinstance(response, GenericNack) and status == _S.ESME_ROK:
            status = _S.ESME_RSYSERR  # a generic_nack never means success
        if status == _S.ESME_ROK:
            link.accepted()
            message_id = getattr(response, "message_id", "")
            if not message_id:
                log.warning("%s: submit_sm_resp OK without a message_id", link.name)
            return str(message_id)
        if status in _THROTTLING:
            now = asyncio.get_running_loop().time()
            link.throttled(now)
            if throttled_since is None:
                throttled_since = now
            if now - throttled_since < self.settings.throttle_retry_for:
                return throttled_since
        elif status == _S.ESME_RINVBNDSTS:
            log.warning("%s: the carrier says we are not bound; re-binding", link.name)
            link.drop()
        return carrier_error(
            status,
            f"{self.id}: carrier refused the submit",
            self.settings.temporary_statuses,
            self.settings.message_fault_statuses,
        )

    def start_submit(self, message: Message) -> asyncio.Future[SubmitResult] | None:
        """``submit`` of ``message`` written now, without a coroutine or a task: the future of
        its result, which ends as ``submit`` would return or raise. ``None`` when it cannot
        go out at once (no free window slot, no token of the connector's pacing at hand, a
        submit of higher priority waiting): then ``submit`` it. A long message's first
        segment is written now and each further one on a free slot (with a token) if there is
        one, else in a task waiting for them as ``submit``'s segments wait."""
        if not self._started or self._stopping:
            return None
        priority = CATEGORY_PRIORITY.get(message.category, 0)
        link = self._free_link(priority)
        if link is None:
            return None
        if link.congested:
            return None
        bucket = self._bucket
        if bucket is not None and not bucket.try_take():
            return None
        try:
            pdus = self._compose(message)
            pdu = pdus[0]
            response = link.start_request(pdu)
        except (PermanentFailure, ValueError, NotSent):
            if bucket is not None:
                bucket.refund()
            return None  # ``submit`` raises it, or tries again
        link.busy += 1
        result: asyncio.Future[SubmitResult] = response.get_loop().create_future()
        if len(pdus) == 1:
            response.add_done_callback(
                functools.partial(self._responded, link, pdu, priority, result)
            )
            return result
        under_way = _SegmentsUnderWay(result, len(pdus))
        response.add_done_callback(
            functools.partial(self._segment_responded, link, pdu, priority, under_way, 0)
        )
        for index in range(1, len(pdus)):
            self._start_segment(pdus[index], priority, under_way, index)
        return result

    def _start_segment(
        self,
        pdu: Callable[[int], SubmitSm],
        priority: int,
        under_way: _SegmentsUnderWay,
        index: int,
    ) -> None:
        """Write a further segment of a long message ``start_submit`` started, on the least
        busy bind with room (and a token of the pacing, if any); without them (or when it
        cannot be written now) it waits for them in a task of its own, as ``submit``'s
        segments do."""
        link = self._free_link(priority)
        bucket = self._bucket
        response = None
        if link is not None and not link.congested and (bucket is None or bucket.try_take()):
            try:
                response = link.start_request(pdu)
            except (ValueError, NotSent):  # the task raises it, or tries again
                if bucket is not None:
                    bucket.refund()
        if link is None or response is None:
            retry = asyncio.ensure_future(self._submit_segment(pdu, priority))
            retry.add_done_callback(functools.partial(under_way.retry_ended, index))
            return
        link.busy += 1
        response.add_done_callback(
            functools.partial(self._segment_responded, link, pdu, priority, under_way, index)
        )

    def _segment_responded(
        self,
        link: SmppLink,
        pdu: Callable[[int], SubmitSm],
        priority: int,
        under_way: _SegmentsUnderWay,
        index: int,
        response: asyncio.Future[Pdu],
    ) -> None:
        """The end of a segment ``start_submit`` wrote: told to ``under_way``."""
        link.release()
        outcome = self._response_outcome(link, response)
        if isinstance(outcome, str):
            under_way.accepted(index, outcome)
        elif isinstance(outcome, float):  # throttled: tried again as ``submit`` does
            retry = asyncio.ensure_future(self._submit_segment(pdu, priority, outcome))
            retry.add_done_callback(functools.partial(under_way.retry_ended, index))
        else:
            under_way.failed(outcome)

    def _response_outcome(
        self, link: SmppLink, response: asyncio.Future[Pdu]
    ) -> str | float | BaseException:
        """What the ended ``response`` of a submit written on ``link`` means: the carrier's
        id, the time throttling began (try the segment again) or the error to raise."""
        if response.cancelled():
            return TemporaryFailure(
                f"{self.id}: the submit on {link.name} was abandoned", code="smpp_connection_lost"
            )
        failure = response.exception()
        if failure is None:
            return self._verdict(link, response.result(), None)
        if isinstance(failure, ResponseTimeout | ConnectionLost):
            return self._unanswered(link, failure)
        return failure

    def slot_wait(self, message: Message) -> asyncio.Future[None] | None:
        """After ``start_submit`` gave ``None`` because every window is full: a future that
        the next freed slot ends, in line with the submits waiting in ``submit`` (by
        priority, then arrival); ``start_submit`` may then start ``message``. ``None`` when
        the windows are not what stopped it (nothing bound, a pause after throttling, a free
        slot the message cannot take: no token of the pacing, a submit of higher priority
        waiting, a stop): then ``submit`` it (which waits for the token). A freed slot found
        unusable is handed to the next in line here."""
        if not self._started or self._stopping:
            return None
        loop = asyncio.get_running_loop()
        now = loop.time()
        full = False
        for link in self._tx_links:
            if not link.bound:
                continue
            if link.paused_until > now:
                return None
            if link.can_take(now):
                if self._waiters:
                    self._wake()  # a free slot this message leaves: the next in line's
                return None
            full = True
        if not full:
            return None
        waiter: asyncio.Future[None] = loop.create_future()
        priority = CATEGORY_PRIORITY.get(message.category, 0)
        heapq.heappush(self._waiters, (-priority, next(self._arrivals), waiter))
        return waiter

    def _responded(
        self,
        link: SmppLink,
        pdu: Callable[[int], SubmitSm],
        priority: int,
        result: asyncio.Future[SubmitResult],
        response: asyncio.Future[Pdu],
    ) -> None:
        """The end of a submit ``start_submit`` wrote: ``result`` as ``submit`` would end."""
        link.release()
        outcome = self._response_outcome(link, response)
        if isinstance(outcome, str):
            if not result.done():
                result.set_result(SubmitResult((outcome,)))  # carrier_message_ids
        elif isinstance(outcome, float):  # throttled: tried again as ``submit`` does
            retry = asyncio.ensure_future(self._submit_segment(pdu, priority, outcome))
            retry.add_done_callback(functools.partial(_settle_retry, result))
        elif not result.done():
            result.set_exception(outcome)

    async def _acquire(self, priority: int = 0) -> SmppLink:
        """Reserve a window slot on the least busy bound transmitter, waiting if all are full.

        Waiters are served by ``priority`` (an OTP before queued marketing), then in arrival
        order; a new submit does not take a free slot while a better one waits for it.
        """
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if self._stopping:
                raise TemporaryFailure(f"{self.id}: connector stopping", code="smpp_not_started")
            now = loop.time()
            best: SmppLink | None = None
            bound = False
            wake = None
            for link in self._tx_links:
                if not link.bound:
                    continue
                bound = True
                if link.can_take(now):
                    if best is None or link.busy < best.busy:
                        best = link
                elif link.paused_until > now and (wake is None or link.paused_until < wake):
                    wake = link.paused_until
            if best is not None and not self._better_waiting(priority):
                best.busy += 1
                return best
            if not bound:
                raise TemporaryFailure(
                    f"{self.id}: no bound transmitter to the carrier", code="smpp_not_bound"
                )
            if deadline is None:
                deadline = now + self.settings.response_timeout
            elif now >= deadline:
                raise TemporaryFailure(
                    f"{self.id}: no free window slot within {self.settings.response_timeout}s",
                    code="smpp_window_full",
                )
            until = deadline if wake is None else min(wake, deadline)
            waiter: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self._waiters, (-priority, next(self._arrivals), waiter))
            woken = False
            try:
                async with asyncio.timeout(max(until - now, 0.0)):
                    await waiter
                woken = True
            except TimeoutError:
                pass
            finally:
                if not waiter.done():
                    waiter.cancel()
                elif not woken and not waiter.cancelled():
                    self._wake()  # we were handed a slot but leave: pass it on

    def _free_link(self, priority: int) -> SmppLink | None:
        """The least busy bound transmitter with a free window slot, unless a submit of higher
        priority waits for one (``None``); nothing is reserved."""
        if self._waiters and self._better_waiting(priority):
            return None
        now = (self._loop or asyncio.get_running_loop()).time()
        best: SmppLink | None = None
        for link in self._tx_links:
            if link.can_take(now) and (best is None or link.busy < best.busy):
                best = link
        return best

    def _better_waiting(self, priority: int) -> bool:
        """Whether a submit of higher priority than ``priority`` waits for a slot."""
        waiters = self._waiters
        while waiters and waiters[0][2].done():  # cancelled or timed out: drop
            heapq.heappop(waiters)
        return bool(waiters) and -waiters[0][0] > priority

    def _wake(self, *, everyone: bool = False) -> None:
        waiters = self._waiters
        while waiters:
            _, _, waiter = heapq.heappop(waiters)
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    break

    def _link_changed(self, state: bool) -> None:
        self._wake(everyone=state)
        if state:
            waiters, self._state_waiters = self._state_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # --- receiving --------------------------------------------------------------------------

    async def _inbound(self, link: SmppLink, pdus: list[DeliverSm | DataSm]) -> list[int]:
        """The statuses to answer ``pdus`` (those of one read) with: their receipts applied
        together, their mobile-originated messages each on its own, side by side."""
        statuses: list[int] = [_S.ESME_ROK] * len(pdus)
        receipts: list[DeliveryReceipt] = []
        receipt_at: list[int] = []
        originated: list[int] = []
        for index, pdu in enumerate(pdus):
            if not is_delivery_receipt(pdu.esm_class):
                originated.append(index)
                continue
            try:
                receipt = self._receipt_of(link, pdu)
            except Exception:
                log.exception("%s: reading receipt seq=%d failed", link.name, pdu.sequence_number)
                statuses[index] = _S.ESME_RX_T_APPN
                continue
            if receipt is not None:
                receipts.append(receipt)
                receipt_at.append(index)
        errors: list[Exception | None]
        replies: list[object] = []
        if not originated:
            errors = await self._apply_receipts(receipts)
        else:
            applied, *replies = await asyncio.gather(
                self._apply_receipts(receipts),
                *(self._mobile_originated(link, pdus[index]) for index in originated),
                return_exceptions=True,
            )
            if isinstance(applied, Exception):
                errors = [applied] * len(receipts)
            elif isinstance(applied, BaseException):
                raise applied
            else:
                errors = cast(list[Exception | None], applied)
        for index, error in zip(receipt_at, errors, strict=True):
            if error is not None:
                log.error("%s: applying a receipt failed", link.name, exc_info=error)
                statuses[index] = _S.ESME_RX_T_APPN
        for index, reply in zip(originated, replies, strict=True):
            if isinstance(reply, Exception):
                log.error("%s: handling an inbound message failed", link.name, exc_info=reply)
                statuses[index] = _S.ESME_RX_T_APPN
            elif isinstance(reply, BaseException):
                raise reply
            else:
                statuses[index] = cast(int, reply)
        return statuses

    async def _apply_receipts(self, receipts: list[DeliveryReceipt]) -> list[Exception | None]:
        """Hand ``receipts`` to the sink, all at once if it takes them so; per receipt
        ``None`` or what failed it."""
        if not receipts:
            return []
        if self._receipts_each is not None:
            return await self._receipts_each(receipts)
        sink = self._receipt_sink
        outcomes = await asyncio.gather(*(sink(r) for r in receipts), return_exceptions=True)
        failures: list[Exception | None] = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                failures.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                failures.append(None)
        return failures

    def _receipt_of(self, link: SmppLink, pdu: DeliverSm | DataSm) -> DeliveryReceipt | None:
        """The receipt ``pdu`` carries (``None``: none with a message id, dropped)."""
        parsed = receipt_from_pdu(pdu)
        if parsed is None or not parsed.message_id:
            log.warning("%s: receipt without a message id, acknowledged and dropped", link.name)
            return None
        state = parsed.state
        status = (
            _STATE_STATUS.get(state, ReceiptStatus.UNKNOWN)
            if state is not None
            else parse_receipt_status(parsed.stat)
        )
        error: str | None = parsed.error.strip() or None
        if error is not None and not error.strip("0"):
            error = None  # err:000
        if error is None and parsed.network_error is not None and parsed.network_error.error_code:
            error = str(parsed.network_error.error_code)
        # By position (connector_id, carrier_message_id, status, error_code, at): half the
        # cost of keywords.
        return DeliveryReceipt(self.id, parsed.message_id, status, error, self._clock.now())

    async def _mobile_originated(self, link: SmppLink, pdu: DeliverSm | DataSm) -> int:
        settings = self.settings
        now = asyncio.get_running_loop().time()
        for dropped in self._reassembler.expire(now):
            self._drop_parts(link, dropped)
        part = part_from_pdu(pdu)
        source = pdu.source_addr
        if pdu.source_addr_ton == Ton.INTERNATIONAL and source.isdigit():
            source = "+" + source
        if part is None:
            content = b"" if isinstance(pdu, DataSm) else pdu.short_message
            if not content:
                content = pdu.tlv(tlv.MESSAGE_PAYLOAD) or b""
            if pdu.esm_class & GsmFeature.UDHI:
                with contextlib.suppress(UdhError):
                    content = split_udh(content)[1]
            text = decode_text(content, pdu.data_coding, settings.data_coding_default)
            inbound = InboundMessage(self.id, source, pdu.destination_addr, text, self._clock.now())
            return await self._deliver_mo(link, inbound)
        key = part.key
        unsent = self._mo_unsent.get(key)
        if unsent is not None:  # the sink failed on the last part: the carrier resent it
            return await self._deliver_mo(link, unsent, key)
        self._mo_codings.setdefault(key, pdu.data_coding)
        done = self._reassembler.add(part, now)
        if done is None:
            return _S.ESME_ROK
        coding = self._mo_codings.pop(key, pdu.data_coding)
        text = decode_text(done.payload, coding, settings.data_coding_default)
        inbound = InboundMessage(self.id, source, pdu.destination_addr, text, self._clock.now())
        return await self._deliver_mo(link, inbound, key)

    async def _deliver_mo(
        self,
        link: SmppLink,
        inbound: InboundMessage,
        key: tuple[str, str, int, int] | None = None,
    ) -> int:
        sink = self._mo_sink
        if sink is None:
            log.info(
                "%s: MO from %s to %s acknowledged (no MO sink): %r",
                link.name,
                inbound.source,
                inbound.destination,
                inbound.text[:40],
            )
            return _S.ESME_ROK
        try:
            await sink(inbound)
        except Exception:
            if key is not None:
                self._mo_unsent[key] = inbound
            raise
        if key is not None:
            self._mo_unsent.pop(key, None)
        return _S.ESME_ROK

    def _drop_parts(self, link: SmppLink, dropped: PartSet) -> None:
        self._mo_codings.pop(
            (dropped.source, dropped.destination, dropped.reference, dropped.total), None
        )
        log.warning(
            "%s: MO from %s to %s dropped incomplete: %d of %d parts after %.0fs",
            link.name,
            dropped.source,
            dropped.destination,
            len(dropped.parts),
            dropped.total,
            self._reassembler.timeout,
        )
