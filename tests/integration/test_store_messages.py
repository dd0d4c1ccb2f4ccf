"""SqlMessageStore on real SQLite and PostgreSQL: accept, idempotency, reads, mutate, receipts."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncConnection

import pigeon.store.messages as store_messages
from pigeon.domain.errors import InvalidCursor
from pigeon.domain.messages import Category, Direction, Message, MessageStatus, ReceiptRequest
from pigeon.ids import UlidFactory
from pigeon.ports import (
    EventRecord,
    MessageChange,
    MessageQuery,
    Mutation,
    NewJob,
    OverdueReceipts,
    SweepMark,
)
from pigeon.store import SqlMessageStore, WriterClosedError, connect, normalise_carrier_id
from pigeon.store.messages import (
    MAX_PAGE_SIZE,
    RecentCarrierIds,
    list_statement,
    reached_statement,
    scan_end_statement,
)
from pigeon.store.tables import message_parts
from pigeon.testing import FakeClock

if TYPE_CHECKING:
    from conftest import Factory, Stores
    from pigeon.domain.accounts import Tenant


_ULIDS = UlidFactory()


def new_id(prefix: str) -> str:
    """A prefixed, time-ordered id (in order even within one millisecond)."""
    return f"{prefix}_{_ULIDS.ulid()}"


def _event(message: Message, type_: str, at_seconds: int = 0) -> EventRecord:
    return EventRecord(
        id=new_id("evt"),
        tenant_id=message.tenant_id,
        message_id=message.id,
        type=type_,
        status=message.status,
        sequence=message.status_sequence,
        at=message.updated_at + timedelta(seconds=at_seconds),
        detail=f"{type_} detail",
        payload={"status": str(message.status), "nested": {"n": [1, 2]}},
    )


async def test_accept_round_trips_every_field(stores: Stores, factory: Factory) -> None:
    """An accepted message reads back equal, field by field, with aware UTC times and enums."""
    tenant = await factory.tenant()
    now = stores.clock.now()
    message = factory.message(
        tenant,
        direction=Direction.MT,
        sender=None,
        body="Ünïcödé ✓ body",
        category=Category.MARKETING,
        encoding="ucs2",
        segments=2,
        status=MessageStatus.SCHEDULED,
        client_ref="order-42",
        callback_url="https://example.test/cb",
        send_at=now + timedelta(hours=2),
        expires_at=now + timedelta(days=1),
        error_code="E1",
        connector_id="smpp-a",
        price=12_345_678_901,
        currency="EUR",
        is_test=True,
        status_sequence=3,
        attempts=2,
        parts=[factory.part(0, "0A1B", status=MessageStatus.SENT), factory.part(1)],
    )
    acceptance = factory.acceptance(message, idempotency_key="key-1")

    result = await stores.messages.accept(acceptance)

    assert result.message is message
    assert not result.replayed
    assert not result.idempotency_conflict
    stored = await stores.messages.get_message(message.id)
    assert stored == message
    assert stored is not None
    assert stored.created_at.tzinfo is UTC
    assert isinstance(stored.status, MessageStatus)
    assert isinstance(stored.category, Category)
    events = await stores.messages.events_of(message.id)
    assert events == acceptance.events
    assert await stores.messages.get_event(acceptance.events[0].id) == acceptance.events[0]
    assert await stores.queue.pending() == {"dispatch": 1}


async def test_accept_stores_times_as_utc_instants(stores: Stores, factory: Factory) -> None:
    """A time given in another zone comes back as the same instant, in UTC."""
    tenant = await factory.tenant()
    local = stores.clock.now().astimezone(timezone(timedelta(hours=5, minutes=30)))
    message = factory.message(tenant, created_at=local, updated_at=local)

    await stores.messages.accept(factory.acceptance(message))

    stored = await stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.created_at == local
    assert stored.created_at.utcoffset() == timedelta(0)


@settings(
    max_examples=30,
    deadline=None,
    # One database serves every example on purpose: each example stores its own message.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    at=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
async def test_any_aware_time_round_trips_to_the_microsecond(
    stores: Stores, factory: Factory, tenant: Tenant, at: datetime, offset_minutes: int
) -> None:
    """Any aware time, in any UTC offset, reads back as the same instant in UTC."""
    local = at.astimezone(timezone(timedelta(minutes=offset_minutes)))
    message = factory.message(tenant, send_at=local, created_at=local)

    await stores.messages.accept(factory.acceptance(message))
    stored = await stores.messages.get_message(message.id)

    assert stored is not None
    assert stored.send_at == at
    assert stored.created_at == at
    assert stored.send_at.tzinfo is UTC


async def test_known_idempotency_key_replays_the_earlier_message(
    stores: Stores, factory: Factory
) -> None:
    """A known key replays the first message (a different body is a conflict) and writes nothing."""
    tenant = await factory.tenant()
    first = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(first, idempotency_key="k"))

    again = await stores.messages.accept(
        factory.acceptance(factory.message(tenant), idempotency_key="k")
    )
    other = await stores.messages.accept(
        factory.acceptance(factory.message(tenant), idempotency_key="k", request_hash="other")
    )

    assert again.replayed
    assert not again.idempotency_conflict
    assert again.message.id == first.id
    assert other.idempotency_conflict
    assert other.message.id == first.id
    page = await stores.messages.list_messages(tenant.id, MessageQuery())
    assert [m.id for m in page.messages] == [first.id]
    assert await stores.queue.pending() == {"dispatch": 1}


async def test_a_batch_with_one_known_key_among_new_ones_replays_only_that_one(
    stores: Stores, factory: Factory
) -> None:
    """Accepted together, a request with a known key replays its message while new keys and
    requests without a key each store theirs, and a later retry of a new key replays it."""
    tenant = await factory.tenant()
    first = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(first, idempotency_key="known"))
    batch = [
        factory.acceptance(factory.message(tenant), idempotency_key="known"),
        factory.acceptance(factory.message(tenant), idempotency_key="new-1"),
        factory.acceptance(factory.message(tenant), idempotency_key="new-2"),
        factory.acceptance(factory.message(tenant)),
    ]

    results = await asyncio.gather(*(stores.messages.accept(a) for a in batch))
    retry = await stores.messages.accept(
        factory.acceptance(factory.message(tenant), idempotency_key="new-1")
    )

    assert results[0].replayed
    assert results[0].message.id == first.id
    assert [r.replayed for r in results[1:]] == [False, False, False]
    assert [r.message.id for r in results[1:]] == [a.message.id for a in batch[1:]]
    assert retry.replayed
    assert retry.message.id == batch[1].message.id
    page = await stores.messages.list_messages(tenant.id, MessageQuery())
    assert sorted(m.id for m in page.messages) == sorted(
        [first.id, *(a.message.id for a in batch[1:])]
    )
    assert await stores.queue.pending() == {"dispatch": 4}


async def test_new_keys_accepted_together_are_each_kept(stores: Stores, factory: Factory) -> None:
    """Requests with new keys accepted in one batch each store their message and their key."""
    tenant = await factory.tenant()
    batch = [
        factory.acceptance(factory.message(tenant), idempotency_key=f"k{i}") for i in range(10)
    ]

    results = await asyncio.gather(*(stores.messages.accept(a) for a in batch))
    retries = await asyncio.gather(
        *(
            stores.messages.accept(
                factory.acceptance(factory.message(tenant), idempotency_key=f"k{i}")
            )
            for i in range(10)
        )
    )

    assert not any(r.replayed for r in results)
    assert all(r.replayed for r in retries)
    assert [r.message.id for r in retries] == [a.message.id for a in batch]
    assert await stores.queue.pending() == {"dispatch": 10}


async def test_idempotency_keys_are_scoped_by_tenant(stores: Stores, factory: Factory) -> None:
    """Two tenants using the same key get a message each."""
    alice, bob = await factory.tenant(), await factory.tenant()

    a = await stores.messages.accept(
        factory.acceptance(factory.message(alice), idempotency_key="k")
    )
    b = await stores.messages.accept(factory.acceptance(factory.message(bob), idempotency_key="k"))

    assert not a.replayed
    assert not b.replayed
    assert a.message.id != b.message.id


async def test_concurrent_accepts_with_one_key_make_one_message(
    stores: Stores, factory: Factory
) -> None:
    """Twenty concurrent requests with one idempotency key store exactly one message."""
    tenant = await factory.tenant()
    acceptances = [
        factory.acceptance(factory.message(tenant), idempotency_key="same") for _ in range(20)
    ]

    results = await asyncio.gather(*(stores.messages.accept(a) for a in acceptances))

    ids = {result.message.id for result in results}
    assert len(ids) == 1
    assert sum(not result.replayed for result in results) == 1
    page = await stores.messages.list_messages(tenant.id, MessageQuery())
    assert [m.id for m in page.messages] == list(ids)


async def test_concurrent_same_key_accepts_from_two_databases_make_one_message(
    database_url: str, stores: Stores, factory: Factory
) -> None:
    """Two processes' writers (two Databases) racing one key still store one message."""
    tenant = await factory.tenant()
    other = await connect(database_url)
    try:
        second = SqlMessageStore(other, stores.clock)
        results = await asyncio.gather(
            *(
                store.accept(factory.acceptance(factory.message(tenant), idempotency_key="race"))
                for _ in range(10)
                for store in (stores.messages, second)
            )
        )
    finally:
        await other.close()

    assert len({result.message.id for result in results}) == 1
    page = await stores.messages.list_messages(tenant.id, MessageQuery())
    assert len(page.messages) == 1


