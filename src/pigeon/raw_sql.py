"""Hot statements on SQLite straight through ``sqlite3``.

Even with its compiled-statement cache, SQLAlchemy spends ~100 µs of Python on a one-row
SELECT (connection checkout, BEGIN, execution context, result wrapping), while SQLite answers
it in ~15 µs. The statements every message pays for (dispatch loads it, its receipt finds it
by the carrier's id, the job queue claims and the writer's batches) are therefore compiled
once to SQL text here and run on the ``sqlite3`` connection underneath; each parameter and
each value goes through the column type's own bind and result processors, so rows read and
written this way are exactly what SQLAlchemy would read and write (tests compare the paths).

A single SELECT in autocommit mode reads one consistent WAL snapshot, which is all the point
reads need; statements run on the writer's connection are inside its transaction.

This module sits outside the layers (like ``ids``): the store and the queue both use it.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_Processor = Callable[[Any], Any] | None


async def asyncpg_driver(connection: AsyncConnection) -> Any:
    """The ``asyncpg`` connection under an autocommit ``connection`` (``None`` on other
    drivers). Only for single statements outside a transaction: the SQLAlchemy adapter starts
    its transactions lazily, so a statement sent past it could run outside one."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    return driver if type(driver).__module__.startswith("asyncpg") else None


async def asyncpg_in_transaction(connection: AsyncConnection) -> Any:
    """The ``asyncpg`` connection under ``connection``, for statements inside its current
    transaction; ``None`` on other drivers or outside a transaction.

    SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, with the first statement it runs;
    when it has not yet, it is told to now, so a statement sent straight to asyncpg can never
    run outside the transaction (and be committed on its own).
    """
    # SQLite's synchronous stand-in (``store.sqlite_sync``) has neither asyncpg nor this method.
    in_transaction = getattr(connection, "in_transaction", None)
    if in_transaction is None or not in_transaction():
        return None
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not type(driver).__module__.startswith("asyncpg"):
        return None
    adapted: Any = raw.dbapi_connection
    # Private to SQLAlchemy's adapter (2.0): its lazy BEGIN, see above.
    if adapted._transaction is None:
        await adapted._start_transaction()
    return driver


async def pg_execute(
    connection: AsyncConnection, driver: Any, sql: str, arguments: Sequence[Any]
) -> str:
    """``driver.execute(sql, *arguments)`` (asyncpg) with errors raised as SQLAlchemy raises
    them: ``IntegrityError`` for constraint violations, ``DBAPIError`` otherwise, and a lost
    connection invalidated (``connection_invalidated``), so callers handle both paths alike."""
    try:
        status: str = await driver.execute(sql, *arguments)
    except Exception as exc:
        raise await _as_sqlalchemy_error(connection, sql, arguments, exc) from exc
    return status


async def pg_fetch(
    connection: AsyncConnection, driver: Any, sql: str, arguments: Sequence[Any]
) -> list[Any]:
    """``driver.fetch(sql, *arguments)`` (asyncpg) with errors mapped as ``pg_execute``."""
    try:
        rows: list[Any] = await driver.fetch(sql, *arguments)
    except Exception as exc:
        raise await _as_sqlalchemy_error(connection, sql, arguments, exc) from exc
    return rows


async def _as_sqlalchemy_error(
    connection: AsyncConnection, sql: str, arguments: Sequence[Any], exc: Exception
) -> Exception:
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return sa.exc.IntegrityError(sql, arguments, exc)
    if isinstance(exc, asyncpg.PostgresError):
        return sa.exc.DBAPIError(sql, arguments, exc)
    if isinstance(exc, asyncpg.InterfaceError | OSError | ConnectionError):
        await connection.invalidate(exc)
        return sa.exc.DBAPIError(sql, arguments, exc, connection_invalidated=True)
    return exc


