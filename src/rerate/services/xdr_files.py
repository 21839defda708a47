"""Reading XDR files (canonical CSV or Parquet) as string batches with line numbers.

Files are read in newline-aligned chunks of bytes.  A chunk whose records all
have the header's number of fields is parsed by Arrow's multi-threaded CSV
parser and its line numbers follow from its position.  A chunk with anything
odd (a short or long row, a blank line, a quoted line break) is parsed again
line by line, so every bad row is reported with its exact line and the rest
of the file still loads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from rerate.services.errors import InvalidInputError

REQUIRED_COLUMNS = ("source_id", "connect_time", "duration", "cli", "cld", "account", "vendor")
OPTIONAL_COLUMNS = ("service",)


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    raw: str


@dataclass
class RawBatch:
    """Rows as text: every column of the file plus ``line``; and the rows rejected while reading."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    bytes_read: int = 0


def _check_header(name: str, header: list[str]) -> list[str]:
    cleaned = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in cleaned]
    if missing:
        raise InvalidInputError(
            f"{name} is not a canonical XDR file: missing column(s) {', '.join(missing)}; "
            f"expected a header like {','.join(REQUIRED_COLUMNS)} "
            f"(found: {','.join(cleaned)[:200] or 'nothing'})"
        )
    duplicated = sorted({c for c in cleaned if cleaned.count(c) > 1})
    if duplicated:
        raise InvalidInputError(f"{name}: column(s) named twice in the header: {', '.join(duplicated)}")
    return cleaned


class XdrFile:
    """One XDR file to ingest; raises :class:`InvalidInputError` if it is not one."""

    def __init__(self, path: Path, *, chunk_bytes: int = 64 << 20) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        if not path.is_file():
            raise InvalidInputError(f"file not found: {path}")
        self.size = path.stat().st_size
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            self.kind = "parquet"
            try:
                schema = pq.read_schema(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInputError(f"{path.name} is not a readable Parquet file: {exc}") from exc
            self.columns = _check_header(path.name, list(schema.names))
        elif suffix in {".csv", ".txt", ".cdr"}:
            self.kind = "csv"
            self.columns = _check_header(path.name, self._csv_header())
        else:
            raise InvalidInputError(
                f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .parquet"
            )

    def _csv_header(self) -> list[str]:
        with self.path.open("rb") as handle:
            first = handle.readline()
        try:
            text = first.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{self.path.name} is not UTF-8 text") from exc
        if not text.strip():
            raise InvalidInputError(f"{self.path.name} is empty: expected a header row")
        return next(csv.reader([text]))

    def batches(self) -> Iterator[RawBatch]:
        if self.kind == "parquet":
            yield from self._parquet_batches()
        else:
            yield from self._csv_batches()

    def _parquet_batches(self, rows: int = 1_000_000) -> Iterator[RawBatch]:
        parquet = pq.ParquetFile(self.path)
        line = 1
        done = 0
        for batch in parquet.iter_batches(batch_size=rows):
            table = pa.Table.from_batches([batch])
            texts = [
                table.column(i).cast(pa.string())
                if table.schema.field(i).type != pa.string()
                else table.column(i)
                for i in range(table.num_columns)
            ]
            lines = pa.array(np.arange(line, line + table.num_rows, dtype=np.int64))
            line += table.num_rows
            done += table.nbytes
            yield RawBatch(
                pa.table([*texts, lines], names=[*self.columns, "line"]),
                bytes_read=min(self.size, int(self.size * line / max(parquet.metadata.num_rows, 1))),
            )

    def _csv_batches(self) -> Iterator[RawBatch]:
        with self.path.open("rb") as handle:
            header = handle.readline()
            position = len(header)
            next_line = 2
            while True:
                chunk = handle.read(self.chunk_bytes)
                if not chunk:
                    return
                if not chunk.endswith(b"\n"):
                    chunk += handle.readline()
                position += len(chunk)
                lines_here = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
                batch = self._parse_chunk(chunk, next_line, lines_here)
                batch.bytes_read = position
                next_line += lines_here
                yield batch

    def _parse_chunk(self, chunk: bytes, first_line: int, lines_here: int) -> RawBatch:
        odd = 0

        def count_odd(_row: object) -> str:
            nonlocal odd
            odd += 1
            return "skip"

        try:
            table = pcsv.read_csv(
                io.BytesIO(chunk),
                read_options=pcsv.ReadOptions(column_names=self.columns, block_size=8 << 20),
                parse_options=pcsv.ParseOptions(invalid_row_handler=count_odd, ignore_empty_lines=False),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(self.columns, pa.string()), strings_can_be_null=False
                ),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return self._parse_exactly(chunk, first_line)
        if odd or table.num_rows != lines_here or _has_blank_rows(table):
            return self._parse_exactly(chunk, first_line)
        lines = pa.array(np.arange(first_line, first_line + table.num_rows, dtype=np.int64))
        return RawBatch(table.append_column("line", lines))

    def _parse_exactly(self, chunk: bytes, first_line: int) -> RawBatch:
        """Line-by-line parse of a chunk with odd rows: exact line numbers for every reject."""
        text = chunk.decode("utf-8", errors="replace")
        width = len(self.columns)
        values: list[list[str]] = [[] for _ in range(width)]
        lines: list[int] = []
        rejects: list[Reject] = []
        reader = csv.reader(io.StringIO(text))
        line = first_line
        for record in reader:
            start = line
            line = first_line + reader.line_num
            raw = ",".join(record)
            if not record or all(not v.strip() for v in record):
                rejects.append(Reject(start, "empty line", raw))
            elif len(record) != width:
                rejects.append(Reject(start, f"expected {width} fields, found {len(record)}", raw))
            else:
                for column, value in zip(values, record, strict=True):
                    column.append(value)
                lines.append(start)
        arrays = [pa.array(v, pa.string()) for v in values]
        table = pa.table([*arrays, pa.array(lines, pa.int64())], names=[*self.columns, "line"])
        return RawBatch(table, rejects)


def _has_blank_rows(table: pa.Table) -> bool:
    """A row whose every field is empty: a blank line Arrow parsed as a record."""
    if table.num_rows == 0:
        return False
    blank = None
    for column in table.columns:
        empty = pc.equal(pc.utf8_length(column), 0)
        blank = empty if blank is None else pc.and_(blank, empty)
    return bool(pc.any(blank).as_py())
