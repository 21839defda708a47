"""Reading the values carriers put in rate decks: codes, prices, increments, dates, flags.

Every parser takes the cell's text and returns the value or raises
:class:`DeckValueError` with a message an operator understands; the caller adds
the line and the column.  Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from rerate.domain.prefix_index import KEY_DIGITS


class DeckValueError(ValueError):
    """A cell that cannot be read as the field it is mapped to."""


#: The widest range a single cell may expand to (``4400-4499`` is 100 prefixes).
MAX_RANGE = 10_000

_SPACES = re.compile(r"[\s\u00a0]+")
#: An apostrophe between digits groups thousands (Swiss style: 1'234.50).
_APOSTROPHE_GROUPS = re.compile(r"(?<=\d)['\u2019](?=\d{3})")


#: A whole part whose thousands are grouped by "." or ",": one to three digits, not starting with
#: 0 (``0.050`` groups nothing), then groups of three; or in lakhs (``1,23,456``).
_THOUSANDS = {
    g: re.compile(rf"[-+]?(?:[1-9]\d{{0,2}}(?:\{g}\d{{3}})+|[1-9]\d?(?:\{g}\d{{2}})+\{g}\d{{3}})")
    for g in ".,"
}


class NumberCell(str):
    """A workbook's numeric cell: the text it shows, and its exact value.

    Its value needs no separator guessing, so ``--decimal-comma`` (which
    refuses ``0.0123`` in a CSV deck) cannot misread it.
    """

    value: Decimal

    def __new__(cls, value: Decimal) -> NumberCell:
        cell = super().__new__(cls, format(value, "f"))
        cell.value = value
        return cell

    def __reduce__(self) -> tuple[type[NumberCell], tuple[Decimal]]:  # pickled, copied: rebuilt
        return (NumberCell, (self.value,))


_RANGE = re.compile(r"^(\d+)\s*(?:-|\.\.|–)\s*(\d+)$")


def split_codes(cell: str, delimiters: str = ",;|", *, strip_00: bool = True) -> list[str]:
    """The codes of one cell: ``"44, 447; 4420-4429"`` gives 44, 447 and 4420 to 4429."""
    if cell.isdigit() and 0 < len(cell) <= KEY_DIGITS and not (strip_00 and cell.startswith("00")):
        return [cell]  # the common case: one plain code
    parts = [cell]
    for delimiter in delimiters:
        parts = [piece for part in parts for piece in part.split(delimiter)]
    codes: list[str] = []
    for part in parts:
        text = part.strip()
        if not text:
            continue
        codes.extend(_expand(text, strip_00))
    return codes


def _expand(text: str, strip_00: bool) -> list[str]:
    compact = text.replace("+", "").strip()
    match = _RANGE.match(compact)
    if match and _is_range(match.group(1), match.group(2)):
        low, high = (
            clean_code(match.group(1), strip_00=strip_00),
            clean_code(match.group(2), strip_00=strip_00),
        )
        if len(low) != len(high):
            raise DeckValueError(f"range {text!r}: its ends differ in length once cleaned")
        count = int(high) - int(low) + 1
        if count > MAX_RANGE:
            raise DeckValueError(f"range {text!r} would make {count} prefixes (at most {MAX_RANGE})")
        return [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
    return [clean_code(text, strip_00=strip_00)]


def _is_range(low: str, high: str) -> bool:
    """``4420-4429`` is a range; ``93-76`` (country-area) and ``1-204`` are one code written in parts.

    A range's ends have the same length (three digits or more), ascend, and
    share their first two digits, which a country code followed by an area
    code practically never does.
    """
    return len(low) == len(high) >= 3 and int(high) > int(low) and low[:2] == high[:2]


@lru_cache(maxsize=1 << 16)  # decks repeat dates, increments and prices row after row
def clean_code(text: str, *, strip_00: bool = True) -> str:
    """A destination code from ``+44 20``, ``0044-20``, ``93-76`` or ``44.0`` (a spreadsheet number)."""
    value = _SPACES.sub("", text).replace("-", "").replace("–", "").replace("(", "").replace(")", "")
    if value.endswith(".0") and value[:-2].isdigit():
        value = value[:-2]
    if value.startswith("+"):
        value = value[1:]
    elif strip_00 and value.startswith("00"):
        value = value[2:]
    if not value.isdigit():
        raise DeckValueError(f"{text!r} is not a dialling code (digits only)")
    if not 1 <= len(value) <= KEY_DIGITS:
        raise DeckValueError(f"{text!r} has {len(value)} digits (1 to {KEY_DIGITS} allowed)")
    return value


def parse_number(text: str, *, decimal_comma: bool | None = None) -> Decimal:
    """An exact decimal from ``0.0123``, ``0,0123``, ``1.234,5``, ``€ 0.01``, ``1E-3`` or ``5%`` (0.05).

    ``decimal_comma=None`` decides from the text: a comma followed by one to
    eight digits at the end, with no dot after it, is a decimal comma.  A
    workbook's numeric cell (:class:`NumberCell`) is its value, whatever the setting.
    """
    if isinstance(text, NumberCell):  # before any cache: it equals the plain text it shows
        return text.value
    return _parse_number_text(str(text), decimal_comma)


@lru_cache(maxsize=1 << 16)  # decks repeat dates, increments and prices row after row
def _parse_number_text(text: str, decimal_comma: bool | None) -> Decimal:
    value = _APOSTROPHE_GROUPS.sub("", _SPACES.sub("", text).strip())
    percent = value.endswith("%")
    value = value.rstrip("%")
    value = re.sub(r"^[^\d\-+.,]+", "", value)  # currency signs before the number
    number_end = re.match(r"[-+]?[\d.,]*\d(?:[eE][-+]?\d+)?", value)
    if number_end:  # units after it ("0.01 EUR", "0.05/min")
        value = value[: number_end.end()]
    if not value:
        raise DeckValueError(f"{text!r} is not a number")
    comma = decimal_comma
    if comma is None:
        comma = "," in value and ("." not in value or value.rfind(",") > value.rfind("."))
    group, point = (".", ",") if comma else (",", ".")
    if decimal_comma is not None and group in value:
        # Forced, the other separator only ever groups thousands (1.234,5 or 1,234.5): read
        # otherwise, --decimal-comma would make 0.01 a price of 1 and 0.050 one of 50.
        whole, _, fraction = value.partition(point)
        if group in fraction or not _THOUSANDS[group].fullmatch(whole):
            reading = "a decimal comma" if comma else "a decimal point"
            raise DeckValueError(
                f"{text!r} is not a number with {reading}: {group!r} may only group thousands "
                f"(1{group}234{point}5)"
            )
    value = value.replace(group, "").replace(point, ".")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise DeckValueError(f"{text!r} is not a number") from exc
    if not number.is_finite():
        raise DeckValueError(f"{text!r} is not a number")
    return number / 100 if percent else number


def parse_whole(text: str) -> int:
    number = parse_number(text)
    if number != number.to_integral_value():
        raise DeckValueError(f"{text!r} is not a whole number")
    return int(number)


@dataclass(frozen=True)
class Increments:
    first: int
    next: int | None


@lru_cache(maxsize=1 << 16)  # decks repeat dates, increments and prices row after row
def parse_increments(text: str) -> Increments:
    """``60/60``, ``1/1``, ``60/1``, ``60+6`` or ``30-6`` (first and next interval), or one number."""
    parts = [p for p in re.split(r"[/+:x\-]", _SPACES.sub("", text)) if p]
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise DeckValueError(f"{text!r} is not an increment such as 60/60 or 1/1")
    first = int(parts[0])
    following = int(parts[1]) if len(parts) == 2 else None
    if first < 0 or following == 0:
        raise DeckValueError(f"{text!r}: the next interval must be at least 1 second")
    return Increments(first, following)


_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
_DATE_PATTERNS = (
    # (regex, (year, month, day) group order, month given by name)
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"), ("y", "m", "d")),
    (re.compile(r"^(\d{1,2})[-/. ]([A-Za-z]{3})[A-Za-z]*[-/. ,]*(\d{2,4})"), ("d", "b", "y")),
    (re.compile(r"^([A-Za-z]{3})[A-Za-z]*[-/. ](\d{1,2})[-/. ,]*(\d{4})"), ("b", "d", "y")),
    (re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2,4})"), ("d", "m", "y")),
)
_TIME = re.compile(r"[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?")


_NUMERIC_DATE = _DATE_PATTERNS[-1][0]


def column_date_order(texts: Iterable[str]) -> bool | None:
    """Whether a column's numeric dates are day first (True) or month first (False), when its
    cells say so one way only: one ``13/01/2026`` makes ``01/02/2026`` the 1st of February too.
    None when no cell decides, when cells contradict each other, or when they are written with
    different separators (each is then read alone)."""
    day_first = month_first = False
    separators = set()
    for text in texts:
        match = _NUMERIC_DATE.match(text.strip())
        if match:
            first, second = int(match.group(1)), int(match.group(2))
            separators.add(match.group(0)[len(match.group(1))])
            day_first |= first > 12 >= second
            month_first |= second > 12 >= first
    # Dates written two ways (01.12.2026 beside 12/13/2026) may follow two orders.
    if day_first == month_first or len(separators) > 1:
        return None
    return day_first


@lru_cache(maxsize=1 << 16)  # decks repeat dates, increments and prices row after row
def parse_date(text: str, *, day_first: bool = True) -> datetime:
    """A UTC time from the date formats rate decks use.

    ISO (``2026-12-01``, with a time or an offset), ``01/12/2026`` (day
    first unless ``day_first=False``; a first number above 12 settles it),
    ``01.12.2026``, ``1-Dec-26``, ``Dec 1, 2026``, and Excel serial days
    (``46357``).  A date without a time means midnight UTC.
    """
    value = text.strip()
    if not value:
        raise DeckValueError("no date given")
    if re.fullmatch(r"\d{5}(\.\d+)?", value):  # an Excel serial day number
        # To the nearest second: a serial is a binary fraction of a day (08:00 is 46357.33333).
        return _EXCEL_EPOCH + timedelta(seconds=round(float(value) * 86_400))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        pass
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(value)
        if not match:
            continue
        parts = dict(zip(order, match.groups(), strict=True))
        year = int(parts["y"])
        year = year + 2000 if len(parts["y"]) <= 2 else year  # 26 is 2026; 0000 stays invalid
        if "b" in parts:
            month = _MONTHS.get(parts["b"][:3].lower(), 0)
            day = int(parts["d"])
        elif order[0] == "y":  # year first (2026/12/01): always year, month, day
            month, day = int(parts["m"]), int(parts["d"])
        else:
            first, second = int(parts["d"]), int(parts["m"])
            day, month = (first, second) if day_first or first > 12 else (second, first)
            if second > 12 and first <= 12:
                day, month = second, first
        try:
            if year < 1900:  # no rate deck speaks of then: a typo
                raise ValueError("year before 1900")
            moment = datetime(year, month, day, tzinfo=UTC)
        except ValueError as exc:
            raise DeckValueError(f"{text!r} is not a valid date") from exc
        clock = _TIME.search(value[match.end() - 1 :])
        if clock:
            hour = int(clock.group(1))
            if clock.group(4):  # 12-hour clock
                if not 1 <= hour <= 12:
                    raise DeckValueError(f"{text!r} has an hour {hour} with {clock.group(4)}")
                hour = hour % 12 + (12 if clock.group(4).lower() == "pm" else 0)
            try:
                moment = moment.replace(
                    hour=hour, minute=int(clock.group(2)), second=int(clock.group(3) or 0)
                )
            except ValueError as exc:
                raise DeckValueError(f"{text!r} has no valid time of day") from exc
        return moment
    raise DeckValueError(f"{text!r} is not a date (use YYYY-MM-DD, DD/MM/YYYY, DD-Mon-YY or similar)")


_TRUE = {"1", "true", "yes", "y", "t", "x", "on"}
_FALSE = {"", "0", "false", "no", "n", "f", "off"}
#: Besides yes and no, the words of the "Status" or "Change" column many carriers send, per flag,
#: so that such a column can be mapped to ``discontinued`` (or ``forbidden``) as it is.  A word
#: of another flag ("Blocked" in a column mapped to ``discontinued``) is an error, not a guess.
_CHANGES = {"new", "increase", "decrease", "unchanged", "current", "active", "change", "changed", "same"}
_FLAG_WORDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "discontinued": (
        frozenset({"discontinued", "closed", "deleted", "removed"}),
        frozenset({*_CHANGES, "open"}),
    ),
    "forbidden": (frozenset({"forbidden", "blocked", "barred"}), frozenset({*_CHANGES, "allowed", "open"})),
    "hidden": (frozenset({"hidden"}), frozenset({*_CHANGES, "visible", "shown"})),
}
#: An effective date that says "from now on".
_IMMEDIATE = {"immediate", "immediately", "now", "asap", "effective immediately"}


def parse_effective(text: str, *, day_first: bool = True) -> datetime | None:
    """A rate's effective date (:func:`parse_date`), or None (now) for ``Immediate`` and its kin."""
    if text.strip().lower() in _IMMEDIATE:
        return None
    moment = parse_date(text, day_first=day_first)
    if moment.microsecond:
        raise DeckValueError(f"{text!r} has a fraction of a second: rates change on a whole second")
    return moment


def parse_flag(text: str, field: str = "") -> bool:
    """yes/no, 1/0, x...; for ``field``, also its status words (``Closed`` for discontinued)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    words, others = _FLAG_WORDS.get(field, (frozenset(), frozenset()))
    if value in words:
        return True
    if value in others:
        return False
    known = ", ".join(sorted(w.capitalize() for w in words))
    hint = f" (nor a {field} status: {known})" if known else ""
    raise DeckValueError(f"{text!r} is not yes or no{hint}")
