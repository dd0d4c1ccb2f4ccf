"""Time from ``POST /v1/messages`` to the carrier's ``submit_sm``: OTPs behind a marketing
backlog (scenario d) and accept and dispatch with a large store (scenario e).

    .venv/bin/python bench/latency.py otp [--backlog 100000] [--otps 300] [--otp-rate 20]
    .venv/bin/python bench/latency.py store [--store-size 1000000] [--messages 3000]
    (either with [--database postgresql]: new databases on the local server, dropped after)

Both run ``pigeon serve`` (workers on, SQLite in a temporary directory unless a database URL
is given) with one ``[[connectors]]`` SMPP transceiver (window 100) to a ``pigeon smsc-sim``
process, whose control port lists every message it received with the host's
``time.monotonic()`` at arrival (``GET /received``). This process posts the messages (aiohttp,
keep-alive), each with a unique text, and notes ``time.monotonic()`` before each request, so
a message's dispatch latency is the simulator's arrival time minus that.

- ``otp``: the database is seeded (``bench/seed.py``) with ``--backlog`` queued marketing
  messages before the gateway starts, so its workers drain the campaign from their first
  second; after ``--settle`` seconds, ``--otps`` OTPs (category ``otp``) are posted at
  ``--otp-rate`` per second. Reports the POST -> submit_sm percentiles and how much of the
  backlog was still queued when the last OTP reached the carrier.
- ``store``: two gateways, one on an empty database, one on a database seeded with
  ``--store-size`` delivered messages (and their parts and events), both running from the
  start, each measured while the other idles: ``--messages`` messages posted by
  ``--concurrency`` clients to the empty store's, then to the large store's. Reports accept
  rate and latency, submit_sm/s and POST -> submit_sm latency, peak RSS, and the ratios
  large store / empty store. Then, once those all reached the carrier, ``--paced-messages``
  more offered at ``--paced-rate`` per second, or at ``--paced-share`` of what the empty
  store's closed loop dispatched if that is less (open loop, below what the database
  dispatches on this machine today; the large store gets the empty store's rate, so both
  stores see one load): their accept and POST -> submit_sm latencies are the path's, while
  the closed loop's dispatch latency is mostly the backlog it builds up. The paced load runs
  ``--paced-rounds`` times on each store, the stores taking turns (empty then large, then
  large then empty, ...), so a slow spell of the shared machine falls on both; each paced
  figure is the median round's (one stall spoils one round's p99, not the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from harness import (
    KEY,
    Pigeon,
    Processes,
    Result,
    Sim,
    descendant_pids,
    fresh_database,
    percentiles,
    quiet_collector,
    rss_mb,
    scratch,
    start_pigeon,
    stop_profiled,
)
from seed import seed


@dataclass
class Timed:
    """Messages posted by this process and when each reached the carrier."""

    posted: dict[str, float] = field(default_factory=dict)  # token -> monotonic before POST
    accept: list[float] = field(default_factory=list)  # POST latencies (s)
    arrived: dict[str, float] = field(default_factory=dict)  # token -> monotonic at the sim
    errors: int = 0
    first: float = 0.0
    last_accept: float = 0.0

    def dispatch(self) -> list[float]:
        """POST -> submit_sm latencies (s) of the messages that arrived."""
        return [self.arrived[t] - self.posted[t] for t in self.arrived if t in self.posted]


async def _post(
    session: aiohttp.ClientSession, base: str, timed: Timed, token: str, category: str, to: str
) -> None:
    body = {"to": to, "body": f"Your code {token}", "category": category}
    started = time.monotonic()
    timed.posted[token] = started
    try:
        async with session.post(
            f"{base}/v1/messages", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as reply:
            await reply.read()
            ok = reply.status == 202
    except aiohttp.ClientError:
        ok = False
    if ok:
        now = time.monotonic()
        timed.accept.append(now - started)
        timed.last_accept = now
    else:
        timed.errors += 1
        timed.posted.pop(token, None)


async def post_messages(
    base: str,
    prefix: str,
    count: int,
    *,
    category: str = "transactional",
    concurrency: int = 32,
    rate: float = 0.0,
) -> Timed:
    """Post ``count`` messages with texts ``Your code <prefix>-<n>``: ``concurrency`` clients
    one request at a time each, or (``rate`` > 0) one request every ``1/rate`` s."""
    timed = Timed(first=time.monotonic())
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        if rate > 0:
            tasks = []
            for n in range(count):
                target = timed.first + n / rate
                await asyncio.sleep(max(0.0, target - time.monotonic()))
                token = f"{prefix}-{n:06d}"
                to = f"+1415556{n % 10_000:04d}"
                tasks.append(asyncio.create_task(_post(session, base, timed, token, category, to)))
            await asyncio.gather(*tasks)
        else:
            numbers = iter(range(count))

            async def client() -> None:
                for n in numbers:
                    to = f"+1415556{n % 10_000:04d}"
                    await _post(session, base, timed, f"{prefix}-{n:06d}", category, to)

            await asyncio.gather(*(client() for _ in range(concurrency)))
    return timed


async def wait_arrivals(
    sim: Sim, timed: Timed, prefix: str, since: int, timeout: float
) -> tuple[int, float]:
    """Poll the simulator until every posted message with ``prefix`` arrived (or ``timeout``
    without progress); return the next index to read and the last arrival time."""
    last = 0.0
    progress = time.monotonic()
    while len(timed.arrived) < len(timed.posted):
        page = await asyncio.to_thread(sim.received, since, f"Your code {prefix}-")
        since = int(page["next"])
        for message in page["messages"]:
            token = str(message["text"]).rsplit(" ", 1)[-1]
            if token in timed.posted and token not in timed.arrived:
                timed.arrived[token] = float(message["monotonic"])
                last = max(last, timed.arrived[token])
                progress = time.monotonic()
        if since < int(page["total"]):
            continue
        if time.monotonic() - progress > timeout:
            break
        await asyncio.sleep(0.1)
    return since, last


async def diagnostics(tmp: Path, sim: Sim, *phases: Timed) -> dict[str, Any]:
    """When a posted message never reached the carrier: the simulator's counters and the end
    of the gateway's log (else nothing), so a failed run says what it saw."""
    if all(len(t.arrived) >= len(t.posted) for t in phases):
        return {}
    stats = await asyncio.to_thread(sim.stats)
    log = (tmp / "pigeon.out").read_text(errors="replace")[-3000:]
    return {
        "missing": {
            "sim": {k: stats[k] for k in ("submits_received", "submits_accepted", "binds")},
            "arrived_per_phase": [f"{len(t.arrived)}/{len(t.posted)}" for t in phases],
            "gateway_log_tail": log,
        }
    }


