"""The initial schema: tenants, keys, messages and their parts and events, jobs, webhooks.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written out in full rather than imported from ``tables.py``: a migration is a frozen picture of
the schema at its revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create every table and index of the first release."""
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("default_region", sa.Text),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_api_keys_tenant_id_tenants"
        ),
        sa.UniqueConstraint("digest", name="uq_api_keys_digest"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])

    op.create_table(
        "messages",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("direction", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("sender", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("encoding", sa.Text, nullable=False),
        sa.Column("segments", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_sequence", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("country", sa.Text),
        sa.Column("client_ref", sa.Text),
        sa.Column("callback_url", sa.Text),
        sa.Column("send_at", UTC_TIME),
        sa.Column("expires_at", UTC_TIME),
        sa.Column("error_code", sa.Text),
        sa.Column("connector_id", sa.Text),
        sa.Column("price", sa.BigInteger),
        sa.Column("currency", sa.Text),
        sa.Column("is_test", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_messages_tenant_id_tenants"
        ),
    )
    op.create_index("ix_messages_tenant_id_id", "messages", ["tenant_id", "id"])
    op.create_index("ix_messages_tenant_id_status_id", "messages", ["tenant_id", "status", "id"])
    op.create_index(
        "ix_messages_tenant_id_recipient_id", "messages", ["tenant_id", "recipient", "id"]
    )
    op.create_index("ix_messages_tenant_id_created_at", "messages", ["tenant_id", "created_at"])

    op.create_table(
        "message_parts",
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("part_index", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("carrier_message_id", sa.Text),
        sa.Column("carrier_id_normalised", sa.Text),
        sa.Column("connector_id", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.PrimaryKeyConstraint("message_id", "part_index", name="pk_message_parts"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_message_parts_message_id_messages",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_message_parts_connector_id_carrier_id_normalised",
        "message_parts",
        ["connector_id", "carrier_id_normalised"],
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("payload", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_events_message_id_messages",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_events_message_id", "events", ["message_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_keys"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_idempotency_keys_message_id_messages",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_at", UTC_TIME, nullable=False),
        sa.Column("ready", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", UTC_TIME),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_claim", "jobs", ["ready", "kind", sa.text("priority DESC"), "run_at"])
    op.create_index("ix_jobs_wake", "jobs", ["ready", "run_at"])

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", JSON, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("disabled_at", UTC_TIME),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_webhook_endpoints_tenant_id_tenants"
        ),
    )
    op.create_index("ix_webhook_endpoints_tenant_id", "webhook_endpoints", ["tenant_id"])

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("endpoint_id", sa.Text),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_attempts_endpoint_id_webhook_endpoints",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_webhook_attempts_event_id", "webhook_attempts", ["event_id"])


def downgrade() -> None:
    """Drop everything, children first."""
    for table in (
        "webhook_attempts",
        "webhook_endpoints",
        "jobs",
        "idempotency_keys",
        "events",
        "message_parts",
        "messages",
        "api_keys",
        "tenants",
    ):
        op.drop_table(table)
