"""SQLite batches worked out before the write lock stay right when another process writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.engine import make_url

from pigeon.domain.messages import Message, MessageStatus
from pigeon.ports import Mutation

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
