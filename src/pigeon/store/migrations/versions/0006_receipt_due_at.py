"""When a sent message stops waiting for its receipt, on the message itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``messages.receipt_due_at`` is set when a message is sent and cleared when it reaches a final
status; a partial index holds only the messages still waiting, which the receipt sweep reads
(ADR 16). It replaces an ``expire`` job per message. Messages sent before this revision keep
their ``expire`` jobs, which still run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)
WAITING = "receipt_due_at IS NOT NULL"


def upgrade() -> None:
    """Add the column and its partial index."""
    op.add_column("messages", sa.Column("receipt_due_at", UTC_TIME))
    op.create_index(
        "ix_messages_receipt_due_at",
        "messages",
        ["receipt_due_at"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_messages_receipt_due_at", table_name="messages")
    op.drop_column("messages", "receipt_due_at")
