"""The summary report for invoicing, and the views that help find mistakes before invoicing.

Everything is read from the aggregates every unit of work keeps exact (the
daily totals; per prefix, the monthly per-prefix totals), not from raw XDRs;
see :func:`_source` for the one exception.  The CSV schema is stable and documented
in docs/reports.md: invoicing tools import it.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import Account, Adjustment, BillingPeriod, Customer, Job, Vendor
from rerate.ledger.reader import Visibility, open_totals, open_views
from rerate.ledger.tables import PREFIX_TOTALS, TOTALS
from rerate.services.errors import InvalidInputError, NotFoundError
from rerate.services.periods import period_bounds
from rerate.services.visibility import current_visibility

#: --group-by keys: (the totals' column it groups by first, the shown value over the small result ``b``).
GROUPS = {
    "customer": ("t.customer_id", "coalesce(c.name, '(unknown account)')"),
    "account": ("t.account_id", "coalesce(a.identifier, '(unknown)')"),
    "vendor": ("t.vendor_id", "coalesce(v.name, '(unknown vendor)')"),
    "country": ("t.country", "coalesce(b.country, '')"),
    "destination_group": ("t.destination_group", "coalesce(b.destination_group, '')"),
    "service": ("t.service", "coalesce(b.service, '')"),
    "prefix": ("t.prefix", "coalesce(b.prefix, '')"),
    "day": ("t.day", "strftime(b.day, '%Y-%m-%d')"),
    "period": ("date_trunc('month', t.day) AS period", "strftime(b.period, '%Y-%m')"),
}
#: Measures that add up from lines to totals.
ADDITIVE = ("calls", "seconds", "billed", "revenue", "cost", "failed")
MEASURES = ("calls", "seconds", "billed", "revenue", "cost", "cost_currency", "margin", "failed")
#: Columns of the CSV after the group keys (docs/reports.md).
ADJUSTMENT_COLUMNS = ("corrected_period", "destination", "job_id")


@dataclass
class ReportRequest:
    customers: Sequence[str] = ()
    period: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    group_by: Sequence[str] = ("customer",)
    as_closed: bool = False


@dataclass
class Report:
    group_by: list[str]
    window: tuple[str | None, str | None]
    lines: list[dict[str, Any]] = field(default_factory=list)
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    totals: list[dict[str, Any]] = field(default_factory=list)
    as_closed: bool = False
    #: What the lines were computed from: ``daily_totals``, ``prefix_totals`` or ``xdrs``.
    source: str = TOTALS

    def as_dict(self) -> dict[str, Any]:
        """The report as the JSON output shows it (no copy of the lines: a report can have millions)."""
        return {
            "group_by": self.group_by,
            "window": self.window,
            "as_closed": self.as_closed,
            "source": self.source,
            "lines": self.lines,
            "adjustments": self.adjustments,
            "totals": self.totals,
        }

    @property
    def columns(self) -> list[str]:
        """The CSV's columns: section, the group keys, currency, the measures, the adjustment fields."""
        return ["section", *self.group_by, "currency", *MEASURES, *ADJUSTMENT_COLUMNS]

    def rows(self) -> list[dict[str, Any]]:
        """Every section as rows of :attr:`columns` (None where a column does not apply)."""
        found = []
        for section, entries in (
            ("line", self.lines),
            ("adjustment", self.adjustments),
            ("total", self.totals),
        ):
            for entry in entries:
                found.append({c: entry.get(c) for c in self.columns} | {"section": section})
        return found


def _window(request: ReportRequest) -> tuple[datetime | None, datetime | None]:
    if request.period and (request.start or request.end):
        raise InvalidInputError("give --period or --from/--to, not both")
    if request.period:
        first, after = period_bounds(request.period)
        return first, after
    _check_window(request.start, request.end)
    return request.start, request.end


def _check_window(start: datetime | None, end: datetime | None) -> None:
    if start and end and end <= start:  # an empty window is a mistake, not "no rows"
        raise InvalidInputError("--to must be after --from")


