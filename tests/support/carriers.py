"""Carrier simulators for end-to-end tests: ``pigeon smsc-sim`` child processes on loopback."""

from __future__ import annotations

import subprocess
import sys

#: The bind credentials every simulator started here accepts.
SYSTEM_ID = "pigeon"
PASSWORD = "s3cret"


def start_smsc_sim(
    port: int, *faults: str, control_port: int | None = None
) -> subprocess.Popen[bytes]:
    """A ``pigeon smsc-sim`` on 127.0.0.1:``port`` sending receipts after 0.1 s, with
    ``faults`` (``--fault`` values such as ``error:0x45``) and, given ``control_port``, its
    control API there (``GET /stats``)."""
    fault_args = [arg for fault in faults for arg in ("--fault", fault)]
    if control_port is not None:
        fault_args += ["--control-port", str(control_port)]
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pigeon", "smsc-sim", "--port", str(port)),
            *("--system-id", SYSTEM_ID, "--password", PASSWORD, "--receipt-delay", "0.1"),
            *fault_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def smpp_options(port: int) -> dict[str, object]:
    """Options of an ``smpp`` connector to the simulator on ``port``."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "window": 20,
        "reconnect_min_delay": 0.1,
    }


def smpp_toml(connector_id: str, port: int) -> str:
    """A ``[[connectors]]`` table for the simulator on ``port``."""
    return (
        f'[[connectors]]\nid = "{connector_id}"\ntype = "smpp"\nhost = "127.0.0.1"\n'
        f'port = {port}\nsystem_id = "{SYSTEM_ID}"\npassword = "{PASSWORD}"\nwindow = 20\n'
        "reconnect_min_delay = 0.1\n\n"
    )
