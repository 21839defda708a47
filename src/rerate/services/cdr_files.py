"""CDR attachment files: CSV (plain, gzip or zip) or XLSX, split into parts that each fit a size limit.

Rows arrive as Arrow batches (already formatted by the delivery query) and
are written as they come, so a month of a large customer never sits in
memory.  A part is closed before the next rows would make it exceed the
limit: the size is exact for plain CSV, gzip and zip (the compressor is
flushed after every batch and its state copied before a batch is tried; zip
wraps the same deflate stream in its container) and checked after the fact
for XLSX (a part that comes out too large is written again as two halves).
Every part is a complete file with its header.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from rerate.domain.delivery import CdrColumn, CdrFormat, Compression

#: Column of each batch holding the row's 64-bit hash (for the delivery's fingerprint); never written.
HASH_COLUMN = "_row_hash"
#: Room for the zip container around the member, and for the gzip trailer.
_ZIP_OVERHEAD = 1024
_GZIP_TRAILER = 64
_ZIP_MAX_MEMBER = 0xFFFFFFFF - (1 << 20)
#: An XLSX sheet holds 1,048,576 rows, the header included.
_XLSX_MAX_ROWS = 1_048_575
#: An XLSX part is written once its rows' deflated CSV reaches this share of the limit
#: (the XML of a sheet compresses to more bytes than the CSV of the same rows).
_XLSX_SHARE = 0.5
_LEVEL = 6
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


@dataclass(frozen=True)
class CdrFileSpec:
    format: CdrFormat
    compress: Compression
    columns: tuple[CdrColumn, ...]
    max_bytes: int
    #: File name without extension, such as ``Acme_cdr_2026-11-21``.
    stem: str


@dataclass
class RenderedCdr:
    parts: list[Path] = field(default_factory=list)
    part_rows: list[int] = field(default_factory=list)
    rows: int = 0
    fingerprint: str = ""
    #: Parts above the limit because one row alone is larger (only with absurdly small limits).
    oversize: int = 0

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.parts)


def _header(columns: tuple[CdrColumn, ...]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([c.header for c in columns])
    return buffer.getvalue().encode()


def _csv(batch: pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(batch, sink, _CSV_OPTIONS)
    return sink.getvalue()


class _Part:
    """One part being written; ``offer`` takes rows only if the part stays within the limit."""

    def __init__(self, spec: CdrFileSpec, path: Path) -> None:
        self.spec = spec
        self.path = path
        self.rows = 0
        self.header = _header(spec.columns)

    def offer(self, batch: pa.RecordBatch, force: bool = False) -> bool:
        raise NotImplementedError

    def close(self, final: Path) -> list[tuple[Path, int]]:
        """Finish the part as ``final`` (its name is known only now: a lone part has no number)."""
        raise NotImplementedError


class _PlainCsvPart(_Part):
    def __init__(self, spec: CdrFileSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.handle = path.open("wb")
        self.handle.write(self.header)
        self.size = len(self.header)

    def offer(self, batch: pa.RecordBatch, force: bool = False) -> bool:
        chunk = _csv(batch)
        if not force and self.size + len(chunk) > self.spec.max_bytes:
            return False
        self.handle.write(chunk)
        self.size += len(chunk)
        self.rows += batch.num_rows
        return True

    def close(self, final: Path) -> list[tuple[Path, int]]:
        self.handle.close()
        self.path.rename(final)
        return [(final, self.rows)]


class _DeflatedCsvPart(_Part):
    """gzip or zip: one deflate stream, flushed after every batch so the part's size is known exactly.

    For zip the stream is wrapped in a one-member archive at the end (a local
    header, the stream, the central directory), so nothing is compressed twice.
    """

    def __init__(self, spec: CdrFileSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.gzip = spec.compress is Compression.gzip
        self.handle = path.open("wb")
        self.compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, 31 if self.gzip else -15)
        self.budget = spec.max_bytes - (_GZIP_TRAILER if self.gzip else _ZIP_OVERHEAD)
        self.size = 0
        self.crc = 0
        self.raw = 0
        self._take(self.header, self.compressor)

    def _take(self, data: bytes, compressor: zlib._Compress) -> None:
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        self.compressor = compressor
        self.size += len(out)
        self.crc = zlib.crc32(data, self.crc)
        self.raw += len(data)
        self.handle.write(out)

    def offer(self, batch: pa.RecordBatch, force: bool = False) -> bool:
        chunk = _csv(batch)
        if not force and self.raw + len(chunk) > _ZIP_MAX_MEMBER:
            return False  # a plain (not ZIP64) archive member holds under 4 GiB
        trial = self.compressor.copy()
        out = trial.compress(chunk) + trial.flush(zlib.Z_SYNC_FLUSH)
        if not force and self.size + len(out) > self.budget:
            return False
        self.compressor = trial
        self.size += len(out)
        self.crc = zlib.crc32(chunk, self.crc)
        self.raw += len(chunk)
        self.handle.write(out)
        self.rows += batch.num_rows
        return True

    def close(self, final: Path) -> list[tuple[Path, int]]:
        tail = self.compressor.flush(zlib.Z_FINISH)
        self.handle.write(tail)
        self.size += len(tail)
        self.handle.close()
        if self.gzip:
            self.path.rename(final)
        else:
            _wrap_in_zip(self.path, final, final.name.removesuffix(".zip"), self.crc, self.raw, self.size)
            self.path.unlink()
        return [(final, self.rows)]


def _wrap_in_zip(stream: Path, final: Path, member: str, crc: int, raw: int, packed: int) -> None:
    """A one-member zip archive (APPNOTE 4.3) around an already deflated ``stream``."""
    now = datetime.now()
    dos_time = now.hour << 11 | now.minute << 5 | now.second // 2
    dos_date = (now.year - 1980) << 9 | now.month << 5 | now.day
    name = member.encode()
    utf8, deflate, version = 0x0800, 8, 20
    local = struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", version, utf8, deflate, dos_time, dos_date, crc, packed, raw, len(name), 0
    )
    central = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        version,
        version,
        utf8,
        deflate,
        dos_time,
        dos_date,
        crc,
        packed,
        raw,
        len(name),
        0,
        0,
        0,
        0,
        0o100644 << 16,
        0,
    )
    directory_at = len(local) + len(name) + packed
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), directory_at, 0)
    with final.open("wb") as out, stream.open("rb") as deflated:
        out.write(local + name)
        shutil.copyfileobj(deflated, out, 1 << 20)
        out.write(central + name + end)


class _XlsxPart(_Part):
    def __init__(self, spec: CdrFileSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.batches: list[pa.RecordBatch] = []
        self.compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        self.size = 0

    def offer(self, batch: pa.RecordBatch, force: bool = False) -> bool:
        trial = self.compressor.copy()
        grown = len(trial.compress(_csv(batch)) + trial.flush(zlib.Z_SYNC_FLUSH))
        too_big = self.size + grown > self.spec.max_bytes * _XLSX_SHARE
        if not force and (too_big or self.rows + batch.num_rows > _XLSX_MAX_ROWS):
            return False
        self.compressor = trial
        self.size += grown
        self.batches.append(batch)
        self.rows += batch.num_rows
        return True

    def close(self, final: Path) -> list[tuple[Path, int]]:
        table = pa.Table.from_batches(self.batches) if self.batches else None
        return self._write(table, final)

    def _write(self, table: pa.Table | None, path: Path) -> list[tuple[Path, int]]:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("CDRs")
        sheet.append([c.header for c in self.spec.columns])
        rows = 0 if table is None else table.num_rows
        if table is not None:
            for batch in table.to_batches(max_chunksize=10_000):
                for values in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    row = tuple(_storable(v) for v in values)
                    sheet.append(as_text_cells(sheet, row) if any(map(_formula_like, row)) else row)
        book.save(path)
        if path.stat().st_size <= self.spec.max_bytes or rows <= 1 or table is None:
            return [(path, rows)]
        # Came out too large: the same rows as two smaller workbooks.
        half = rows // 2
        first = path.with_name(path.stem + "a.xlsx")
        second = path.with_name(path.stem + "b.xlsx")
        path.unlink()
        return self._write(table.slice(0, half), first) + self._write(table.slice(half), second)


#: What a worksheet cannot hold (the control characters openpyxl refuses).
ILLEGAL_CHARACTERS_RE = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def _storable(value: Any) -> Any:
    """A value a worksheet can hold: control characters (a switch's odd calling number) become
    U+FFFD, which shows that something was there, instead of failing the whole file."""
    if isinstance(value, str) and ILLEGAL_CHARACTERS_RE.search(value):
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    return value


def _formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("=")


def as_text_cells(sheet: Any, row: Sequence[Any]) -> list[Any]:
    """A field is data: text that starts with ``=`` is stored as text, never run as a formula."""
    from openpyxl.cell import WriteOnlyCell

    cells: list[Any] = []
    for value in row:
        if isinstance(value, str) and value.startswith("="):
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    return cells


_PARTS: dict[tuple[CdrFormat, Compression], type[_Part]] = {
    (CdrFormat.csv, Compression.none): _PlainCsvPart,
    (CdrFormat.csv, Compression.gzip): _DeflatedCsvPart,
    (CdrFormat.csv, Compression.zip): _DeflatedCsvPart,
    (CdrFormat.xlsx, Compression.none): _XlsxPart,
}


def extension(spec: CdrFileSpec) -> str:
    if spec.format is CdrFormat.xlsx:
        return ".xlsx"
    return {Compression.none: ".csv", Compression.gzip: ".csv.gz", Compression.zip: ".csv.zip"}[spec.compress]


class CdrWriter:
    """Writes batches into as many parts as the size limit needs."""

    def __init__(self, spec: CdrFileSpec, directory: Path) -> None:
        if (spec.format, spec.compress) not in _PARTS:
            raise ValueError(f"{spec.format} files are not compressed again (use compression none)")
        self.spec = spec
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.result = RenderedCdr()
        self._written: list[tuple[Path, int]] = []
        self._xor = 0
        self._part = self._open()

    def _open(self) -> _Part:
        work = self.directory / f".{self.spec.stem}.{len(self._written) + 1}.partial"
        return _PARTS[(self.spec.format, self.spec.compress)](self.spec, work)

    def _numbered(self) -> Path:
        return self.directory / f"{self.spec.stem}_part{len(self._written) + 1:03d}{extension(self.spec)}"

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        hashes = batch.column(HASH_COLUMN).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
        self._xor ^= int(np.bitwise_xor.reduce(hashes))
        self.result.rows += batch.num_rows
        self._add(batch.drop_columns([HASH_COLUMN]))

    def _add(self, batch: pa.RecordBatch) -> None:
        if self._part.offer(batch):
            return
        if self._part.rows > 0:
            self._written += self._part.close(self._numbered())
            self._part = self._open()
            self._add(batch)
        elif batch.num_rows > 1:
            half = batch.num_rows // 2
            self._add(batch.slice(0, half))
            self._add(batch.slice(half))
        else:
            self._part.offer(batch, force=True)  # one row larger than the limit: alone, never dropped
            self.result.oversize += 1

    def finish(self) -> RenderedCdr:
        alone = self.directory / f"{self.spec.stem}{extension(self.spec)}"
        self._written += self._part.close(alone if not self._written else self._numbered())
        produced = self._renumbered(self._written)
        self.result.parts = [p for p, _ in produced]
        self.result.part_rows = [r for _, r in produced]
        self.result.fingerprint = f"{self.result.rows}:{self._xor:016x}"
        return self.result

    def _renumbered(self, written: list[tuple[Path, int]]) -> list[tuple[Path, int]]:
        """Parts named 1 to N in order: a workbook that came out too large was written as two
        halves (``…_part001a``, ``…_part001b``), which would leave gaps and letters."""
        if len(written) < 2:
            return written
        staged = [
            (path.rename(path.with_name(f".renumber.{i}")), rows) for i, (path, rows) in enumerate(written)
        ]
        return [
            (path.rename(self.directory / f"{self.spec.stem}_part{number:03d}{extension(self.spec)}"), rows)
            for number, (path, rows) in enumerate(staged, start=1)
        ]


def write_cdr_file(spec: CdrFileSpec, directory: Path, batches: Iterable[pa.RecordBatch]) -> RenderedCdr:
    writer = CdrWriter(spec, directory)
    for batch in batches:
        writer.write(batch)
    return writer.finish()
