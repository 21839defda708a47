"""The ledger side of CDR delivery: a customer's XDRs of a period as formatted columns, and their digests.

Rows are the XDRs' current state (corrections applied, rolled-back files
left out), the customer's own side only.  Two digests tell a delivered period
from a changed one:

* ``sources``: which committed units of work (collections, jobs) have daily
  totals for the customer on the period's days.  It is read from the totals,
  so checking a month of deliveries costs one small query.
* ``fingerprint``: the row count and the XOR of a hash of each row's
  customer-facing fields.  Computed while the file is written, and again only
  for a period whose sources changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Customer, Tariff
from rerate.domain.delivery import CdrColumn
from rerate.ledger.reader import connect_duckdb, open_views
from rerate.services.cdr_files import HASH_COLUMN
from rerate.services.visibility import current_visibility

#: The fields a customer sees; a change to any of them makes a delivered file out of date.
FINGERPRINT_FIELDS = (
    "xdr_id",
    "connect_time",
    "duration",
    "cli",
    "cld",
    "number",
    "account",
    "status",
    "reason",
    "prefix",
    "billed",
    "amount",
    "currency",
    "country",
    "destination_group",
    "service",
    "tariff_id",
)
_ROW_HASH = f"hash({', '.join('x.' + f for f in FINGERPRINT_FIELDS)})"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _amount(decimals: int | None) -> str:
    if decimals is not None:
        return f"CAST(CAST(x.amount AS DECIMAL(38, {int(decimals)})) AS VARCHAR)"
    # As rated: the stored value without the storage scale's trailing zeros (0.012300000 -> 0.0123).
    return "CASE WHEN x.amount IS NULL THEN NULL ELSE rtrim(rtrim(CAST(x.amount AS VARCHAR), '0'), '.') END"


def _expression(column: CdrColumn, zone: str, decimals: int | None) -> str:
    local = f"timezone({_quoted(zone)}, x.connect_time)"
    ends = f"timezone({_quoted(zone)}, x.connect_time + to_seconds(x.duration))"
    return {
        "source_id": "x.source_id",
        "xdr_id": "x.xdr_id",
        "connect_time": f"strftime({local}, '%Y-%m-%d %H:%M:%S')",
        "disconnect_time": f"strftime({ends}, '%Y-%m-%d %H:%M:%S')",
        "cli": "x.cli",
        "cld": "x.cld",
        "number": "x.number",
        "duration": "x.duration",
        "billed": "x.billed",
        "amount": _amount(decimals),
        "currency": "x.currency",
        "prefix": "x.prefix",
        "country": "x.country",
        "destination": "x.destination_group",
        "service": "x.service",
        "account": "x.account",
        "customer": "x.customer_name",
        "tariff": "x.tariff_name",
        "status": "x.status",
        "reason": "x.reason",
    }[column.name]


def _where(include_failed: bool) -> str:
    statuses = "('rated', 'failed')" if include_failed else "('rated')"
    return f"x.customer_id = ? AND x.connect_time >= ? AND x.connect_time < ? AND x.status IN {statuses}"


#: The staged copy of the rows a run delivers: the fields files can show, the names, and the row hash.
_STAGED_FIELDS = tuple(dict.fromkeys([*FINGERPRINT_FIELDS, "source_id"]))


@dataclass(frozen=True)
class StagedWindow:
    """One delivery's rows: a customer, a UTC window, and whether failed XDRs go too."""

    key: int
    customer_id: int
    starts: datetime
    ends: datetime
    include_failed: bool


def stage_rows(con: duckdb.DuckDBPyConnection, windows: Sequence[StagedWindow]) -> None:
    """Copy the rows of every window into ``delivery_rows`` in one pass over the ledger.

    Each file is then read from this table (by ``key``) instead of scanning the
    ledger once per customer; it is a table of the database, not of the
    connection, so worker cursors see it.
    """
    con.register(
        "delivery_windows",
        pa.table(
            {
                "key": pa.array([w.key for w in windows], pa.int64()),
                "customer_id": pa.array([w.customer_id for w in windows], pa.int64()),
                "starts": pa.array([w.starts for w in windows], pa.timestamp("us", tz="UTC")),
                "ends": pa.array([w.ends for w in windows], pa.timestamp("us", tz="UTC")),
                "include_failed": pa.array([w.include_failed for w in windows], pa.bool_()),
            }
        ),
    )
    fields = ", ".join(f"x.{f}" for f in _STAGED_FIELDS)
    spans = [utc_days(w.starts, w.ends) for w in windows]
    con.execute(
        f"""
        CREATE OR REPLACE TABLE delivery_rows AS
        SELECT w.key, {fields}, c.name AS customer_name, t.name AS tariff_name, {_ROW_HASH} AS {HASH_COLUMN}
        FROM xdrs x
        JOIN delivery_windows w
          ON x.customer_id = w.customer_id AND x.connect_time >= w.starts AND x.connect_time < w.ends
        LEFT JOIN delivery_customers c ON c.id = x.customer_id
        LEFT JOIN delivery_tariffs t ON t.id = x.tariff_id
        WHERE x.call_date BETWEEN ? AND ?
          AND (x.status = 'rated' OR (w.include_failed AND x.status = 'failed'))
        """,
        # Constant day bounds let DuckDB skip the partitions no window touches (a join does not).
        [min(days[0] for days in spans), max(days[1] for days in spans)],
    )
    con.unregister("delivery_windows")


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS delivery_rows")


