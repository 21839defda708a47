"""A template, applied: one DuckDB query from a file's raw text columns to typed canonical XDRs.

The query extracts every canonical field as the template says, parses the
connect time and the usage, gives each bad row its reason, and marks the
unanswered calls; expressions then rewrite text fields, once per distinct
value.  The canonical CSV is read through the same query, by its own
template, so every layout is validated by the same rules.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rerate.domain.expressions import Expression, ExpressionError, text_of
from rerate.domain.xdr_templates import Source, XdrTemplate, usable_alternatives
from rerate.services.xdr_plain import EARLIEST_CALL, LATEST_CALL, PlainLayout, unpadded_column

MAX_DURATION = 1_000_000_000
#: The line number each row of a raw batch came from, under a name no file's own column has (a
#: canonical or headed file may well have a column called ``line``: it stays one of its fields).
LINE = "__rerate_line"
#: The query's steps that parse the time sources, and the columns of the times they parse.
_TIMED, _PARSED = "__rerate_timed", "__rerate_time"
#: Canonical fields besides the connect time and the usage, in the XDR table's order.
TEXT_FIELDS = ("source_id", "cli", "cld", "account", "vendor", "service")

#: What switches write and what spreadsheets leave after re-saving a file (seconds dropped, slashes,
#: no leading zeros: DuckDB's %m and %d accept one digit).
_LOCAL_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    # A spreadsheet's 12-hour clock: tried only for what the 24-hour forms above leave unread.
    "%Y-%m-%d %I:%M:%S %p",
    "%Y-%m-%d %I:%M %p",
    "%Y/%m/%d %I:%M:%S %p",
    "%Y/%m/%d %I:%M %p",
)


def _slashed(day_month: str) -> tuple[str, ...]:
    """A spreadsheet's short dates: a two-digit year first (``%Y`` would read ``20`` as the year
    20), then four digits; a 24-hour or 12-hour clock."""
    return tuple(
        f"{day_month}/{year} {clock}"
        for year in ("%y", "%Y")
        for clock in ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
    )


_MONTH_FIRST = _slashed("%m/%d")
_DAY_FIRST = _slashed("%d/%m")
#: The forms for a text that starts with a four-digit year and its separator, and the rest.
_YEAR_FIRST = tuple(f for f in _LOCAL_FORMATS if f.startswith("%Y"))
_NOT_YEAR_FIRST = tuple(f for f in _LOCAL_FORMATS if not f.startswith("%Y"))


#: A clock time followed by a UTC offset (``10:00:00+02:00``, ``10:00 -0500``).
_OFFSET_AT_END = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)? ?[+-][0-9]{2}(:?[0-9]{2})?$"
#: Added to the reason of a time with an offset in a column whose format is "utc".
UTC_OFFSET_HINT = ' (format "utc" reads only UTC times; format = "iso" reads times with an offset)'


def _listed(formats: Sequence[str]) -> str:
    """A DuckDB list of strptime formats, tried in order."""
    return "[" + ", ".join(_literal(f) for f in formats) + "]"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Projected:
    """The typed rows of a batch, the rows rejected (line, reason, raw) and the unanswered skipped."""

    table: pa.Table
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: int = 0


#: The query's literals of the plausible call times (:data:`EARLIEST_CALL`, :data:`LATEST_CALL`).
_EARLIEST, _LATEST = (f"{t:%Y-%m-%d %H:%M:%S}+00" for t in (EARLIEST_CALL, LATEST_CALL))


def _plausible(time_sql: str) -> str:
    """``time_sql`` (a parsed time's column: it is repeated) if within the years a call can have."""
    return (
        f"CASE WHEN ({time_sql}) >= TIMESTAMPTZ '{_EARLIEST}' AND ({time_sql}) < TIMESTAMPTZ '{_LATEST}' "
        f"THEN ({time_sql}) END"
    )


def _trim(expression: str, trims: bool) -> str:
    """``trim(expression)``, or the expression alone for a batch without a cell to trim."""
    return f"trim({expression})" if trims else expression


def _given(source: Source, trims: bool) -> str:
    """SQL: whether a time source holds a value (an empty cell, or an epoch of 0, holds none)."""
    if source.value is not None or source.column is None:
        return "false"
    text = f"nullif({_trim(_quoted(source.column), trims)}, '')"
    if source.format in ("epoch", "epoch_ms"):  # CUCM writes 0 for a call never connected
        text = f"nullif({text}, '0')"
    return f"({text} IS NOT NULL)"


#: A usage as the number it writes (a decimal comma read as the expressions' num() reads it), or
#: NULL for other text: what decides, before an expression runs, a zero or negative usage.
_USAGE_NUMBER = "TRY_CAST(replace(usage_text, ',', '.') AS DECIMAL(38, 9))"


class TemplateQuery:
    """A template compiled for one file's columns."""

    def __init__(
        self, template: XdrTemplate, columns: Sequence[str], keep_other_columns: bool = False
    ) -> None:
        self.template = template
        self.columns = list(columns)
        self.fields = usable_alternatives(template, columns)
        self.expressions: dict[str, Expression] = template.compiled_expressions()
        used = {c for alternatives in self.fields.values() for a in alternatives for c in a.columns}
        if template.answered.column:  # the usable sources' columns: absent optional ones are left out
            used.add(template.answered.column)
        self.others = [c for c in columns if c not in used] if keep_other_columns else []
        #: The file's columns the query reads, in file order: the reader converts only these.
        self.needed = [c for c in self.columns if c in used or c in self.others]
        self.sql = self._select(trims=True)
        #: The same query without ``trim``: for a batch where no cell has anything to trim (most
        #: batches), a fifth less of the query's time.
        self.sql_unpadded = self._select(trims=False)
        #: Clean batches of a layout of whole columns are typed by Arrow alone (the query's result);
        #: a usage an expression converts (decimal minutes, say) is the expression's to check.
        self.plain = (
            None
            if "duration" in self.expressions
            else PlainLayout.of(template, self.fields, self.others, LINE, TEXT_FIELDS, MAX_DURATION)
        )

    def _time_sql(self, source: Source, trims: bool) -> str:
        if source.value is not None or source.column is None:
            return "NULL::TIMESTAMPTZ"
        text = f"nullif({_trim(_quoted(source.column), trims)}, '')"
        match source.format:
            case "iso":
                return f"TRY_CAST({text} AS TIMESTAMPTZ)"
            case "epoch" | "epoch_ms":
                # At most 11 digits of seconds (13 of milliseconds): a larger value overflows the
                # microseconds, and is no call time anyway (a milliseconds value in a seconds column).
                # At least 11 digits of milliseconds: fewer is a time before April 1970, and a
                # seconds value in a milliseconds column (1760954405 read as 21 January 1970).
                scale, digits = (1_000_000, "1,11") if source.format == "epoch" else (1_000, "11,14")
                return (
                    f"CASE WHEN regexp_full_match({text}, '[0-9]{{{digits}}}') "
                    f"AND CAST({text} AS BIGINT) > 0 "
                    f"THEN timezone('UTC', make_timestamp(CAST({text} AS BIGINT) * {scale})) END"
                )
            case _:
                zone = self.template.timezone if source.format == "local" else "UTC"
                if source.format == "utc":  # a zone that says UTC is what the format says already
                    text = f"nullif(regexp_replace({text}, '(?i)(z| ?utc| ?gmt|[+]00:?00)$', ''), '')"
                # A text that starts with a four-digit year and its separator is read by the
                # year-first forms alone; any other by the rest, whose two-digit years ``%Y`` would
                # take for years 1 to 99 (2/12/20 as the year 2).
                others = (*_NOT_YEAR_FIRST, *(_DAY_FIRST if self.template.day_first else _MONTH_FIRST))
                starts_with_year = (
                    f"(TRY_CAST(substr({text}, 1, 4) AS USMALLINT) IS NOT NULL "
                    f"AND substr({text}, 5, 1) IN ('-', '/'))"
                )
                parsed = (
                    f"CASE WHEN {starts_with_year} THEN try_strptime({text}, {_listed(_YEAR_FIRST)}) "
                    f"ELSE try_strptime({text}, {_listed(others)}) END"
                )
                return f"timezone({_literal(zone)}, {parsed})"

    @staticmethod
    def _text_sql(source: Source, trims: bool) -> str:
        if source.value is not None:
            return _literal(source.value)
        if source.hash:
            parts = ", ".join(f"coalesce({_trim(_quoted(c), trims)}, '')" for c in source.hash)
            return f"md5(concat_ws('|', {parts}))"
        assert source.column is not None
        column = _quoted(source.column)
        if source.pattern is not None:
            return f"nullif(regexp_extract({column}, {_literal(source.pattern)}, 1), '')"
        return f"nullif({_trim(column, trims)}, '')"

    def _field_sql(self, name: str, trims: bool) -> str:
        alternatives = self.fields.get(name, ())
        if not alternatives:
            return "NULL::VARCHAR"
        parts = [self._text_sql(a, trims) for a in alternatives]
        return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"

    def _parsed_times(self, times: Sequence[Source], trims: bool) -> tuple[str, str, list[str]]:
        """Steps of the query that parse each time source once, the last step's name, and the
        columns they add.

        Written into one expression (the range check, then the value), DuckDB parsed a time three
        times (measured: 709 against 293 ns per row for an Asterisk answer time).  A later source is
        parsed only for the rows whose earlier sources are all empty: the rows it decides.
        """
        steps: list[str] = []
        previous = "raw_batch"
        for position, source in enumerate(times):
            parse = self._time_sql(source, trims)
            earlier = [f"NOT {_given(before, trims)}" for before in times[:position]]
            value = f"CASE WHEN {' AND '.join(earlier)} THEN {parse} END" if earlier else parse
            steps.append(f"{_TIMED}{position} AS (SELECT *, {value} AS {_PARSED}{position} FROM {previous})")
            previous = f"{_TIMED}{position}"
        return ",\n        ".join(steps), previous, [f"{_PARSED}{position}" for position in range(len(times))]

    def _select(self, trims: bool) -> str:
        times = self.fields["connect_time"]
        timed, last_timed, parsed = self._parsed_times(times, trims)
        checked_time = [_plausible(name) for name in parsed]
        # The first source holding a value decides: one that holds an unreadable time rejects the row
        # rather than moving the call to the next source's time (an answer time to the start time).
        time_sql = (
            checked_time[0]
            if len(checked_time) == 1
            else "CASE "
            + " ".join(f"WHEN {_given(a, trims)} THEN {t}" for a, t in zip(times, checked_time, strict=True))
            + " END"
        )
        # A reject names the text of the source that decided, not a later one the row also holds.
        time_text = [
            f"WHEN {_given(a, trims)} THEN {_trim(_quoted(a.column), trims)}"
            for a in times
            if a.column is not None
        ]
        time_text_sql = f"CASE {' '.join(time_text)} ELSE '' END" if time_text else "''"
        # A time with an offset other than UTC's, in a column read as "utc": the reason says how
        # to read it, or an operator sees only "not a time" for a time that plainly is one.
        offset_hint = (
            f"CASE WHEN regexp_matches(time_text, {_literal(_OFFSET_AT_END)}) "
            f"THEN {_literal(UTC_OFFSET_HINT)} ELSE '' END"
            if any(a.format == "utc" for a in times)
            else "''"
        )
        answered = self.template.answered
        # An expression on the usage gets the file's text (decimal minutes, say) and its result is
        # checked as a file's usage is (:meth:`rewrite`).
        expressed = "duration" in self.expressions
        if answered.column:  # read in the first step, where the file's columns are
            values = ", ".join(_literal(v) for v in answered.values)
            marked_sql = f"coalesce({_trim(_quoted(answered.column), trims)} IN ({values}), false)"
            answered_sql = "marked_answered"
        else:
            marked_sql = "NULL::BOOLEAN"
            # Usage above zero.  A usage an expression converts: a number of zero is unanswered
            # (a negative one is rejected, as a file's is), any other text the expression's to
            # read, and seconds it makes of zero make the call unanswered then (:meth:`answered`).
            answered_sql = (
                f"coalesce({_USAGE_NUMBER} > 0, usage_text <> '')"
                if expressed
                else "coalesce(dur > 0, false)"
            )
        extra_sql = (
            "json_object(" + ", ".join(f"{_literal(c)}, {_quoted(c)}" for c in self.others) + ")::VARCHAR"
            if self.others
            else "NULL::VARCHAR"
        )
        zero = self.template.unanswered == "zero"
        usage_counts = "marked_answered IS DISTINCT FROM false"
        usage_checked = "false" if expressed else "true"
        # A usage below zero is no call's usage: rejected unless a disposition marks the call
        # unanswered.  Checked before an expression runs, on the number the file writes.
        negative_sql = (
            # A number written with a minus, as the other path's check reads it: -0 is one too.
            f"(starts_with(usage_text, '-') AND {_USAGE_NUMBER} IS NOT NULL)"
            if expressed
            else "regexp_full_match(usage_text, '-[0-9]+')"
        )
        duration_sql = (
            f"CASE WHEN {str(zero).lower()} AND NOT answered THEN NULL ELSE usage_text END"
            if expressed
            else f"CASE WHEN {str(zero).lower()} AND NOT answered THEN 0 ELSE dur END"
        )
        return f"""
        WITH {timed},
        source AS (
            SELECT {_quoted(LINE)} AS line,
                   {self._field_sql("source_id", trims)} AS source_id,
                   {time_sql} AS ts,
                   {time_text_sql} AS time_text,
                   {_trim(f"coalesce({self._field_sql('duration', trims)}, '')", trims)} AS usage_text,
                   {self._field_sql("cli", trims)} AS cli,
                   {self._field_sql("cld", trims)} AS cld,
                   {self._field_sql("account", trims)} AS account,
                   {self._field_sql("vendor", trims)} AS vendor,
                   coalesce({self._field_sql("service", trims)}, 'voice') AS service,
                   {extra_sql} AS extra,
                   {marked_sql} AS marked_answered
            FROM {last_timed}
        ),
        parsed AS (
            SELECT *,
                   CASE WHEN regexp_full_match(usage_text, '[0-9]{{1,18}}')
                        THEN TRY_CAST(usage_text AS BIGINT) END AS dur
            FROM source
        ),
        signed AS (
            SELECT *,
                   CASE WHEN dur IS NULL THEN {negative_sql} ELSE false END AS negative_usage
            FROM parsed
        ),
        checked AS (
            SELECT *,
                   CASE
                     WHEN source_id IS NULL THEN 'missing source_id'
                     WHEN time_text = '' AND ts IS NULL THEN 'missing connect_time'
                     WHEN ts IS NULL THEN 'connect_time is not a time: ' || time_text || {offset_hint}
                     -- A call its disposition marks unanswered is skipped or loaded with zero
                     -- seconds even where its usage is empty or negative (switches write -1):
                     -- such a row goes on to the checks below.  Text there still rejects it (a
                     -- file read with the wrong template, say).
                     WHEN usage_text = '' AND {usage_counts} THEN 'missing duration'
                     WHEN negative_usage AND {usage_counts} THEN 'negative duration: ' || usage_text
                     WHEN {usage_checked} AND dur IS NULL AND usage_text <> '' AND NOT negative_usage
                          THEN 'duration is not a whole number of seconds: ' || usage_text
                     WHEN {usage_checked} AND dur > {MAX_DURATION}
                          THEN 'duration over {MAX_DURATION} seconds: ' || usage_text
                     WHEN cld IS NULL THEN 'missing cld (called number)'
                   END AS reject_reason,
                   {answered_sql} AS answered
            FROM signed
        )
        SELECT line, source_id, ts AS connect_time,
               {duration_sql} AS duration,
               coalesce(cli, '') AS cli, cld, coalesce(account, '') AS account,
               coalesce(vendor, '') AS vendor,
               service, extra, CAST(ts AS DATE) AS call_date,
               reject_reason,
               reject_reason IS NULL AND NOT answered AS unanswered
        FROM checked
        """

    def every_row(self, con: duckdb.DuckDBPyConnection, raw: pa.Table) -> pa.Table:
        """The query's result for every row of ``raw``, with ``reject_reason`` and ``unanswered``."""
        typed = self.plain.read(raw) if self.plain is not None else None
        if typed is not None:
            return typed
        unpadded = all(unpadded_column(raw.column(name)) for name in self.needed)
        con.register("raw_batch", raw)
        try:
            return con.sql(self.sql_unpadded if unpadded else self.sql).to_arrow_table()
        finally:
            con.unregister("raw_batch")

    def project(self, con: duckdb.DuckDBPyConnection, raw: pa.Table) -> Projected:
        """Typed canonical rows of ``raw`` (the file's columns as text, plus the line numbers)."""
        result = self.every_row(con, raw)
        reason = result.column("reject_reason")
        rejects: list[tuple[int, str, str]] = []
        if reason.null_count != len(reason):
            bad = result.filter(pc.is_valid(reason))
            lines, reasons = bad.column("line").to_pylist(), bad.column("reject_reason").to_pylist()
            shown = self.raw_texts(raw, lines)
            rejects = [(line, why, shown[line]) for line, why in zip(lines, reasons, strict=True)]
            result = result.filter(pc.is_null(reason))
        skipped = 0
        if self.template.unanswered == "skip":
            unanswered = result.column("unanswered")
            skipped = int(pc.sum(pc.cast(unanswered, pa.int64())).as_py() or 0)
            if skipped:
                result = result.filter(pc.invert(unanswered))
        result = result.drop_columns(["reject_reason", "unanswered"])
        if self.expressions:  # also on no rows: an expression's usage is typed as any other
            result, failed = self.rewrite(result)
            rejects.extend(failed)
        result, unanswered = self.answered(result)
        return Projected(result, rejects, skipped + unanswered)

    def answered(self, rewritten: pa.Table) -> tuple[pa.Table, int]:
        """``rewritten`` less the calls the template skips as unanswered that only its usage
        expression's result tells (zero seconds, with no disposition column), and how many."""
        if (
            "duration" not in self.expressions
            or self.template.answered.column
            or self.template.unanswered != "skip"
            or rewritten.num_rows == 0
        ):
            return rewritten, 0
        unanswered = pc.fill_null(pc.equal(rewritten.column("duration"), 0), False)
        count = int(pc.sum(pc.cast(unanswered, pa.int64())).as_py() or 0)
        return (rewritten.filter(pc.invert(unanswered)), count) if count else (rewritten, 0)

    def raw_texts(self, raw: pa.Table, lines: list[int]) -> dict[int, str]:
        """The rows of ``lines`` as the file had them: the fields the template reads (all of them
        for the canonical CSV), a CSV row in the template's delimiter and quote, quoted where a
        cell holds the delimiter, the quote or a line break.  Null cells (a Parquet file's) are
        empty, not left out: the fields stay in their places.  Made for the rejected rows only."""
        wanted = pc.is_in(raw.column(LINE), value_set=pa.array(lines, pa.int64()))
        rows = raw.filter(wanted).select([LINE, *self.needed])
        out = io.StringIO()
        writer = csv.writer(
            out, delimiter=self.template.delimiter, quotechar=self.template.quote, lineterminator="\n"
        )
        shown: dict[int, str] = {}
        for line, *cells in zip(*(rows.column(i).to_pylist() for i in range(rows.num_columns)), strict=True):
            out.seek(0)
            out.truncate()
            writer.writerow(["" if cell is None else cell for cell in cells])
            shown[line] = out.getvalue().removesuffix("\n")
        return shown

    def rewrite(self, table: pa.Table) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        """Apply the expressions, once per distinct value; a value that fails rejects its rows."""
        failed = pa.array(np.zeros(table.num_rows, dtype=bool))
        rejects: dict[int, tuple[int, str, str]] = {}
        for name, expression in self.expressions.items():
            encoded = pc.dictionary_encode(table.column(name)).combine_chunks()
            results: list[str | None] = []
            problems: dict[int, str] = {}
            for index, value in enumerate(encoded.dictionary.to_pylist()):
                try:
                    result = text_of(expression.evaluate(value))  # 61.000 is 61 seconds
                except ExpressionError as exc:
                    results.append(None)
                    problems[index] = f"expressions.{name}: {exc}"
                    continue
                # What an expression makes is checked as the file's own value is.
                problem = _duration_problem(result) if name == "duration" else None
                if problem is not None:
                    results.append(None)
                    problems[index] = f"expressions.{name}: {problem}"
                    continue
                results.append(result)
            if problems:
                bad = pc.fill_null(
                    pc.is_in(encoded.indices, value_set=pa.array(list(problems), pa.int32())), False
                )
                lines = pc.filter(table.column("line"), bad).to_pylist()
                indices = pc.filter(encoded.indices, bad).to_pylist()
                values = pc.filter(table.column(name), bad).to_pylist()
                for line, index, value in zip(lines, indices, values, strict=True):
                    rejects.setdefault(line, (line, problems[index], str(value)))
                failed = pc.or_(failed, bad)
            rewritten = pc.take(pa.array(results, pa.string()), encoded.indices)
            if name == "duration":  # checked whole seconds; none (a call loaded unanswered): zero
                rewritten = pc.fill_null(rewritten.cast(pa.int64()), 0)
            elif not pa.types.is_string(table.schema.field(name).type):  # a checked number: typed back
                rewritten = rewritten.cast(table.schema.field(name).type)
            table = table.set_column(table.schema.get_field_index(name), name, rewritten)
        return table.filter(pc.invert(failed)), sorted(rejects.values())


def _duration_problem(text: str) -> str | None:
    """Why an expression's duration cannot be loaded (None: it can), as the SQL checks a file's."""
    if re.fullmatch(r"-[0-9]+(\.[0-9]*)?", text):
        return f"negative duration: {text}"
    if not re.fullmatch(r"[0-9]+", text):
        return f"duration is not a whole number of seconds: {text}"
    if int(text) > MAX_DURATION:
        return f"duration over {MAX_DURATION} seconds: {text}"
    return None
