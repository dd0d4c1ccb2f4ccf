"""Pigeon side by side with Kannel 1.4.5: accept rate, submit_sm/s and receipt callbacks/s.

One run measures both gateways on this machine, one after the other, under the same load, and
prints one Markdown table with the ratio Pigeon/Kannel of each figure::

    .venv/bin/python bench/kannel_side_by_side.py [--messages 5000] [--concurrency 64]

Each gateway gets its own ``pigeon smsc-sim`` process as the carrier, with the same flags
(hex ids, every receipt DELIVRD after ``--receipt-delay``, window 100) and an HTTP control port
whose ``GET /stats`` gives the submit_sm count; ``--carrier-latency`` makes each sim answer
every submit_sm that many seconds late, as a distant carrier. Everything listens on 127.0.0.1.
The callback receiver answers at once, or after ``--receiver-latency`` seconds, as one that
does some work.

Other traffic than the uniform one: ``--parts N`` sends long texts of N segments (Kannel with
``max-messages N``; it calls the dlr-url once a message, as Pigeon sends one webhook);
``--unicode`` sends Cyrillic texts (UCS-2; Kannel told ``coding=2``); ``--undelivered P``
makes P% of the receipts UNDELIV, and both gateways then call back for either outcome
(Kannel's ``dlr-mask`` 3, Pigeon's endpoint on ``message.undelivered`` too); ``--throughput
N`` caps both gateways' submits to the carrier at N per second (Kannel's smsc
``throughput``, Pigeon's connector ``throughput_per_second``); ``--close-connections`` opens
a connection for each request, as clients without keep-alive do. ``--mix realistic`` sends
all of these at once, as a gateway that carries OTPs, alerts and campaigns sees them
(:data:`REALISTIC_MIX`): texts of one to three segments, a fifth of them Cyrillic, to numbers
of every region, 5% of receipts UNDELIV (unless ``--undelivered`` says otherwise).

Kannel: ``bearerbox`` + ``smsbox`` with a config written to a temporary directory (logs there
too): one SMPP transceiver to its sim, ``max-pending-submits 100``, ``msg-id-type 0x03``
(hex in submit_sm_resp and receipts), in-memory DLR storage, no message store unless
``--kannel-store file``. Load: ``GET /cgi-bin/sendsms`` with ``dlr-mask=1`` (final success
only) and a ``dlr-url`` pointing at a receiver in this process that counts callbacks.

Durability (ADR 44): by default the two gateways promise different things. Kannel keeps no
message store (a crash of bearerbox loses what it queued) and Pigeon syncs every accept to disk
before its 202 (it survives a power cut). ``--matched-durability`` runs both at the one level
they share: Kannel with its message store (``store-type = file``, which bearerbox writes and
never syncs) and Pigeon with ``synchronous_commit = false`` (its commits reach the operating
system, not the disk): each survives a crash of its own processes, neither a crash of the
machine.

Pigeon: ``python -m pigeon serve`` on SQLite in a temporary data dir (or ``--database-url``,
an empty database), a live bootstrap key, a
``pigeon.toml`` with one ``[[connectors]]`` SMPP table to its sim (``--pigeon-binds`` x window
100; default one bind, like Kannel's one transceiver with 100 pending submits) and a webhook
endpoint for ``message.delivered`` registered with ``POST /v1/webhook-endpoints``, pointing at
the same kind of receiver. Load: ``POST /v1/messages``.

The Python floor (``--floor``, ADR 24): ``bench/python_floor.py`` as a third phase after
Pigeon, with its own sim and the same receiver and load: Pigeon's stack without Pigeon, in
rungs (``memory``: no store; ``store``: a durable row per message; ``rows``: Pigeon's rows;
``claims``: and the work handed on by leased jobs; ``features``: and Pigeon's per-message work,
done plainly; ``split``: that in two processes, as Pigeon's ``serve`` and worker;
``split-wake``: and the accepting one wakes the delivering one over UDP, as Pigeon's do).

The load generator is the same for all: a separate process with ``--concurrency`` aiohttp
keep-alive clients sending ``--messages`` requests in total, one at a time each. A phase is
timed from the first request to the last event observed (sim counters are polled every 50 ms);
each wait is bounded by ``--timeout``. Every process started here is stopped on the way out.
``bench/suite.py`` (``make bench``) runs the two phases as its scenario c through
:func:`side_by_side`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import queue as queues
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from harness import (
    KEY,
    SIM_PASSWORD,
    SIM_USER,
    SOURCE,
    Processes,
    Receiver,
    Sim,
    child_env,
    cpu_seconds,
    free_port,
    gateway_pids,
    http_json,
    http_ok,
    percentiles,
    postgres_backends,
    postgres_jobs_left,
    quiet_collector,
    rss_mb,
    start_pigeon,
)
from number_classification import numbers_of

TEXT = "Your verification code is 123456"
KANNEL_USER, KANNEL_PASSWORD = "bench", "benchpw"
_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
TICK = 0.05


def kannel_binaries() -> tuple[str | None, str | None]:
    """Where ``bearerbox`` and ``smsbox`` are (``None`` when not installed)."""
    return shutil.which("bearerbox", path=_PATH), shutil.which("smsbox", path=_PATH)


def server_pid(pid: int, profiled: bool) -> int:
    """The gateway's pid: under py-spy, py-spy's child."""
    if not profiled:
        return pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


# -- load generator (its own process) ------------------------------------------------------


#: The ``--unicode`` text: Cyrillic, which GSM-7 cannot carry (UCS-2, 70 characters a part).
UNICODE_TEXT = "Ваш код подтверждения 123456"


#: ``--mix realistic``: (segments, Cyrillic, weight in 20) of the texts sent. A guess at a
#: gateway's mix, not a measurement of one: mostly one-segment GSM-7 texts (verification
#: codes, alerts), some of them in another script, and longer notices and campaigns. Their
#: mean is 1.3 segments a message.
REALISTIC_MIX: tuple[tuple[int, bool, int], ...] = (
    (1, False, 12),
    (1, True, 3),
    (2, False, 3),
    (3, False, 1),
    (2, True, 1),
)
#: ``--mix realistic``'s share of UNDELIV receipts (per cent), unless ``--undelivered`` is given.
REALISTIC_UNDELIVERED = 5.0
#: The numbers a run sends to, at most (each send takes the next, round and round).
RECIPIENTS = 10_000


@dataclass(frozen=True)
class Traffic:
    """What the load generator sends: request ``i`` carries ``texts[i % len(texts)]`` (a text
    and its segments) to ``recipients[i % len(recipients)]``."""

    texts: tuple[tuple[str, int], ...]
    recipients: tuple[str, ...]

    @property
    def most_parts(self) -> int:
        """The segments of the longest text (Kannel's ``max-messages``)."""
        return max(parts for _, parts in self.texts)

    def parts(self, index: int) -> int:
        """The segments of request ``index``."""
        return self.texts[index % len(self.texts)][1]


def traffic_of(args: argparse.Namespace) -> Traffic:
    """The run's traffic: ``--mix realistic``'s, else ``--parts`` segments of one text
    (Cyrillic with ``--unicode``) to scenario c's 10,000 numbers (``+1415555`` and four digits)."""
    if getattr(args, "mix", "uniform") == "realistic":
        slots = [
            (message_text(parts, unicode), parts)
            for parts, unicode, weight in REALISTIC_MIX
            for _ in range(weight)
        ]
        random.Random(5).shuffle(slots)  # the kinds interleaved, the same order every run
        return Traffic(tuple(slots), tuple(numbers_of("every region", RECIPIENTS)))
    parts = max(1, int(getattr(args, "parts", 1)))
    text = message_text(parts, bool(getattr(args, "unicode", False)))
    return Traffic(((text, parts),), tuple(numbers_of("one country", RECIPIENTS)))


def message_text(parts: int, unicode: bool = False) -> str:
    """A text of ``parts`` segments: :data:`TEXT` (or :data:`UNICODE_TEXT`) for one, else as
    many characters as a concatenated segment holds beside its UDH (153 in GSM-7, 67 in
    UCS-2) a part, less a few in the last."""
    if parts <= 1:
        return UNICODE_TEXT if unicode else TEXT
    if unicode:
        # Cyrillic on purpose (a text GSM-7 cannot carry), look-alike letters and all.
        filler = "Ваша посылка 12345 в пути и прибудет завтра с 9 до 12. "  # noqa: RUF001
        room, last = 67, 50
    else:
        filler, room, last = (
            "Your parcel 12345 is on its way and arrives tomorrow between 9 and 12. ",
            153,
            120,
        )
    length = room * (parts - 1) + last
    return (filler * (length // len(filler) + 1))[:length]


def _load(
    kind: str,
    url: str,
    messages: int,
    concurrency: int,
    extra: str,
    out: Any,
    traffic: Traffic | None = None,
    mask: str = "1",
    close: bool = False,
) -> None:
    """Send ``messages`` requests of ``traffic`` (by default scenario c's: :data:`TEXT` to
    its 10,000 numbers) from ``concurrency`` keep-alive clients (``close``: a new connection
    for each request); report back, with the segments of the accepted ones."""
    if traffic is None:
        traffic = traffic_of(argparse.Namespace())
    shared = {"sent": 0, "accepted": 0, "errors": 0, "last": 0.0, "segments": 0}
    # Kannel sends a text it is told is UTF-8 as UCS-2 (coding 2); Pigeon finds that itself.
    codings = [
        {} if text.isascii() else {"coding": "2", "charset": "UTF-8"} for text, _ in traffic.texts
    ]
    recipients = traffic.recipients
    latencies: list[float] = []

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1, force_close=close)
        async with aiohttp.ClientSession(connector=connector) as session:
            while shared["sent"] < messages:
                index = shared["sent"]
                shared["sent"] += 1
                to = recipients[index % len(recipients)]
                slot = index % len(codings)
                text, parts = traffic.texts[slot]
                try:
                    if kind == "kannel":
                        query = urllib.parse.urlencode(
                            {
                                "username": KANNEL_USER,
                                "password": KANNEL_PASSWORD,
                                "from": "Pigeon",
                                "to": to,
                                "text": text,
                                "dlr-mask": mask,
                                "dlr-url": extra,
                                **codings[slot],
                            }
                        )
                        request = session.get(f"{url}?{query}")
                    else:
                        request = session.post(
                            url,
                            json={"to": to, "body": text},
                            headers={"Authorization": f"Bearer {KEY}"},
                        )
                    sent = time.perf_counter()
                    async with request as reply:
                        await reply.read()
                        ok = reply.status in (200, 202)
                    if ok:
                        latencies.append(time.perf_counter() - sent)
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    shared["accepted"] += 1
                    shared["segments"] += parts
                    shared["last"] = time.monotonic()
                else:
                    shared["errors"] += 1

    async def main() -> float:
        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return started

    quiet_collector()
    started = asyncio.run(main())
    out.put(
        (
            *(started, shared["last"], shared["accepted"], shared["errors"], latencies),
            shared["segments"],
        )
    )


@dataclass
class Phase:
    name: str
    accepted: int = 0
    errors: int = 0
    accept_rate: float = 0.0
    submits: int = 0
    submit_rate: float = 0.0
    callbacks: int = 0
    callback_rate: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)


async def measure(
    name: str,
    kind: str,
    url: str,
    extra: str,
    sim: Sim,
    receiver: Receiver,
    args: argparse.Namespace,
    pids: dict[str, int],
    backends: Callable[[], list[int]] | None = None,
    later: Callable[[], dict[str, int]] | None = None,
) -> Phase:
    """Drive one gateway and watch its sim and callbacks until everything arrived.

    ``later``: the gateway's processes by label, asked again at the end; one that was not
    among ``pids`` started during the phase (a WAL sync process starts with its writer's
    first commit), and all its CPU counts.

    ``backends``: the database server's processes that work for the gateway (PostgreSQL's
    backends of its database), asked at the start and at the end; their CPU in the phase
    counts as the gateway's ("pigeon: postgresql backends").

    ``--parts`` N: each message is N submit_sm at the sim and one callback (Kannel 1.4.5 calls
    the dlr-url once for a message it split, as Pigeon sends one webhook); the submit rate
    counts messages (submit_sm over the segments a message has on average)."""
    traffic = traffic_of(args)
    base = (await asyncio.to_thread(sim.stats))["submits_received"]
    receiver.count, receiver.last = 0, 0.0
    pids = {**pids, "receiver (this process)": os.getpid()}
    cpu0 = {label: cpu_seconds(pid) for label, pid in pids.items()}
    server0 = {pid: cpu_seconds(pid) for pid in backends()} if backends else {}
    queue: Any = multiprocessing.Queue()
    loader = multiprocessing.Process(
        target=_load,
        args=(
            *(kind, url, args.messages, args.concurrency, extra, queue, traffic),
            dlr_mask(args),
            bool(getattr(args, "close_connections", False)),
        ),
    )
    loader.start()
    pids = {**pids, "load generator": loader.pid or 0}
    cpu0["load generator"] = 0.0
    phase = Phase(name)
    submits, submit_last, result = 0, 0.0, None
    deadline = time.monotonic() + args.timeout
    seen = (0, 0)
    progress = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if result is None:
                cpu_loader = cpu_seconds(loader.pid or 0)
                try:
                    result = queue.get_nowait()
                    pids.pop("load generator")
                    phase.cpu["load generator"] = cpu_loader
                except queues.Empty:  # still sending
                    result = None
            now_submits = (await asyncio.to_thread(sim.stats))["submits_received"] - base
            now = time.monotonic()
            if now_submits != submits:
                submits, submit_last = now_submits, now
            if (submits, receiver.count) != seen:
                seen, progress = (submits, receiver.count), now
            if result is not None:
                accepted, segments = result[2], result[5]
                if submits >= segments and receiver.count >= accepted:
                    break
                if now - progress > args.stall:
                    print(f"  {name}: no progress for {args.stall:.0f} s, stopping the wait")
                    break
            await asyncio.sleep(TICK)
    finally:
        if loader.is_alive():
            loader.terminate()
        loader.join(timeout=10)
    if result is None:
        raise RuntimeError(f"{name}: the load generator did not finish in {args.timeout} s")
    started, accept_last, phase.accepted, phase.errors, latencies, segments = result
    parts = segments / max(phase.accepted, 1)  # a message's segments, on average
    phase.p50_ms, phase.p99_ms = percentiles(latencies)
    if not phase.accepted:
        raise RuntimeError(f"{name}: no request was accepted ({phase.errors} errors)")
    phase.accept_rate = phase.accepted / max(accept_last - started, 1e-9)
    phase.submits = round(submits / parts) if parts else 0
    phase.submit_rate = submits / parts / max(submit_last - started, 1e-9)
    phase.callbacks = receiver.count
    phase.callback_rate = receiver.count / max(receiver.last - started, 1e-9)
    phase.wall = max(accept_last, submit_last, receiver.last) - started
    for label, pid in pids.items():
        phase.cpu[label] = cpu_seconds(pid) - cpu0[label]
        if label not in ("load generator", "receiver (this process)"):
            phase.rss_mb[label] = rss_mb(pid)
    for label, pid in (later() if later is not None else {}).items():
        if label not in phase.cpu:
            phase.cpu[label] = cpu_seconds(pid)
            phase.rss_mb[label] = rss_mb(pid)
    if backends is not None:
        # A backend that came and went within the phase is missed: the pools keep theirs.
        phase.cpu[SERVER_LABEL] = sum(
            max(0.0, cpu_seconds(pid) - server0.get(pid, 0.0)) for pid in backends()
        )
    return phase


#: The PostgreSQL server's CPU for the gateway (counted as the gateway's: "pigeon" prefix).
SERVER_LABEL = "pigeon: postgresql backends"


# -- Kannel -----------------------------------------------------------------------------------


def kannel_config(
    tmp: Path,
    sim: Sim,
    ports: dict[str, int],
    store: str,
    max_messages: int = 1,
    throughput: int = 0,
) -> str:
    throughput_line = f"throughput = {throughput}\n" if throughput else ""
    store_lines = (
        f'store-type = file\nstore-location = "{tmp / "kannel.store"}"\n' if store == "file" else ""
    )
    return f"""
group = core
admin-port = {ports["admin"]}
admin-password = benchadmin
admin-deny-ip = "*.*.*.*"
admin-allow-ip = "127.0.0.1"
smsbox-port = {ports["box"]}
smsbox-interface = 127.0.0.1
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "{tmp / "bearerbox.log"}"
log-level = 2
dlr-storage = internal
{store_lines}
group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {sim.port}
transceiver-mode = true
smsc-username = {SIM_USER}
smsc-password = {SIM_PASSWORD}
system-type = ""
enquire-link-interval = 30
max-pending-submits = 100
msg-id-type = 0x03
{throughput_line}
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports["box"]}
sendsms-port = {ports["sendsms"]}
sendsms-interface = 127.0.0.1
log-file = "{tmp / "smsbox.log"}"
log-level = 2

group = sendsms-user
username = {KANNEL_USER}
password = {KANNEL_PASSWORD}
max-messages = {max_messages}

group = sms-service
keyword = default
text = "No service here"
omit-empty = true
"""


async def run_kannel(
    processes: Processes, tmp: Path, args: argparse.Namespace, receiver: Receiver
) -> Phase:
    bearerbox_path, smsbox_path = kannel_binaries()
    if bearerbox_path is None or smsbox_path is None:
        raise RuntimeError("Kannel is not installed (apt-get install -y kannel)")
    sim = Sim(processes, tmp, "kannel-sim", args.receipt_delay, extra=sim_flags(args))
    await asyncio.to_thread(sim.wait_ready)
    ports = {"admin": free_port(), "box": free_port(), "sendsms": free_port()}
    config = tmp / "kannel.conf"
    parts = traffic_of(args).most_parts
    throughput = int(getattr(args, "throughput", 0))
    config.write_text(kannel_config(tmp, sim, ports, kannel_store(args), parts, throughput))
    bearerbox = processes.start(
        "bearerbox", [bearerbox_path, "-v", "2", str(config)], tmp / "bearerbox.out"
    )
    await asyncio.sleep(0.5)  # smsbox connects to bearerbox, which must be listening
    smsbox = processes.start("smsbox", [smsbox_path, "-v", "2", str(config)], tmp / "smsbox.out")
    sendsms = f"http://127.0.0.1:{ports['sendsms']}/cgi-bin/sendsms"
    dlr_url = f"http://127.0.0.1:{receiver.port}/dlr?status=%d"
    # Ready: the sim sees the bind and one message goes all the way to its DLR.
    deadline = time.monotonic() + 60
    query = urllib.parse.urlencode(
        {
            "username": KANNEL_USER,
            "password": KANNEL_PASSWORD,
            "from": "Pigeon",
            "to": "+14155550100",
            "text": "warm-up",
            "dlr-mask": dlr_mask(args),
            "dlr-url": dlr_url,
        }
    )
    receiver.arrived.clear()
    while True:
        try:
            binds = await asyncio.to_thread(sim.open_binds)
        except OSError:
            binds = 0
        if binds >= 1 and await asyncio.to_thread(http_ok, f"{sendsms}?{query}"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kannel did not get ready; see {tmp}")
        await asyncio.sleep(0.2)
    await receiver.first(60)
    pids = {"bearerbox": bearerbox.pid, "smsbox": smsbox.pid, "smsc-sim": sim.process.pid}
    return await measure("Kannel 1.4.5", "kannel", sendsms, dlr_url, sim, receiver, args, pids)


# -- Pigeon -----------------------------------------------------------------------------------


async def run_pigeon(
    processes: Processes, tmp: Path, args: argparse.Namespace, receiver: Receiver
) -> Phase:
    sim = Sim(processes, tmp, "pigeon-sim", args.receipt_delay, extra=sim_flags(args))
    await asyncio.to_thread(sim.wait_ready)
    pigeon = await start_pigeon(
        processes,
        tmp,
        sim,
        database_url=getattr(args, "database_url", None),
        binds=args.pigeon_binds,
        worker_processes=getattr(args, "pigeon_workers", 0),
        profile=args.profile,
        python=getattr(args, "pigeon_python", None),
        extra_env=pigeon_durability_env(args),
        throughput=int(getattr(args, "throughput", 0)),
    )
    server, base = pigeon.process, pigeon.base
    auth = {"Authorization": f"Bearer {KEY}"}
    await asyncio.to_thread(
        http_json,
        f"{base}/v1/webhook-endpoints",
        {"url": f"http://127.0.0.1:{receiver.port}/hook", "events": webhook_events(args)},
        auth,
    )
    # Warm-up: one message all the way to its webhook.
    receiver.arrived.clear()
    await asyncio.to_thread(
        http_json, f"{base}/v1/messages", {"to": "+14155550100", "body": "warm-up"}, auth
    )
    try:
        await receiver.first(60)
    except TimeoutError:
        log = (tmp / "pigeon.out").read_text(errors="replace")[-2000:]
        stats = await asyncio.to_thread(sim.stats)
        raise RuntimeError(
            f"the warm-up message got no webhook in 60 s (sim: {stats['submits_received']} "
            f"submits, {stats['receipts_sent']} receipts); pigeon serve said:\n{log}"
        ) from None
    pid = await asyncio.to_thread(server_pid, server.pid, bool(args.profile))
    if pid != server.pid:
        processes.inner.append(pid)
    pids = {**gateway_pids(pid), "smsc-sim": sim.process.pid}  # workers, WAL sync processes
    database_url = getattr(args, "database_url", None)
    backends = (
        (lambda: postgres_backends(database_url))
        if database_url and database_url.startswith("postgresql")
        else None
    )
    phase = await measure(
        "Pigeon",
        "pigeon",
        f"{base}/v1/messages",
        "",
        sim,
        receiver,
        args,
        pids,
        backends,
        lambda: gateway_pids(pid),
    )
    if processes.inner:  # stop the server so that py-spy writes its file
        os.kill(processes.inner.pop(), signal.SIGTERM)
        await asyncio.to_thread(server.wait, 60)
        print(f"profile written to {args.profile}")
    return phase


# -- the Python floor (bench/python_floor.py) -------------------------------------------------


async def run_floor(
    processes: Processes, tmp: Path, args: argparse.Namespace, receiver: Receiver
) -> Phase:
    """The same load through ``bench/python_floor.py``: Pigeon's stack without a gateway."""
    sim = Sim(processes, tmp, "floor-sim", args.receipt_delay, extra=sim_flags(args))
    await asyncio.to_thread(sim.wait_ready)
    port = free_port()
    argv = [
        *(sys.executable, str(Path(__file__).with_name("python_floor.py"))),
        *("--port", str(port), "--sim-port", str(sim.port), "--key", KEY),
        *("--sim-user", SIM_USER, "--sim-password", SIM_PASSWORD),
        *("--webhook-url", f"http://127.0.0.1:{receiver.port}/hook"),
        *(("--store", str(tmp / "floor.db")) if args.floor != "memory" else ()),
        *(("--full-store",) if args.floor in ("rows", "claims", "features", *SPLIT) else ()),
        *(("--claims",) if args.floor in ("claims", "features", *SPLIT) else ()),
        *(("--features",) if args.floor in ("features", *SPLIT) else ()),
    ]
    split = args.floor in SPLIT  # two processes, as Pigeon's serve and worker
    if args.floor == "split-wake":  # ... that wake each other as Pigeon's do
        argv += ["--wake-port", str(free_udp_port())]
    relay = processes.start(
        "python-floor",
        [*argv, *(("--role", "accept") if split else ())],
        tmp / "floor.out",
        env=child_env(),
    )
    url = f"http://127.0.0.1:{port}/v1/messages"
    receiver.arrived.clear()
    deadline = time.monotonic() + 60
    while True:
        try:
            await asyncio.to_thread(
                http_json,
                url,
                {"to": "+14155550100", "body": "warm-up"},
                {"Authorization": f"Bearer {KEY}"},
            )
            break
        except OSError:
            if time.monotonic() > deadline or relay.poll() is not None:
                raise RuntimeError(
                    f"the floor relay did not start; see {tmp / 'floor.out'}"
                ) from None
            await asyncio.sleep(0.2)
    pids = {"python floor": relay.pid, "smsc-sim": sim.process.pid}
    if split:  # the delivering process, once the accepting one has made the database
        deliver = processes.start(
            "python-floor-deliver",
            [*argv, "--role", "deliver"],
            tmp / "floor-deliver.out",
            env=child_env(),
        )
        pids = {"python floor accept": relay.pid, "python floor deliver": deliver.pid}
        pids["smsc-sim"] = sim.process.pid
    await receiver.first(60)
    name = {
        "memory": "Python floor (no store)",
        "store": "Python floor (SQLite, a message row)",
        "rows": "Python floor (SQLite, Pigeon's rows)",
        "claims": "Python floor (SQLite, Pigeon's rows, claimed jobs)",
        "features": "Python floor (SQLite, Pigeon's rows and per-message work)",
        "split": "Python floor (SQLite, Pigeon's rows and per-message work, two processes)",
        "split-wake": "Python floor (SQLite, Pigeon's rows and per-message work, two processes "
        "woken over UDP)",
    }[args.floor]
    return await measure(name, "pigeon", url, "", sim, receiver, args, pids)


#: ``--floor`` rungs that run the floor as two processes (``split-wake``: the accepting one
#: wakes the delivering one with a UDP datagram after each commit, as Pigeon's processes do,
#: instead of leaving the jobs to its 2 ms poll).
SPLIT = ("split", "split-wake")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nobody uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- report -----------------------------------------------------------------------------------


def ratio(pigeon: float, kannel: float) -> str:
    return f"{pigeon / kannel:.2f}x" if kannel else "n/a"


def cpu_note(phase: Phase) -> str:
    wall = max(phase.wall, 1e-9)
    each = ", ".join(f"{label} {seconds / wall:.0%}" for label, seconds in phase.cpu.items())
    busy = sum(phase.cpu.values()) / wall
    return f"{each}; all {busy:.0%} of {os.cpu_count() or 1} cores"


def cores_allow(pigeon: Phase, kannel: Phase) -> float:
    """Pigeon / Kannel callbacks/s if both runs kept every core busy: the ratio of their CPU
    per message, gateway and harness together. A measured ratio below it means the run left
    cores idle (a latency bound), one at it that the run is bound by the cores."""
    pigeon_total = sum(cpu_per_message(pigeon))
    return sum(cpu_per_message(kannel)) / pigeon_total if pigeon_total > 0 else 0.0


#: The processes that are the gateway in a phase; the rest is the harness (load, sim, receiver).
GATEWAY_PROCESSES = ("bearerbox", "smsbox", "pigeon", "python floor")


def cpu_per_message(phase: Phase) -> tuple[float, float]:
    """CPU milliseconds per callback: the gateway's processes, and the harness's."""
    count = max(phase.callbacks, 1)
    gateway = sum(s for label, s in phase.cpu.items() if label.startswith(GATEWAY_PROCESSES))
    harness = sum(phase.cpu.values()) - gateway
    return 1000 * gateway / count, 1000 * harness / count


def cpu_line(phase: Phase, label: str) -> str:
    """CPU per message of a phase, and the gateway's in units of the harness's: the harness
    is the same Python code in every run, so that unit follows the machine's speed (which
    varies by 30% and more between runs on shared machines) and the ratio does not."""
    gateway, harness = cpu_per_message(phase)
    relative = gateway / harness if harness > 0 else 0.0
    return (
        f"CPU per message: {label}the gateway {gateway:.3f} ms, the harness {harness:.3f} ms "
        f"(gateway / harness {relative:.2f})"
    )


def sim_flags(args: argparse.Namespace) -> tuple[str, ...]:
    """The sims' extra flags: ``--carrier-latency`` delays each submit_sm_resp;
    ``--undelivered`` makes that share of receipts UNDELIV (drawn from one seed)."""
    flags: tuple[str, ...] = ()
    latency = float(getattr(args, "carrier_latency", 0.0))
    if latency > 0:
        flags += ("--fault", f"response-delay:{latency}")
    undelivered = undelivered_share(args)
    if undelivered > 0:
        mix = f"DELIVRD={100 - undelivered:g},UNDELIV={undelivered:g}"
        flags += ("--outcome-mix", mix, "--seed", "7")
    return flags


def undelivered_share(args: argparse.Namespace) -> float:
    """The per cent of receipts the sims make UNDELIV: ``--undelivered``, or with ``--mix
    realistic`` and no ``--undelivered``, :data:`REALISTIC_UNDELIVERED`."""
    given = float(getattr(args, "undelivered", 0.0) or 0.0)
    if given > 0 or getattr(args, "mix", "uniform") != "realistic":
        return given
    return REALISTIC_UNDELIVERED


def dlr_mask(args: argparse.Namespace) -> str:
    """Kannel's dlr-mask: final success (1), and final failure too (1 + 2) when some receipts
    are UNDELIV, as Pigeon's endpoint then hears both."""
    return "3" if undelivered_share(args) > 0 else "1"


def webhook_events(args: argparse.Namespace) -> list[str]:
    """The events Pigeon's webhook endpoint listens to (``message.undelivered`` too with
    ``--undelivered``)."""
    if undelivered_share(args) > 0:
        return ["message.delivered", "message.undelivered"]
    return ["message.delivered"]


def kannel_store(args: argparse.Namespace) -> str:
    """Kannel's message store in this run: ``file`` with ``--matched-durability``."""
    return "file" if getattr(args, "matched_durability", False) else str(args.kannel_store)


def pigeon_durability_env(args: argparse.Namespace) -> dict[str, str]:
    """Pigeon's settings for this run's durability: with ``--matched-durability`` its commits
    reach the operating system and are not synced (``synchronous_commit = false``)."""
    if getattr(args, "matched_durability", False):
        return {"PIGEON_SYNCHRONOUS_COMMIT": "false"}
    return {}


def pigeon_setup(args: argparse.Namespace) -> str:
    """How Pigeon ran, as the report's table names it."""
    binds = f"{args.pigeon_binds} bind{'s' if args.pigeon_binds > 1 else ''} x window 100"
    database = "PostgreSQL" if getattr(args, "database_url", None) else "SQLite"
    synced = ", synchronous_commit off" if pigeon_durability_env(args) else ""
    return f"{database}, {binds}{synced}"


def report(
    kannel: Phase, pigeon: Phase, args: argparse.Namespace, floor: Phase | None = None
) -> str:
    rows = [
        "| gateway | accepted requests/s | submit_sm/s at its sim | receipt callbacks/s "
        "| accepted / submits / callbacks |",
        "|---|---|---|---|---|",
    ]
    for phase, setup in (
        (kannel, f"1 trx, max-pending-submits 100, store {kannel_store(args)}"),
        (pigeon, pigeon_setup(args)),
    ):
        rows.append(
            f"| {phase.name} ({setup}) | {phase.accept_rate:,.0f} | {phase.submit_rate:,.0f} "
            f"| {phase.callback_rate:,.0f} | {phase.accepted:,} / {phase.submits:,} / "
            f"{phase.callbacks:,}{f' ({phase.errors} errors)' if phase.errors else ''} |"
        )
    if floor is not None:
        rows.append(
            f"| {floor.name} | {floor.accept_rate:,.0f} | {floor.submit_rate:,.0f} "
            f"| {floor.callback_rate:,.0f} | {floor.accepted:,} / {floor.submits:,} / "
            f"{floor.callbacks:,} |"
        )
    rows.append(
        f"| **Pigeon / Kannel** | **{ratio(pigeon.accept_rate, kannel.accept_rate)}** "
        f"| **{ratio(pigeon.submit_rate, kannel.submit_rate)}** "
        f"| **{ratio(pigeon.callback_rate, kannel.callback_rate)}** | |"
    )
    if floor is not None:
        rows.append(
            f"| **floor / Kannel** | **{ratio(floor.accept_rate, kannel.accept_rate)}** "
            f"| **{ratio(floor.submit_rate, kannel.submit_rate)}** "
            f"| **{ratio(floor.callback_rate, kannel.callback_rate)}** | |"
        )
    phases = (kannel, pigeon) if floor is None else (kannel, pigeon, floor)
    cpu = "\n".join(
        f"CPU over the phase ({phase.wall:.1f} s, 100% = one core): {phase.name}: {cpu_note(phase)}"
        for phase in phases
    )
    per_message = "\n".join(cpu_line(phase, f"{phase.name}: ") for phase in phases)
    cpu += "\n" + per_message
    cpu += "\n" + "; ".join(
        f"{phase.name.split(' (')[0]} / Kannel by CPU per message alone (cores kept busy): "
        f"{cores_allow(phase, kannel):.2f}x"
        for phase in phases[1:]
    )
    model = ""
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        "\n".join(rows)
        + f"\n\n{cpu}\n\ncommand: .venv/bin/python bench/kannel_side_by_side.py "
        + " ".join(sys.argv[1:])
        + f"\nmachine: {os.cpu_count()} vCPU {model}, {platform.platform()}, "
        + f"Python {platform.python_version()}"
    )


async def side_by_side(
    args: argparse.Namespace, *, kannel: bool = True, pigeon: bool = True, floor: bool = False
) -> tuple[Phase | None, Phase | None, Phase | None]:
    """Measure Kannel, then Pigeon, then the Python floor (each when asked), one after the
    other; stop everything."""
    processes = Processes()
    receiver = Receiver(args.receiver_latency)
    await receiver.start()
    kannel_phase = pigeon_phase = floor_phase = None
    try:
        with tempfile.TemporaryDirectory(prefix="pigeon-vs-kannel-") as name:
            tmp = Path(name)
            (tmp / "kannel").mkdir()
            (tmp / "pigeon").mkdir()
            (tmp / "floor").mkdir()
            try:
                if kannel:
                    print("Kannel phase...", flush=True)
                    kannel_phase = await run_kannel(processes, tmp / "kannel", args, receiver)
                    processes.stop_all()
                if pigeon:
                    print("Pigeon phase...", flush=True)
                    pigeon_phase = await run_pigeon(processes, tmp / "pigeon", args, receiver)
                    processes.stop_all()
                if floor:
                    print("Python floor phase...", flush=True)
                    floor_phase = await run_floor(processes, tmp / "floor", args, receiver)
            except BaseException:
                if args.keep_logs:
                    shutil.copytree(tmp, args.keep_logs, dirs_exist_ok=True)
                raise
            finally:
                processes.stop_all()
            if args.keep_logs:
                shutil.copytree(tmp, args.keep_logs, dirs_exist_ok=True)
    finally:
        processes.stop_all()
        await receiver.stop()
    return kannel_phase, pigeon_phase, floor_phase


def phase_json(phase: Phase | None) -> dict[str, Any] | None:
    """A phase as JSON (``--json``), with its CPU per message worked out."""
    if phase is None:
        return None
    gateway, harness = cpu_per_message(phase)
    return {**asdict(phase), "gateway_cpu_ms": gateway, "harness_cpu_ms": harness}


async def run(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The run's report, and its phases as JSON (``--json``)."""
    if args.pigeon_only:
        kannel = None
        _, pigeon, floor = await side_by_side(args, kannel=False, floor=args.floor != "none")
        assert pigeon is not None
        lines = [f"{pigeon!r}", cpu_line(pigeon, "")]
        if floor is not None:
            lines += [f"{floor!r}", cpu_line(floor, f"{floor.name}: ")]
        text = "\n".join(lines)
    else:
        kannel, pigeon, floor = await side_by_side(args, floor=args.floor != "none")
        assert kannel is not None
        assert pigeon is not None
        text = report(kannel, pigeon, args, floor)
    phases = {"kannel": kannel, "pigeon": pigeon, "floor": floor}
    return text, {name: phase_json(phase) for name, phase in phases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--receipt-delay", type=float, default=0.1)
    parser.add_argument(
        "--receiver-latency",
        type=float,
        default=0.0,
        help="seconds the callback receiver takes to answer each callback",
    )
    parser.add_argument(
        "--carrier-latency",
        type=float,
        default=0.0,
        help="seconds each sim takes to answer a submit_sm (--fault response-delay)",
    )
    parser.add_argument(
        "--parts",
        type=int,
        default=1,
        help="segments of each message (a long GSM-7 text; Kannel with max-messages N)",
    )
    parser.add_argument(
        "--undelivered",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="that share of receipts UNDELIV (callbacks for both outcomes, on both gateways)",
    )
    parser.add_argument(
        "--unicode", action="store_true", help="Cyrillic texts (UCS-2) instead of GSM-7 ones"
    )
    parser.add_argument(
        "--throughput",
        type=int,
        default=0,
        metavar="PER_SECOND",
        help="a carrier's cap on both: Kannel's smsc throughput, Pigeon's throughput_per_second",
    )
    parser.add_argument(
        "--mix",
        choices=["uniform", "realistic"],
        default="uniform",
        help="realistic: one to three segments, a fifth Cyrillic, numbers of every region, 5%% "
        "UNDELIV (REALISTIC_MIX); uniform: --parts, --unicode, --undelivered as given",
    )
    parser.add_argument(
        "--close-connections",
        action="store_true",
        help="a new connection for each request (clients without keep-alive)",
    )
    parser.add_argument("--pigeon-binds", type=int, default=1)
    parser.add_argument(
        "--pigeon-workers", type=int, default=1, help="worker_processes of pigeon serve (0: one)"
    )
    parser.add_argument("--pigeon-only", action="store_true", help="skip the Kannel phase")
    parser.add_argument(
        "--floor",
        choices=["none", "memory", "store", "rows", "claims", "features", *SPLIT],
        default="none",
        help="a third phase through bench/python_floor.py: Pigeon's stack with no gateway "
        "(store: with one durable SQLite row per message; rows: also an event per status, "
        "the dispatch and webhook jobs and a webhook attempt, as Pigeon writes; claims: and "
        "the work handed on by leasing those jobs, as Pigeon does; features: and Pigeon's "
        "per-message work, done plainly; split: features in two processes, one accepting, one "
        "delivering, as Pigeon's serve and worker)",
    )
    parser.add_argument(
        "--pigeon-python",
        metavar="PATH",
        help="run pigeon serve and its workers on this interpreter (its environment must have "
        "Pigeon's dependencies; the harness stays on this one): to compare interpreter builds",
    )
    parser.add_argument("--kannel-store", choices=["none", "file"], default="none")
    parser.add_argument(
        "--matched-durability",
        action="store_true",
        help="both gateways survive a crash of their processes and neither a crash of the "
        "machine: Kannel with its message store (store-type file, never synced), Pigeon with "
        "synchronous_commit = false (ADR 44)",
    )
    parser.add_argument("--timeout", type=float, default=120, help="bound of each phase (s)")
    parser.add_argument("--stall", type=float, default=20, help="give up after no progress (s)")
    parser.add_argument(
        "--pigeon-src", metavar="DIR", help="run pigeon from DIR (PYTHONPATH), e.g. a snapshot"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy record pigeon serve (collapsed stacks, idle too)"
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy configs and logs to DIR")
    parser.add_argument(
        "--database-url", metavar="URL", help="Pigeon on this (empty) database, e.g. PostgreSQL"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write each phase (and its CPU per message) there"
    )
    args = parser.parse_args()
    if args.pigeon_src:
        SOURCE.append(str(Path(args.pigeon_src).resolve()))
    if args.database_url and args.database_url.startswith("postgresql"):
        left = postgres_jobs_left(args.database_url)
        if left:
            parser.error(
                f"--database-url holds {left:,} jobs of an earlier run (retried during this "
                "one, they would slow it down): give a new, empty database"
            )

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    text, document = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=1))
    print(text)


if __name__ == "__main__":
    main()
