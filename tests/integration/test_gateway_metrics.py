"""The gauges ``pigeon serve`` samples at each scrape of ``/metrics``, on a real store."""

from __future__ import annotations

from pathlib import Path

from pigeon.bootstrap import open_gateway
from pigeon.config import Settings
from pigeon.ports import NewJob
from pigeon.telemetry import REGISTRY


def _pending(kind: str) -> float | None:
    return REGISTRY.get_sample_value("pigeon_jobs_pending", {"kind": kind})


async def test_scrapes_within_the_max_age_share_one_count_of_the_queued_jobs(
    tmp_path: Path, database_url: str
) -> None:
    """The first scrape counts the queued jobs; a scrape seconds later shows that count, not a
    new one (a count of a large queue is read once per JOB_COUNT_MAX_AGE)."""
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, run_smpp=False, run_workers=False
    )
    gateway = await open_gateway(settings)
    try:
        now = gateway.clock.now()

        def job(number: int) -> NewJob:
            return NewJob(
                id=f"dispatch:metrics-{number}",
                kind="dispatch",
                payload={"message_id": f"msg_{number}"},
                run_at=now,
                priority=50,
            )

        await gateway.queue.enqueue([job(1), job(2)])
        await gateway.sample_metrics()
        assert _pending("dispatch") == 2.0
        await gateway.queue.enqueue([job(3)])
        await gateway.sample_metrics()
        assert _pending("dispatch") == 2.0
        assert await gateway.queue.pending() == {"dispatch": 3}
    finally:
        await gateway.close()
