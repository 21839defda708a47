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

_DELTA_KEYS = ", ".join("call_date AS day" if k == "day" else k for k in KEY_NAMES)

#: Daily totals of ``{new}`` minus those of ``{old}`` (the rows they replace), in one pass.
#: Keys whose measures cancel out (only a price changed, say) net to one row, or none.
TOTALS_DELTA_SELECT = f"""
WITH signed AS (
    SELECT *, 1 AS weight FROM {{new}}
    UNION ALL BY NAME
    SELECT *, -1 AS weight FROM {{old}}
), netted AS (
SELECT {_DELTA_KEYS},
       sum(weight)::BIGINT AS calls,
       coalesce(sum(weight * duration), 0)::BIGINT AS seconds,
       coalesce(sum(weight * billed), 0)::BIGINT AS billed,
       coalesce(sum(weight * vendor_billed), 0)::BIGINT AS vendor_billed,
       coalesce(sum(weight * amount), 0)::DECIMAL(38, 9) AS amount,
       coalesce(sum(weight * cost), 0)::DECIMAL(38, 9) AS cost,
       {{label}}::VARCHAR AS source
FROM signed
GROUP BY ALL
)
SELECT * FROM netted
WHERE NOT (calls = 0 AND seconds = 0 AND billed = 0 AND vendor_billed = 0 AND amount = 0 AND cost = 0)
"""
