"""SqlWebhookStore on real SQLite and PostgreSQL: endpoints per tenant and the attempt log."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pigeon.domain.accounts import Tenant
from pigeon.ports import NewJob, WebhookAttempt, WebhookEndpoint

if TYPE_CHECKING:
    from conftest import Factory, Stores


def _endpoint(stores: Stores, tenant: Tenant, suffix: str, *events: str) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=f"whe_{tenant.id[-6:]}{suffix}",
        tenant_id=tenant.id,
        url=f"https://hooks.example.test/{suffix}",
        events=events,
        secret=f"whsec_{suffix}",
        created_at=stores.clock.now(),
    )


def _attempt(
    stores: Stores, endpoint_id: str | None, number: int, **changes: Any
) -> WebhookAttempt:
    attempt = WebhookAttempt(
        id=f"wha_{number}",
        event_id="evt_1",
        endpoint_id=endpoint_id,
        url="https://hooks.example.test/a",
        attempt=number,
        at=stores.clock.now() + timedelta(seconds=number),
        status_code=500,
        error=None,
        duration_ms=12,
    )
    return dataclasses.replace(attempt, **changes)


async def test_endpoints_belong_to_their_tenant(stores: Stores, factory: Factory) -> None:
    """Each tenant lists, reads and deletes only its own endpoints."""
    alice, bob = await factory.tenant(), await factory.tenant()
    a1 = _endpoint(stores, alice, "a1", "message.delivered", "message.failed")
    a2 = _endpoint(stores, alice, "a2")
    b1 = _endpoint(stores, bob, "b1")
    for endpoint in (a1, a2, b1):
        await stores.webhooks.create_endpoint(endpoint)

    assert await stores.webhooks.list_endpoints(alice.id) == [a1, a2]
    assert await stores.webhooks.list_endpoints(bob.id) == [b1]
    assert await stores.webhooks.get_endpoint(a1.id) == a1
    assert await stores.webhooks.get_endpoint(a1.id, alice.id) == a1
    assert await stores.webhooks.get_endpoint(a1.id, bob.id) is None
    assert not await stores.webhooks.delete_endpoint(a1.id, bob.id)
    assert await stores.webhooks.delete_endpoint(a1.id, alice.id)
    assert not await stores.webhooks.delete_endpoint(a1.id, alice.id)
    assert await stores.webhooks.list_endpoints(alice.id) == [a2]


async def test_disabling_an_endpoint_keeps_the_first_time(stores: Stores, factory: Factory) -> None:
    """A disabled endpoint wants no events, and a later disable does not move its time."""
    tenant = await factory.tenant()
    endpoint = _endpoint(stores, tenant, "x")
    await stores.webhooks.create_endpoint(endpoint)
    first = stores.clock.now()

    await stores.webhooks.disable_endpoint(endpoint.id, first)
    await stores.webhooks.disable_endpoint(endpoint.id, first + timedelta(hours=1))

    stored = await stores.webhooks.get_endpoint(endpoint.id)
    assert stored is not None
    assert stored.disabled_at == first
    assert not stored.wants("message.delivered")


async def test_attempts_are_logged_in_order_and_outlive_the_endpoint(
    stores: Stores, factory: Factory
) -> None:
    """Attempts read back oldest first, and stay in the log when their endpoint is deleted."""
    tenant = await factory.tenant()
    endpoint = _endpoint(stores, tenant, "a")
    await stores.webhooks.create_endpoint(endpoint)
    attempts = [
        _attempt(stores, endpoint.id, 2, status_code=None, error="timeout"),
        _attempt(stores, endpoint.id, 1),
        _attempt(stores, None, 3, status_code=200, id="wha_cb"),
    ]
    for attempt in attempts:
        await stores.webhooks.record_attempt(attempt)
    await stores.webhooks.record_attempt(_attempt(stores, None, 1, id="wha_other", event_id="e2"))

    assert await stores.webhooks.attempts_for("evt_1") == [attempts[1], attempts[0], attempts[2]]
    await stores.webhooks.delete_endpoint(endpoint.id, tenant.id)
    after = await stores.webhooks.attempts_for("evt_1")
    assert [a.id for a in after] == ["wha_1", "wha_2", "wha_cb"]
    assert all(a.endpoint_id is None for a in after)


async def test_an_attempt_logged_with_its_job_completes_the_job_its_owner_holds(
    stores: Stores,
) -> None:
    """``record_attempt(complete_job=...)`` logs the attempt and deletes the job in the same
    batch, as ``complete`` would: only a job still leased by that owner, others untouched."""
    now = stores.clock.now()
    await stores.queue.enqueue(
        [NewJob(f"webhook:{n}", "webhook", {"n": n}, now) for n in ("a", "b", "c")]
    )
    claimed = {job.id: job for job in await stores.queue.claim(["webhook"], 10, "me", 60.0)}
    assert sorted(claimed) == ["webhook:a", "webhook:b", "webhook:c"]

    await asyncio.gather(
        stores.webhooks.record_attempt(
            _attempt(stores, None, 1, id="wha_a", status_code=204),
            complete_job=("webhook:a", "me"),
        ),
        stores.webhooks.record_attempt(
            _attempt(stores, None, 2, id="wha_b", status_code=204),
            complete_job=("webhook:b", "someone-else"),
        ),
        stores.webhooks.record_attempt(_attempt(stores, None, 3, id="wha_c")),
    )

    assert [a.id for a in await stores.webhooks.attempts_for("evt_1")] == [
        "wha_a",
        "wha_b",
        "wha_c",
    ]
    assert await stores.queue.pending() == {"webhook": 2}  # b: leased by another, c: kept
    stores.clock.advance(61)
    left = await stores.queue.claim(["webhook"], 10, "me", 60.0)
    assert sorted(job.id for job in left) == ["webhook:b", "webhook:c"]


async def test_attempts_logged_together_each_complete_their_own_job(stores: Stores) -> None:
    """``record_attempt_each`` logs every attempt and completes each one's job (only where its
    owner still holds it), as the same ``record_attempt`` calls would; each gets ``None``."""
    now = stores.clock.now()
    await stores.queue.enqueue([NewJob(f"webhook:{n}", "webhook", {}, now) for n in ("a", "b")])
    assert len(await stores.queue.claim(["webhook"], 10, "me", 60.0)) == 2

    outcomes = await stores.webhooks.record_attempt_each(
        [
            (_attempt(stores, None, 1, id="wha_a", status_code=204), ("webhook:a", "me")),
            (_attempt(stores, None, 2, id="wha_b", status_code=204), ("webhook:b", "other")),
            (_attempt(stores, None, 3, id="wha_c"), None),
        ]
    )

    assert outcomes == [None, None, None]
    logged = await stores.webhooks.attempts_for("evt_1")
    assert [(a.id, a.status_code) for a in logged] == [
        ("wha_a", 204),
        ("wha_b", 204),
        ("wha_c", 500),
    ]
    assert await stores.queue.pending() == {"webhook": 1}  # b: leased by another owner
