"""Reading XDR files as string batches with line numbers, in any layout a template describes.

Files are read in newline-aligned chunks of bytes, straight from ``.gz``,
``.xz`` and ``.zip`` files too.  A chunk whose records all have the file's
number of fields is parsed by Arrow's multi-threaded CSV parser and its line
numbers follow from its position.  A chunk with anything odd (a short or long
row, a blank line, a quoted line break) is parsed again line by line, so
every bad row is reported with its exact line and the rest of the file still
loads.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import lzma
import os
import queue
import re
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from rerate.domain.xdr_templates import TemplateError, XdrTemplate
from rerate.services.errors import DamagedFileError, InvalidInputError
from rerate.services.xdr_projection import LINE, TemplateQuery

#: Blank lines at the top of a headerless file passed over to find its first row.
_BLANK_LINES_SKIPPED = 100
#: Bytes a chunk may grow by to finish a quoted field that crosses its end.
_MOST_CARRIED = 1 << 20
#: Why a row whose read fields are not UTF-8 text is rejected (CSV and Parquet alike).
_NOT_UTF8_REASON = "not UTF-8 text (re-save the file as UTF-8)"
#: What a byte that is not UTF-8 decodes to with ``surrogateescape``.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")

REQUIRED_COLUMNS = ("source_id", "connect_time", "duration", "cli", "cld", "account", "vendor")
OPTIONAL_COLUMNS = ("service",)


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    raw: str


@dataclass
class RawBatch:
    """Rows as text: every column of the file plus :data:`LINE`; and the rows rejected while reading."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    bytes_read: int = 0


def _check_header(name: str, header: list[str], canonical: bool) -> list[str]:
    # A blank name (a separator at the end of every line, as spreadsheets save it) gets its position.
    cleaned = [h.strip() or f"column_{i}" for i, h in enumerate(header, start=1)]
    missing = [c for c in REQUIRED_COLUMNS if c not in cleaned]
    if canonical and missing:
        raise InvalidInputError(
            f"{name} is not a canonical XDR file: missing column(s) {', '.join(missing)}; "
            f"expected a header like {','.join(REQUIRED_COLUMNS)} "
            f"(found: {','.join(cleaned)[:200] or 'nothing'}); a switch's own layout needs --template"
        )
    duplicated = sorted({c for c in cleaned if cleaned.count(c) > 1})
    if duplicated:
        raise InvalidInputError(f"{name}: column(s) named twice in the header: {', '.join(duplicated)}")
    return cleaned


