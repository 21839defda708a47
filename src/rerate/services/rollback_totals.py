"""A collection rollback's totals, money and breakdowns from the collection's own aggregate rows.

Ingest writes the aggregates of each collection it loads, named after it.
While no applied job has revised any of a collection's XDRs, those rows are
exactly the aggregate of the XDRs a rollback voids, so the rollback's delta
is derived from them: each row negated, plus the same keys voided and summed
again.  That is a few hundred thousand rows where re-aggregating the voided
XDRs hashed every one of them twice per aggregate (two thirds of a rollback's
time, docs/performance.md).  The per-XDR work that remains is the revisions
and the diff.  The result is the same rows the per-XDR path writes.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal

import duckdb
import pyarrow as pa
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.domain.statuses import Status
from rerate.ledger.reader import Visibility, connect_duckdb, files_of
from rerate.ledger.tables import REVISIONS, unit_prefix
from rerate.ledger.totals import AGGREGATES, DAILY, MEASURE_SOURCES, Aggregate
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


@dataclass(frozen=True)
class CollectionDelta:
    """What voiding a whole collection changes, from its aggregate rows."""

    xdrs: int
    #: Aggregate -> its delta rows (old rows negated, voided rows added).
    deltas: dict[Aggregate, pa.Table]
    #: Rows shaped like a correction's per-day breakdown.
    breakdown: pa.Table
    before: dict[str, dict[str, Decimal]]


def _quoted_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _repaired(app: App) -> bool:
    """Whether ``cache sync`` ever repaired the aggregates: a collection's rows may be short since."""
    with app.catalog.reading() as session:
        repair = select(Job.id).where(Job.kind == "cache_sync", Job.state == APPLIED).limit(1)
        return session.scalar(repair) is not None


def _revised(app: App, con: duckdb.DuckDBPyConnection, visibility: Visibility, collection_id: int) -> bool:
    """Whether any applied job revised an XDR of the collection (its ids are one range)."""
    revisions = files_of(app.ledger.files(REVISIONS), "j", visibility.jobs)
    if not revisions:
        return False
    low, high = collection_id << 32, ((collection_id + 1) << 32) - 1
    (found,) = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM read_parquet({_quoted_list(revisions)}) "
        f"WHERE xdr_id BETWEEN {low} AND {high} LIMIT 1)"
    ).fetchall()[0]
    return bool(found)


def _void_sql(aggregate: Aggregate, relation: str, label: str) -> str:
    """``relation``'s rows (of the aggregate) negated, and the same XDRs voided, summed by key."""
    keys = []
    for key in aggregate.keys:
        if key in VOIDED_VALUES:
            value = VOIDED_VALUES[key]
            keys.append(f"{'NULL' if value is None else repr(value)}::VARCHAR AS {key}")
        else:
            keys.append(key)
    measures = ["sum(calls)::BIGINT AS calls"] + [
        f"0::{'DECIMAL(38, 9)' if name in ('amount', 'cost') else 'BIGINT'} AS {name}"
        if column in VOIDED_VALUES
        else f"sum({name}) AS {name}"
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
SELECT customer_id, day AS call_date, coalesce(country, '') AS country, currency,
       status AS old_status, 'voided' AS new_status, NULL::VARCHAR AS new_reason,
       sum(calls)::BIGINT AS xdrs, -sum(amount) AS amount_delta, -sum(cost) AS cost_delta
FROM collection_daily GROUP BY ALL
"""

_MONEY = """
SELECT 'amount', currency, sum(amount) FILTER (WHERE status = 'rated')
FROM collection_daily WHERE currency IS NOT NULL GROUP BY ALL
UNION ALL
SELECT 'cost', vendor_currency, sum(cost) FILTER (WHERE vendor_status = 'rated')
FROM collection_daily WHERE vendor_currency IS NOT NULL GROUP BY ALL
"""


@dataclass(frozen=True)
class WholeCollection:
    """A correction of every XDR of one collection whose aggregates may come from the collection's."""

    collection_id: int

    def usable(self, app: App, con: duckdb.DuckDBPyConnection, visibility: Visibility) -> bool:
        """No when a job revised any of its XDRs, or a repair of the aggregates may have written
        some of its rows under another name: the delta is then computed per XDR."""
        return (
            self.collection_id in visibility.collections
            and not _repaired(app)
            and not _revised(app, con, visibility, self.collection_id)
        )

    def delta(self, app: App, label: str | None) -> CollectionDelta:
        """Voiding the collection; the aggregates' delta rows (named ``label``) only with a label."""
        with closing(connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp")) as con:
            return self._delta(app, con, label)

    def _delta(self, app: App, con: duckdb.DuckDBPyConnection, label: str | None) -> CollectionDelta:
        name = unit_prefix("c", self.collection_id)
        deltas: dict[Aggregate, pa.Table] = {}
        for aggregate in AGGREGATES:
            if label is None and aggregate is not DAILY:
                continue
            files = [p for p in app.ledger.files(aggregate.table) if p.rsplit("/", 1)[-1].startswith(name)]
            relation = "collection_daily" if aggregate is DAILY else "collection_by_prefix"
            # A DuckDB table, not Arrow: read by several queries, never converted.
            con.register("no_rows", aggregate.schema.empty_table())
            source = f"read_parquet({_quoted_list(files)})" if files else "no_rows"
            con.execute(f"CREATE TEMP TABLE {relation} AS SELECT * FROM {source}")
            if label is not None:
                deltas[aggregate] = con.sql(_void_sql(aggregate, relation, f"'{label}'")).to_arrow_table()
        (xdrs,) = con.execute("SELECT coalesce(sum(calls), 0)::BIGINT FROM collection_daily").fetchall()[0]
        before: dict[str, dict[str, Decimal]] = {}
        for measure, currency, total in con.execute(_MONEY).fetchall():
            slot = before.setdefault(currency, {"amount": Decimal(0), "cost": Decimal(0)})
            slot[measure] += Decimal(total or 0)
        breakdown = con.sql(_BREAKDOWN).to_arrow_table()
        return CollectionDelta(xdrs=int(xdrs), deltas=deltas, breakdown=breakdown, before=before)
