"""Export of XDRs in their current state, joined with the catalog's names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Customer, Tariff, Vendor
from rerate.ledger.reader import open_views
from rerate.services.errors import InvalidInputError
from rerate.services.parties import account_named, customer_named
from rerate.services.visibility import current_visibility

EXPORT_COLUMNS = (
    "source_id, xdr_id, collection_id, connect_time, duration, cli, cld, account, customer, status, reason, "
    "tariff, prefix, billed, amount, currency, vendor, vendor_tariff, vendor_status, vendor_reason, "
    "vendor_prefix, vendor_billed, cost, vendor_currency, country, destination_group, service, rating_key, "
    "line"
)
STATUSES = ("rated", "failed", "voided", "all")


@dataclass(frozen=True)
class ExportReport:
    path: str
    rows: int
    format: str


def export_xdrs(
    app: App,
    out: Path,
    *,
    fmt: str = "csv",
    status: str = "all",
    customer: str | None = None,
    account: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    number: str | None = None,
) -> ExportReport:
    if fmt not in ("csv", "parquet"):
        raise InvalidInputError(f"unknown export format {fmt!r}: use csv or parquet")
    if out.is_dir():
        raise InvalidInputError(f"{out} is a folder: --out names the file to write")
    con, query, where, params = _prepare(app, status, customer, account, start, end, number)
    if not out.parent.is_dir():  # as every other --out: a mistyped folder is reported, not created
        raise InvalidInputError(f"{out.parent} is not a folder: create it first, or give another --out")
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd"
    con.execute(f"COPY ({query}) TO '{str(out).replace(chr(39), chr(39) * 2)}' ({options})", params)
    (counted,) = con.execute(f"SELECT count(*) FROM xdrs x WHERE {where}", params).fetchall()
    return ExportReport(path=str(out), rows=int(counted[0]), format=fmt)


def search_xdrs(
    app: App,
    *,
    status: str = "all",
    customer: str | None = None,
    account: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    number: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The first ``limit`` XDRs (by connect time) that match, in the export's columns (money as text)."""
    con, query, _, params = _prepare(app, status, customer, account, start, end, number)
    rows = con.sql(f"SELECT * FROM ({query}) LIMIT {max(1, min(int(limit), 10_000))}", params=params)
    table = rows.to_arrow_table()
    return [
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()} for row in table.to_pylist()
    ]


def _prepare(
    app: App,
    status: str,
    customer: str | None,
    account: str | None,
    start: datetime | None,
    end: datetime | None,
    number: str | None = None,
) -> tuple[duckdb.DuckDBPyConnection, str, str, list[object]]:
    """A connection with the views, the export query, its WHERE clause and parameters."""
    if status not in STATUSES:
        raise InvalidInputError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
        names = {
            "customers": session.execute(select(Customer.id, Customer.name)).all(),
            "tariffs": session.execute(select(Tariff.id, Tariff.name)).all(),
            "vendors": session.execute(select(Vendor.id, Vendor.name)).all(),
        }
        customer_id = customer_named(session, customer).id if customer else None
        account_id = account_named(session, account).id if account else None
    days = (
        start.date() if start else datetime(1970, 1, 1).date(),
        end.date() if end else datetime(9999, 12, 31).date(),
    )
    con = open_views(
        app.ledger,
        visibility,
        days=days if (start or end) else None,
        memory_limit=app.settings.duckdb_memory_limit,
    )
    for table, rows in names.items():
        con.register(
            table,
            pa.table(
                {
                    "id": pa.array([r[0] for r in rows], pa.int64()),
                    "name": pa.array([r[1] for r in rows], pa.string()),
                }
            ),
        )
    where = ["true"]
    params: list[object] = []
    if status == "failed":  # on either side, as in correction scopes and the report's failed count
        where.append("(x.status = 'failed' OR x.vendor_status = 'failed')")
    elif status != "all":
        where.append("x.status = ?")
        params.append(status)
    if customer_id is not None:
        where.append("x.customer_id = ?")
        params.append(customer_id)
    if account_id is not None:
        where.append("x.account_id = ?")
        params.append(account_id)
    if start is not None:
        where.append("x.connect_time >= ?")
        params.append(start)
    if end is not None:
        where.append("x.connect_time < ?")
        params.append(end)
    if number:  # as received (CLI or CLD), or as normalized: 4420... finds +44 20... and 0044 20...
        where.append("(starts_with(x.cld, ?) OR starts_with(x.cli, ?) OR starts_with(x.number, ?))")
        params.extend([number, number, number])
    query = f"""
        SELECT x.source_id, x.xdr_id, x.collection_id,
               strftime(x.connect_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS connect_time,
               x.duration, x.cli, x.cld, x.account, c.name AS customer, x.status, x.reason,
               t.name AS tariff, x.prefix, x.billed, x.amount, x.currency,
               v.name AS vendor, vt.name AS vendor_tariff, x.vendor_status, x.vendor_reason,
               x.vendor_prefix, x.vendor_billed, x.cost, x.vendor_currency,
               x.country, x.destination_group, x.service, x.rating_key, x.line
        FROM xdrs x
        LEFT JOIN customers c ON c.id = x.customer_id
        LEFT JOIN tariffs t ON t.id = x.tariff_id
        LEFT JOIN vendors v ON v.id = x.vendor_id
        LEFT JOIN tariffs vt ON vt.id = x.vendor_tariff_id
        WHERE {" AND ".join(where)}
        ORDER BY x.connect_time, x.xdr_id
    """
    return con, query, " AND ".join(where), params
