"""Every XDR a correction changed, old and new values side by side.

A 10-million-XDR re-rating changes gigabytes' worth of values.  The job keeps
them as an LZ4-compressed Arrow file (``diff.arrow`` in the job's folder),
written on a background thread while the job goes on: one record batch per
call date, at most two batches waiting, which bounds memory.  The CSV is made
from it when someone asks for it (``rerate jobs diff``, the API, the web UI's
link) and then kept beside it.  Formatting 37 columns of exact decimals as
text costs more CPU than the rest of a dry run, and encoding Parquet twice
what Arrow's own format costs (docs/performance.md); most previews are read
from their totals and breakdowns alone.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

from rerate.ledger.reader import sql_text

#: Columns that identify the XDR in every diff row, before the old and new values.
KEY_COLUMNS = ("xdr_id", "source_id", "connect_time", "customer_id", "number")


def diff_columns(compared: tuple[str, ...]) -> list[str]:
    return [*KEY_COLUMNS, *(f"old_{c}" for c in compared), *(f"new_{c}" for c in compared)]


def diff_rows(old: pa.Table, new: pa.Table, compared: tuple[str, ...]) -> pa.Table:
    """Old and new values of the compared columns of every changed XDR (rows aligned)."""
    columns = {name: old.column(name) for name in KEY_COLUMNS}
    columns |= {f"old_{c}": old.column(c) for c in compared}
    columns |= {f"new_{c}": new.column(c) for c in compared}
    return pa.table(columns)


class DiffWriter:
    """Writes diff rows to ``path`` (an Arrow file) on a background thread."""

    def __init__(self, path: Path, compared: tuple[str, ...]) -> None:
        self.path = path
        self.columns = diff_columns(compared)
        self._partial = path.with_name(path.name + ".partial")
        self._sink: pa.OSFile | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._schema: pa.Schema | None = None
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="diff-writer", daemon=True)
        self._thread.start()

    def write(self, rows: pa.Table) -> None:
        self._raise_if_failed()
        if rows.num_rows:
            self._queue.put(rows)

    def close(self) -> None:
        """Wait for every batch, then publish the file (a diff with no rows has the columns only)."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()
        if self._writer is None:
            self._open(pa.schema([(name, pa.string()) for name in self.columns]))
        self._finish()
        os.replace(self._partial, self.path)

    def abandon(self) -> None:
        """Stop after a failure elsewhere; nothing is left behind."""
        self._queue.put(None)
        self._thread.join()
        self._finish()
        self._partial.unlink(missing_ok=True)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"writing the diff file {self.path} failed: {self._error}") from self._error

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._sink = pa.OSFile(str(self._partial), "wb")
        options = pa.ipc.IpcWriteOptions(compression="lz4")
        self._writer = pa.ipc.new_file(self._sink, schema, options=options)

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _work(self) -> None:
        while (rows := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain the queue so the producer never blocks
            try:
                if self._writer is None:
                    self._open(rows.schema)
                assert self._writer is not None
                self._writer.write_table(rows.cast(self._schema))
            except Exception as exc:  # surfaced to the job's thread by the next write or close
                self._error = exc


def diff_csv(diff_path: Path) -> Path:
    """The diff as CSV (header, ISO-8601 UTC times, exact decimals), made once and kept beside it."""
    if diff_path.suffix == ".csv":  # a job from before diffs were kept in Arrow's format
        return diff_path
    target = diff_path.with_suffix(".csv")
    with _making_lock(target):  # requests for the same diff wait for one build, not race it
        if target.is_file() and target.stat().st_mtime >= diff_path.stat().st_mtime:
            return target
        _write_csv(diff_path, target)
    return target


_making: dict[Path, threading.Lock] = {}
_making_guard = threading.Lock()


def _making_lock(target: Path) -> threading.Lock:
    with _making_guard:
        return _making.setdefault(target, threading.Lock())


def _write_csv(diff_path: Path, target: Path) -> None:
    # Named per process and thread: another process making the same CSV writes its own, and the
    # last atomic rename wins with the same content.
    partial = target.with_name(f"{target.name}.{os.getpid()}-{threading.get_ident()}.partial")
    con = duckdb.connect()
    try:
        with pa.memory_map(str(diff_path)) as source:
            stored = pa.ipc.open_file(source)
            batches = (stored.get_batch(i) for i in range(stored.num_record_batches))
            # Streamed batch by batch: a diff of millions of XDRs is never held in memory at once.
            con.register("diff_rows", pa.RecordBatchReader.from_batches(stored.schema, batches))
            con.execute("SET TimeZone='UTC'")
            select = ", ".join(
                f"strftime({f.name}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {f.name}"
                if pa.types.is_timestamp(f.type)
                else f.name
                for f in stored.schema
            )
            target_sql = sql_text(str(partial))
            con.execute(f"COPY (SELECT {select} FROM diff_rows) TO {target_sql} (FORMAT csv, HEADER true)")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(partial, target)
