"""A collection rollback's totals, money and breakdowns from the collection's own aggregate rows.

Ingest writes the aggregates of each collection it loads, named after it:
the aggregate of its XDRs as loaded.  XDRs that applied jobs revised since
are taken out of those rows as loaded and put back as they are now: those
XDRs alone are read, one row each, and what they changed is summed by key
and appended to the rows as loaded.  That is the aggregate of the
collection's current state, with some keys in two rows, which every use sums
or negates row by row (summing all the rows by key first was the costliest
query of a rollback after corrections).  A rollback's delta is derived from
that: each row negated, plus the same keys voided and summed again.  The
per-XDR path instead hashes every voided XDR twice per aggregate (old and
new row), which was more than half of a rollback's time
(docs/performance.md).  The per-XDR work that remains is the revisions and
the diff.  Summed by key, the result equals the rows the per-XDR path writes
(tests/integration/test_rollback_totals.py).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal

import duckdb
import pyarrow as pa
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.domain.statuses import Status
from rerate.ledger.reader import (
    Visibility,
    connect_duckdb,
    files_of,
    latest_revisions,
    parquet_source,
    sql_text,
)
from rerate.ledger.schema import DERIVED_FIELDS, PREFIX_TOTALS_KEYS, TOTALS_KEYS, XDR_TABLE_SCHEMA
from rerate.ledger.scope_sql import collection_xdr_ids
from rerate.ledger.tables import REVISIONS, XDRS
from rerate.ledger.totals import (
    AGGREGATES,
    DAILY,
    MEASURE_SOURCES,
    MEASURES,
    NONZERO,
    Aggregate,
    measure_type,
)
from rerate.services.visibility import APPLIED

#: What voiding does to an XDR's columns: the statuses become ``voided``; reasons, billed
#: seconds and money become null (their sums zero).  Usage, keys and currencies stay.
VOIDED_VALUES: dict[str, str | None] = {
    "status": Status.VOIDED.value,
    "reason": None,
    "billed": None,
    "amount": None,
    "vendor_status": Status.VOIDED.value,
    "vendor_reason": None,
    "vendor_billed": None,
    "cost": None,
}


#: Receives one aggregate's delta rows (to encode them while the rest goes on).
DeltaSink = Callable[[Aggregate, pa.Table], None]


@dataclass(frozen=True)
class CollectionDelta:
    """What voiding a whole collection changes, from its aggregate rows."""

    xdrs: int
    #: Rows shaped like a correction's per-day breakdown.
    breakdown: pa.Table
    before: dict[str, dict[str, Decimal]]


def _repaired(app: App) -> bool:
    """Whether ``cache sync`` ever repaired the aggregates: a collection's rows may be short since."""
    with app.catalog.reading() as session:
        repair = select(Job.id).where(Job.kind == "cache_sync", Job.state == APPLIED).limit(1)
        return session.scalar(repair) is not None


def _void_sql(aggregate: Aggregate, relation: str, label: str) -> str:
    """``relation``'s rows (of the aggregate) negated, and the same XDRs voided, summed by key."""
    keys = []
    for key in aggregate.keys:
        if key in VOIDED_VALUES:
            value = VOIDED_VALUES[key]
            keys.append(f"{'NULL' if value is None else sql_text(value)}::VARCHAR AS {key}")
        else:
            keys.append(key)
    measures = ["sum(calls)::BIGINT AS calls"] + [
        f"{'0' if column in VOIDED_VALUES else f'sum({name})'}::{measure_type(name)} AS {name}"
        for name, column in MEASURE_SOURCES.items()
    ]
    negated = ", ".join([*aggregate.keys, "-calls AS calls", *(f"-{m} AS {m}" for m in MEASURE_SOURCES)])
    return f"""
        SELECT {negated}, {label}::VARCHAR AS source FROM {relation}
        UNION ALL BY NAME
        SELECT {", ".join(keys)}, {", ".join(measures)}, {label}::VARCHAR AS source
        FROM {relation} GROUP BY ALL
    """


_BREAKDOWN = """
SELECT customer_id, day AS call_date, coalesce(country, '') AS country,
       customer_id AS old_customer_id, coalesce(country, '') AS old_country, currency,
       currency AS old_currency, NULL::VARCHAR AS new_currency,
       vendor_currency AS old_vendor_currency, NULL::VARCHAR AS new_vendor_currency,
       status AS old_status, 'voided' AS new_status, NULL::VARCHAR AS new_reason,
       vendor_status AS old_vendor_status, 'voided' AS new_vendor_status, NULL::VARCHAR AS new_vendor_reason,
       sum(calls)::BIGINT AS xdrs, sum(amount) AS old_amount, NULL::DECIMAL(38, 9) AS new_amount,
       sum(cost) AS old_cost, NULL::DECIMAL(38, 9) AS new_cost
FROM collection_daily GROUP BY ALL
"""

_MONEY = """
SELECT 'amount', currency, sum(amount) FILTER (WHERE status = 'rated')
FROM collection_daily WHERE currency IS NOT NULL GROUP BY ALL
UNION ALL
SELECT 'cost', vendor_currency, sum(cost) FILTER (WHERE vendor_status = 'rated')
FROM collection_daily WHERE vendor_currency IS NOT NULL GROUP BY ALL
"""


#: The XDR columns the aggregates are computed from (their keys' and measures' sources).
_AGGREGATED_COLUMNS = sorted(
    {f.name for f in (*TOTALS_KEYS, *PREFIX_TOTALS_KEYS)} - {"day", "period"}
    | {"call_date", *MEASURE_SOURCES.values()}
)


_DERIVED = frozenset(f.name for f in DERIVED_FIELDS)


