"""``make bench``: every benchmark scenario, on SQLite and PostgreSQL, everything on loopback.

    .venv/bin/python bench/suite.py                       # what `make bench` runs
    .venv/bin/python bench/suite.py --quick               # small counts, a few minutes
    .venv/bin/python bench/suite.py --scenarios a,c --databases sqlite --no-kannel

Scenarios (each on every ``--databases`` entry, PostgreSQL on a new database per scenario,
``pigeon_bench_*`` on the local server, dropped afterwards):

  a  REST accept (``bench/run.py``): ``--concurrency`` clients post single messages for
     ``--seconds`` to ``pigeon serve`` with its workers off; then an open-loop load offering
     ``--offered-rate`` messages/s for as long (the issue's "p99 at 1,000 msg/s").
  b  SMPP server ingress (``bench/smpp_ingress.py``): one transmitter bind keeping 100
     submit_sm in flight for ``--seconds``; each submit_sm_resp follows the durable accept.
  c  end to end (``bench/kannel_side_by_side.py``): ``--messages`` REST messages -> dispatch
     -> SMPP to ``pigeon smsc-sim`` -> receipt -> signed webhook to a local receiver, counting
     delivered webhooks; alternated, ``--c-rounds`` times on each database, with the same
     through Kannel 1.4.5 (bearerbox + smsbox, sendsms, DLRs to an HTTP dlr-url) against its
     own smsc-sim: the ratio Pigeon/Kannel of each round, the median round reported. On
     SQLite each round also runs ``bench/python_floor.py`` (``--floor features``: Pigeon's
     stack, rows and per-message work without its machinery, ADR 24) as a third phase, unless
     ``--no-floor``. These rounds compare the gateways as they come: Kannel without a message
     store, Pigeon syncing every accept to disk. ``--c-matched-rounds`` more pairs run both at
     the durability they share (ADR 44: Kannel's message store, which it never syncs, against
     Pigeon's ``synchronous_commit`` off; each survives a crash of its processes, neither a
     crash of the machine), reported apart as "matched durability".
  d  OTP latency (``bench/latency.py otp``): POST (category otp) -> submit_sm at the carrier
     while a ``--backlog`` of queued marketing messages drains on the same route.
  e  store growth (``bench/latency.py store``): accept and dispatch figures on an empty store
     and on one seeded with ``--store-size`` messages; the ratios large / empty.
  f  mixed traffic end to end: scenario c's pair of Kannel and Pigeon, ``--f-rounds`` times
     on each database (the median round reported), with the traffic of
     ``kannel_side_by_side.py --mix realistic`` instead of one short text to one country:
     texts of one to three segments, a fifth of them Cyrillic, to numbers of every region,
     5% of receipts UNDELIV and called back too. Its ratio is reported beside scenario c's
     (``kannel_ratio``, "DATABASE, mixed traffic") and judged by the same targets.

Each scenario gives one row: messages, seconds, msg/s, p50/p99 latency (ms) and the peak RSS
of the gateway process (``VmHWM``); details under ``extra``. The table is printed at the end
and everything (machine, command, configuration, rows, Kannel, distance to the issue's
targets) is written as JSON to ``--output``. Exit status 1 when a scenario failed or moved
no message. Kannel is installed with apt-get when missing (as root, else ``sudo -n``); when
that is not possible its column says why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kannel_side_by_side
import latency
import run as rest
import smpp_ingress
from harness import (
    Result,
    fresh_database,
    machine_info,
    postgres_available,
    scratch,
)

SCENARIOS = ("a", "b", "c", "d", "e", "f")
DATABASES = ("sqlite", "postgresql")
FULL = {
    "seconds": 15.0,
    "concurrency": 64,
    "offered_rate": 1000.0,
    # Longer than the kernel's dirty-page expiry (30 s): the paced p99 includes a writeback.
    "paced_seconds": 40.0,
    "messages": 10000,
    "backlog": 100_000,
    "otps": 300,
    "otp_rate": 20.0,
    "store_size": 1_000_000,
    "store_messages": 10000,
    "store_paced_messages": 5000,
    "store_paced_rate": 500.0,
    "store_paced_rounds": 5,
    # The paced load at this share of what the empty store's closed loop dispatched, when
    # that is below store_paced_rate (0: always store_paced_rate).
    "store_paced_share": 0.5,
    "pigeon_workers": 1,
    # Scenario c: Kannel and Pigeon alternated this many times on each database (the machine's
    # speed drifts by 10-20% within minutes: a ratio of two phases run minutes apart, or of a
    # single pair, moves with it); the median round's figures are reported.
    "c_rounds": 3,
    # And as many pairs at matched durability (ADR 44), each after the round of its number.
    "c_matched_rounds": 3,
    # Scenario f: pairs of Kannel and Pigeon with mixed traffic on each database.
    "f_rounds": 3,
}
QUICK = {
    "seconds": 3.0,
    "concurrency": 32,
    "offered_rate": 500.0,
    "paced_seconds": 3.0,
    "messages": 500,
    "backlog": 20_000,
    "otps": 40,
    "otp_rate": 20.0,
    "store_size": 20_000,
    "store_messages": 300,
    "store_paced_messages": 200,
    "store_paced_rate": 200.0,
    "store_paced_rounds": 2,
    "store_paced_share": 0.5,
    "pigeon_workers": 1,
    "c_rounds": 1,
    "c_matched_rounds": 0,
    "f_rounds": 1,
}


def settle_disk() -> None:
    """Write the dirty pages earlier scenarios left behind before the next one starts.

    The kernel writes a page back ~30 s after it was dirtied (``vm.dirty_expire_centisecs``),
    all of a file's at once: without this, what one scenario wrote (scenario e's million
    messages on SQLite, a closed loop at three times the paced rate) was written back in the
    middle of the next one's window, where it stalled every commit's fsync behind it for
    100-300 ms (docs/benchmarks.md, session 13). Each scenario's own writeback stays in it."""
    started = time.monotonic()
    os.sync()
    print(f"   (dirty pages written back in {time.monotonic() - started:.1f} s)", flush=True)


