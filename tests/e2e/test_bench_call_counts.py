"""``bench/call_counts.py``: the processes' ``cProfile`` statistics read as calls per delivered
message, a tree's gateway apart from the Python floor's."""

from __future__ import annotations

import cProfile
from pathlib import Path
from types import ModuleType

import pytest

from support.bench import bench_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def call_counts() -> ModuleType:
    """The ``bench/call_counts.py`` module."""
    return bench_module("call_counts")


def _write_profile(path: Path, calls: int) -> None:
    """Statistics of a process that called ``work`` ``calls`` times."""

    def work() -> int:
        return 1

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        work()
    profiler.disable()
    profiler.dump_stats(str(path))


def _work_calls(counted: object, process: str) -> float:
    """Calls per message of ``work`` in ``process`` of ``counted``."""
    by_process = counted.by_process[process]  # type: ignore[attr-defined]
    return sum(calls for (_, _, name), calls in by_process.items() if name == "work")


def test_the_floors_processes_are_counted_apart_from_the_gateways(
    call_counts: object, tmp_path: Path
) -> None:
    """``serve``'s and a worker's statistics make the tree's run, the floor's (``floor-*``)
    a run of its own labelled with its rung; each call count is divided by the messages."""
    _write_profile(tmp_path / "serve-10.pstats", 40)
    _write_profile(tmp_path / "worker-11.pstats", 20)
    _write_profile(tmp_path / "floor-12.pstats", 10)
    read = call_counts.read_profiles  # type: ignore[attr-defined]
    tree, floor = read("this", tmp_path, 10, "features")
    assert tree.label == "this"
    assert sorted(tree.by_process) == ["serve", "worker 1"]
    assert _work_calls(tree, "serve") == 4.0
    assert _work_calls(tree, "worker 1") == 2.0
    assert floor.label == "floor (features)"
    assert list(floor.by_process) == ["python floor 1"]
    assert _work_calls(floor, "python floor 1") == 1.0


def test_a_floor_asked_for_but_not_profiled_is_an_error(
    call_counts: object, tmp_path: Path
) -> None:
    """A run asked to count the floor whose floor wrote no statistics stops with a message,
    rather than reporting the tree alone as if it were both."""
    _write_profile(tmp_path / "serve-10.pstats", 4)
    with pytest.raises(SystemExit, match="the floor"):
        call_counts.read_profiles("this", tmp_path, 10, "features")  # type: ignore[attr-defined]
    (only,) = call_counts.read_profiles("this", tmp_path, 10, None)  # type: ignore[attr-defined]
    assert list(only.by_process) == ["serve"]
