"""Liveness, readiness and Prometheus metrics for whoever runs the gateway."""

from __future__ import annotations

from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import generate_latest

from pigeon.api.dependencies import Services
from pigeon.api.problems import log
from pigeon.api.schemas import Health, Readiness
from pigeon.telemetry import REGISTRY

TAGS = ["Operations"]
#: The Prometheus text format; Litestar appends the charset to text/* types.
METRICS_MEDIA_TYPE = "text/plain; version=0.0.4"


@get(
    "/healthz",
    operation_id="healthz",
    tags=TAGS,
    summary="Liveness",
    description="`200` while the process answers.",
)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@get(
    "/readyz",
    operation_id="readyz",
    tags=TAGS,
    summary="Readiness",
    description=(
        "`200` when the store, the queue and the connectors are ready, `503` otherwise; "
        "`checks` tells which."
    ),
    responses={503: ResponseSpec(Readiness, description="Something is not ready.")},
)
async def readyz(services: Services) -> Response[Readiness]:
    """Whether every dependency is ready to take traffic."""
    try:
        checks = await services.readiness()
    except Exception as exc:  # a failing probe means "not ready", never a 500
        log.warning("readiness_failed", exc_info=exc)
        checks = {}
    ready = bool(checks) and all(checks.values())
    return Response(
        Readiness(status="ok" if ready else "unavailable", checks=checks),
        status_code=200 if ready else 503,
    )


@get(
    "/metrics",
    operation_id="metrics",
    tags=TAGS,
    summary="Prometheus metrics",
    description="The `pigeon_*` metrics in the Prometheus text format.",
    media_type=METRICS_MEDIA_TYPE,
)
async def metrics(services: Services) -> Response[bytes]:
    """Every metric of the process registry, with sampled gauges refreshed first."""
    try:
        await services.before_metrics()
    except Exception as exc:  # stale gauges beat a failed scrape
        log.warning("metrics_refresh_failed", exc_info=exc)
    return Response(generate_latest(REGISTRY), media_type=METRICS_MEDIA_TYPE)


ROUTES = [healthz, readyz, metrics]
