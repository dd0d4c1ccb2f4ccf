"""The rows every message writes check no foreign key on PostgreSQL (ADR 35).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

``messages.tenant_id``, ``message_parts.message_id``, ``events.message_id`` and
``webhook_attempts.endpoint_id`` lose their foreign-key constraints on PostgreSQL, where each
checked row ran a query that also locked its parent row (``FOR KEY SHARE``): the tenant's row
and the endpoint's row were locked by nearly every transaction. The store keeps those
references itself. Dropping a constraint is quick (no table is rewritten). SQLite checks its
foreign keys inline for next to nothing, and could only drop them by rebuilding the tables:
they stay there.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: (table, constraint, column, parent table, ``ON DELETE`` action) as migration 0001 made them.
FOREIGN_KEYS = (
    ("messages", "fk_messages_tenant_id_tenants", "tenant_id", "tenants", None),
    ("message_parts", "fk_message_parts_message_id_messages", "message_id", "messages", "CASCADE"),
    ("events", "fk_events_message_id_messages", "message_id", "messages", "CASCADE"),
    (
        "webhook_attempts",
        "fk_webhook_attempts_endpoint_id_webhook_endpoints",
        "endpoint_id",
        "webhook_endpoints",
        "SET NULL",
    ),
)


def upgrade() -> None:
    """Drop the four constraints on PostgreSQL."""
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, name, _, _, _ in FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    """Add them back on PostgreSQL (each checks the rows already stored)."""
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, name, column, parent, action in FOREIGN_KEYS:
        op.create_foreign_key(name, table, parent, [column], ["id"], ondelete=action)
