"""From a rate deck's cells to rate rows: header detection, column guessing, mapping, rules.

The wizard's settings (:class:`DeckSettings`) are everything an operator can
adjust and what a template saves: how the file is split, where the header is,
which column feeds which field, formats, post-processing rules, links between
fields and default values.  :func:`guess_mapping` proposes the mapping from the
header and the contents; :func:`map_rows` turns the cells into candidate rates,
one per code (a cell with three codes gives three), or into errors that name
the line and the column.  Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from rerate.domain.deck_values import (
    DeckValueError,
    NumberCell,
    clean_code,
    column_date_order,
    parse_effective,
    parse_flag,
    parse_increments,
    parse_number,
    parse_whole,
    split_codes,
)
from rerate.domain.expressions import Expression, ExpressionError, Value, compile_expression
from rerate.domain.expressions import text_of as _text

#: Fields a deck column can feed.  ``price``, ``increments`` and ``off_peak_price`` are virtual:
#: they set two real fields each (first and next).
MONEY = ("first_price", "next_price", "connect_fee", "off_peak_first_price", "off_peak_next_price", "payback")
WHOLE = ("first_interval", "next_interval", "free_seconds", "grace_period", "preference")
FLAGS = ("forbidden", "discontinued", "hidden")
TEXT = ("description", "country", "route_category")
VIRTUAL = {
    "price": ("first_price", "next_price"),
    "off_peak_price": ("off_peak_first_price", "off_peak_next_price"),
    "increments": ("first_interval", "next_interval"),
}
FIELDS = (
    "prefix",
    "effective_from",
    *VIRTUAL,
    *MONEY,
    *WHOLE,
    "post_call_surcharge",
    *FLAGS,
    *TEXT,
)
REQUIRED_NOTE = "map at least the prefix and a price (price or first_price)"

#: Header words for each field, normalized (lower case, letters and digits only).  Exact
#: matches win; then a header containing one of the words.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "prefix": (
        "prefix",
        "prefixes",
        "code",
        "codes",
        "dialcode",
        "dialcodes",
        "dialingcode",
        "diallingcode",
        "destinationcode",
        "destinationprefix",
        "areacode",
        "areacodes",
        "numberplan",
        "breakoutcode",
        "dialedcode",
        "cli",
        "nationalcode",
        "dialprefix",
    ),
    "description": (
        "destination",
        "description",
        "destinationname",
        "name",
        "breakout",
        "zone",
        "region",
        "network",
        "country/description",
        "destinationdescription",
    ),
    # A bare "Country" column usually holds names (Afghanistan), not the ISO codes the field takes.
    "country": ("iso", "countryiso", "isocode", "iso2"),
    "price": (
        "price",
        "rate",
        "rates",
        "ratemin",
        "rateperminute",
        "priceperminute",
        "pricemin",
        "cost",
        "tariff",
        "newrate",
        "newprice",
        "rateusd",
        "rateeur",
        "usdmin",
        "eurmin",
        "ratepermin",
        "minuterate",
        "peak",
        "peakrate",
    ),
    "first_price": ("firstprice", "firstminuteprice", "initialprice", "initialrate", "firstrate"),
    "next_price": ("nextprice", "nextrate", "additionalprice", "additionalrate", "subsequentrate"),
    "off_peak_price": ("offpeak", "offpeakrate", "offpeakprice"),
    "off_peak_first_price": ("offpeakfirstprice",),
    "off_peak_next_price": ("offpeaknextprice",),
    "increments": (
        "increment",
        "increments",
        "billing",
        "billingincrement",
        "billingincrements",
        "interval",
        "intervals",
        "rounding",
        "billingunit",
        "chargingincrement",
        "billingcycle",
        "pulse",
    ),
    "first_interval": ("firstinterval", "initialincrement", "mininterval", "initialinterval", "minimum"),
    "next_interval": ("nextinterval", "additionalincrement", "subsequentincrement", "nextincrement"),
    "connect_fee": ("connectfee", "connectionfee", "connectioncharge", "setupfee", "connection", "setup"),
    "effective_from": (
        "effectivefrom",
        "effectivedate",
        "effective",
        "startdate",
        "validfrom",
        "date",
        "activedate",
        "effectivetime",
        "validitydate",
        "changedate",
    ),
    "free_seconds": ("freeseconds",),
    "grace_period": ("graceperiod",),
    "post_call_surcharge": ("postcallsurcharge", "surcharge"),
    "forbidden": ("forbidden", "blocked"),
    "discontinued": ("discontinued", "deleted", "closed"),
    "hidden": ("hidden",),
    "preference": ("preference", "priority"),
    "route_category": ("routecategory", "category", "quality"),
    "payback": ("payback",),
}


#: Headers never mapped by a guess: "Country Code" holds dialling codes or ISO codes, depending on the
#: carrier, and the prefix is in another column ("Dial Code", "Area Code") in such decks.
NEVER_GUESSED = frozenset({"countrycode", "cc", "country"})


def _normal(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


@dataclass
class DeckSettings:
    """Everything the wizard lets an operator set; a template is these settings under a name."""

    #: CSV: field separator, quote character and text encoding (``None``: detected).
    delimiter: str | None = None
    quotechar: str = '"'
    encoding: str | None = None
    #: Workbooks: the sheets to read (``[]``: every sheet that has a header with a prefix column).
    sheets: list[str] = field(default_factory=list)
    #: 1-based line of the header (``None``: detected; ``0``: the file has no header).
    header_row: int | None = None
    #: Lines to skip after the header (sub-headers, units).
    skip_rows: int = 0
    #: Characters that separate several codes in one cell.
    code_delimiters: str = ",;|"
    #: field -> column: a header text, or ``#3`` for the third column.
    mapping: dict[str, str] = field(default_factory=dict)
    #: field -> field it takes its value from (``next_interval`` -> ``first_interval``).
    links: dict[str, str] = field(default_factory=dict)
    #: Formats: strip a leading ``00`` from codes; decimal comma (``None``: per value); dates day first.
    strip_00: bool = True
    decimal_comma: bool | None = None
    day_first: bool = True
    #: Prices given as percentages are rare; surcharges usually are (``5`` means 5 %).
    #: field -> post-processing rule (a safe expression of ``value``).
    rules: dict[str, str] = field(default_factory=dict)
    #: field -> default for rows where it is empty or unmapped.
    defaults: dict[str, str] = field(default_factory=dict)
    #: Fields whose default applies only to prefixes without a rate in the tariff (others keep theirs).
    defaults_only_new: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeckSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown template setting(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def check(self) -> list[str]:
        """Problems with the settings themselves (unknown fields, bad rules), in plain words."""
        problems = []
        for name in (*self.mapping, *self.links, *self.rules, *self.defaults, *self.defaults_only_new):
            if name not in FIELDS:
                problems.append(f"unknown field {name!r}; fields: {', '.join(FIELDS)}")
        for name, target in self.links.items():
            if target not in FIELDS:
                problems.append(f"{name} is linked to unknown field {target!r}")
        for name, rule in self.rules.items():
            try:
                compile_expression(rule)
            except ExpressionError as exc:
                problems.append(f"{name}: {exc}")
        return problems


# --------------------------------------------------------------------------- header and mapping guesses


def header_score(cells: Sequence[str]) -> int:
    """How many distinct fields a row's cells name (a header names at least a prefix and a price)."""
    return len({f for c in cells if (f := _field_for_header(c)) is not None})


