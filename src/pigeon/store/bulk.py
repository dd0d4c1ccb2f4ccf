"""Fast multi-row INSERT for the group-commit hot path.

SQLAlchemy's executemany spends ~50-80 µs of Python per row on parameter processing, more than
the database takes to store it. The accept path writes thousands of rows per second, so its
INSERTs are rendered once per table and fed plain values:

- SQLite: ``INSERT ... VALUES (?, ?, ...)`` with ``executemany`` of tuples (the loop runs in C);
- PostgreSQL: ``INSERT ... SELECT FROM json_to_recordset($1::json) AS u("id" text, ...)``:
  ONE statement per table and batch whatever the number of rows, and ONE parameter, the rows
  as a JSON document (msgspec writes it in C; asyncpg encoded an array per column at ~1 µs
  per value, most of a PostgreSQL accept's own CPU); and ``StatementChain`` sends several
  tables' statements as one (data-modifying ``WITH`` clauses), one round trip instead of
  one per table.

Values are converted here exactly as the column types in ``tables.py`` do (aware UTC datetimes,
JSON text, booleans), so rows written this way read back through SQLAlchemy unchanged; the
round-trip tests hold both paths to that.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from pigeon.raw_sql import (
    asyncpg_driver,
    asyncpg_in_transaction,
    execute_many,
    pg_execute,
    sqlite_driver,
)
from pigeon.store import json_text
from pigeon.store.tables import UtcDateTime

_Convert = Callable[[Any], Any]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: Pigeon stores aware UTC times only")
    return value


#: The stored text of recent UTC seconds ("YYYY-MM-DD HH:MM:SS."), by (year, month, day, hour,
#: minute, second): a batch's times fall within a few seconds of each other and nearly every
#: time is new, so the second's text is looked up and the microseconds appended: half of
#: ``isoformat``'s cost (bounded: emptied when full).
_SQLITE_SECONDS: dict[tuple[int, int, int, int, int, int], str] = {}
_SQLITE_SECONDS_MAX = 4096


#: The stored text of recent instants, by instant. Most of a worker's times are written
#: several times over (a message's ``created_at`` and ``expires_at`` with each status change,
#: a batch's ``now`` in each of its rows): a lookup is a fifth of making the text again.
#: Equal aware times are one instant, so one text; a naive time equals no aware one and
#: is refused below. Bounded: emptied when full.
_SQLITE_TIMES: dict[datetime, str] = {}
_SQLITE_TIMES_MAX = 8192


def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite storage format for ``UtcDateTime`` ("YYYY-MM-DD HH:MM:SS.ffffff",
    # fixed width so it sorts): the first 26 characters of the UTC ISO form.
    if value is None:
        return None
    text = _SQLITE_TIMES.get(value)
    if text is None:
        text = _made_sqlite_time(value)
        if len(_SQLITE_TIMES) >= _SQLITE_TIMES_MAX:
            _SQLITE_TIMES.clear()
        _SQLITE_TIMES[value] = text
    return text


def _made_sqlite_time(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = _aware(value).astimezone(UTC)
    second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    text = _SQLITE_SECONDS.get(second)
    if text is None:
        if len(_SQLITE_SECONDS) >= _SQLITE_SECONDS_MAX:
            _SQLITE_SECONDS.clear()
        text = _SQLITE_SECONDS[second] = value.isoformat(" ", "seconds")[:19] + "."
    return f"{text}{value.microsecond:06d}"


def _postgres_time(value: datetime | None) -> datetime | None:
    # In UTC: PostgreSQL refuses offsets beyond +-15:59 that Python allows.
    if value is None or value.tzinfo is UTC:
        return value
    return _aware(value).astimezone(UTC)


def _json(value: Any) -> str | None:
    return None if value is None else json_text.dumps(value)


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
        on_postgres = getattr(kind, "_variant_mapping", {}).get("postgresql")
        return "jsonb" if isinstance(on_postgres, postgresql.JSONB) else "json"
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
    "jsonb": _json,
    "bool": _sqlite_bool,
    "int8": _as_is,
    "int4": _as_is,
    "text": _as_is,
}
#: PostgreSQL takes the rows as JSON: times as RFC 3339 text (msgspec writes aware times with
#: their offset), JSON values nested as they are.
_POSTGRES: Final[dict[str, _Convert]] = {
    "time": _postgres_time,
    "json": _as_is,
    "jsonb": _as_is,
    "bool": _as_is,
    "int8": _as_is,
    "int4": _as_is,
    "text": _as_is,
}
_POSTGRES_TYPE: Final = {
    "time": "timestamptz",
    "json": "json",
    "jsonb": "jsonb",
    "bool": "bool",
    "int8": "int8",
    "int4": "int4",
    "text": "text",
}
_ROWS = msgspec.json.Encoder()


class _Statement:
    """A statement fed many rows: SQLite executemany of tuples, or on PostgreSQL one JSON
    document of them."""

    def __init__(self, columns: Sequence[sa.Column[Any]], dialect: str) -> None:
        self._postgres = dialect == "postgresql"
        self._names = [column.name for column in columns]
        self._kinds = [_kind(column) for column in columns]
        self._values = operator.itemgetter(*self._names)
        #: PostgreSQL: a row as msgspec encodes it into the recordset, an object keyed by the
        #: column names, made positionally in C (a dict per row cost a merge of its pairs and
        #: an iteration of them to encode; the struct's keys are encoded once).
        self._record: Callable[..., Any] = msgspec.defstruct("Row", [str(n) for n in self._names])
        converters = _POSTGRES if self._postgres else _SQLITE
        # Only the columns whose values need converting cost a Python call per row.
        self._converted = [
            (index, converters[kind])
            for index, kind in enumerate(self._kinds)
            if converters[kind] is not _as_is
        ]
        self.sql = ""

    def _recordset(self) -> str:
        """``json_to_recordset($1::json) AS u("a" text, ...)``: the rows of the parameter."""
        columns = ", ".join(
            f"{_quote(name)} {_POSTGRES_TYPE[kind]}"
            for name, kind in zip(self._names, self._kinds, strict=True)
        )
        return f"json_to_recordset($1::json) AS u({columns})"

    @property
    def parameters(self) -> int:
        """How many parameters the PostgreSQL statement takes (``pg_arguments``)."""
        return 1

    def pg_arguments(self, converted: Sequence[list[Any]]) -> list[Any]:
        """The PostgreSQL statement's arguments for rows ``convert`` made: the rows as one
        JSON array of objects."""
        record = self._record
        return [_ROWS.encode([record(*row) for row in converted]).decode()]

    def row_builder(
        self, parameters: str, expressions: Mapping[str, str]
    ) -> Callable[..., list[Any]]:
        """A function of ``parameters`` (e.g. ``"message, stamp"``) making the statement's
        converted row straight from objects: ``expressions`` gives each column's value as a
        Python expression of the parameters (every column, none more). It returns what
        ``convert`` makes of the equivalent mapping, without the mapping: no dict is built,
        no column looked up by name, and the conversions are inlined (the hot rows of status
        changes and accepts; ``tests/unit/store`` holds the two equal)."""
        if set(expressions) != set(self._names):
            missing = sorted(set(self._names) - set(expressions))
            extra = sorted(set(expressions) - set(self._names))
            raise ValueError(f"row expressions: missing {missing}, unknown {extra}")
        converters = _POSTGRES if self._postgres else _SQLITE
        namespace: dict[str, Any] = {"str": str}
        values: list[str] = []
        for name, kind in zip(self._names, self._kinds, strict=True):
            convert = converters[kind]
            if convert is _as_is:
                values.append(f"({expressions[name]})")
            else:
                namespace[f"_{kind}"] = convert
                values.append(f"_{kind}({expressions[name]})")
        source = f"def build({parameters}):\n    return [{', '.join(values)}]\n"
        # Our own constant expressions (the store's), compiled once at start-up.
        exec(compile(source, f"<row of {self._names[0]}...>", "exec"), namespace)  # noqa: S102
        build: Callable[..., list[Any]] = namespace["build"]
        return build

    def _row(self, row: Mapping[str, Any]) -> list[Any]:
        values = list(self._values(row))
        for index, convert in self._converted:
            values[index] = convert(values[index])
        return values

    async def __call__(
        self, connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run the statement for ``rows`` in the connection's current transaction."""
        if not rows:
            return
        await self.write(connection, self.convert(rows))

    def convert(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """``rows`` as the statement's parameter lists: the Python half of ``__call__``, which
        can run before the transaction (see ``SqlMessageStore``'s prepared batches)."""
        return [self._row(row) for row in rows]

    async def write(self, connection: AsyncConnection, converted: Sequence[list[Any]]) -> None:
        """Run the statement for rows ``convert`` made, in the current transaction."""
        if not converted:
            return
        if self._postgres:
            arguments = tuple(self.pg_arguments(converted))
            pg = await asyncpg_in_transaction(connection)
            if pg is not None:  # straight to asyncpg: SQLAlchemy's adapter costs more
                await pg_execute(connection, pg, self.sql, arguments)
            else:
                await connection.exec_driver_sql(self.sql, arguments)
            return
        driver = await sqlite_driver(connection)
        if driver is not None:  # straight to sqlite3: SQLAlchemy's executemany costs more
            execute_many(driver, self.sql, converted)
        else:
            await connection.exec_driver_sql(self.sql, [tuple(values) for values in converted])


_PARAMETER = re.compile(r"\$(\d+)")


class StatementChain:
    """Statements written together: on PostgreSQL as ONE statement whose first ones are
    data-modifying ``WITH`` clauses (``WITH s1 AS (INSERT ...), s2 AS (INSERT ...) INSERT
    ...``), one round trip for them all; on SQLite one after the other.

    One statement is atomic on its own: outside a transaction (``alone``) PostgreSQL commits
    it as a whole or not at all, so a batch that writes nothing else needs neither ``BEGIN``
    nor ``COMMIT``. The statements must not touch the same rows (the clauses of one statement
    run on one snapshot and do not see each other's writes; inserts into different tables,
    as an accept's, are fine, and foreign keys are checked at the end of the statement).
    """

    def __init__(self, statements: Sequence[_Statement]) -> None:
        self._statements = tuple(statements)
        self._postgres = bool(statements) and statements[0]._postgres
        #: The combined SQL by which statements have rows (rows are often missing for some).
        self._sql: dict[tuple[int, ...], str] = {}

    def _combined(self, present: tuple[int, ...]) -> str:
        sql = self._sql.get(present)
        if sql is None:
            parts: list[str] = []
            offset = 0
            for index in present:
                statement = self._statements[index]
                parts.append(_renumbered(statement.sql, offset))
                offset += statement.parameters
            clauses = ", ".join(f"s{n} AS ({part})" for n, part in enumerate(parts[:-1], 1))
            sql = self._sql[present] = f"WITH {clauses} {parts[-1]}" if clauses else parts[-1]
        return sql

    async def write(
        self,
        connection: AsyncConnection,
        converted: Sequence[Sequence[list[Any]]],
        *,
        alone: bool = False,
    ) -> None:
        """Run each statement for its rows (``converted``, in the order of the statements;
        empty ones are left out). ``alone``: the caller's transaction has nothing else to
        write, so on PostgreSQL the statement may run on its own, outside one (when nothing
        began one yet)."""
        if len(converted) != len(self._statements):
            raise ValueError(f"{len(converted)} row lists for {len(self._statements)} statements")
        if not self._postgres:
            for statement, rows in zip(self._statements, converted, strict=True):
                await statement.write(connection, rows)
            return
        present = tuple(index for index, rows in enumerate(converted) if rows)
        if not present:
            return
        arrays: list[Any] = []
        for index in present:
            arrays.extend(self._statements[index].pg_arguments(converted[index]))
        sql = self._combined(present)
        pg = await asyncpg_in_transaction(connection)
        if pg is None and alone and not connection.in_transaction():
            pg = await asyncpg_driver(connection)
        if pg is not None:
            await pg_execute(connection, pg, sql, arrays)
        else:
            await connection.exec_driver_sql(sql, tuple(arrays))


def _renumbered(sql: str, offset: int) -> str:
    """``sql`` with its parameters ``$n`` made ``$(n + offset)``."""
    if not offset:
        return sql
    return _PARAMETER.sub(lambda match: f"${int(match.group(1)) + offset}", sql)


# S608 below: every name in these statements comes from our own table definitions, quoted;
# values are always bound parameters.


class BulkInsert(_Statement):
    """INSERT many rows (mappings holding every column of ``table``).

    ``ignore_duplicates`` skips rows whose key exists (``ON CONFLICT DO NOTHING``);
    ``upsert_on=(key columns)`` updates the existing row's other columns instead.
    """

    def __init__(
        self,
        table: sa.Table,
        dialect: str,
        *,
        ignore_duplicates: bool = False,
        upsert_on: Sequence[str] = (),
    ) -> None:
        super().__init__(list(table.columns), dialect)
        columns = ", ".join(_quote(name) for name in self._names)
        if self._postgres:
            selected = ", ".join(f"u.{_quote(name)}" for name in self._names)
            sql = (
                f"INSERT INTO {_quote(table.name)} ({columns}) "  # noqa: S608
                f"SELECT {selected} FROM {self._recordset()}"
            )
        else:
            marks = ", ".join("?" for _ in self._names)
            sql = f"INSERT INTO {_quote(table.name)} ({columns}) VALUES ({marks})"  # noqa: S608
        if ignore_duplicates:
            sql += " ON CONFLICT DO NOTHING"
        elif upsert_on:
            keys = ", ".join(_quote(name) for name in upsert_on)
            updates = ", ".join(
                f"{_quote(name)} = excluded.{_quote(name)}"
                for name in self._names
                if name not in upsert_on
            )
            sql += f" ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        self.sql = sql


class BulkUpdate(_Statement):
    """UPDATE many rows of ``table`` by ``key`` (a column, or several); each row maps the key
    columns and every column in ``columns`` to its value."""

    def __init__(
        self, table: sa.Table, dialect: str, *, key: str | Sequence[str], columns: Sequence[str]
    ) -> None:
        keys = (key,) if isinstance(key, str) else tuple(key)
        super().__init__([table.c[name] for name in (*keys, *columns)], dialect)
        name = _quote(table.name)
        if self._postgres:
            sets = ", ".join(f"{_quote(c)} = u.{_quote(c)}" for c in columns)
            where = " AND ".join(f"t.{_quote(k)} = u.{_quote(k)}" for k in keys)
            sql = f"UPDATE {name} AS t SET {sets} FROM {self._recordset()} WHERE {where}"  # noqa: S608
        else:
            # SQLite binds the keys first too: ``WHERE`` uses the numbered parameters ?1...
            sets = ", ".join(f"{_quote(c)} = ?{i}" for i, c in enumerate(columns, len(keys) + 1))
            where = " AND ".join(f"{_quote(k)} = ?{i}" for i, k in enumerate(keys, 1))
            sql = f"UPDATE {name} SET {sets} WHERE {where}"  # noqa: S608
        self.sql = sql


class BulkDelete(_Statement):
    """DELETE the rows of ``table`` whose ``key`` (a column, or several) matches one of the
    rows' (each row maps the key columns)."""

    def __init__(self, table: sa.Table, dialect: str, *, key: str | Sequence[str]) -> None:
        keys = (key,) if isinstance(key, str) else tuple(key)
        super().__init__([table.c[name] for name in keys], dialect)
        name = _quote(table.name)
        self._single = len(keys) == 1
        if self._postgres and self._single:
            array = f"{_POSTGRES_TYPE[self._kinds[0]]}[]"
            sql = f"DELETE FROM {name} WHERE {_quote(keys[0])} = ANY($1::{array})"  # noqa: S608
        elif self._postgres:
            where = " AND ".join(f"t.{_quote(k)} = u.{_quote(k)}" for k in keys)
            sql = f"DELETE FROM {name} AS t USING {self._recordset()} WHERE {where}"  # noqa: S608
        else:
            where = " AND ".join(f"{_quote(k)} = ?" for k in keys)
            sql = f"DELETE FROM {name} WHERE {where}"  # noqa: S608
        self.sql = sql

    def pg_arguments(self, converted: Sequence[list[Any]]) -> list[Any]:
        """One key: the keys as one array; several: the rows as a JSON document."""
        if not self._single:
            return super().pg_arguments(converted)
        return [[row[0] for row in converted]]
