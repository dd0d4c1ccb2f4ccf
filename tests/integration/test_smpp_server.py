"""The customer SMPP server on a real socket and real databases, driven by our own codec."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from argon2 import PasswordHasher

from pigeon.domain.accounts import KeyMode, Tenant
from pigeon.domain.encoding import encode_gsm7, encode_ucs2
from pigeon.domain.messages import (
    Category,
    Direction,
    Message,
    MessageStatus,
    ReceiptRequest,
    StatusChange,
)
from pigeon.domain.receipts import DeliveryReceipt, ReceiptStatus
from pigeon.ids import UlidFactory
from pigeon.ports import Acceptance, MessageQuery
from pigeon.services.accept import AcceptMessage
from pigeon.services.dispatch import DispatchMessage, SandboxRouter
from pigeon.services.events import EndpointDirectory, EventRecorder
from pigeon.services.notify import SMPP_DELIVER
from pigeon.services.queries import ReadMessages
from pigeon.services.receipts import ApplyReceipt
from pigeon.services.smpp_accounts import (
    AuthenticateBind,
    CreatedSmppAccount,
    ManageSmppAccounts,
    Passwords,
)
from pigeon.smpp import tlv
from pigeon.smpp.concat import concat_udh
from pigeon.smpp.constants import CommandStatus, GsmFeature, MessageState, MessageType
from pigeon.smpp.pdu import (
    CancelSm,
    DataSm,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
)
from pigeon.smpp.receipt import parse_receipt
from pigeon.smpp_server import SmppServer, SmppServerSettings, SmppServices
from pigeon.store import SqlPartStore
from pigeon.testing import FakeConnector
from support.esme import Esme

if TYPE_CHECKING:
    from conftest import Stores

S = CommandStatus
TO = "447911123456"


def submit(text: str = "hello", **fields: Any) -> SubmitSm:
    """A GSM-7 submit_sm to a UK mobile, international TON."""
    values: dict[str, Any] = {
        "source_addr_ton": 5,
        "source_addr": "Pigeon",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": TO,
        "short_message": encode_gsm7(text),
    }
    values.update(fields)
    return SubmitSm(**values)


@dataclass
class Harness:
    """The server wired on the test's stores, with the use cases that move messages on."""

    stores: Stores
    ids: UlidFactory
    server: SmppServer
    tenant: Tenant
    accounts: ManageSmppAccounts
    dispatch: DispatchMessage
    receipts: ApplyReceipt
    connector: FakeConnector
    services: SmppServices
    clients: list[Esme] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    async def account(self, **options: Any) -> CreatedSmppAccount:
        """A new SMPP account of the tenant."""
        return await self.accounts.create(self.tenant.id, **options)

    async def esme(self, account: CreatedSmppAccount, mode: str = "trx") -> Esme:
        """A client bound with ``account``."""
        client = await Esme.open(self.port)
        self.clients.append(client)
        response = await client.bind(account.account.system_id, account.password, mode)
        assert response.command_status == S.ESME_ROK
        return client

    async def message(self, message_id: str) -> Message:
        found = await self.stores.messages.get_message(message_id)
        assert found is not None
        return found

    async def run(self, kind: str) -> int:
        """Run every due job of ``kind`` once; returns how many ran."""
        jobs = await self.stores.queue.claim([kind], 100, "test", 30)
        for job in jobs:
            if kind == SMPP_DELIVER:
                await self.server.deliver(job)
            else:
                await self.dispatch(job)
        return len(jobs)

    async def complete(self, message_id: str, stat: ReceiptStatus = ReceiptStatus.DELIVRD) -> None:
        """Dispatch the message and apply a carrier receipt to every part."""
        await self.run("dispatch")
        message = await self.message(message_id)
        for part in message.parts:
            assert part.carrier_message_id is not None
            await self.receipts(DeliveryReceipt("fake", part.carrier_message_id, stat))