def summary_report(app: App, request: ReportRequest) -> Report:
    """The period's lines grouped as asked, corrections to closed periods, and totals per currency."""
    unknown = [g for g in request.group_by if g not in GROUPS]
    if unknown or not request.group_by:
        raise InvalidInputError(
            f"--group-by takes a comma list of {', '.join(GROUPS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    repeated = sorted(g for g, times in Counter(request.group_by).items() if times > 1)
    if repeated:  # one column per key: the CSV schema is stable
        raise InvalidInputError(f"--group-by names {', '.join(repeated)} more than once")
    if request.as_closed and "prefix" in request.group_by:
        raise InvalidInputError("--as-closed reproduces the closed totals, which have no prefix")
    start, end = _window(request)
    with app.catalog.reading() as session:
        customers = {name: id_ for id_, name in session.execute(select(Customer.id, Customer.name))}
        missing = [c for c in request.customers if c not in customers]
        if missing:
            raise NotFoundError(f"no customer {', '.join(map(repr, missing))}")
        wanted = [customers[c] for c in request.customers]
        visibility = current_visibility(session)
        parties = {
            "customers": session.execute(select(Customer.id, Customer.name, Customer.currency)).all(),
            "accounts": session.execute(select(Account.id, Account.identifier)).all(),
            "vendors": session.execute(select(Vendor.id, Vendor.name)).all(),
        }
        closed = None
        if request.as_closed:
            if len(wanted) != 1 or not request.period:
                raise InvalidInputError("--as-closed reproduces one customer's closed --period")
            closed = session.scalar(
                select(BillingPeriod).where(
                    BillingPeriod.customer_id == wanted[0], BillingPeriod.period == request.period
                )
            )
            if closed is None:
                raise NotFoundError(f"{request.customers[0]} {request.period} is not closed")
        # As closed: the lines the invoice carried, from the jobs applied when it was closed.
        invoiced = visibility.jobs if closed is None else _jobs_of(closed.sources)
        adjustments = _adjustments(session, wanted, start, end, invoiced) if wanted else []
    if closed is not None:  # exactly as invoiced: the totals' version and units recorded at closing
        visibility = Visibility(collections=(), sources=tuple(closed.sources))
    app.ledger.ensure()
    source = _source(request.group_by, start, end)
    if source == "xdrs":
        con = _xdr_totals(app, visibility, start, end)
    else:
        con = open_totals(
            app.ledger,
            visibility,
            memory_limit=app.settings.duckdb_memory_limit,
            version=closed.totals_version if closed is not None else None,
        )
        if source == PREFIX_TOTALS:
            _prefix_totals_as_daily(con)
    _register_parties(con, parties)
    report = Report(
        list(request.group_by),
        (start.isoformat() if start else None, end.isoformat() if end else None),
        as_closed=closed is not None,
        source=source,
    )
    lines = _grouped(con, list(request.group_by), wanted, start, end)
    report.lines = _as_dicts(lines)
    report.adjustments = adjustments
    report.totals = _totals(_per_currency(lines), report.adjustments)
    return report


#: Groupings the monthly per-prefix totals can answer (they keep no account, vendor or day).
PREFIX_GROUPS = {"prefix", "customer", "country", "destination_group", "service", "period"}


def _jobs_of(sources: Sequence[str]) -> tuple[int, ...]:
    """The jobs among units of work recorded as ``job:<id>`` (a closed period's, say)."""
    return tuple(int(s.split(":", 1)[1]) for s in sources if s.startswith("job:"))


def _starts_a_day(moment: datetime | None) -> bool:
    return moment is None or moment == datetime(moment.year, moment.month, moment.day, tzinfo=moment.tzinfo)


def _starts_a_month(moment: datetime | None) -> bool:
    return moment is None or (moment == datetime(moment.year, moment.month, 1, tzinfo=moment.tzinfo))


def _source(group_by: Sequence[str], start: datetime | None, end: datetime | None) -> str:
    """Which rows answer the report: the daily totals, the monthly per-prefix totals, or the XDRs.

    The daily totals do not keep the matched prefix: at one row per prefix per
    day they would be almost as large as the XDRs (37.7 M rows for the demo
    world's 50 M XDRs), and every other report would pay for it.  A per-prefix
    report over whole months reads the monthly per-prefix totals; one by
    account, vendor or day, or over a window that cuts a month, reads the XDRs
    of its window (seconds at that scale, not the totals' sub-second).
    """
    if not (_starts_a_day(start) and _starts_a_day(end)):
        return "xdrs"  # the totals are per day: a window cutting a day needs each call's time
    if "prefix" not in group_by:
        return TOTALS
    if set(group_by) <= PREFIX_GROUPS and _starts_a_month(start) and _starts_a_month(end):
        return PREFIX_TOTALS
    return "xdrs"


def _prefix_totals_as_daily(con: duckdb.DuckDBPyConnection) -> None:
    """The per-prefix totals under the daily totals' name and columns (each month on its first day)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW daily_totals AS
        SELECT period AS day, customer_id, NULL::BIGINT AS account_id, NULL::BIGINT AS vendor_id, country,
               destination_group, service, prefix, currency, vendor_currency, status, vendor_status, calls,
               seconds, billed, amount, cost
        FROM prefix_totals
        """
    )


