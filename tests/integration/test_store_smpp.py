"""SMPP accounts, parts of customers' long messages and the SMPP fields of messages, on real
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic import command

from pigeon.domain.accounts import KeyMode, SmppAccount, Tenant
from pigeon.domain.errors import ValidationError
from pigeon.domain.messages import ReceiptRequest
from pigeon.ports import PendingPart
from pigeon.store import SqlMessageStore, SqlPartStore, connect, migrate, normalise_url
from pigeon.store.database import postgresql_engine, sqlite_engine
from pigeon.store.migrate import _run as run_alembic
from pigeon.testing import FakeClock

if TYPE_CHECKING:
    from conftest import Factory, Stores


def _account(stores: Stores, tenant: Tenant, system_id: str, **changes: object) -> SmppAccount:
    account = SmppAccount(
        id=f"sma_{system_id}",
        tenant_id=tenant.id,
        system_id=system_id,
        password_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        created_at=stores.clock.now(),
    )
    return dataclasses.replace(account, **changes)  # type: ignore[arg-type]


async def test_smpp_accounts_are_stored_found_and_listed(stores: Stores, factory: Factory) -> None:
    """An account reads back by system_id with every field; a tenant lists only its own."""
    acme, globex = await factory.tenant(), await factory.tenant()
    first = _account(stores, acme, "acme1", throughput_per_second=None, mode=KeyMode.TEST)
    second = _account(stores, acme, "acme2", max_binds=1)
    other = _account(stores, globex, "globex")
    for account in (first, second, other):
        await stores.accounts.create_smpp_account(account)

    assert await stores.accounts.find_smpp_account("acme1") == first
    assert await stores.accounts.find_smpp_account("nobody") is None
    assert await stores.accounts.list_smpp_accounts(acme.id) == [first, second]
    assert await stores.accounts.list_smpp_accounts(globex.id) == [other]


async def test_system_ids_are_unique_and_tenants_must_exist(
    stores: Stores, factory: Factory
) -> None:
    """A taken system_id is already_exists; an unknown tenant is unknown_tenant."""
    tenant = await factory.tenant()
    await stores.accounts.create_smpp_account(_account(stores, tenant, "acme1"))

    with pytest.raises(ValidationError) as taken:
        await stores.accounts.create_smpp_account(_account(stores, tenant, "acme1", id="sma_other"))
    ghost = Tenant("ten_ghost", "ghost", None, stores.clock.now())
    with pytest.raises(ValidationError) as unknown:
        await stores.accounts.create_smpp_account(_account(stores, ghost, "ghost"))

    assert taken.value.code == "already_exists"
    assert unknown.value.code == "unknown_tenant"


async def test_smpp_fields_of_a_message_round_trip(stores: Stores, factory: Factory) -> None:
    """origin, origin_parts and receipt_request are stored and read back."""
    tenant = await factory.tenant()
    message = factory.message(
        tenant, origin="smpp:sma_x", origin_parts=3, receipt_request=ReceiptRequest.FAILURE
    )
    await stores.messages.accept(factory.acceptance(message))

    stored = await stores.messages.get_message(message.id)

    assert stored is not None
    assert (stored.origin, stored.origin_parts, stored.receipt_request) == (
        "smpp:sma_x",
        3,
        ReceiptRequest.FAILURE,
    )


# --- parts -------------------------------------------------------------------------------------


@pytest.fixture
async def parts(stores: Stores, factory: Factory) -> tuple[SqlPartStore, SmppAccount]:
    """A part store and an account whose parts it keeps."""
    tenant = await factory.tenant()
    account = _account(stores, tenant, "parts")
    await stores.accounts.create_smpp_account(account)
    return SqlPartStore(stores.database), account


def _part(stores: Stores, account: SmppAccount, seqnum: int, **changes: object) -> PendingPart:
    part = PendingPart(
        account_id=account.id,
        key="src|dst|7|3",
        seqnum=seqnum,
        total=3,
        message_id=f"msg_reserved_by_{seqnum}",
        payload=f"part {seqnum}".encode(),
        pdu=f"pdu {seqnum}".encode(),
        received_at=stores.clock.now(),
    )
    return dataclasses.replace(part, **changes)  # type: ignore[arg-type]


async def test_parts_reserve_one_id_and_come_back_complete(
    stores: Stores, parts: tuple[SqlPartStore, SmppAccount]
) -> None:
    """The first part's id names the set; the last part brings every part back in order."""
    store, account = parts

    first = await store.add_part(_part(stores, account, 2))
    second = await store.add_part(_part(stores, account, 1))
    last = await store.add_part(_part(stores, account, 3))

    assert {first.message_id, second.message_id, last.message_id} == {"msg_reserved_by_2"}
    assert (first.complete, second.complete) == (None, None)
    assert last.complete is not None
    assert [p.payload for p in last.complete] == [b"part 1", b"part 2", b"part 3"]
    assert [p.pdu for p in last.complete] == [b"pdu 1", b"pdu 2", b"pdu 3"]


