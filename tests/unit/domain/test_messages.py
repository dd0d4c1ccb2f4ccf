"""The message lifecycle: one transition table, forward-only statuses, multipart folding."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.errors import IllegalTransition
from pigeon.domain.messages import (
    FINAL_STATUSES,
    TRANSITIONS,
    Category,
    Direction,
    Message,
    MessageStatus,
    Part,
    can_transition,
    fold_parts,
    is_stale,
)

S = MessageStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_message(status: MessageStatus = S.ACCEPTED) -> Message:
    return Message(
        id="msg_1",
        tenant_id="ten_1",
        direction=Direction.MT,
        to="+14155550100",
        sender=None,
        body="hi",
        category=Category.TRANSACTIONAL,
        encoding="gsm7",
        segments=1,
        status=status,
        created_at=T0,
        updated_at=T0,
    )


def test_happy_path_walks_the_lifecycle() -> None:
    """accepted -> queued -> sending -> sent -> delivered is allowed, each step numbered."""
    message = make_message()
    steps = [S.QUEUED, S.SENDING, S.SENT, S.DELIVERED]
    changes = [message.transition(step, T0) for step in steps]
    assert [c.status for c in changes if c] == steps
    assert [c.sequence for c in changes if c] == [1, 2, 3, 4]
    assert changes[0] is not None
    assert changes[0].previous_status is S.ACCEPTED


def test_repeated_transition_is_a_no_op() -> None:
    """Moving to the current status returns None and changes nothing."""
    message = make_message(S.SENT)
    assert message.transition(S.SENT, T0) is None
    assert message.status_sequence == 0


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES - {S.UNKNOWN}))
def test_final_statuses_never_move(final: MessageStatus) -> None:
    """A final status (other than unknown) allows no further change."""
    message = make_message(final)
    for target in S:
        if target is final:
            continue
        with pytest.raises(IllegalTransition):
            message.transition(target, T0)


def test_illegal_backward_transition_raises() -> None:
    """sent -> queued is not in the table and raises IllegalTransition."""
    with pytest.raises(IllegalTransition):
        make_message(S.SENT).transition(S.QUEUED, T0)


def test_unknown_can_be_corrected_by_a_late_receipt() -> None:
    """unknown -> delivered is allowed (a late receipt), unknown -> sent is not."""
    assert can_transition(S.UNKNOWN, S.DELIVERED)
    assert not can_transition(S.UNKNOWN, S.SENT)


def test_every_status_has_a_row_in_the_table() -> None:
    """The transition table covers every status."""
    assert set(TRANSITIONS) == set(S)


def test_staleness_orders_statuses() -> None:
    """A sent receipt after delivered is stale; delivered after sent is not."""
    assert is_stale(S.DELIVERED, S.SENT)
    assert not is_stale(S.SENT, S.DELIVERED)
    assert is_stale(S.DELIVERED, S.UNDELIVERED)


def test_fold_parts_needs_every_part_delivered() -> None:
    """Multipart: delivered only when all parts are; the worst final part wins otherwise."""
    assert fold_parts([S.DELIVERED, S.DELIVERED]) is S.DELIVERED
    assert fold_parts([S.DELIVERED, S.SENT]) is S.SENT
    assert fold_parts([S.DELIVERED, S.UNDELIVERED]) is S.UNDELIVERED
    assert fold_parts([S.EXPIRED, S.UNDELIVERED]) is S.UNDELIVERED
    assert fold_parts([S.UNKNOWN, S.DELIVERED]) is S.UNKNOWN


@pytest.mark.parametrize("status", list(S))
def test_one_part_folds_as_two_parts_of_its_status(status: S) -> None:
    """A one-part message's status is what two parts of that status fold to: delivered,
    sent while in flight, else the part's own outcome."""
    assert fold_parts([status]) is fold_parts([status, status])


def test_category_priority_puts_otp_first() -> None:
    """OTP outranks transactional, which outranks marketing."""
    assert Category.OTP.priority > Category.TRANSACTIONAL.priority > Category.MARKETING.priority


@given(st.builds(Message, parts=st.lists(st.builds(Part), max_size=4)))
def test_a_copy_is_equal_and_changing_it_leaves_the_original_as_it_was(message: Message) -> None:
    """``copy`` keeps every field; the copy's parts are its own, so changes stay in the copy."""
    before = dataclasses.replace(message, parts=[dataclasses.replace(p) for p in message.parts])
    clone = message.copy()
    assert clone == message
    assert clone is not message
    assert all(a is not b for a, b in zip(clone.parts, message.parts, strict=True))
    clone.status_sequence += 1
    clone.parts.append(Part(index=len(clone.parts)))
    for part in clone.parts:
        part.status = S.DELIVERED
    assert message == before
