"""``bench/kannel_side_by_side.py``'s report: how busy the cores were, and what ratio the CPU
per message alone allows."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType

import pytest

from pigeon.domain.addressing import parse_msisdn
from pigeon.domain.encoding import analyse
from support.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def side_by_side() -> ModuleType:
    """The script as a module."""
    return bench_module("kannel_side_by_side")


def _phase(module: ModuleType, name: str, cpu: dict[str, float]) -> object:
    return module.Phase(name=name, callbacks=1_000, callback_rate=250.0, cpu=cpu, wall=4.0)


def test_the_cores_allow_the_ratio_of_cpu_per_message_gateway_and_harness_together(
    side_by_side: ModuleType,
) -> None:
    """Kannel at 6 ms of CPU per message in all and Pigeon at 8 ms: the cores allow 0.75x."""
    kannel = _phase(
        side_by_side, "Kannel", {"bearerbox": 2.0, "smsbox": 2.0, "load generator": 2.0}
    )
    pigeon = _phase(
        side_by_side,
        "Pigeon",
        {"pigeon serve": 4.0, "pigeon worker 1": 2.0, "load generator": 2.0},
    )
    assert side_by_side.cores_allow(pigeon, kannel) == pytest.approx(0.75)
    assert side_by_side.cores_allow(kannel, kannel) == pytest.approx(1.0)


def test_the_phase_note_adds_up_every_process_against_the_cores(
    side_by_side: ModuleType,
) -> None:
    """8 CPU seconds over a 4 s phase are 200% of the machine's cores, named after each part."""
    pigeon = _phase(
        side_by_side,
        "Pigeon",
        {"pigeon serve": 4.0, "pigeon worker 1": 2.0, "load generator": 2.0},
    )
    note = side_by_side.cpu_note(pigeon)
    assert note.startswith("pigeon serve 100%, pigeon worker 1 50%, load generator 50%; ")
    assert note.endswith(f"all 200% of {os.cpu_count() or 1} cores")


def test_matched_durability_gives_kannel_its_store_and_pigeon_unsynced_commits(
    side_by_side: ModuleType, tmp_path: Path
) -> None:
    """--matched-durability writes Kannel a file store and runs Pigeon without synced commits."""
    strict = argparse.Namespace(
        kannel_store="none", matched_durability=False, pigeon_binds=1, database_url=None
    )
    matched = argparse.Namespace(**{**vars(strict), "matched_durability": True})
    assert side_by_side.kannel_store(strict) == "none"
    assert side_by_side.kannel_store(matched) == "file"
    assert side_by_side.pigeon_durability_env(strict) == {}
    assert side_by_side.pigeon_durability_env(matched) == {"PIGEON_SYNCHRONOUS_COMMIT": "false"}
    assert side_by_side.pigeon_setup(matched).endswith("synchronous_commit off")
    sim = argparse.Namespace(port=2775)
    ports = {"admin": 13000, "box": 13001, "sendsms": 13013}
    written = side_by_side.kannel_config(tmp_path, sim, ports, "file")
    assert "store-type = file" in written
    assert "store-type" not in side_by_side.kannel_config(tmp_path, sim, ports, "none")


@pytest.mark.parametrize("parts", [1, 2, 4, 7])
def test_the_long_text_of_parts_segments_is_that_many_gsm_segments(
    side_by_side: ModuleType, parts: int
) -> None:
    """``--parts N`` sends a GSM-7 text that splits into exactly N segments."""
    info = analyse(side_by_side.message_text(parts))
    assert (info.encoding.value, info.segments) == ("gsm7", parts)


def test_the_carrier_latency_becomes_the_sims_response_delay(side_by_side: ModuleType) -> None:
    """``--carrier-latency`` is passed to each sim as its response-delay fault; none at 0."""
    args = argparse.Namespace(carrier_latency=0.05)
    assert side_by_side.sim_flags(args) == ("--fault", "response-delay:0.05")
    assert side_by_side.sim_flags(argparse.Namespace(carrier_latency=0.0)) == ()


def test_a_carrier_cap_is_written_into_both_gateways_configs(
    side_by_side: ModuleType, tmp_path: Path
) -> None:
    """``--throughput N`` becomes Kannel's smsc ``throughput = N``; none without it."""

    class FakeSim:
        port = 2775

    ports = {"admin": 1, "box": 2, "sendsms": 3}
    capped = side_by_side.kannel_config(tmp_path, FakeSim(), ports, "none", 1, 500)
    assert "\nthroughput = 500\n" in capped
    assert "throughput" not in side_by_side.kannel_config(tmp_path, FakeSim(), ports, "none")


def test_the_realistic_mix_sends_texts_of_the_segments_and_scripts_it_declares(
    side_by_side: ModuleType,
) -> None:
    """``--mix realistic`` cycles through texts whose encoding and segments are what the mix
    says, 1.3 segments a message on average, to valid numbers of many regions."""
    traffic = side_by_side.traffic_of(argparse.Namespace(mix="realistic"))
    assert len(traffic.texts) == 20
    for text, parts in traffic.texts:
        info = analyse(text)
        assert info.segments == parts
        assert info.encoding.value in ("gsm7", "ucs2")
    kinds = {(parts, analyse(text).encoding.value) for text, parts in traffic.texts}
    assert kinds == {(1, "gsm7"), (1, "ucs2"), (2, "gsm7"), (3, "gsm7"), (2, "ucs2")}
    assert sum(traffic.parts(index) for index in range(20)) == 26
    assert traffic.most_parts == 3
    assert len(traffic.recipients) == 10_000
    assert len(set(traffic.recipients)) > 9_900  # a campaign's: nearly every number new
    regions = {parse_msisdn(number).country for number in traffic.recipients[:2000]}
    assert len(regions) > 100


def test_the_realistic_mix_has_undelivered_receipts_called_back_on_both_gateways(
    side_by_side: ModuleType,
) -> None:
    """With ``--mix realistic`` 5% of receipts are UNDELIV unless ``--undelivered`` says
    otherwise, and both gateways call back for either outcome."""
    mixed = argparse.Namespace(mix="realistic", undelivered=0.0, carrier_latency=0.0)
    assert side_by_side.undelivered_share(mixed) == 5.0
    assert side_by_side.dlr_mask(mixed) == "3"
    assert side_by_side.webhook_events(mixed) == ["message.delivered", "message.undelivered"]
    assert "DELIVRD=95,UNDELIV=5" in side_by_side.sim_flags(mixed)
    given = argparse.Namespace(mix="realistic", undelivered=20.0)
    assert side_by_side.undelivered_share(given) == 20.0
    uniform = argparse.Namespace(mix="uniform", undelivered=0.0)
    assert side_by_side.undelivered_share(uniform) == 0.0
    assert side_by_side.dlr_mask(uniform) == "1"
    plain = side_by_side.traffic_of(argparse.Namespace(parts=2))
    assert plain.most_parts == 2
    assert plain.recipients[:2] == ("+14155550000", "+14155550001")
