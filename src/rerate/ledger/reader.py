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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

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


def _parquet_source(
    con: duckdb.DuckDBPyConnection, name: str, files: Sequence[str], schema: pa.Schema
) -> str:
    """SQL for a relation over ``files``, or over an empty table of ``schema``."""
    con.register(f"{name}_empty", schema.empty_table())
    if not files:
        return f"SELECT * FROM {name}_empty"
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    # United with the empty table by name: files written before a column was added still have it (null).
    return (
        f"SELECT * FROM read_parquet([{listed}], hive_partitioning=true, union_by_name=true) "
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
    revision_filter: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection with the ``xdrs`` and ``daily_totals`` views; ``days`` prunes partitions.

    ``files`` gives the XDR and revision files directly (one day's, say) instead
    of reading the table logs; ``daily_totals`` is then left out.
    ``revision_filter`` (SQL on ``xdr_id``) may leave out revisions of XDRs the
    caller will not read, so their files' row groups are skipped.
    """
    con = con or connect_duckdb(memory_limit)
    con.register("visible_collections", pa.table({"id": pa.array(visibility.collections, pa.int64())}))
    con.register("visible_sources", pa.table({"source": pa.array(visibility.sources, pa.string())}))
    con.register("visible_jobs", pa.table({"id": pa.array(visibility.jobs, pa.int64())}))
    xdr_files, revision_files = files if files is not None else (ledger.files(XDRS, days=days), [])
    if files is not None:
        # Every file is named after the unit that wrote it: visibility decided per file, not per row
        # (a quarter of a correction's read went to probing each row's collection).
        xdr_files = _files_of(xdr_files, "c", visibility.collections)
        revision_files = _files_of(revision_files, "j", visibility.jobs)
        visible_rows = ""
    else:
        visible_rows = "WHERE collection_id IN (SELECT id FROM visible_collections)"
    xdr_sql = _parquet_source(con, "xdr", xdr_files, XDR_TABLE_SCHEMA)
    con.execute(f"CREATE OR REPLACE TEMP VIEW xdr_revision0 AS SELECT * FROM ({xdr_sql}) {visible_rows}")
    if files is None:
        revision_files = ledger.files(REVISIONS, days=days) if visibility.jobs else []
    revision_files = revision_files if visibility.jobs else []
    if not revision_files:
        con.execute("CREATE OR REPLACE TEMP VIEW xdrs AS SELECT * FROM xdr_revision0")
    else:
        revision_sql = _parquet_source(con, "revision", revision_files, REVISION_TABLE_SCHEMA)
        derived = ",\n".join(
            f"CASE WHEN r.xdr_id IS NULL THEN x.{f.name} ELSE r.{f.name} END AS {f.name}"
            for f in DERIVED_FIELDS
        )
        raw = ", ".join(f"x.{f.name}" for f in RAW_FIELDS)
        extra = f"AND ({revision_filter})" if revision_filter else ""
        # The current state: the newest revision of an applied job, else revision 0.  Files from a
        # single job (the usual case) hold one revision per XDR: no newest to pick.
        newest = (
            ""
            if files is not None and len({_unit_of(f) for f in revision_files}) == 1
            else "QUALIFY row_number() OVER (PARTITION BY xdr_id ORDER BY job_id DESC) = 1"
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP VIEW xdrs AS
            WITH latest AS (
                SELECT * FROM ({revision_sql})
                WHERE job_id IN (SELECT id FROM visible_jobs) {extra}
                {newest}
            )
            SELECT {raw}, {derived}, x.call_date
            FROM xdr_revision0 x LEFT JOIN latest r ON r.xdr_id = x.xdr_id
            """
        )
    if files is None:
        open_totals(ledger, visibility, con)
    return con


def _unit_of(path: str) -> str:
    """The unit (``c00000042-``, ``j00000007-``) that wrote a data file: the start of its name."""
    return path.rsplit("/", 1)[-1][:10]


def _files_of(paths: Sequence[str], kind: str, units: Sequence[int]) -> list[str]:
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
        rows_sql = _parquet_source(con, name, ledger.files(name, version=at), schema)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM ({rows_sql}) "
            "WHERE source IN (SELECT source FROM visible_sources)"
        )
    return con
