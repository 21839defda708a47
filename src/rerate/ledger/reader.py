"""Read side of the ledger: DuckDB views of the current state.

Every reader (exports, reports, the next correction) goes through the views
made here, so the rule of what is visible lives in one place:

* ``xdrs``: the current state of every XDR of a committed collection
  (revision 0 for now; corrections add revisions on top);
* ``daily_totals`` and ``prefix_totals``: the aggregate rows written by committed units of work.

A unit whose files were published to Delta but that never reached its catalog
commit (a crash between the two) is invisible here and cleaned up later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from rerate.ledger.schema import (
    DERIVED_FIELDS,
    PREFIX_TOTALS_SCHEMA,
    RAW_FIELDS,
    REVISION_TABLE_SCHEMA,
    TOTALS_SCHEMA,
    XDR_TABLE_SCHEMA,
)
from rerate.ledger.tables import PREFIX_TOTALS, REVISIONS, TOTALS, XDRS, Ledger, unit_prefix


def connect_duckdb(
    memory_limit: str = "1GB", threads: int | None = None, spill_to: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for the ledger: UTC, bounded memory, spilling to disk."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(f"SET memory_limit='{memory_limit}'")
    if spill_to is not None:
        spill_to.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory='{spill_to}'")
    con.execute("SET preserve_insertion_order=false")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    return con


def second_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to ``con``'s database, for a query on another thread, set up alike."""
    cursor = con.cursor()
    cursor.execute("SET TimeZone='UTC'")  # a session setting: not inherited
    return cursor


def in_parts(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """``batches`` (a DuckDB result, say) as tables of ``rows`` rows, the last one fewer.

    DuckDB hands out smaller batches than asked (one per thread); a writer given each as it came
    would write as many small row groups or files.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_paths(paths: Sequence[str]) -> str:
    """A DuckDB list literal of file paths, for ``read_parquet``."""
    return "[" + ", ".join(sql_text(p) for p in paths) + "]"


#: A read of at most this many files (a day's, a collection's) checks their footers for the fast path;
#: a read of the whole ledger keeps the union, which DuckDB resolves from the footers in parallel.
_FOOTERS_CHECKED = 64


@lru_cache(maxsize=65_536)
def _columns_of(path: str) -> frozenset[str]:
    """The columns a data file holds (read from its footer once: data files never change)."""
    names = set(pq.read_schema(path).names)
    # Hive partition values live in the path (``call_date=2026-10-01/``), not in the file.
    names.update(part.split("=", 1)[0] for part in path.split("/")[:-1] if "=" in part)
    return frozenset(names)


def parquet_source(con: duckdb.DuckDBPyConnection, name: str, files: Sequence[str], schema: pa.Schema) -> str:
    """SQL for a relation over ``files``, or over an empty table of ``schema``."""
    if 0 < len(files) <= _FOOTERS_CHECKED and all(_columns_of(f).issuperset(schema.names) for f in files):
        # Every column is there: no union, which costs a fifth of a small day's read (measured).
        return f"SELECT * FROM read_parquet({sql_paths(files)}, hive_partitioning=true)"
    con.register(f"{name}_empty", schema.empty_table())
    if not files:
        return f"SELECT * FROM {name}_empty"
    # United with the empty table by name: files written before a column was added still have it (null).
    return (
        f"SELECT * FROM read_parquet({sql_paths(files)}, hive_partitioning=true, union_by_name=true) "
        f"UNION ALL BY NAME SELECT * FROM {name}_empty"
    )


@dataclass(frozen=True)
class Visibility:
    """Which units of work are committed: the catalog decides, the ledger obeys."""

    collections: tuple[int, ...]
    sources: tuple[str, ...]
    #: Applied (and not reverted) jobs: their revisions make the current state.
    jobs: tuple[int, ...] = ()


def open_views(
    ledger: Ledger,
    visibility: Visibility,
    *,
    days: tuple[date, date] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str = "2GB",
    files: tuple[list[str], list[str]] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with the ``xdrs`` and ``daily_totals`` views; ``days`` prunes partitions.

    ``files`` gives the XDR and revision files directly (one day's, say) instead
    of reading the table logs; ``daily_totals`` is then left out.
    """
    con = con or connect_duckdb(memory_limit)
    con.register("visible_collections", pa.table({"id": pa.array(visibility.collections, pa.int64())}))
    con.register("visible_sources", pa.table({"source": pa.array(visibility.sources, pa.string())}))
    con.register("visible_jobs", pa.table({"id": pa.array(visibility.jobs, pa.int64())}))
    xdr_files, revision_files = files if files is not None else (ledger.files(XDRS, days=days), [])
    xdr_sql = parquet_source(con, "xdr", xdr_files, XDR_TABLE_SCHEMA)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW xdr_revision0 AS SELECT * FROM ({xdr_sql}) "
        "WHERE collection_id IN (SELECT id FROM visible_collections)"
    )
    if files is None:
        revision_files = ledger.files(REVISIONS, days=days) if visibility.jobs else []
    revision_files = revision_files if visibility.jobs else []
    if not revision_files:
        con.execute("CREATE OR REPLACE TEMP VIEW xdrs AS SELECT * FROM xdr_revision0")
    else:
        revision_sql = parquet_source(con, "revision", revision_files, REVISION_TABLE_SCHEMA)
        derived = _revised_or_loaded()
        raw = ", ".join(f"x.{f.name}" for f in RAW_FIELDS)
        # The current state: the newest revision of an applied job, else revision 0.
        con.execute(
            f"""
            CREATE OR REPLACE TEMP VIEW xdrs AS
            WITH latest AS (
                SELECT * FROM ({revision_sql})
                WHERE job_id IN (SELECT id FROM visible_jobs)
                QUALIFY row_number() OVER (PARTITION BY xdr_id ORDER BY job_id DESC) = 1
            )
            SELECT {raw}, {derived}, x.call_date
            FROM xdr_revision0 x LEFT JOIN latest r ON r.xdr_id = x.xdr_id
            """
        )
    if files is None:
        open_totals(ledger, visibility, con)
    return con


