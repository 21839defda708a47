"""Rating kernel throughput against two baselines, on the same generated data.

* the kernel (``rate_batch``) on both sides, then on the customer side alone;
* the same rating written as plain DuckDB SQL: candidate prefixes of every
  number equi-joined to the rate history, latest version, longest prefix;
* a per-row Python rater walking a prefix trie (what a per-event rater does).

Tariffs have ``--prefixes`` prefixes and ``--dates`` effective dates.  The
baselines run on a sample and their results are checked against the kernel.

    python bench/bench_kernel.py --xdrs 5000000
"""

from __future__ import annotations

import argparse
import bisect
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rerate.domain.history import History
from rerate.domain.rating import (
    RATE_COLUMNS,
    RatingContext,
    RatingOptions,
    Side,
    TariffSpec,
    compile_book,
    rate_batch,
)

from common import rate, timed

START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
DAY = 86_400


def make_rates(
    rng: np.random.Generator, tariff_id: int, prefixes: np.ndarray, dates: int, first_id: int
) -> pa.Table:
    parts = []
    rate_id = first_id
    for version in range(dates):
        chosen = prefixes if version == 0 else rng.choice(prefixes, len(prefixes) // 5, replace=False)
        n = len(chosen)
        price = rng.integers(100, 50_000, n) * 10_000  # nano-units: 0.000001 .. 0.5 per minute
        interval = rng.choice([1, 6, 60], n)
        parts.append(
            {
                "rate_id": np.arange(rate_id, rate_id + n),
                "tariff_id": np.full(n, tariff_id),
                "prefix": chosen,
                "effective_from": np.full(n, START + version * 7 * DAY),
                "first_interval": interval,
                "next_interval": interval,
                "first_price": price,
                "next_price": price,
                "connect_fee": np.where(rng.random(n) < 0.1, 10_000_000, 0),
                "free_seconds": np.zeros(n, dtype=np.int64),
                "grace_period": np.where(rng.random(n) < 0.1, 3, 0),
                "post_call_surcharge": np.zeros(n, dtype=np.int64),
                "forbidden": rng.random(n) < 0.002,
                "discontinued": (rng.random(n) < 0.01) & (version > 0),
            }
        )
        rate_id += n
    return pa.table({k: np.concatenate([p[k] for p in parts]) for k in RATE_COLUMNS})


def make_xdrs(rng: np.random.Generator, prefixes: np.ndarray, n: int, dates: int) -> pa.RecordBatch:
    heads = pa.chunked_array([pa.array(rng.choice(prefixes, n).tolist(), pa.string())]).combine_chunks()
    numbers = pc.binary_join_element_wise(
        heads, pc.cast(pa.array(rng.integers(10**5, 10**7, n)), pa.string()), ""
    )
    seconds = START + rng.integers(0, dates * 7 * DAY, n)
    return pa.record_batch(
        {
            "connect_time": pa.array(seconds * 1_000_000, pa.timestamp("us", tz="UTC")),
            "duration": pa.array(rng.integers(0, 900, n)),
            "number": numbers,
            "account_id": pa.array(np.ones(n, dtype=np.int64)),
            "customer_id": pa.array(np.ones(n, dtype=np.int64)),
            "vendor_id": pa.array(np.ones(n, dtype=np.int64)),
        }
    )


DUCKDB_SQL = """
WITH candidates AS (
    SELECT x.i, x.t, x.duration, left(x.number, k) AS prefix
    FROM xdrs x, range(1, least(length(x.number), 18) + 1) AS r(k)
),
versions AS (
    SELECT c.i, c.duration, r.*, row_number() OVER (
        PARTITION BY c.i, r.prefix ORDER BY r.effective_from DESC) AS newest
    FROM candidates c JOIN rates r ON r.prefix = c.prefix AND r.effective_from <= c.t
),
winner AS (
    SELECT *, row_number() OVER (PARTITION BY i ORDER BY length(prefix) DESC) AS longest
    FROM versions WHERE newest = 1 AND NOT discontinued
),
billed AS (
    SELECT i, rate_id, forbidden, first_interval, next_interval, first_price, next_price, connect_fee,
           post_call_surcharge,
           CASE WHEN duration <= grace_period THEN 0
                WHEN greatest(duration - free_seconds, 0) = 0 THEN 0
                ELSE first_interval + ceil(greatest(duration - free_seconds - first_interval, 0)
                                           / next_interval)::BIGINT * next_interval END AS billed,
           duration <= grace_period AS in_grace
    FROM winner WHERE longest = 1
)
SELECT i, rate_id, billed,
       CASE WHEN forbidden THEN NULL WHEN in_grace THEN 0::DECIMAL(38, 5) ELSE
           -- exact: nano-units x 60 x 10^6, rounded half up once to 5 decimals
           (((connect_fee::HUGEINT * 60 + first_price::HUGEINT * least(billed, first_interval)
              + next_price::HUGEINT * greatest(billed - first_interval, 0))
             * (1000000 + post_call_surcharge) + 300000000000) // 600000000000)::DECIMAL(38, 0)
           * 0.00001::DECIMAL(18, 5) END AS amount
FROM billed ORDER BY i
"""


def duckdb_rate(rates: pa.Table, sample: pa.RecordBatch) -> list[tuple[int, int, object]]:
    con = duckdb.connect()
    con.register("rates_raw", rates)
    con.execute("CREATE TABLE rates AS SELECT * FROM rates_raw WHERE tariff_id = 1")
    xdrs = pa.table(
        {
            "i": pa.array(np.arange(sample.num_rows)),
            "t": pc.divide(sample.column("connect_time").cast(pa.int64()), 1_000_000),
            "duration": sample.column("duration"),
            "number": sample.column("number"),
        }
    )
    con.register("xdrs", xdrs)
    return [(int(r[0]), int(r[1]), r[3]) for r in con.execute(DUCKDB_SQL).fetchall()]


class Trie:
    """Digits -> node; each node keeps its prefix's rate versions sorted by time."""

    def __init__(self) -> None:
        self.children: dict[str, Trie] = {}
        self.starts: list[int] = []
        self.rows: list[tuple] = []


def build_trie(rates: pa.Table) -> Trie:
    root = Trie()
    for row in sorted(
        zip(*(rates.column(c).to_pylist() for c in rates.column_names), strict=True), key=lambda r: r[3]
    ):
        if row[1] != 1:
            continue
        node = root
        for digit in row[2]:
            node = node.children.setdefault(digit, Trie())
        node.starts.append(row[3])
        node.rows.append(row)
    return root


def python_rate(root: Trie, sample: pa.RecordBatch) -> list[tuple[int, int, Decimal | None]]:
    """Rate one XDR at a time: trie walk, version by bisect, exact integer pricing."""
    out: list[tuple[int, int, Decimal | None]] = []
    times = (pc.divide(sample.column("connect_time").cast(pa.int64()), 1_000_000)).to_pylist()
    for i, (number, when, duration) in enumerate(
        zip(sample.column("number").to_pylist(), times, sample.column("duration").to_pylist(), strict=True)
    ):
        node, best = root, None
        for digit in number[:18]:
            node = node.children.get(digit)  # type: ignore[assignment]
            if node is None:
                break
            k = bisect.bisect_right(node.starts, when) - 1
            if k >= 0 and not node.rows[k][13]:
                best = node.rows[k]
        if best is None:
            continue
        (rate_id, _, _, _, fi, ni, fp, np_, fee, free, grace, surcharge, forbidden, _) = best
        if forbidden:
            out.append((i, rate_id, None))
            continue
        if duration <= grace:
            out.append((i, rate_id, Decimal(0)))
            continue
        charged = max(duration - free, 0)
        billed = 0 if charged == 0 else fi + -(-max(charged - fi, 0) // ni) * ni
        # nano-units * 60 * 10**6 -> amount at 5 decimals, rounded half up once
        numerator = (fee * 60 + fp * min(billed, fi) + np_ * max(billed - fi, 0)) * (1_000_000 + surcharge)
        scaled, remainder = divmod(numerator, 60 * 10**10)
        scaled += 1 if 2 * remainder >= 60 * 10**10 else 0
        out.append((i, rate_id, Decimal(scaled).scaleb(-5)))
    return out


def agrees(kernel: pa.RecordBatch, rows: list[tuple[int, int, object]]) -> bool:
    rate_ids = kernel.column("rate_id").to_pylist()
    amounts = kernel.column("amount").to_pylist()
    return all(rate_ids[i] == r and (a is None or amounts[i] == a) for i, r, a in rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xdrs", type=int, default=5_000_000)
    parser.add_argument("--prefixes", type=int, default=50_000)
    parser.add_argument("--dates", type=int, default=12)
    parser.add_argument("--duckdb-sample", type=int, default=300_000)
    parser.add_argument("--python-sample", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    pool = np.unique(rng.integers(10**2, 10**8, args.prefixes * 3).astype(str))
    prefixes = rng.choice(pool, args.prefixes, replace=False)
    rates = pa.concat_tables(
        [make_rates(rng, 1, prefixes, args.dates, 1), make_rates(rng, 2, prefixes, args.dates, 10_000_000)]
    )
    print(
        f"tariffs: 2 x {args.prefixes:,} prefixes, {args.dates} effective dates, {rates.num_rows:,} rate rows"
    )
    book, seconds = timed(lambda: compile_book([TariffSpec(1, "USD"), TariffSpec(2, "USD")], rates))
    print(f"compile: {seconds:.2f} s (once per tariff version; cached)")
    context = RatingContext(book, History.empty(), History.build([1], [0], [1]), History.build([1], [0], [2]))
    batch = make_xdrs(rng, prefixes, args.xdrs, args.dates)

    result, both = timed(lambda: rate_batch(batch, context), repeat=3)
    rated = pc.sum(pc.equal(result.column("status"), "rated")).as_py()
    print(
        f"kernel, both sides:     {rate(args.xdrs, both):>10}  ({args.xdrs:,} XDRs in {both:.2f} s; {rated:,} rated)"
    )
    customer_only = RatingOptions(sides=frozenset({Side.CUSTOMER}))
    _, one_side = timed(lambda: rate_batch(batch, context, customer_only), repeat=3)
    kernel_rate = args.xdrs / one_side
    print(f"kernel, customer side:  {rate(args.xdrs, one_side):>10}")

    sample = batch.slice(0, args.duckdb_sample)
    rows, seconds = timed(lambda: duckdb_rate(rates, sample), repeat=2)
    duck_rate = len(sample) / seconds
    print(
        f"DuckDB SQL join:        {rate(sample.num_rows, seconds):>10}  (sample {sample.num_rows:,})"
        f"  kernel is {kernel_rate / duck_rate:.1f}x faster (goal >= 5x)"
    )
    same = agrees(rate_batch(sample, context, customer_only), rows)
    print(f"  same rates and amounts as the kernel: {'yes' if same else 'NO'}")

    trie, seconds = timed(lambda: build_trie(rates))
    sample = batch.slice(0, args.python_sample)
    rows, seconds = timed(lambda: python_rate(trie, sample), repeat=2)
    python_speed = len(sample) / seconds
    print(
        f"Python trie per row:    {rate(sample.num_rows, seconds):>10}  (sample {sample.num_rows:,})"
        f"  kernel is {kernel_rate / python_speed:.0f}x faster (goal >= 50x)"
    )
    same = agrees(rate_batch(sample, context, customer_only), rows)
    print(f"  same rates and amounts as the kernel: {'yes' if same else 'NO'}")
    print(
        f"goal >= 3 M XDRs/s both sides: {'met' if args.xdrs / both >= 3e6 else 'NOT met'} ({rate(args.xdrs, both)})"
    )


if __name__ == "__main__":
    main()
