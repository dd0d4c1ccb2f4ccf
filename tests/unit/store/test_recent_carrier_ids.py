"""The memory of recently submitted carrier ids that spares receipts a read."""

from __future__ import annotations

from datetime import UTC, datetime

from pigeon.domain.messages import Category, Direction, Message, MessageStatus, Part
from pigeon.store.messages import RecentCarrierIds

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def _message(message_id: str, connector_id: str | None, *carrier_ids: str | None) -> Message:
    return Message(
        id=message_id,
        tenant_id="ten_1",
        direction=Direction.MT,
        to="+14155550100",
        sender="Pigeon",
        body="hi",
        category=Category.TRANSACTIONAL,
        encoding="GSM-7",
        segments=1,
        status=MessageStatus.SENT,
        created_at=NOW,
        updated_at=NOW,
        connector_id=connector_id,
        parts=[Part(index=i, carrier_message_id=c) for i, c in enumerate(carrier_ids)],
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_remembers_every_part_under_its_connector() -> None:
    """Each part's id is found, normalised, under the message's connector only."""
    memory = RecentCarrierIds()
    memory.remember(_message("msg_1", "c", "00AB", "cd", None))
    assert memory.find("c", ["ab"]) == ("msg_1", "00AB")
    assert memory.find("c", ["x", "cd"]) == ("msg_1", "cd")
    assert memory.find("d", ["ab"]) is None
    memory.remember(_message("msg_2", None, "ef"))
    assert memory.find("c", ["ef"]) is None


def test_newest_message_wins_among_candidates() -> None:
    """When several candidate forms match, the newest message id is returned."""
    memory = RecentCarrierIds()
    memory.remember(_message("msg_2", "c", "171"))
    memory.remember(_message("msg_1", "c", "ab"))
    assert memory.find("c", ["ab", "171"]) == ("msg_2", "171")


def test_forgets_the_oldest_beyond_its_size() -> None:
    """Past ``size`` entries the least recently written one is dropped."""
    memory = RecentCarrierIds(size=2)
    for number in range(3):
        memory.remember(_message(f"msg_{number}", "c", f"{number + 1}"))
    assert memory.find("c", ["1"]) is None
    assert memory.find("c", ["2"]) == ("msg_1", "2")
    assert memory.find("c", ["3"]) == ("msg_2", "3")


def test_entries_past_their_ttl_are_not_used() -> None:
    """An id remembered longer ago than ``ttl`` seconds is left to the database."""
    clock = _Clock()
    memory = RecentCarrierIds(ttl=10, monotonic=clock)
    memory.remember(_message("msg_1", "c", "ab"))
    clock.now += 10
    assert memory.find("c", ["ab"]) == ("msg_1", "ab")
    clock.now += 0.5
    assert memory.find("c", ["ab"]) is None
