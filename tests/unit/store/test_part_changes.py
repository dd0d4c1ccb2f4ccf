"""Which rows a mutation's parts need: none, a status update, or an upsert."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from pigeon.domain.messages import Category, Direction, Message, MessageStatus, Part
from pigeon.store.messages import _part_changes

S = MessageStatus
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _message(parts: list[Part], connector_id: str | None = "smpp-a") -> Message:
    return Message(
        id="msg_1",
        tenant_id="ten_1",
        direction=Direction.MT,
        to="+14155550100",
        sender=None,
        body="hi",
        category=Category.TRANSACTIONAL,
        encoding="gsm7",
        segments=len(parts),
        status=S.SENT,
        created_at=NOW,
        updated_at=NOW,
        connector_id=connector_id,
        parts=parts,
    )


def _rows(before: Message | None, after: Message) -> tuple[list[Any], list[Any]]:
    upserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    _part_changes(before, after, upserts, updates)
    return [(r["part_index"], r["carrier_message_id"]) for r in upserts], [
        (r["part_index"], r["status"], r["error_code"]) for r in updates
    ]


def test_parts_as_they_were_write_nothing() -> None:
    """A part equal to the stored one, under the same connector, writes no row."""
    parts = [Part(0, S.SENT, "C0"), Part(1, S.SENT, "C1")]
    before = _message(parts)
    after = _message([dataclasses.replace(p) for p in parts])

    assert _rows(before, after) == ([], [])


def test_a_status_change_alone_is_an_update_of_that_part() -> None:
    """A receipt (status and error of one part) updates that part's status, nothing else."""
    before = _message([Part(0, S.SENT, "C0"), Part(1, S.SENT, "C1")])
    after = _message([Part(0, S.SENT, "C0"), Part(1, S.DELIVERED, "C1", "000")])

    assert _rows(before, after) == ([], [(1, "delivered", "000")])


def test_new_carrier_ids_new_parts_and_a_new_connector_are_upserts() -> None:
    """A part given a carrier id, a part not stored yet, or parts under another connector are
    upserted whole."""
    before = _message([Part(0, S.QUEUED)])
    sent = _message([Part(0, S.SENT, "C0"), Part(1, S.SENT, "C1")])
    moved = _message([Part(0, S.SENT, "C0")], connector_id="smpp-b")

    assert _rows(before, sent) == ([(0, "C0"), (1, "C1")], [])
    assert _rows(_message([Part(0, S.SENT, "C0")]), moved) == ([(0, "C0")], [])
    assert _rows(None, sent) == ([(0, "C0"), (1, "C1")], [])


def test_with_one_list_for_both_a_status_change_is_an_upsert() -> None:
    """Given the same list for upserts and status updates (PostgreSQL), a receipt's part is
    upserted whole: one statement for the batch's parts."""
    before = _message([Part(0, S.SENT, "C0"), Part(1, S.SENT, "C1")])
    after = _message([Part(0, S.SENT, "C0"), Part(1, S.DELIVERED, "C1", "000")])
    rows: list[dict[str, Any]] = []

    _part_changes(before, after, rows, rows)

    assert [(r["part_index"], r["status"], r["carrier_message_id"]) for r in rows] == [
        (1, "delivered", "C1")
    ]