def _revised_or_loaded() -> str:
    """The derived columns of ``x`` (an XDR as loaded) LEFT JOINed to ``r`` (its newest revision)."""
    # A revision's null is a value (a voided XDR's amount): the match decides, not coalesce.
    return ",\n".join(
        f"CASE WHEN r.xdr_id IS NULL THEN x.{f.name} ELSE r.{f.name} END AS {f.name}" for f in DERIVED_FIELDS
    )


def scoped_select(
    con: duckdb.DuckDBPyConnection,
    visibility: Visibility,
    xdr_files: Sequence[str],
    revision_files: Sequence[str],
    columns: Iterable[str],
    predicate: str,
    revision_filter: str | None = None,
    *,
    whole_files: bool = False,
) -> str:
    """SQL for ``columns`` of the current state of the XDRs in these files that match ``predicate``.

    The same rows as ``SELECT columns FROM xdrs x WHERE predicate`` over :func:`open_views`,
    shaped so that the predicate reaches the files (a correction's per-day read):

    * visibility is decided per file, by the unit each file is named after, not per row;
    * XDRs without a revision are filtered on revision 0 inside the scan, so a scope of a few
      customers skips the other row groups, and only then checked against the revised ids;
    * XDRs with a revision are filtered on their newest revision (the predicate written over
      the revision's columns) before that is joined to their raw fields.

    ``revision_filter`` (SQL on ``xdr_id``) may leave out revisions of XDRs outside the files
    (a collection's id range), so their row groups are skipped.

    ``whole_files`` says every XDR of the files is in scope (a scope of whole collections):
    nothing is left to skip, so the files are read once, each XDR joined to its newest revision
    if it has one, instead of once for the XDRs without a revision and once more for the raw
    fields of those with one.  The more of them have revisions, the more that saves: a third of
    a rollback's read with 31 % of the collection revised, little with 21 % (measured).
    """
    xdr_sql = parquet_source(con, "xdr", files_of(xdr_files, "c", visibility.collections), XDR_TABLE_SCHEMA)
    revisions = files_of(revision_files, "j", visibility.jobs)
    selected = ", ".join(columns)
    if not revisions:
        return f"SELECT {selected} FROM ({xdr_sql}) x WHERE {predicate}"
    latest = latest_revisions(con, revisions, revision_filter)
    raw = ", ".join(f"x.{f.name}" for f in RAW_FIELDS)
    if whole_files:
        return f"""
            WITH latest AS MATERIALIZED ({latest})
            SELECT {selected} FROM (
                SELECT {raw}, {_revised_or_loaded()}, x.call_date
                FROM ({xdr_sql}) x LEFT JOIN latest r ON r.xdr_id = x.xdr_id
            ) x WHERE {predicate}
            """
    derived = ", ".join(f"r.{f.name}" for f in DERIVED_FIELDS)
    return f"""
        WITH latest AS MATERIALIZED ({latest}),
        revised AS (
            SELECT {raw}, {derived}, x.call_date FROM latest r JOIN ({xdr_sql}) x ON x.xdr_id = r.xdr_id
        ),
        unrevised AS (SELECT * FROM ({xdr_sql}) x WHERE {predicate})
        SELECT {selected} FROM unrevised x WHERE x.xdr_id NOT IN (SELECT xdr_id FROM latest)
        UNION ALL BY NAME
        SELECT {selected} FROM revised x WHERE {predicate}
        """


