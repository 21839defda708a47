"""The rating kernel: a pure function from mediated XDRs to both sides' prices.

``rate_batch`` takes an Arrow batch of mediated XDRs and a compiled
:class:`RatingContext` and returns an Arrow batch of results, with no per-row
Python (shared/RATING.md sections 1, 3, 4 and 6; ARCHITECTURE.md "Rating
kernel").  Ingest, re-rating, re-processing, dry runs and the benchmarks all
call it, and a distributed engine could call it unchanged per batch.

Input columns: ``connect_time`` (timestamp, UTC), ``duration`` (int64; null
means a bad value), ``number`` (normalized digits; null means invalid),
``account_id``, ``customer_id``, ``vendor_id`` (int64; null means unknown).
Optional: ``number_key`` (int64), the numbers' keys as
:func:`~rerate.domain.prefix_index.encode_numbers` gives them, when mediation
has computed them already.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rerate.domain.arrow_money import XDR_MONEY, nanos_to_decimal
from rerate.domain.history import History
from rerate.domain.offpeak import Schedule
from rerate.domain.prefix_index import BoolArray, Int64Array, TimedPrefixIndex, encode_numbers
from rerate.domain.pricing import PriceRows, price
from rerate.domain.statuses import CUSTOMER_PRECEDENCE, VENDOR_PRECEDENCE, Reason, Status


class Side(StrEnum):
    CUSTOMER = "customer"
    VENDOR = "vendor"


@dataclass(frozen=True)
class TariffBook:
    """Every tariff's rate rows in one columnar table, with a prefix index per tariff.

    Global row ``r`` is priced by ``rows``; ``rate_ids[r]`` is its catalog id.
    """

    tariff_ids: Int64Array
    currencies: tuple[str, ...]
    indexes: tuple[TimedPrefixIndex, ...]
    rows: PriceRows
    rate_ids: Int64Array
    prefixes: pa.Array
    forbidden: BoolArray
    #: Off-peak prices per rate row (nano-units; -1: the row has none) and each tariff's windows.
    off_peak_first: Int64Array = field(default_factory=lambda: np.empty(0, np.int64))
    off_peak_next: Int64Array = field(default_factory=lambda: np.empty(0, np.int64))
    schedules: tuple[Schedule | None, ...] = ()
    _position: Int64Array = field(repr=False, default_factory=lambda: np.empty(0, np.int64))

    @property
    def currency_names(self) -> pa.Array:
        return pa.array(self.currencies, pa.string())

    def __post_init__(self) -> None:
        size = int(self.tariff_ids.max()) + 2 if len(self.tariff_ids) else 1
        position = np.full(size, -1, dtype=np.int64)
        position[self.tariff_ids] = np.arange(len(self.tariff_ids))
        object.__setattr__(self, "_position", position)

    def positions(self, tariff_ids: Int64Array) -> Int64Array:
        """Dense position of each catalog tariff id; ``-1`` for unknown or ``-1``."""
        inside = (tariff_ids >= 0) & (tariff_ids < len(self._position))
        return np.where(inside, self._position[np.where(inside, tariff_ids, 0)], -1)


@dataclass(frozen=True)
class RatingContext:
    """Everything rating needs from the catalog, compiled for bulk lookups."""

    book: TariffBook
    account_tariffs: History
    customer_tariffs: History
    vendor_tariffs: History


@dataclass(frozen=True)
class RatingOptions:
    """Per-job knobs: ghost time and tariff overrides (the dummy-tariff workaround)."""

    ghost_percent_scaled: int = 0
    sides: frozenset[Side] = frozenset({Side.CUSTOMER, Side.VENDOR})
    tariff_override: Mapping[Side, int] = field(default_factory=dict)


CUSTOMER_COLUMNS = (
    "tariff_id",
    "rate_id",
    "prefix",
    "billed",
    "amount",
    "currency",
    "status",
    "reason",
)
VENDOR_COLUMNS = (
    "vendor_tariff_id",
    "vendor_rate_id",
    "vendor_prefix",
    "vendor_billed",
    "cost",
    "vendor_currency",
    "vendor_status",
    "vendor_reason",
)
_TEXT = pa.dictionary(pa.int32(), pa.string())
_SIDE_TYPES = (pa.int64(), pa.int64(), _TEXT, pa.int64(), XDR_MONEY, _TEXT, _TEXT, _TEXT)


def result_schema(sides: Sequence[Side] = (Side.CUSTOMER, Side.VENDOR)) -> pa.Schema:
    fields: list[pa.Field] = []
    for side in sides:
        names = CUSTOMER_COLUMNS if side is Side.CUSTOMER else VENDOR_COLUMNS
        fields.extend(pa.field(n, t) for n, t in zip(names, _SIDE_TYPES, strict=True))
    return pa.schema(fields)


def _int_column(batch: pa.RecordBatch, name: str) -> tuple[Int64Array, BoolArray]:
    column = batch.column(name)
    if column.null_count == 0:
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)
        return values, np.ones(len(values), dtype=bool)
    valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, valid


def _masked(values: Int64Array, valid: BoolArray) -> pa.Array:
    return pa.array(values, type=pa.int64(), mask=~valid)


_STATUS_NAMES = pa.array([Status.RATED.value, Status.FAILED.value])


@dataclass(frozen=True)
class _SideResult:
    tariff_id: Int64Array
    position: Int64Array  # dense tariff position, -1 when none
    row: Int64Array  # global rate row, -1 when none
    billed: Int64Array
    amount: Int64Array
    reason_code: Int64Array  # index into the side's precedence, -1 when rated

    def restore(self, order: Int64Array) -> _SideResult:
        """The same results in the batch's own order (``order`` sorted it)."""
        fields = []
        for name in self.__dataclass_fields__:
            values = getattr(self, name)
            restored = np.empty_like(values)
            restored[order] = values
            fields.append(restored)
        return _SideResult(*fields)


