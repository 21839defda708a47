"""Inserting many catalog rows at once, without per-value work in the ORM's layers.

A 200,000-row rate deck spends more time in SQLAlchemy's per-row and
per-value machinery than in the database.  :func:`insert_many` converts each
value once by its column's type (exactly as the column types in
:mod:`rerate.catalog.types` would) and hands whole chunks to the driver's
``executemany``, inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, FromClause
from sqlalchemy.orm import Session

from rerate.catalog.types import NanoMoney, UtcDateTime
from rerate.domain.money import to_nanos

Converter = Callable[[Any], Any]


@lru_cache(maxsize=1 << 12)  # rows share few distinct times
def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite storage format for a UTC time."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _nanos(value: Decimal | None) -> int | None:
    """Money as nano-units; a value with more than 9 decimals is refused, never rounded."""
    return None if value is None else _nanos_of(value)


@lru_cache(maxsize=1 << 16)  # rows share few distinct prices
def _nanos_of(value: Decimal) -> int:
    scaled = value.scaleb(9)
    nanos = int(scaled)
    if nanos != scaled:
        to_nanos(value)  # raises, naming the value
    return nanos


def _converter(column_type: Any, sqlite: bool) -> Converter | None:
    if isinstance(column_type, NanoMoney):
        return _nanos
    if isinstance(column_type, UtcDateTime):
        if sqlite:
            return lambda v: None if v is None else _sqlite_time(v)
        return lambda v: None if v is None else v.astimezone(UTC)
    if isinstance(column_type, Boolean) and sqlite:
        return lambda v: None if v is None else int(bool(v))
    if isinstance(column_type, JSON):
        return lambda v: None if v is None else json.dumps(v)
    return None


def insert_many(
    session: Session, table: FromClause, rows: Sequence[Mapping[str, Any]], chunk: int = 20_000
) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` in the session's transaction."""
    if rows:
        insert_columns(session, table, {name: [row[name] for row in rows] for name in rows[0]}, chunk)


def insert_columns(
    session: Session, table: FromClause, columns: Mapping[str, Sequence[Any]], chunk: int = 20_000
) -> None:
    """Insert rows given column by column (equal lengths) into ``table`` in the session's transaction."""
    # A nullable column that is empty in every row is left to its NULL: fewer values to bind.
    names = [n for n in columns if not (table.c[n].nullable and all(v is None for v in columns[n]))]
    count = len(columns[names[0]]) if names else 0
    if count == 0:
        return
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    marker = "?" if sqlite else "%s"
    statement = (
        f"INSERT INTO {table.description} ({', '.join(names)}) VALUES ({', '.join(marker for _ in names)})"
    )
    # Column by column: one conversion loop per column instead of one per value.
    converted = []
    for name in names:
        convert = _converter(table.c[name].type, sqlite)
        values = columns[name]
        converted.append(values if convert is None else list(map(convert, values)))
    cursor = connection.connection.cursor()
    try:
        for start in range(0, count, chunk):
            cursor.executemany(
                statement, list(zip(*(c[start : start + chunk] for c in converted), strict=True))
            )
    finally:
        cursor.close()
