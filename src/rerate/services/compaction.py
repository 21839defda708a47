"""Compacting the XDR table: a collection's files of one call date become one customer-sorted file.

Ingest writes one file per call date for every batch it reads, so a
month-long file of 50 million XDRs leaves well over a hundred small files in
every day partition, each holding every customer.  A scope of a few
customers then decodes the whole day.  Compaction rewrites, per day and
collection, those files into one file sorted by customer, then connect time,
in row groups of :data:`ROW_GROUP_ROWS` whose statistics let a scope filter
skip the rest (ARCHITECTURE.md).

No XDR changes: the swap is a Delta rearrangement (``data_change`` false),
committed once per day, so a crash leaves every day either as it was or
compacted.  The replaced files stay on disk for time travel.  Files keep
their collection's name prefix, so rollback, recovery and collection scopes
work on compacted files unchanged.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from deltalake.transaction import AddAction
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Collection
from rerate.ledger.reader import connect_duckdb, in_parts, parquet_source
from rerate.ledger.schema import XDR_FILE_SCHEMA
from rerate.ledger.tables import XDRS, unit_prefix, xdr_parquet_options
from rerate.services import audit, faults
from rerate.services.locks import ledger_lock
from rerate.services.recovery import recover_interrupted

#: Rows per row group of a compacted file: the granularity at which a scope skips data.
ROW_GROUP_ROWS = 65_536
#: Columns of an XDR data file (the partition column lives in the path).
_FILE_COLUMNS = XDR_FILE_SCHEMA.names


@dataclass
class CompactionReport:
    days: int = 0
    #: (call date, collection) groups rewritten.
    groups: int = 0
    files_before: int = 0
    files_after: int = 0
    xdrs: int = 0
    seconds: float = 0.0


def compact(
    app: App,
    *,
    start: date | None = None,
    end: date | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> CompactionReport:
    """Compact the XDR files of every day in ``[start, end]`` (all days by default).

    Runs under the ledger lock: no job or ingest writes meanwhile.  Readers are
    not blocked; they see the old or the new files of a day, never both.
    """
    report = CompactionReport()
    started = time.perf_counter()
    app.ledger.ensure()
    with ledger_lock(app.home, f"compaction by {app.actor}"):
        recover_interrupted(app)
        with app.catalog.reading() as session:
            loaded = set(session.scalars(select(Collection.id).where(Collection.state == "loaded")))
        with connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp") as con:
            con.execute("SET preserve_insertion_order=true")  # the ORDER BY must reach the file
            for day, files in sorted(app.ledger.files_by_day(XDRS).items()):
                if (start and day < start.isoformat()) or (end and day > end.isoformat()):
                    continue
                groups = _groups(files, loaded)
                if not groups:
                    continue
                added = _compact_day(app, con, day, groups, report)
                report.days += 1
                report.groups += len(groups)
                report.files_after += len(added)
                if progress is not None:
                    progress(day, report.xdrs)
        report.seconds = round(time.perf_counter() - started, 3)
        with app.catalog.transaction() as session:
            audit.record(
                session,
                app.actor,
                "ledger.compact",
                "xdrs",
                after={k: v for k, v in vars(report).items() if k != "seconds"},
            )
    return report


def _compact_day(
    app: App,
    con: duckdb.DuckDBPyConnection,
    day: str,
    groups: dict[int, list[str]],
    report: CompactionReport,
) -> list[AddAction]:
    """Merge each group of the day, then swap them in one commit; a failure leaves no new file."""
    written: list[Path] = []
    added: list[AddAction] = []
    try:
        for collection_id, group in sorted(groups.items()):
            action, path, rows = _merge(con, app.ledger.path(XDRS), day, collection_id, group)
            written.append(path)
            added.append(action)
            report.xdrs += rows
            report.files_before += len(group)
            faults.checkpoint("compact.file_written")
        replaced = [f for group in groups.values() for f in group]
        app.ledger.rearrange(XDRS, replaced, added, {"compaction": day})
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return added


def _groups(files: list[str], loaded: set[int]) -> dict[int, list[str]]:
    """A day's files worth merging, by committed collection: those with two files or more."""
    by_collection: dict[int, list[str]] = {}
    for path in files:
        name = path.rsplit("/", 1)[-1]
        if name.startswith("c") and name[1:9].isdigit() and int(name[1:9]) in loaded:
            by_collection.setdefault(int(name[1:9]), []).append(path)
    return {c: group for c, group in by_collection.items() if len(group) > 1}


def _merge(
    con: duckdb.DuckDBPyConnection, table_dir: Path, day: str, collection_id: int, files: list[str]
) -> tuple[AddAction, Path, int]:
    """Write ``files`` as one sorted file of the day's partition; nothing is committed yet."""
    relative = f"call_date={day}/{unit_prefix('c', collection_id)}{uuid.uuid4().hex[:12]}.parquet"
    target = table_dir / relative
    columns = ", ".join(_FILE_COLUMNS)
    ordered = con.sql(
        f"""
        SELECT {columns} FROM ({parquet_source(con, "xdr_file", files, XDR_FILE_SCHEMA)})
        ORDER BY customer_id NULLS FIRST, connect_time, xdr_id
        """
    ).to_arrow_reader(ROW_GROUP_ROWS)
    # Written by Arrow as ingest writes XDR files (DuckDB's writer has no per-column delta
    # encoding): the same size and read speed before and after compaction.
    rows = 0
    try:
        with pq.ParquetWriter(target, XDR_FILE_SCHEMA, **xdr_parquet_options(_FILE_COLUMNS)) as out:
            for group in in_parts(ordered, ROW_GROUP_ROWS):
                out.write_table(group.cast(XDR_FILE_SCHEMA), row_group_size=ROW_GROUP_ROWS)
                rows += group.num_rows
    except BaseException:
        target.unlink(missing_ok=True)  # a half-written file is in no commit: leave none
        raise
    action = AddAction(
        path=relative,
        size=target.stat().st_size,
        partition_values={"call_date": day},
        modification_time=int(time.time() * 1000),
        data_change=False,
        stats=json.dumps({"numRecords": rows}),
    )
    return action, target, rows
