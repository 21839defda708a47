"""Daily totals (the billing cache): computed from XDR rows by one SQL shape.

Ingest writes the totals of what it loaded; corrections write the difference
they made; ``cache sync`` recomputes them from the ledger.  All use
:data:`TOTALS_SELECT` so the grouping is defined once.
"""

from __future__ import annotations

from rerate.ledger.schema import TOTALS_KEYS

KEY_NAMES = [f.name for f in TOTALS_KEYS]

#: Totals of the rows of ``{source}`` (a relation with the XDR columns and ``call_date``).
TOTALS_SELECT = """
SELECT call_date AS day, customer_id, account_id, vendor_id, country, destination_group, service,
       currency, vendor_currency, status, reason, vendor_status, vendor_reason,
       count(*)::BIGINT AS calls,
       coalesce(sum(duration), 0)::BIGINT AS seconds,
       coalesce(sum(billed), 0)::BIGINT AS billed,
       coalesce(sum(vendor_billed), 0)::BIGINT AS vendor_billed,
       coalesce(sum(amount), 0)::DECIMAL(38, 9) AS amount,
       coalesce(sum(cost), 0)::DECIMAL(38, 9) AS cost,
       {label}::VARCHAR AS source
FROM {source}
GROUP BY ALL
"""
