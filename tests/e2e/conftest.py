"""Fixtures that run ``pigeon serve`` as a real process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.gateway import GatewayProcess, started_gateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A started ``pigeon serve`` on SQLite in a temporary data dir, with a test API key and
    the demo SMPP account (``support.gateway.SMPP_SYSTEM_ID`` / ``SMPP_PASSWORD``)."""
    with started_gateway(tmp_path) as process:
        yield process