async def test_a_part_sent_twice_is_kept_once(
    stores: Stores, parts: tuple[SqlPartStore, SmppAccount]
) -> None:
    """A retransmitted waiting part is a duplicate; after acceptance it says so too."""
    store, account = parts
    await store.add_part(_part(stores, account, 1))

    again = await store.add_part(_part(stores, account, 1))
    await store.add_part(_part(stores, account, 2))
    done = await store.add_part(_part(stores, account, 3))
    await store.mark_accepted(account.id, "src|dst|7|3")
    after = await store.add_part(_part(stores, account, 3))

    assert (again.duplicate, again.complete) == (True, None)
    assert done.complete is not None
    assert len(done.complete) == 3
    assert (after.duplicate, after.accepted, after.message_id) == (
        True,
        True,
        "msg_reserved_by_1",
    )


async def test_a_reused_reference_after_acceptance_starts_a_new_message(
    stores: Stores, parts: tuple[SqlPartStore, SmppAccount]
) -> None:
    """Once a set is accepted, a part with the same key but other content starts a new set."""
    store, account = parts
    for seqnum in (1, 2, 3):
        await store.add_part(_part(stores, account, seqnum))
    await store.mark_accepted(account.id, "src|dst|7|3")

    fresh = await store.add_part(
        _part(stores, account, 1, payload=b"new text", message_id="msg_new")
    )

    assert (fresh.message_id, fresh.duplicate, fresh.complete) == ("msg_new", False, None)


async def test_a_reused_reference_of_a_waiting_set_starts_a_new_message(
    stores: Stores, parts: tuple[SqlPartStore, SmppAccount]
) -> None:
    """A part with another text in a place of a set still waiting (the sender gave that set
    up) starts a new set: the new message's parts never join the abandoned one's."""
    store, account = parts
    await store.add_part(_part(stores, account, 1))  # its parts 2 and 3 never come

    fresh = await store.add_part(
        _part(stores, account, 1, payload=b"new text", message_id="msg_new")
    )
    await store.add_part(_part(stores, account, 2, payload=b"new 2", message_id="msg_x"))
    done = await store.add_part(_part(stores, account, 3, payload=b"new 3", message_id="msg_y"))

    assert (fresh.message_id, fresh.duplicate) == ("msg_new", False)
    assert done.message_id == "msg_new"
    assert done.complete is not None
    assert [p.payload for p in done.complete] == [b"new text", b"new 2", b"new 3"]


async def test_parts_of_one_message_arriving_together_share_an_id(
    stores: Stores, parts: tuple[SqlPartStore, SmppAccount]
) -> None:
    """Three parts added concurrently reserve a single id and exactly one sees the set whole."""
    store, account = parts

    results = await asyncio.gather(*(store.add_part(_part(stores, account, n)) for n in (1, 2, 3)))

    assert len({r.message_id for r in results}) == 1
    assert sum(r.complete is not None for r in results) == 1


async def test_old_parts_expire(stores: Stores, parts: tuple[SqlPartStore, SmppAccount]) -> None:
    """Parts received before the cutoff are deleted; a later part starts afresh."""
    store, account = parts
    await store.add_part(_part(stores, account, 1))
    await store.add_part(_part(stores, account, 2))
    cutoff = stores.clock.advance(600)

    dropped = await store.expire_parts(cutoff - timedelta(seconds=1))
    late = await store.add_part(_part(stores, account, 3, received_at=cutoff))

    assert dropped == 2
    assert (late.message_id, late.complete) == ("msg_reserved_by_3", None)


# --- migration 0002 ---------------------------------------------------------------------------


async def test_0002_keeps_earlier_messages_as_rest_messages(blank_database_url: str) -> None:
    """A message stored before 0002 reads back after it with no origin and no receipt wish."""
    await run_alembic(blank_database_url, lambda config: command.upgrade(config, "0001"))
    url = normalise_url(blank_database_url)
    sqlite = url.get_backend_name() == "sqlite"
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    at: object = moment.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment
    engine = sqlite_engine(url, role="writer") if sqlite else postgresql_engine(url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'old', :at)"),
                {"at": at},
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO messages (id, tenant_id, direction, recipient, body, category,"
                    " encoding, segments, status, created_at, updated_at) VALUES ('msg_old',"
                    " 'ten_1', 'mt', '+447911123456', 'hi', 'transactional', 'gsm7', 1,"
                    " 'queued', :at, :at)"
                ),
                {"at": at},
            )
    finally:
        await engine.dispose()

    await migrate(blank_database_url)
    database = await connect(blank_database_url)
    try:
        message = await SqlMessageStore(database, FakeClock()).get_message("msg_old")
    finally:
        await database.close()

    assert message is not None
    assert (message.origin, message.origin_parts, message.receipt_request) == (
        None,
        1,
        ReceiptRequest.NONE,
    )
