"""Prometheus metrics shared by the use cases and adapters (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGE_STATUS = Counter(
    "pigeon_message_status_changes",
    "Status changes of messages, by the status reached, category and connector.",
    ["status", "category", "connector"],
    registry=REGISTRY,
)
ACCEPT_SECONDS = Histogram(
    "pigeon_accept_seconds",
    "Time to durably accept one message (validation, group commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "pigeon_delivery_seconds",
    "Time from acceptance to a delivered receipt.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
SUBMIT_ERRORS = Counter(
    "pigeon_submit_errors",
    "Carrier submit failures, by connector and kind (temporary, throttled, permanent).",
    ["connector", "kind"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "pigeon_webhook_attempts",
    "Webhook delivery attempts, by outcome (ok, failed, disabled).",
    ["outcome"],
    registry=REGISTRY,
)
JOBS_PENDING = Gauge(
    "pigeon_jobs_pending",
    "Jobs waiting in the queue, by kind (sampled at scrape).",
    ["kind"],
    registry=REGISTRY,
)
