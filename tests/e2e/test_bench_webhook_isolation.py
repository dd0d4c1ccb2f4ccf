"""``bench/webhook_isolation.py``: a fast webhook receiver beside a slow one, through a real
``pigeon serve``. No time is asserted."""

from __future__ import annotations

from support.bench import run_bench, table_rows


def test_reports_both_receivers_after_each_has_every_webhook() -> None:
    """A short run of this checkout: every send accepted and both receivers got a webhook
    for each, with the seconds to each one's last."""
    done = run_bench(
        "webhook_isolation.py", "--messages", "300", "--slow-latency", "0.3", timeout=240
    )
    header, row = table_rows(done.stdout)
    assert header[0] == "tree"
    assert row[0] == "this"
    assert row[1].startswith("300 in ")
    # Fields are ", "-separated; a rate may have a thousands comma of its own ("1,148").
    fast_count, fast_seconds, _ = row[2].split(", ")
    slow_count, slow_seconds = row[4].split(", ")
    assert (fast_count, slow_count) == ("300", "300")
    assert float(fast_seconds) > 0
    assert float(slow_seconds) > 0
    assert row[5] == "1.000"
    assert "command: python bench/webhook_isolation.py" in done.stdout