def latest_revisions(
    con: duckdb.DuckDBPyConnection, revisions: Sequence[str], revision_filter: str | None
) -> str:
    """SQL for the newest revision of each XDR in these (visible) revision files.

    ``revision_filter`` (SQL on ``xdr_id``) may leave out XDRs before the newest is chosen.
    """
    revision_sql = parquet_source(con, "revision", revisions, REVISION_TABLE_SCHEMA)
    kept = f"WHERE {revision_filter}" if revision_filter else ""
    if len({_unit_of(f) for f in revisions}) == 1:  # one job writes one revision per XDR
        return f"SELECT * FROM ({revision_sql}) {kept}"
    # The newest job's revision of each XDR; cheaper than a window over every column.
    return f"""
        WITH candidates AS MATERIALIZED (SELECT * FROM ({revision_sql}) {kept})
        SELECT * FROM candidates r WHERE NOT EXISTS (
            SELECT 1 FROM candidates n WHERE n.xdr_id = r.xdr_id AND n.job_id > r.job_id
        )"""


def _unit_of(path: str) -> str:
    """The unit (``c00000042-``, ``j00000007-``) that wrote a data file: the start of its name."""
    return path.rsplit("/", 1)[-1][:10]


def files_of(paths: Sequence[str], kind: str, units: Sequence[int]) -> list[str]:
    """The files among ``paths`` written by the given collections (``c``) or jobs (``j``)."""
    prefixes = tuple(unit_prefix(kind, unit) for unit in units)
    return [p for p in paths if p.rsplit("/", 1)[-1].startswith(prefixes)] if prefixes else []


def open_totals(
    ledger: Ledger,
    visibility: Visibility,
    con: duckdb.DuckDBPyConnection | None = None,
    memory_limit: str = "2GB",
    version: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with the aggregates' views (``daily_totals``, ``prefix_totals``): what reports need.

    With ``version``, the daily totals as they were at that Delta version (a closed period's); the
    per-prefix totals are then left out (a closed period records the daily totals' version only).
    """
    con = con or connect_duckdb(memory_limit)
    con.register("visible_sources", pa.table({"source": pa.array(visibility.sources, pa.string())}))
    tables = {TOTALS: (TOTALS_SCHEMA, version)}
    if version is None:
        tables[PREFIX_TOTALS] = (PREFIX_TOTALS_SCHEMA, None)
    for name, (schema, at) in tables.items():
        rows_sql = parquet_source(con, name, ledger.files(name, version=at), schema)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM ({rows_sql}) "
            "WHERE source IN (SELECT source FROM visible_sources)"
        )
    return con
