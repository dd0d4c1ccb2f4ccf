"""The jobs' two indexes each hold only their half of the jobs (ADR 28).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

``ix_jobs_claim`` (kind, priority, run_at) holds the ready jobs only, ``ix_jobs_wake``
(run_at) the waiting and leased ones only. Both held every job, with ``ready`` as their first
column: each job written and each lease wrote an entry into both. Now a job is written into
one, and a lease (ready -> leased) moves it into the other. The jobs table is small (the work
in flight), so rebuilding the two indexes is quick.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rebuild the two indexes as partial ones."""
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.drop_index("ix_jobs_wake", table_name="jobs")
    op.execute(
        "CREATE INDEX ix_jobs_claim ON jobs (kind, priority DESC, run_at) WHERE "
        + ("ready IS 1" if op.get_bind().dialect.name == "sqlite" else "ready IS true")
    )
    op.create_index(
        "ix_jobs_wake",
        "jobs",
        ["run_at"],
        sqlite_where=sa.text("ready IS 0"),
        postgresql_where=sa.text("ready IS false"),
    )


def downgrade() -> None:
    """Back to the two whole indexes led by ``ready``."""
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.drop_index("ix_jobs_wake", table_name="jobs")
    op.execute("CREATE INDEX ix_jobs_claim ON jobs (ready, kind, priority DESC, run_at)")
    op.create_index("ix_jobs_wake", "jobs", ["ready", "run_at"])
