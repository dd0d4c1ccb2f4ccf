"""The schema, as SQLAlchemy Core tables: one ``MetaData`` for SQLite and PostgreSQL alike.

Portable choices: ids are text (our prefixed, time-ordered ULIDs, so ordering by id is ordering
by creation); times are timezone-aware UTC (``timestamptz`` on PostgreSQL, an ISO-like string
on SQLite, see ``UtcDateTime``); JSON is ``jsonb`` on PostgreSQL (``json`` for the payloads it
never looks into) and text on SQLite; money is a
64-bit integer of micro-units; enums are stored as their string values (no database enum types,
so adding a status needs no migration).

This module describes the current schema; the migrations under ``migrations/versions`` are what
builds it, and a test checks that both agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

#: Stable constraint and index names, so migrations can refer to them on both engines.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine.

    Naive datetimes are refused (they are always a bug here). PostgreSQL stores ``timestamptz``;
    SQLite stores the UTC wall time as ``YYYY-MM-DD HH:MM:SS.ffffff``, a fixed-width string that
    sorts and compares like the instant it stands for. Values come back aware, in UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive on SQLite, aware elsewhere); refuse naive input."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: Pigeon stores aware UTC times only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, stored text straight to an aware UTC datetime (``sqlite_utc``); elsewhere
        the driver's value through ``process_result_value``."""
        if dialect.name == "sqlite":
            return sqlite_utc
        return super().result_processor(dialect, coltype)


#: Stored texts recently read and their instants: a message's times come back in every read of
#: it, and rows written together share them (bounded: emptied when full).
_READ_TIMES: dict[str, datetime] = {}
_READ_TIMES_MAX = 4096
#: "YYYY-MM-DD HH:MM:SS.ffffff"
_STORED_LENGTH = 26


def sqlite_utc(value: str | None) -> datetime | None:
    """The aware UTC instant of a time SQLite stores (``UtcDateTime``'s text), or ``None``.

    One lookup for a text seen lately; else one ``fromisoformat``, where SQLAlchemy's reader
    parses and ``process_result_value`` then copies (a few per cent of a worker's CPU). The
    form Pigeon writes (26 characters, no offset) is read as UTC by ``fromisoformat`` itself:
    a fifth of the cost of reading it naive and then setting its zone."""
    if value is None:
        return None
    found = _READ_TIMES.get(value)
    if found is None:
        if len(value) == _STORED_LENGTH and value[19] == ".":
            found = datetime.fromisoformat(value + "+00:00")
        else:  # older forms: no fraction, or an offset of their own
            parsed = datetime.fromisoformat(value)
            found = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if len(_READ_TIMES) >= _READ_TIMES_MAX:
            _READ_TIMES.clear()
        _READ_TIMES[value] = found
    return found


#: JSON documents: ``jsonb`` on PostgreSQL, text on SQLite.
Json: sa.types.TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: JSON documents the database only stores and hands back, never looks into: ``json`` on
#: PostgreSQL (the text, checked, kept as it came), which costs about half of ``jsonb``'s
#: conversion to write (ADR 27); text on SQLite.
JsonText: sa.types.TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSON(), "postgresql")


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.Text, primary_key=True)


