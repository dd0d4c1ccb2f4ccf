"""Quality figures per connector through a real ``pigeon serve``: the stats API and /metrics."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.gateway import API_KEY, GatewayProcess, new_gateway

ADMIN_KEY = "pk_live_e2e_operator_0123456789abcdef"

#: The simulator's magic numbers (README): what each destination does.
DELIVERED = "+14155550100"
UNDELIVERED = "+14155550110"
EXPIRED = "+14155550120"
REJECTED = "+14155550130"
TEMPORARY_FAILURE = "+14155550140"
NO_RECEIPT = "+14155550150"


@pytest.fixture
def operated_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A started ``pigeon serve`` with the test key and an operator key."""
    gateway = new_gateway(tmp_path, PIGEON_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


async def _send(session: aiohttp.ClientSession, base: str, to: str) -> None:
    async with session.post(
        f"{base}/v1/messages",
        json={"to": to, "body": "figures"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status in (200, 201, 202), await response.text()


async def _stats(
    session: aiohttp.ClientSession, base: str, connector_id: str, key: str = ADMIN_KEY
) -> tuple[int, str, Any]:
    async with session.get(
        f"{base}/v1/connectors/{connector_id}/stats",
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        return response.status, response.content_type, await response.json(content_type=None)


def _settled(figures: Any) -> bool:
    hour = figures["windows"]["1h"]
    return (
        hour["submitted"] == 7
        and hour["delivered"] == 3
        and hour["undelivered"] == 3
        and hour["errors"].get("carrier_rejected") == 1
        and hour["errors"].get("carrier_temporary_failure", 0) >= 1
    )


async def _wait_for_figures(session: aiohttp.ClientSession, base: str) -> Any:
    deadline = time.monotonic() + 60
    figures: Any = None
    while time.monotonic() < deadline:
        status, _, figures = await _stats(session, base, "simulator")
        assert status == 200, figures
        if _settled(figures):
            return figures
        await asyncio.sleep(0.2)
    raise AssertionError(f"figures never settled: {figures}")


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in metrics.splitlines():
        match = re.fullmatch(r"(\w+)\{([^}]*)\} (\S+)", line)
        if match and match[1] == name and ",".join(sorted(match[2].split(","))) == wanted:
            return float(match[3])
    return None


async def test_connector_figures_count_outcomes_and_errors_and_survive_a_restart(
    operated_gateway: GatewayProcess,
) -> None:
    """Delivered, undelivered and refused messages show in the stats, in /metrics, and again
    after a restart."""
    base = operated_gateway.base_url
    async with aiohttp.ClientSession() as session:
        for to in (
            *(DELIVERED,) * 3,
            *(UNDELIVERED,) * 2,
            EXPIRED,
            REJECTED,
            TEMPORARY_FAILURE,
            NO_RECEIPT,
        ):
            await _send(session, base, to)

        figures = await _wait_for_figures(session, base)

        assert figures["connector_id"] == "simulator"
        assert set(figures["windows"]) == {"5m", "1h", "24h"}
        hour = figures["windows"]["1h"]
        assert hour["delivery_rate"] == 0.5
        assert hour["latency_p50_seconds"] is not None
        assert hour["latency_p90_seconds"] is not None
        assert figures["windows"]["24h"]["submitted"] == 7
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        assert _sample(metrics, "pigeon_connector_submitted_total", connector="simulator") == 7
        assert (
            _sample(
                metrics,
                "pigeon_connector_outcomes_total",
                connector="simulator",
                outcome="undelivered",
            )
            == 3
        )
        assert (
            _sample(
                metrics,
                "pigeon_connector_errors_total",
                connector="simulator",
                code="carrier_rejected",
            )
            == 1
        )
        assert (
            _sample(
                metrics, "pigeon_connector_receipt_latency_seconds_count", connector="simulator"
            )
            == 6
        )
        assert (
            _sample(metrics, "pigeon_connector_delivery_rate", connector="simulator", window="1h")
            == 0.5
        )
        assert (
            _sample(
                metrics,
                "pigeon_connector_receipt_latency_p90_seconds",
                connector="simulator",
                window="24h",
            )
            is not None
        )

    operated_gateway.stop()
    operated_gateway.start()

    async with aiohttp.ClientSession() as session:
        status, _, again = await _stats(session, base, "simulator")
        assert status == 200
        hour = again["windows"]["1h"]
        assert (hour["submitted"], hour["delivered"], hour["undelivered"]) == (7, 3, 3)
        assert hour["errors"]["carrier_rejected"] == 1
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        assert (
            _sample(metrics, "pigeon_connector_delivery_rate", connector="simulator", window="1h")
            == 0.5
        )


async def test_connector_stats_need_an_operator_key_and_a_known_connector(
    operated_gateway: GatewayProcess,
) -> None:
    """A tenant key is refused with 403; an unknown connector is a 404 problem."""
    base = operated_gateway.base_url
    async with aiohttp.ClientSession() as session:
        status, media_type, body = await _stats(session, base, "simulator", key=API_KEY)
        assert (status, media_type, body["code"]) == (403, "application/problem+json", "forbidden")

        status, media_type, body = await _stats(session, base, "no-such-carrier")
        assert (status, media_type) == (404, "application/problem+json")
        assert body["code"] == "connector_not_found"

        status, _, body = await _stats(session, base, "simulator")
        assert status == 200
        assert body["windows"]["5m"]["delivery_rate"] is None