async def test_duplicate_message_id_fails_only_that_accept(
    stores: Stores, factory: Factory
) -> None:
    """An accept that breaks a constraint fails alone; the accepts batched with it commit."""
    tenant = await factory.tenant()
    taken = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(taken))
    good = [factory.message(tenant) for _ in range(30)]
    clash = factory.message(tenant, id=taken.id)

    outcomes = await asyncio.gather(
        *(stores.messages.accept(factory.acceptance(m)) for m in [*good[:15], clash, *good[15:]]),
        return_exceptions=True,
    )

    assert isinstance(outcomes[15], Exception)
    assert all(not isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 15)
    for message in good:
        assert await stores.messages.get_message(message.id) is not None


async def test_other_tenants_see_nothing(stores: Stores, factory: Factory) -> None:
    """Another tenant's message id reads as absent, in lookups, events and lists."""
    owner, stranger = await factory.tenant(), await factory.tenant()
    message = factory.message(owner)
    await stores.messages.accept(factory.acceptance(message))

    assert await stores.messages.get_message(message.id, owner.id) is not None
    assert await stores.messages.get_message(message.id, stranger.id) is None
    assert await stores.messages.events_of(message.id, stranger.id) == []
    assert len(await stores.messages.events_of(message.id, owner.id)) == 1
    page = await stores.messages.list_messages(stranger.id, MessageQuery())
    assert page.messages == []
    assert page.next_cursor is None