def cdr_query(columns: Sequence[CdrColumn], zone: str, decimals: int | None) -> str:
    """SQL for one delivery's staged rows (parameter: its key), in call order."""
    selected = ", ".join(f"{_expression(c, zone, decimals)} AS c{i}" for i, c in enumerate(columns))
    return f"""
        SELECT {selected}, x.{HASH_COLUMN}
        FROM delivery_rows x
        WHERE x.key = ?
        ORDER BY x.connect_time, x.xdr_id
    """


def estimated_rows(con: duckdb.DuckDBPyConnection, windows: Sequence[StagedWindow]) -> dict[int, int]:
    """Upper bounds of each window's rows, from the daily totals of its customer's UTC days (cheap)."""
    _register_days(con, "estimate_windows", windows)
    rows = con.execute(
        """
        SELECT w.key, coalesce(sum(t.calls), 0)
        FROM estimate_windows w
        LEFT JOIN daily_totals t
          ON t.customer_id = w.customer_id AND t.day BETWEEN w.first_day AND w.last_day
        GROUP BY w.key
        """
    ).fetchall()
    con.unregister("estimate_windows")
    return {int(key): int(calls) for key, calls in rows}


def utc_days(starts: datetime, ends: datetime) -> tuple[date, date]:
    """The UTC call dates (ledger partitions) a window touches."""
    return starts.date(), (ends - timedelta(microseconds=1)).date()


def open_delivery_views(app: App, days: tuple[date, date]) -> duckdb.DuckDBPyConnection:
    """Views of the XDRs and totals of ``days`` (UTC), with the names the files show."""
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
        customers = session.execute(select(Customer.id, Customer.name)).all()
        tariffs = session.execute(select(Tariff.id, Tariff.name)).all()
    # A month of a large customer may not fit the memory limit: DuckDB spills the staged rows to disk.
    con = connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp" / "delivery")
    open_views(app.ledger, visibility, days=days, con=con)
    for name, rows in (("delivery_customers", customers), ("delivery_tariffs", tariffs)):
        con.register(
            name,
            pa.table(
                {
                    "id": pa.array([r[0] for r in rows], pa.int64()),
                    "name": pa.array([r[1] for r in rows], pa.string()),
                }
            ),
        )
    return con


def fingerprint(
    con: duckdb.DuckDBPyConnection, customer_id: int, starts: datetime, ends: datetime, include_failed: bool
) -> str:
    """The same digest :class:`rerate.services.cdr_files.CdrWriter` computes while writing the file."""
    ((count, xor),) = con.execute(
        f"SELECT count(*), coalesce(bit_xor({_ROW_HASH}), 0) FROM xdrs x WHERE {_where(include_failed)}",
        [customer_id, starts, ends],
    ).fetchall()
    return f"{int(count)}:{int(xor):016x}"


@dataclass(frozen=True)
class Window:
    key: int
    customer_id: int
    starts: datetime
    ends: datetime


def _register_days(
    con: duckdb.DuckDBPyConnection, name: str, windows: Sequence[Window | StagedWindow]
) -> None:
    """``name``: per window its key, customer and the UTC days (totals partitions) it touches."""
    spans = [utc_days(w.starts, w.ends) for w in windows]
    con.register(
        name,
        pa.table(
            {
                "key": pa.array([w.key for w in windows], pa.int64()),
                "customer_id": pa.array([w.customer_id for w in windows], pa.int64()),
                "first_day": pa.array([s[0] for s in spans], pa.date32()),
                "last_day": pa.array([s[1] for s in spans], pa.date32()),
            }
        ),
    )


def sources_digests(con: duckdb.DuckDBPyConnection, windows: Sequence[Window]) -> dict[int, str]:
    """Per window: a digest of the units of work with totals for its customer on its UTC days."""
    if not windows:
        return {}
    _register_days(con, "delivery_windows", windows)
    rows = con.execute(
        """
        SELECT w.key, string_agg(DISTINCT t.source, ',' ORDER BY t.source)
        FROM delivery_windows w
        LEFT JOIN daily_totals t
          ON t.customer_id = w.customer_id AND t.day BETWEEN w.first_day AND w.last_day
        GROUP BY w.key
        """
    ).fetchall()
    con.unregister("delivery_windows")
    return {int(key): hashlib.sha256((sources or "").encode()).hexdigest()[:32] for key, sources in rows}
