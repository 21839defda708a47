"""The CSV of every XDR a correction changed, old and new values side by side.

A 10-million-XDR re-rating makes a diff of gigabytes, so it is written while
the job goes on: each call date's changed rows are handed to a background
thread, which formats them with DuckDB (multi-threaded, exact decimals) into
a part file, and :meth:`DiffWriter.close` joins the parts behind one header.
At most two batches wait in the queue, which bounds memory.
"""

from __future__ import annotations

import queue
import shutil
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

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
    """Writes diff rows to ``path`` as CSV on a background thread."""

    def __init__(self, path: Path, compared: tuple[str, ...]) -> None:
        self.path = path
        self.columns = diff_columns(compared)
        self._parts: list[Path] = []
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="diff-writer", daemon=True)
        self._thread.start()

    def write(self, rows: pa.Table) -> None:
        self._raise_if_failed()
        if rows.num_rows:
            self._queue.put(rows)

    def close(self) -> None:
        """Wait for the parts and join them into the one CSV file."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()
        with self.path.open("wb") as out:
            out.write((",".join(self.columns) + "\n").encode())
            for part in self._parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
                part.unlink()

    def abandon(self) -> None:
        """Stop after a failure elsewhere; the parts are removed."""
        self._queue.put(None)
        self._thread.join()
        for part in self._parts:
            part.unlink(missing_ok=True)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"writing the diff file {self.path} failed: {self._error}") from self._error

    def _work(self) -> None:
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        select = ", ".join(
            "strftime(connect_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS connect_time" if c == "connect_time" else c
            for c in self.columns
        )
        while (rows := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain the queue so the producer never blocks
            try:
                part = self.path.with_name(f"{self.path.name}.part{len(self._parts):05d}")
                self._parts.append(part)
                con.register("diff_rows", rows)
                target = str(part).replace("'", "''")
                con.execute(f"COPY (SELECT {select} FROM diff_rows) TO '{target}' (FORMAT csv, HEADER false)")
                con.unregister("diff_rows")
            except Exception as exc:  # surfaced to the job's thread by the next write or close
                self._error = exc
        con.close()