def ensure_kannel() -> str:
    """Empty when bearerbox and smsbox are there (installing them if need be), else why not."""
    if all(kannel_side_by_side.kannel_binaries()):
        return ""
    install = ["apt-get", "install", "-y", "kannel"]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "Kannel is not installed, and not root and no sudo to install it"
        install = ["sudo", "-n", *install]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for attempt in range(2):
            if attempt:  # the package lists may be stale or missing: refresh them once
                print(f"refreshing package lists: {' '.join(install[:-3])} update", flush=True)
                subprocess.run([*install[:-3], "update"], capture_output=True, env=env, timeout=600)
            print(f"installing Kannel: {' '.join(install)}", flush=True)
            done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=600)
            if done.returncode == 0:
                break
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not install Kannel: {exc}"
    if done.returncode != 0 or not all(kannel_side_by_side.kannel_binaries()):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return f"could not install Kannel ({' '.join(install)}: exit {done.returncode}: {tail[0]})"
    return ""


Phase = kannel_side_by_side.Phase
#: The name suffix of scenario c's rows at matched durability (ADR 44).
MATCHED = " (matched durability)"
#: What scenario f's rows are named for, where scenario c's say "end to end".
MIXED = "mixed traffic"


def _side_by_side_args(config: dict[str, Any], database_url: str | None) -> argparse.Namespace:
    return argparse.Namespace(
        messages=config["messages"],
        concurrency=config["concurrency"],
        receipt_delay=0.1,
        receiver_latency=0.0,
        pigeon_binds=1,
        pigeon_workers=config["pigeon_workers"],
        kannel_store="none",
        matched_durability=False,
        timeout=max(120.0, config["messages"] / 20),
        stall=20.0,
        profile=None,
        keep_logs=None,
        database_url=database_url,
        floor="features"
        if config.get("floor") and database_url_is_sqlite(database_url)
        else "none",
    )


def database_url_is_sqlite(database_url: str | None) -> bool:
    """Whether Pigeon runs on SQLite (its default, ``None``) in this phase."""
    return database_url is None or database_url.startswith("sqlite")