def _only_member(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            # macOS Finder adds resource forks (__MACOSX/._name): they are no XDR file.
            members = [
                m.filename
                for m in archive.infolist()
                if not m.is_dir() and not m.filename.startswith("__MACOSX/")
            ]
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{path.name} is not a readable zip file: {exc}") from exc
    if len(members) != 1:
        raise InvalidInputError(
            f"{path.name} holds {len(members)} files ({', '.join(members[:5])}); "
            "a zip file is ingested when it holds exactly one XDR file"
        )
    return members[0]


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...


class _Decompressing:
    """A decompressing stream whose damage is reported as a bad file, not a traceback."""

    # RuntimeError: zipfile's "password required" for an encrypted member.
    _DAMAGE = (OSError, EOFError, RuntimeError, lzma.LZMAError, zipfile.BadZipFile, zlib.error)

    def __init__(self, stream: _Readable, name: str) -> None:
        self.stream = stream
        self.name = name

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self.stream.read(size)
        except self._DAMAGE as exc:
            raise DamagedFileError(f"{self.name}: cannot decompress ({exc})") from exc

    def readline(self, size: int = -1, /) -> bytes:
        try:
            return self.stream.readline(size)
        except self._DAMAGE as exc:
            raise DamagedFileError(f"{self.name}: cannot decompress ({exc})") from exc


COMPRESSED = {".gz": "gzip", ".xz": "xz", ".zip": "zip"}
#: What makes an ingest source a glob (expanded by rerate, not by the shell).
GLOB_CHARACTERS = frozenset("*?[")
_CANONICAL_SUFFIXES = {".csv", ".txt", ".cdr"}


class XdrFile:
    """One XDR file to ingest by ``template``; raises :class:`InvalidInputError` if it cannot be one."""

    def __init__(self, path: Path, template: XdrTemplate, *, chunk_bytes: int = 64 << 20) -> None:
        self.path = path
        self.template = template
        if not path.is_file():
            raise InvalidInputError(_not_a_file(path))
        self.size = path.stat().st_size
        self.compression = COMPRESSED.get(path.suffix.lower())
        #: Columns read only into a hashed id: bytes that are not UTF-8 there do not reject a call.
        self.hashed_only = template.hashed_only()
        #: Lines the reader passes over before the rows (a header, blank lines above a headerless
        #: file's row of types, that row), found when the file is opened.
        self.preamble_lines = 0
        inner = Path(path.stem) if self.compression else path
        if self.compression == "zip":
            self.member = _only_member(path)
            inner = Path(self.member)
        suffix = inner.suffix.lower()
        canonical = template.name == "canonical"
        if suffix == ".parquet":
            if self.compression or not template.header:
                raise InvalidInputError(
                    f"{path.name}: a Parquet file is read as it is, by a template with a header"
                )
            self.kind = "parquet"
            try:
                schema = pq.read_schema(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInputError(f"{path.name} is not a readable Parquet file: {exc}") from exc
            self.columns = _check_header(path.name, list(schema.names), canonical)
        elif canonical and suffix not in _CANONICAL_SUFFIXES:
            raise InvalidInputError(
                f"{path.name}: unsupported file type {suffix or '(none)'}; use .csv or .parquet "
                "(optionally .gz, .xz or .zip), or name the switch's layout with --template"
            )
        else:
            self.kind = "csv"
            self.columns = self._text_columns(canonical)
        try:
            self.query = TemplateQuery(template, self.columns, keep_other_columns=canonical)
        except TemplateError as exc:
            raise InvalidInputError(f"{path.name}: {exc}") from exc
        # Rows of a headerless layout with optional trailing columns may differ in width within one
        # file (a switch whose CDR settings changed): any width the template allows is read, short
        # rows padded with empty fields, long ones cut to the columns the file's first row has.
        self.widths = (
            (template.min_columns or len(template.columns), len(template.columns))
            if self.kind == "csv" and not template.header
            else (len(self.columns), len(self.columns))
        )
        # Chunks hold about as many rows as a canonical file's: a switch's wide rows, of which only
        # a few fields are converted, would otherwise make many small batches (and small files).
        self.chunk_bytes = int(chunk_bytes * max(1.0, len(self.columns) / max(len(self.query.needed), 1)))

    @contextmanager
    def _open(self) -> Iterator[tuple[_Readable, IO[bytes]]]:
        """(decompressed stream, the file on disk): the second tells how far reading has got."""
        with self.path.open("rb") as raw:
            if self.compression == "gzip":
                with gzip.GzipFile(fileobj=raw) as unzipped:
                    yield _Decompressing(unzipped, self.path.name), raw
            elif self.compression == "xz":
                with lzma.LZMAFile(raw) as unpacked:
                    yield _Decompressing(unpacked, self.path.name), raw
            elif self.compression == "zip":
                with zipfile.ZipFile(raw) as archive:
                    try:
                        opened = archive.open(self.member)
                    except RuntimeError as exc:  # an encrypted member: zipfile wants its password
                        raise InvalidInputError(
                            f"{self.path.name}: cannot read {self.member}: {exc}"
                        ) from exc
                    with opened as member:
                        yield _Decompressing(member, self.path.name), raw
            else:
                yield raw, raw

    def _first_row(self) -> list[str]:
        """The header's names, or for a file without one the fields of its first row that is not
        blank.

        A headerless file's first row only tells how many fields the rows have: a byte that is
        not UTF-8 in it (a caller name) is its row's problem, met again when the rows are read.
        Reading it also tells whether the template's row of column types is there, and how many
        lines come before the rows (:attr:`preamble_lines`).
        """
        with self._open() as (stream, _):
            first = stream.readline()
            blank = 0
            for _ in range(_BLANK_LINES_SKIPPED):
                if self.template.header or first.removeprefix(codecs.BOM_UTF8).strip():
                    break
                first = stream.readline()
                blank += 1
            if _is_utf16(first):
                raise InvalidInputError(
                    f'{self.path.name} is UTF-16 text (a spreadsheet\'s "Unicode text"), not UTF-8: '
                    "save it as CSV UTF-8"
                )
            text = self._decoded(first)
            if not text.strip():
                what = "a header row" if self.template.header else "XDR rows"
                raise InvalidInputError(f"{self.path.name} is empty: expected {what}")
            fields, carried = self._parsed_first(text, stream)
            if self.template.header:
                types = self.template.type_row and _is_type_row(
                    stream.readline(), self.template.delimiter, self.template.quote
                )
                self.preamble_lines = 1 + carried + (1 if types else 0)
            elif self.template.type_row and _is_type_fields(fields):  # the row of types is the first
                self.preamble_lines = blank + 1 + carried
        return fields

    def _parsed_first(self, text: str, stream: _Readable) -> tuple[list[str], int]:
        """The fields of the row that starts with ``text``, and how many more lines it took.

        The CSV reader decides where the row ends, as it does for the rows themselves: a quoted
        line break carries it over to the next line, a stray quote inside a field does not.  A
        quote never closed would run to the end: in a header that is an error; a headerless
        file's first line then stands alone (the row reader rejects that row).
        """
        carried = _Continuation(stream)
        reader = csv.reader(
            itertools.chain([text], carried),
            delimiter=self.template.delimiter,
            quotechar=self.template.quote,
        )
        try:
            fields = next(reader)
        except csv.Error as exc:  # most likely a file whose lines end with a carriage return alone
            raise InvalidInputError(
                f"{self.path.name}: its first line cannot be read as CSV ({exc}); a file whose lines "
                "end in a carriage return alone (old Mac format) must be re-saved with LF or CRLF "
                "line ends"
            ) from exc
        if not carried.ran_out:
            return fields, carried.lines
        if self.template.header:
            raise InvalidInputError(
                f"{self.path.name}: a quote in its header is never closed (the header would take in "
                f"the whole file); check the header row"
            )
        return next(csv.reader([text], delimiter=self.template.delimiter, quotechar=self.template.quote)), 0

    def _decoded(self, line: bytes) -> str:
        if not self.template.header:
            return line.decode("utf-8-sig", errors="replace")
        try:
            return line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{self.path.name} is not UTF-8 text") from exc

    def _text_columns(self, canonical: bool) -> list[str]:
        fields = self._first_row()
        if self.template.header:
            return _check_header(self.path.name, fields, canonical)
        layout = self.template.columns
        fewest = self.template.min_columns or len(layout)
        if not fewest <= len(fields) <= len(layout):
            expected = f"{fewest} to {len(layout)}" if fewest != len(layout) else str(len(layout))
            raise InvalidInputError(
                f"{self.path.name}: its first row has {len(fields)} fields; template {self.template.name} "
                f"expects {expected} (is it the right template?)"
            )
        return list(layout[: len(fields)])

    def batches(self) -> Iterator[RawBatch]:
        """The file's rows in batches (the columns the template reads, plus :data:`LINE`).

        The next batch is read, decompressed and parsed on a second thread while
        the caller works on this one: Arrow's parser and zlib/lzma leave the
        interpreter free, so reading overlaps mediation and rating.
        """
        return prefetched(self._parquet_batches() if self.kind == "parquet" else self._csv_batches())

    def _parquet_batches(self, rows: int = 1_000_000) -> Iterator[RawBatch]:
        parquet = pq.ParquetFile(self.path)
        line = 1
        done = 0
        for batch in parquet.iter_batches(batch_size=rows):
            table = pa.Table.from_batches([batch]).select(self.query.needed)
            texts = [_as_text(table.column(i)) for i in range(table.num_columns)]
            lines = pa.array(np.arange(line, line + table.num_rows, dtype=np.int64))
            line += table.num_rows
            done += table.nbytes
            rows = pa.table([*texts, lines], names=[*self.query.needed, LINE])
            rows, rejects = self._without_bad_text(rows)
            yield RawBatch(
                rows,
                rejects,
                bytes_read=min(self.size, int(self.size * line / max(parquet.metadata.num_rows, 1))),
            )

    def _without_bad_text(self, rows: pa.Table) -> tuple[pa.Table, list[Reject]]:
        """``rows`` less those with a read field that is not UTF-8, and those as rejects.

        Parquet writers may store any bytes as text; the CSV reader checks its rows itself.
        """
        bad: np.ndarray | None = None
        for name in self.query.needed:
            column = rows.column(name)
            try:
                column.validate(full=True)
                valid = True
            except pa.ArrowInvalid:
                valid = False
            if name in self.hashed_only:  # read only into a hashed id: bad bytes and NULs hashed as U+FFFD
                raw = column.cast(pa.binary())
                if not valid or pc.any(pc.match_substring(raw, b"\x00")).as_py():
                    rows = rows.set_column(rows.schema.get_field_index(name), name, _hashable_column(raw))
                continue
            if valid:
                continue
            values = column.cast(pa.binary()).to_pylist()
            found = np.array([v is not None and not _is_utf8(v) for v in values], dtype=bool)
            bad = found if bad is None else bad | found
        if bad is None or not bad.any():
            return rows, []
        shown = (
            rows.filter(pa.array(bad))
            .select(self.query.needed)
            .cast(pa.schema([(n, pa.binary()) for n in self.query.needed]))
        )
        lines = rows.column(LINE).filter(pa.array(bad)).to_pylist()
        rejects = [
            Reject(
                line,
                _NOT_UTF8_REASON,
                self.template.delimiter.join(
                    (v or b"").decode("utf-8", errors="replace") for v in record.values()
                ),
            )
            for line, record in zip(lines, shown.to_pylist(), strict=True)
        ]
        return rows.filter(pa.array(~bad)), rejects

    def _csv_batches(self) -> Iterator[RawBatch]:
        with self._open() as (handle, on_disk):
            skipped = self.preamble_lines
            for _ in range(skipped):
                handle.readline()
            next_line = skipped + 1
            while True:
                chunk = handle.read(self.chunk_bytes)
                if not chunk:
                    return
                if not chunk.endswith(b"\n"):
                    chunk += handle.readline()
                if next_line == 1 and chunk.startswith(codecs.BOM_UTF8):
                    chunk = chunk[len(codecs.BOM_UTF8) :]
                lines_here = _lines_in(chunk)
                batch = self._parse_fast(chunk, next_line, lines_here)
                if batch is None:  # odd rows; among them, maybe a quoted field the chunk ends inside
                    more = self._rest_of_quoted_field(chunk, handle)
                    if more:
                        chunk += more
                        lines_here = _lines_in(chunk)
                    batch = self._parse_exactly(chunk, next_line)
                batch.bytes_read = on_disk.tell()
                next_line += lines_here
                yield batch

    def _rest_of_quoted_field(self, chunk: bytes, handle: _Readable) -> bytes:
        """The lines that close a quoted field the chunk ends inside (an odd number of quotes).

        A chunk starts on a row; a quoted line break at its end would otherwise split one call
        into two rejected halves.  Bounded, so a stray quote never pulls the whole file in.
        """
        quote = self.template.quote.encode()
        if not quote or chunk.count(quote) % 2 == 0:
            return b""
        more = b""
        while len(more) < _MOST_CARRIED and (line := handle.readline()):
            more += line
            if line.count(quote) % 2:
                break
        return more

    def _parse_fast(self, chunk: bytes, first_line: int, lines_here: int) -> RawBatch | None:
        """The chunk by Arrow's parser, or None when a row needs the line-by-line parse."""
        odd = 0

        def count_odd(_row: object) -> str:
            nonlocal odd
            odd += 1
            return "skip"

        try:
            table = pcsv.read_csv(
                io.BytesIO(chunk),
                read_options=pcsv.ReadOptions(column_names=self.columns, block_size=8 << 20),
                parse_options=pcsv.ParseOptions(
                    delimiter=self.template.delimiter,
                    quote_char=self.template.quote,
                    invalid_row_handler=count_odd,
                    ignore_empty_lines=False,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(self.query.needed, pa.string()),
                    include_columns=self.query.needed,
                    strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
        if odd or table.num_rows != lines_here or _has_blank_rows(table) or b"\x00" in chunk:
            return None
        lines = pa.array(np.arange(first_line, first_line + table.num_rows, dtype=np.int64))
        return RawBatch(table.append_column(LINE, lines))

    def _parse_exactly(self, chunk: bytes, first_line: int) -> RawBatch:
        """Line-by-line parse of a chunk with odd rows: exact line numbers for every reject."""
        # Bytes that are not UTF-8 stay recognisable (as lone surrogates) so their row is rejected,
        # not loaded with a replacement character in an account or number.
        text = chunk.decode("utf-8", errors="surrogateescape")
        width = len(self.columns)
        fewest, most = self.widths
        wanted = set(self.query.needed)
        # Only the fields the template reads must be UTF-8 (as on the fast path, which converts
        # only those): a caller name in Latin-1 in an unread column does not reject the call, nor
        # does one read only into a hashed id, where its bytes are hashed as U+FFFD (the same
        # each time the file is read).  Most chunks hold none: then no row is searched.
        damaged = bool(_NOT_UTF8.search(text)) or "\x00" in text
        hashed = self.hashed_only
        read = [i for i, name in enumerate(self.columns) if name in wanted - hashed] if damaged else []
        lenient = [i for i, name in enumerate(self.columns) if name in wanted & hashed] if damaged else []
        values: list[list[str]] = [[] for _ in range(width)]
        lines: list[int] = []
        rejects: list[Reject] = []
        reader = csv.reader(
            io.StringIO(text), delimiter=self.template.delimiter, quotechar=self.template.quote
        )
        line = first_line
        physical: list[str] = []  # the chunk's lines, split only when a row cannot be parsed
        while True:
            start = line
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a carriage return alone inside an unquoted field, say
                line = first_line + reader.line_num
                physical = physical or text.split("\n")
                raw = "\\n".join(physical[start - first_line : line - first_line]).replace("\r", "\\r")
                rejects.append(Reject(start, f"not a CSV row ({exc})", raw))
                continue
            line = first_line + reader.line_num
            raw = self.template.delimiter.join(record)
            if read and _NOT_UTF8.search(raw):  # the rejects file shows such bytes as U+FFFD
                raw = raw.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            unreadable = _unreadable([record[i] for i in read if i < len(record)]) if read else None
            if unreadable:
                rejects.append(Reject(start, unreadable, raw.replace("\x00", "\\0")))
            elif not record or all(not v.strip() for v in record):
                rejects.append(Reject(start, "empty line", raw))
            elif len(record) != width and not fewest <= len(record) <= most:
                expected = f"{fewest} to {most}" if fewest != most else str(width)
                rejects.append(Reject(start, f"expected {expected} fields, found {len(record)}", raw))
            else:
                fields = record if len(record) == width else (record + [""] * width)[:width]
                for i in lenient:
                    fields[i] = _hashable(fields[i])
                for column, value in zip(values, fields, strict=True):
                    column.append(value)
                lines.append(start)
        arrays = [pa.array(v, pa.string()) for v, c in zip(values, self.columns, strict=True) if c in wanted]
        table = pa.table([*arrays, pa.array(lines, pa.int64())], names=[*self.query.needed, LINE])
        return RawBatch(table, rejects)


def _hashable(value: str) -> str:
    """A field read only into a hashed id, with each byte that is not UTF-8 (and each NUL) as
    U+FFFD: the same text each time the file is read."""
    if not _NOT_UTF8.search(value) and "\x00" not in value:
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "\ufffd")


def _hashable_column(raw: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A binary column read only into a hashed id, as text (:func:`_hashable`)."""
    texts = [v if v is None else _hashable(v.decode("utf-8", "surrogateescape")) for v in raw.to_pylist()]
    return pa.array(texts, pa.string())


class _Continuation:
    """The lines after a first row, for a quoted field that runs on: bounded, so that a stray
    quote never pulls the whole file in.  Counts the lines it gave, and whether it ran out (the
    end of the file, or the bound) while a field was still open."""

    def __init__(self, stream: _Readable) -> None:
        self.stream = stream
        self.lines = 0
        self.size = 0
        self.ran_out = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.stream.readline() if self.size < _MOST_CARRIED else b""
        if not line:
            self.ran_out = True
            raise StopIteration
        self.lines += 1
        self.size += len(line)
        return line.decode("utf-8", errors="replace")


def _is_utf16(line: bytes) -> bool:
    """A byte-order mark, or a NUL beside every ASCII character (one NUL is a damaged field, its
    row's problem)."""
    return line.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or 3 * line.count(b"\0") > len(line)


#: A column type as a CUCM file's second row names it: INTEGER, VARCHAR(50), UNIQUEIDENTIFIER.
_COLUMN_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\(\s*(\d+|MAX)(\s*,\s*\d+)?\s*\))?", re.IGNORECASE)


def _is_type_row(line: bytes, delimiter: str, quote: str) -> bool:
    """Whether ``line`` (the one after a header) names column types rather than holding a call.

    Exports without that row exist (a mediator's, or a file cut and re-saved); a call's row always
    holds numbers (its record type, its times), which no type name is.
    """
    text = line.decode("utf-8", errors="replace").strip()
    if not text:
        return False
    try:
        fields = next(csv.reader([text], delimiter=delimiter, quotechar=quote or None), [])
    except csv.Error:  # a carriage return alone, say: no row of types
        return False
    return _is_type_fields(fields)


def _is_type_fields(fields: list[str]) -> bool:
    """Whether a row's fields all name column types (:func:`_is_type_row`)."""
    named = [f.strip() for f in fields if f.strip()]
    return bool(named) and all(_COLUMN_TYPE.fullmatch(f) for f in named)


def _unreadable(fields: list[str]) -> str | None:
    """Why fields the template reads cannot be used as they are, if they cannot."""
    if any(_NOT_UTF8.search(f) for f in fields):
        return _NOT_UTF8_REASON
    if any("\x00" in f for f in fields):
        return "a NUL byte in a field (a damaged file?)"
    return None


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A Parquet column as text.  Bytes are only relabelled, not decoded: a cell that is not
    UTF-8 is then rejected with its row (a cast would fail the whole file)."""
    kind = column.type
    if kind == pa.string():
        return column
    if pa.types.is_binary(kind):
        return pa.chunked_array([chunk.view(pa.string()) for chunk in column.chunks], pa.string())
    if pa.types.is_large_binary(kind):
        large = pa.chunked_array(
            [chunk.view(pa.large_string()) for chunk in column.chunks], pa.large_string()
        )
        return large.cast(pa.string())
    return column.cast(pa.string())


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _lines_in(chunk: bytes) -> int:
    return chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)


def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as an XDR file."""
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if path.is_symlink() and not path.exists():
        return f"{path} is a link to {os.readlink(path)}, which does not exist"
    if path.exists():  # a device or a pipe: nothing that can be read twice, or checksummed
        return f"{path} is not a regular file"
    if GLOB_CHARACTERS & set(str(path)):  # a glob left as given: its folder is not there
        return f"no file matches {path}: its folder does not exist"
    return f"file not found: {path}"


def prefetched(batches: Iterator[RawBatch], depth: int = 1) -> Iterator[RawBatch]:
    """``batches``, produced ``depth`` ahead on a worker thread; its errors reach the caller in turn."""
    handoff: queue.Queue[tuple[RawBatch | None, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        handoff.put((batch, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put((None, None))
        except BaseException as exc:  # handed to the caller, which raises it where it reads
            handoff.put((None, exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # the file is closed by the thread that read it

    worker = threading.Thread(target=produce, name="xdr-reader", daemon=True)
    worker.start()
    try:
        while True:
            batch, failure = handoff.get()
            if failure is not None:
                raise failure
            if batch is None:
                return
            yield batch
    finally:
        stop.set()  # the caller stopped early (a trace's limit, an error): let the reader go
        while worker.is_alive():
            try:
                handoff.get_nowait()
            except queue.Empty:
                worker.join(0.1)


def _has_blank_rows(table: pa.Table) -> bool:
    """A row whose every field is empty: a blank line Arrow parsed as a record."""
    if table.num_rows == 0:
        return False
    blank = None
    for column in table.columns:
        empty = pc.equal(pc.utf8_length(column), 0)
        blank = empty if blank is None else pc.and_(blank, empty)
    return bool(pc.any(blank).as_py())