def _revised_sql(aggregate: Aggregate) -> str:
    """What the revised XDRs changed in the collection's rows: their rows now minus their rows as
    loaded (``revised_*`` tables), summed by key, keys that net to zero left out."""
    keys = ", ".join(aggregate.keys)
    measures = ", ".join(f"sum({m})::{measure_type(m)} AS {m}" for m in MEASURES)
    return f"""
        SELECT * FROM (
            SELECT {keys}, {measures} FROM (
                {aggregate.rows_select("revised_current")}
                UNION ALL BY NAME
                {aggregate.rows_select("revised_original", negated=True)}
            ) GROUP BY ALL
        ) WHERE {NONZERO}
    """


@dataclass(frozen=True)
class WholeCollection:
    """A correction of every XDR of one collection whose aggregates come from the collection's rows.

    The rows ingest wrote are the aggregate of the XDRs as loaded; XDRs that applied jobs
    revised since are taken out of them as loaded and put back as they are now, from those
    XDRs alone.  The result is the aggregate of the collection's current state, which voiding
    maps key by key.
    """

    collection_id: int

    def usable(self, app: App, visibility: Visibility) -> bool:
        """No when a repair of the aggregates may have written some of the collection's rows
        under another name: the delta is then computed per XDR."""
        return self.collection_id in visibility.collections and not _repaired(app)

    def delta(
        self, app: App, visibility: Visibility, label: str | None, write: DeltaSink | None = None
    ) -> CollectionDelta:
        """Voiding the collection.  With a label, each aggregate's delta rows (old rows negated,
        voided rows added, named ``label``) go to ``write`` as soon as they are known."""
        with closing(connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp")) as con:
            return self._delta(app, con, visibility, label, write)

    def _revised(self, app: App, con: duckdb.DuckDBPyConnection, visibility: Visibility) -> int:
        """How many of the collection's XDRs applied jobs revised; their states as tables.

        Their newest revisions hold the derived columns as they are now; the XDRs' own files
        hold them as loaded, and the raw columns the aggregates use (call date, service,
        duration), which revisions never change.
        """
        revisions = files_of(app.ledger.files(REVISIONS), "j", visibility.jobs)
        if not revisions:
            return 0
        ids = collection_xdr_ids(self.collection_id)
        derived = [c for c in _AGGREGATED_COLUMNS if c in _DERIVED]
        con.execute(
            f"CREATE TEMP TABLE revised_latest AS SELECT xdr_id, {', '.join(derived)} "
            f"FROM ({latest_revisions(con, revisions, ids)})"
        )
        (count,) = con.execute("SELECT count(*) FROM revised_latest").fetchall()[0]
        if count:
            xdr_files = files_of(app.ledger.files(XDRS), "c", [self.collection_id])
            xdr_sql = parquet_source(con, "xdr", xdr_files, XDR_TABLE_SCHEMA)
            con.execute(
                f"CREATE TEMP TABLE revised_original AS SELECT xdr_id, {', '.join(_AGGREGATED_COLUMNS)} "
                f"FROM ({xdr_sql}) WHERE {ids} AND xdr_id IN (SELECT xdr_id FROM revised_latest)"
            )
            raw = [f"o.{c}" for c in _AGGREGATED_COLUMNS if c not in _DERIVED]
            con.execute(
                f"CREATE TEMP TABLE revised_current AS SELECT {', '.join(raw + [f'r.{c}' for c in derived])} "
                "FROM revised_latest r JOIN revised_original o ON o.xdr_id = r.xdr_id"
            )
        return int(count)

    def _delta(
        self,
        app: App,
        con: duckdb.DuckDBPyConnection,
        visibility: Visibility,
        label: str | None,
        write: DeltaSink | None,
    ) -> CollectionDelta:
        revised = self._revised(app, con, visibility)
        written = label is not None and write is not None
        for aggregate in AGGREGATES:
            if not written and aggregate is not DAILY:
                continue
            files = files_of(app.ledger.files(aggregate.table), "c", [self.collection_id])
            relation = "collection_daily" if aggregate is DAILY else "collection_by_prefix"
            # DuckDB tables, not Arrow: read by several queries, never converted.
            loaded = f"{relation}_loaded"
            source = parquet_source(con, loaded, files, aggregate.schema)
            con.execute(f"CREATE TEMP TABLE {loaded} AS {source}")
            if revised:
                # The collection's rows now: as loaded plus what revisions changed, not summed
                # by key.  Every use sums them (or negates them row by row), and a GROUP BY over
                # all of them was the costliest query of a rollback after corrections (measured).
                con.execute(f"CREATE TEMP TABLE {relation}_revised AS {_revised_sql(aggregate)}")
                con.execute(
                    f"CREATE TEMP VIEW {relation} AS SELECT * EXCLUDE (source) FROM {loaded} "
                    f"UNION ALL BY NAME SELECT * FROM {relation}_revised"
                )
            else:
                con.execute(f"CREATE TEMP VIEW {relation} AS SELECT * FROM {loaded}")
            if written:
                assert write is not None
                write(aggregate, con.sql(_void_sql(aggregate, relation, f"'{label}'")).to_arrow_table())
        (xdrs,) = con.execute("SELECT coalesce(sum(calls), 0)::BIGINT FROM collection_daily").fetchall()[0]
        before: dict[str, dict[str, Decimal]] = {}
        for measure, currency, total in con.execute(_MONEY).fetchall():
            slot = before.setdefault(currency, {"amount": Decimal(0), "cost": Decimal(0)})
            slot[measure] += Decimal(total or 0)
        breakdown = con.sql(_BREAKDOWN).to_arrow_table()
        return CollectionDelta(xdrs=int(xdrs), breakdown=breakdown, before=before)
