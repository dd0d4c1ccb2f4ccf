"""Fast multi-row INSERT for the group-commit hot path.

SQLAlchemy's executemany spends ~50-80 µs of Python per row on parameter processing, more than
the database takes to store it. The accept path writes thousands of rows per second, so its
INSERTs are rendered once per table and fed plain values:

- SQLite: ``INSERT ... VALUES (?, ?, ...)`` with ``executemany`` of tuples (the loop runs in C);
- PostgreSQL: ``INSERT ... SELECT FROM unnest($1::text[], $2::timestamptz[], ...)``: ONE
  statement per table and batch whatever the number of rows, one array per column.

Values are converted here exactly as the column types in ``tables.py`` do (aware UTC datetimes,
JSON text, booleans), so rows written this way read back through SQLAlchemy unchanged; the
round-trip tests hold both paths to that.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.store.tables import UtcDateTime

_Convert = Callable[[Any], Any]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: Pigeon stores aware UTC times only")
    return value


def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite storage format for ``UtcDateTime``: fixed width, so it sorts.
    if value is None:
        return None
    return _aware(value).astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _postgres_time(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _as_is(value: Any) -> Any:
    return value


def _quote(name: str) -> str:
    # Our names are lower-case, so quoting changes nothing on either engine but keeps words
    # like ``key`` safe.
    return f'"{name}"'


def _kind(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return "time"
    if isinstance(kind, sa.JSON) or isinstance(getattr(kind, "impl", None), sa.JSON):
        return "json"
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.Text | sa.String):
        return "text"
    raise TypeError(f"no bulk conversion for {column.table.name}.{column.name}: {kind!r}")


_SQLITE: Final[dict[str, _Convert]] = {
    "time": _sqlite_time,
    "json": _json,
    "bool": _sqlite_bool,
    "int8": _as_is,
    "int4": _as_is,
    "text": _as_is,
}
_POSTGRES: Final[dict[str, _Convert]] = {
    "time": _postgres_time,
    "json": _json,
    "bool": _as_is,
    "int8": _as_is,
    "int4": _as_is,
    "text": _as_is,
}
_ARRAY: Final = {
    "time": "timestamptz[]",
    "json": "text[]",
    "bool": "bool[]",
    "int8": "int8[]",
    "int4": "int4[]",
    "text": "text[]",
}


class BulkInsert:
    """An INSERT of many rows (mappings with every column of ``table``) into ``table``.

    ``ignore_duplicates`` adds ``ON CONFLICT DO NOTHING``.
    """

    def __init__(self, table: sa.Table, dialect: str, *, ignore_duplicates: bool = False) -> None:
        names = [column.name for column in table.columns]
        kinds = [_kind(column) for column in table.columns]
        self._names = names
        self._postgres = dialect == "postgresql"
        self._values = operator.itemgetter(*names)
        converters = _POSTGRES if self._postgres else _SQLITE
        # Only the columns whose values need converting cost a Python call per row.
        self._converted = [
            (index, converters[kind])
            for index, kind in enumerate(kinds)
            if converters[kind] is not _as_is
        ]
        columns = ", ".join(_quote(name) for name in names)
        if self._postgres:
            arrays = ", ".join(f"${i}::{_ARRAY[kind]}" for i, kind in enumerate(kinds, 1))
            selected = ", ".join(
                f"u.{_quote(name)}::jsonb" if kind == "json" else f"u.{_quote(name)}"
                for name, kind in zip(names, kinds, strict=True)
            )
            # S608: every name comes from our own table definition, quoted; values are bound.
            sql = (
                f"INSERT INTO {_quote(table.name)} ({columns}) "  # noqa: S608
                f"SELECT {selected} FROM unnest({arrays}) AS u({columns})"
            )
        else:
            marks = ", ".join("?" for _ in names)
            sql = f"INSERT INTO {_quote(table.name)} ({columns}) VALUES ({marks})"  # noqa: S608
        if ignore_duplicates:
            sql += " ON CONFLICT DO NOTHING"
        self.sql = sql

    def _row(self, row: Mapping[str, Any]) -> list[Any]:
        values = list(self._values(row))
        for index, convert in self._converted:
            values[index] = convert(values[index])
        return values

    async def __call__(
        self, connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert ``rows`` in the connection's current transaction."""
        if not rows:
            return
        converted = [self._row(row) for row in rows]
        if self._postgres:
            arrays = tuple(list(column) for column in zip(*converted, strict=True))
            await connection.exec_driver_sql(self.sql, arrays)
        else:
            await connection.exec_driver_sql(self.sql, [tuple(values) for values in converted])