@pytest.fixture
async def harness(stores: Stores) -> AsyncIterator[Harness]:
    """A started SMPP server on 127.0.0.1 (port picked) and a tenant."""
    ids = UlidFactory()
    clock = stores.clock
    recorder = EventRecorder(ids, clock, EndpointDirectory(stores.webhooks, ttl_seconds=0))
    tenant = Tenant(ids.new("ten"), "acme", "GB", clock.now())
    await stores.accounts.create_tenant(tenant)
    # Cheap argon2 parameters: the tests check behaviour, not the cost.
    passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    accept = AcceptMessage(stores.messages, clock, ids, recorder)
    services = SmppServices(
        authenticate=AuthenticateBind(stores.accounts, passwords),
        accept=accept,
        read=ReadMessages(stores.messages),
        parts=SqlPartStore(stores.database),
        queue=stores.queue,
        accounts=stores.accounts,
        clock=clock,
        ids=ids,
    )
    server = SmppServer(SmppServerSettings(port=0, unbind_grace=0.5), services)
    await server.start()
    connector = FakeConnector("fake")
    built = Harness(
        stores=stores,
        ids=ids,
        server=server,
        tenant=tenant,
        accounts=ManageSmppAccounts(stores.accounts, ids, clock, passwords),
        dispatch=DispatchMessage(
            stores.messages,
            stores.queue,
            SandboxRouter(connector, connector),
            recorder,
            clock,
            ids,
        ),
        receipts=ApplyReceipt(stores.messages, stores.queue, recorder, clock),
        connector=connector,
        services=services,
    )
    try:
        yield built
    finally:
        for client in built.clients:
            await client.close()
        await built.server.stop()


async def restart(harness: Harness) -> None:
    """Replace the server by a new one on the same database (a restart of the process)."""
    await harness.server.stop()
    harness.server = SmppServer(SmppServerSettings(port=0), harness.services)
    await harness.server.start()


# --- binds -------------------------------------------------------------------------------------


async def test_bind_with_the_right_password_succeeds(harness: Harness) -> None:
    """A transceiver bind with the account's password is answered ESME_ROK with our system_id."""
    account = await harness.account(system_id="acme1", password="s3cret")
    client = await Esme.open(harness.port)
    harness.clients.append(client)

    response = await client.bind("acme1", "s3cret", "trx")

    assert response.command_status == S.ESME_ROK
    assert getattr(response, "system_id", None) == "pigeon"
    assert response.tlv(tlv.SC_INTERFACE_VERSION) == 0x34
    assert harness.server.bound(account.account.id) == 1


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("acme1", "wrong", S.ESME_RINVPASWD), ("nobody", "s3cret", S.ESME_RINVSYSID)],
    ids=["wrong-password", "unknown-system-id"],
)
async def test_a_bad_bind_is_refused_and_closed(
    harness: Harness, system_id: str, password: str, status: int
) -> None:
    """A wrong password gets ESME_RINVPASWD, an unknown system_id ESME_RINVSYSID; then close."""
    await harness.account(system_id="acme1", password="s3cret")
    client = await Esme.open(harness.port)
    harness.clients.append(client)

    response = await client.bind(system_id, password, "tx")
    await asyncio.wait_for(client.closed.wait(), 5)

    assert response.command_status == status


async def test_binds_beyond_the_accounts_limit_are_refused(harness: Harness) -> None:
    """With max_binds 2 the third concurrent bind gets ESME_RBINDFAIL; after an unbind, room."""
    account = await harness.account(max_binds=2)
    first = await harness.esme(account)
    await harness.esme(account, "tx")
    extra = await Esme.open(harness.port)
    harness.clients.append(extra)

    refused = await extra.bind(account.account.system_id, account.password, "rx")
    await first.unbind()
    await first.wait_for(lambda: first.closed.is_set())
    again = await harness.esme(account, "rx")

    assert refused.command_status == S.ESME_RBINDFAIL
    assert not again.closed.is_set()


async def test_enquire_link_is_answered(harness: Harness) -> None:
    """enquire_link gets enquire_link_resp with the same sequence number."""
    client = await harness.esme(await harness.account())

    response = await client.request(EnquireLink())

    assert isinstance(response, EnquireLinkResp)


# --- submits -----------------------------------------------------------------------------------


async def test_submit_is_answered_with_the_stored_message_id(harness: Harness) -> None:
    """submit_sm_resp carries the id of a message already stored, with its SMPP origin."""
    account = await harness.account(mode=KeyMode.TEST)
    client = await harness.esme(account)

    response = await client.request(submit("Your code is 123456", registered_delivery=1))

    assert isinstance(response, SubmitSmResp)
    assert response.command_status == S.ESME_ROK
    message = await harness.message(response.message_id)
    assert (message.to, message.sender, message.body) == ("+" + TO, "Pigeon", "Your code is 123456")
    assert message.origin == f"smpp:{account.account.id}"
    assert message.receipt_request is ReceiptRequest.ALL
    assert message.is_test
    assert message.status is MessageStatus.QUEUED


