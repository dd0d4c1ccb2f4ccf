"""Hot point reads on SQLite straight through ``sqlite3``.

Even with its compiled-statement cache, SQLAlchemy spends ~100 µs of Python on a one-row
SELECT (connection checkout, BEGIN, execution context, result wrapping), while SQLite answers
it in ~15 µs. The two reads every message makes (dispatch loads it, its receipt finds it by the
carrier's id) are therefore compiled once to SQL text here and run on a pooled ``sqlite3``
connection; each value goes through the column type's own result processor, so a row reads
back exactly as through SQLAlchemy (the store tests run both paths against the same rows).

A single SELECT in autocommit mode reads one consistent WAL snapshot, which is all these
point reads need.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

_Processor = Callable[[Any], Any] | None


class RawSelect:
    """``statement`` compiled once for ``dialect`` (SQLite), run on a ``sqlite3`` connection.

    Parameters are bound by name (``sa.bindparam``); expanding parameters are not supported
    (compile one ``RawSelect`` per list length instead).
    """

    def __init__(self, statement: sa.Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("RawSelect needs a positional paramstyle (SQLite's qmark)")
        self.sql = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup)
        # Values compiled into the statement (LIMIT...); the caller's parameters override.
        self._defaults: dict[str, Any] = dict(compiled.params)
        columns = list(statement.selected_columns)
        self._processors: tuple[_Processor, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        # A namedtuple: attribute access by column key, as on ``sa.Row``.
        self._row = namedtuple("_RawRow", [column.key for column in columns])  # type: ignore[misc]
        self._plain = all(processor is None for processor in self._processors)

    def rows(self, connection: sqlite3.Connection, parameters: Mapping[str, Any]) -> list[Any]:
        """The processed rows (attribute access by column key, like ``sa.Row``)."""
        defaults = self._defaults
        values = [
            parameters[name] if name in parameters else defaults[name] for name in self._names
        ]
        cursor = connection.execute(self.sql, values)
        try:
            fetched: Sequence[tuple[Any, ...]] = cursor.fetchall()
        finally:
            cursor.close()
        make = self._row
        if self._plain:
            return [make(*row) for row in fetched]
        processors = self._processors
        return [
            make(
                *[
                    value if processor is None or value is None else processor(value)
                    for processor, value in zip(processors, row, strict=True)
                ]
            )
            for row in fetched
        ]
