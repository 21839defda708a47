"""XDR import templates: how a switch's or mediator's file layout maps onto the canonical XDR.

A template says how to read the file (header row or fixed column names,
separator, quoting, a type row to skip) and, for each canonical field, where
its value comes from:

* a column: ``cld = "dst"``;
* part of a column, by a regular expression's first group:
  ``vendor = { column = "dstchannel", pattern = '^[^/]+/(.+)-[0-9a-f]+$' }``;
* a time, by format: ``{ column = "start", format = "local" }`` (the
  template's time zone; also the shapes spreadsheets leave behind, such as
  ``2020/2/10 22:41``), ``"utc"``, ``"epoch"``, ``"epoch_ms"`` or ``"iso"``;
* a hash of several columns (an XDR id when the source has none):
  ``{ hash = ["start", "src", "dst", "channel"] }``;
* a constant: ``{ value = "voice" }``;
* a list of those, tried in order, row by row: the first that gives a value
  (alternatives naming a column the file does not have are left out, so one
  template reads files with and without optional trailing columns).

``answered`` says which rows are answered calls (by default: usage above
zero); ``unanswered = "skip"`` leaves the others out (counted), ``"zero"``
loads them with no usage.  ``[expressions]`` post-process a field's value with
the rate wizard's safe expressions (``value`` is the extracted text).

This module only checks and describes templates; the service turns them
into the ingest's queries.  See docs/xdr-templates.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rerate.domain.expressions import Expression, ExpressionError, compile_expression

#: Canonical fields a template fills (shared/ARCHITECTURE.md, the XDR table).
CANONICAL_FIELDS = ("source_id", "connect_time", "duration", "cli", "cld", "account", "vendor", "service")
REQUIRED_FIELDS = ("source_id", "connect_time", "duration", "cld")
TIME_FORMATS = ("local", "utc", "epoch", "epoch_ms", "iso")
UNANSWERED_POLICIES = ("skip", "zero")
_KNOWN_TOP = {"name", "description", "source", "fields", "answered", "unanswered", "expressions"}
_KNOWN_SOURCE = {
    "header",
    "type_row",
    "delimiter",
    "quote",
    "columns",
    "min_columns",
    "timezone",
    "day_first",
}


class TemplateError(ValueError):
    """A template that cannot be used, with what is wrong in words."""


@dataclass(frozen=True)
class Source:
    """Where one value of a field comes from (one alternative)."""

    column: str | None = None
    pattern: str | None = None
    format: str | None = None  # times only
    hash: tuple[str, ...] = ()
    value: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The file columns this alternative needs."""
        if self.hash:
            return self.hash
        return (self.column,) if self.column is not None else ()