async def test_pipelined_submits_are_each_answered(harness: Harness) -> None:
    """200 submits written at once all get their own answer and their own stored message."""
    client = await harness.esme(await harness.account(throughput_per_second=None))

    futures = [client.send(submit(f"message {n}")) for n in range(200)]
    responses = await asyncio.wait_for(asyncio.gather(*futures), 30)

    ids = [r.message_id for r in responses if isinstance(r, SubmitSmResp)]
    assert all(r.command_status == S.ESME_ROK for r in responses)
    assert len(set(ids)) == 200
    bodies = {(await harness.message(message_id)).body for message_id in ids}
    assert bodies == {f"message {n}" for n in range(200)}


async def test_submits_over_the_throughput_are_throttled(harness: Harness) -> None:
    """With 5 submits/s allowed, a burst of 30 gets some ESME_RTHROTTLED and some accepted."""
    client = await harness.esme(await harness.account(throughput_per_second=5))

    responses = await asyncio.gather(*(client.send(submit()) for _ in range(30)))

    statuses = [r.command_status for r in responses]
    assert S.ESME_RTHROTTLED in statuses
    assert S.ESME_ROK in statuses


@pytest.mark.parametrize(
    ("pdu", "status"),
    [
        (submit(destination_addr="12"), S.ESME_RINVDSTADR),
        (submit(destination_addr=""), S.ESME_RINVDSTADR),
        (submit(dest_addr_ton=5, destination_addr="Shop"), S.ESME_RINVDSTTON),
        (submit(source_addr="this is far too long"), S.ESME_RINVSRCADR),
        (submit(short_message=b""), S.ESME_RINVMSGLEN),
        (submit(data_coding=4, short_message=b"\x01\x02"), S.ESME_RSUBMITFAIL),
        (submit(data_coding=8, short_message=b"\x00a\x00"), S.ESME_RINVMSGLEN),
        (submit(validity_period="261399120000000+"), S.ESME_RINVEXPIRY),
        (submit(schedule_delivery_time="991399000000000+"), S.ESME_RINVSCHED),
        (submit(esm_class=MessageType.ESME_DELIVERY_ACK), S.ESME_RINVESMCLASS),
        (submit(short_message=encode_gsm7("x" * 1700)), S.ESME_RINVMSGLEN),
    ],
    ids=[
        "short-destination",
        "empty-destination",
        "alphanumeric-destination",
        "long-source",
        "empty",
        "binary",
        "odd-ucs2",
        "bad-validity",
        "bad-schedule",
        "sme-ack",
        "too-long",
    ],
)
async def test_bad_fields_get_their_status_and_the_session_goes_on(
    harness: Harness, pdu: SubmitSm, status: int
) -> None:
    """A bad field is answered with its command_status; the next submit is still accepted."""
    client = await harness.esme(await harness.account())
    if len(pdu.short_message) > 254:
        pdu = dataclasses.replace(
            pdu, short_message=b"", tlvs=(tlv.MESSAGE_PAYLOAD(pdu.short_message),)
        )

    refused = await client.request(pdu)
    accepted = await client.request(submit())

    assert refused.command_status == status
    assert accepted.command_status == S.ESME_ROK


async def test_ucs2_and_latin1_texts_are_decoded(harness: Harness) -> None:
    """data_coding 8 is read as UTF-16-BE (emoji included), 3 as Latin-1."""
    client = await harness.esme(await harness.account())

    wide = await client.request(submit(data_coding=8, short_message=encode_ucs2("Привет 👋")))
    latin = await client.request(submit(data_coding=3, short_message="café".encode("latin-1")))

    assert isinstance(wide, SubmitSmResp)
    assert isinstance(latin, SubmitSmResp)
    assert (await harness.message(wide.message_id)).body == "Привет 👋"
    assert (await harness.message(latin.message_id)).body == "café"


async def test_data_sm_with_a_message_payload_is_accepted(harness: Harness) -> None:
    """data_sm carries its text in message_payload and is answered with data_sm_resp."""
    client = await harness.esme(await harness.account())
    text = "long " * 60

    response = await client.request(
        DataSm(
            dest_addr_ton=1,
            destination_addr=TO,
            tlvs=(tlv.MESSAGE_PAYLOAD(encode_gsm7(text)),),
        )
    )

    assert response.command_status == S.ESME_ROK
    message = await harness.message(getattr(response, "message_id", ""))
    assert message.body == text
    assert message.segments == 2