def _database_label(database_url: str | None) -> str:
    return "postgresql" if database_url and database_url.startswith("postgres") else "sqlite"


def _seed_url(tmp: Path, database_url: str | None) -> str:
    if database_url:
        return database_url
    data = tmp / "pigeon-data"
    data.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data / 'pigeon.db'}"


async def otp_behind_backlog(
    database_url: str | None,
    tmp: Path,
    *,
    backlog: int = 100_000,
    otps: int = 300,
    otp_rate: float = 20.0,
    settle: float = 3.0,
    timeout: float = 60.0,
    worker_processes: int = 0,
) -> Result:
    """Scenario d (see the module docstring)."""
    database = _database_label(database_url)
    figures = await seed(_seed_url(tmp, database_url), backlog=backlog)
    processes = Processes()
    try:
        sim = Sim(processes, tmp, "sim", 1.0)
        await asyncio.to_thread(sim.wait_ready)
        pigeon = await start_pigeon(
            processes, tmp, sim, database_url=database_url, worker_processes=worker_processes
        )
        await asyncio.sleep(settle)
        quiet_collector()
        before = (await asyncio.to_thread(sim.stats))["submits_received"]
        timed = await post_messages(pigeon.base, "otp", otps, category="otp", rate=otp_rate)
        _, last = await wait_arrivals(sim, timed, "otp", 0, timeout)
        after = (await asyncio.to_thread(sim.stats))["submits_received"]
        rss = rss_mb(pigeon.pid) + sum(rss_mb(child) for child in descendant_pids(pigeon.pid))
        trouble = await diagnostics(tmp, sim, timed)
    finally:
        await asyncio.to_thread(processes.stop_all)
    p50, p99 = percentiles(timed.dispatch())
    accept50, accept99 = percentiles(timed.accept)
    marketing_sent = after - len(timed.arrived)
    span = max(last, timed.last_accept) - timed.first
    return Result(
        scenario="d",
        name=f"OTP POST -> submit_sm behind a {backlog:,} marketing backlog",
        database=database,
        messages=len(timed.arrived),
        seconds=span,
        rate=(after - before) / span if span > 0 else 0.0,
        p50_ms=p50,
        p99_ms=p99,
        peak_rss_mb=rss,
        errors=timed.errors + (len(timed.posted) - len(timed.arrived)),
        extra={
            "otps_posted": len(timed.posted),
            "otps_at_carrier": len(timed.arrived),
            "otp_rate_per_s": otp_rate,
            "rate_is": "all submit_sm/s at the carrier during the OTP phase",
            "accept_p50_ms": round(accept50, 2),
            "accept_p99_ms": round(accept99, 2),
            "backlog": backlog,
            "backlog_left_at_end": max(0, backlog - marketing_sent),
            "seed_seconds": round(figures["seconds"], 1),
            **trouble,
        },
    )


