"""Per-connector quality figures, rolled up per minute so they survive restarts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the connector_minutes table (one additive counter per row)."""
    op.create_table(
        "connector_minutes",
        sa.Column("connector_id", sa.Text, nullable=False),
        sa.Column("minute", UTC_TIME, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "connector_id", "minute", "metric", "key", name="pk_connector_minutes"
        ),
    )
    op.create_index("ix_connector_minutes_minute", "connector_minutes", ["minute"])


def downgrade() -> None:
    """Drop the connector_minutes table."""
    op.drop_table("connector_minutes")