async def test_submit_multi_accepts_each_destination(harness: Harness) -> None:
    """submit_multi makes one message per SME address and lists the ones it could not take."""
    client = await harness.esme(await harness.account())

    response = await client.request(
        SubmitMulti(
            source_addr="Pigeon",
            source_addr_ton=5,
            dest_addresses=(
                SmeAddress(1, 1, TO),
                SmeAddress(1, 1, "447911123457"),
                SmeAddress(1, 1, "12"),
                DistributionList("friends"),
            ),
            short_message=b"hello all",
        )
    )

    assert isinstance(response, SubmitMultiResp)
    assert response.command_status == S.ESME_ROK
    assert [u.error_status_code for u in response.unsuccess_smes] == [
        S.ESME_RINVDSTADR,
        S.ESME_RINVDLNAME,
    ]
    page = await harness.stores.messages.list_messages(harness.tenant.id, _query())
    assert sorted(m.to for m in page.messages) == ["+447911123456", "+447911123457"]


def _query() -> MessageQuery:
    return MessageQuery(limit=50)


async def test_cancel_and_replace_are_refused(harness: Harness) -> None:
    """cancel_sm gets ESME_RCANCELFAIL and replace_sm ESME_RREPLACEFAIL (not offered yet)."""
    client = await harness.esme(await harness.account())
    sent = await client.request(submit())
    message_id = getattr(sent, "message_id", "")

    canceled = await client.request(CancelSm(message_id=message_id, destination_addr=TO))
    replaced = await client.request(ReplaceSm(message_id=message_id, short_message=b"x"))

    assert canceled.command_status == S.ESME_RCANCELFAIL
    assert replaced.command_status == S.ESME_RREPLACEFAIL


async def test_query_sm_reports_the_messages_state(harness: Harness) -> None:
    """query_sm says ENROUTE, then DELIVERED with a final date; unknown ids: ESME_RINVMSGID."""
    client = await harness.esme(await harness.account())
    sent = await client.request(submit())
    message_id = getattr(sent, "message_id", "")

    before = await client.request(QuerySm(message_id=message_id))
    await harness.complete(message_id)
    after = await client.request(QuerySm(message_id=message_id))
    unknown = await client.request(QuerySm(message_id="msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"))

    assert isinstance(before, QuerySmResp)
    assert isinstance(after, QuerySmResp)
    assert (before.message_state, before.final_date) == (MessageState.ENROUTE, "")
    assert after.message_state == MessageState.DELIVERED
    assert len(after.final_date) == 16
    assert unknown.command_status == S.ESME_RINVMSGID


# --- long messages -----------------------------------------------------------------------------


def _parts(text: str, kind: str, reference: int = 7) -> list[SubmitSm]:
    chunks = [text[i : i + 153] for i in range(0, len(text), 153)]
    total = len(chunks)
    out = []
    for seq, chunk in enumerate(chunks, 1):
        if kind == "sar":
            out.append(
                submit(
                    short_message=encode_gsm7(chunk),
                    registered_delivery=1,
                    tlvs=(
                        tlv.SAR_MSG_REF_NUM(reference),
                        tlv.SAR_TOTAL_SEGMENTS(total),
                        tlv.SAR_SEGMENT_SEQNUM(seq),
                    ),
                )
            )
        else:
            udh = concat_udh(reference, total, seq, sixteen_bit=kind == "udh16")
            out.append(
                submit(
                    esm_class=GsmFeature.UDHI,
                    short_message=udh + encode_gsm7(chunk),
                    registered_delivery=1,
                )
            )
    return out


LONG = "".join(f"Part of a long message, line {n:02d}. " for n in range(12))


@pytest.mark.parametrize("kind", ["udh8", "udh16", "sar"])
async def test_a_long_message_is_reassembled_into_one(harness: Harness, kind: str) -> None:
    """Parts (UDH 8/16-bit or SAR) become one message; each part gets its own derived id."""
    client = await harness.esme(await harness.account())
    parts = _parts(LONG, kind)

    responses = [await client.request(part) for part in parts]

    ids = [getattr(r, "message_id", "") for r in responses]
    assert all(r.command_status == S.ESME_ROK for r in responses)
    base = ids[0].rsplit(".", 1)[0]
    assert ids == [f"{base}.{n}" for n in range(1, len(parts) + 1)]
    message = await harness.message(base)
    assert message.body == LONG
    assert message.origin_parts == len(parts)
    assert message.receipt_request is ReceiptRequest.ALL