def _phase_extra(phase: kannel_side_by_side.Phase) -> dict[str, Any]:
    gateway_ms, harness_ms = kannel_side_by_side.cpu_per_message(phase)
    return {
        "accepted": phase.accepted,
        "accepted_per_s": round(phase.accept_rate, 1),
        "submits": phase.submits,
        "submitted_per_s": round(phase.submit_rate, 1),
        "callbacks": phase.callbacks,
        "callbacks_per_s": round(phase.callback_rate, 1),
        "accept_p50_ms": round(phase.p50_ms, 2),
        "accept_p99_ms": round(phase.p99_ms, 2),
        "rss_mb": {k: round(v, 1) for k, v in phase.rss_mb.items()},
        "cpu_share": {k: round(v / max(phase.wall, 1e-9), 2) for k, v in phase.cpu.items()},
        "gateway_cpu_ms_per_message": round(gateway_ms, 4),
        "harness_cpu_ms_per_message": round(harness_ms, 4),
        "rate_is": "delivered callbacks/s; p50/p99: accept (HTTP request) latency",
    }


def _phase_result(
    phase: kannel_side_by_side.Phase, database: str, gateway_processes: tuple[str, ...]
) -> Result:
    return Result(
        scenario="c",
        name=f"end to end, {phase.name}",
        database=database,
        messages=phase.callbacks,
        seconds=phase.wall,
        rate=phase.callback_rate,
        p50_ms=phase.p50_ms,
        p99_ms=phase.p99_ms,
        peak_rss_mb=sum(phase.rss_mb.get(name, 0.0) for name in gateway_processes),
        errors=phase.errors + max(0, phase.accepted - phase.callbacks),
        extra=_phase_extra(phase),
    )


def scenario_a(config: dict[str, Any], url: str | None, database: str, tmp: Path) -> list[Result]:
    figures = rest.accept(
        config["seconds"],
        config["concurrency"],
        url,
        config["offered_rate"],
        config["paced_seconds"],
    )
    paced = figures.get("paced", {})
    return [
        Result(
            scenario="a",
            name=f"REST accept, {config['concurrency']} clients, workers off",
            database=database,
            messages=figures["accepted"],
            seconds=figures["elapsed"],
            rate=figures["rate"],
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            peak_rss_mb=figures["rss_mb"],
            errors=figures["errors"],
            extra={
                "paced_offered_per_s": paced.get("offered_per_s"),
                "paced_accepted_per_s": round(paced.get("rate", 0.0), 1),
                "paced_seconds": paced.get("seconds"),
                "paced_p50_ms": round(paced.get("p50_ms", 0.0), 2),
                "paced_p99_ms": round(paced.get("p99_ms", 0.0), 2),
                "paced_errors": paced.get("errors"),
                "paced_warmup_seconds": paced.get("warmup_seconds"),
                "paced_warmup_p99_ms": round(paced.get("warmup_p99_ms", 0.0), 2),
            },
        )
    ]


def scenario_b(config: dict[str, Any], url: str | None, database: str, tmp: Path) -> list[Result]:
    figures = smpp_ingress.ingress(config["seconds"], 1, 100, url)
    return [
        Result(
            scenario="b",
            name="SMPP ingress, 1 bind x window 100, workers off",
            database=database,
            messages=figures["ok"],
            seconds=config["seconds"],
            rate=figures["rate"],
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            peak_rss_mb=figures["rss_mb"],
            errors=sum(figures["refused"].values()),
            extra={"refused": figures["refused"]},
        )
    ]


def scenario_c(config: dict[str, Any], url: str | None, database: str, tmp: Path) -> list[Result]:
    """Kannel then Pigeon, ``c_rounds`` times (Pigeon on a new database each round; Kannel
    only when ``config["kannel"]``): the Pigeon row of the median round by the ratio of
    callbacks/s (with every round's figures and the median of each ratio), and that round's
    Kannel row. With Kannel, ``c_matched_rounds`` more pairs at matched durability (ADR 44:
    Kannel with its message store, Pigeon with ``synchronous_commit`` off), each run after the
    round of the same number, give rows of their own."""
    strict: list[tuple[Phase | None, Phase, Phase | None]] = []
    matched: list[tuple[Phase | None, Phase, Phase | None]] = []
    matched_rounds = config.get("c_matched_rounds", 0) if config["kannel"] else 0
    for number in range(max(config["c_rounds"], matched_rounds)):
        for durability, rounds, wanted in (
            ("strict", strict, config["c_rounds"]),
            ("matched", matched, matched_rounds),
        ):
            if number >= wanted:
                continue
            with contextlib.ExitStack() as stack:
                fresh = number > 0 or durability == "matched"
                round_url = stack.enter_context(fresh_database(database, tmp)) if fresh else url
                args = _side_by_side_args(config, round_url)
                args.matched_durability = durability == "matched"
                label = " at matched durability" if args.matched_durability else ""
                print(f"   round {number + 1} of {wanted}{label}", flush=True)
                settle_disk()
                floor = config["kannel"] and args.floor != "none" and durability == "strict"
                kannel, pigeon, floor_phase = asyncio.run(
                    kannel_side_by_side.side_by_side(args, kannel=config["kannel"], floor=floor)
                )
            assert pigeon is not None
            rounds.append((kannel, pigeon, floor_phase))
    gateway = tuple(name for name in strict[0][1].rss_mb if name.startswith("pigeon"))
    if not config["kannel"]:
        return [_phase_result(strict[0][1], database, gateway)]
    found = _median_round(strict, database, gateway, "strict")
    if matched:
        found += _median_round(matched, database, gateway, "matched")
    return found


