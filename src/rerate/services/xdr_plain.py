"""Typing a clean batch of a plain layout with Arrow's casts, without the template's query.

Most batches of the canonical CSV (and of any layout whose fields are whole columns with ISO
times) need none of the query's rewriting: no cell has blanks around it, every call id and called
number is there, every time is an ISO time Arrow reads, every usage is a whole number of seconds.
Such a batch is typed here at about a fifth of the query's cost.  A batch with anything else is
left to the query (None), which gives each bad row its reason; on the batches typed here both give
the same rows (tests/unit/test_xdr_plain.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rerate.domain.xdr_templates import Source, XdrTemplate

#: What an empty or missing optional field becomes (as in the query's final coalesce).
_EMPTY_AS = {"cli": "", "account": "", "vendor": "", "service": "voice"}
#: Fields that reject a row when missing: a batch missing one goes through the query.
_REQUIRED = ("source_id", "cld")
#: Printable ASCII other than the blank: a cell beginning and ending with these needs no trim.
_FIRST_SAFE, _LAST_SAFE = 0x21, 0x7E
#: Call times outside these are unreadable, not calls: a year such as 20266 is a typing error.
EARLIEST_CALL, LATEST_CALL = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
_UTC_MICROS = pa.timestamp("us", tz="UTC")
#: A usage of more digits is left to the query (it gives the reason).
_USAGE_DIGITS = 18


@dataclass(frozen=True)
class _Field:
    """A text field read from one whole column, else a fixed value, else nothing."""

    column: str | None
    value: str | None


def _plain_field(alternatives: tuple[Source, ...]) -> _Field | None:
    """The field as a column with an optional fixed fallback; None for anything else."""
    column = value = None
    for position, source in enumerate(alternatives):
        if source.value is not None and position == len(alternatives) - 1:
            value = source.value
        elif (
            position == 0
            and source.column is not None
            and source.pattern is None
            and not source.hash
            and source.value is None
        ):
            column = source.column
        else:
            return None
    return _Field(column, value)


class PlainLayout:
    """The Arrow reading of a template whose fields are whole columns (see the module's doc)."""

    def __init__(
        self, line: str, fields: dict[str, _Field], time_column: str, usage_column: str, most_seconds: int
    ) -> None:
        self.line = line
        self.fields = fields
        self.time_column = time_column
        self.usage_column = usage_column
        self.most_seconds = most_seconds

    @classmethod
    def of(
        cls,
        template: XdrTemplate,
        fields: dict[str, tuple[Source, ...]],
        others: list[str],
        line: str,
        text_fields: tuple[str, ...],
        most_seconds: int,
    ) -> PlainLayout | None:
        """The plain reading of ``template`` with its usable ``fields``, or None if it has none."""
        if others or template.answered.column or set(fields) - {*text_fields, "connect_time", "duration"}:
            return None
        times, usage = fields["connect_time"], fields["duration"]
        if len(times) != 1 or times[0].format != "iso" or len(usage) != 1:
            return None
        time_field, usage_field = _plain_field(times), _plain_field(usage)
        if time_field is None or time_field.value is not None or time_field.column is None:
            return None
        if usage_field is None or usage_field.value is not None or usage_field.column is None:
            return None
        plain: dict[str, _Field] = {}
        for name in text_fields:
            found = _plain_field(fields.get(name, ()))
            if found is None:
                return None
            plain[name] = found
        return cls(line, plain, time_field.column, usage_field.column, most_seconds)

    def read(self, raw: pa.Table) -> pa.Table | None:
        """The query's result for ``raw`` if every row is clean (no rejects); None otherwise."""
        rows = raw.num_rows
        if rows == 0:
            return None
        texts: dict[str, pa.ChunkedArray | pa.Array] = {}
        for name, plain in self.fields.items():
            text = self._text(raw, name, plain)
            if text is None:
                return None
            texts[name] = text
        times = self._times(raw.column(self.time_column))
        usage = self._usage(raw.column(self.usage_column), self.most_seconds)
        if times is None or usage is None:
            return None
        nothing = pa.nulls(rows, pa.string())
        return pa.table(
            {
                "line": raw.column(self.line),
                "source_id": texts["source_id"],
                "connect_time": times,
                "duration": usage,
                "cli": texts["cli"],
                "cld": texts["cld"],
                "account": texts["account"],
                "vendor": texts["vendor"],
                "service": texts["service"],
                "extra": nothing,
                "call_date": pc.cast(times, pa.date32()),
                "reject_reason": nothing,
                # Every usage is a number here: unanswered means zero seconds, and a zero stays zero.
                "unanswered": pc.equal(usage, 0),
            }
        )

    @staticmethod
    def _text(raw: pa.Table, name: str, plain: _Field) -> pa.ChunkedArray | pa.Array | None:
        rows = raw.num_rows
        fallback = plain.value if plain.value is not None else _EMPTY_AS.get(name)
        if plain.column is None:
            missing = pa.nulls(rows, pa.string())
            return missing if fallback is None else missing.fill_null(fallback)
        values = raw.column(plain.column)
        if not unpadded_column(values):
            return None
        empty = pc.fill_null(pc.equal(pc.binary_length(values), 0), True)
        if not pc.any(empty).as_py():
            return values
        if fallback is None:  # a required field missing: its row is rejected by the query
            return None
        return pc.if_else(empty, pa.scalar(fallback, pa.string()), values)

    @staticmethod
    def _times(text: pa.ChunkedArray) -> pa.ChunkedArray | None:
        if not pa.types.is_string(text.type) or text.null_count:
            return None
        # Arrow also reads a time given to the hour only (2026-10-21T16), which the query rejects.
        if not all(_to_the_second(chunk) for chunk in text.chunks):
            return None
        try:
            times = text.cast(_UTC_MICROS)  # ISO times with their zone (Z, +02:00)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            try:  # ISO times without a zone are UTC, as the query reads them
                times = text.cast(pa.timestamp("us")).cast(_UTC_MICROS)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        bounds = pc.min_max(times)
        earliest, latest = bounds["min"].as_py(), bounds["max"].as_py()
        # The query's plausible years.
        if earliest is None or earliest < EARLIEST_CALL or latest >= LATEST_CALL:
            return None
        return times

    @staticmethod
    def _usage(text: pa.ChunkedArray, most_seconds: int) -> pa.ChunkedArray | None:
        if not pa.types.is_string(text.type) or text.null_count:
            return None
        digits = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.binary_length(text), _USAGE_DIGITS))
        if not pc.all(digits).as_py():
            return None
        usage = text.cast(pa.int64())
        if (pc.max(usage).as_py() or 0) > most_seconds:
            return None
        return usage