#: Below this many rows a batch is rated on the calling thread alone.
PARALLEL_MIN_ROWS = 1 << 17
MAX_PART_ROWS = 1 << 19
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 - one lazily created pool per process
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="rerate-kernel")
    return _POOL


def rate_batch(
    batch: pa.RecordBatch, context: RatingContext, options: RatingOptions | None = None
) -> pa.RecordBatch:
    """Price every XDR of ``batch`` on the requested sides; see the module doc.

    String results (prefix, currency, status, reason) come dictionary-encoded:
    views on the tariff book, not copies per XDR.  Large batches are split
    across the machine's cores; numpy releases the GIL in the heavy loops, and
    the result does not depend on the split.
    """
    options = options or RatingOptions()
    workers = min(os.cpu_count() or 1, batch.num_rows // PARALLEL_MIN_ROWS)
    if workers <= 1:
        return _rate_part(batch, context, options)
    # Parts of bounded size: large enough for sorted probes to pay, small enough
    # that temporaries are recycled by the allocator rather than faulted in.
    step = min(-(-batch.num_rows // workers), MAX_PART_ROWS)
    parts = [batch.slice(start, step) for start in range(0, batch.num_rows, step)]
    results = list(_pool().map(lambda part: _rate_part(part, context, options), parts))
    return pa.concat_batches(results)


#: The optional input column of the numbers' keys (see the module doc).
NUMBER_KEY = "number_key"


def _number_keys(batch: pa.RecordBatch) -> Int64Array:
    if NUMBER_KEY in batch.schema.names:
        return np.asarray(batch.column(NUMBER_KEY).to_numpy(zero_copy_only=False), dtype=np.int64)
    return encode_numbers(batch.column("number"))


def _rate_part(batch: pa.RecordBatch, context: RatingContext, options: RatingOptions) -> pa.RecordBatch:
    n = batch.num_rows
    keys = _number_keys(batch)
    when = (
        np.asarray(
            pc.fill_null(
                batch.column("connect_time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()), 0
            ).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        // 1_000_000
    )
    usage, usage_valid = _int_column(batch, "duration")
    # Everything runs in number order: binary searches over sorted probes stay
    # in cache, and rate rows (compiled in prefix order) are then gathered
    # almost sequentially.  Results are put back in the batch's order once.
    order = np.argsort(keys)
    keys, when, usage, usage_valid = keys[order], when[order], usage[order], usage_valid[order]

    arrays: list[pa.Array] = []
    sides = [s for s in (Side.CUSTOMER, Side.VENDOR) if s in options.sides]
    for side in sides:
        if side is Side.CUSTOMER:
            owner, owner_known = _int_column(batch, "account_id")
            customer, _ = _int_column(batch, "customer_id")
            owner_known = owner_known[order]
            owner = np.where(owner_known, owner[order], -1)
            tariff = context.account_tariffs.lookup(owner, when)
            by_customer = context.customer_tariffs.lookup(np.where(owner_known, customer[order], -1), when)
            tariff = np.where(tariff >= 0, tariff, by_customer)
            unknown_reason, precedence = Reason.UNKNOWN_ACCOUNT, CUSTOMER_PRECEDENCE
        else:
            owner, owner_known = _int_column(batch, "vendor_id")
            owner_known = owner_known[order]
            tariff = context.vendor_tariffs.lookup(np.where(owner_known, owner[order], -1), when)
            unknown_reason, precedence = Reason.UNKNOWN_VENDOR, VENDOR_PRECEDENCE
        if side in options.tariff_override:
            tariff = np.full(n, options.tariff_override[side], dtype=np.int64)
        position = context.book.positions(tariff)
        row = _find_rows(context.book, position, keys, when)
        result = _rate_side(
            context.book,
            tariff,
            position,
            row,
            when,
            usage,
            options.ghost_percent_scaled,
            failures={
                Reason.BAD_VALUE: ~usage_valid,
                unknown_reason: ~owner_known,
                Reason.INVALID_NUMBER: keys < 0,
            },
            precedence=precedence,
        )
        arrays.extend(_side_arrays(context.book, result.restore(order), precedence))
    return pa.RecordBatch.from_arrays(arrays, schema=result_schema(sides))


def _find_rows(book: TariffBook, position: Int64Array, keys: Int64Array, when: Int64Array) -> Int64Array:
    """Global rate row of each XDR's longest prefix in force, or -1."""
    row = np.full(len(keys), -1, dtype=np.int64)
    searchable = (position >= 0) & (keys >= 0)
    present = np.flatnonzero(np.bincount(position[searchable], minlength=len(book.indexes)))
    if len(present) == 1 and searchable.all():
        return book.indexes[int(present[0])].lookup(when, keys)
    for p in present:
        selected = searchable & (position == p)
        row[selected] = book.indexes[int(p)].lookup(when[selected], keys[selected])
    return row


def _off_peak_prices(
    book: TariffBook, position: Int64Array, row: Int64Array, when: Int64Array, priceable: BoolArray
) -> tuple[Int64Array | None, Int64Array | None]:
    """Per-XDR prices where off-peak applies (RATING.md 3.4 and 5), or None when nothing is off-peak."""
    if not any(book.schedules):
        return None, None
    safe_row = np.maximum(row, 0)
    off = np.zeros(len(row), dtype=bool)
    for index, schedule in enumerate(book.schedules):
        if schedule is None:
            continue
        mine = np.flatnonzero(priceable & (position == index) & (book.off_peak_first[safe_row] >= 0))
        if len(mine):
            off[mine] = schedule.contains(when[mine])
    if not off.any():
        return None, None
    first = np.where(off, book.off_peak_first[safe_row], book.rows.first_price[safe_row])
    following = np.where(off, book.off_peak_next[safe_row], book.rows.next_price[safe_row])
    return first, following


def _rate_side(
    book: TariffBook,
    tariff_id: Int64Array,
    position: Int64Array,
    row: Int64Array,
    when: Int64Array,
    usage: Int64Array,
    ghost_percent_scaled: int,
    *,
    failures: dict[Reason, BoolArray],
    precedence: Sequence[Reason],
) -> _SideResult:
    n = len(tariff_id)
    found = row >= 0
    failures = dict(failures)
    failures[Reason.NO_TARIFF] = position < 0
    failures[Reason.NO_RATE] = ~found
    # A book with no rate rows (a new home, no tariff yet) finds nothing and indexes nothing.
    forbidden = book.forbidden[np.maximum(row, 0)] if len(book.forbidden) else np.zeros(n, dtype=bool)
    failures[Reason.FORBIDDEN_DESTINATION] = found & forbidden

    billed = np.zeros(n, dtype=np.int64)
    amount = np.zeros(n, dtype=np.int64)
    priceable = ~np.logical_or.reduce([failures[r] for r in precedence])
    first_price, next_price = _off_peak_prices(book, position, row, when, priceable)
    if priceable.all():
        billed, amount, fits = price(
            book.rows,
            row,
            usage,
            ghost_percent_scaled=ghost_percent_scaled,
            first_price=first_price,
            next_price=next_price,
        )
        failures[Reason.BAD_VALUE] = failures[Reason.BAD_VALUE] | ~fits
    elif priceable.any():
        idx = np.flatnonzero(priceable)
        billed[idx], amount[idx], fits = price(
            book.rows,
            row[idx],
            usage[idx],
            ghost_percent_scaled=ghost_percent_scaled,
            first_price=None if first_price is None else first_price[idx],
            next_price=None if next_price is None else next_price[idx],
        )
        overflow = np.zeros(n, dtype=bool)
        overflow[idx] = ~fits
        failures[Reason.BAD_VALUE] = failures[Reason.BAD_VALUE] | overflow

    reason_code = np.full(n, -1, dtype=np.int64)
    for code in range(len(precedence) - 1, -1, -1):
        reason_code[failures[precedence[code]]] = code
    return _SideResult(tariff_id, position, row, billed, amount, reason_code)


def _side_arrays(book: TariffBook, result: _SideResult, precedence: Sequence[Reason]) -> list[pa.Array]:
    rated = result.reason_code < 0
    found = result.row >= 0
    has_tariff = result.position >= 0
    safe_row = np.maximum(result.row, 0)
    reason_names = pa.array([r.value for r in precedence])
    return [
        _masked(result.tariff_id, has_tariff),
        _masked(book.rate_ids[safe_row] if len(book.rate_ids) else result.row, found),
        _dictionary(safe_row, ~found, book.prefixes),
        _masked(result.billed, rated),
        nanos_to_decimal(result.amount, rated),
        _dictionary(np.maximum(result.position, 0), ~has_tariff, book.currency_names),
        _dictionary((~rated).astype(np.int32), None, _STATUS_NAMES),
        _dictionary(np.maximum(result.reason_code, 0), rated, reason_names),
    ]


def _dictionary(indices: Int64Array, missing: BoolArray | None, names: pa.Array) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32), mask=missing), names)


@dataclass(frozen=True)
class TariffSpec:
    """Tariff-level settings the kernel needs."""

    tariff_id: int
    currency: str
    decimals: int = 5
    rate_unit: int = 60
    #: Off-peak windows in the tariff's time zone (None: no off-peak).
    off_peak: Schedule | None = None


RATE_COLUMNS = {
    "rate_id": pa.int64(),
    "tariff_id": pa.int64(),
    "prefix": pa.string(),
    "effective_from": pa.int64(),  # epoch seconds
    "first_interval": pa.int64(),
    "next_interval": pa.int64(),
    "first_price": pa.int64(),  # nano-units
    "next_price": pa.int64(),
    "connect_fee": pa.int64(),
    "free_seconds": pa.int64(),
    "grace_period": pa.int64(),
    "post_call_surcharge": pa.int64(),  # percent * 10**4
    "forbidden": pa.bool_(),
    "discontinued": pa.bool_(),
    "off_peak_first_price": pa.int64(),  # nano-units; null: none
    "off_peak_next_price": pa.int64(),
}


def compile_book(tariffs: Sequence[TariffSpec], rates: pa.Table) -> TariffBook:
    """Compile rate rows (:data:`RATE_COLUMNS`; off-peak prices optional) into a :class:`TariffBook`."""
    for optional in ("off_peak_first_price", "off_peak_next_price"):
        if optional not in rates.column_names:
            rates = rates.append_column(optional, pa.nulls(rates.num_rows, pa.int64()))
    rates = rates.select(list(RATE_COLUMNS)).cast(pa.schema(RATE_COLUMNS))
    # Global rows in (tariff, prefix, time) order: XDRs are priced in number
    # order, so their rate rows are then gathered almost sequentially.
    rates = rates.sort_by(
        [("tariff_id", "ascending"), ("prefix", "ascending"), ("effective_from", "ascending")]
    )
    col = {
        name: (
            pc.fill_null(rates.column(name), -1) if name.startswith("off_peak") else rates.column(name)
        ).to_numpy()
        for name in RATE_COLUMNS
        if name != "prefix"
    }
    # Off-peak needs a first price; a missing next price is the first one (as for peak prices).
    off_first = col["off_peak_first_price"].astype(np.int64)
    off_next = np.where(
        off_first < 0, -1, np.where(col["off_peak_next_price"] < 0, off_first, col["off_peak_next_price"])
    )
    prefixes = rates.column("prefix").combine_chunks() if rates.num_rows else pa.array([], pa.string())
    prefix_list = prefixes.to_pylist()
    spec_by_id = {t.tariff_id: t for t in tariffs}
    unknown = set(np.unique(col["tariff_id"]).tolist()) - set(spec_by_id)
    if unknown:
        raise ValueError(f"rate rows reference unknown tariffs: {sorted(unknown)}")
    tariff_rows = col["tariff_id"]
    indexes = []
    for spec in tariffs:
        mine = np.flatnonzero(tariff_rows == spec.tariff_id)
        indexes.append(
            TimedPrefixIndex.build(
                [prefix_list[i] for i in mine],
                col["effective_from"][mine].tolist(),
                col["discontinued"][mine].tolist(),
                mine.tolist(),
            )
        )
    unit = np.array([spec_by_id[int(t)].rate_unit for t in tariff_rows], dtype=np.int64)
    decimals = np.array([spec_by_id[int(t)].decimals for t in tariff_rows], dtype=np.int64)
    rows = PriceRows.build(
        first_interval=col["first_interval"],
        next_interval=col["next_interval"],
        free_seconds=col["free_seconds"],
        grace_period=col["grace_period"],
        first_price=col["first_price"],
        next_price=col["next_price"],
        connect_fee=col["connect_fee"],
        surcharge=col["post_call_surcharge"],
        rate_unit=unit,
        decimals=decimals,
        highest_price=np.maximum(off_first, off_next),
    )
    return TariffBook(
        tariff_ids=np.array([t.tariff_id for t in tariffs], dtype=np.int64),
        currencies=tuple(t.currency for t in tariffs),
        indexes=tuple(indexes),
        rows=rows,
        rate_ids=col["rate_id"].astype(np.int64),
        prefixes=prefixes,
        forbidden=col["forbidden"].astype(bool),
        off_peak_first=off_first,
        off_peak_next=off_next.astype(np.int64),
        schedules=tuple(t.off_peak for t in tariffs),
    )
