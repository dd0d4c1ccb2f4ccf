"""``/v1/connectors``, ``/v1/routes`` and ``/v1/carriers/{id}/...`` on a wired gateway over the
real stores (SQLite and PostgreSQL): CRUD, operator-only access, masking, validation, live apply."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pigeon.bootstrap import Gateway, create_key, create_tenant, open_gateway
from pigeon.config import Settings, load_settings
from pigeon.domain.accounts import Role
from pigeon.domain.addressing import SenderKind
from pigeon.domain.messages import Direction
from pigeon.domain.numbers import OwnedNumber
from pigeon.ports import MessageQuery

TWILIO = {
    "account_sid": "AC0123456789abcdef0123456789abcdef",
    "auth_token": "tw-secret-token",
    "base_url": "http://127.0.0.1:9",
}


@dataclass
class Admin:
    """The app of a wired gateway, an operator key and a tenant key."""

    client: httpx.AsyncClient
    gateway: Gateway
    operator: dict[str, str]
    tenant: dict[str, str]


@pytest.fixture
async def admin(database_url: str, tmp_path: Path) -> AsyncIterator[Admin]:
    """A gateway on ``database_url`` (no workers, no SMPP) and an HTTP client on its app."""
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, run_smpp=False, run_workers=False
    )
    gateway = await open_gateway(settings)
    try:
        tenant = await create_tenant(gateway, "acme")
        operator = await create_key(gateway, tenant.id, role=Role.OPERATOR)
        plain = await create_key(gateway, tenant.id)
        transport = httpx.ASGITransport(app=gateway.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://pigeon.test") as client:
            yield Admin(
                client,
                gateway,
                {"Authorization": f"Bearer {operator.secret}"},
                {"Authorization": f"Bearer {plain.secret}"},
            )
    finally:
        await gateway.close()


async def _add(admin: Admin, connector_id: str = "tw", **changes: Any) -> httpx.Response:
    body = {"id": connector_id, "type": "twilio", "options": TWILIO, **changes}
    return await admin.client.post("/v1/connectors", json=body, headers=admin.operator)


async def test_connector_crud_masks_credentials(admin: Admin) -> None:
    """Add, read, list, change and delete a connector; secrets are never answered back."""
    created = await _add(admin)
    assert created.status_code == 201, created.text
    assert created.json()["options"]["auth_token"] == "********"
    assert "tw-secret-token" not in created.text
    listed = await admin.client.get("/v1/connectors", headers=admin.operator)
    assert [c["id"] for c in listed.json()["data"]] == ["tw"]
    assert "tw-secret-token" not in listed.text
    changed = await admin.client.patch(
        "/v1/connectors/tw",
        json={"options": {"auth_token": "********", "default_from": "Pigeon"}, "enabled": False},
        headers=admin.operator,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False
    stored = await admin.gateway.connector_store.get_connector("tw")
    assert stored is not None
    assert stored.options["auth_token"] == "tw-secret-token"
    assert stored.options["default_from"] == "Pigeon"
    assert (
        await admin.client.delete("/v1/connectors/tw", headers=admin.operator)
    ).status_code == 204
    missing = await admin.client.get("/v1/connectors/tw", headers=admin.operator)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_tenant_keys_are_forbidden(admin: Admin) -> None:
    """Tenant keys get 403 ``forbidden`` on every connector and route endpoint."""
    for method, path in [
        ("GET", "/v1/connectors"),
        ("POST", "/v1/connectors"),
        ("GET", "/v1/connectors/tw"),
        ("PATCH", "/v1/connectors/tw"),
        ("DELETE", "/v1/connectors/tw"),
        ("PUT", "/v1/connectors/tw/prices"),
        ("GET", "/v1/routes"),
        ("PUT", "/v1/routes"),
    ]:
        response = await admin.client.request(method, path, json={}, headers=admin.tenant)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"id": "x", "type": "carrier-pigeon", "options": {}}, "invalid_connector"),
        ({"id": "x", "type": "twilio", "options": {"account_sid": "AC1"}}, "invalid_connector"),
        ({"id": "x", "type": "twilio", "options": {**TWILIO, "colour": 1}}, "invalid_connector"),
        ({"id": "simulator", "type": "twilio", "options": TWILIO}, "invalid_connector"),
        ({"id": "bad id!", "type": "twilio", "options": TWILIO}, "invalid_connector"),
        ({"id": "x", "type": "smpp", "options": {"port": "many"}}, "invalid_connector"),
        ({"id": "x", "type": "twilio", "options": TWILIO, "prices": "nope"}, "invalid_price_list"),
        ({"id": "x", "type": "twilio", "optionz": {}}, "unknown_field"),
        ({"id": "x", "type": "twilio", "options": {"auth_token": "a\u0000"}}, "invalid_field"),
    ],
)
async def test_invalid_connectors_are_422(admin: Admin, body: dict[str, Any], code: str) -> None:
    """Each bad connector is a 422 problem with a stable code, and nothing is stored."""
    response = await admin.client.post("/v1/connectors", json=body, headers=admin.operator)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert await admin.gateway.connector_store.list_connectors() == []


async def test_duplicate_and_in_use_connectors_conflict(admin: Admin) -> None:
    """A taken id is 409 ``connector_exists``; removing a routed one 409 ``connector_in_use``."""
    assert (await _add(admin)).status_code == 201
    again = await _add(admin)
    assert (again.status_code, again.json()["code"]) == (409, "connector_exists")
    routes = [{"id": "main", "default": True, "candidates": ["tw"]}]
    put = await admin.client.put("/v1/routes", json={"routes": routes}, headers=admin.operator)
    assert put.status_code == 200, put.text
    removed = await admin.client.delete("/v1/connectors/tw", headers=admin.operator)
    assert (removed.status_code, removed.json()["code"]) == (409, "connector_in_use")


async def test_routes_are_validated_and_applied_live(admin: Admin) -> None:
    """A valid table replaces the router's at once; an invalid one is 422 and changes nothing."""
    assert (await _add(admin)).status_code == 201
    assert "tw" in admin.gateway.router.connectors
    routes = [
        {"id": "uk", "countries": ["GB"], "candidates": ["tw"]},
        {"id": "main", "default": True, "candidates": ["simulator"]},
    ]
    put = await admin.client.put("/v1/routes", json={"routes": routes}, headers=admin.operator)
    assert put.status_code == 200, put.text
    assert put.json()["routes"] == routes
    assert [r.id for r in admin.gateway.router.table.routes] == ["uk"]
    for bad in (
        [{"id": "a", "candidates": ["nowhere"]}],
        [{"id": "a", "colour": "red", "candidates": ["tw"]}],
        [{"id": "a", "default": True, "candidates": ["tw"]}] * 2,
        [{"candidates": ["tw"]}],
        "not a list",
    ):
        response = await admin.client.put(
            "/v1/routes", json={"routes": bad}, headers=admin.operator
        )
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] in ("invalid_routes", "invalid_field")
    got = await admin.client.get("/v1/routes", headers=admin.operator)
    assert got.json()["routes"] == routes
    added = await admin.client.post(
        "/v1/routes",
        json={"id": "fr", "countries": ["FR"], "candidates": ["tw"]},
        headers=admin.operator,
    )
    assert added.status_code == 201, added.text
    assert [r.id for r in admin.gateway.router.table.routes] == ["uk", "fr"]
    gone = await admin.client.delete("/v1/routes/uk", headers=admin.operator)
    assert gone.status_code == 204
    assert [r.id for r in admin.gateway.router.table.routes] == ["fr"]


