"""Reading rate-deck files into cells: CSV and TXT with sniffed dialect and encoding, and workbooks.

Every cell becomes text, so the wizard treats a spreadsheet and a CSV alike.
Spreadsheet numbers arrive as binary floats (the file format stores them so);
they are turned into the shortest decimal text that reads back as the same
float, which is what the spreadsheet itself displays (``0.0123``, not
``0.012299999999999999``), and whole numbers lose their ``.0`` (codes).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from rerate.domain.deck_values import NumberCell
from rerate.services.errors import InvalidInputError

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
_DELIMITERS = ",;\t|"


@dataclass(frozen=True)
class Sheet:
    """The cells of one sheet (a CSV is one sheet without a name), with each row's line number."""

    name: str | None
    rows: list[tuple[int, list[str]]]


@dataclass(frozen=True)
class DeckFile:
    path: Path
    sheets: list[Sheet]
    #: What was used to read a text file (detected or given).
    encoding: str | None = None
    delimiter: str | None = None


def read_deck(
    path: Path, *, delimiter: str | None = None, quotechar: str = '"', encoding: str | None = None
) -> DeckFile:
    """The file's sheets; a clear error for a missing, empty or unreadable file."""
    for option, given in (("--delimiter", delimiter), ("--quote", quotechar)):
        if given is not None and (len(given) != 1 or given in "\r\n"):
            raise InvalidInputError(f"{option} is one character (such as ';' or '\"'), not {given!r}")
    if delimiter is not None and delimiter == quotechar:
        raise InvalidInputError(f"--delimiter and --quote cannot both be {delimiter!r}")
    if not path.is_file():
        raise InvalidInputError(
            f"{path} is a folder, not a rate deck" if path.is_dir() else f"rate deck not found: {path}"
        )
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{path.name} is empty")
    if path.suffix.lower() in WORKBOOK_SUFFIXES:
        return DeckFile(path, _read_workbook(path))
    raw = path.read_bytes()
    encoding = encoding or detect_encoding(raw)
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise InvalidInputError(f"{path.name} cannot be read as {encoding}: {exc}") from exc
    text = text.lstrip("\ufeff")
    delimiter = delimiter or detect_delimiter(text)
    return DeckFile(path, [Sheet(None, list(_csv_rows(text, delimiter, quotechar)))], encoding, delimiter)


def detect_encoding(raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 by its BOM, else Windows-1252 (what Excel writes in the West)."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def detect_delimiter(text: str) -> str:
    """The separator that splits the most lines into the same, largest number of fields."""
    sample = [line for line in text.splitlines()[:200] if line.strip()]
    best, best_score = ",", -1
    for candidate in _DELIMITERS:
        counts = [len(next(csv.reader([line], delimiter=candidate))) for line in sample]
        wide = [c for c in counts if c > 1]
        if not wide:
            continue
        common = max(set(wide), key=wide.count)
        score = wide.count(common) * 100 + common
        if score > best_score:
            best, best_score = candidate, score
    return best


def _csv_rows(text: str, delimiter: str, quotechar: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    start = 1
    try:
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InvalidInputError(f"line {reader.line_num}: the file is not a readable CSV: {exc}") from exc


def _read_workbook(path: Path) -> list[Sheet]:
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for every broken file
        raise InvalidInputError(f"{path.name} is not a readable workbook: {exc}") from exc
    sheets = []
    for name in workbook.sheet_names:
        try:
            values = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except Exception as exc:
            raise InvalidInputError(f"{path.name}, sheet {name!r}: {exc}") from exc
        rows = [(index + 1, [cell_text(v) for v in row]) for index, row in enumerate(values)]
        sheets.append(Sheet(name, rows))
    return sheets


def cell_text(value: object) -> str:
    """A spreadsheet cell as the text it shows."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e18:
            return str(int(value))
        # What Excel shows: 15 significant digits.  A formula's 0.0123*1.1 is stored as
        # 0.013530000000000002 and shown, and meant, as 0.01353.
        return NumberCell(Decimal(format(value, ".15g")).normalize())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)