@dataclass(frozen=True)
class Answered:
    """Which rows are answered calls: a column's values, or (by default) usage above zero."""

    column: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class XdrTemplate:
    name: str
    description: str = ""
    header: bool = True
    type_row: bool = False
    delimiter: str = ","
    quote: str = '"'
    #: Column names by position for files without a header (the longest layout).
    columns: tuple[str, ...] = ()
    #: Fewest fields a row of a headerless file may have (optional trailing columns).
    min_columns: int | None = None
    timezone: str = "UTC"
    #: For dates written day first (``10/2/2020``) rather than month first.
    day_first: bool = False
    fields: Mapping[str, tuple[Source, ...]] = field(default_factory=dict)
    answered: Answered = Answered()
    unanswered: str = "skip"
    expressions: Mapping[str, str] = field(default_factory=dict)

    def columns_read(self) -> set[str]:
        """Every file column some source of a field, or the answered test, may read."""
        used = {c for alternatives in self.fields.values() for a in alternatives for c in a.columns}
        return used | ({self.answered.column} if self.answered.column else set())

    def hashed_only(self) -> set[str]:
        """Columns read only into a hashed id: their text identifies a call, and means nothing
        else (an Asterisk caller name, say)."""
        alternatives = [a for sources in self.fields.values() for a in sources]
        hashed = {c for a in alternatives if a.hash for c in a.hash}
        direct = {a.column for a in alternatives if not a.hash and a.column is not None}
        return hashed - direct - {self.answered.column}

    def compiled_expressions(self) -> dict[str, Expression]:
        return {name: compile_expression(text) for name, text in self.expressions.items()}

    def as_dict(self) -> dict[str, Any]:
        """The template as its TOML tables (what :func:`parse_template` reads back)."""
        fields: dict[str, Any] = {}
        for name, alternatives in self.fields.items():
            shaped = [_source_dict(s) for s in alternatives]
            fields[name] = shaped[0] if len(shaped) == 1 else shaped
        source: dict[str, Any] = {
            "header": self.header,
            "type_row": self.type_row,
            "delimiter": self.delimiter,
            "quote": self.quote,
            "timezone": self.timezone,
            "day_first": self.day_first,
        }
        if self.columns:
            source["columns"] = list(self.columns)
        if self.min_columns is not None:
            source["min_columns"] = self.min_columns
        result: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "source": source,
            "fields": fields,
            "unanswered": self.unanswered,
        }
        if self.answered.column:
            result["answered"] = {"column": self.answered.column, "values": list(self.answered.values)}
        if self.expressions:
            result["expressions"] = dict(self.expressions)
        return result


def _source_dict(source: Source) -> dict[str, Any] | str:
    if source.column is not None and source.pattern is None and source.format is None:
        return source.column
    shaped: dict[str, Any] = {}
    for key in ("column", "pattern", "format", "value"):
        if getattr(source, key) is not None:
            shaped[key] = getattr(source, key)
    if source.hash:
        shaped["hash"] = list(source.hash)
    return shaped