def _field_for_header(header: str, taken: Iterable[str] = ()) -> str | None:
    word = _normal(header)
    if not word or len(word) > 40:
        return None
    if word in NEVER_GUESSED:
        return None
    blocked = set(taken)
    for name, words in SYNONYMS.items():
        if name not in blocked and word in words:
            return name
    # "Rate (USD/min)" contains "rate"; "Rate Off-Peak" contains "rate" and, longer, "offpeak".
    contained = [(len(w), name) for name, words in SYNONYMS.items() if name not in blocked for w in words]
    found = [(length, name) for length, name in contained if length >= 4]
    best = max(
        (
            (length, name)
            for length, name in found
            if any(len(w) == length and w in word for w in SYNONYMS[name])
        ),
        default=None,
    )
    return best[1] if best else None


def find_header(rows: Sequence[Sequence[str]], limit: int = 40, named: Iterable[str] = ()) -> int | None:
    """0-based index of the header row among the first ``limit`` rows (notice blocks above it).

    With ``named`` columns (an operator's mapping), the header is the first row that has them all.
    """
    wanted = {n.strip().lower() for n in named if not re.fullmatch(r"#\d+", n.strip())}
    if wanted:
        for index, cells in enumerate(rows[:limit]):
            if wanted <= {c.strip().lower() for c in cells}:
                return index
    best, best_score = None, 1
    for index, cells in enumerate(rows[:limit]):
        score = header_score(cells)
        names = {_field_for_header(c) for c in cells}
        if score > best_score and "prefix" in names and ({"price", "first_price"} & names):
            best, best_score = index, score
    return best