async def test_list_pages_through_messages_newest_first_with_filters(
    stores: Stores, factory: Factory
) -> None:
    """120 messages page back newest first without gaps or repeats, and filters narrow them."""
    tenant = await factory.tenant()
    other = await factory.tenant()
    await stores.messages.accept(factory.acceptance(factory.message(other)))
    start = stores.clock.now()
    messages = []
    for index in range(120):
        at = start + timedelta(minutes=index)
        messages.append(
            factory.message(
                tenant,
                created_at=at,
                updated_at=at,
                to="+447700900001" if index % 3 == 0 else "+447700900002",
                status=MessageStatus.DELIVERED if index % 2 else MessageStatus.QUEUED,
            )
        )
    await asyncio.gather(*(stores.messages.accept(factory.acceptance(m)) for m in messages))
    newest_first = [m.id for m in reversed(messages)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await stores.messages.list_messages(tenant.id, MessageQuery(limit=50, cursor=cursor))
        seen.extend(m.id for m in page.messages)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == newest_first
    assert pages == 3

    delivered = await stores.messages.list_messages(
        tenant.id, MessageQuery(status=MessageStatus.DELIVERED, limit=100)
    )
    assert [m.id for m in delivered.messages] == [
        m.id for m in reversed(messages) if m.status is MessageStatus.DELIVERED
    ]
    to_first = await stores.messages.list_messages(
        tenant.id, MessageQuery(to="+447700900001", limit=100)
    )
    assert len(to_first.messages) == 40
    assert all(m.to == "+447700900001" for m in to_first.messages)
    window = await stores.messages.list_messages(
        tenant.id,
        MessageQuery(
            created_from=start + timedelta(minutes=10), created_to=start + timedelta(minutes=20)
        ),
    )
    assert [m.id for m in window.messages] == newest_first[100:110]
    capped = await stores.messages.list_messages(tenant.id, MessageQuery(limit=10_000))
    assert len(capped.messages) == MAX_PAGE_SIZE
    assert capped.next_cursor == capped.messages[-1].id


async def _pages(
    stores: Stores, tenant_id: str, query: MessageQuery
) -> tuple[list[list[str]], list[str]]:
    """Every page of a listing (its ids), following ``next_cursor`` until it is null, and
    every id in order."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await stores.messages.list_messages(
            tenant_id, dataclasses.replace(query, cursor=cursor)
        )
        pages.append([message.id for message in page.messages])
        cursor = page.next_cursor
        if cursor is None:
            return pages, [message_id for ids in pages for message_id in ids]


async def test_a_status_no_index_serves_is_read_a_bounded_number_of_messages_per_page(
    stores: Stores, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing by a status most walked messages are not in reads at most ``SCAN_BOUND``
    messages per page: a page may end short, even empty, with a cursor that goes on from the
    last message read, and the pages together hold every match once, newest first."""
    monkeypatch.setattr(store_messages, "SCAN_BOUND", 10)
    monkeypatch.setattr(store_messages, "SCAN_FIRST", 4)  # the first 4, then up to 10
    tenant = await factory.tenant()
    start = stores.clock.now()
    messages = [
        factory.message(
            tenant,
            created_at=start + timedelta(seconds=index),
            status=MessageStatus.SENT if index in (1, 14, 27) else MessageStatus.DELIVERED,
        )
        for index in range(30)
    ]
    for message in messages:
        await stores.messages.accept(factory.acceptance(message))
    newest_first = [m.id for m in reversed(messages)]

    pages, ids = await _pages(stores, tenant.id, MessageQuery(status=MessageStatus.SENT))

    assert ids == [newest_first[2], newest_first[15], newest_first[28]]
    # 30 messages read 10 at a time: the third page reads the last ten, and no fourth follows.
    assert pages == [[newest_first[2]], [newest_first[15]], [newest_first[28]]]
    full = await stores.messages.list_messages(
        tenant.id, MessageQuery(status=MessageStatus.DELIVERED, limit=5)
    )
    assert [m.id for m in full.messages] == [*newest_first[0:2], *newest_first[3:6]]
    assert full.next_cursor == newest_first[5]
    monkeypatch.setattr(store_messages, "SCAN_BOUND", 7)
    pages, ids = await _pages(stores, tenant.id, MessageQuery(status=MessageStatus.SENT, limit=1))
    assert ids == [newest_first[2], newest_first[15], newest_first[28]]
    assert [] in pages  # the second seven (7-13) hold none


async def test_a_time_window_is_walked_by_creation_time_page_by_page(
    stores: Stores, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window without a recipient is read newest first by creation time through its index,
    page by page without gaps or repeats, also filtered by status with a bounded read; a
    cursor whose message is gone is refused."""
    tenant = await factory.tenant()
    start = stores.clock.now()
    # Ids in the opposite order of the creation times: the walk follows the times.
    messages = [
        factory.message(
            tenant,
            created_at=start - timedelta(minutes=index),
            status=MessageStatus.QUEUED if index % 4 == 0 else MessageStatus.DELIVERED,
        )
        for index in range(40)
    ]
    for message in messages:
        await stores.messages.accept(factory.acceptance(message))
    window = MessageQuery(
        created_from=start - timedelta(minutes=30), created_to=start - timedelta(minutes=5), limit=4
    )
    in_window = [m.id for m in messages[6:31]]  # created 5 to 30 minutes ago, newest first

    pages, ids = await _pages(stores, tenant.id, window)
    assert ids == in_window
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 4, 1]
    monkeypatch.setattr(store_messages, "SCAN_BOUND", 6)
    queued = dataclasses.replace(window, status=MessageStatus.QUEUED)
    _, ids = await _pages(stores, tenant.id, queued)
    assert ids == [m.id for m in messages[6:31] if m.status is MessageStatus.QUEUED]
    with pytest.raises(InvalidCursor):
        await stores.messages.list_messages(
            tenant.id, dataclasses.replace(window, cursor=new_id("msg"))
        )


async def test_a_time_window_of_many_messages_per_instant_loses_none_at_the_bound(
    stores: Stores, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages that share their creation instant, with the bound falling among them, are
    each listed once, by time and then by id, newest first."""
    monkeypatch.setattr(store_messages, "SCAN_BOUND", 4)
    monkeypatch.setattr(store_messages, "SCAN_FIRST", 2)
    tenant = await factory.tenant()
    start = stores.clock.now()
    messages = [
        factory.message(
            tenant,
            created_at=start - timedelta(seconds=index % 3),
            status=MessageStatus.SENT if index % 2 else MessageStatus.DELIVERED,
        )
        for index in range(20)
    ]
    # Stored in the opposite order of their ids: an index walks one instant's messages in the
    # order they were stored, so the bound's message is not the instant's last by id.
    for message in reversed(messages):
        await stores.messages.accept(factory.acceptance(message))
    window = MessageQuery(
        status=MessageStatus.SENT, created_from=start - timedelta(minutes=1), limit=2
    )

    _, ids = await _pages(stores, tenant.id, window)

    sent = [m for m in messages if m.status is MessageStatus.SENT]
    newest_first = sorted(sent, key=lambda m: (m.created_at, m.id), reverse=True)
    assert ids == [m.id for m in newest_first]
    # Exactly the bound's count left, all of one instant: the page reads to the walk's end.
    alone = await factory.tenant()
    four = [
        factory.message(
            alone,
            created_at=start,
            status=MessageStatus.SENT if index < 2 else MessageStatus.DELIVERED,
        )
        for index in range(4)
    ]
    for message in reversed(four):
        await stores.messages.accept(factory.acceptance(message))
    _, ids = await _pages(stores, alone.id, dataclasses.replace(window, limit=5))
    assert ids == [four[1].id, four[0].id]


async def test_listing_by_a_rare_status_finds_the_messages_in_it_now(
    stores: Stores, factory: Factory
) -> None:
    """Listing by a status few messages are in (read through the events that reached it) gives
    exactly the tenant's messages in that status now, newest first, page by page, with the
    other filters; a message that moved on from it (unknown, then delivered) is not listed."""
    tenant = await factory.tenant()
    other = await factory.tenant()
    await stores.messages.accept(factory.acceptance(factory.message(other)))
    start = stores.clock.now()
    messages = []
    for index in range(30):
        at = start + timedelta(minutes=index)
        message = factory.message(
            tenant,
            created_at=at,
            updated_at=at,
            to="+447700900001" if index % 2 else "+447700900002",
            status=MessageStatus.SENT,
        )
        messages.append(message)
        await stores.messages.accept(factory.acceptance(message))
    await stores.messages.accept(
        factory.acceptance(factory.message(other, status=MessageStatus.FAILED))
    )

    def moved(*path: MessageStatus) -> Callable[[Message], Mutation]:
        def change(message: Message) -> Mutation:
            events = []
            for to in path:
                message.transition(to, message.updated_at + timedelta(seconds=1))
                events.append(_event(message, f"message.{to}"))
            return Mutation(message, events)

        return change

    for index, message in enumerate(messages):
        if index % 3 == 0:
            await stores.messages.mutate(message.id, moved(MessageStatus.UNKNOWN))
        elif index % 3 == 1:
            path = (MessageStatus.UNKNOWN, MessageStatus.DELIVERED)
            await stores.messages.mutate(message.id, moved(*path))
    unknown = [m.id for i, m in reversed(list(enumerate(messages))) if i % 3 == 0]

    seen: list[str] = []
    cursor = None
    while True:
        query = MessageQuery(status=MessageStatus.UNKNOWN, limit=4, cursor=cursor)
        page = await stores.messages.list_messages(tenant.id, query)
        assert all(m.status is MessageStatus.UNKNOWN for m in page.messages)
        seen.extend(m.id for m in page.messages)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == unknown
    narrowed = await stores.messages.list_messages(
        tenant.id, MessageQuery(status=MessageStatus.UNKNOWN, to="+447700900001")
    )
    assert [m.id for m in narrowed.messages] == [
        m.id for m in reversed(messages) if m.id in unknown and m.to == "+447700900001"
    ]
    failed = await stores.messages.list_messages(
        tenant.id, MessageQuery(status=MessageStatus.FAILED)
    )
    assert failed.messages == []
    delivered = await stores.messages.list_messages(
        tenant.id, MessageQuery(status=MessageStatus.DELIVERED)
    )
    assert [m.id for m in delivered.messages] == [
        m.id for i, m in reversed(list(enumerate(messages))) if i % 3 == 1
    ]


async def test_a_rare_status_most_messages_left_is_read_a_bounded_number_per_page(
    stores: Stores, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing by a status through its events reads at most ``SCAN_BOUND_EVENTS`` per page:
    with most of their messages gone on from it (every scheduled message was scheduled), pages
    end short with a cursor, and together hold every message in it now once, newest first."""
    monkeypatch.setattr(store_messages, "SCAN_BOUND_EVENTS", 4)
    tenant = await factory.tenant()
    start = stores.clock.now()
    messages = [
        factory.message(
            tenant, created_at=start + timedelta(minutes=index), status=MessageStatus.SENT
        )
        for index in range(20)
    ]
    for message in messages:
        await stores.messages.accept(factory.acceptance(message))

    def reached(*path: MessageStatus) -> Callable[[Message], Mutation]:
        def change(message: Message) -> Mutation:
            events = []
            for to in path:
                message.transition(to, message.updated_at + timedelta(seconds=1))
                events.append(_event(message, f"message.{to}"))
            return Mutation(message, events)

        return change

    for index, message in enumerate(messages):
        path = [MessageStatus.UNKNOWN]
        if index not in (3, 16):
            path.append(MessageStatus.DELIVERED)
        await stores.messages.mutate(message.id, reached(*path))

    pages, ids = await _pages(
        stores, tenant.id, MessageQuery(status=MessageStatus.UNKNOWN, limit=5)
    )

    assert ids == [messages[16].id, messages[3].id]
    assert len(pages) == 5  # 20 events read 4 at a time
    assert [] in pages


def _send(to: MessageStatus, job: NewJob | None = None) -> Callable[[Message], Mutation]:
    def change(message: Message) -> Mutation:
        message.transition(to, message.updated_at + timedelta(seconds=1), detail="moved")
        message.connector_id = "smpp-a"
        message.attempts += 1
        message.parts = [dataclasses.replace(p, carrier_message_id="00AbC") for p in message.parts]
        return Mutation(
            message=message,
            events=[_event(message, f"message.{to}", 1)],
            jobs=[job] if job else [],
        )

    return change


async def test_mutate_writes_state_parts_events_jobs_and_completes_the_job(
    stores: Stores, factory: Factory
) -> None:
    """A mutation stores the new state, upserts parts, adds events and jobs, deletes the job."""
    tenant = await factory.tenant()
    message = factory.message(tenant, parts=[factory.part(0), factory.part(1)])
    await stores.messages.accept(factory.acceptance(message))
    follow_up = NewJob("expire:x", "expire", {"m": message.id}, stores.clock.now())

    after = await stores.messages.mutate(
        message.id, _send(MessageStatus.SENDING, follow_up), complete_job=f"dispatch:{message.id}"
    )

    assert after is not None
    assert after.status is MessageStatus.SENDING
    stored = await stores.messages.get_message(message.id)
    assert stored == after
    assert stored.status_sequence == 2
    assert stored.attempts == 1
    assert [p.carrier_message_id for p in stored.parts] == ["00AbC", "00AbC"]
    assert [e.type for e in await stores.messages.events_of(message.id)] == [
        "message.queued",
        "message.sending",
    ]
    assert await stores.queue.pending() == {"expire": 1}


async def test_mutate_completing_a_job_it_makes_again_keeps_the_new_one(
    stores: Stores, factory: Factory
) -> None:
    """A mutation that completes its job and adds one with the same id (a retry made anew)
    leaves the new job, due when the new one says, on either engine."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    job_id = f"dispatch:{message.id}"
    later = stores.clock.now() + timedelta(minutes=5)
    again = NewJob(job_id, "dispatch", {"message_id": message.id}, later)

    after = await stores.messages.mutate(
        message.id, _send(MessageStatus.SENDING, again), complete_job=job_id
    )

    assert after is not None
    assert await stores.queue.pending() == {"dispatch": 1}
    assert await stores.queue.claim(["dispatch"], 10, "test", 60.0) == []  # not due until ``later``
    stores.clock.advance(6 * 60)
    assert [job.id for job in await stores.queue.claim(["dispatch"], 10, "test", 60.0)] == [job_id]


async def test_mutate_that_raises_writes_nothing_and_keeps_the_job(
    stores: Stores, factory: Factory
) -> None:
    """If the change callback raises, the caller gets the error and nothing at all is written."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    def change(current: Message) -> Mutation:
        current.transition(MessageStatus.SENDING, current.updated_at)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await stores.messages.mutate(message.id, change, complete_job=f"dispatch:{message.id}")

    assert await stores.messages.get_message(message.id) == message
    assert len(await stores.messages.events_of(message.id)) == 1
    assert await stores.queue.pending() == {"dispatch": 1}


_FIXED_CHANGES: dict[str, object] = {
    "direction": Direction.MO,
    "to": "+14155550199",
    "sender": "Other",
    "body": "changed",
    "category": Category.MARKETING,
    "encoding": "ucs2",
    "segments": 9,
    "created_at": datetime(2020, 1, 1, tzinfo=UTC),
    "country": "FR",
    "client_ref": "other",
    "callback_url": "https://example.test/other",
    "is_test": True,
    "origin": "smpp:acc",
    "origin_parts": 4,
    "receipt_request": ReceiptRequest.ALL,
}


@pytest.mark.parametrize("field", sorted(_FIXED_CHANGES))
async def test_mutate_that_changes_what_is_fixed_at_accept_is_refused(
    stores: Stores, factory: Factory, field: str
) -> None:
    """A mutation may not change a field fixed at accept (the UPDATE leaves those columns out):
    the caller gets an error and nothing is written."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    def change(current: Message) -> Mutation:
        current.transition(MessageStatus.SENDING, current.updated_at)
        setattr(current, field, _FIXED_CHANGES[field])
        return Mutation(current)

    with pytest.raises(ValueError, match="fixed at accept"):
        await stores.messages.mutate(message.id, change)

    assert await stores.messages.get_message(message.id) == message


async def test_mutate_stores_every_field_a_mutation_may_change(
    stores: Stores, factory: Factory
) -> None:
    """Status, schedule, validity, price, connector, error and attempts all change through
    a mutation and read back as written."""
    tenant = await factory.tenant()
    message = factory.message(tenant, status=MessageStatus.SCHEDULED)
    await stores.messages.accept(factory.acceptance(message))
    later = stores.clock.now() + timedelta(hours=3)

    def change(current: Message) -> Mutation:
        current.transition(MessageStatus.QUEUED, later, error_code="E7")
        current.send_at = later
        current.expires_at = later + timedelta(days=1)
        current.price = 4_200
        current.currency = "USD"
        current.connector_id = "smpp-b"
        current.attempts = 5
        return Mutation(current)

    after = await stores.messages.mutate(message.id, change)

    stored = await stores.messages.get_message(message.id)
    assert stored == after
    assert stored is not None
    assert (stored.status, stored.updated_at, stored.error_code) == (
        MessageStatus.QUEUED,
        later,
        "E7",
    )
    assert (stored.send_at, stored.expires_at) == (later, later + timedelta(days=1))
    assert (stored.price, stored.currency, stored.connector_id, stored.attempts) == (
        4_200,
        "USD",
        "smpp-b",
        5,
    )
    assert (stored.to, stored.body) == (message.to, message.body)


async def test_mutate_of_one_parts_status_keeps_the_other_parts_and_carrier_ids(
    stores: Stores, factory: Factory
) -> None:
    """A receipt-like change of one part's status is stored, the other parts stay as they
    were, and the message is still found by each carrier id (read from the database)."""
    tenant = await factory.tenant()
    message = factory.message(tenant, parts=[factory.part(0), factory.part(1), factory.part(2)])
    await stores.messages.accept(factory.acceptance(message))
    await stores.messages.mutate(message.id, _send(MessageStatus.SENDING))

    def sent(current: Message) -> Mutation:
        current.parts = [
            dataclasses.replace(p, status=MessageStatus.SENT, carrier_message_id=f"C{p.index}")
            for p in current.parts
        ]
        return Mutation(current)

    def delivered_second(current: Message) -> Mutation:
        current.parts[1].status = MessageStatus.DELIVERED
        current.parts[1].error_code = "000"
        return Mutation(current)

    await stores.messages.mutate(message.id, sent)
    after = await stores.messages.mutate(message.id, delivered_second)

    stored = await stores.messages.get_message(message.id)
    assert stored == after
    assert stored is not None
    assert [(p.status, p.carrier_message_id, p.error_code) for p in stored.parts] == [
        (MessageStatus.SENT, "C0", None),
        (MessageStatus.DELIVERED, "C1", "000"),
        (MessageStatus.SENT, "C2", None),
    ]
    stores.messages.recent_carrier_ids = RecentCarrierIds()  # read the database, not memory
    for index in range(3):
        assert await stores.messages.find_by_carrier_id("smpp-a", [f"C{index}"]) == (
            message.id,
            f"C{index}",
        )


async def test_mutate_to_another_connector_moves_the_parts_carrier_ids(
    stores: Stores, factory: Factory
) -> None:
    """A message whose connector changes while its parts keep their carrier ids is found by
    them under the new connector only."""
    tenant = await factory.tenant()
    message = factory.message(tenant, parts=[factory.part(0)])
    await stores.messages.accept(factory.acceptance(message))
    await stores.messages.mutate(message.id, _send(MessageStatus.SENDING))

    def moved(current: Message) -> Mutation:
        current.connector_id = "smpp-b"
        current.parts[0].status = MessageStatus.SENT
        return Mutation(current)

    await stores.messages.mutate(message.id, moved)

    stores.messages.recent_carrier_ids = RecentCarrierIds()
    assert await stores.messages.find_by_carrier_id("smpp-b", ["00AbC"]) == (message.id, "00AbC")
    assert await stores.messages.find_by_carrier_id("smpp-a", ["00AbC"]) is None


async def test_mutate_failing_in_the_database_is_all_or_nothing(
    stores: Stores, factory: Factory
) -> None:
    """A mutation whose event cannot be stored leaves state, events, jobs and job untouched."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    acceptance = factory.acceptance(message)
    await stores.messages.accept(acceptance)
    duplicate = acceptance.events[0]

    def change(current: Message) -> Mutation:
        current.transition(MessageStatus.SENDING, current.updated_at)
        job = NewJob("other:1", "other", {}, current.updated_at)
        return Mutation(message=current, events=[duplicate], jobs=[job])

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await stores.messages.mutate(message.id, change, complete_job=f"dispatch:{message.id}")

    assert await stores.messages.get_message(message.id) == message
    assert await stores.queue.pending() == {"dispatch": 1}


async def test_mutate_returning_none_only_completes_the_job(
    stores: Stores, factory: Factory
) -> None:
    """A change that decides nothing happens still completes the job."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    after = await stores.messages.mutate(
        message.id, lambda _: None, complete_job=f"dispatch:{message.id}"
    )

    assert after == message
    assert await stores.queue.pending() == {}


async def test_mutate_of_a_missing_message_returns_none(stores: Stores) -> None:
    """Mutating an unknown id calls nothing and returns None."""
    called = []

    result = await stores.messages.mutate("msg_missing", lambda m: called.append(m) or None)

    assert result is None
    assert called == []


async def test_concurrent_mutations_of_one_message_all_apply(
    stores: Stores, factory: Factory
) -> None:
    """Fifty concurrent read-modify-writes of one message lose no update."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))

    def bump(current: Message) -> Mutation:
        current.attempts += 1
        return Mutation(message=current)

    await asyncio.gather(*(stores.messages.mutate(message.id, bump) for _ in range(50)))

    stored = await stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.attempts == 50


async def test_find_by_carrier_id_matches_case_and_leading_zero_variants(
    stores: Stores, factory: Factory
) -> None:
    """Receipts find their part whatever the case or zero padding of the carrier id."""
    tenant = await factory.tenant()
    message = factory.message(
        tenant, connector_id="smpp-a", parts=[factory.part(0, "000A1B2c"), factory.part(1, "77")]
    )
    await stores.messages.accept(factory.acceptance(message))

    for candidates in (["a1b2c"], ["A1B2C"], [" 0a1b2C "], ["nope", "00000A1B2C"]):
        found = await stores.messages.find_by_carrier_id("smpp-a", candidates)
        assert found == (message.id, "000A1B2c"), candidates
    assert await stores.messages.find_by_carrier_id("smpp-a", ["0077"]) == (message.id, "77")
    assert await stores.messages.find_by_carrier_id("smpp-b", ["a1b2c"]) is None
    assert await stores.messages.find_by_carrier_id("smpp-a", ["a1b2d", ""]) is None


async def test_find_by_carrier_id_prefers_the_newest_message(
    stores: Stores, factory: Factory
) -> None:
    """A carrier id reused by the carrier resolves to the newest message."""
    tenant = await factory.tenant()
    old = factory.message(tenant, connector_id="c", parts=[factory.part(0, "42")])
    new = factory.message(tenant, connector_id="c", parts=[factory.part(0, "042")])
    for message in (old, new):
        await stores.messages.accept(factory.acceptance(message))

    assert await stores.messages.find_by_carrier_id("c", ["42"]) == (new.id, "042")


async def test_receipt_lookup_finds_ids_this_store_submitted_without_a_read(
    stores: Stores, factory: Factory
) -> None:
    """A carrier id written by this store's mutate is found from memory; another store on the
    same database (another process) reads it from the table instead."""
    tenant = await factory.tenant()
    message = factory.message(tenant, connector_id="c")
    await stores.messages.accept(factory.acceptance(message))

    def submitted(current: Message) -> Mutation:
        current.parts = [factory.part(0, "00AB12")]
        return Mutation(message=current)

    await stores.messages.mutate(message.id, submitted)
    other = SqlMessageStore(stores.database, stores.clock)
    assert await other.find_by_carrier_id("c", ["ab12"]) == (message.id, "00AB12")

    # With the part's row gone only the memory of the submitting store still knows the id.
    async def forget_parts(connection: AsyncConnection) -> None:
        await connection.execute(sa.delete(message_parts))

    await stores.database.write(forget_parts)
    assert await stores.messages.find_by_carrier_id("c", ["AB12"]) == (message.id, "00AB12")
    assert await other.find_by_carrier_id("c", ["ab12"]) is None
    assert await stores.messages.find_by_carrier_id("other", ["ab12"]) is None


async def test_a_parts_status_change_leaves_its_remembered_carrier_id_as_it_was(
    stores: Stores, factory: Factory
) -> None:
    """Only a change that gives a part its carrier id is remembered: a receipt's change of
    the part's status alone neither remembers the id again nor makes it live longer."""
    tenant = await factory.tenant()
    message = factory.message(tenant, connector_id="c")
    await stores.messages.accept(factory.acceptance(message))
    now = [0.0]
    memory = stores.messages.recent_carrier_ids = RecentCarrierIds(
        ttl=600, monotonic=lambda: now[0]
    )

    def submitted(current: Message) -> Mutation:
        current.parts = [factory.part(0, "AB12")]
        return Mutation(message=current)

    def delivered(current: Message) -> Mutation:
        current.parts[0].status = MessageStatus.DELIVERED
        return Mutation(message=current)

    await stores.messages.mutate(message.id, submitted)
    now[0] = 500.0
    await stores.messages.mutate(message.id, delivered)
    assert memory.find("c", ["ab12"]) == (message.id, "AB12")
    now[0] = 700.0  # 700 s after the submit, 200 s after the receipt's change
    assert memory.find("c", ["ab12"]) is None


async def test_mutate_each_applies_every_change_and_fails_only_the_one_that_raised(
    stores: Stores, factory: Factory
) -> None:
    """``mutate_each`` writes each change as ``mutate`` would, in one hand-over: a change
    that raises comes back as its exception and writes nothing, a missing message as None,
    and the others are stored with their events, completed jobs and carrier ids."""
    tenant = await factory.tenant()
    first, failing, last = (factory.message(tenant, connector_id="c") for _ in range(3))
    for message in (first, failing, last):
        await stores.messages.accept(factory.acceptance(message))

    def submitted(carrier_id: str) -> Callable[[Message], Mutation]:
        def change(current: Message) -> Mutation:
            current.transition(MessageStatus.SENDING, current.updated_at)
            current.parts = [factory.part(0, carrier_id)]
            return Mutation(current, [_event(current, "message.sending", 1)])

        return change

    def boom(current: Message) -> Mutation:
        raise RuntimeError("boom")

    results = await stores.messages.mutate_each(
        [
            MessageChange(first.id, submitted("A1"), f"dispatch:{first.id}"),
            MessageChange(failing.id, boom, f"dispatch:{failing.id}"),
            MessageChange("msg_missing", submitted("B2")),
            MessageChange(last.id, submitted("C3"), f"dispatch:{last.id}"),
        ]
    )

    done, refused, missing, also_done = results
    assert isinstance(done, Message)
    assert isinstance(also_done, Message)
    assert (done.id, done.status, also_done.id) == (first.id, MessageStatus.SENDING, last.id)
    assert isinstance(refused, RuntimeError)
    assert str(refused) == "boom"
    assert missing is None
    assert await stores.messages.get_message(failing.id) == failing
    for message in (first, last):
        stored = await stores.messages.get_message(message.id)
        assert stored is not None
        assert stored.status is MessageStatus.SENDING
        assert [e.type for e in await stores.messages.events_of(message.id)] == [
            "message.queued",
            "message.sending",
        ]
    assert await stores.queue.pending() == {"dispatch": 1}  # the failing change's job is kept
    found = await stores.messages.find_each_by_carrier_id([("c", ["a1"]), ("c", ["c3"])])
    assert found == [(first.id, "A1"), (last.id, "C3")]


async def test_mutate_each_on_a_closed_writer_returns_the_error_for_each_change(
    stores: Stores, factory: Factory
) -> None:
    """With the writer closed (shutting down), every change comes back as the writer's
    error rather than the call raising: the caller answers each on its own."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    await stores.database.close()

    results = await stores.messages.mutate_each(
        [MessageChange(message.id, lambda m: Mutation(m)) for _ in range(3)]
    )

    assert [type(result) for result in results] == [WriterClosedError] * 3


async def test_find_each_by_carrier_id_mixes_remembered_ids_and_reads(
    stores: Stores, factory: Factory
) -> None:
    """Each look-up gets its own answer: from memory, from the table (ids another process
    submitted), or None, in the order asked, whatever the mix."""
    tenant = await factory.tenant()
    remembered = factory.message(tenant, connector_id="c")
    stored_only = factory.message(tenant, connector_id="c", parts=[factory.part(0, "0F00")])
    for message in (remembered, stored_only):
        await stores.messages.accept(factory.acceptance(message))

    def submitted(current: Message) -> Mutation:
        current.parts = [factory.part(0, "00AB12")]
        return Mutation(message=current)

    await stores.messages.mutate(remembered.id, submitted)
    lookups: list[tuple[str, Sequence[str]]] = [
        ("c", ["nope"]),
        ("c", ["f00"]),
        ("c", ["AB12"]),
        ("other", ["ab12"]),
        ("c", [""]),
        ("c", ["F00", "zz"]),
    ]

    found = await stores.messages.find_each_by_carrier_id(lookups)

    assert found == [
        None,
        (stored_only.id, "0F00"),
        (remembered.id, "00AB12"),
        None,
        None,
        (stored_only.id, "0F00"),
    ]
    assert found == [await stores.messages.find_by_carrier_id(*lookup) for lookup in lookups]


def test_carrier_ids_normalise_to_lower_case_without_leading_zeros() -> None:
    """Normalisation trims, lower-cases and drops leading zeros but keeps a lone zero."""
    assert normalise_carrier_id(" 00AbC ") == "abc"
    assert normalise_carrier_id("000") == "0"
    assert normalise_carrier_id("") == ""


async def test_accepted_message_survives_an_abrupt_exit(
    database_url: str, stores: Stores, factory: Factory
) -> None:
    """A process killed right after accept returned leaves the message and its job on disk."""
    tenant = await factory.tenant()
    message_id = new_id("msg")
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from datetime import UTC, datetime
        from pigeon.domain.messages import Category, Direction, Message, MessageStatus
        from pigeon.ports import Acceptance, NewJob
        from pigeon.store import SqlMessageStore, connect
        from pigeon.testing import FakeClock

        async def main():
            clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
            database = await connect({database_url!r})
            now = clock.now()
            message = Message(
                id={message_id!r}, tenant_id={tenant.id!r}, direction=Direction.MT,
                to="+447700900123", sender=None, body="hi", category=Category.OTP,
                encoding="gsm7", segments=1, status=MessageStatus.QUEUED,
                created_at=now, updated_at=now,
            )
            job = NewJob("dispatch:" + message.id, "dispatch", {{}}, now, 30)
            await SqlMessageStore(database, clock).accept(Acceptance(message, [], [job]))
            os._exit(0)  # no close, no checkpoint: as if the process died here

        asyncio.run(main())
        """
    )
    await stores.database.close()

    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await process.wait() == 0

    reopened = await connect(database_url)
    try:
        store = SqlMessageStore(reopened, FakeClock())
        stored = await store.get_message(message_id, tenant.id)
        assert stored is not None
        assert stored.body == "hi"
    finally:
        await reopened.close()


async def test_get_messages_reads_many_with_their_parts_as_get_message_does(
    stores: Stores, factory: Factory
) -> None:
    """One read gives every existing message of the ids, equal to ``get_message``'s; ids of
    no message are left out."""
    tenant = await factory.tenant()
    first = factory.message(
        tenant,
        parts=[factory.part(0, "0A1B", status=MessageStatus.SENT), factory.part(1)],
    )
    second = factory.message(tenant)
    for message in (first, second):
        await stores.messages.accept(factory.acceptance(message))

    found = await stores.messages.get_messages([second.id, "msg_missing", first.id, first.id])

    assert found == {
        first.id: await stores.messages.get_message(first.id),
        second.id: await stores.messages.get_message(second.id),
    }
    assert found[first.id] == first
    assert await stores.messages.get_messages([]) == {}


async def test_overdue_receipts_walk_the_deadlines_in_order_from_the_mark(
    stores: Stores, factory: Factory
) -> None:
    """The sweep's read returns the deadlines due by the given time in order (time, then id),
    at most ``limit``, starting after the stored mark, and names the messages among them still
    waiting; the mark only ever moves forward."""
    tenant = await factory.tenant()
    now = stores.clock.now()
    due = {
        "late": (now - timedelta(minutes=5), MessageStatus.SENT),
        "answered": (now - timedelta(minutes=3), MessageStatus.DELIVERED),
        "later": (now - timedelta(minutes=1), MessageStatus.SENDING),
        "on_time": (now, MessageStatus.SENT),
        "on_time_too": (now, MessageStatus.SENT),
        "not_yet": (now + timedelta(minutes=1), MessageStatus.SENT),
        "none": (None, MessageStatus.SENT),
    }
    ids: dict[str, str] = {}
    for name, (due_at, status) in due.items():
        message = factory.message(tenant, status=status, receipt_due_at=due_at)
        await stores.messages.accept(factory.acceptance(message))
        ids[name] = message.id
    store = stores.messages

    first = await store.overdue_receipts(now, 10)
    assert first.waiting == [ids[n] for n in ("late", "later", "on_time", "on_time_too")]
    assert first.last == SweepMark(now, ids["on_time_too"])
    assert not first.full
    page = await store.overdue_receipts(now, 3)
    assert (page.waiting, page.last, page.full) == (
        [ids["late"], ids["later"]],
        SweepMark(now - timedelta(minutes=1), ids["later"]),
        True,
    )

    await store.mark_receipts_swept(SweepMark(now - timedelta(minutes=1), ids["later"]))
    one = await store.overdue_receipts(now, 1)
    assert (one.waiting, one.last) == ([ids["on_time"]], SweepMark(now, ids["on_time"]))
    await store.mark_receipts_swept(SweepMark(now, ids["on_time"]))
    await store.mark_receipts_swept(SweepMark(now - timedelta(days=1), ids["late"]))  # behind
    rest = await store.overdue_receipts(now + timedelta(minutes=1), 10)
    assert rest.waiting == [ids["on_time_too"], ids["not_yet"]]
    await store.mark_receipts_swept(SweepMark(now + timedelta(minutes=1), ids["not_yet"]))
    assert await store.overdue_receipts(now + timedelta(days=1), 10) == OverdueReceipts(
        [], None, False
    )


async def test_sqlite_walks_the_deadlines_through_their_index(
    stores: Stores,
) -> None:
    """SQLite: the sweep's read searches the partial index of deadlines from the mark on, not
    the whole table (so its cost does not grow with the messages stored)."""
    if stores.database.dialect != "sqlite":
        pytest.skip("SQLite's query plan")
    query = (
        "SELECT id, status, receipt_due_at FROM messages WHERE receipt_due_at IS NOT NULL"
        " AND receipt_due_at <= ? AND receipt_due_at >= ? AND (receipt_due_at > ? OR id > ?)"
        " ORDER BY receipt_due_at, id LIMIT 10"
    )
    moment = "2026-01-01 00:00:00.000000"
    async with stores.database.read() as connection:
        plan = await connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {query}", (moment, moment, moment, "msg_0")
        )
        details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_messages_receipt_due_at_id" in details
    assert "TEMP B-TREE" not in details  # the index gives the order too


