"""The aggregates (the billing cache): computed from XDR rows by one SQL shape each.

Two aggregates are kept: ``daily_totals`` (per day, customer, account,
vendor, destination, status and reason: what most reports read) and
``prefix_totals`` (per month, customer and matched prefix: the per-destination
lines of an invoice).  Ingest writes the aggregates of what it loaded;
corrections write the difference they made; ``cache sync`` recomputes them
from the ledger.  All use the SQL made here, so each grouping is defined once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from rerate.ledger.schema import PREFIX_TOTALS_KEYS, PREFIX_TOTALS_SCHEMA, TOTALS_KEYS, TOTALS_SCHEMA
from rerate.ledger.tables import PREFIX_TOTALS, TOTALS, PartitionedWriter

#: The measures every aggregate keeps, and how each is summed from XDR columns.
MEASURE_SOURCES = {
    "seconds": "duration",
    "billed": "billed",
    "vendor_billed": "vendor_billed",
    "amount": "amount",
    "cost": "cost",
}
MEASURES = ("calls", *MEASURE_SOURCES)
#: True for an aggregate row that counts something (rows whose measures all net to zero are dropped).
NONZERO = f"NOT ({' AND '.join(f'{m} = 0' for m in MEASURES)})"
_CASTS = {"amount": "DECIMAL(38, 9)", "cost": "DECIMAL(38, 9)"}


def measure_type(measure: str) -> str:
    """The SQL type of a measure in the aggregate tables (money exact, counts integer)."""
    return _CASTS.get(measure, "BIGINT")


@dataclass(frozen=True, eq=False)  # one instance per table: compared and hashed by identity
class Aggregate:
    """One aggregate table: its name, schema, and each key as an expression over XDR columns."""

    table: str
    schema: pa.Schema
    key_sources: dict[str, str]
    #: Its time key is a month (the first day), not a day: it is checked and repaired by whole months.
    monthly: bool = False

    @property
    def keys(self) -> list[str]:
        return list(self.key_sources)

    @property
    def time_key(self) -> str:
        """The key that holds the (day or month) date: the first one."""
        return self.keys[0]

    def _keys_sql(self) -> str:
        return ", ".join(
            name if source == name else f"{source} AS {name}" for name, source in self.key_sources.items()
        )

    def writer(self, table_dir: Path, prefix: str) -> PartitionedWriter:
        """A writer of this aggregate's rows for one unit of work (one file)."""
        # Statistics on the time key only: readers skip by period, and the other keys are in no
        # order a row group's min and max could use.  Computing them all was a fifth of the
        # encoding of a rollback's 4.5 M delta rows (measured).
        return PartitionedWriter(
            table_dir, prefix, self.schema, partitioned=False, statistics=(self.time_key,)
        )

    def select(self, source: str, label: str) -> str:
        """The aggregate of the rows of ``source`` (a relation with the XDR columns and ``call_date``)."""
        measures = ",\n".join(
            f"coalesce(sum({column}), 0)::{measure_type(name)} AS {name}"
            for name, column in MEASURE_SOURCES.items()
        )
        return f"""
SELECT {self._keys_sql()},
       count(*)::BIGINT AS calls,
       {measures},
       {label}::VARCHAR AS source
FROM {source}
GROUP BY ALL
"""

    def rows_select(self, source: str, negated: bool = False) -> str:
        """Each row of ``source`` as an aggregate row of its own (measures negated if asked),
        for a GROUP BY that nets them with other rows."""
        sign = "-" if negated else ""
        measures = ", ".join(
            f"{sign}(coalesce({column}, 0)::{measure_type(name)}) AS {name}"
            for name, column in MEASURE_SOURCES.items()
        )
        return f"SELECT {self._keys_sql()}, {sign}1::BIGINT AS calls, {measures} FROM {source}"

    def delta_select(self, new: str, old: str, label: str) -> str:
        """The aggregate of ``new`` minus that of ``old`` (the rows they replace), in one pass.

        Keys whose measures cancel out (only a price changed, say) net to one row, or none.
        """
        measures = ",\n".join(
            f"coalesce(sum(weight * {column}), 0)::{measure_type(name)} AS {name}"
            for name, column in MEASURE_SOURCES.items()
        )
        return f"""
WITH signed AS (
    SELECT *, 1 AS weight FROM {new}
    UNION ALL BY NAME
    SELECT *, -1 AS weight FROM {old}
), netted AS (
SELECT {self._keys_sql()},
       sum(weight)::BIGINT AS calls,
       {measures},
       {label}::VARCHAR AS source
FROM signed
GROUP BY ALL
)
SELECT * FROM netted WHERE {NONZERO}
"""

    def compact_select(self, relation: str) -> str:
        """``relation`` (rows of this aggregate, from one source) with equal keys summed, zeros dropped."""
        measures = ", ".join(f"sum({m})::{measure_type(m)} AS {m}" for m in MEASURES)
        return f"""
SELECT * FROM (
    SELECT {", ".join(self.keys)}, {measures}, any_value(source) AS source
    FROM {relation} GROUP BY ALL
) WHERE {NONZERO}
"""


DAILY = Aggregate(
    TOTALS, TOTALS_SCHEMA, {f.name: "call_date" if f.name == "day" else f.name for f in TOTALS_KEYS}
)
BY_PREFIX = Aggregate(
    PREFIX_TOTALS,
    PREFIX_TOTALS_SCHEMA,
    {
        f.name: "date_trunc('month', call_date)::DATE" if f.name == "period" else f.name
        for f in PREFIX_TOTALS_KEYS
    },
    monthly=True,
)
#: Every aggregate, in the order units of work publish them.
AGGREGATES = (DAILY, BY_PREFIX)
