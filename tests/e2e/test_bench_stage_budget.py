"""``bench/stage_budget.py --from-raw``: each profiled sample goes to one stage, and a stage's
cost is its share of the process's samples times the process's CPU per message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MAIN = "main (pigeon/cli.py:1)"
RUNNER = "JobRunner._run_one (pigeon/services/worker.py:3)"


def _raw(*samples: tuple[list[str], int]) -> str:
    """py-spy's raw format: one stack per line, root first, frames joined by ";", a count."""
    return "".join(f"{';'.join([MAIN, *frames])} {count}\n" for frames, count in samples)


SERVE = _raw(
    (["Writer._loop (pigeon/store/writer.py:349)", "_plan (pigeon/store/messages.py:5)"], 30),
    (["FastAccept.__call__ (pigeon/api/fast_accept.py:9)"], 50),
    ([RUNNER, "post (pigeon/webhooks/sender.py:7)"], 15),
    (["select (selectors.py:4)"], 5),
)
WORKER = _raw(
    ([RUNNER, "DispatchMessage.__call__ (pigeon/services/dispatch.py:8)"], 60),
    (
        ["Writer._run_batch (pigeon/store/writer.py:9)", "change (pigeon/services/dispatch.py:3)"],
        40,
    ),
)


def test_samples_are_split_into_stages_in_proportion_to_the_cpu_per_message(
    tmp_path: Path,
) -> None:
    """A writer batch counts as store writes even when it runs a dispatch change, a webhook
    job run as webhooks, a stack with no marker as the loop; costs are shares of the ms."""
    (tmp_path / "serve.txt").write_text(SERVE)
    (tmp_path / "worker.txt").write_text(WORKER)
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "stage_budget.py"), "--from-raw"),
            f"serve=0.5:{tmp_path / 'serve.txt'}",
            f"worker=1.0:{tmp_path / 'worker.txt'}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:4]]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| stage")
    }
    assert rows["store writes"] == ["0.150", "0.400"]
    assert rows["HTTP accept"] == ["0.250", ""]
    assert rows["webhooks"] == ["0.075", ""]
    assert rows["the loop (timers, callbacks)"] == ["0.025", ""]
    assert rows["dispatch and submit"] == ["", "0.600"]
    assert rows["**all**"] == ["0.500", "1.000"]


def test_detail_breaks_a_stage_down_by_call_path_below_a_frame(tmp_path: Path) -> None:
    """``--detail STAGE --below Writer.`` gives the stage's call paths under the writer's
    frames, with their share of the process's ms and samples, costliest first."""
    worker = _raw(
        (
            [
                "Writer._loop (pigeon/store/writer.py:9)",
                "Writer._commit (pigeon/store/writer.py:12)",
                "SqlMessageStore._plan (pigeon/store/messages.py:650)",
                "EventRecorder.record (pigeon/services/events.py:231)",
            ],
            30,
        ),
        (
            [
                "Writer._loop (pigeon/store/writer.py:9)",
                "Writer._commit (pigeon/store/writer.py:14)",
                "SqlMessageStore._plan (pigeon/store/messages.py:700)",
                "EventRecorder.record (pigeon/services/events.py:260)",
            ],
            10,
        ),
        (
            [
                "Writer._loop (pigeon/store/writer.py:9)",
                "SqlJobQueue.claim (pigeon/queue/sql.py:186)",
            ],
            10,
        ),
        ([RUNNER, "DispatchMessage.__call__ (pigeon/services/dispatch.py:8)"], 50),
    )
    (tmp_path / "worker.txt").write_text(worker)
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "stage_budget.py"), "--from-raw"),
            f"worker=1.0:{tmp_path / 'worker.txt'}",
            *("--detail", "store writes", "--below", "Writer.", "--depth", "1"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    detail = done.stdout.split("worker, store writes:", 1)[1]
    rows = [
        [cell.strip() for cell in line.split("|")[1:4]]
        for line in detail.splitlines()
        if line.startswith("| ") and not line.startswith("| call path")
    ]
    assert rows == [
        [
            "SqlMessageStore._plan (store/messages.py) > EventRecorder.record (services/events.py)",
            "0.4000",
            "40.0",
        ],
        ["SqlJobQueue.claim (queue/sql.py)", "0.1000", "10.0"],
    ]


def test_writer_splits_the_store_writes_by_kind_of_work(tmp_path: Path) -> None:
    """``--writer`` gives a change callback under a plan to the status changes' own logic,
    the plan's other frames to the mutation plans, a claim's statement to the claims, and
    a writer frame with no marker to the transactions around them."""
    loop = "Writer._loop (pigeon/store/writer.py:9)"
    plan = "SqlMessageStore._plan (pigeon/store/messages.py:650)"
    worker = _raw(
        ([loop, plan, "_ReceiptChange.__call__ (pigeon/services/receipts.py:150)"], 30),
        ([loop, plan, "_copy (pigeon/store/messages.py:1227)"], 20),
        ([loop, plan, "SystemClock.now (pigeon/clock.py:20)"], 5),
        (
            [
                loop,
                "SqlJobQueue.claim (pigeon/queue/sql.py:186)",
                "RawSelect.rows (pigeon/raw_sql.py:182)",
            ],
            10,
        ),
        ([loop, "_Statement.write (pigeon/store/bulk.py:300)"], 15),
        ([loop, "Writer._commit (pigeon/store/writer.py:466)"], 10),
        ([RUNNER, "DispatchMessage.__call__ (pigeon/services/dispatch.py:8)"], 10),
    )
    (tmp_path / "worker.txt").write_text(worker)
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "stage_budget.py"), "--from-raw"),
            f"worker=1.0:{tmp_path / 'worker.txt'}",
            "--writer",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    table = done.stdout.split("| store writes by kind of work |", 1)[1]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in table.splitlines()
        if line.startswith("| ")
    }
    assert rows == {
        "status changes' own logic": "0.300",
        "mutation plans": "0.250",
        "statements": "0.150",
        "job claims": "0.100",
        "transactions and answers": "0.100",
        "**all**": "0.900",
    }
