"""The HTTP plumbing of ``POST /v1/messages`` alone: server CPU per request of the direct path
(``pigeon.api.http_protocol`` writing ``FastAccept.answer``) against the ASGI path.

    .venv/bin/python bench/accept_plumbing.py [--rounds 4] [--seconds 6]

Each round starts ``pigeon serve``'s HTTP stack (uvicorn with ``CoalescingHttpToolsProtocol``
and the ``PigeonApp``) twice in a child process, once with the direct path and once with it
turned off (the same requests then go through uvicorn's ASGI cycle to ``FastAccept.__call__``),
and drives each with ``wrk`` (``apt-get install wrk``): 32 keep-alive connections posting a
send for ``--seconds`` after 2 s of warm-up. The answer is a constant worked out by a stand-in
``FastAccept`` that reads the body and does nothing else, so what differs is only the
plumbing: parsing, the cycle, the events, the writes. Printed: the server's CPU (user +
system, from ``/proc``) per request of each path, round by round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port

#: The child: serves the stand-in on ``argv[2]``; ``argv[1]`` is ``direct`` or ``asgi``.
SERVER = """
import sys
from functools import partial
from unittest.mock import MagicMock

import uvicorn
import uvloop

import pigeon.api.http_protocol as http_protocol
from pigeon.api.app import create_app
from pigeon.api.fast_accept import FastAccept, FastAnswer, _asgi_chunk

BODY = b'{"id":"msg_01JD0000000000000000000000","status":"queued"}'
HEADERS = [
    (b"location", b"/v1/messages/msg_01JD0000000000000000000000"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]


class Constant(FastAccept):
    async def answer(self, headers, next_chunk):
        more = True
        while more:
            _, more = await next_chunk()
        return FastAnswer(202, HEADERS, BODY)

    async def __call__(self, scope, receive, send):
        answer = await self.answer(scope["headers"], partial(_asgi_chunk, receive))
        await send({"type": "http.response.start", "status": 202, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})


mode, port = sys.argv[1], int(sys.argv[2])
app = create_app(MagicMock())
app.fast_accept = Constant(MagicMock(), max_body_bytes=1 << 20)
if mode == "asgi":
    http_protocol._fast_accept_of = lambda app: None
config = uvicorn.Config(
    app,
    host="127.0.0.1",
    port=port,
    http=http_protocol.CoalescingHttpToolsProtocol,
    lifespan="off",
    log_level="warning",
    access_log=False,
)
uvloop.run(uvicorn.Server(config).serve())
"""

SCRIPT = """
wrk.method = "POST"
wrk.body = '{"to": "+14155550100", "body": "Your verification code is 123456"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer pk_live_plumbing"
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, seconds: float) -> int:
    """Requests ``wrk`` completed against ``url`` in ``seconds``."""
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if "requests in" in line)
    return int(line.split()[0])


def one(mode: str, script: Path, seconds: float) -> tuple[float, int]:
    """(server CPU microseconds per request, requests) of one run of ``mode``."""
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", SERVER, mode, str(port)])
    try:
        url = f"http://127.0.0.1:{port}/v1/messages"
        deadline = time.monotonic() + 30
        while True:
            try:
                wrk(url, script, 2)  # warm-up, and the proof that it serves
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        before = cpu_seconds(child.pid)
        requests = wrk(url, script, seconds)
        spent = cpu_seconds(child.pid) - before
    finally:
        child.terminate()
        child.wait(timeout=30)
    return spent * 1e6 / requests, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    found: dict[str, list[float]] = {"asgi": [], "direct": []}
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "post.lua"
        script.write_text(SCRIPT)
        for round_ in range(args.rounds):
            for mode in found:
                micros, requests = one(mode, script, args.seconds)
                found[mode].append(micros)
                print(f"round {round_ + 1} {mode}: {micros:.2f} us CPU per request ({requests:,})")
    for mode, values in found.items():
        print(f"{mode}: median {statistics.median(values):.2f} us CPU per request")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
