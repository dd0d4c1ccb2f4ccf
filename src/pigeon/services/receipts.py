"""Receipts: every carrier's delivery report goes through this one use case."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from pigeon.domain.messages import Message, MessageStatus
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus, apply_receipt, carrier_id_forms
from pigeon.ports import Clock, Job, JobQueue, MessageStore, Mutation, NewJob
from pigeon.services.events import EventRecorder
from pigeon.telemetry import DELIVERY_SECONDS

log = logging.getLogger(__name__)

#: Told each final outcome of a sent message: connector id, delivered?, seconds from submit to
#: receipt (``None`` if unknown), and when the receipt was applied. Feeds routing quality.
OutcomeSink = Callable[[str, bool, float | None, datetime], None]

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
        on_outcome: OutcomeSink | None = None,
    ) -> None:
        self._on_outcome = on_outcome
        self._store = store
        self._queue = queue
        self._recorder = recorder
        self._clock = clock

    async def __call__(self, receipt: DeliveryReceipt, *, job: Job | None = None) -> bool:
        """Apply ``receipt``; returns whether it matched a message.

        An unmatched receipt is kept as a durable ``receipt`` job and tried again, because it
        may have overtaken the submit response that tells us its id.
        """
        found = await self._store.find_by_carrier_id(
            receipt.connector_id, carrier_id_forms(receipt.carrier_message_id)
        )
        if found is None:
            await self._park(receipt, job)
            return False
        message_id, stored_id = found
        matched = DeliveryReceipt(  # not ``dataclasses.replace``: a fifth of its cost
            receipt.connector_id, stored_id, receipt.status, receipt.error_code, receipt.at
        )
        now = self._clock.now()
        delivered: list[Message] = []
        outcomes: list[tuple[str, bool, float | None]] = []

        def change(message: Message) -> Mutation | None:
            # The writer may run this more than once (a batch worked out again): start afresh.
            delivered.clear()
            outcomes.clear()
            sent_at = message.updated_at if message.status is MessageStatus.SENT else None
            step, _ = apply_receipt(message, matched, now)
            if step is None:
                # Parts may still have changed (one segment of several reported).
                return Mutation(message)
            if step.status is MessageStatus.DELIVERED:
                delivered.append(message)
            if step.status in FINAL_OUTCOMES and message.connector_id is not None:
                latency = (now - sent_at).total_seconds() if sent_at is not None else None
                outcomes.append(
                    (message.connector_id, step.status is MessageStatus.DELIVERED, latency)
                )
            # Whether anyone listens is decided from the endpoint cache: no read here.
            events, jobs = self._recorder.record(message, [step])
            # A final outcome ends the wait (``receipt_due_at``, cleared by the transition).
            return Mutation(message, events, jobs)

        await self._store.mutate(message_id, change, complete_job=job.id if job else None)
        for message in delivered:
            DELIVERY_SECONDS.observe(max(0.0, (now - message.created_at).total_seconds()))
        if self._on_outcome is not None:
            for connector_id, ok, latency in outcomes:
                self._on_outcome(connector_id, ok, latency, now)
        return True

    async def from_job(self, job: Job) -> None:
        """Handles ``receipt`` jobs (receipts parked or handed over durably by a connector)."""
        await self(receipt_from_job(job), job=job)

    async def _park(self, receipt: DeliveryReceipt, job: Job | None) -> None:
        now = self._clock.now()
        if job is not None:
            # A parked receipt came back and still matches nothing: try later, or give up.
            if job.attempts >= UNMATCHED_ATTEMPTS:
                log.warning(
                    "receipt for unknown carrier id %s on %s dropped after %d tries",
                    receipt.carrier_message_id,
                    receipt.connector_id,
                    job.attempts,
                )
                await self._queue.complete(job.id, job.lease_owner)
            else:
                await self._queue.retry(
                    job.id, job.lease_owner, now + UNMATCHED_RETRY, "no message has this id yet"
                )
            return
        key = f"{receipt.connector_id}:{receipt.carrier_message_id}:{receipt.status.value}"
        await self._queue.enqueue(
            [
                NewJob(
                    id=f"receipt:{key}",
                    kind="receipt",
                    payload=receipt_job(receipt),
                    run_at=now + UNMATCHED_RETRY,
                    priority=15,
                )
            ]
        )
