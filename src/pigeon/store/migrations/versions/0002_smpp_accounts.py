"""SMPP customers: accounts, parts of long messages, and where a message came from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-15

``messages`` gains ``origin`` (``smpp:<account id>`` for SMPP submissions), ``origin_parts``
(how many PDUs the customer sent it as) and ``receipt_request`` (which outcomes the customer
wants a receipt for). ``smpp_accounts`` holds the bind credentials (argon2 hashes);
``smpp_parts`` the parts of long messages until the whole message is accepted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the columns and tables."""
    op.add_column("messages", sa.Column("origin", sa.Text))
    op.add_column(
        "messages", sa.Column("origin_parts", sa.Integer, nullable=False, server_default="1")
    )
    op.add_column(
        "messages",
        sa.Column("receipt_request", sa.Text, nullable=False, server_default="none"),
    )
    op.create_table(
        "smpp_accounts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("system_id", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("max_binds", sa.Integer, nullable=False),
        sa.Column("throughput_per_second", sa.Integer),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_smpp_accounts"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_smpp_accounts_tenant_id_tenants"
        ),
        sa.UniqueConstraint("system_id", name="uq_smpp_accounts_system_id"),
    )
    op.create_index("ix_smpp_accounts_tenant_id", "smpp_accounts", ["tenant_id"])
    op.create_table(
        "smpp_parts",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("part_key", sa.Text, nullable=False),
        sa.Column("seqnum", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("pdu", sa.LargeBinary, nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("account_id", "part_key", "seqnum", name="pk_smpp_parts"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["smpp_accounts.id"],
            name="fk_smpp_parts_account_id_smpp_accounts",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_smpp_parts_received_at", "smpp_parts", ["received_at"])


def downgrade() -> None:
    """Drop the tables and columns."""
    op.drop_table("smpp_parts")
    op.drop_table("smpp_accounts")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("receipt_request")
        batch.drop_column("origin_parts")
        batch.drop_column("origin")
