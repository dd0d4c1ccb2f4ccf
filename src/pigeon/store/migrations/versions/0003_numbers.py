"""The numbers inventory: which tenant owns which number.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the numbers table."""
    op.create_table(
        "numbers",
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_numbers"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_numbers_tenant_id_tenants"),
    )
    op.create_index("ix_numbers_tenant_id", "numbers", ["tenant_id"])


def downgrade() -> None:
    """Drop the numbers table."""
    op.drop_table("numbers")