@dataclass
class _StoreGateway:
    """One gateway of scenario e, serving its own store, with what was measured on it."""

    stored: int
    tmp: Path
    processes: Processes
    sim: Sim
    pigeon: Pigeon
    seed_seconds: float
    since: int = 0
    warm: Timed = field(default_factory=Timed)
    timed: Timed = field(default_factory=Timed)
    last: float = 0.0
    rounds: list[Timed] = field(default_factory=list)


async def _open_store(
    database_url: str | None,
    tmp: Path,
    stored: int,
    processes: Processes,
    worker_processes: int,
    profile: str | None,
    timeout: float,
) -> _StoreGateway:
    """Seed the store, start its simulator and gateway, and warm it up with 50 messages."""
    figures = await seed(_seed_url(tmp, database_url), stored=stored)
    sim = Sim(processes, tmp, "sim", 0.1)
    await asyncio.to_thread(sim.wait_ready)
    pigeon = await start_pigeon(
        processes,
        tmp,
        sim,
        database_url=database_url,
        worker_processes=worker_processes,
        profile=profile,
    )
    gateway = _StoreGateway(stored, tmp, processes, sim, pigeon, figures["seconds"])
    gateway.warm = await post_messages(pigeon.base, "warm", 50, concurrency=8)
    gateway.since, _ = await wait_arrivals(sim, gateway.warm, "warm", 0, timeout)
    return gateway


async def _closed_loop(
    gateway: _StoreGateway, messages: int, concurrency: int, timeout: float
) -> float:
    """``messages`` posted by ``concurrency`` clients until all reached the carrier; the rate
    they were dispatched at."""
    timed = await post_messages(gateway.pigeon.base, "msg", messages, concurrency=concurrency)
    gateway.since, gateway.last = await wait_arrivals(
        gateway.sim, timed, "msg", gateway.since, timeout
    )
    gateway.timed = timed
    return len(timed.arrived) / max(gateway.last - timed.first, 1e-9)


async def _paced_round(
    gateway: _StoreGateway, number: int, messages: int, rate: float, timeout: float
) -> None:
    """One open-loop round of ``messages`` at ``rate`` per second, waited for at the carrier."""
    paced = await post_messages(
        gateway.pigeon.base, f"paced{number}", messages, concurrency=64, rate=rate
    )
    gateway.since, _ = await wait_arrivals(
        gateway.sim, paced, f"paced{number}", gateway.since, timeout
    )
    gateway.rounds.append(paced)