async def sqlite_driver(connection: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``connection``, or ``None`` on other drivers."""
    driver = await connection.run_sync(_driver_of)
    return driver if isinstance(driver, sqlite3.Connection) else None


def _driver_of(connection: Connection) -> Any:
    return connection.connection.driver_connection


def execute(connection: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> sqlite3.Cursor:
    """``connection.execute``, with errors raised as SQLAlchemy raises them (``IntegrityError``
    and friends), so callers handle both paths alike."""
    try:
        return connection.execute(sql, parameters)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, parameters, exc, sqlite3.Error) from exc


def execute_many(connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``connection.executemany``, with errors raised as SQLAlchemy raises them."""
    try:
        connection.executemany(sql, rows)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, rows, exc, sqlite3.Error) from exc


class RawSelect:
    """``statement`` compiled once for ``dialect`` (SQLite), run on a ``sqlite3`` connection.

    Parameters are bound by name (``sa.bindparam``); expanding parameters are not supported
    (compile one ``RawSelect`` per list length instead). ``columns`` are the result columns
    (default: a SELECT's selected columns; give an UPDATE's RETURNING columns).
    """

    def __init__(
        self,
        statement: sa.Select[Any] | sa.Update | sa.Delete | sa.Insert,
        dialect: Dialect,
        columns: Sequence[sa.ColumnElement[Any]] | None = None,
    ) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("RawSelect needs a positional paramstyle (SQLite's qmark)")
        self.sql = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup)
        # Values compiled into the statement (LIMIT...); the caller's parameters override.
        self._defaults: dict[str, Any] = dict(compiled.params)
        self._binds: tuple[_Processor, ...] = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self._names
        )
        if columns is None:
            if not isinstance(statement, sa.Select):
                raise TypeError("give the result columns of a statement other than SELECT")
            columns = list(statement.selected_columns)
        self._processors: tuple[_Processor, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        # A namedtuple: attribute access by column key, as on ``sa.Row``.
        row_type: Any = namedtuple("_RawRow", [column.key for column in columns])  # type: ignore[misc]
        self._make: Callable[[Iterable[Any]], Any] = row_type._make
        self._plain = all(processor is None for processor in self._processors)
        self._converted = [
            (index, processor)
            for index, processor in enumerate(self._processors)
            if processor is not None
        ]

    def _values(self, parameters: Mapping[str, Any]) -> list[Any]:
        defaults = self._defaults
        values = [
            parameters[name] if name in parameters else defaults[name] for name in self._names
        ]
        for index, bind in enumerate(self._binds):
            if bind is not None and values[index] is not None:
                values[index] = bind(values[index])
        return values

    def rows(self, connection: sqlite3.Connection, parameters: Mapping[str, Any]) -> list[Any]:
        """The processed rows (attribute access by column key, like ``sa.Row``)."""
        return self._made(self.raw_rows(connection, parameters))

    def raw_rows(
        self, connection: sqlite3.Connection, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The rows as ``sqlite3`` returns them, unprocessed: cheap to compare (``made``
        processes them later)."""
        cursor = execute(connection, self.sql, self._values(parameters))
        try:
            fetched: list[tuple[Any, ...]] = cursor.fetchall()
        finally:
            cursor.close()
        return fetched

    def made(self, fetched: Sequence[Sequence[Any]]) -> list[Any]:
        """``raw_rows``' rows processed as ``rows`` returns them."""
        return self._made(fetched)

    async def fetch(
        self,
        driver: Any,
        parameters: Mapping[str, Any],
        connection: AsyncConnection | None = None,
    ) -> list[Any]:
        """The processed rows through an ``asyncpg`` connection (``statement`` compiled for
        SQLAlchemy's asyncpg dialect, whose codecs that connection was set up with); with the
        SQLAlchemy ``connection`` it sits under, errors are mapped as ``pg_execute`` does."""
        values = self._values(parameters)
        if connection is not None:
            return self._made(await pg_fetch(connection, driver, self.sql, values))
        return self._made(await driver.fetch(self.sql, *values))

    def _made(self, fetched: Sequence[Sequence[Any]]) -> list[Any]:
        make = self._make
        if self._plain:
            return [make(row) for row in fetched]
        # Only the columns that need it cost a call (times, JSON, booleans).
        converted = self._converted
        rows = []
        for row in fetched:
            values = list(row)
            for index, processor in converted:
                value = values[index]
                if value is not None:
                    values[index] = processor(value)
            rows.append(make(values))
        return rows
