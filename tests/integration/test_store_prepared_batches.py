"""Batches worked out before the write lock (SQLite) or from held copies (both databases)
stay right when another process writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.domain.messages import Message, MessageStatus
from pigeon.ports import Mutation
from pigeon.store import SqlMessageStore, connect
from pigeon.testing import FakeClock

if TYPE_CHECKING:
    from conftest import Factory, Stores


def _sqlite_path(stores: Stores) -> str:
    if not stores.database.sqlite_reads:
        pytest.skip("SQLite only: PostgreSQL batches lock their rows instead")
    path = make_url(stores.database.url).database
    assert path
    return path


def _to_sending(current: Message) -> Mutation | None:
    if current.status is not MessageStatus.QUEUED:
        return None  # e.g. canceled meanwhile: nothing to send
    current.transition(MessageStatus.SENDING, current.updated_at + timedelta(seconds=1))
    return Mutation(current)


def _cancel_from_another_connection(path: str, message_id: str) -> None:
    """What another process's committed write looks like to this one."""
    with sqlite3.connect(path, isolation_level=None, timeout=5) as other:
        other.execute(
            "UPDATE messages SET status = 'canceled', status_sequence = status_sequence + 1 "
            "WHERE id = ?",
            (message_id,),
        )
    other.close()


async def test_a_change_committed_after_the_snapshot_is_seen_under_the_lock(
    stores: Stores, factory: Factory
) -> None:
    """A message changed by another process between the preparation and the write lock is
    worked out again from its current state: the other process's change is not overwritten."""
    path = _sqlite_path(stores)
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    store: Any = stores.messages
    original = store._prepare_mutations
    prepared: list[int] = []

    def prepare_then_race(items: Sequence[Any]) -> None:
        original(items)
        prepared.append(len(items))
        _cancel_from_another_connection(path, message.id)

    stores.database.prepare_batches(store._mutate_run, prepare_then_race)

    result = await stores.messages.mutate(message.id, _to_sending)

    assert prepared == [1]  # the batch was prepared (as QUEUED -> SENDING) before the race
    assert result is not None
    assert result.status is MessageStatus.CANCELED
    stored = await stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.status is MessageStatus.CANCELED
    assert [e.type for e in await stores.messages.events_of(message.id)] == ["message.queued"]


async def test_an_unchanged_snapshot_is_written_as_prepared(
    stores: Stores, factory: Factory
) -> None:
    """Without a concurrent writer the prepared batch is what gets written."""
    _sqlite_path(stores)
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    store: Any = stores.messages
    original = store._prepare_mutations
    calls: list[str] = []

    def counting(items: Sequence[Any]) -> None:
        original(items)
        calls.append(items[0].message_id)

    def change(current: Message) -> Mutation | None:
        calls.append("change")
        return _to_sending(current)

    stores.database.prepare_batches(store._mutate_run, counting)

    result = await stores.messages.mutate(message.id, change)

    assert calls == ["change", message.id]  # run once, before the lock: not again under it
    assert result is not None
    assert result.status is MessageStatus.SENDING
    stored = await stores.messages.get_message(message.id)
    assert stored == result


async def test_a_held_message_changed_by_another_store_is_read_again(
    stores: Stores, factory: Factory, clock: FakeClock
) -> None:
    """A message this process holds (it wrote it last) that another process's store changes
    afterwards is worked out from the stored state, not from the held copy."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    await stores.messages.mutate(message.id, _to_sending)  # held now, as SENDING
    other_database = await connect(stores.database.url)
    try:
        other = SqlMessageStore(other_database, clock)
        sent = await other.mutate(message.id, _to_sent)
        assert sent is not None
        assert sent.status is MessageStatus.SENT
    finally:
        await other_database.close()
    seen: list[MessageStatus] = []

    def record_status(current: Message) -> Mutation | None:
        seen.append(current.status)
        return None

    await stores.messages.mutate(message.id, record_status)

    assert seen[-1] is MessageStatus.SENT


async def test_a_hand_written_update_makes_the_held_copy_stale(
    stores: Stores, factory: Factory
) -> None:
    """An UPDATE that does not renew the write stamp (a tool, a hand-written fix) still makes
    a held copy stale: the trigger stamps the row, and the next change starts from it."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    await stores.messages.get_messages([message.id])  # held now, as QUEUED

    async def cancel_by_hand(connection: AsyncConnection) -> None:
        await connection.execute(
            sa.text(
                "UPDATE messages SET status = 'canceled', status_sequence = status_sequence + 1 "
                "WHERE id = :id"
            ),
            {"id": message.id},
        )

    await stores.database.write(cancel_by_hand)

    result = await stores.messages.mutate(message.id, _to_sending)

    assert result is not None
    assert result.status is MessageStatus.CANCELED
    assert [e.type for e in await stores.messages.events_of(message.id)] == ["message.queued"]


async def test_a_held_copy_with_a_stamp_no_row_carries_is_not_used(
    stores: Stores, factory: Factory
) -> None:
    """A held copy whose stamp is not the row's (a write rolled back after it was held) is
    not what the change starts from: the row is."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    store: Any = stores.messages
    phantom = message.copy()
    phantom.status = MessageStatus.SENDING
    store._hold(phantom, 12345)  # as a batch that was then rolled back would have left it

    result = await stores.messages.mutate(message.id, _to_sending)

    assert result is not None
    assert result.status is MessageStatus.SENDING  # from the phantom, nothing would change
    stored = await stores.messages.get_message(message.id)
    assert stored is not None
    assert stored.status is MessageStatus.SENDING
    assert stored.status_sequence == message.status_sequence + 1


async def test_changes_of_a_held_message_read_nothing_before_the_lock(
    stores: Stores, factory: Factory
) -> None:
    """A message prefetched or just changed by this process is changed again without reading
    its rows: its copy is held, and only its stamp is compared under the lock."""
    tenant = await factory.tenant()
    message = factory.message(tenant)
    await stores.messages.accept(factory.acceptance(message))
    store: Any = stores.messages
    reads: list[int] = []
    reader = store._raw if store._raw is not None else store._pg_raw
    name = "load" if store._raw is not None else "pg_load"
    original = getattr(reader, name)

    def counting(*arguments: Any, **options: Any) -> Any:
        ids = arguments[-1]
        reads.append(len(ids))
        return original(*arguments, **options)

    setattr(reader, name, counting)
    await stores.messages.get_messages([message.id])
    assert reads == [1]

    sending = await stores.messages.mutate(message.id, _to_sending)
    sent = await stores.messages.mutate(message.id, _to_sent)

    assert reads == [1]  # the prefetch's read only
    assert sending is not None
    assert sending.status is MessageStatus.SENDING
    assert sent is not None
    assert sent.status is MessageStatus.SENT
    stored = await stores.messages.get_message(message.id)
    assert stored == sent


def _to_sent(current: Message) -> Mutation | None:
    current.transition(MessageStatus.SENT, current.updated_at + timedelta(seconds=1))
    return Mutation(current)
