"""Small SQL building blocks shared by the stores."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def one_of(column: sa.ColumnElement[Any], values: Collection[Any], dialect: str) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``, one statement whatever
    the number of values (so the prepared-statement cache is not churned by list lengths)."""
    if dialect == "postgresql":
        array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column == sa.any_(array)
    return column.in_(list(values))


#: The ``jobs`` row of a new job as expressions of ``job`` (a ``NewJob``) and ``now``, for
#: ``_Statement.row_builder``; a job already due is ``ready`` (see ``pigeon.queue``).
#: ``pigeon.queue`` builds the same row for ``enqueue``; keep the two in step.
JOB_ROW: Final[dict[str, str]] = {
    "id": "job.id",
    "kind": "job.kind",
    "payload": "job.payload",
    "priority": "job.priority",
    "run_at": "job.run_at",
    "ready": "job.run_at <= now",
    "attempts": "0",
    "lease_owner": "None",
    "lease_until": "None",
    "last_error": "None",
    "created_at": "now",
}