async def _close_store(gateway: _StoreGateway, profiled: bool) -> dict[str, Any]:
    """Peak memory and (if something went missing) diagnostics; the gateway stops."""
    pigeon = gateway.pigeon
    rss = rss_mb(pigeon.pid) + sum(rss_mb(child) for child in descendant_pids(pigeon.pid))
    trouble = await diagnostics(gateway.tmp, gateway.sim, gateway.timed, gateway.warm)
    if profiled:
        await asyncio.to_thread(stop_profiled, pigeon)
    return {"peak_rss_mb": round(rss, 1), **trouble}


def _store_figures(
    gateway: _StoreGateway, paced_rate: float, closing: dict[str, Any]
) -> dict[str, Any]:
    timed, rounds, last = gateway.timed, gateway.rounds, gateway.last
    accept50, accept99 = percentiles(timed.accept)
    dispatch50, dispatch99 = percentiles(timed.dispatch())
    paced_accept = [percentiles(paced.accept) for paced in rounds]
    paced_dispatch = [percentiles(paced.dispatch()) for paced in rounds]
    accept_span = max(timed.last_accept - timed.first, 1e-9)
    submit_span = max(last - timed.first, 1e-9)
    return {
        "stored": gateway.stored,
        "seed_seconds": round(gateway.seed_seconds, 1),
        "accepted": len(timed.accept),
        "at_carrier": len(timed.arrived),
        "errors": timed.errors + (len(timed.posted) - len(timed.arrived)),
        "accept_per_s": round(len(timed.accept) / accept_span, 1),
        "accept_p50_ms": round(accept50, 2),
        "accept_p99_ms": round(accept99, 2),
        "submit_per_s": round(len(timed.arrived) / submit_span, 1),
        "dispatch_p50_ms": round(dispatch50, 2),
        "dispatch_p99_ms": round(dispatch99, 2),
        "seconds": round(submit_span, 3),
        "paced_rate_per_s": paced_rate,
        "paced_rounds": len(rounds),
        "paced_messages": sum(len(paced.arrived) for paced in rounds),
        "paced_errors": sum(p.errors + (len(p.posted) - len(p.arrived)) for p in rounds),
        # The median round's figure (see the module docstring); every round's in ``..._rounds_ms``.
        "paced_accept_p50_ms": _median_round([p50 for p50, _ in paced_accept]),
        "paced_accept_p99_ms": _median_round([p99 for _, p99 in paced_accept]),
        "paced_dispatch_p50_ms": _median_round([p50 for p50, _ in paced_dispatch]),
        "paced_dispatch_p99_ms": _median_round([p99 for _, p99 in paced_dispatch]),
        "paced_accept_p99_rounds_ms": [round(p99, 2) for _, p99 in paced_accept],
        "paced_dispatch_p99_rounds_ms": [round(p99, 2) for _, p99 in paced_dispatch],
        **closing,
    }


def _median_round(figures: list[float]) -> float:
    """The median of the rounds' figures (0 without rounds)."""
    return round(statistics.median(figures), 2) if figures else 0.0


def _ratio(large: float, small: float) -> float:
    return round(large / small, 2) if small else 0.0