def _xdr_totals(
    app: App, visibility: Visibility, start: datetime | None, end: datetime | None
) -> duckdb.DuckDBPyConnection:
    """``daily_totals`` computed from the XDRs of the window (see :func:`_source`); partitions outside
    the window are skipped."""
    days = (start.date() if start else date(1970, 1, 1), end.date() if end else date(9999, 12, 31))
    con = open_views(
        app.ledger,
        visibility,
        days=days if (start or end) else None,
        memory_limit=app.settings.duckdb_memory_limit,
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW daily_totals AS
        SELECT call_date AS day, customer_id, account_id, vendor_id, country, destination_group, service,
               prefix, currency, vendor_currency, status, reason, vendor_status, vendor_reason,
               1::BIGINT AS calls, duration AS seconds, billed, amount, cost
        FROM xdrs
        WHERE connect_time >= coalesce($start, '-infinity'::TIMESTAMPTZ)
          AND connect_time < coalesce($end, 'infinity'::TIMESTAMPTZ)
        """.replace("$start", _sql_time(start)).replace("$end", _sql_time(end))
    )
    return con


def _sql_time(moment: datetime | None) -> str:
    return "NULL" if moment is None else f"'{moment.isoformat()}'::TIMESTAMPTZ"


def _register_parties(con: duckdb.DuckDBPyConnection, parties: dict[str, Sequence[Any]]) -> None:
    customers, accounts, vendors = parties["customers"], parties["accounts"], parties["vendors"]
    con.register(
        "report_customers",
        pa.table(
            {
                "id": pa.array([c[0] for c in customers], pa.int64()),
                "name": pa.array([c[1] for c in customers], pa.string()),
                "currency": pa.array([c[2] for c in customers], pa.string()),
            }
        ),
    )
    con.register(
        "report_accounts",
        pa.table(
            {
                "id": pa.array([a[0] for a in accounts], pa.int64()),
                "identifier": pa.array([a[1] for a in accounts], pa.string()),
            }
        ),
    )
    con.register(
        "report_vendors",
        pa.table(
            {
                "id": pa.array([v[0] for v in vendors], pa.int64()),
                "name": pa.array([v[1] for v in vendors], pa.string()),
            }
        ),
    )


def _filters(wanted: Sequence[int], start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    where: list[str] = ["true"]
    params: list[Any] = []
    if wanted:
        where.append(f"t.customer_id IN ({', '.join('?' for _ in wanted)})")
        params.extend(wanted)
    if start is not None:
        where.append("t.day >= ?")
        params.append(start.date())
    if end is not None:  # a day the window ends inside is in it (its calls were cut by time)
        where.append("t.day < ?")
        params.append(end.date() if _starts_a_day(end) else end.date() + timedelta(days=1))
    return " AND ".join(where), params


def _grouped(
    con: duckdb.DuckDBPyConnection,
    keys: list[str],
    wanted: Sequence[int],
    start: datetime | None,
    end: datetime | None,
) -> pa.Table:
    """The report's lines (one per group and currency, ordered), with their measures and margin."""
    where, params = _filters(wanted, start, end)
    # First by the totals' own columns (ids, low-cardinality text), then names on the small result:
    # the daily totals of a month can hold millions of rows.
    first = ", ".join(dict.fromkeys(["t.customer_id", *(GROUPS[k][0] for k in keys)]))
    shown = "".join(f"{GROUPS[k][1]} AS {k}, " for k in keys)
    query = f"""
        WITH b AS (
            SELECT {first}, t.currency, t.vendor_currency,
                   sum(t.calls) FILTER (WHERE t.status = 'rated') AS calls,
                   sum(t.seconds) FILTER (WHERE t.status = 'rated') AS seconds,
                   sum(t.billed) FILTER (WHERE t.status = 'rated') AS billed,
                   sum(t.amount) FILTER (WHERE t.status = 'rated') AS revenue,
                   sum(t.cost) FILTER (WHERE t.vendor_status = 'rated') AS cost,
                   sum(t.calls) FILTER (WHERE t.vendor_status = 'rated') AS costed,
                   sum(t.calls) FILTER (WHERE t.status = 'failed' OR t.vendor_status = 'failed') AS failed
            FROM daily_totals t
            WHERE {where}
            GROUP BY ALL
            -- a group whose XDRs all moved away (a correction changed their prefix, say) nets to
            -- zero calls over every status: the XDRs have no such group, neither does the report
            HAVING sum(t.calls) <> 0
        ), lines AS (
            SELECT {shown}
                   coalesce(b.currency, c.currency, '') AS currency,
                   coalesce(sum(b.calls), 0)::BIGINT AS calls,
                   coalesce(sum(b.seconds), 0)::BIGINT AS seconds,
                   coalesce(sum(b.billed), 0)::BIGINT AS billed,
                   coalesce(sum(b.revenue), 0)::DECIMAL(38, 9) AS revenue,
                   coalesce(sum(b.cost), 0)::DECIMAL(38, 9) AS cost,
                   CASE WHEN count(DISTINCT b.vendor_currency) FILTER (WHERE b.costed > 0) > 1 THEN 'mixed'
                        ELSE coalesce(any_value(b.vendor_currency) FILTER (WHERE b.costed > 0), '')
                   END AS cost_currency,
                   coalesce(sum(b.failed), 0)::BIGINT AS failed
            FROM b
            LEFT JOIN report_customers c ON c.id = b.customer_id
            {"LEFT JOIN report_accounts a ON a.id = b.account_id" if "account" in keys else ""}
            {"LEFT JOIN report_vendors v ON v.id = b.vendor_id" if "vendor" in keys else ""}
            GROUP BY ALL
        )
        SELECT *, CASE WHEN cost_currency IN ('', currency) THEN revenue - cost END AS margin
        FROM lines
        ORDER BY ALL
    """
    # Column by column through Arrow: a per-prefix report has a million lines, and Python tuples
    # fetched row by row cost several times the query.
    return con.sql(query, params=params).to_arrow_table()


def _as_dicts(table: pa.Table) -> list[dict[str, Any]]:
    names = table.column_names
    columns = [column.to_pylist() for column in table.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _per_currency(lines: pa.Table) -> list[dict[str, Any]]:
    """The lines summed per currency and cost currency: what :func:`_totals` needs, a few rows."""
    summed = lines.group_by(["currency", "cost_currency"]).aggregate([(m, "sum") for m in ADDITIVE])
    return _as_dicts(summed.rename_columns([name.removesuffix("_sum") for name in summed.column_names]))


def _totals(lines: Sequence[dict[str, Any]], adjustments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Totals per currency, summed from the lines (the same figures a query without keys gives),
    plus the adjustments' money: corrections are invoiced with the period."""
    totals: dict[str, dict[str, Any]] = {}

    def total_of(currency: str) -> dict[str, Any]:
        total = totals.get(currency)
        if total is None:  # built once per currency: a report can have a million lines
            total = {"currency": currency, **dict.fromkeys(ADDITIVE, 0), "cost_currency": "", "margin": None}
            totals[currency] = total
        return total

    for line in lines:
        total = total_of(line["currency"])
        for name in ADDITIVE:
            total[name] += line[name]
        _holds_cost_in(total, line["cost_currency"])
    for adjustment in adjustments:  # revenue and cost both in the adjustment's currency
        total = total_of(adjustment["currency"])
        total["revenue"] += adjustment["revenue"]
        total["cost"] += adjustment["cost"]
        if adjustment["cost"]:
            _holds_cost_in(total, adjustment["currency"])
    for total in totals.values():
        if total["cost_currency"] in ("", total["currency"]):
            total["margin"] = total["revenue"] - total["cost"]
    return [totals[c] for c in sorted(totals)]


def _holds_cost_in(total: dict[str, Any], currency: str) -> None:
    """Note that ``total`` holds costs in ``currency``: its cost currency, or ``mixed``."""
    if currency and total["cost_currency"] != currency:
        total["cost_currency"] = currency if not total["cost_currency"] else "mixed"


def _invoiced_lines_of_reverted_jobs(
    session: Session, applied: Sequence[int]
) -> dict[int, set[tuple[int, str]]]:
    """Reverted job -> the (customer, period) whose adjustment lines stay with it.

    A job reverted after the period that invoiced its adjustment lines had closed stays on that
    invoice: its revert recorded lines taking them back (shown in the revert's own window)
    for those customers' periods, and only for those.
    """
    taken_back = session.execute(
        select(Job.id, Adjustment.customer_id, Adjustment.period)
        .join(Adjustment, Adjustment.job_id == Job.reverted_by_job_id)
        .where(Job.state == "reverted", Job.reverted_by_job_id.in_(list(applied)))
    ).all()
    kept: dict[int, set[tuple[int, str]]] = {}
    for job_id, customer_id, period in taken_back:
        kept.setdefault(job_id, set()).add((customer_id, period))
    return kept


def _adjustments(
    session: Session, wanted: Sequence[int], start: datetime | None, end: datetime | None, jobs: Sequence[int]
) -> list[dict[str, Any]]:
    """Corrections to closed periods made by jobs applied in the window (still applied).

    Only periods that end before the window starts: the lines of a period inside the window
    already hold its corrected XDRs, so its adjustments would count the correction twice.
    """
    if not jobs or start is None:
        return []
    kept = _invoiced_lines_of_reverted_jobs(session, jobs)
    query = (
        select(Adjustment, Customer.name, Job.finished_at)
        .join(Customer, Customer.id == Adjustment.customer_id)
        .join(Job, Job.id == Adjustment.job_id)
        .where(Adjustment.customer_id.in_(wanted), Adjustment.job_id.in_([*jobs, *kept]))
        .order_by(Adjustment.period, Adjustment.destination, Adjustment.id)
    )
    lines = []
    for adjustment, customer, finished in session.execute(query).all():
        if (
            adjustment.job_id in kept
            and (adjustment.customer_id, adjustment.period) not in kept[adjustment.job_id]
        ):
            continue  # reverted before it was invoiced: its lines went with it
        when = finished.replace(tzinfo=UTC) if finished and finished.tzinfo is None else finished
        if when is not None and (when < start or (end and when >= end)):
            continue
        first, last = period_bounds(adjustment.period)
        if first < start < last:  # part of the period in the lines, part not: no exact answer
            raise InvalidInputError(
                f"the report starts inside {adjustment.period}, a closed period that job "
                f"{adjustment.job_id} corrected: start it on {first:%Y-%m-%d} or {last:%Y-%m-%d} "
                "so that the correction is counted once"
            )
        if last > start:  # the period is in the window: its lines hold the corrected XDRs
            continue
        lines.append(
            {
                "customer": customer,
                "currency": adjustment.currency,
                "calls": adjustment.xdrs,
                "revenue": adjustment.amount_delta,
                "cost": adjustment.cost_delta,
                "margin": adjustment.amount_delta - adjustment.cost_delta,
                "corrected_period": adjustment.period,
                "destination": adjustment.destination,
                "job_id": adjustment.job_id,
            }
        )
    return lines


def failures_by_reason(
    app: App, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """Failed XDRs per customer and reason, either side: what to fix before invoicing."""
    con, where, params = _current(app, start, end)
    rows = con.execute(
        f"""
        SELECT coalesce(c.name, '(unknown account)') AS customer, side, reason, sum(calls) AS xdrs
        FROM (
            SELECT customer_id, 'customer' AS side, reason, calls, day FROM daily_totals t
            WHERE status = 'failed' AND {where}
            UNION ALL
            SELECT customer_id, 'vendor', vendor_reason, calls, day FROM daily_totals t
            WHERE vendor_status = 'failed' AND {where}
        ) f LEFT JOIN report_customers c ON c.id = f.customer_id
        GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3
        """,
        params + params,
    ).fetchall()
    return [dict(zip(("customer", "side", "reason", "xdrs"), r, strict=True)) for r in rows]


def negative_margins(
    app: App, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """Customer and destination pairs that cost more than they earn (same currency on both sides)."""
    con, where, params = _current(app, start, end)
    rows = con.execute(
        f"""
        SELECT coalesce(c.name, '(unknown account)') AS customer, coalesce(t.country, '') AS country,
               coalesce(t.destination_group, '') AS destination_group, t.currency,
               sum(t.calls) AS calls, sum(t.amount) AS revenue, sum(t.cost) AS cost,
               sum(t.amount) - sum(t.cost) AS margin
        FROM daily_totals t LEFT JOIN report_customers c ON c.id = t.customer_id
        WHERE t.status = 'rated' AND t.vendor_status = 'rated' AND t.currency = t.vendor_currency AND {where}
        GROUP BY 1, 2, 3, 4 HAVING sum(t.amount) < sum(t.cost)
        ORDER BY margin, 1, 2, 3
        """,
        params,
    ).fetchall()
    names = ("customer", "country", "destination_group", "currency", "calls", "revenue", "cost", "margin")
    return [dict(zip(names, r, strict=True)) for r in rows]


def day_over_day_jumps(
    app: App,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    threshold_percent: int = 50,
    minimum_calls: int = 100,
) -> list[dict[str, Any]]:
    """Days whose calls or revenue moved more than ``threshold_percent`` from the day before, per
    customer and currency (a customer billed in two currencies is compared currency by currency)."""
    con, where, params = _current(app, start, end)
    rows = con.execute(
        f"""
        WITH daily AS (
            SELECT t.customer_id, t.currency, t.day, sum(t.calls) AS calls, sum(t.amount) AS revenue
            FROM daily_totals t WHERE t.status = 'rated' AND {where} GROUP BY 1, 2, 3
            HAVING sum(t.calls) <> 0  -- keys whose calls corrections moved away net to nothing
        ),
        paired AS (
            SELECT *, lag(calls) OVER w AS calls_before, lag(revenue) OVER w AS revenue_before,
                   lag(day) OVER w AS day_before
            FROM daily WINDOW w AS (PARTITION BY customer_id, currency ORDER BY day)
        )
        SELECT coalesce(c.name, '(unknown account)'), strftime(day, '%Y-%m-%d'), p.currency, calls_before,
               calls, revenue_before, revenue
        FROM paired p LEFT JOIN report_customers c ON c.id = p.customer_id
        WHERE day_before = day - INTERVAL 1 DAY AND greatest(calls, calls_before) >= ?
          AND (abs(calls - calls_before) * 100 > ? * calls_before
               OR abs(revenue - revenue_before) * 100 > ? * revenue_before)
        ORDER BY 1, 2, 3
        """,
        [*params, minimum_calls, threshold_percent, threshold_percent],
    ).fetchall()
    names = ("customer", "day", "currency", "calls_before", "calls", "revenue_before", "revenue")
    return [dict(zip(names, r, strict=True)) for r in rows]


def _current(
    app: App, start: datetime | None, end: datetime | None
) -> tuple[duckdb.DuckDBPyConnection, str, list[Any]]:
    _check_window(start, end)
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
        parties = {
            "customers": session.execute(select(Customer.id, Customer.name, Customer.currency)).all(),
            "accounts": [],
            "vendors": [],
        }
    if _source((), start, end) == "xdrs":  # as the summary: a window cutting a day reads its calls
        app.ledger.ensure()
        con = _xdr_totals(app, visibility, start, end)
    else:
        con = open_totals(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
    _register_parties(con, parties)
    where, params = _filters((), start, end)
    return con, where, params


def calls_by_day(
    app: App, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """Per day and currency: calls rated and failed, revenue, cost and margin (the charts' series).

    Revenue and calls count under the customer's currency, cost under the vendor's: a margin
    never subtracts one currency from another.
    """
    con, where, params = _current(app, start, end)
    rows = con.execute(
        f"""
        SELECT day, currency, sum(rated)::BIGINT, sum(failed)::BIGINT, sum(revenue), sum(cost)
        FROM (
            SELECT strftime(t.day, '%Y-%m-%d') AS day, coalesce(t.currency, '') AS currency,
                   coalesce(sum(t.calls) FILTER (WHERE t.status = 'rated'), 0) AS rated,
                   coalesce(sum(t.calls) FILTER (WHERE t.status = 'failed' OR t.vendor_status = 'failed'), 0)
                       AS failed,
                   coalesce(sum(t.amount) FILTER (WHERE t.status = 'rated'), 0) AS revenue,
                   0 AS cost, sum(t.calls) AS calls
            FROM daily_totals t WHERE {where} GROUP BY 1, 2
            UNION ALL
            SELECT strftime(t.day, '%Y-%m-%d'), t.vendor_currency, 0, 0, 0,
                   coalesce(sum(t.cost) FILTER (WHERE t.vendor_status = 'rated'), 0), 0
            FROM daily_totals t WHERE {where} AND t.vendor_currency IS NOT NULL GROUP BY 1, 2
        )
        GROUP BY 1, 2 HAVING sum(calls) <> 0 OR sum(cost) <> 0 ORDER BY 1, 2
        """,
        params + params,
    ).fetchall()
    names = ("day", "currency", "rated", "failed", "revenue", "cost")
    found = [dict(zip(names, r, strict=True)) for r in rows]
    for row in found:
        row["margin"] = row["revenue"] - row["cost"]
    return found


#: Summaries a long-running service has computed, by request and the ledger state they show.
_CACHE: OrderedDict[tuple[Any, ...], Report] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_COMPUTING: dict[tuple[Any, ...], threading.Lock] = {}
_CACHE_SIZE = 64


def _ledger_state(app: App) -> tuple[Any, ...]:
    """What a summary depends on besides its request: visible units, parties, closed periods."""
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
        marks = tuple(
            session.scalar(select(func.coalesce(func.max(column), 0)))
            for column in (Customer.id, Account.id, Vendor.id, BillingPeriod.id)
        )
    return (str(app.home), visibility.sources, marks)


def cached_summary_report(app: App, request: ReportRequest) -> Report:
    """:func:`summary_report`, reused while nothing it shows can have changed.

    For the service, where many users (and pollers) read the same month's
    summary: the key holds the units of work visible now (any ingest,
    correction, revert or cache repair changes them) and the catalog's
    parties and closed periods, so a cached report is always the one a fresh
    computation would give.  A report computed while that state moved is
    returned but not kept.  Callers must not modify the report returned.
    """
    request_key = (
        tuple(request.customers),
        request.period,
        request.start,
        request.end,
        tuple(request.group_by),
        request.as_closed,
    )
    key = (request_key, _ledger_state(app))
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
        # One computation per key: readers arriving meanwhile wait for it instead of repeating it.
        computing = _COMPUTING.setdefault(key, threading.Lock())
    with computing:
        with _CACHE_LOCK:
            found = _CACHE.get(key)
        if found is not None:
            return found
        try:
            report = summary_report(app, request)
            if _ledger_state(app) == key[1]:
                with _CACHE_LOCK:
                    _CACHE[key] = report
                    while len(_CACHE) > _CACHE_SIZE:
                        _CACHE.popitem(last=False)
        finally:  # a failing request (a bad grouping, say) leaves nothing behind
            with _CACHE_LOCK:
                _COMPUTING.pop(key, None)
    return report


def warm_summaries(app: App, now: datetime | None = None) -> None:
    """Compute (into the cache) the summaries the billing team opens most: this month and the last.

    Called by the service when it starts and after every job it runs, so the
    first reader after a change does not wait for the computation.
    """
    today = (now or datetime.now(UTC)).date()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    for month in (today.replace(day=1), last):
        cached_summary_report(app, ReportRequest(period=f"{month:%Y-%m}"))
