"""``_Statement.row_builder``: rows made straight from objects equal what ``convert`` makes of
the same values as a mapping, on both dialects, for the store's own hot rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.messages import Category, Direction, Message, MessageStatus, ReceiptRequest
from pigeon.ports import EventRecord, NewJob
from pigeon.store.bulk import BulkInsert, BulkUpdate
from pigeon.store.messages import _EVENT_ROW, _MESSAGE_ROW, _MUTABLE
from pigeon.store.statements import JOB_ROW
from pigeon.store.tables import events, jobs, messages

DIALECTS = ("sqlite", "postgresql")
NOW = datetime(2026, 12, 4, 18, 30, 15, 123456, tzinfo=UTC)

times = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
texts = st.none() | st.text(max_size=12)


def _evaluated(expressions: dict[str, str], **names: Any) -> dict[str, Any]:
    """The mapping the expressions describe, evaluated one by one (the reference)."""
    return {column: eval(source, {}, names) for column, source in expressions.items()}  # noqa: S307 - our own test expressions


@st.composite
def stored_messages(draw: st.DrawFn) -> Message:
    """Messages with every stored field drawn, optional ones sometimes missing."""
    return Message(
        id="msg_" + draw(st.text("0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26)),
        tenant_id=draw(st.sampled_from(["demo", "acme"])),
        direction=draw(st.sampled_from(list(Direction))),
        to=draw(st.sampled_from(["+14155550100", "+447400123456"])),
        sender=draw(texts),
        body=draw(st.text(max_size=40)),
        category=draw(st.sampled_from(list(Category))),
        encoding=draw(st.sampled_from(["gsm7", "ucs2"])),
        segments=draw(st.integers(1, 10)),
        status=draw(st.sampled_from(list(MessageStatus))),
        created_at=NOW,
        updated_at=draw(times) or NOW,
        country=draw(st.none() | st.sampled_from(["US", "GB"])),
        client_ref=draw(texts),
        callback_url=draw(st.none() | st.just("https://example.com/hook")),
        send_at=draw(times),
        expires_at=draw(times),
        error_code=draw(texts),
        connector_id=draw(texts),
        price=draw(st.none() | st.integers(0, 10**9)),
        currency=draw(st.none() | st.just("USD")),
        is_test=draw(st.booleans()),
        status_sequence=draw(st.integers(0, 20)),
        attempts=draw(st.integers(0, 5)),
        origin=draw(st.none() | st.just("smpp:acc_1")),
        origin_parts=draw(st.integers(1, 3)),
        receipt_request=draw(st.sampled_from(list(ReceiptRequest))),
        receipt_due_at=draw(times),
    )


@pytest.mark.parametrize("dialect", DIALECTS)
@given(message=stored_messages(), stamp=st.integers(0, 2**63 - 1))
def test_message_rows_equal_the_converted_mapping(
    dialect: str, message: Message, stamp: int
) -> None:
    """A message's insert and update rows equal ``convert`` of the same values by name."""
    insert = BulkInsert(messages, dialect)
    update = BulkUpdate(messages, dialect, key="id", columns=_MUTABLE)
    update_row = {name: _MESSAGE_ROW[name] for name in ("id", *_MUTABLE)}
    values = _evaluated(_MESSAGE_ROW, m=message, stamp=stamp)
    assert (
        insert.row_builder("m, stamp", _MESSAGE_ROW)(message, stamp) == insert.convert([values])[0]
    )
    assert update.row_builder("m, stamp", update_row)(message, stamp) == update.convert([values])[0]


@pytest.mark.parametrize("dialect", DIALECTS)
@given(
    status=st.none() | st.sampled_from(list(MessageStatus)),
    detail=texts,
    payload=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
)
def test_event_rows_equal_the_converted_mapping(
    dialect: str, status: MessageStatus | None, detail: str | None, payload: dict[str, Any]
) -> None:
    """An event's row equals ``convert`` of the same values by name (JSON payload, time)."""
    event = EventRecord(
        id="evt_1",
        tenant_id="demo",
        message_id="msg_1",
        type="message.sent",
        status=status,
        sequence=3,
        at=NOW,
        detail=detail,
        payload=payload,
    )
    statement = BulkInsert(events, dialect)
    expected = statement.convert([_evaluated(_EVENT_ROW, e=event)])[0]
    assert statement.row_builder("e", _EVENT_ROW)(event) == expected


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("delay", [timedelta(0), timedelta(seconds=5), timedelta(seconds=-5)])
def test_job_rows_are_ready_exactly_when_due(dialect: str, delay: timedelta) -> None:
    """A job's row is ``ready`` when it is due, and equals ``convert`` of its mapping."""
    job = NewJob(id="webhook:evt_1:cb", kind="webhook", payload={"body": "{}"}, run_at=NOW + delay)
    statement = BulkInsert(jobs, dialect, ignore_duplicates=True)
    row = statement.row_builder("job, now", JOB_ROW)(job, NOW)
    assert row == statement.convert([_evaluated(JOB_ROW, job=job, now=NOW)])[0]
    ready = row[[c.name for c in jobs.columns].index("ready")]
    assert ready == (delay <= timedelta(0))


def test_times_in_other_zones_are_stored_in_utc() -> None:
    """A time with another offset is written as the same instant in UTC, as ``convert`` does."""
    event = EventRecord(
        id="evt_1",
        tenant_id="demo",
        message_id=None,
        type="message.sent",
        status=None,
        sequence=1,
        at=NOW.astimezone(timezone(timedelta(hours=5, minutes=30))),
        detail=None,
        payload={},
    )
    row = BulkInsert(events, "sqlite").row_builder("e", _EVENT_ROW)(event)
    assert row[6] == "2026-12-04 18:30:15.123456"


def test_expressions_must_name_every_column_and_no_other() -> None:
    """A builder refuses expressions that miss a column or name one the table lacks."""
    statement = BulkInsert(events, "sqlite")
    missing = {k: v for k, v in _EVENT_ROW.items() if k != "detail"}
    with pytest.raises(ValueError, match="missing \\['detail'\\]"):
        statement.row_builder("e", missing)
    with pytest.raises(ValueError, match="unknown \\['colour'\\]"):
        statement.row_builder("e", {**_EVENT_ROW, "colour": "1"})