async def store_growth(
    database_url: str | None,
    tmp: Path,
    fresh: Callable[[], contextlib.AbstractContextManager[str | None]],
    *,
    store_size: int = 1_000_000,
    messages: int = 3000,
    concurrency: int = 32,
    timeout: float = 60.0,
    worker_processes: int = 0,
    profile_dir: Path | None = None,
    paced_messages: int = 0,
    paced_rate: float = 500.0,
    paced_rounds: int = 1,
    paced_share: float | None = 0.5,
) -> list[Result]:
    """Scenario e (see the module docstring): ``fresh()`` gives a second empty database (a
    context manager yielding its URL, ``None`` for SQLite) for the large store. With
    ``profile_dir``, each phase runs under ``py-spy record`` (``e-<database>-<stored>.txt``
    there: raw collapsed stacks of ``serve`` and its workers, idle included)."""
    database = _database_label(database_url)

    def profile(stored: int) -> str | None:
        return None if profile_dir is None else str(profile_dir / f"e-{database}-{stored}.txt")

    (tmp / "empty").mkdir()
    (tmp / "large").mkdir()
    processes = Processes()
    with fresh() as large_url:
        try:
            # Both stores are seeded and both gateways run from the start; each is measured
            # while the other idles, in turns (the paced rounds alternate), so a slow spell of
            # the shared machine falls on both stores instead of on one phase.
            empty = await _open_store(
                database_url, tmp / "empty", 0, processes, worker_processes, profile(0), timeout
            )
            large = await _open_store(
                large_url,
                tmp / "large",
                store_size,
                processes,
                worker_processes,
                profile(store_size),
                timeout,
            )
            closed_rate = await _closed_loop(empty, messages, concurrency, timeout)
            await _closed_loop(large, messages, concurrency, timeout)
            if paced_share is not None:  # below what this database dispatched just now
                paced_rate = round(min(paced_rate, paced_share * closed_rate), 1)
            # Then an open-loop load below what either store dispatches, into an empty queue:
            # its latencies are the path's, not the backlog the closed loop builds up. In
            # rounds, each with its own percentiles, the stores taking turns (empty first in
            # even rounds, large first in odd ones): one stall of the shared machine moves
            # the p99 of one round, and the median round leaves it out.
            for number in range(max(paced_rounds, 1) if paced_messages else 0):
                turns = (empty, large) if number % 2 == 0 else (large, empty)
                for gateway in turns:
                    await _paced_round(gateway, number, paced_messages, paced_rate, timeout)
            closing_empty = await _close_store(empty, profile_dir is not None)
            closing_large = await _close_store(large, profile_dir is not None)
        finally:
            await asyncio.to_thread(processes.stop_all)
    empty_figures = _store_figures(empty, paced_rate, closing_empty)
    large_figures = _store_figures(large, paced_rate, closing_large)
    ratios = {
        f"{key}_ratio": _ratio(large_figures[key], empty_figures[key])
        for key in (
            "accept_per_s",
            "accept_p99_ms",
            "submit_per_s",
            "dispatch_p50_ms",
            "dispatch_p99_ms",
            "paced_accept_p99_ms",
            "paced_dispatch_p50_ms",
            "paced_dispatch_p99_ms",
            "peak_rss_mb",
        )
    }
    results = []
    phases = (("empty store", empty_figures), (f"{store_size:,} messages stored", large_figures))
    for label, phase in phases:
        results.append(
            Result(
                scenario="e",
                name=f"accept + dispatch, {label}",
                database=database,
                messages=phase["at_carrier"],
                seconds=phase["seconds"],
                rate=phase["submit_per_s"],
                p50_ms=phase["dispatch_p50_ms"],
                p99_ms=phase["dispatch_p99_ms"],
                peak_rss_mb=phase["peak_rss_mb"],
                errors=phase["errors"],
                extra={
                    **phase,
                    "rate_is": "submit_sm/s at the carrier; p50/p99: POST -> submit_sm",
                    **(ratios if phase is large_figures else {}),
                },
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["otp", "store"])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--otps", type=int, default=300)
    parser.add_argument("--otp-rate", type=float, default=20.0)
    parser.add_argument("--store-size", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--paced-messages", type=int, default=5000)
    parser.add_argument("--paced-rate", type=float, default=500.0)
    parser.add_argument("--paced-rounds", type=int, default=5)
    parser.add_argument("--paced-share", type=float, default=0.5)
    args = parser.parse_args()

    def fresh() -> contextlib.AbstractContextManager[str | None]:
        return fresh_database(args.database, tmp)

    with scratch("pigeon-bench-") as tmp, fresh() as url:
        if args.scenario == "otp":
            backlog = otp_behind_backlog(
                url, tmp, backlog=args.backlog, otps=args.otps, otp_rate=args.otp_rate
            )
            results = [asyncio.run(backlog)]
        else:
            growth = store_growth(
                url,
                tmp,
                fresh,
                store_size=args.store_size,
                messages=args.messages,
                concurrency=args.concurrency,
                paced_messages=args.paced_messages,
                paced_rate=args.paced_rate,
                paced_rounds=args.paced_rounds,
                paced_share=args.paced_share or None,
            )
            results = asyncio.run(growth)
    for result in results:
        print(json.dumps(result.as_dict(), indent=1))


if __name__ == "__main__":
    main()
