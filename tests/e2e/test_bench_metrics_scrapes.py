"""``bench/metrics_scrapes.py``: accept latency alone and while ``/metrics`` is scraped."""

from __future__ import annotations

from support.bench import run_bench, table_rows


def test_both_phases_are_timed_and_the_scrapes_too() -> None:
    """A tree's row has the accept p50 and p99 alone and under scrapes, and a scrape's time."""
    arguments = ("--backlog", "500", "--rate", "40", "--seconds", "1.5", "--database", "sqlite")
    completed = run_bench("metrics_scrapes.py", *arguments)
    rows = [cells for cells in table_rows(completed.stdout) if cells[0] == "this"]
    assert len(rows) == 1
    _, alone, scraped, scrape = rows[0]
    for pair in (alone, scraped):
        p50, p99 = (float(value) for value in pair.split(" / "))
        assert 0 < p50 <= p99
    assert float(scrape) > 0
    assert "errors" not in completed.stdout
    assert "500 jobs queued, 40 sends/s" in completed.stdout
