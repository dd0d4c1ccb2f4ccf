"""``pigeon serve`` stopping: its SMPP customers are unbound, not cut off."""

from __future__ import annotations

import asyncio

from support.esme import Esme
from support.gateway import SMPP_PASSWORD, SMPP_SYSTEM_ID, GatewayProcess


async def test_sigterm_unbinds_bound_customers_and_exits_cleanly(gateway: GatewayProcess) -> None:
    """On SIGTERM a bound ESME receives unbind, its connection closes, and serve exits 0."""
    esme = await Esme.open(gateway.smpp_port)
    assert (await esme.bind(SMPP_SYSTEM_ID, SMPP_PASSWORD)).command_status == 0

    await asyncio.to_thread(gateway.stop)

    assert esme.unbound_by_server.is_set()
    await asyncio.wait_for(esme.closed.wait(), 10)
    await esme.close()
    assert gateway.process is not None
    assert gateway.process.returncode == 0