def _sqlite_foreign_key(
    column: str, parent: str, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    """A foreign key of a row every message writes: SQLite's only (ADR 35). There it is
    checked inline for next to nothing; PostgreSQL would run a query for each row and lock
    the parent row (a tenant's or an endpoint's, shared by nearly every transaction), so
    there the store keeps the reference itself."""
    constraint = sa.ForeignKeyConstraint([column], [parent], ondelete=ondelete)
    SQLITE_ONLY.append(constraint)
    return constraint.ddl_if(dialect="sqlite")


#: The schema items built on SQLite only (``_sqlite_foreign_key``).
SQLITE_ONLY: list[sa.ForeignKeyConstraint] = []


def compared_on(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` for a database of ``dialect``: the schema items this
    module builds there (a comparison of the metadata with the database skips the others)."""

    def include(item: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        return dialect == "sqlite" or not any(item is only for only in SQLITE_ONLY)

    return include


tenants = sa.Table(
    "tenants",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("default_region", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("digest", sa.Text, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
)

messages = sa.Table(
    "messages",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.Text, nullable=False),
    _sqlite_foreign_key("tenant_id", "tenants.id"),
    sa.Column("direction", sa.Text, nullable=False),
    # The domain calls it ``to``; ``recipient`` spares quoting a reserved word in every query.
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("sender", sa.Text),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("encoding", sa.Text, nullable=False),
    sa.Column("segments", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("status_sequence", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("country", sa.Text),
    sa.Column("client_ref", sa.Text),
    sa.Column("callback_url", sa.Text),
    sa.Column("send_at", UtcDateTime),
    sa.Column("expires_at", UtcDateTime),
    sa.Column("error_code", sa.Text),
    sa.Column("connector_id", sa.Text),
    sa.Column("price", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("is_test", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # ``smpp:<account id>`` for SMPP submissions (whose receipts go back over SMPP), else NULL.
    sa.Column("origin", sa.Text),
    sa.Column("origin_parts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("receipt_request", sa.Text, nullable=False, server_default="none"),
    # Until when its receipt is awaited once it is sent (then ``unknown``): set when the
    # message is accepted and never changed by a status change, so that a status change
    # writes no index entry (ADR 26); NULL for messages that await no receipt.
    sa.Column("receipt_due_at", UtcDateTime),
    # A fresh random number on every write of the row or its parts (0 when accepted): a
    # process holding a copy of the message compares it instead of re-reading the row.
    sa.Column("write_stamp", sa.BigInteger, nullable=False, server_default="0"),
    # Listing is newest first by id within a tenant, optionally filtered. No index holds
    # ``status``, which every status change writes (ADR 26): listing by a rare status goes
    # through ``ix_events_tenant_id_status_message_id``.
    sa.Index(None, "tenant_id", "id"),
    sa.Index(None, "tenant_id", "recipient", "id"),
    sa.Index(None, "tenant_id", "created_at"),
    # The receipt sweep walks the deadlines in order (``sweep_marks``).
    sa.Index(
        None,
        "receipt_due_at",
        "id",
        sqlite_where=sa.text("receipt_due_at IS NOT NULL"),
        postgresql_where=sa.text("receipt_due_at IS NOT NULL"),
    ),
)

message_parts = sa.Table(
    "message_parts",
    metadata,
    sa.Column("message_id", sa.Text, primary_key=True),
    sa.Column("part_index", sa.Integer, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("carrier_message_id", sa.Text),
    # Lower-case, trimmed, leading zeros dropped: how receipts find their part.
    sa.Column("carrier_id_normalised", sa.Text),
    sa.Column("connector_id", sa.Text),
    sa.Column("error_code", sa.Text),
    sa.Index(None, "connector_id", "carrier_id_normalised"),
    _sqlite_foreign_key("message_id", "messages.id", "CASCADE"),
)

#: The statuses whose messages are listed through their events (``events``' partial index):
#: those few messages are in, and that a message enters at most once.
STATUSES_LISTED_BY_EVENTS = (
    "scheduled",
    "undelivered",
    "expired",
    "failed",
    "rejected",
    "canceled",
    "unknown",
    "received",
)


def listed_by_events(column: str) -> str:
    """The condition of ``events``' partial index on ``column`` (its ``status``): one
    comparison per status, not ``IN (...)``. SQLite tests an index's condition on every row
    an INSERT writes, and an ``IN`` list costs it a temporary B-tree of the list each time
    (about 3 us per event row, migration 0012); the comparisons cost next to nothing."""
    return "({})".format(" OR ".join(f"{column} = '{s}'" for s in STATUSES_LISTED_BY_EVENTS))


LISTED_BY_EVENTS = listed_by_events("status")

events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text, index=True),
    _sqlite_foreign_key("message_id", "messages.id", "CASCADE"),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("status", sa.Text),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("payload", JsonText, nullable=False),
    # Listing messages by a status few of them are in: the messages that ever reached it,
    # newest first (events are never updated, so this index costs one entry per such event
    # and none for the statuses every message goes through).
    sa.Index(
        None,
        "tenant_id",
        "status",
        "message_id",
        sqlite_where=sa.text(LISTED_BY_EVENTS),
        postgresql_where=sa.text(LISTED_BY_EVENTS),
    ),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column(
        "message_id",
        sa.Text,
        sa.ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # For purging records older than the retention window.
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    _id(),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", JsonText, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    # When the job is next due. While a job is leased this is the lease expiry, so a job whose
    # worker died becomes due again by itself.
    sa.Column("run_at", UtcDateTime, nullable=False),
    # Due and not leased: the only rows a claim looks at (see ``pigeon.queue``).
    sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
# How far the receipt sweep has walked the deadlines (``messages.receipt_due_at``, then id):
# one row per sweep, moved forward only.
sweep_marks = sa.Table(
    "sweep_marks",
    metadata,
    _id("name"),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
)

# Claiming: ready jobs of a kind, highest priority first, then earliest. Waking: waiting jobs
# whose time has come. Each holds only its own half of the jobs (ADR 28): a job is written into
# one of them, and a lease moves it from one to the other. The conditions are written as the
# queue's statements write theirs (``IS true``/``IS 1``), which is how both databases see
# that a statement may read the index.
sa.Index(
    "ix_jobs_claim",
    jobs.c.kind,
    jobs.c.priority.desc(),
    jobs.c.run_at,
    sqlite_where=sa.text("ready IS 1"),
    postgresql_where=sa.text("ready IS true"),
)
sa.Index(
    "ix_jobs_wake",
    jobs.c.run_at,
    sqlite_where=sa.text("ready IS 0"),
    postgresql_where=sa.text("ready IS false"),
)

smpp_accounts = sa.Table(
    "smpp_accounts",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("system_id", sa.Text, nullable=False, unique=True),
    # argon2 (PHC string); the password itself is never stored.
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("max_binds", sa.Integer, nullable=False),
    # NULL: no limit.
    sa.Column("throughput_per_second", sa.Integer),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# Parts of customers' long messages until the whole message is accepted (see ports.PartStore).
smpp_parts = sa.Table(
    "smpp_parts",
    metadata,
    sa.Column(
        "account_id",
        sa.Text,
        sa.ForeignKey("smpp_accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("part_key", sa.Text, primary_key=True),
    sa.Column("seqnum", sa.Integer, primary_key=True),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("pdu", sa.LargeBinary, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False, index=True),
    sa.Column("accepted", sa.Boolean, nullable=False, server_default=sa.false()),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    _id(),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", Json, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("disabled_at", UtcDateTime),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    _id(),
    sa.Column("event_id", sa.Text, nullable=False, index=True),
    # The delivery log outlives a deleted endpoint (``endpoint_id`` becomes NULL).
    sa.Column("endpoint_id", sa.Text),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    _sqlite_foreign_key("endpoint_id", "webhook_endpoints.id", "SET NULL"),
)


# The numbers inventory: long codes (E.164), short codes and sender ids, each owned by a tenant.
numbers = sa.Table(
    "numbers",
    metadata,
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# Per-connector quality figures, one additive counter per (connector, minute, metric, key):
# ``metric`` is submitted, delivered, undelivered, error (key: the error code) or latency (key:
# the receipt-latency histogram bin of ``pigeon.domain.quality``); ``key`` is "" otherwise.
# Writers add to ``count`` (upsert), so several processes can flush into the same minute.
connector_minutes = sa.Table(
    "connector_minutes",
    metadata,
    sa.Column("connector_id", sa.Text, primary_key=True),
    sa.Column("minute", UtcDateTime, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    # Warm-up reads and pruning go by time.
    sa.Index(None, "minute"),
)


# Carrier links and the routing table as data (``pigeon.toml``, the REST API and the CLI).
connectors = sa.Table(
    "connectors",
    metadata,
    _id(),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("options", Json, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("prices_csv", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

routes = sa.Table(
    "routes",
    metadata,
    _id(),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("options", Json, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# One counter per kind of configuration, bumped with every change: gateways poll it.
config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
