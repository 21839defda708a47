"""The ledger's Delta tables on disk: files written by rerate, committed atomically.

Writers put Parquet files into the table directory first and then publish
them all in one Delta commit (``create_write_transaction``), so a reader sees
either all of a unit of work's files or none.  Every data file's name starts
with the unit that wrote it (``c00000042-`` for collection 42), which makes
cleaning up after a crash a matter of listing names, never of rewriting data.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field
from deltalake.transaction import AddAction, CommitProperties, RemoveAction

from rerate.ledger.schema import (
    PREFIX_TOTALS_SCHEMA,
    REVISION_TABLE_SCHEMA,
    TOTALS_SCHEMA,
    XDR_TABLE_SCHEMA,
)

XDRS = "xdrs"
TOTALS = "daily_totals"
PREFIX_TOTALS = "prefix_totals"
REVISIONS = "revisions"
#: Each table's schema and partition columns.
TABLES: dict[str, tuple[pa.Schema, list[str] | None]] = {
    XDRS: (XDR_TABLE_SCHEMA, ["call_date"]),
    TOTALS: (TOTALS_SCHEMA, None),
    PREFIX_TOTALS: (PREFIX_TOTALS_SCHEMA, None),
    REVISIONS: (REVISION_TABLE_SCHEMA, ["call_date"]),
}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: Threads that gather and encode a writer's files (Arrow releases the GIL in both).
_WRITER_THREADS = os.cpu_count() or 1


#: Columns worth dictionary-encoding (few distinct values per row group).  The party and tariff ids
#: and the usage seconds are included: dictionary pages of them encode faster than plain ones and
#: read faster (measured: 14 % less encoding time per XDR file, and smaller files).  Unique values
#: (xdr ids, numbers, source ids, money) are not.
XDR_DICTIONARY_COLUMNS = (
    "collection_id",
    "customer_id",
    "account_id",
    "vendor_id",
    "tariff_id",
    "vendor_tariff_id",
    "duration",
    "billed",
    "vendor_billed",
    "account",
    "vendor",
    "service",
    "country",
    "destination_group",
    "prefix",
    "currency",
    "status",
    "reason",
    "vendor_prefix",
    "vendor_currency",
    "vendor_status",
    "vendor_reason",
)
#: Integer columns of (nearly) unique values, stored as deltas (DELTA_BINARY_PACKED) rather than
#: plain: measured on a day of demo XDRs, their files are 6 % smaller, encode no slower, and
#: DuckDB reads these columns twice as fast (the whole file a seventh faster).
XDR_DELTA_COLUMNS = ("xdr_id", "line", "connect_time", "rate_id", "vendor_rate_id")
#: Columns whose min/max statistics let scope filters skip row groups.
XDR_STATISTICS_COLUMNS = (
    "xdr_id",
    "collection_id",
    "connect_time",
    "customer_id",
    "account_id",
    "vendor_id",
    "tariff_id",
    "vendor_tariff_id",
    "status",
)


def xdr_parquet_options(columns: Sequence[str], compression: str = "zstd") -> dict[str, Any]:
    """How XDR data files (ingest's, a correction's revisions, compaction's) are encoded:
    dictionaries and statistics only where they pay, for encoding is most of ingest's cost."""
    return {
        "compression": compression,
        "compression_level": 1 if compression == "zstd" else None,
        "use_dictionary": [c for c in XDR_DICTIONARY_COLUMNS if c in columns],
        "write_statistics": [c for c in XDR_STATISTICS_COLUMNS if c in columns],
        "column_encoding": {c: "DELTA_BINARY_PACKED" for c in XDR_DELTA_COLUMNS if c in columns} or None,
    }


def unit_prefix(kind: str, unit_id: int) -> str:
    """File-name prefix of every file a collection (``c``) or job (``j``) writes."""
    return f"{kind}{unit_id:08d}-"


@dataclass
class Ledger:
    """The Delta tables under one directory."""

    root: Path

    def path(self, table: str) -> Path:
        return self.root / table

    def ensure(self) -> None:
        """Create the tables if they do not exist yet (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name, (schema, partitions) in TABLES.items():
            if not DeltaTable.is_deltatable(str(self.path(name))):
                DeltaTable.create(str(self.path(name)), schema=schema, partition_by=partitions)
                continue
            # A table made by an earlier version gains the columns added since (empty in its old
            # files: readers see them as null).
            table = self.table(name)
            present = {field.name for field in table.schema().fields}
            missing = [f for f in schema if f.name not in present]
            if missing:
                table.alter.add_columns([Field.from_arrow(f) for f in missing])

    def table(self, name: str) -> DeltaTable:
        return DeltaTable(str(self.path(name)))

    def version(self, name: str) -> int:
        return int(self.table(name).version())

    def files(
        self, name: str, *, days: tuple[date, date] | None = None, version: int | None = None
    ) -> list[str]:
        """Absolute paths of the live data files, optionally only partitions in ``days``."""
        table = self.table(name)
        if version is not None:
            table.load_as_version(version)
        if days is None or TABLES[name][1] is None:
            return list(table.file_uris())
        first, last = (d.isoformat() for d in days)
        return [path for day, path in self._files_with_days(table, name) if first <= day <= last]

    def files_by_day(self, name: str) -> dict[str, list[str]]:
        """Live files of a partitioned table grouped by call date, from one read of its log."""
        grouped: dict[str, list[str]] = {}
        for day, path in self._files_with_days(self.table(name), name):
            grouped.setdefault(day, []).append(path)
        return grouped

    def _files_with_days(self, table: DeltaTable, name: str) -> list[tuple[str, str]]:
        """(call date, absolute path) of each live file of a partitioned table, from its log."""
        actions = pa.table(table.get_add_actions(flatten=True))
        root = self.path(name)
        return [
            (str(day), str(root / unquote(path)))
            for path, day in zip(
                actions.column("path").to_pylist(),
                actions.column("partition.call_date").to_pylist(),
                strict=True,
            )
        ]

    def commit(self, name: str, actions: Sequence[AddAction], metadata: dict[str, str]) -> int:
        """Publish written files in one Delta commit; returns the new table version."""
        table = self.table(name)
        schema, partitions = TABLES[name]
        table.create_write_transaction(
            list(actions),
            mode="append",
            schema=schema,
            partition_by=partitions,
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
        return self.version(name)

    def rearrange(
        self, name: str, replaced: Sequence[str], added: Sequence[AddAction], metadata: dict[str, str]
    ) -> int:
        """Swap live files (absolute paths) for ``added`` ones holding the same rows, in one commit.

        A rearrangement changes no data (``data_change`` false): Delta readers and time travel
        see the same rows before and after.  The replaced files stay on disk for older versions.
        """
        table = self.table(name)
        root = self.path(name)
        wanted = {str(Path(p).relative_to(root)) for p in replaced}
        removes = self._removals(table, name, lambda path: unquote(path) in wanted, data_change=False)
        if len(removes) != len(wanted):
            raise RuntimeError(f"{name}: {len(wanted) - len(removes)} file(s) to replace are no longer live")
        table.create_write_transaction(
            [*removes, *added],
            mode="append",
            schema=TABLES[name][0],
            partition_by=TABLES[name][1],
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
        return self.version(name)

    @staticmethod
    def _removals(
        table: DeltaTable, name: str, chosen: Callable[[str], bool], *, data_change: bool
    ) -> list[AddAction | RemoveAction]:
        """Remove actions for the live files whose (log) path ``chosen`` accepts."""
        now = int(time.time() * 1000)
        partitioned = TABLES[name][1] is not None
        return [
            RemoveAction(
                path=a["path"],
                data_change=data_change,
                deletion_timestamp=now,
                size=a["size_bytes"],
                partition_values={"call_date": str(a["partition.call_date"])} if partitioned else None,
            )
            for a in pa.table(table.get_add_actions(flatten=True)).to_pylist()
            if chosen(a["path"])
        ]

    def remove_unit(self, name: str, prefix: str) -> int:
        """Unpublish every committed file of one unit, and delete its never committed ones."""
        table = self.table(name)
        removes = self._removals(
            table, name, lambda path: os.path.basename(path).startswith(prefix), data_change=True
        )
        if removes:
            table.create_write_transaction(
                removes,
                mode="append",
                schema=TABLES[name][0],
                partition_by=TABLES[name][1],
                commit_properties=CommitProperties(custom_metadata={"cleanup": prefix}),
            )
        # Files that were committed stay on disk: an older version (a closed period's figures)
        # may still read them, and vacuum deletes them once no kept version does.  Only what was
        # never committed goes now.
        committed = {unquote(r.path) for r in removes}
        table_dir = self.path(name)
        for orphan in table_dir.rglob(f"{prefix}*.parquet"):
            if orphan.relative_to(table_dir).as_posix() not in committed:
                orphan.unlink()
        return len(removes)


@dataclass
class PartitionedWriter:
    """Writes sorted Parquet files into a Delta table directory, ready to commit.

    XDR batches are split by ``call_date`` and sorted by customer, then connect
    time, inside each file, so that a scope filter can skip row groups
    (ARCHITECTURE.md); a correction's revisions (one day per batch) keep the
    order they come in.
    Files are encoded on background threads (Arrow releases the GIL), so the
    caller prepares the next batch meanwhile; at most one batch is in flight,
    which bounds memory.  Call :meth:`flush` before using
    :attr:`actions`.
    """

    table_dir: Path
    prefix: str
    file_schema: pa.Schema
    partitioned: bool = True
    #: XDR files are sorted by customer, then connect time (scanned by scope).  A correction's
    #: revisions (one day per batch) are written as they come: they are found by id, and sorting
    #: and zstd cost a third of an apply's CPU (measured), so they are written with snappy.
    sort_rows: bool = True
    compression: str = "zstd"
    row_group_rows: int = 256_000
    #: Columns given min/max statistics; None: the XDR ones (partitioned) or every column.
    statistics: tuple[str, ...] | None = None
    actions: list[AddAction] = field(default_factory=list)
    rows_written: int = 0
    _pending: list[Future[AddAction]] = field(default_factory=list)
    _pool: ThreadPoolExecutor | None = None

    def write_xdrs(self, batch: pa.Table) -> None:
        """Write one batch of XDRs (``call_date`` column included) as one file per day."""
        if batch.num_rows == 0:
            return
        day = pc.cast(batch.column("call_date"), pa.int32()).to_numpy()
        if not self.sort_rows and (day == day[0]).all():  # a correction's batch: one day
            self.flush()
            value = date.fromordinal(_EPOCH_ORDINAL + int(day[0]))
            content = batch.drop_columns(["call_date"])
            self._submit(lambda: content, {"call_date": value.isoformat()})
            self.rows_written += batch.num_rows
            return
        customer = pc.fill_null(batch.column("customer_id"), -1).to_numpy()
        micros = pc.cast(batch.column("connect_time"), pa.int64()).to_numpy()
        # One integer sort key (day, customer, connect time): a single argsort.
        key = (
            (day.astype(np.int64) - int(day.min())) << 48
            | (customer.astype(np.int64) + 1) << 28
            | ((micros // 1_000_000) % 86_400)
        )
        order = np.argsort(key, kind="stable")
        sorted_days = day[order]
        cuts = np.flatnonzero(np.diff(sorted_days)) + 1
        starts = np.concatenate([[0], cuts]).tolist()
        ends = np.concatenate([cuts, [len(sorted_days)]]).tolist()
        self.flush()
        in_order = self._gathered(batch, order)
        for start, end in zip(starts, ends, strict=True):
            value = date.fromordinal(_EPOCH_ORDINAL + int(sorted_days[start]))
            self._submit(partial(_slice, in_order, start, end - start), {"call_date": value.isoformat()})
        self.rows_written += batch.num_rows

    def _gathered(self, batch: pa.Table, order: np.ndarray) -> Callable[[], pa.Table]:
        """``batch`` in ``order``, as the file schema, gathered once for all its days.

        One gather of each whole column, then a zero-copy slice per day: gathering each day's
        rows separately walks every column once per day, out of cache (measured: 0.9 µs per XDR
        against 0.35 µs for one gather, on a shuffled month).  The columns are split between the
        writer threads.
        """
        table = batch.select(self.file_schema.names)
        indices = pa.array(order)
        pool = self._threads()
        groups = np.array_split(np.arange(table.num_columns), _WRITER_THREADS)
        parts = [
            pool.submit(_take_as, table.select(group.tolist()), indices, _schema_of(self.file_schema, group))
            for group in groups
            if len(group)
        ]

        def assembled() -> pa.Table:
            columns = [column for part in parts for column in part.result().columns]
            return pa.Table.from_arrays(columns, schema=self.file_schema)

        return assembled

    def write_rows(self, table: pa.Table) -> None:
        """Write an unpartitioned table as one file."""
        if table.num_rows:
            self._submit(lambda: table, {})
            self.rows_written += table.num_rows

    def flush(self, keep: int = 0) -> None:
        """Wait for the files in flight, oldest first, until at most ``keep`` are left; errors
        surface here."""
        done = max(len(self._pending) - keep, 0)
        finished, self._pending = self._pending[:done], self._pending[done:]
        self.actions.extend(f.result() for f in finished)

    def wait_for_room(self) -> None:
        """Wait until fewer files are in flight than the writer has threads: the caller may then
        hand it one more, and every thread has work while memory holds at most that many files."""
        self.flush(keep=_WRITER_THREADS - 1)

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def abandon(self) -> None:
        """Wait for the files in flight, ignoring their errors: the unit is given up, and its
        clean-up must not run while a file is still being written."""
        pending, self._pending = self._pending, []
        wait(pending)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=_WRITER_THREADS, thread_name_prefix="rerate-writer")
        return self._pool

    def _submit(self, rows: Callable[[], pa.Table], partition: dict[str, str]) -> None:
        # Submitted after the gathers it reads (FIFO): a file task waits only on running work.
        self._pending.append(self._threads().submit(self._write, rows, partition))

    def _write(self, rows: Callable[[], pa.Table], partition: dict[str, str]) -> AddAction:
        # Plain column types: the kernel hands out dictionary views of the whole
        # tariff book, which would otherwise be written into every file.
        table = rows().select(self.file_schema.names).cast(self.file_schema)
        subdir = "/".join(f"{k}={v}" for k, v in partition.items())
        name = f"{self.prefix}{uuid.uuid4().hex[:12]}.parquet"
        relative = f"{subdir}/{name}" if subdir else name
        target = self.table_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        options = (
            xdr_parquet_options(table.column_names, self.compression)
            if self.partitioned
            else {"compression": self.compression, "use_dictionary": True, "write_statistics": True}
        )
        if self.statistics is not None:
            options["write_statistics"] = list(self.statistics)
        pq.write_table(table, target, row_group_size=self.row_group_rows, **options)
        return AddAction(
            path=relative,
            size=target.stat().st_size,
            partition_values=partition,
            modification_time=int(time.time() * 1000),
            data_change=True,
            stats=json.dumps({"numRecords": table.num_rows}),
        )

    def replace(self, old_relative: Iterable[str], new_actions: Iterable[AddAction]) -> None:
        """Swap not-yet-committed files (after duplicates were filtered out of them)."""
        self.flush()
        dropped = set(old_relative)
        kept = [a for a in self.actions if a.path not in dropped]
        self.actions = kept + list(new_actions)


def _take_as(table: pa.Table, indices: pa.Array, schema: pa.Schema) -> pa.Table:
    # Plain column types: the kernel hands out dictionary views of the whole tariff book, which
    # would otherwise be written into every file.  Cast once per batch, not once per day.
    return table.take(indices).cast(schema)


def _schema_of(schema: pa.Schema, positions: np.ndarray) -> pa.Schema:
    return pa.schema([schema.field(int(i)) for i in positions])


def _slice(rows: Callable[[], pa.Table], start: int, length: int) -> pa.Table:
    return rows().slice(start, length)
