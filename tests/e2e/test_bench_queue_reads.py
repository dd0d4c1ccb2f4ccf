"""``bench/queue_reads.py``: the queue's readiness probe and count timed behind a backlog."""

from __future__ import annotations

from support.bench import run_bench, table_rows


def test_probe_and_count_are_timed_on_each_database_with_jit_compared() -> None:
    """Each database gets a row with the probe and the count timed; PostgreSQL's also has the
    count with JIT on and off."""
    completed = run_bench("queue_reads.py", "--backlog", "300", "--repeat", "2")
    header, *rest = table_rows(completed.stdout)
    assert header[:3] == ["database", "probe", "pending"]
    rows = {cells[0]: cells[1:] for cells in rest}
    assert float(rows["sqlite"][0]) > 0
    assert float(rows["sqlite"][1]) > 0
    if "postgresql" in rows:  # skipped (and said on stderr) only when the server is down
        assert header[3:] == ["count, jit on", "count, jit off"]
        assert all(float(cell) > 0 for cell in rows["postgresql"])
    else:
        assert "PostgreSQL skipped" in completed.stderr
    assert "with 300 jobs queued" in completed.stdout
