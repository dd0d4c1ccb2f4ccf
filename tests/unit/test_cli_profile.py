"""The gateway's optional profile: each process's cProfile statistics, written as it stops."""

from __future__ import annotations

import os
import pstats
from pathlib import Path

import pytest

from pigeon.cli import _run_on_uvloop


def _marked_work() -> int:
    return sum(range(10))


async def _main_calling_marked_work(times: int) -> None:
    for _ in range(times):
        _marked_work()


async def _main_failing() -> None:
    _marked_work()
    raise RuntimeError("stopped")


def _calls_of(stats_file: Path, function: str) -> int:
    stats = pstats.Stats(str(stats_file))
    return sum(
        row[1]
        for (_, _, name), row in stats.stats.items()  # type: ignore[attr-defined]
        if name == function
    )


def test_a_profiled_run_writes_its_statistics_named_by_command_and_pid(tmp_path: Path) -> None:
    """With a profile folder the run's calls are counted and written to <command>-<pid>.pstats."""
    folder = tmp_path / "profiles"
    _run_on_uvloop(_main_calling_marked_work(7), command="worker", profile_dir=str(folder))
    written = folder / f"worker-{os.getpid()}.pstats"
    assert [p.name for p in folder.iterdir()] == [written.name]
    assert _calls_of(written, "_marked_work") == 7


def test_a_run_that_fails_still_writes_its_statistics(tmp_path: Path) -> None:
    """The statistics are written however the process's main coroutine ends."""
    with pytest.raises(RuntimeError, match="stopped"):
        _run_on_uvloop(_main_failing(), profile_dir=str(tmp_path))
    assert _calls_of(tmp_path / f"serve-{os.getpid()}.pstats", "_marked_work") == 1


def test_without_a_profile_folder_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default runs without a profiler and writes no file."""
    monkeypatch.chdir(tmp_path)
    _run_on_uvloop(_main_calling_marked_work(1))
    assert list(tmp_path.iterdir()) == []
