"""Billing periods: closing them, and reproducing a closed period exactly.

Closing records the ledger's table versions and which units of work were
visible.  Later corrections that touch the period need ``--allow-closed``;
they write their revisions as usual and adjustment lines for the open
period, while the closed period's totals, read at the recorded version with
the recorded units, stay exactly what was invoiced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import BillingPeriod, Customer
from rerate.domain.money import money_text
from rerate.ledger.reader import Visibility, open_totals, open_views
from rerate.ledger.tables import REVISIONS, TOTALS, XDRS
from rerate.services import audit
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError
from rerate.services.locks import ledger_lock
from rerate.services.parties import customer_named
from rerate.services.recovery import recover_interrupted
from rerate.services.visibility import current_visibility

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    match = _PERIOD.match(period)
    if not match:
        raise InvalidInputError(f"--period must look like 2026-10, got {period!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1970 <= year <= 9998:
        raise InvalidInputError(f"--period {period}: the year must be between 1970 and 9998")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _summary(con: duckdb.DuckDBPyConnection, relation: str, customer_id: int, period: str) -> dict[str, Any]:
    start, end = period_bounds(period)
    rows = con.execute(
        f"""
        WITH period AS (SELECT * FROM {relation} WHERE customer_id = $1 AND day >= $2 AND day < $3)
        SELECT currency, sum(calls), sum(seconds), sum(amount), sum(cost) FROM (
            SELECT currency, calls, seconds, amount, 0 AS cost FROM period WHERE status = 'rated'
            UNION ALL
            SELECT vendor_currency, 0, 0, 0, cost FROM period WHERE vendor_status = 'rated'
        ) GROUP BY currency ORDER BY currency
        """,
        [customer_id, start.date(), end.date()],
    ).fetchall()
    return {
        r[0]: {"calls": int(r[1]), "seconds": int(r[2]), "amount": str(r[3]), "cost": str(r[4])} for r in rows
    }


def close_period(app: App, customer: str, period: str, *, now: datetime | None = None) -> BillingPeriod:
    _start, end = period_bounds(period)
    if end > (now or datetime.now(UTC)):
        raise ConflictError(
            f"period {period} has not ended yet: it can be closed from {end.date().isoformat()}"
        )
    app.ledger.ensure()
    # Under the ledger's write lock: a correction or ingest running now either finishes before the
    # period's figures are taken, or starts after and sees the period closed.  Otherwise a job
    # that read the closed periods before the close would change the period without adjustments.
    with ledger_lock(app.home, f"period close by {app.actor}"):
        # A unit of work that crashed after committing files is cleaned up first: the versions
        # recorded below must hold only what readers count.
        recover_interrupted(app)
        return _close(app, customer, period)


def _close(app: App, customer: str, period: str) -> BillingPeriod:
    with app.catalog.transaction() as session:
        owner = customer_named(session, customer)
        clash = session.scalar(
            select(BillingPeriod).where(BillingPeriod.customer_id == owner.id, BillingPeriod.period == period)
        )
        if clash is not None:
            raise ConflictError(f"{customer} {period} was closed already, on {clash.closed_at:%Y-%m-%d}")
        visibility = current_visibility(session)
        con = open_views(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
        closed = BillingPeriod(
            customer_id=owner.id,
            period=period,
            closed_by=app.actor,
            xdr_version=app.ledger.version(XDRS),
            revision_version=app.ledger.version(REVISIONS),
            totals_version=app.ledger.version(TOTALS),
            sources=list(visibility.sources),
            summary=_summary(con, "daily_totals", owner.id, period),
        )
        session.add(closed)
        audit.record(
            session, app.actor, "period.close", f"{customer} {period}", after={"summary": closed.summary}
        )
        session.flush()
        return closed


def list_periods(app: App, customer: str | None = None) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        query = select(BillingPeriod, Customer.name).join(Customer, Customer.id == BillingPeriod.customer_id)
        if customer:
            query = query.where(BillingPeriod.customer_id == customer_named(session, customer).id)
        return [
            {
                "customer": name,
                "period": p.period,
                "state": p.state,
                "closed_at": p.closed_at,
                "closed_by": p.closed_by,
                "summary": p.summary,
            }
            for p, name in session.execute(query.order_by(BillingPeriod.period, Customer.name)).all()
        ]


def summary_as_closed(app: App, customer: str, period: str) -> dict[str, Any]:
    """The period's totals exactly as they were when it was closed (Delta time travel)."""
    with app.catalog.reading() as session:
        owner = customer_named(session, customer)
        closed = session.scalar(
            select(BillingPeriod).where(BillingPeriod.customer_id == owner.id, BillingPeriod.period == period)
        )
        if closed is None:
            raise NotFoundError(f"{customer} {period} is not closed")
    con = open_totals(
        app.ledger,
        Visibility(collections=(), sources=tuple(closed.sources)),
        memory_limit=app.settings.duckdb_memory_limit,
        version=closed.totals_version,
    )
    return _summary(con, "daily_totals", owner.id, period)


def summary_now(app: App, customer: str, period: str) -> dict[str, Any]:
    with app.catalog.reading() as session:
        owner = customer_named(session, customer)
        visibility = current_visibility(session)
    con = open_views(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
    return _summary(con, "daily_totals", owner.id, period)


def closed_periods(session: Session) -> dict[tuple[int, str], str]:
    """(customer id, YYYY-MM) -> customer name, for every closed period."""
    rows = session.execute(
        select(BillingPeriod.customer_id, BillingPeriod.period, Customer.name).join(
            Customer, Customer.id == BillingPeriod.customer_id
        )
    ).all()
    return {(r[0], r[1]): r[2] for r in rows}


def closed_period_names(lines: Sequence[dict[str, Any]]) -> list[str]:
    """The closed periods adjustment lines (from :func:`touched`) fall in: ``Acme 2026-10``."""
    return sorted({f"{line['customer']} {line['period']}" for line in lines})


def closed_conflict(subject: str, verb: str, lines: Sequence[dict[str, Any]]) -> ConflictError:
    """The refusal of a change to closed periods (lines from :func:`touched`), naming them."""
    return ConflictError(
        f"{subject} changes XDRs of closed billing period(s): {', '.join(closed_period_names(lines))}; "
        f"pass --allow-closed to {verb} it and record adjustment lines for the open period"
    )


def touched(breakdown: Sequence[dict[str, Any]], closed: dict[tuple[int, str], str]) -> list[dict[str, Any]]:
    """Adjustment lines: the changes a job makes inside closed periods."""
    lines = []
    for row in breakdown:
        key = (row["customer_id"], row["period"])
        if key in closed:
            lines.append(row | {"customer": closed[key]})
    return lines


#: The fields of a period line (:func:`touched`), in the order a job stores them.
LINE_FIELDS = ("customer_id", "period", "destination", "currency", "xdrs", "amount_delta", "cost_delta")


def stored_lines(lines: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Period lines as compact JSON rows (exact decimals as text)."""
    return [
        [
            *(line[name] for name in LINE_FIELDS[:5]),
            money_text(line["amount_delta"]),
            money_text(line["cost_delta"]),
        ]
        for line in lines
    ]


def negated_lines(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The period lines that undo stored ones: the same XDRs, the money taken back."""
    lines = []
    for row in rows:
        line = dict(zip(LINE_FIELDS, row, strict=True))
        line["amount_delta"] = -Decimal(line["amount_delta"])
        line["cost_delta"] = -Decimal(line["cost_delta"])
        lines.append(line)
    return lines