async def test_parts_answered_before_a_restart_are_kept(harness: Harness) -> None:
    """Parts answered before the server restarts complete their message after it."""
    account = await harness.account()
    client = await harness.esme(account)
    parts = _parts(LONG, "udh8")
    early = [await client.request(part) for part in parts[:-1]]

    await restart(harness)
    client = await harness.esme(account)
    last = await client.request(parts[-1])

    base = getattr(early[0], "message_id", "").rsplit(".", 1)[0]
    assert getattr(last, "message_id", "") == f"{base}.{len(parts)}"
    assert (await harness.message(base)).body == LONG


async def test_a_retransmitted_part_makes_no_second_message(harness: Harness) -> None:
    """A part sent again after its message was accepted gets the same id and nothing new."""
    client = await harness.esme(await harness.account())
    parts = _parts(LONG, "udh8")
    first = [await client.request(part) for part in parts]

    again = await client.request(parts[-1])

    assert getattr(again, "message_id", "") == getattr(first[-1], "message_id", "")
    page = await harness.stores.messages.list_messages(harness.tenant.id, _query())
    assert len(page.messages) == 1


# --- receipts ----------------------------------------------------------------------------------


async def test_a_receipt_reaches_the_bound_customer(harness: Harness) -> None:
    """A delivered message with registered_delivery comes back as a standard receipt with TLVs."""
    client = await harness.esme(await harness.account())
    sent = await client.request(submit("Your code is 123456", registered_delivery=1))
    message_id = getattr(sent, "message_id", "")

    await harness.complete(message_id)
    ran = await harness.run(SMPP_DELIVER)

    assert ran == 1
    (receipt,) = client.delivered
    assert receipt.esm_class == MessageType.SMSC_DELIVERY_RECEIPT
    assert (receipt.source_addr, receipt.destination_addr) == (TO, "Pigeon")
    assert receipt.tlv(tlv.RECEIPTED_MESSAGE_ID) == message_id
    assert receipt.tlv(tlv.MESSAGE_STATE) == MessageState.DELIVERED
    assert receipt.tlv(tlv.NETWORK_ERROR_CODE) is None
    text = parse_receipt(receipt.short_message)
    assert text is not None
    assert (text.message_id, text.stat, text.error) == (message_id, "DELIVRD", "000")
    assert (text.submitted, text.delivered, text.text) == (1, 1, "Your code is 123456")
    assert SMPP_DELIVER not in await harness.stores.queue.pending()


async def test_a_failed_message_gets_an_undeliv_receipt_with_its_error(harness: Harness) -> None:
    """An undelivered message is reported UNDELIV with err and network_error_code."""
    client = await harness.esme(await harness.account())
    sent = await client.request(submit(registered_delivery=1))
    message_id = getattr(sent, "message_id", "")
    await harness.run("dispatch")
    carrier_id = (await harness.message(message_id)).parts[0].carrier_message_id or ""

    await harness.receipts(DeliveryReceipt("fake", carrier_id, ReceiptStatus.UNDELIV, "034"))
    await harness.run(SMPP_DELIVER)

    (receipt,) = client.delivered
    text = parse_receipt(receipt.short_message)
    assert text is not None
    assert (text.stat, text.error) == ("UNDELIV", "034")
    assert receipt.tlv(tlv.MESSAGE_STATE) == MessageState.UNDELIVERABLE
    assert receipt.tlv(tlv.NETWORK_ERROR_CODE) == tlv.NetworkErrorCode(3, 34)


async def test_failure_only_receipts_skip_delivered_messages(harness: Harness) -> None:
    """registered_delivery 2 (failure only) owes no receipt for a delivered message."""
    client = await harness.esme(await harness.account())
    sent = await client.request(submit(registered_delivery=2))

    await harness.complete(getattr(sent, "message_id", ""))

    assert await harness.run(SMPP_DELIVER) == 0