def parse_template(data: Mapping[str, Any], name: str | None = None) -> XdrTemplate:
    """A template from its TOML tables; raises :class:`TemplateError` naming what is wrong."""
    unknown = set(data) - _KNOWN_TOP
    if unknown:
        raise TemplateError(
            f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KNOWN_TOP))}"
        )
    title = name or data.get("name")
    if not isinstance(title, str) or not title.strip():
        raise TemplateError("a template needs a name")
    source = data.get("source", {})
    if not isinstance(source, Mapping):
        raise TemplateError("[source] must be a table")
    unknown = set(source) - _KNOWN_SOURCE
    if unknown:
        raise TemplateError(
            f"unknown [source] key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KNOWN_SOURCE))}"
        )
    header = _boolean(source.get("header", True), "source.header")
    columns = tuple(_text_list(source.get("columns", []), "source.columns"))
    if not header and not columns:
        raise TemplateError("a file without a header needs [source] columns = [names by position]")
    if len(set(columns)) != len(columns):
        raise TemplateError("source.columns names a column twice")
    min_columns = source.get("min_columns")
    if min_columns is not None and (not isinstance(min_columns, int) or not 1 <= min_columns <= len(columns)):
        raise TemplateError(f"source.min_columns must be between 1 and {len(columns)}")
    timezone = str(source.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TemplateError(f"unknown time zone {timezone!r} (use a name such as Europe/Berlin)") from exc
    delimiter = str(source.get("delimiter", ","))
    quote = str(source.get("quote", '"'))
    if len(delimiter) != 1 or len(quote) != 1:
        raise TemplateError("source.delimiter and source.quote must be one character each")
    raw_fields = data.get("fields", {})
    if not isinstance(raw_fields, Mapping):
        raise TemplateError("[fields] must be a table")
    fields = {key: _alternatives(key, spec) for key, spec in raw_fields.items()}
    unknown = set(fields) - set(CANONICAL_FIELDS)
    if unknown:
        raise TemplateError(
            f"unknown field(s) {', '.join(sorted(unknown))}; fields: {', '.join(CANONICAL_FIELDS)}"
        )
    missing = [f for f in REQUIRED_FIELDS if f not in fields]
    if missing:
        raise TemplateError(f"[fields] lacks {', '.join(missing)}")
    for field_name, alternatives in fields.items():
        for alternative in alternatives:
            if alternative.format is not None and field_name != "connect_time":
                raise TemplateError(f"fields.{field_name}: only connect_time takes a time format")
            if field_name == "connect_time" and alternative.column is not None and alternative.format is None:
                raise TemplateError(f"fields.connect_time: give its format, one of {', '.join(TIME_FORMATS)}")
            if header is False:
                absent = [c for c in alternative.columns if c not in columns]
                if absent:
                    raise TemplateError(
                        f"fields.{field_name} names {', '.join(absent)}, not in source.columns"
                    )
    answered = _answered(data.get("answered"))
    unanswered = str(data.get("unanswered", "skip"))
    if unanswered not in UNANSWERED_POLICIES:
        raise TemplateError(f"unanswered must be one of {', '.join(UNANSWERED_POLICIES)}, got {unanswered!r}")
    expressions = data.get("expressions", {})
    if not isinstance(expressions, Mapping):
        raise TemplateError("[expressions] must be a table")
    for field_name, text in expressions.items():
        if field_name not in CANONICAL_FIELDS or field_name == "connect_time":
            raise TemplateError(f"expressions.{field_name}: expressions apply to text fields only")
        try:
            compile_expression(str(text))
        except ExpressionError as exc:
            raise TemplateError(f"expressions.{field_name}: {exc}") from exc
    return XdrTemplate(
        name=title.strip(),
        description=str(data.get("description", "")),
        header=header,
        type_row=_boolean(source.get("type_row", False), "source.type_row"),
        delimiter=delimiter,
        quote=quote,
        columns=columns,
        min_columns=min_columns,
        timezone=timezone,
        day_first=_boolean(source.get("day_first", False), "source.day_first"),
        fields=fields,
        answered=answered,
        unanswered=unanswered,
        expressions={k: str(v) for k, v in expressions.items()},
    )


def check_new_template(data: Mapping[str, Any]) -> None:
    """What a template being saved must also get right, beyond what :func:`parse_template` needs
    to read one: the types TOML gives and settings no file could be read with.

    Templates already saved are read without these checks, so one saved before them still
    loads its files.
    """
    source = data.get("source", {})
    if isinstance(source, Mapping):
        delimiter, quote = source.get("delimiter", ","), source.get("quote", '"')
        if not (isinstance(delimiter, str) and isinstance(quote, str)):
            raise TemplateError('source.delimiter and source.quote must be quoted characters (";")')
        if {delimiter, quote} & {"\n", "\r"} or delimiter == quote:
            raise TemplateError(
                "source.delimiter and source.quote must differ from each other and from a line break"
            )
        if isinstance(source.get("min_columns"), bool):
            raise TemplateError("source.min_columns must be a whole number (min_columns = 16)")
    if not isinstance(data.get("description", ""), str):
        raise TemplateError('description must be quoted text: description = "..."')
    fields = data.get("fields", {})
    for name, spec in fields.items() if isinstance(fields, Mapping) else ():
        for alternative in spec if isinstance(spec, list) else [spec]:
            if not isinstance(alternative, Mapping) or "value" not in alternative:
                continue
            value = alternative["value"]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise TemplateError(
                    f'fields.{name}: a constant value must be quoted text: {{ value = "..." }}'
                )
            if name in REQUIRED_FIELDS and not str(value).strip():  # every row would lack it
                raise TemplateError(f"fields.{name}: a constant for a required field must not be empty")
    answered = data.get("answered")
    if isinstance(answered, Mapping):
        unknown = set(answered) - {"column", "values"}
        if unknown:
            raise TemplateError(
                f"answered: unknown key(s) {', '.join(sorted(unknown))}; known: column, values"
            )
        _column_name(answered.get("column"), "answered.column")
    expressions = data.get("expressions", {})
    for field_name, text in expressions.items() if isinstance(expressions, Mapping) else ():
        if not isinstance(text, str) or not text.strip():
            raise TemplateError(
                f"expressions.{field_name}: give the expression as quoted text ('value * 60')"
            )
        try:
            unknown_names = compile_expression(text).names - {"value"}
        except ExpressionError:
            continue  # parse_template names what is wrong with it
        if unknown_names:
            raise TemplateError(
                f"expressions.{field_name}: unknown name(s) {', '.join(sorted(unknown_names))}: "
                "a template's expression reads only value, the field's text"
            )


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise TemplateError(f"{where} must be true or false")
    return value


def _text_list(value: Any, where: str, *, empty: bool = True) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise TemplateError(f"{where} must be a list of names")
    if not value and not empty:
        raise TemplateError(f"{where} names no column: list the columns to hash")
    return [v.strip() for v in value]


def _column_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TemplateError(f"{where}: give a column name (quoted text)")
    return value.strip()


def _alternatives(name: str, spec: Any) -> tuple[Source, ...]:
    specs: Sequence[Any] = spec if isinstance(spec, list) else [spec]
    if not specs:
        raise TemplateError(f"fields.{name} is empty")
    return tuple(_source(name, s) for s in specs)


def _source(name: str, spec: Any) -> Source:
    where = f"fields.{name}"
    if isinstance(spec, str):
        return Source(column=_column_name(spec, where))
    if not isinstance(spec, Mapping):
        raise TemplateError(f'{where}: give a column name or a table such as {{ column = "..." }}')
    unknown = set(spec) - {"column", "pattern", "format", "hash", "value"}
    if unknown:
        raise TemplateError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kinds = [k for k in ("column", "hash", "value") if k in spec]
    if len(kinds) != 1:
        raise TemplateError(f"{where}: give exactly one of column, hash or value")
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            compiled = re.compile(str(pattern))
        except re.error as exc:
            raise TemplateError(f"{where}: the pattern is not a regular expression: {exc}") from exc
        if compiled.groups < 1:
            raise TemplateError(f"{where}: the pattern needs a group ( ) around the part to keep")
    time_format = spec.get("format")
    if time_format is not None and time_format not in TIME_FORMATS:
        raise TemplateError(f"{where}: format must be one of {', '.join(TIME_FORMATS)}")
    if "hash" in spec:
        return Source(hash=tuple(_text_list(spec["hash"], f"{where}.hash", empty=False)))
    if "value" in spec:
        return Source(value=str(spec["value"]))
    return Source(
        column=_column_name(spec["column"], where),
        pattern=None if pattern is None else str(pattern),
        format=None if time_format is None else str(time_format),
    )


def _answered(spec: Any) -> Answered:
    if spec is None:
        return Answered()
    if not isinstance(spec, Mapping) or "column" not in spec:
        raise TemplateError('answered must be a table: { column = "disposition", values = ["ANSWERED"] }')
    values = _text_list(spec.get("values", []), "answered.values")
    if not values:
        raise TemplateError("answered.values lists the values of answered calls")
    return Answered(column=str(spec["column"]).strip(), values=tuple(values))


def usable_alternatives(template: XdrTemplate, columns: Sequence[str]) -> dict[str, tuple[Source, ...]]:
    """Each field's alternatives that this file's columns allow; raises if a required field has none."""
    present = set(columns)
    usable: dict[str, tuple[Source, ...]] = {}
    for name, alternatives in template.fields.items():
        kept = tuple(a for a in alternatives if all(c in present for c in a.columns))
        if kept:
            usable[name] = kept
        elif name in REQUIRED_FIELDS:
            wanted = " or ".join("+".join(a.columns) or "a value" for a in alternatives)
            raise TemplateError(
                f"template {template.name}: the file has no column for {name} (wanted {wanted})"
            )
    if template.answered.column and template.answered.column not in present:
        raise TemplateError(
            f"template {template.name}: the file has no column {template.answered.column!r} (answered calls)"
        )
    return usable
