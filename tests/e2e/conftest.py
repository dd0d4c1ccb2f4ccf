"""Fixtures that run ``pigeon serve`` as a real process on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.gateway import API_KEY, GatewayProcess, free_port


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A started ``pigeon serve`` on SQLite in a temporary data dir, with a test API key."""
    data_dir = tmp_path / "pigeon-data"
    port = free_port()
    env = {
        **os.environ,
        "PIGEON_DATA_DIR": str(data_dir),
        "PIGEON_HTTP_PORT": str(port),
        "PIGEON_SMPP_PORT": str(free_port()),
        "PIGEON_BOOTSTRAP_API_KEY": API_KEY,
        "PIGEON_SIMULATOR_RECEIPT_DELAY": "0.2",
        "PIGEON_LOG_LEVEL": "WARNING",
    }
    env.pop("PIGEON_DATABASE_URL", None)
    env.pop("PIGEON_CONFIG", None)
    process = GatewayProcess(data_dir, env, port, tmp_path / "serve.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
