"""Per-customer summary read from the daily totals (never from raw XDRs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pyarrow as pa
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Customer
from rerate.ledger.reader import open_views
from rerate.services.visibility import current_visibility


@dataclass
class CustomerSummary:
    customer: str
    currency: str
    calls: int
    minutes: Decimal
    revenue: Decimal
    cost: Decimal
    cost_currency: str
    failed: int
    failed_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def margin(self) -> Decimal | None:
        return self.revenue - self.cost if self.cost_currency in (self.currency, "") else None


def customer_summary(app: App) -> list[CustomerSummary]:
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
        customers = session.execute(select(Customer.id, Customer.name, Customer.currency)).all()
    con = open_views(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
    con.register(
        "customers",
        pa.table(
            {
                "id": pa.array([c[0] for c in customers], pa.int64()),
                "name": pa.array([c[1] for c in customers]),
                "currency": pa.array([c[2] for c in customers]),
            }
        ),
    )
    # One row per customer and currency: amounts in two currencies are never added up.  Costs
    # are in the vendors' currency ("mixed" when several: no margin then).  A call failed on
    # either side counts as failed.  A call the vendor rated costs what it costs, whatever the
    # customer side says (the summary report counts it alike).
    # The totals keep each unit of work's rows (a correction's delta beside what it corrected):
    # netted first, so that a currency a correction moved away from is gone.
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW net AS
        SELECT customer_id, currency, vendor_currency, status, vendor_status, sum(calls) AS calls,
               sum(seconds) AS seconds, sum(amount) AS amount, sum(cost) AS cost
        FROM daily_totals GROUP BY ALL HAVING sum(calls) <> 0
        """
    )
    rows = con.execute(
        """
        SELECT coalesce(c.name, '(unknown account)') AS customer,
               coalesce(t.currency, c.currency, '') AS currency,
               coalesce(sum(t.calls) FILTER (WHERE t.status = 'rated'), 0) AS calls,
               coalesce(sum(t.seconds) FILTER (WHERE t.status = 'rated'), 0) AS seconds,
               coalesce(sum(t.amount) FILTER (WHERE t.status = 'rated'), 0) AS revenue,
               coalesce(sum(t.cost) FILTER (WHERE t.vendor_status = 'rated'), 0) AS cost,
               CASE WHEN count(DISTINCT t.vendor_currency) FILTER (WHERE t.vendor_status = 'rated') > 1
                    THEN 'mixed'
                    ELSE coalesce(any_value(t.vendor_currency) FILTER (WHERE t.vendor_status = 'rated'), '')
               END AS cost_currency,
               coalesce(sum(t.calls) FILTER (WHERE t.status = 'failed' OR t.vendor_status = 'failed'), 0)
                   AS failed
        FROM net t LEFT JOIN customers c ON c.id = t.customer_id
        GROUP BY 1, 2 ORDER BY revenue DESC, customer, currency
        """
    ).fetchall()
    reasons = con.execute(
        """
        SELECT coalesce(c.name, '(unknown account)'), t.reason, sum(t.calls)
        FROM daily_totals t LEFT JOIN customers c ON c.id = t.customer_id
        WHERE t.status = 'failed' GROUP BY ALL HAVING sum(t.calls) <> 0
        UNION ALL
        SELECT coalesce(c.name, '(unknown account)'), 'vendor ' || t.vendor_reason, sum(t.calls)
        FROM daily_totals t LEFT JOIN customers c ON c.id = t.customer_id
        WHERE t.vendor_status = 'failed' GROUP BY ALL HAVING sum(t.calls) <> 0
        """
    ).fetchall()
    by_reason: dict[str, dict[str, int]] = {}
    for name, reason, calls in reasons:
        by_reason.setdefault(name, {})[reason] = int(calls)
    return [
        CustomerSummary(
            customer=r[0],
            currency=r[1],
            calls=int(r[2]),
            minutes=(Decimal(int(r[3])) / 60).quantize(Decimal("0.01")),
            revenue=Decimal(r[4]),
            cost=Decimal(r[5]),
            cost_currency=r[6],
            failed=int(r[7]),
            # A customer's reasons once, on its first row (a second currency's row has none).
            failed_by_reason=by_reason.pop(r[0], {}),
        )
        for r in rows
    ]
