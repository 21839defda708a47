"""Price of rated XDRs, vectorized and exact (shared/RATING.md section 3).

All money is integer nano-units; surcharges are percent with 4 places.  The
amount is rounded once, half up, to the tariff's decimals:

    raw    = connect_fee + first_price * min(billed, fi) / unit
                         + next_price  * max(billed - fi, 0) / unit
    amount = round_half_up(raw * (100 + surcharge) / 100, decimals)

In nano-units with ``A = fee*unit + fp*min(b, fi) + np*max(b - fi, 0)``:
``amount * 10**decimals = round_half_up(A * M / D)`` with
``M = 10**6 + surcharge_scaled`` and ``D = 10**(15 - decimals) * unit``.  Each
rate row keeps ``M`` and ``D`` divided by their gcd, so that the common case
(no surcharge) stays far inside int64.  Rows whose bounds could overflow are
priced by the same formula in Python integers: exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rerate.domain.money import MONEY_DECIMALS, PERCENT_DECIMALS
from rerate.domain.prefix_index import BoolArray, Int64Array

_SAFE = 2**62
_PERCENT_ONE_HUNDRED = 100 * 10**PERCENT_DECIMALS  # 100 % with 4 places
_DENOMINATOR_EXPONENT = MONEY_DECIMALS + PERCENT_DECIMALS + 2  # 15


@dataclass(frozen=True)
class PriceRows:
    """Pricing columns of rate rows (one entry per row), plus derived fast-path bounds."""

    first_interval: Int64Array
    next_interval: Int64Array
    free_seconds: Int64Array
    grace_period: Int64Array
    first_price: Int64Array  # nano-units per rate_unit
    next_price: Int64Array
    connect_fee: Int64Array
    surcharge: Int64Array  # percent * 10**4
    rate_unit: Int64Array  # from the row's tariff
    decimals: Int64Array  # from the row's tariff
    multiplier: Int64Array  # M / gcd(M, D)
    divisor: Int64Array  # D / gcd(M, D)
    max_fast_billed: Int64Array  # largest billed for which A stays exact in int64
    fixed: Int64Array  # connect_fee * rate_unit, the constant part of A
    shift: Int64Array  # 10 ** (9 - decimals): tariff decimals to nano-units
    packed: Int64Array  # the hot columns side by side: one cache line per rate row

    @classmethod
    def build(
        cls,
        *,
        first_interval: Int64Array,
        next_interval: Int64Array,
        free_seconds: Int64Array,
        grace_period: Int64Array,
        first_price: Int64Array,
        next_price: Int64Array,
        connect_fee: Int64Array,
        surcharge: Int64Array,
        rate_unit: Int64Array,
        decimals: Int64Array,
        highest_price: Int64Array | None = None,
    ) -> PriceRows:
        """``highest_price``: other prices a row may be priced with (off-peak), for the int64 bounds."""
        m_full = _PERCENT_ONE_HUNDRED + surcharge.astype(np.int64)
        exponent = _DENOMINATOR_EXPONENT - decimals.astype(np.int64)
        # Decide in floating point which rows can take the int64 path at all; the
        # bounds below are guards only, so being conservative never costs exactness.
        d_estimate = np.power(10.0, exponent) * rate_unit
        fixed_estimate = connect_fee.astype(np.float64) * rate_unit
        candidate = (d_estimate < _SAFE / 4) & (m_full > 0) & (fixed_estimate < _SAFE / 4)
        d_full = np.where(candidate, np.power(10, np.where(candidate, exponent, 0)) * rate_unit, 1)
        g = np.gcd(np.where(candidate, m_full, 1), d_full)
        multiplier = np.where(candidate, m_full // g, 0)
        divisor = np.where(candidate, d_full // g, 1)
        shift = np.power(10, MONEY_DECIMALS - decimals.astype(np.int64))
        candidate &= multiplier.astype(np.float64) * divisor < _SAFE / 4
        with np.errstate(divide="ignore"):
            a_max = np.minimum(
                float(_SAFE), float(_SAFE) * divisor / (np.maximum(multiplier, 1).astype(np.float64) * shift)
            ) * (1 - 1e-9)
        fixed = np.where(candidate, connect_fee * rate_unit, 0)
        per_unit = np.maximum(np.maximum(first_price, next_price), 1)
        if highest_price is not None:
            per_unit = np.maximum(per_unit, highest_price)
        room = np.floor(a_max).astype(np.int64) - fixed
        max_fast = np.where(candidate & (room > 0), room // per_unit, -1)
        multiplier = np.where(candidate, multiplier, 0)
        divisor = np.where(candidate, divisor, 1)
        return cls(
            first_interval=first_interval,
            next_interval=next_interval,
            free_seconds=free_seconds,
            grace_period=grace_period,
            first_price=first_price,
            next_price=next_price,
            connect_fee=connect_fee,
            surcharge=surcharge,
            rate_unit=rate_unit,
            decimals=decimals,
            multiplier=multiplier,
            divisor=divisor,
            max_fast_billed=max_fast,
            fixed=fixed,
            shift=shift,
            packed=np.ascontiguousarray(
                np.stack(
                    [
                        first_interval,
                        next_interval,
                        free_seconds,
                        grace_period,
                        first_price,
                        next_price,
                        fixed,
                        multiplier,
                        divisor,
                        max_fast,
                        shift,
                    ],
                    axis=1,
                ).astype(np.int64)
            ),
        )


def ghost_usage(usage: Int64Array, ghost_percent_scaled: int) -> Int64Array:
    """Usage with ghost time (RATING.md 3.1), always from the original usage.

    ``ghost_percent_scaled`` is the percentage with 4 places (10 % -> 100000).
    """
    if ghost_percent_scaled == 0:
        return usage
    factor = _PERCENT_ONE_HUNDRED + ghost_percent_scaled
    ghosted: Int64Array = -((-usage * factor) // _PERCENT_ONE_HUNDRED)  # ceil for non-negative usage
    return ghosted


#: Rows priced together.  Small enough that numpy's temporaries are reused from
#: the allocator instead of being page-faulted in anew for every operation.
CHUNK_ROWS = 1 << 16


def price(
    rows: PriceRows,
    row: Int64Array,
    usage: Int64Array,
    *,
    ghost_percent_scaled: int = 0,
    first_price: Int64Array | None = None,
    next_price: Int64Array | None = None,
) -> tuple[Int64Array, Int64Array, BoolArray]:
    """Billed units, amount in nano-units, and which amounts fit, for ``rows[row]``.

    ``first_price``/``next_price`` may replace the row's prices per XDR (off-peak).
    An amount beyond int64 nano-units (over 9.2 billion currency units for one
    XDR) cannot be stored; it is flagged in the third result, never wrapped.
    """
    n = len(row)
    if n <= CHUNK_ROWS:
        return _price_chunk(rows, row, usage, ghost_percent_scaled, first_price, next_price)
    billed = np.empty(n, dtype=np.int64)
    amount = np.empty(n, dtype=np.int64)
    fits = np.empty(n, dtype=bool)
    for start in range(0, n, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        billed[part], amount[part], fits[part] = _price_chunk(
            rows,
            row[part],
            usage[part],
            ghost_percent_scaled,
            None if first_price is None else first_price[part],
            None if next_price is None else next_price[part],
        )
    return billed, amount, fits


def _price_chunk(
    rows: PriceRows,
    row: Int64Array,
    usage: Int64Array,
    ghost_percent_scaled: int,
    first_price: Int64Array | None,
    next_price: Int64Array | None,
) -> tuple[Int64Array, Int64Array, BoolArray]:
    d = ghost_usage(usage, ghost_percent_scaled)
    # One gather of the packed row (rows are looked up in number order, so
    # column-by-column gathers would each miss the cache).
    (fi, ni, free, grace, fp_row, np_row, fixed, mult, div, max_fast, shift) = rows.packed[row].T
    in_grace = d <= grace
    charged = np.maximum(d - free, 0)
    extra = np.maximum(charged - fi, 0)
    billed = np.where(charged == 0, 0, fi + (-(-extra // ni)) * ni)
    billed = np.where(in_grace, 0, billed)

    fp = fp_row if first_price is None else first_price
    np_ = np_row if next_price is None else next_price
    fast: BoolArray = billed <= max_fast

    head = np.minimum(billed, fi)
    with np.errstate(over="ignore"):
        a = fixed + fp * head + np_ * (billed - head)
        q, r = np.divmod(a, div)
        if (mult == 1).all():  # no surcharge anywhere: one division suffices
            scaled = q + (2 * r >= div)
        else:
            q2, r2 = np.divmod(r * mult, div)
            scaled = q * mult + q2 + (2 * r2 >= div)
    amount = np.where(in_grace, 0, scaled * shift)

    fits = np.ones(len(row), dtype=bool)
    for i in np.flatnonzero(~fast & ~in_grace):
        exact = _exact_amount(rows, int(row[i]), int(billed[i]), int(fp[i]), int(np_[i]))
        if exact < 2**63:
            amount[i] = exact
        else:
            amount[i], fits[i] = 0, False
    return billed, amount, fits


def _exact_amount(rows: PriceRows, row: int, billed: int, fp: int, np_: int) -> int:
    """The same formula in unbounded integers, for rows beyond int64's reach."""
    fi = int(rows.first_interval[row])
    unit = int(rows.rate_unit[row])
    decimals = int(rows.decimals[row])
    a = int(rows.connect_fee[row]) * unit + fp * min(billed, fi) + np_ * max(billed - fi, 0)
    m = _PERCENT_ONE_HUNDRED + int(rows.surcharge[row])
    d = 10 ** (_DENOMINATOR_EXPONENT - decimals) * unit
    q, r = divmod(a * m, d)
    scaled = q + (1 if 2 * r >= d else 0)
    return int(scaled * 10 ** (MONEY_DECIMALS - decimals))
