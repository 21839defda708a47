"""CDR attachment files: whatever the rows and the limit, parts fit and together hold every row once."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from rerate.domain.delivery import CdrColumn, CdrFormat, Compression
from rerate.services.cdr_files import HASH_COLUMN, CdrFileSpec, write_cdr_file

COLUMNS = (CdrColumn("source_id", "Call ID"), CdrColumn("cld", "Number"), CdrColumn("amount", "Charge"))
TEXT = st.text(alphabet=st.sampled_from('ab,"\n =+0123456789é'), max_size=30)
ROWS = st.lists(st.tuples(TEXT, TEXT, st.one_of(st.none(), TEXT)), min_size=0, max_size=400)
KINDS = st.sampled_from(
    [
        (CdrFormat.csv, Compression.none),
        (CdrFormat.csv, Compression.gzip),
        (CdrFormat.csv, Compression.zip),
        (CdrFormat.xlsx, Compression.none),
    ]
)


def _batches(rows: list[tuple[str, str, str | None]], size: int) -> list[pa.RecordBatch]:
    batches = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        batches.append(
            pa.record_batch(
                {
                    "c0": pa.array([r[0] for r in chunk], pa.string()),
                    "c1": pa.array([r[1] for r in chunk], pa.string()),
                    "c2": pa.array([r[2] for r in chunk], pa.string()),
                    HASH_COLUMN: pa.array([hash(r) % (1 << 64) for r in chunk], pa.uint64()),
                }
            )
        )
    return batches


def _read(path: Path) -> list[list[str]]:
    if path.name.endswith(".xlsx"):
        book = load_workbook(path, read_only=True)
        try:  # a read-only workbook holds its file open until closed
            sheet = book.active
            assert sheet is not None
            cells = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
        return [row + [""] * (3 - len(row)) for row in cells]
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    elif path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None
            (member,) = archive.namelist()
            data = archive.read(member)
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


@settings(max_examples=40, deadline=None)
@given(ROWS, KINDS, st.integers(1, 97), st.integers(600, 20_000))
def test_parts_fit_the_limit_and_hold_every_row_once_in_order(
    rows: list[tuple[str, str, str | None]], kind: tuple[CdrFormat, Compression], batch: int, limit: int
) -> None:
    fmt, compress = kind
    if fmt is CdrFormat.xlsx:
        limit += 16_384  # an empty workbook alone is about 5 KB
    spec = CdrFileSpec(
        format=fmt, compress=compress, columns=COLUMNS, max_bytes=limit, stem="Acme_cdr_2026-11-21"
    )
    with tempfile.TemporaryDirectory() as work:
        rendered = write_cdr_file(spec, Path(work), _batches(rows, batch))
        assert rendered.rows == len(rows) and sum(rendered.part_rows) == len(rows)
        received: list[list[str]] = []
        for path, count in zip(rendered.parts, rendered.part_rows, strict=True):
            assert path.stat().st_size <= limit or rendered.oversize
            header, *lines = _read(path)
            assert header == ["Call ID", "Number", "Charge"] and len(lines) == count
            received += lines
        if len(rendered.parts) == 1:
            assert "_part" not in rendered.parts[0].name
        assert sorted(p.name for p in Path(work).iterdir()) == sorted(p.name for p in rendered.parts)
    expected = [[a, b, c or ""] for a, b, c in rows]
    if fmt is CdrFormat.xlsx:  # a spreadsheet stores line ends as typed; compare what it keeps
        expected = [[cell.replace("\r\n", "\n") for cell in row] for row in expected]
    assert received == expected