async def test_each_part_of_a_long_message_gets_its_receipt(harness: Harness) -> None:
    """A message sent in 3 parts is reported with 3 receipts, one per id the customer got."""
    client = await harness.esme(await harness.account())
    responses = [await client.request(part) for part in _parts(LONG, "udh8")]
    ids = [getattr(r, "message_id", "") for r in responses]

    await harness.complete(ids[0].rsplit(".", 1)[0])
    await harness.run(SMPP_DELIVER)

    assert [r.tlv(tlv.RECEIPTED_MESSAGE_ID) for r in client.delivered] == ids


async def deliver_until(harness: Harness, client: Esme, count: int) -> None:
    """Run due smpp_deliver jobs until ``client`` received ``count`` deliver_sm."""
    async with asyncio.timeout(10):
        while len(client.delivered) < count:
            if not await harness.run(SMPP_DELIVER):
                await asyncio.sleep(0.01)


async def test_receipts_wait_for_an_unbound_customer_and_come_unchanged(
    harness: Harness,
) -> None:
    """Receipts owed while unbound are kept and all come, as standard text, at the next bind."""
    account = await harness.account()
    client = await harness.esme(account, "tx")
    sent = [await client.request(submit(f"msg {n}", registered_delivery=1)) for n in range(3)]
    ids = [getattr(r, "message_id", "") for r in sent]
    await client.close()
    for message_id in ids:
        await harness.complete(message_id)

    put_back = await harness.run(SMPP_DELIVER)
    not_due = await harness.run(SMPP_DELIVER)
    receiver = await harness.esme(account, "rx")
    await deliver_until(harness, receiver, 3)

    assert (put_back, not_due) == (3, 0)
    texts = sorted(r.short_message.decode() for r in receiver.delivered)
    assert texts == [
        f"id:{message_id} sub:001 dlvrd:001 submit date:2601011200 done date:2601011200"
        f" stat:DELIVRD err:000 text:msg {n}"
        for n, message_id in enumerate(ids)
    ]
    assert SMPP_DELIVER not in await harness.stores.queue.pending()


async def test_a_receipt_not_acknowledged_is_sent_again_the_same(harness: Harness) -> None:
    """A receipt the customer refuses with a temporary error is retried, with the same bytes."""
    account = await harness.account()
    client = await harness.esme(account)
    client.deliver_status = S.ESME_RX_T_APPN
    sent = await client.request(submit(registered_delivery=1))
    await harness.complete(getattr(sent, "message_id", ""))
    await harness.run(SMPP_DELIVER)

    client.deliver_status = S.ESME_ROK
    woken = await harness.stores.queue.wake(f"{SMPP_DELIVER}:{account.account.id}:")
    await harness.run(SMPP_DELIVER)

    assert woken == 1
    first, second = client.delivered
    assert first.short_message == second.short_message
    assert first.tlvs == second.tlvs
    assert SMPP_DELIVER not in await harness.stores.queue.pending()


async def test_a_reply_reaches_the_tenants_receiving_session(harness: Harness) -> None:
    """An inbound message to the tenant is delivered as a plain deliver_sm to its RX session."""
    receiver = await harness.esme(await harness.account(), "rx")
    await _store_inbound(harness, "Yes please, book it")

    await deliver_until(harness, receiver, 1)

    (reply,) = receiver.delivered
    assert reply.esm_class == 0
    assert (reply.source_addr, reply.destination_addr) == (TO, "447700900999")
    assert reply.short_message == encode_gsm7("Yes please, book it")


async def _store_inbound(harness: Harness, body: str) -> None:
    now = harness.stores.clock.now()
    message = Message(
        id=harness.ids.new("msg"),
        tenant_id=harness.tenant.id,
        direction=Direction.MO,
        to="+447700900999",
        sender="+" + TO,
        body=body,
        category=Category.TRANSACTIONAL,
        encoding="gsm7",
        segments=1,
        status=MessageStatus.RECEIVED,
        created_at=now,
        updated_at=now,
        status_sequence=1,
    )
    change = StatusChange(message.id, MessageStatus.RECEIVED, None, 1, now)
    recorder = EventRecorder(
        harness.ids, harness.stores.clock, EndpointDirectory(harness.stores.webhooks)
    )
    events, jobs = recorder.record(message, [change], notify=False)
    await harness.stores.messages.accept(Acceptance(message, events, jobs))


async def test_stop_unbinds_every_session(harness: Harness) -> None:
    """Stopping the server sends unbind to a bound customer and closes its connection."""
    client = await harness.esme(await harness.account())

    await harness.server.stop()

    assert client.unbound_by_server.is_set()
    await asyncio.wait_for(client.closed.wait(), 5)