async def test_sqlite_lists_a_rare_status_through_the_events_index(stores: Stores) -> None:
    """SQLite: listing by a rare status reads the events' partial index newest first, by a
    common one the tenant's messages newest first (its bound from their index alone), and a
    time window the messages' creation times newest first; none sorts what it read."""
    if stores.database.dialect != "sqlite":
        pytest.skip("SQLite's query plan")

    async def plan(statement: sa.Select[Any]) -> str:
        compiled = statement.compile(
            dialect=stores.database.read_engine.dialect, compile_kwargs={"literal_binds": True}
        )
        async with stores.database.read() as connection:
            rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            return " ".join(str(row[-1]) for row in rows)

    rare = await plan(reached_statement("ten_1", "failed", "msg_9", 51))
    assert "INDEX ix_events_tenant_id_status_message_id (tenant_id=? AND status=?" in rare
    assert "TEMP B-TREE" not in rare
    query = MessageQuery(status=MessageStatus.DELIVERED, cursor="msg_9")
    common = await plan(list_statement("ten_1", query, 50))
    assert "ix_messages_tenant_id_id" in common
    assert "TEMP B-TREE" not in common
    end = await plan(scan_end_statement("ten_1", query, None, 1000))
    assert "COVERING INDEX ix_messages_tenant_id_id (tenant_id=? AND id<?)" in end
    at = datetime(2026, 1, 1, tzinfo=UTC)
    window = MessageQuery(created_from=at, created_to=at + timedelta(days=1))
    walked = await plan(list_statement("ten_1", window, 50, after=(at, "msg_9")))
    assert (
        "INDEX ix_messages_tenant_id_created_at (tenant_id=? AND created_at>? AND created_at<?)"
        in walked
    )
    assert "TEMP B-TREE FOR ORDER BY" not in walked  # only ties of one time are sorted