def _bounds(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Each value's start and end in the data, and the data, of a string array (None: no data)."""
    buffers = values.buffers()
    if len(values) == 0 or buffers[2] is None:
        return None
    count = values.offset + len(values) + 1
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=count)[values.offset :]
    return offsets[:-1], offsets[1:], np.frombuffer(buffers[2], dtype=np.uint8)


def _to_the_second(values: pa.Array) -> bool:
    """Whether every value is at least ``YYYY-MM-DDThh:mm:ss`` long, with its two colons there."""
    found = _bounds(values)
    if found is None:
        return len(values) == 0
    starts, ends, data = found
    if ((ends - starts) < 19).any():
        return False
    return bool(((data[starts + 13] == ord(":")) & (data[starts + 16] == ord(":"))).all())


def unpadded_column(values: pa.ChunkedArray) -> bool:
    """Whether ``values`` is text with nothing the query's ``trim`` might take off any cell."""
    return pa.types.is_string(values.type) and all(_unpadded(chunk) for chunk in values.chunks)


def _unpadded(values: pa.Array) -> bool:
    """Whether no value of ``values`` (a string array) begins or ends with a blank, a control
    character or a non-ASCII byte: anything the query's ``trim`` might take off."""
    found = _bounds(values)
    if found is None:
        return True
    starts, ends, data = found
    filled = ends > starts
    first, last = data[starts[filled]], data[ends[filled] - 1]
    return bool(
        ((first >= _FIRST_SAFE) & (first <= _LAST_SAFE) & (last >= _FIRST_SAFE) & (last <= _LAST_SAFE)).all()
    )
