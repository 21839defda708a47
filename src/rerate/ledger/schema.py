"""Arrow schemas of the ledger's Delta tables (ARCHITECTURE.md "The one idea")."""

from __future__ import annotations

import pyarrow as pa

from rerate.domain.arrow_money import TOTAL_MONEY, XDR_MONEY

TIMESTAMP = pa.timestamp("us", tz="UTC")

#: Raw fields exactly as received (plus where they came from).
RAW_FIELDS = [
    pa.field("xdr_id", pa.int64(), nullable=False),
    pa.field("collection_id", pa.int64(), nullable=False),
    pa.field("line", pa.int64()),
    pa.field("source_id", pa.string()),
    pa.field("connect_time", TIMESTAMP),
    pa.field("duration", pa.int64()),
    pa.field("cli", pa.string()),
    pa.field("cld", pa.string()),
    pa.field("account", pa.string()),
    pa.field("vendor", pa.string()),
    pa.field("service", pa.string()),
    pa.field("extra", pa.string()),  # JSON object of columns beyond the canonical ones
]

#: Mediation results (shared/RATING.md section 2).
MEDIATED_FIELDS = [
    pa.field("number", pa.string()),
    pa.field("account_id", pa.int64()),
    pa.field("customer_id", pa.int64()),
    pa.field("vendor_id", pa.int64()),
    pa.field("country", pa.string()),
    pa.field("destination_group", pa.string()),
    #: The service (as classified by the mediation rules) or the key a rule derived from it.
    pa.field("rating_key", pa.string()),
]

#: Rating results, customer side then vendor side (shared/RATING.md section 4).
RATED_FIELDS = [
    pa.field("tariff_id", pa.int64()),
    pa.field("rate_id", pa.int64()),
    pa.field("prefix", pa.string()),
    pa.field("billed", pa.int64()),
    pa.field("amount", XDR_MONEY),
    pa.field("currency", pa.string()),
    pa.field("status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("vendor_tariff_id", pa.int64()),
    pa.field("vendor_rate_id", pa.int64()),
    pa.field("vendor_prefix", pa.string()),
    pa.field("vendor_billed", pa.int64()),
    pa.field("cost", XDR_MONEY),
    pa.field("vendor_currency", pa.string()),
    pa.field("vendor_status", pa.string()),
    pa.field("vendor_reason", pa.string()),
]

PARTITION_FIELD = pa.field("call_date", pa.date32())

#: Columns stored in each XDR data file (the partition value lives in the path).
XDR_FILE_SCHEMA = pa.schema(RAW_FIELDS + MEDIATED_FIELDS + RATED_FIELDS)
#: The Delta table's schema, partition column included.
XDR_TABLE_SCHEMA = pa.schema([*RAW_FIELDS, *MEDIATED_FIELDS, *RATED_FIELDS, PARTITION_FIELD])

#: Columns a correction may change (everything derived from the raw fields).
DERIVED_FIELDS = MEDIATED_FIELDS + RATED_FIELDS
#: One row per XDR a job changed: its new derived fields (append-only).
REVISION_FILE_SCHEMA = pa.schema(
    [
        pa.field("xdr_id", pa.int64(), nullable=False),
        pa.field("job_id", pa.int64(), nullable=False),
        pa.field("connect_time", TIMESTAMP),
        *DERIVED_FIELDS,
    ]
)
REVISION_TABLE_SCHEMA = pa.schema([*REVISION_FILE_SCHEMA, PARTITION_FIELD])

#: Keys of the daily totals (the billing cache).
TOTALS_KEYS = [
    pa.field("day", pa.date32()),
    pa.field("customer_id", pa.int64()),
    pa.field("account_id", pa.int64()),
    pa.field("vendor_id", pa.int64()),
    pa.field("country", pa.string()),
    pa.field("destination_group", pa.string()),
    pa.field("service", pa.string()),
    pa.field("currency", pa.string()),
    pa.field("vendor_currency", pa.string()),
    pa.field("status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("vendor_status", pa.string()),
    pa.field("vendor_reason", pa.string()),
]
TOTALS_MEASURES = [
    pa.field("calls", pa.int64()),
    pa.field("seconds", pa.int64()),
    pa.field("billed", pa.int64()),
    pa.field("vendor_billed", pa.int64()),
    pa.field("amount", TOTAL_MONEY),
    pa.field("cost", TOTAL_MONEY),
]
#: Which committed unit of work wrote a totals row: ``collection:<id>`` or ``job:<id>``.
TOTALS_SOURCE = pa.field("source", pa.string(), nullable=False)
TOTALS_SCHEMA = pa.schema([*TOTALS_KEYS, *TOTALS_MEASURES, TOTALS_SOURCE])

#: Keys of the monthly totals per matched prefix (the invoicing tool's per-destination lines).  No
#: account, vendor or day: with them a prefix aggregate is nearly as large as the XDRs.
PREFIX_TOTALS_KEYS = [
    pa.field("period", pa.date32()),  # the first day of the call date's month (UTC)
    pa.field("customer_id", pa.int64()),
    pa.field("prefix", pa.string()),
    pa.field("country", pa.string()),
    pa.field("destination_group", pa.string()),
    pa.field("service", pa.string()),
    pa.field("currency", pa.string()),
    pa.field("vendor_currency", pa.string()),
    pa.field("status", pa.string()),
    pa.field("vendor_status", pa.string()),
]
PREFIX_TOTALS_SCHEMA = pa.schema([*PREFIX_TOTALS_KEYS, *TOTALS_MEASURES, TOTALS_SOURCE])
