"""Exact conversion between int64 nano-units and Arrow ``decimal128(p, 9)`` arrays.

The ledger stores money as decimals so that every reader (DuckDB, Parquet tools,
the invoicing team's spreadsheet) sees exact values; the kernel works on int64.
The conversion builds the 128-bit two's-complement words directly, so it is
exact and costs one pass over memory.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rerate.domain.money import MONEY_DECIMALS
from rerate.domain.prefix_index import BoolArray, Int64Array

XDR_MONEY = pa.decimal128(18, MONEY_DECIMALS)
TOTAL_MONEY = pa.decimal128(38, MONEY_DECIMALS)


def nanos_to_decimal(
    nanos: Int64Array, valid: BoolArray | None = None, type_: pa.DataType = XDR_MONEY
) -> pa.Array:
    """Decimal array with scale 9 whose unscaled values are ``nanos``."""
    n = len(nanos)
    words = np.empty(2 * n, dtype=np.int64)
    words[0::2] = nanos
    words[1::2] = nanos >> 63  # sign extension into the high word
    validity = None
    null_count = 0
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
        null_count = int(n - valid.sum())
    return pa.Array.from_buffers(type_, n, [validity, pa.py_buffer(words.tobytes())], null_count=null_count)


def decimal_to_nanos(values: pa.Array | pa.ChunkedArray) -> tuple[Int64Array, BoolArray]:
    """Unscaled int64 nano-units of a scale-9 decimal array, and its validity mask."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], XDR_MONEY)
    if not pa.types.is_decimal128(values.type) or values.type.scale != MONEY_DECIMALS:
        values = values.cast(TOTAL_MONEY)
    n = len(values)
    start = 2 * values.offset
    words = np.frombuffer(values.buffers()[1], dtype=np.int64)[start : start + 2 * n]
    low = words[0::2].copy()
    high = words[1::2]
    if not np.array_equal(high, low >> 63):
        raise OverflowError("a money value exceeds int64 nano-units")
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    low[~valid] = 0
    return low, valid
