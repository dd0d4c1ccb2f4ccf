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
STORE_WRITE_SECONDS = Histogram(
    "pigeon_store_write_seconds",
    "Time of each committed write transaction of this process's group-commit writer, from its"
    " start until it is durable, at the end of its COMMIT or of the WAL's sync after it"
    " (waiting for SQLite's write lock and the disk's sync included): a slow or stalled disk"
    " shows here first.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
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

# Quality figures per connector (see docs/connectors.md, "Quality figures").
CONNECTOR_SUBMITTED = Counter(
    "pigeon_connector_submitted",
    "Messages a connector's carrier accepted.",
    ["connector"],
    registry=REGISTRY,
)
CONNECTOR_OUTCOMES = Counter(
    "pigeon_connector_outcomes",
    "Final receipts of a connector's messages, by outcome (delivered, undelivered).",
    ["connector", "outcome"],
    registry=REGISTRY,
)
CONNECTOR_ERRORS = Counter(
    "pigeon_connector_errors",
    "Submit errors of a connector, by error code.",
    ["connector", "code"],
    registry=REGISTRY,
)
CONNECTOR_RECEIPT_LATENCY = Histogram(
    "pigeon_connector_receipt_latency_seconds",
    "Time from a carrier accepting a message to its final receipt, per connector.",
    ["connector"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200, 21600, 86400),
    registry=REGISTRY,
)
CONNECTOR_DELIVERY_RATE = Gauge(
    "pigeon_connector_delivery_rate",
    "Delivered among final receipts over a sliding window (5m, 1h, 24h), sampled at scrape; "
    "absent while the window holds no receipt.",
    ["connector", "window"],
    registry=REGISTRY,
)
CONNECTOR_RECEIPT_LATENCY_P90 = Gauge(
    "pigeon_connector_receipt_latency_p90_seconds",
    "90th percentile of receipt latency over a sliding window (5m, 1h, 24h), sampled at "
    "scrape; absent while the window holds no latency.",
    ["connector", "window"],
    registry=REGISTRY,
)
