"""Batches of any sizes become parts of the size asked, in order, with no row lost."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from rerate.ledger.reader import in_parts


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=12), st.integers(min_value=1, max_value=25))
def test_parts_have_the_size_asked_and_keep_every_row_in_order(sizes: list[int], rows: int) -> None:
    start = 0
    batches = []
    for size in sizes:
        batches.append(pa.record_batch({"n": pa.array(range(start, start + size), pa.int64())}))
        start += size
    parts = list(in_parts(batches, rows))
    assert [v for part in parts for v in part.column("n").to_pylist()] == list(range(start))
    assert all(part.num_rows == rows for part in parts[:-1])
    assert all(0 < part.num_rows <= rows for part in parts[-1:])