def _content_kind(values: Sequence[str]) -> str | None:
    """What a column's sample values look like: codes, prices, increments, dates or text."""
    sample = [v.strip() for v in values if v.strip()][:200]
    if not sample:
        return None

    def share(test: Callable[[str], bool]) -> float:
        return sum(1 for v in sample if test(v)) / len(sample)

    def is_code(v: str) -> bool:
        compact = re.sub(r"[\s+\-]", "", v)
        return bool(re.fullmatch(r"\d{1,18}([,;|]\d{1,18})*", compact)) and not re.search(r"[.,]\d+$", v)

    def is_price(v: str) -> bool:
        return bool(re.fullmatch(r"[^\d\-]{0,3}\d*[.,]\d+\s*%?", v))

    def is_increment(v: str) -> bool:
        return bool(re.fullmatch(r"\d+\s*/\s*\d+", v))

    def is_date(v: str) -> bool:
        try:
            parse_effective(v)
        except DeckValueError:
            return False
        return not v.isdigit() or len(v) == 5

    if share(is_increment) > 0.9:
        return "increments"
    if share(is_date) > 0.9 and not share(is_code) > 0.9:
        return "effective_from"
    if share(is_code) > 0.9 and len({v for v in sample}) > max(1, len(sample) // 3):
        return "prefix"
    if share(is_price) > 0.9:
        return "price"
    if share(lambda v: bool(re.search(r"[A-Za-z]{3}", v))) > 0.9:
        return "description"
    return None


#: Header words for a value the deck replaces, not the one it brings.
_STALE = re.compile(r"\b(old|previous|prev|current|curr|existing|was|before)\b", re.IGNORECASE)


def guess_mapping(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> dict[str, str]:
    """field -> column proposed from the header's words, then from the columns' contents."""
    mapping: dict[str, str] = {}
    width = max([len(header or [])] + [len(r) for r in rows[:200]] or [0])
    names = [column_name(header, i) for i in range(width)]
    claimed: set[int] = set()
    if header:
        # A deck that shows the old price beside the new one ("Old Rate", "New Rate"): the columns
        # naming the old value claim a field only when no other column does.
        stale = [_STALE.search(text) is not None for text in header]
        for wanted_stale in (False, True):
            for index, text in enumerate(header):
                if stale[index] != wanted_stale:
                    continue
                name = _field_for_header(text, taken=mapping)
                if name is not None:
                    mapping[name] = names[index]
                    claimed.add(index)
    for index in range(width):
        if index in claimed:
            continue
        kind = _content_kind([r[index] if index < len(r) else "" for r in rows[:200]])
        if kind and kind not in mapping and not (kind == "price" and "first_price" in mapping):
            mapping[kind] = names[index]
            claimed.add(index)
    if "price" in mapping and "first_price" in mapping:
        del mapping["price"]
    if "increments" in mapping and "first_interval" in mapping:
        del mapping["increments"]
    return mapping


def column_name(header: Sequence[str] | None, index: int) -> str:
    """How a column is called in a mapping: its header text, or ``#n`` (1-based) without one."""
    if header and index < len(header) and header[index].strip():
        return header[index].strip()
    return f"#{index + 1}"


def fields_without_column(mapping: Mapping[str, str], header: Sequence[str] | None) -> set[str]:
    """The fields of ``mapping`` mapped to a header text that ``header`` lacks (``#N`` always resolves)."""
    names = {text.strip().lower() for text in header or []}
    return {
        name
        for name, column in mapping.items()
        if not re.fullmatch(r"#\d+", column.strip()) and column.strip().lower() not in names
    }


def resolve_columns(mapping: Mapping[str, str], header: Sequence[str] | None) -> dict[str, int]:
    """field -> 0-based column index; raises ValueError naming a column that is not in the file."""
    by_name: dict[str, int] = {}
    for index, text in enumerate(header or []):
        by_name.setdefault(text.strip().lower(), index)
    resolved: dict[str, int] = {}
    for name, column in mapping.items():
        if re.fullmatch(r"#\d+", column.strip()):
            resolved[name] = int(column.strip()[1:]) - 1
        elif column.strip().lower() in by_name:
            resolved[name] = by_name[column.strip().lower()]
        else:
            columns = ", ".join(h for h in (header or []) if h.strip()) or "none (use #1, #2, ...)"
            raise ValueError(
                f"{name} is mapped to column {column!r}, which the file lacks; columns: {columns}"
            )
    return resolved


# --------------------------------------------------------------------------- rows to candidate rates


@dataclass(slots=True)
class Candidate:
    """One rate the deck asks for (one per code), or the reason it cannot be one."""

    line: int
    sheet: str | None
    prefix: str
    values: dict[str, Any]
    #: field names that came from the file or a rule (the rest are defaults, maybe kept from the tariff).
    given: frozenset[str]
    error: str | None = None
    error_column: str | None = None


class _RowError(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _parse(name: str, text: str, settings: DeckSettings) -> Value | datetime | int | bool | None:
    if not text.strip():
        return None
    if name in MONEY or name in ("price", "off_peak_price"):
        return parse_number(text, decimal_comma=settings.decimal_comma)
    if name in WHOLE:
        return parse_whole(text)
    if name == "post_call_surcharge":
        return _surcharge(text, settings)
    if name in FLAGS:
        return parse_flag(text, name)
    if name == "effective_from":
        return parse_effective(text, day_first=settings.day_first)
    return text.strip()


def rules_without_source(settings: DeckSettings, mapped: Iterable[str]) -> set[str]:
    """The rules whose field no mapped column, default or link gives: they could never apply.

    A rule rewrites a value a row has; on a field nothing fills it would be
    skipped on every row, silently.
    """
    named = {*mapped, *(n for n, text in settings.defaults.items() if text.strip()), *settings.links}
    sourced = {target for name in named for target in VIRTUAL.get(name, (name,))}
    return {
        name for name in settings.rules if name != "prefix" and not set(VIRTUAL.get(name, (name,))) & sourced
    }


def map_rows(
    rows: Iterable[tuple[int, str | None, Sequence[str]]],
    header: Sequence[str] | None,
    settings: DeckSettings,
    *,
    exchange_rates: Mapping[str, Decimal] | None = None,
) -> list[Candidate]:
    """Candidates from ``(line, sheet, cells)`` rows, in file order."""
    columns = resolve_columns(settings.mapping, header)
    rows = list(rows)
    width = max((len(cells) for _, _, cells in rows), default=0)
    for name, index in columns.items():  # a column number past the last: as clear as a missing header
        if index >= max(width, len(header or [])):
            raise ValueError(
                f"{name} is mapped to column #{index + 1}, but the file's rows have {width} columns"
            )
    if "prefix" not in columns or not ({"price", "first_price"} & (set(columns) | set(settings.defaults))):
        raise ValueError(f"the mapping lacks a required field: {REQUIRED_NOTE}")
    if "effective_from" in columns:  # the date order is the column's, not each cell's
        at = columns["effective_from"]
        order = column_date_order({cells[at] for _, _, cells in rows if at < len(cells)})
        if order is not None and order != settings.day_first:
            settings = replace(settings, day_first=order)
    rules: dict[str, Expression] = {k: compile_expression(v) for k, v in settings.rules.items()}
    names = {name: column_name(header, index) for name, index in columns.items()}
    plan = _Plan.build(columns, settings, rules)
    candidates: list[Candidate] = []
    prices = [columns[name] for name in ("price", "first_price") if name in columns]
    leading = True  # before the first rate row: a merged header's second row may come
    for line, sheet, cells in rows:
        if not "".join(cells).strip():
            continue
        raw_codes = cells[columns["prefix"]] if columns["prefix"] < len(cells) else ""
        if not raw_codes.strip() and (_is_note(cells, prices) or (leading and _is_header_row(cells, prices))):
            continue
        leading = False
        try:
            values, given = _row_values(cells, plan, names, exchange_rates)
        except _RowError as failure:
            candidates.append(
                Candidate(line, sheet, raw_codes.strip(), {}, frozenset(), str(failure), failure.column)
            )
            continue
        try:
            codes = (
                split_codes(raw_codes, settings.code_delimiters, strip_00=settings.strip_00)
                if raw_codes.strip()
                else []
            )
            if not codes:
                raise DeckValueError("no prefix given")
            codes = [_code_rule(code, settings, rules, values, exchange_rates) for code in codes]
        except (DeckValueError, ExpressionError) as exc:
            candidates.append(
                Candidate(line, sheet, raw_codes.strip(), values, given, str(exc), names["prefix"])
            )
            continue
        if len(codes) == 1:  # the common case: the row's values are this rate's own
            candidates.append(Candidate(line, sheet, codes[0], values, given))
            continue
        for code in codes:
            candidates.append(Candidate(line, sheet, code, dict(values), given))
    return candidates


def _is_note(cells: Sequence[str], prices: Sequence[int]) -> bool:
    """A row without a code that is no rate: a note, a section title, a header's second row.

    It has no price either (or, when every price is a default, one cell at most).
    """
    if prices:
        return not any(i < len(cells) and cells[i].strip() for i in prices)
    return sum(1 for cell in cells if cell.strip()) <= 1


def _is_header_row(cells: Sequence[str], prices: Sequence[int]) -> bool:
    """A header's second row (``Peak``, ``Off-peak`` under a merged ``Rate``): words, no prices."""
    for index in prices:
        try:
            parse_number(cells[index] if index < len(cells) else "")
        except DeckValueError:
            continue
        return False
    return bool(prices)


def _code_rule(
    code: str,
    settings: DeckSettings,
    rules: Mapping[str, Expression],
    values: Mapping[str, Any],
    exchange_rates: Mapping[str, Decimal] | None,
) -> str:
    if "prefix" not in rules:
        return code
    return clean_code(str(rules["prefix"].evaluate(code, values, exchange_rates)), strip_00=False)


def _memoized(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` remembering each distinct cell of this import (decks repeat dates, prices, increments)."""
    memo: dict[str, Any] = {}

    def cached(text: str) -> Any:
        if type(text) is NumberCell:  # equal to the plain text it shows: never from that's entry
            return parse(text)
        try:
            return memo[text]
        except KeyError:
            value = memo[text] = parse(text)  # a cell that fails raises again next time: not stored
            return value

    return cached


def _surcharge(text: str, settings: DeckSettings) -> Decimal:
    """A post-call surcharge in percent: ``2.5``, ``2,5 %``, or a workbook's number cell as it is."""
    if isinstance(text, NumberCell):
        return text.value
    return parse_number(text.rstrip("%"), decimal_comma=settings.decimal_comma)


def _parser(name: str, settings: DeckSettings) -> Callable[[str], Any]:
    """The parser of one field's cells, chosen once per import rather than per cell."""
    parse = _plain_parser(name, settings)
    return parse if parse is str.strip else _memoized(parse)


def _plain_parser(name: str, settings: DeckSettings) -> Callable[[str], Any]:
    if name == "increments":
        return parse_increments
    if name in MONEY or name in ("price", "off_peak_price"):
        return partial(parse_number, decimal_comma=settings.decimal_comma)
    if name in WHOLE:
        return parse_whole
    if name == "post_call_surcharge":
        return partial(_surcharge, settings=settings)
    if name in FLAGS:
        return partial(parse_flag, field=name)
    if name == "effective_from":
        return partial(parse_effective, day_first=settings.day_first)
    return str.strip


@dataclass(frozen=True)
class _Plan:
    """How every row is read: the mapped columns, the parsed defaults, links and rules."""

    cells: tuple[tuple[str, int, Callable[[str], Any], tuple[str, ...]], ...]
    defaults: tuple[tuple[str, Any], ...]
    links: tuple[tuple[str, str], ...]
    rules: tuple[tuple[str, str, Expression], ...]
    #: The fields a row gives, by the mapped columns it has a value in (rows share a few shapes, and
    #: one shared set each instead of a set per row saves a deck's worth of memory).
    _given: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, compare=False)

    def given(self, present: tuple[str, ...]) -> frozenset[str]:
        """The fields given by a row whose cells of the ``present`` mapped fields are not empty."""
        found = self._given.get(present)
        if found is None:
            names = {target for name in present for target in VIRTUAL.get(name, (name,))}
            for target, origin in self.links:  # a linked field is given when its source is
                if origin in names:
                    names.add(target)
            found = self._given[present] = frozenset(names)
        return found

    @classmethod
    def build(
        cls, columns: Mapping[str, int], settings: DeckSettings, rules: Mapping[str, Expression]
    ) -> _Plan:
        cells = tuple(
            (name, index, _parser(name, settings), VIRTUAL.get(name, (name,)))
            for name, index in columns.items()
            if name != "prefix"
        )
        defaults: list[tuple[str, Any]] = []
        for name, text in settings.defaults.items():
            if not text.strip():
                continue
            try:
                if name == "increments":
                    steps = parse_increments(text)
                    defaults += [
                        ("first_interval", steps.first),
                        ("next_interval", steps.next or steps.first),
                    ]
                    continue
                value = _parse(name, text, settings)
            except DeckValueError as exc:
                raise ValueError(f"the default of {name} is not valid: {exc}") from exc
            defaults.extend((target, value) for target in VIRTUAL.get(name, (name,)))
        links = tuple(
            (target, VIRTUAL.get(source, (source,))[0])
            for name, source in settings.links.items()
            for target in VIRTUAL.get(name, (name,))
        )
        compiled = tuple(
            (name, target, rule)
            for name, rule in rules.items()
            if name != "prefix"
            for target in VIRTUAL.get(name, (name,))
        )
        return cls(cells, tuple(defaults), links, compiled)


def _row_values(
    cells: Sequence[str],
    plan: _Plan,
    names: Mapping[str, str],
    exchange_rates: Mapping[str, Decimal] | None,
) -> tuple[dict[str, Any], frozenset[str]]:
    values: dict[str, Any] = {}
    present: list[str] = []
    width = len(cells)
    for name, index, parse, targets in plan.cells:
        text = cells[index] if index < width else ""
        if not text or text.isspace():
            continue
        try:
            if name == "increments":
                increments = parse(text)
                values["first_interval"] = increments.first
                values["next_interval"] = increments.next if increments.next is not None else increments.first
                present.append(name)
                continue
            value = parse(text)
        except DeckValueError as exc:
            raise _RowError(names[name], str(exc)) from exc
        for target in targets:
            values[target] = value
        present.append(name)
    for target, value in plan.defaults:
        if target not in values:
            values[target] = value
    for target, origin in plan.links:
        if origin in values:
            values[target] = values[origin]
    given = plan.given(tuple(present))
    for name, target, rule in plan.rules:
        if target not in values:
            continue
        try:
            result = rule.evaluate(values[target], values, exchange_rates)
        except ExpressionError as exc:
            raise _RowError(names.get(name, name), str(exc)) from exc
        try:
            values[target] = _coerce(target, result)
        except DeckValueError as exc:
            raise _RowError(names.get(name, name), f"rule {rule.source!r} gave {result!r}: {exc}") from exc
    return values, given


def _coerce(name: str, value: Any) -> Any:
    """A rule's result as the field's type; raises :class:`DeckValueError` for what does not fit."""
    if name in MONEY or name == "post_call_surcharge":
        return value if isinstance(value, Decimal) else parse_number(str(value))
    if name in WHOLE:
        return parse_whole(_text(value))
    if name in FLAGS:
        return value if isinstance(value, bool) else parse_flag(_text(value), name)
    if name == "effective_from":
        return value if isinstance(value, datetime) else parse_effective(_text(value))
    return value if isinstance(value, str) else _text(value)
