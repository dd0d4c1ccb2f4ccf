"""``bench/list_reads.py``: each shape of listing timed on an empty and on a seeded store."""

from __future__ import annotations

from support.bench import run_bench, table_rows


def test_every_listing_shape_is_timed_on_both_store_sizes() -> None:
    """Each listing shape gets a time on the empty and the seeded store, with the rows the
    seeded one gave: all of them for a plain listing, none for a status no message is in."""
    arguments = ("--stored", "300", "--repeat", "1", "--database", "sqlite")
    completed = run_bench("list_reads.py", *arguments)
    rows = {cells[0]: cells[1:] for cells in table_rows(completed.stdout)}
    assert rows["listing"] == ["this: empty", "this: 300"]
    for shape in ("all", "delivered", "failed", "queued", "sent", "to", "window", "window queued"):
        empty, seeded = rows[shape]
        assert float(empty) > 0
        assert float(seeded.split()[0]) > 0
    assert rows["all"][1].endswith("(50+)")  # 300 messages: a full page and more
    assert rows["queued"][1].endswith("(0)")  # none queued, and fewer than the bound read
