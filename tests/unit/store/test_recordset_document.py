"""``_Statement.pg_arguments``: the rows PostgreSQL reads through ``json_to_recordset`` as one
JSON document, an object per row keyed by the column names, as the statement converted them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.store.bulk import BulkInsert
from pigeon.store.tables import events, jobs

#: A job's JSON payload: nested values of every JSON kind, strings that need escaping.
payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=30),
            st.sampled_from(["dispatch", "webhook"]),
            payloads,
            st.integers(-100, 100),
            times,
            st.booleans(),
            st.none() | st.text(max_size=10),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_document_holds_each_row_as_an_object_of_its_columns(
    drawn: list[tuple[Any, ...]],
) -> None:
    """Decoded, the document is the rows as mappings of column name to value (times as their
    RFC 3339 text, JSON values nested as they are, NULLs as null), in order."""
    statement = BulkInsert(jobs, "postgresql")
    rows = [
        {
            "id": job_id,
            "kind": kind,
            "payload": payload,
            "priority": priority,
            "run_at": run_at,
            "ready": ready,
            "attempts": 0,
            "lease_owner": owner,
            "lease_until": None,
            "last_error": None,
            "created_at": run_at,
        }
        for job_id, kind, payload, priority, run_at, ready, owner in drawn
    ]
    (document,) = statement.pg_arguments(statement.convert(rows))
    expected = [
        {
            **row,
            "run_at": row["run_at"].isoformat().replace("+00:00", "Z"),
            "created_at": row["created_at"].isoformat().replace("+00:00", "Z"),
        }
        for row in rows
    ]
    assert msgspec.json.decode(document) == expected
    assert list(msgspec.json.decode(document)[0]) == [column.name for column in jobs.columns]


def test_a_row_of_the_wrong_length_is_refused() -> None:
    """A converted row with a value too many or too few is an error, not a shifted row."""
    statement = BulkInsert(events, "postgresql")
    (row,) = statement.convert(
        [
            {
                "id": "evt_1",
                "tenant_id": "demo",
                "message_id": "msg_1",
                "type": "message.sent",
                "status": "sent",
                "sequence": 1,
                "at": datetime(2026, 12, 7, tzinfo=UTC),
                "detail": None,
                "payload": {},
            }
        ]
    )
    with pytest.raises(TypeError):
        statement.pg_arguments([[*row, "extra"]])
    with pytest.raises(TypeError):
        statement.pg_arguments([row[:-1]])
