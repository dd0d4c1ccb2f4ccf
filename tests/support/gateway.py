"""Run ``pigeon serve`` as a real child process on loopback."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

API_KEY = "pk_test_e2e_0123456789abcdefghijklmnop"
LIVE_KEY = "pk_live_e2e_0123456789abcdefghijklmnop"
#: The demo tenant's SMPP account: system_id ``demo`` and this password.
SMPP_SYSTEM_ID = "demo"
SMPP_PASSWORD = "e2e-pass"


def _ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections and to binds on port 0."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(int(low), int(high) + 1)


def free_port() -> int:
    """An unused TCP port on 127.0.0.1, for a child process to bind later.

    Chosen below the kernel's ephemeral range where there is room: a port from that range,
    free now, could be taken by any outgoing connection (or a bind on port 0) before the child
    binds it; one below it is only ever taken by a bind to that very port."""
    ephemeral = _ephemeral_ports()
    low, high = (20000, ephemeral.start) if ephemeral.start > 21000 else (1024, 0)
    for _ in range(100):
        with socket.socket() as sock:
            port = random.randrange(low, high) if high else 0
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


@dataclass
class GatewayProcess:
    """A ``pigeon serve`` child process and how to reach it."""

    data_dir: Path
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def smpp_port(self) -> int:
        """The customer SMPP server's port."""
        return int(self.env["PIGEON_SMPP_PORT"])

    def start(self) -> None:
        """Start the process and wait until /readyz answers 200."""
        self.starts += 1
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pigeon", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir.parent,
        )
        log.close()
        deadline = time.monotonic() + 60
        import urllib.request

        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pigeon serve exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pigeon serve did not become ready:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the process: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the process and wait for a clean exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def output(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")


def new_gateway(tmp_path: Path, **settings: str) -> GatewayProcess:
    """A ``pigeon serve`` (not started) on SQLite in ``tmp_path``, on free ports, with the test
    API key and the demo SMPP password; ``settings`` are extra ``PIGEON_*`` variables."""
    data_dir = tmp_path / "pigeon-data"
    port = free_port()
    env = {
        **os.environ,
        "PIGEON_DATA_DIR": str(data_dir),
        "PIGEON_HTTP_PORT": str(port),
        "PIGEON_SMPP_PORT": str(free_port()),
        "PIGEON_BOOTSTRAP_API_KEY": API_KEY,
        "PIGEON_BOOTSTRAP_SMPP_PASSWORD": SMPP_PASSWORD,
        "PIGEON_SIMULATOR_RECEIPT_DELAY": "0.2",
        "PIGEON_LOG_LEVEL": "WARNING",
        **settings,
    }
    env.pop("PIGEON_DATABASE_URL", None)
    env.pop("PIGEON_CONFIG", None)
    return GatewayProcess(data_dir, env, port, tmp_path / "serve.log")


@contextmanager
def started_gateway(tmp_path: Path, **settings: str) -> Iterator[GatewayProcess]:
    """``new_gateway(tmp_path, **settings)`` started, and stopped on the way out."""
    process = new_gateway(tmp_path, **settings)
    process.start()
    try:
        yield process
    finally:
        process.stop()
