"""Connectors and routes as data, and the version marker running gateways poll.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

``connectors`` holds each carrier link (adapter type, options JSON with its credentials,
enabled flag, price list CSV); ``routes`` the routing table in order; ``config_versions`` one
counter per kind of configuration, bumped in the same transaction as every change, so a
gateway in another process notices a change with a single-row read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the connectors, routes and config_versions tables."""
    op.create_table(
        "connectors",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("prices_csv", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connectors"),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routes"),
    )
    op.create_table(
        "config_versions",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_config_versions"),
    )


def downgrade() -> None:
    """Drop the tables."""
    op.drop_table("config_versions")
    op.drop_table("routes")
    op.drop_table("connectors")
