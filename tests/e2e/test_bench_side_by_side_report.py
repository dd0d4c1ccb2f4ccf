"""``bench/kannel_side_by_side.py``'s report: how busy the cores were, and what ratio the CPU
per message alone allows."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def side_by_side() -> ModuleType:
    """The script as a module (its sibling imports resolved from ``bench``)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import kannel_side_by_side

        return kannel_side_by_side
    finally:
        sys.path.remove(str(ROOT / "bench"))


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
