"""Status changes that write no index entry (ADR 26).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Every status change wrote ``messages.status`` and ``messages.receipt_due_at``, each held by an
index, so no update of a message could be a heap-only (HOT) update on PostgreSQL, and on
SQLite each rewrote two index entries. Now:

- ``receipt_due_at`` is set when a message is accepted (its validity's end plus the receipt
  grace) and never changed by a status change; messages accepted earlier and not sent yet
  get it here. The receipt sweep walks the deadlines in order, ``sweep_marks`` recording how
  far it went; its index is on ``(receipt_due_at, id)``.
- ``ix_messages_tenant_id_status_id`` goes. Listing by one of the statuses few messages are
  in reads the new partial index of ``events`` (the messages that reached that status); by
  the others, a tenant's messages newest first.
- On PostgreSQL ``messages`` and ``message_parts`` keep a fifth of each new page free, room
  for the row versions of the status changes on the page of their row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)
WAITING = "receipt_due_at IS NOT NULL"
LISTED_BY_EVENTS = (
    "status IN ('scheduled', 'undelivered', 'expired', 'failed', 'rejected', 'canceled', "
    "'unknown', 'received')"
)
#: The receipt grace that was and is the default (``pigeon.services.accept``).
GRACE_SECONDS = 600
NOT_SENT_YET = "('accepted', 'scheduled', 'queued', 'sending')"


def upgrade() -> None:
    """Backfill the deadlines, swap the indexes, add the sweep's mark."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # The stored form is "YYYY-MM-DD HH:MM:SS.ffffff": the seconds moved, the fraction kept.
        due = (
            f"strftime('%Y-%m-%d %H:%M:%S', expires_at, '+{GRACE_SECONDS} seconds')"
            " || substr(expires_at, 20)"
        )
    else:
        due = f"expires_at + interval '{GRACE_SECONDS} seconds'"
    op.execute(
        f"UPDATE messages SET receipt_due_at = {due} "  # noqa: S608 - constants only
        f"WHERE receipt_due_at IS NULL AND expires_at IS NOT NULL AND direction = 'mt' "
        f"AND status IN {NOT_SENT_YET}"
    )
    op.drop_index("ix_messages_tenant_id_status_id", table_name="messages")
    op.drop_index("ix_messages_receipt_due_at", table_name="messages")
    op.create_index(
        "ix_messages_receipt_due_at_id",
        "messages",
        ["receipt_due_at", "id"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )
    op.create_index(
        "ix_events_tenant_id_status_message_id",
        "events",
        ["tenant_id", "status", "message_id"],
        sqlite_where=sa.text(LISTED_BY_EVENTS),
        postgresql_where=sa.text(LISTED_BY_EVENTS),
    )
    op.create_table(
        "sweep_marks",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sweep_marks"),
    )
    if not sqlite:
        op.execute("ALTER TABLE messages SET (fillfactor = 80)")
        op.execute("ALTER TABLE message_parts SET (fillfactor = 80)")


def downgrade() -> None:
    """The indexes as they were; deadlines of messages not sent yet cleared again."""
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE message_parts RESET (fillfactor)")
        op.execute("ALTER TABLE messages RESET (fillfactor)")
    op.drop_table("sweep_marks")
    op.drop_index("ix_events_tenant_id_status_message_id", table_name="events")
    op.drop_index("ix_messages_receipt_due_at_id", table_name="messages")
    op.execute(
        "UPDATE messages SET receipt_due_at = NULL "
        "WHERE status NOT IN ('sent', 'sending') AND receipt_due_at IS NOT NULL"
    )
    op.create_index(
        "ix_messages_receipt_due_at",
        "messages",
        ["receipt_due_at"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )
    op.create_index("ix_messages_tenant_id_status_id", "messages", ["tenant_id", "status", "id"])
