"""Receipts: every carrier's delivery report goes through this one use case."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pigeon.domain.messages import Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus, apply_receipt, carrier_id_forms
from pigeon.ports import Clock, Job, JobQueue, MessageChange, MessageStore, Mutation, NewJob
from pigeon.services.events import EventRecorder
from pigeon.telemetry import DELIVERY_SECONDS

log = logging.getLogger(__name__)

#: Told the final outcomes of sent messages applied together, per connector: connector id,
#: (delivered?, seconds from submit to receipt or ``None`` if unknown) for each, and when the
#: receipts were applied. Feeds routing quality.
OutcomeSink = Callable[[str, Sequence[tuple[bool, float | None]], datetime], None]

#: Receipt outcomes that end a message's delivery: they count in a connector's delivery rate.
FINAL_OUTCOMES = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.EXPIRED,
        MessageStatus.REJECTED,
    }
)

#: How long a receipt for an id we do not know yet is kept and retried: receipts can overtake
#: the submit response that tells us the carrier's id.
UNMATCHED_RETRY = timedelta(seconds=5)
UNMATCHED_ATTEMPTS = 60


def receipt_job(receipt: DeliveryReceipt) -> dict[str, object]:
    """A receipt as a job payload."""
    return {
        "connector_id": receipt.connector_id,
        "carrier_message_id": receipt.carrier_message_id,
        "status": receipt.status.value,
        "error_code": receipt.error_code,
    }


def receipt_from_job(job: Job) -> DeliveryReceipt:
    """The receipt a ``receipt`` job carries."""
    payload = job.payload
    error = payload.get("error_code")
    return DeliveryReceipt(
        connector_id=str(payload["connector_id"]),
        carrier_message_id=str(payload["carrier_message_id"]),
        status=ReceiptStatus(str(payload["status"])),
        error_code=str(error) if error is not None else None,
    )


class ApplyReceipt:
    """Folds a carrier receipt into its message: idempotent, late receipts accepted."""

    def __init__(
        self,
        store: MessageStore,
        queue: JobQueue,
        recorder: EventRecorder,
        clock: Clock,
        *,
        on_outcomes: OutcomeSink | None = None,
    ) -> None:
        self._on_outcomes = on_outcomes
        self._store = store
        self._queue = queue
        self._recorder = recorder
        self._clock = clock

    async def __call__(self, receipt: DeliveryReceipt, *, job: Job | None = None) -> bool:
        """Apply ``receipt``; returns whether it matched a message.

        An unmatched receipt is kept as a durable ``receipt`` job and tried again, because it
        may have overtaken the submit response that tells us its id.
        """
        (outcome,) = await self._apply([receipt], job)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def each(self, receipts: Sequence[DeliveryReceipt]) -> list[Exception | None]:
        """Apply every receipt of ``receipts`` (those a carrier sent together): one look-up
        of their messages, one hand-over of their changes to the store's writer. Per
        receipt ``None``, or the exception that failed it alone."""
        return [
            outcome if isinstance(outcome, Exception) else None
            for outcome in await self._apply(receipts, None)
        ]

    async def _apply(
        self, receipts: Sequence[DeliveryReceipt], job: Job | None
    ) -> list[bool | Exception]:
        """Apply ``receipts`` (``job``: the one parked receipt job they came from); per
        receipt whether it matched a message, or the exception that failed it."""
        outcomes: list[bool | Exception] = [False] * len(receipts)
        try:
            found = await self._store.find_each_by_carrier_id(
                [(r.connector_id, carrier_id_forms(r.carrier_message_id)) for r in receipts]
            )
        except Exception as exc:  # nothing is known about any of them: each fails
            return [exc] * len(receipts)
        now = self._clock.now()
        changes: list[MessageChange] = []
        applied: list[tuple[int, _ReceiptChange]] = []
        unmatched: list[int] = []
        for index, (receipt, hit) in enumerate(zip(receipts, found, strict=True)):
            if hit is None:
                unmatched.append(index)
                continue
            message_id, stored_id = hit
            matched = (
                receipt
                if stored_id == receipt.carrier_message_id
                # not ``dataclasses.replace``: a fifth of its cost
                else DeliveryReceipt(
                    receipt.connector_id, stored_id, receipt.status, receipt.error_code, receipt.at
                )
            )
            change = _ReceiptChange(matched, now, self._recorder)
            changes.append(MessageChange(message_id, change, job.id if job else None))
            applied.append((index, change))
        if unmatched:
            try:
                await self._park([receipts[index] for index in unmatched], job, now)
            except Exception as exc:
                for index in unmatched:
                    outcomes[index] = exc
        if not changes:
            return outcomes
        results = await self._store.mutate_each(changes)
        observe = DELIVERY_SECONDS.observe
        finals: dict[str, list[tuple[bool, float | None]]] = {}
        for (index, change), result in zip(applied, results, strict=True):
            if isinstance(result, Exception):
                outcomes[index] = result
                continue
            outcomes[index] = True
            for message in change.delivered:
                observe(max(0.0, (now - message.created_at).total_seconds()))
            for connector_id, ok, latency in change.outcomes:
                finals.setdefault(connector_id, []).append((ok, latency))
        if self._on_outcomes is not None:
            for connector_id, of_connector in finals.items():
                self._on_outcomes(connector_id, of_connector, now)
        return outcomes

    async def from_job(self, job: Job) -> None:
        """Handles ``receipt`` jobs (receipts parked or handed over durably by a connector)."""
        await self(receipt_from_job(job), job=job)

    async def _park(
        self, receipts: Sequence[DeliveryReceipt], job: Job | None, now: datetime
    ) -> None:
        """Keep unmatched ``receipts`` as ``receipt`` jobs, tried again later; ``job``: the
        parked receipt job (of the one receipt) that came back and still matches nothing."""
        if job is not None:
            # A parked receipt came back and still matches nothing: try later, or give up.
            if job.attempts >= UNMATCHED_ATTEMPTS:
                log.warning(
                    "receipt for unknown carrier id %s on %s dropped after %d tries",
                    receipts[0].carrier_message_id,
                    receipts[0].connector_id,
                    job.attempts,
                )
                await self._queue.complete(job.id, job.lease_owner)
            else:
                await self._queue.retry(
                    job.id, job.lease_owner, now + UNMATCHED_RETRY, "no message has this id yet"
                )
            return
        jobs: list[NewJob] = []
        for receipt in receipts:
            key = f"{receipt.connector_id}:{receipt.carrier_message_id}:{receipt.status.value}"
            jobs.append(
                NewJob(
                    id=f"receipt:{key}",
                    kind="receipt",
                    payload=receipt_job(receipt),
                    run_at=now + UNMATCHED_RETRY,
                    priority=15,
                )
            )
        await self._queue.enqueue(jobs)


class ReceiptIntake:
    """What connectors hand their receipts to (``ports.ReceiptBatchSink``): ``ApplyReceipt``,
    given once it is made (connectors are made before the router it reports to)."""

    def __init__(self) -> None:
        self._apply: ApplyReceipt | None = None

    def apply_with(self, apply: ApplyReceipt) -> None:
        """Apply the receipts with ``apply`` from now on."""
        self._apply = apply

    async def __call__(self, receipt: DeliveryReceipt) -> None:
        """Apply one receipt."""
        await self._applier()(receipt)

    async def each(self, receipts: Sequence[DeliveryReceipt]) -> list[Exception | None]:
        """Apply the receipts that arrived together (``ApplyReceipt.each``)."""
        return await self._applier().each(receipts)

    def _applier(self) -> ApplyReceipt:
        if self._apply is None:
            raise RuntimeError("a receipt arrived before the gateway was assembled")
        return self._apply


class _ReceiptChange:
    """A matched receipt's change of its message (``MessageStore.mutate``'s ``change``),
    keeping what the caller reports once it is stored: the message if delivered, the final
    outcome for routing quality."""

    __slots__ = ("_now", "_receipt", "_recorder", "delivered", "outcomes")

    def __init__(self, receipt: DeliveryReceipt, now: datetime, recorder: EventRecorder) -> None:
        self._receipt = receipt
        self._now = now
        self._recorder = recorder
        self.delivered: list[Message] = []
        self.outcomes: list[tuple[str, bool, float | None]] = []

    def __call__(self, message: Message) -> Mutation | None:
        # The writer may run this more than once (a batch worked out again): start afresh.
        self.delivered.clear()
        self.outcomes.clear()
        now = self._now
        sent_at = message.updated_at if message.status is MessageStatus.SENT else None
        step, _ = apply_receipt(message, self._receipt, now)
        if step is None:
            # Parts may still have changed (one segment of several reported).
            return Mutation(message)
        if step.status is MessageStatus.DELIVERED:
            self.delivered.append(message)
        if step.status in FINAL_OUTCOMES and message.connector_id is not None:
            latency = (now - sent_at).total_seconds() if sent_at is not None else None
            self.outcomes.append(
                (message.connector_id, step.status is MessageStatus.DELIVERED, latency)
            )
        # Whether anyone listens is decided from the endpoint cache: no read here.
        events, jobs = self._recorder.record(message, [step])
        # A final outcome ends the wait (``receipt_due_at``, cleared by the transition).
        return Mutation(message, events, jobs)
