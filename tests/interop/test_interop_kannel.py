"""Kannel 1.4.5 (Debian ``kannel``) binds to our SMPP server as an ESME and gets its receipt.

bearerbox holds the SMPP bind (transceiver, system_id ``demo``); smsbox offers ``sendsms``
over HTTP. Everything listens on 127.0.0.1 only (the admin port, which Kannel 1.4.5 cannot
bind to one interface, refuses every other address). The delivery report comes back to a
small HTTP receiver through Kannel's ``dlr-url``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.gateway import API_KEY, SMPP_PASSWORD, SMPP_SYSTEM_ID, GatewayProcess, free_port

_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
BEARERBOX = shutil.which("bearerbox", path=_PATH)
SMSBOX = shutil.which("smsbox", path=_PATH)

pytestmark = pytest.mark.skipif(
    BEARERBOX is None or SMSBOX is None,
    reason="Kannel is not installed: no bearerbox/smsbox on PATH (apt-get install -y kannel)",
)


@dataclass
class Reports:
    """Delivery reports Kannel posted to our dlr-url, as query parameters."""

    received: list[dict[str, str]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, status: str, seconds: float = 60) -> dict[str, str]:
        """The first report with Kannel's DLR ``status`` (1 delivered, 8 SMSC ack...)."""
        deadline = time.monotonic() + seconds
        with self.arrived:
            while True:
                for report in self.received:
                    if report.get("status") == status:
                        return report
                left = deadline - time.monotonic()
                assert left > 0, f"no DLR with status {status}; got {self.received}"
                self.arrived.wait(left)


@dataclass
class Kannel:
    """A running bearerbox + smsbox bound to our gateway, and where to reach them."""

    sendsms_url: str
    admin_url: str
    reports: Reports
    dlr_url: str
    logs: Path

    def status(self) -> str:
        with urllib.request.urlopen(
            f"{self.admin_url}/status.txt?password=secret", timeout=5
        ) as response:
            return str(response.read().decode())

    def send(self, to: str, text: str) -> str:
        query = urllib.parse.urlencode(
            {
                "username": "tester",
                "password": "foobar",
                "from": "Pigeon",
                "to": to,
                "text": text,
                "dlr-mask": "31",
                "dlr-url": self.dlr_url,
            }
        )
        with urllib.request.urlopen(f"{self.sendsms_url}?{query}", timeout=10) as response:
            return str(response.read().decode())


def _config(gateway: GatewayProcess, admin: int, box: int, sendsms: int, logs: Path) -> str:
    return f"""
group = core
admin-port = {admin}
admin-password = secret
admin-deny-ip = "*.*.*.*"
admin-allow-ip = "127.0.0.1"
smsbox-port = {box}
smsbox-interface = 127.0.0.1
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "{logs / "bearerbox.log"}"
log-level = 1
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = pigeon
host = 127.0.0.1
port = {gateway.smpp_port}
transceiver-mode = true
smsc-username = {SMPP_SYSTEM_ID}
smsc-password = {SMPP_PASSWORD}
system-type = ""
enquire-link-interval = 30
max-pending-submits = 10

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {box}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{logs / "smsbox.log"}"
log-level = 1

group = sendsms-user
username = tester
password = foobar

group = sms-service
keyword = default
text = "No service here"
omit-empty = true
"""


def _receiver(reports: Reports) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.urlsplit(self.path).query
            with reports.arrived:
                reports.received.append(dict(urllib.parse.parse_qsl(query)))
                reports.arrived.notify_all()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def kannel(gateway: GatewayProcess, tmp_path: Path) -> Iterator[Kannel]:
    """bearerbox and smsbox with our own config, bound to the gateway (never the service)."""
    assert BEARERBOX is not None
    assert SMSBOX is not None
    admin, box, sendsms = free_port(), free_port(), free_port()
    config = tmp_path / "kannel.conf"
    config.write_text(_config(gateway, admin, box, sendsms, tmp_path))
    reports = Reports()
    receiver = _receiver(reports)
    serving = threading.Thread(target=receiver.serve_forever, daemon=True)
    serving.start()
    port = receiver.server_address[1]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for binary in (BEARERBOX, SMSBOX):
            with (tmp_path / f"{Path(binary).name}.out").open("wb") as out:
                processes.append(
                    subprocess.Popen([binary, str(config)], stdout=out, stderr=subprocess.STDOUT)
                )
            if binary == BEARERBOX:  # smsbox connects to bearerbox once, at start
                _wait_listening(box, processes[0])
        yield Kannel(
            sendsms_url=f"http://127.0.0.1:{sendsms}/cgi-bin/sendsms",
            admin_url=f"http://127.0.0.1:{admin}",
            reports=reports,
            dlr_url=f"http://127.0.0.1:{port}/dlr?status=%d&id=%F&answer=%A",
            logs=tmp_path,
        )
    finally:
        for process in reversed(processes):
            _stop(process)
        receiver.shutdown()
        receiver.server_close()


def _wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Return once ``process`` accepts TCP connections on ``port`` (or fail naming why)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"bearerbox exited with {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"bearerbox did not listen on port {port} within {seconds} s")


def _wait_online(kannel: Kannel, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if "online" in kannel.status().split("SMSC connections:", 1)[-1]:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"Kannel did not bind:\n{(kannel.logs / 'bearerbox.log').read_text()}")


def _send(kannel: Kannel, to: str, text: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return kannel.send(to, text)
        except OSError:  # smsbox not connected to bearerbox yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_kannel_binds_sends_and_gets_its_delivery_report(
    gateway: GatewayProcess, kannel: Kannel
) -> None:
    """Kannel binds, its sendsms is delivered, and its DLR callback reports our message id."""
    _wait_online(kannel)

    answer = _send(kannel, "+14155550100", "Hello from Kannel")
    report = kannel.reports.wait_for("1")

    assert answer.startswith("0: Accepted")
    message_id = report["id"]
    assert message_id.startswith("msg_")
    assert report["answer"].startswith(f"id:{message_id} sub:001 dlvrd:001")
    assert "stat:DELIVRD" in report["answer"]
    request = urllib.request.Request(
        f"{gateway.base_url}/v1/messages/{message_id}",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        message = json.loads(response.read())
    assert (message["to"], message["body"], message["status"]) == (
        "+14155550100",
        "Hello from Kannel",
        "delivered",
    )