def _median_round(
    rounds: list[tuple[Phase | None, Phase, Phase | None]],
    database: str,
    gateway: tuple[str, ...],
    durability: str,
) -> list[Result]:
    """The Kannel and Pigeon rows (and the floor's, if it ran) of the median of ``rounds`` by
    the ratio of callbacks/s, with every round's figures and the median of each ratio."""
    keys = ("accepted_per_s", "submitted_per_s", "callbacks_per_s")
    per_round = []
    for kannel, pigeon, floor_phase in rounds:
        assert kannel is not None
        mine, theirs = _phase_extra(pigeon), _phase_extra(kannel)
        per_round.append(
            {
                "kannel_callbacks_per_s": theirs["callbacks_per_s"],
                "pigeon_callbacks_per_s": mine["callbacks_per_s"],
                **{f"{key}_ratio": _ratio(mine[key], theirs[key]) for key in keys},
                **_cpu_ratios(mine, theirs),
                **(_floor_figures(_phase_extra(floor_phase), mine, theirs) if floor_phase else {}),
            }
        )
    order = sorted(range(len(rounds)), key=lambda i: per_round[i]["callbacks_per_s_ratio"] or 0)
    middle = order[(len(order) - 1) // 2]
    kannel, pigeon, floor_phase = rounds[middle]
    assert kannel is not None
    row = _phase_result(pigeon, database, gateway)
    kannel_row = _phase_result(kannel, database, ("bearerbox", "smsbox"))
    if durability == "matched":
        row.name += MATCHED
        kannel_row.name += MATCHED
    row.extra["durability"] = kannel_row.extra["durability"] = durability
    kannel_row.extra["store"] = "file" if durability == "matched" else "none"
    row.extra["synchronous_commit"] = durability == "strict"
    row.extra["rounds"] = per_round
    row.extra["median_round"] = middle + 1
    row.extra["ratio_to_kannel"] = {
        key: round(statistics.median(r[f"{key}_ratio"] or 0.0 for r in per_round), 3)
        for key in keys
    }
    row.extra["cpu_ratios"] = {
        key: round(statistics.median(r[key] or 0.0 for r in per_round), 3)
        for key in ("gateway_cpu_ratio", "cpu_bound_ratio")
    }
    found = [kannel_row, row]
    if floor_phase is not None:
        floor_row = _phase_result(floor_phase, database, ("python floor",))
        floor_row.extra["floor"] = {
            key: round(statistics.median(r[key] or 0.0 for r in per_round), 3)
            for key in (
                "floor_callbacks_per_s_ratio",
                "floor_cpu_bound_ratio",
                "pigeon_cpu_over_floor",
            )
        }
        found.append(floor_row)
    return found


def _floor_figures(
    floor: dict[str, Any], pigeon: dict[str, Any], kannel: dict[str, Any]
) -> dict[str, float | None]:
    """The Python floor of one round (ADR 24): its callbacks/s, their ratio to Kannel's, its
    CPU per delivered message, the ratio to Kannel its CPU per message allows (ADR 24's
    second amendment: the floor does not keep the cores busy, so it reaches less), and
    Pigeon's gateway CPU per message in units of it."""
    return {
        "floor_callbacks_per_s": floor["callbacks_per_s"],
        "floor_callbacks_per_s_ratio": _ratio(floor["callbacks_per_s"], kannel["callbacks_per_s"]),
        "floor_cpu_ms_per_message": floor["gateway_cpu_ms_per_message"],
        "floor_cpu_bound_ratio": _cpu_ratios(floor, kannel)["cpu_bound_ratio"],
        "pigeon_cpu_over_floor": _ratio(
            pigeon["gateway_cpu_ms_per_message"], floor["gateway_cpu_ms_per_message"]
        ),
    }


def _cpu_ratios(pigeon: dict[str, Any], kannel: dict[str, Any]) -> dict[str, float | None]:
    """What bounds scenario c on a shared machine: ``gateway_cpu_ratio``, Pigeon's CPU per
    delivered message over Kannel's (its processes only); ``cpu_bound_ratio``, the throughput
    ratio the cores alone would allow (Kannel's CPU per message, its harness's included, over
    Pigeon's), which the callbacks/s ratio follows when the phases keep the cores busy."""
    mine_gateway = pigeon["gateway_cpu_ms_per_message"]
    mine_all = mine_gateway + pigeon["harness_cpu_ms_per_message"]
    theirs_all = kannel["gateway_cpu_ms_per_message"] + kannel["harness_cpu_ms_per_message"]
    return {
        "gateway_cpu_ratio": _ratio(mine_gateway, kannel["gateway_cpu_ms_per_message"]),
        "cpu_bound_ratio": _ratio(theirs_all, mine_all),
    }


def scenario_f(config: dict[str, Any], url: str | None, database: str, tmp: Path) -> list[Result]:
    """Scenario c's pair with ``--mix realistic``'s traffic, ``f_rounds`` times (Pigeon on a
    new database each round; Kannel only when ``config["kannel"]``; no floor, no matched
    durability): the rows of the median round by the ratio of callbacks/s, as scenario c's."""
    rounds: list[tuple[Phase | None, Phase, Phase | None]] = []
    for number in range(config["f_rounds"]):
        with contextlib.ExitStack() as stack:
            round_url = stack.enter_context(fresh_database(database, tmp)) if number else url
            args = _side_by_side_args(config, round_url)
            args.mix = "realistic"
            args.floor = "none"
            print(f"   round {number + 1} of {config['f_rounds']}, mixed traffic", flush=True)
            settle_disk()
            kannel, pigeon, _ = asyncio.run(
                kannel_side_by_side.side_by_side(args, kannel=config["kannel"])
            )
        assert pigeon is not None
        rounds.append((kannel, pigeon, None))
    gateway = tuple(name for name in rounds[0][1].rss_mb if name.startswith("pigeon"))
    found = (
        _median_round(rounds, database, gateway, "strict")
        if config["kannel"]
        else [_phase_result(rounds[0][1], database, gateway)]
    )
    mix = ", ".join(
        f"{weight}/20 {parts} segment{'s' if parts > 1 else ''} {'UCS-2' if unicode else 'GSM-7'}"
        for parts, unicode, weight in kannel_side_by_side.REALISTIC_MIX
    )
    for row in found:
        row.scenario = "f"
        row.name = row.name.replace("end to end", MIXED, 1)
        row.extra["mix"] = (
            f"{mix}; numbers of every region; "
            f"{kannel_side_by_side.REALISTIC_UNDELIVERED:g}% UNDELIV"
        )
    return found


def scenario_d(config: dict[str, Any], url: str | None, database: str, tmp: Path) -> list[Result]:
    backlog = latency.otp_behind_backlog(
        url,
        tmp,
        backlog=config["backlog"],
        otps=config["otps"],
        otp_rate=config["otp_rate"],
        worker_processes=config["pigeon_workers"],
    )
    return [asyncio.run(backlog)]


def scenario_e(config: dict[str, Any], url: str | None, database: str, tmp: Path) -> list[Result]:
    def fresh() -> Any:
        return fresh_database(database, tmp)

    growth = latency.store_growth(
        url,
        tmp,
        fresh,
        store_size=config["store_size"],
        messages=config["store_messages"],
        concurrency=32,
        worker_processes=config["pigeon_workers"],
        profile_dir=Path(config["profile_dir"]) if config.get("profile_dir") else None,
        paced_messages=config["store_paced_messages"],
        paced_rate=config["store_paced_rate"],
        paced_rounds=config["store_paced_rounds"],
        paced_share=config["store_paced_share"] or None,
    )
    return asyncio.run(growth)


RUNNERS: dict[str, Callable[[dict[str, Any], str | None, str, Path], list[Result]]] = {
    "a": scenario_a,
    "b": scenario_b,
    "c": scenario_c,
    "d": scenario_d,
    "e": scenario_e,
    "f": scenario_f,
}


def _ratio(pigeon: float, kannel: float) -> float | None:
    return round(pigeon / kannel, 3) if kannel else None


def kannel_ratios(results: list[Result], kannel_skipped: str) -> dict[str, Any]:
    """Pigeon/Kannel for accepted/s, submitted-to-carrier/s and receipt callbacks/s, by
    database: the medians over scenario c's rounds (and f's, as "DATABASE, mixed traffic")."""
    if kannel_skipped:
        return {"skipped": kannel_skipped}
    ratios: dict[str, Any] = {}
    for result in results:
        if result.scenario not in ("c", "f") or result.skipped or result.extra.get("failed"):
            continue
        if "ratio_to_kannel" in result.extra:
            matched = result.extra.get("durability") == "matched"
            suffix = ", matched durability" if matched else ""
            if result.scenario == "f":
                suffix = f", {MIXED}"
            ratios[result.database + suffix] = result.extra["ratio_to_kannel"]
    return ratios or {"skipped": "scenarios c and f not run"}


def targets(results: list[Result], ratios: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of the issue's targets: what was measured, per database, and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(target: str, database: str, measured: str, met: bool | None) -> None:
        found.append({"target": target, "database": database, "measured": measured, "met": met})

    for database, ratio in ratios.items():
        if isinstance(ratio, dict):
            value = ratio.get("callbacks_per_s") or 0.0
            add("end to end >= Kannel (receipt callbacks/s)", database, f"{value}x", value >= 1)
            add("end to end >= 2x Kannel (receipt callbacks/s)", database, f"{value}x", value >= 2)
    for result in results:
        if result.skipped or result.extra.get("failed"):
            continue
        if result.scenario == "a":
            p99 = result.extra.get("paced_p99_ms") or 0.0
            achieved = result.extra.get("paced_accepted_per_s") or 0.0
            offered = result.extra.get("paced_offered_per_s") or 0.0
            add(
                f"REST accept p99 < 50 ms at 1,000 msg/s (offered {offered:,.0f}/s)",
                result.database,
                f"p99 {p99:,.1f} ms at {achieved:,.0f} accepted/s",
                (achieved >= 0.98 * offered and p99 < 50) if offered >= 1000 else None,
            )
        elif result.scenario == "d":
            add(
                "OTP submit p99 < 100 ms behind the backlog",
                result.database,
                f"p99 {result.p99_ms:,.1f} ms (backlog {result.extra.get('backlog'):,})",
                result.p99_ms < 100 and not result.errors,
            )
        elif result.scenario == "e" and "dispatch_p99_ms_ratio" in result.extra:
            extra = result.extra
            # At a paced load (the closed loop's dispatch latency is the backlog it builds up,
            # which follows the accept/dispatch rate difference, not the store's size).
            keys = (
                ("paced_accept_p99_ms_ratio", "paced_dispatch_p99_ms_ratio", "peak_rss_mb_ratio")
                if "paced_dispatch_p99_ms_ratio" in extra
                else ("accept_p99_ms_ratio", "dispatch_p99_ms_ratio", "peak_rss_mb_ratio")
            )
            worst = max(extra[key] for key in keys)
            add(
                f"flat latency and memory to {extra['stored']:,} messages (ratios <= 1.2)",
                result.database,
                ", ".join(f"{key.removesuffix('_ratio')} {extra[key]}x" for key in keys),
                worst <= 1.2,
            )
    return found


def table(results: list[Result]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| scenario | database | messages | seconds | msg/s | p50 ms | p99 ms | peak RSS MB "
        "| errors | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.scenario}: {r.name} | {r.database} | | | | | | | | {r.skipped} |")
            continue
        note = r.extra.get("failed", "")
        if note:
            pass
        elif r.scenario == "a" and r.extra.get("paced_offered_per_s"):
            note = (
                f"offered {r.extra['paced_offered_per_s']:,.0f}/s"
                + (f" for {r.extra['paced_seconds']:g} s" if r.extra.get("paced_seconds") else "")
                + ": "
                f"{r.extra['paced_accepted_per_s']:,.0f}/s, p50 {r.extra['paced_p50_ms']:,.1f} ms,"
                f" p99 {r.extra['paced_p99_ms']:,.1f} ms"
            )
            if r.extra.get("paced_warmup_seconds"):
                note += (
                    f" (after {r.extra['paced_warmup_seconds']:g} s of warm-up, whose p99 was "
                    f"{r.extra['paced_warmup_p99_ms']:,.1f} ms)"
                )
        elif r.scenario in ("c", "f"):
            note = (
                f"accepted {r.extra['accepted_per_s']:,.0f}/s, submitted "
                f"{r.extra['submitted_per_s']:,.0f}/s, callbacks "
                f"{r.extra['callbacks_per_s']:,.0f}/s; p: accept"
            )
            if "ratio_to_kannel" in r.extra:
                ratio = r.extra["ratio_to_kannel"]
                note += (
                    f"; vs Kannel {ratio['accepted_per_s']}x / {ratio['submitted_per_s']}x / "
                    f"{ratio['callbacks_per_s']}x"
                )
            gateway_ms = r.extra["gateway_cpu_ms_per_message"]
            note += f"; gateway CPU {gateway_ms:.3f} ms/message"
            if "cpu_ratios" in r.extra:
                cpu = r.extra["cpu_ratios"]
                note += (
                    f" ({cpu['gateway_cpu_ratio']}x Kannel's; the cores allow "
                    f"{cpu['cpu_bound_ratio']}x)"
                )
            if "floor" in r.extra:
                floor = r.extra["floor"]
                note += (
                    f"; {floor['floor_callbacks_per_s_ratio']}x Kannel's callbacks/s (the "
                    f"cores allow {floor.get('floor_cpu_bound_ratio')}x); Pigeon spends "
                    f"{floor['pigeon_cpu_over_floor']}x its CPU per message"
                )
        elif r.scenario == "d":
            note = (
                f"p: POST->submit_sm; msg/s: all submits; accept p99 "
                f"{r.extra['accept_p99_ms']:,.1f} ms; backlog left "
                f"{r.extra['backlog_left_at_end']:,}"
            )
        elif r.scenario == "e":
            note = (
                f"p: POST->submit_sm; accept {r.extra['accept_per_s']:,.0f}/s p99 "
                f"{r.extra['accept_p99_ms']:,.1f} ms"
            )
            if "paced_dispatch_p99_ms" in r.extra:
                note += (
                    f"; paced {r.extra['paced_rate_per_s']:,.0f}/s: dispatch p50 "
                    f"{r.extra['paced_dispatch_p50_ms']:,.1f} ms p99 "
                    f"{r.extra['paced_dispatch_p99_ms']:,.1f} ms, accept p99 "
                    f"{r.extra['paced_accept_p99_ms']:,.1f} ms"
                )
            if "dispatch_p99_ms_ratio" in r.extra:
                note += (
                    f"; vs empty: dispatch p99 {r.extra['dispatch_p99_ms_ratio']}x, accept p99 "
                    f"{r.extra['accept_p99_ms_ratio']}x, RSS {r.extra['peak_rss_mb_ratio']}x"
                )
            if "paced_dispatch_p99_ms_ratio" in r.extra:
                note += (
                    f"; paced vs empty: dispatch p99 {r.extra['paced_dispatch_p99_ms_ratio']}x, "
                    f"accept p99 {r.extra['paced_accept_p99_ms_ratio']}x"
                )
        lines.append(
            f"| {r.scenario}: {r.name} | {r.database} | {r.messages:,} | {r.seconds:,.1f} "
            f"| {r.rate:,.0f} | {r.p50_ms:,.1f} | {r.p99_ms:,.1f} | {r.peak_rss_mb:,.0f} "
            f"| {r.errors:,} | {note} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="e.g. a,c")
    parser.add_argument("--databases", default=",".join(DATABASES), help="sqlite,postgresql")
    parser.add_argument("--no-kannel", action="store_true", help="scenarios c and f without Kannel")
    parser.add_argument(
        "--no-floor", action="store_true", help="scenario c without the Python floor (ADR 24)"
    )
    parser.add_argument("--output", default="docs/benchmarks-latest.json", help="JSON results")
    parser.add_argument("--report", metavar="JSON", help="only print the table of a JSON result")
    parser.add_argument(
        "--profile-dir",
        metavar="DIR",
        help="scenario e under py-spy record: one file of raw stacks per phase in DIR "
        "(py-spy shares the cores: the figures of such a run are not comparable)",
    )
    for name, value in FULL.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=None, help=f"default {value:,}")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
    for database in args.databases:
        if database not in DATABASES:
            parser.error(f"unknown database {database!r} (one of {', '.join(DATABASES)})")
    return args


def report(path: Path) -> None:
    """Print the table, ratios and targets of a JSON result written earlier."""
    document = json.loads(path.read_text())
    fields = set(Result.__dataclass_fields__) - {"rate"}
    results = []
    for row in document["results"]:
        result = Result(**{k: v for k, v in row.items() if k in fields})
        result.rate = row["msg_per_s"]
        results.append(result)
    print(table(results))
    print(f"\nPigeon / Kannel: {json.dumps(document['kannel_ratio'])}")
    print_targets(document["targets"])


def print_targets(found: list[dict[str, Any]]) -> None:
    print("\nTargets (issue 5):")
    for target in found:
        mark = {True: "met", False: "NOT met", None: "not measured (offered < 1,000/s)"}[
            target["met"]
        ]
        print(f"- {target['target']} [{target['database']}]: {target['measured']} -> {mark}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        report(Path(args.report))
        return 0
    config = dict(QUICK if args.quick else FULL)
    for name in FULL:
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    config["floor"] = not args.no_floor
    if args.profile_dir:
        Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
        config["profile_dir"] = str(Path(args.profile_dir).resolve())
    started = time.monotonic()
    document: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {**config, "scenarios": args.scenarios, "databases": args.databases},
    }
    print(f"machine: {json.dumps(document['machine'])}", flush=True)
    results: list[Result] = []
    kannel_skipped = ""
    failed = False
    side_by_side = "c" in args.scenarios or "f" in args.scenarios
    if side_by_side:
        kannel_skipped = "--no-kannel" if args.no_kannel else ensure_kannel()
        if not kannel_skipped:
            document["machine"]["kannel"] = machine_info()["kannel"]
    config["kannel"] = not kannel_skipped
    unavailable = {}
    if "postgresql" in args.databases:
        why = postgres_available()
        if why:
            unavailable["postgresql"] = f"PostgreSQL not reachable: {why}"
    for database in args.databases:
        for scenario in args.scenarios:
            print(f"== {scenario} on {database}", flush=True)
            settle_disk()
            if database in unavailable:
                results.append(Result(scenario, "", database, skipped=unavailable[database]))
                failed = True
                continue
            try:
                with (
                    scratch(f"pigeon-bench-{scenario}-") as tmp,
                    fresh_database(database, tmp) as url,
                ):
                    rows = RUNNERS[scenario](config, url, database, tmp)
            except Exception as exc:  # one scenario failing must not lose the others
                traceback.print_exc()
                rows = [Result(scenario, "(failed)", database, extra={"failed": f"{exc!r}"})]
            for row in rows:
                if row.messages == 0 and not row.skipped:
                    row.extra.setdefault("failed", "no message went through")
                    failed = True
                print(json.dumps(row.as_dict()), flush=True)
            results.extend(rows)
    if kannel_skipped:
        kannel = Result("c", "end to end, Kannel 1.4.5", "-", skipped=kannel_skipped)
        results.insert(
            next((i for i, r in enumerate(results) if r.scenario > "c"), len(results)), kannel
        )
    ratios = kannel_ratios(results, kannel_skipped if side_by_side else "scenarios c and f not run")
    document["results"] = [r.as_dict() for r in results]
    document["kannel_ratio"] = ratios
    document["targets"] = targets(results, ratios)
    document["seconds"] = round(time.monotonic() - started, 1)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n")
    print()
    print(table(results))
    if isinstance(ratios, dict) and ratios and "skipped" not in ratios:
        print(f"\nPigeon / Kannel: {json.dumps(ratios)}")
    elif "skipped" in ratios:
        print(f"\nKannel: skipped ({ratios['skipped']})")
    print_targets(document["targets"])
    print(f"\n{len(results)} rows in {document['seconds']:,.0f} s; JSON in {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
