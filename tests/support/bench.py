"""Run a benchmark of ``bench/`` as a child process, on this checkout, and read its tables."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def run_bench(
    script: str, *arguments: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``bench/<script> <arguments>`` run to its end, its output kept; a failed run fails the
    test with the end of what it printed."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"{script} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def table_rows(output: str) -> list[list[str]]:
    """The rows of the Markdown tables in ``output`` (header rows too, separators left out),
    as their cells."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in output.splitlines()
        if line.startswith("| ")
    ]


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` imported as a module, its sibling imports (``harness``...) resolved
    from ``bench``."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))
