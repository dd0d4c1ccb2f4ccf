"""The smpp_deliver jobs status changes owe SMPP customers: receipts and replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pigeon.domain.messages import (
    Category,
    Direction,
    Message,
    MessageStatus,
    ReceiptRequest,
    StatusChange,
)
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.notify import SMPP_DELIVER
from pigeon.testing import FakeClock, SequentialIds

S = MessageStatus
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class _NoWebhooks:
    async def list_endpoints(self, tenant_id: str) -> list[Any]:
        return []


def recorder() -> EventRecorder:
    directory = EndpointDirectory(_NoWebhooks())  # type: ignore[arg-type]
    return EventRecorder(SequentialIds(), FakeClock(NOW), directory)


def message(**changes: Any) -> Message:
    values: dict[str, Any] = {
        "id": "msg_1",
        "tenant_id": "ten_1",
        "direction": Direction.MT,
        "to": "+447911123456",
        "sender": "Pigeon",
        "body": "Your code is 123456, valid 10 minutes",
        "category": Category.OTP,
        "encoding": "gsm7",
        "segments": 1,
        "status": S.SENT,
        "created_at": NOW,
        "updated_at": NOW,
        "origin": "smpp:sma_1",
        "receipt_request": ReceiptRequest.ALL,
        "status_sequence": 3,
    }
    values.update(changes)
    return Message(**values)


def jobs_for(msg: Message, target: MessageStatus, error: str | None = None) -> list[Any]:
    change = msg.transition(target, NOW + timedelta(seconds=5), error_code=error)
    _, jobs = recorder().record(msg, [change], notify=False)
    return [job for job in jobs if job.kind == SMPP_DELIVER]


def test_a_final_status_of_an_smpp_message_owes_a_receipt() -> None:
    """delivered -> one smpp_deliver job keyed by account, message and sequence."""
    (job,) = jobs_for(message(origin_parts=2), S.DELIVERED)

    assert job.id == "smpp_deliver:sma_1:msg_1:4"
    assert job.payload == {
        "kind": "receipt",
        "account_id": "sma_1",
        "message_id": "msg_1",
        "parts": 2,
        "recipient": "+447911123456",
        "sender": "Pigeon",
        "submitted_at": "2026-01-01T12:00:00.000Z",
        "done_at": "2026-01-01T12:00:05.000Z",
        "stat": "DELIVRD",
        "err": "000",
        "text": "Your code is 123456,",
        "created_at": "2026-01-01T12:00:05.000Z",
    }


def test_the_carriers_error_goes_into_err() -> None:
    """undelivered with carrier error 34 -> UNDELIV, err 034."""
    (job,) = jobs_for(message(), S.UNDELIVERED, "34")
    assert (job.payload["stat"], job.payload["err"]) == ("UNDELIV", "034")


@pytest.mark.parametrize(
    "changes",
    [
        {"origin": None},
        {"origin": "smpp:sma_1", "receipt_request": ReceiptRequest.NONE},
        {"origin": "smpp:sma_1", "receipt_request": ReceiptRequest.FAILURE},
    ],
    ids=["rest", "no-receipt", "failure-only"],
)
def test_no_receipt_when_none_is_owed(changes: dict[str, Any]) -> None:
    """REST messages, and SMPP messages not asking for it, get no delivered receipt."""
    assert jobs_for(message(**changes), S.DELIVERED) == []


def test_intermediate_statuses_owe_nothing() -> None:
    """queued -> sending is no outcome: no receipt."""
    assert jobs_for(message(status=S.QUEUED), S.SENDING) == []


def test_a_received_message_owes_the_tenant_a_reply_delivery() -> None:
    """An inbound message becomes an smpp_deliver job keyed by tenant."""
    inbound = message(direction=Direction.MO, status=S.RECEIVED, origin=None)
    change = StatusChange(inbound.id, S.RECEIVED, None, 1, NOW)
    _, jobs = recorder().record(inbound, [change], notify=False)

    (job,) = jobs
    assert job.id == "smpp_deliver:ten_1:msg_1:mo"
    assert job.payload["kind"] == "mo"
    assert job.payload["body"] == inbound.body
