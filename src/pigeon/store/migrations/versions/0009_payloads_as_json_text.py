"""Event and job payloads as ``json`` on PostgreSQL (ADR 27).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

PostgreSQL never looks into ``events.payload`` or ``jobs.payload``: Pigeon writes them and
reads them back whole. As ``jsonb`` every row written was converted to its binary form (keys
sorted, duplicates merged), about half of the cost of inserting an event; ``json`` keeps the
checked text as it came. On PostgreSQL the two columns are rewritten once (the tables are
locked meanwhile: ``events`` grows with the messages stored). SQLite stores JSON as text
already: nothing changes there.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("events", "jobs")


def upgrade() -> None:
    """``jsonb`` -> ``json`` on PostgreSQL."""
    if op.get_bind().dialect.name == "sqlite":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN payload TYPE json USING payload::json")


def downgrade() -> None:
    """``json`` -> ``jsonb`` on PostgreSQL."""
    if op.get_bind().dialect.name == "sqlite":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN payload TYPE jsonb USING payload::jsonb")
