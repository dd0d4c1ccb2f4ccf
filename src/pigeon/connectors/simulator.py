"""The built-in carrier simulator: an in-process carrier for sandboxes, test keys and tests.

It answers every submit at once with a carrier id per segment and reports a receipt after a
delay. What happens is decided by the destination's longest matching prefix (the documented
magic numbers), so every outcome can be had on demand. Pending receipts are handed to the job
queue as ``receipt`` jobs due at the receipt time, so they survive a restart like a real
carrier's would.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from pigeon.domain.errors import Fault, PermanentFailure, TemporaryFailure
from pigeon.domain.messages import Message
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.ports import Clock, JobQueue, NewJob, SubmitResult
from pigeon.services.receipts import receipt_job


class Outcome(enum.StrEnum):
    """What the simulated carrier does with a message."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"
    TEMPORARY_FAILURE = "temporary_failure"
    NO_RECEIPT = "no_receipt"


_RECEIPTS = {
    Outcome.DELIVERED: (ReceiptStatus.DELIVRD, None),
    Outcome.UNDELIVERED: (ReceiptStatus.UNDELIV, "001"),
    Outcome.EXPIRED: (ReceiptStatus.EXPIRED, "002"),
}

#: The magic numbers (valid US numbers of the 555-01xx fiction range): the last-but-one digit
#: picks the outcome, e.g. +1 415 555 0110 is undelivered. Anything else is delivered.
MAGIC_PREFIXES: Mapping[str, Outcome] = {
    "+1415555010": Outcome.DELIVERED,
    "+1415555011": Outcome.UNDELIVERED,
    "+1415555012": Outcome.EXPIRED,
    "+1415555013": Outcome.REJECTED,
    "+1415555014": Outcome.TEMPORARY_FAILURE,
    "+1415555015": Outcome.NO_RECEIPT,
}


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """How the simulator behaves: receipt delay, outcomes by prefix, and the default."""

    receipt_delay_seconds: float = 1.0
    prefixes: Mapping[str, Outcome] = field(default_factory=lambda: dict(MAGIC_PREFIXES))
    default: Outcome = Outcome.DELIVERED

    def outcome_for(self, destination: str) -> Outcome:
        """The outcome of the longest prefix of ``destination`` that has one."""
        best = ""
        for prefix in self.prefixes:
            if destination.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.prefixes[best] if best else self.default


class SimulatorConnector:
    """``ports.Connector`` backed by nothing but the job queue."""

    def __init__(
        self,
        connector_id: str,
        queue: JobQueue,
        clock: Clock,
        settings: SimulatorSettings | None = None,
    ) -> None:
        self._id = connector_id
        self._queue = queue
        self._clock = clock
        self._settings = settings or SimulatorSettings()
        self._started = False

    @property
    def id(self) -> str:
        """The connector id."""
        return self._id

    @property
    def ready(self) -> bool:
        """Always ready once started."""
        return self._started

    async def start(self) -> None:
        """Nothing to connect to."""
        self._started = True

    async def stop(self) -> None:
        """Nothing to disconnect from."""
        self._started = False

    async def submit(self, message: Message) -> SubmitResult:
        """Accept or refuse ``message`` as the outcome table says, scheduling its receipts."""
        outcome = self._settings.outcome_for(message.to)
        if outcome is Outcome.REJECTED:
            raise PermanentFailure(
                "the simulated carrier rejected the destination (err 0x0B)", fault=Fault.MESSAGE
            )
        if outcome is Outcome.TEMPORARY_FAILURE:
            raise TemporaryFailure("the simulated carrier is temporarily unavailable")
        carrier_ids = tuple(secrets.token_hex(8) for _ in range(max(1, message.segments)))
        receipt = _RECEIPTS.get(outcome)
        if receipt is not None:
            status, error = receipt
            due = self._clock.now() + timedelta(seconds=self._settings.receipt_delay_seconds)
            await self._queue.enqueue(
                [
                    NewJob(
                        id=f"receipt:{self._id}:{carrier_id}",
                        kind="receipt",
                        payload=receipt_job(
                            DeliveryReceipt(self._id, carrier_id, status, error_code=error)
                        ),
                        run_at=due,
                        priority=15,
                    )
                    for carrier_id in carrier_ids
                ]
            )
        return SubmitResult(carrier_message_ids=carrier_ids)
