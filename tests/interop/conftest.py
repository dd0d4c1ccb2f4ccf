"""Fixtures for interop tests: our gateway as a real process for third-party peers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.gateway import GatewayProcess, new_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A started ``pigeon serve`` (SQLite, simulator receipts after 0.2 s) with the demo SMPP
    account (``support.gateway.SMPP_SYSTEM_ID`` / ``SMPP_PASSWORD``)."""
    process = new_gateway(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()