async def test_disabling_a_connector_removes_it_from_plans(admin: Admin) -> None:
    """A disabled connector is stopped and unregistered; enabling it registers a new one."""
    assert (await _add(admin)).status_code == 201
    first = admin.gateway.router.connectors["tw"]
    assert first.ready
    await admin.client.patch("/v1/connectors/tw", json={"enabled": False}, headers=admin.operator)
    assert "tw" not in admin.gateway.router.connectors
    assert not first.ready
    await admin.client.patch("/v1/connectors/tw", json={"enabled": True}, headers=admin.operator)
    assert admin.gateway.router.connectors["tw"].ready


async def test_prices_from_csv_and_json(admin: Admin) -> None:
    """Prices are set from CSV or JSON rows, feed the router, and bad ones are 422."""
    assert (await _add(admin)).status_code == 201
    csv_answer = await admin.client.put(
        "/v1/connectors/tw/prices",
        content="country,price,currency\nGB,0.03,EUR\n",
        headers={**admin.operator, "Content-Type": "text/csv"},
    )
    assert csv_answer.status_code == 200, csv_answer.text
    rows = [{"prefix": "+4474", "price": "0.02", "currency": "EUR"}]
    json_answer = await admin.client.put(
        "/v1/connectors/tw/prices", json={"rows": rows}, headers=admin.operator
    )
    assert json_answer.status_code == 200, json_answer.text
    routes = [{"id": "main", "default": True, "candidates": ["tw"]}]
    await admin.client.put("/v1/routes", json={"routes": routes}, headers=admin.operator)
    explained = await admin.client.get(
        "/v1/routes/explain", params={"to": "+447400123456"}, headers=admin.operator
    )
    assert explained.status_code == 200, explained.text
    assert "20000" in explained.text, explained.text
    bad = await admin.client.put(
        "/v1/connectors/tw/prices",
        content="country,price,currency\nGB,cheap,EUR\n",
        headers={**admin.operator, "Content-Type": "text/csv"},
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_price_list")
    wrong = await admin.client.put(
        "/v1/connectors/tw/prices",
        content=b"<xml/>",
        headers={**admin.operator, "Content-Type": "application/xml"},
    )
    assert (wrong.status_code, wrong.json()["code"]) == (415, "unsupported_media_type")


async def test_carrier_callbacks_check_signatures(admin: Admin) -> None:
    """Receipts for an unknown connector are 404; a bad Twilio signature is 403, no key needed."""
    assert (await _add(admin)).status_code == 201
    unknown = await admin.client.post("/v1/carriers/nope/receipts", data={"MessageSid": "SM1"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    forged = await admin.client.post(
        "/v1/carriers/tw/receipts", data=form, headers={"X-Twilio-Signature": "forged"}
    )
    assert forged.status_code == 403
    url = "http://pigeon.test/v1/carriers/tw/receipts"
    data = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(TWILIO["auth_token"].encode(), data.encode(), hashlib.sha1).digest()
    signed = await admin.client.post(
        "/v1/carriers/tw/receipts",
        data=form,
        headers={"X-Twilio-Signature": base64.b64encode(digest).decode()},
    )
    assert signed.status_code in (200, 204), signed.text


async def test_a_removed_http_connector_still_checks_its_callbacks(admin: Admin) -> None:
    """After removal, the connector's callbacks still reach it (403 on a forged signature),
    so receipts for messages it accepted are not lost."""
    assert (await _add(admin)).status_code == 201
    assert (
        await admin.client.delete("/v1/connectors/tw", headers=admin.operator)
    ).status_code == 204
    forged = await admin.client.post(
        "/v1/carriers/tw/receipts",
        data={"MessageSid": "SM1", "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert forged.status_code == 403


async def test_pigeon_toml_connectors_and_routes_are_imported(
    database_url: str, tmp_path: Path
) -> None:
    """``import_declared`` stores the file's connectors (price file read in) and routes, and
    the next reload runs them."""
    (tmp_path / "tw.csv").write_text("country,price,currency\nGB,0.03,EUR\n")
    settings = load_settings(
        {"PIGEON_DATABASE_URL": database_url, "PIGEON_DATA_DIR": str(tmp_path)},
        _toml(
            tmp_path,
            '[[connectors]]\nid = "tw"\ntype = "twilio"\nprices = "tw.csv"\n'
            + "".join(f'{name} = "{value}"\n' for name, value in TWILIO.items())
            + '\n[[routes]]\nid = "main"\ndefault = true\ncandidates = ["tw"]\n',
        ),
    )
    gateway = await open_gateway(settings)
    try:
        await gateway.import_declared()
        stored = await gateway.connector_store.get_connector("tw")
        assert stored is not None
        assert (stored.source, stored.type, stored.enabled) == ("toml", "twilio", True)
        assert stored.prices_csv is not None
        assert "GB" in stored.prices_csv
        assert [r.id for r in await gateway.connector_store.list_routes()] == ["main"]
        await gateway.live.reload()
        assert gateway.router.connectors["tw"].ready
        assert gateway.router.table.default.id == "main"
    finally:
        await gateway.close()


def _toml(folder: Path, text: str) -> Path:
    path = folder / "pigeon.toml"
    path.write_text(text)
    return path


async def test_signed_inbound_callback_becomes_the_number_owners_message(admin: Admin) -> None:
    """A signed Twilio inbound post to ``/v1/carriers/tw/inbound`` is stored as an MO message
    of the tenant owning the number, as SMPP replies are."""
    assert (await _add(admin)).status_code == 201
    tenant = await admin.gateway.accounts.find_tenant_by_name("acme")
    assert tenant is not None
    await admin.gateway.numbers.add_number(
        OwnedNumber("+14155550199", tenant.id, SenderKind.LONG_CODE, admin.gateway.clock.now())
    )
    form = {"From": "+14155550100", "To": "+14155550199", "Body": "STOP", "MessageSid": "SM9"}
    url = "http://pigeon.test/v1/carriers/tw/inbound"
    data = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(TWILIO["auth_token"].encode(), data.encode(), hashlib.sha1).digest()
    answer = await admin.client.post(
        "/v1/carriers/tw/inbound",
        data=form,
        headers={"X-Twilio-Signature": base64.b64encode(digest).decode()},
    )
    assert answer.status_code == 200, answer.text
    page = await admin.gateway.messages.list_messages(tenant.id, MessageQuery())
    inbound = [m for m in page.messages if m.direction is Direction.MO]
    assert [(m.body, m.sender) for m in inbound] == [("STOP", "+14155550100")]


async def test_a_simulator_connector_is_added_and_routed_to_live(admin: Admin) -> None:
    """A connector of type simulator is built with its own id and takes routed traffic."""
    body = {"id": "sim2", "type": "simulator", "options": {"receipt_delay_seconds": 0}}
    added = await admin.client.post("/v1/connectors", json=body, headers=admin.operator)
    assert added.status_code == 201, added.text
    connector = admin.gateway.router.connectors["sim2"]
    assert connector.id == "sim2"
    assert connector.ready
    routes = [{"id": "main", "default": True, "candidates": ["sim2"]}]
    put = await admin.client.put("/v1/routes", json={"routes": routes}, headers=admin.operator)
    assert put.status_code == 200, put.text
    bad = {"id": "sim3", "type": "simulator", "options": {"default": "teleported"}}
    refused = await admin.client.post("/v1/connectors", json=bad, headers=admin.operator)
    assert refused.status_code == 422
