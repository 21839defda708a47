"""The vectorized kernel equals the per-row reference on random tariffs and XDRs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerate.domain.history import History
from rerate.domain.mediation import normalize_numbers
from rerate.domain.money import from_nanos, to_nanos
from rerate.domain.prefix_index import encode_numbers
from rerate.domain.rating import (
    NUMBER_KEY,
    RatingContext,
    RatingOptions,
    TariffSpec,
    compile_book,
    rate_batch,
)
from tests.reference_rater import RefRate, RefTariff, rate_one

BASE = 1_790_000_000  # epoch seconds; effective dates are offsets from it
PRICES = st.one_of(
    st.integers(0, 10**6),
    st.integers(0, 10**10),
    st.sampled_from([10**15, 9 * 10**17]),  # prices that leave the int64 fast path
)


@st.composite
def rate_rows(draw: st.DrawFn, first_id: int) -> list[RefRate]:
    keys = draw(
        st.lists(
            st.tuples(st.text("0123", min_size=1, max_size=4), st.sampled_from([0, 100, 200, 300])),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    rows = []
    for offset, (prefix, start) in enumerate(keys):
        rows.append(
            RefRate(
                prefix=prefix,
                effective_from=BASE + start,
                first_interval=draw(st.integers(0, 60)),
                next_interval=draw(st.integers(1, 60)),
                first_price=from_nanos(draw(PRICES)),
                next_price=from_nanos(draw(PRICES)),
                connect_fee=from_nanos(draw(st.sampled_from([0, 0, 10**7, 123_456_789]))),
                free_seconds=draw(st.sampled_from([0, 0, 5, 60])),
                grace_period=draw(st.sampled_from([0, 0, 3, 10])),
                surcharge=Decimal(draw(st.sampled_from([0, 0, 25_000, -500_000, 1_000_000, 33_333])))
                / 10_000,
                forbidden=draw(st.booleans()) and draw(st.booleans()),
                discontinued=draw(st.booleans()) and draw(st.booleans()),
                rate_id=first_id + offset,
            )
        )
    return rows


@st.composite
def tariffs(draw: st.DrawFn, first_id: int) -> RefTariff:
    return RefTariff(
        currency=draw(st.sampled_from(["EUR", "USD"])),
        decimals=draw(st.sampled_from([0, 2, 5, 9])),
        rate_unit=draw(st.sampled_from([60, 60, 1])),
        rates=tuple(draw(rate_rows(first_id))),
    )


NUMBERS = st.one_of(
    st.text("0123", min_size=1, max_size=8),
    st.text("0123", min_size=1, max_size=8).map(lambda s: "+" + s),
    st.text("0123", min_size=1, max_size=8).map(lambda s: "00" + s),
    st.sampled_from(["", "abc", "+", "1-2 3"]),
)
XDRS = st.lists(
    st.tuples(
        NUMBERS,
        st.integers(-10, 400),  # connect time offset
        st.one_of(st.none(), st.integers(0, 5000)),  # usage, None = bad value
        st.booleans(),  # account known
        st.booleans(),  # vendor known
    ),
    min_size=1,
    max_size=60,
)


def _rate_table(tariff_id: int, tariff: RefTariff) -> dict[str, list[object]]:
    return {
        "rate_id": [r.rate_id for r in tariff.rates],
        "tariff_id": [tariff_id] * len(tariff.rates),
        "prefix": [r.prefix for r in tariff.rates],
        "effective_from": [r.effective_from for r in tariff.rates],
        "first_interval": [r.first_interval for r in tariff.rates],
        "next_interval": [r.next_interval for r in tariff.rates],
        "first_price": [to_nanos(r.first_price) for r in tariff.rates],
        "next_price": [to_nanos(r.next_price) for r in tariff.rates],
        "connect_fee": [to_nanos(r.connect_fee) for r in tariff.rates],
        "free_seconds": [r.free_seconds for r in tariff.rates],
        "grace_period": [r.grace_period for r in tariff.rates],
        "post_call_surcharge": [int(r.surcharge * 10_000) for r in tariff.rates],
        "forbidden": [r.forbidden for r in tariff.rates],
        "discontinued": [r.discontinued for r in tariff.rates],
    }


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    customer_tariff=tariffs(first_id=1),
    vendor_tariff=tariffs(first_id=1000),
    xdrs=XDRS,
    ghost=st.sampled_from([Decimal(0), Decimal(10), Decimal("33.3333")]),
)
def test_kernel_equals_reference(
    customer_tariff: RefTariff, vendor_tariff: RefTariff, xdrs: list[tuple], ghost: Decimal
) -> None:
    customer_rows = _rate_table(1, customer_tariff)
    vendor_rows = _rate_table(2, vendor_tariff)
    rates = pa.table({k: customer_rows[k] + vendor_rows[k] for k in customer_rows})
    book = compile_book(
        [
            TariffSpec(1, customer_tariff.currency, customer_tariff.decimals, customer_tariff.rate_unit),
            TariffSpec(2, vendor_tariff.currency, vendor_tariff.decimals, vendor_tariff.rate_unit),
        ],
        rates,
    )
    context = RatingContext(
        book=book,
        account_tariffs=History.empty(),
        customer_tariffs=History.build([7], [0], [1]),
        vendor_tariffs=History.build([3], [0], [2]),
    )
    cld = [x[0] for x in xdrs]
    batch = pa.record_batch(
        {
            "connect_time": pa.array(
                [datetime.fromtimestamp(BASE + x[1], UTC) for x in xdrs], pa.timestamp("us", tz="UTC")
            ),
            "duration": pa.array([x[2] for x in xdrs], pa.int64()),
            "number": normalize_numbers(pa.array(cld, pa.string())),
            "account_id": pa.array([5 if x[3] else None for x in xdrs], pa.int64()),
            "customer_id": pa.array([7 if x[3] else None for x in xdrs], pa.int64()),
            "vendor_id": pa.array([3 if x[4] else None for x in xdrs], pa.int64()),
        }
    )
    options = RatingOptions(ghost_percent_scaled=int(ghost * 10_000))
    result = rate_batch(batch, context, options).to_pylist()
    # The numbers' keys computed beforehand (as ingest's mediation hands them over) price the same.
    keyed = batch.append_column(NUMBER_KEY, pa.array(encode_numbers(batch.column("number"))))
    assert rate_batch(keyed, context, options).to_pylist() == result
    for got, (number, offset, usage, account_known, vendor_known) in zip(result, xdrs, strict=True):
        when = BASE + offset
        for side, tariff, known, unknown, prefix in (
            ("", customer_tariff, account_known, "unknown_account", ""),
            ("vendor_", vendor_tariff, vendor_known, "unknown_vendor", "vendor_"),
        ):
            expected = rate_one(tariff, number, when, usage, known, unknown, ghost)
            amount_column = "amount" if side == "" else "cost"
            assert got[f"{side}status"] == expected.status, (side, number, offset, usage)
            assert got[f"{side}reason"] == expected.reason, (side, number, offset, usage)
            if expected.status == "rated":
                assert got[f"{prefix}prefix"] == expected.prefix
                assert got[f"{side}billed"] == expected.billed
                assert got[amount_column] == expected.amount, (side, number, usage, expected)
            else:
                assert got[f"{side}billed"] is None
                assert got[amount_column] is None


@settings(max_examples=50, deadline=None)
@given(tariff=tariffs(first_id=1), xdrs=XDRS, seed=st.integers(0, 2**32 - 1))
def test_results_do_not_depend_on_row_order(tariff: RefTariff, xdrs: list[tuple], seed: int) -> None:
    book = compile_book(
        [TariffSpec(1, tariff.currency, tariff.decimals, tariff.rate_unit)], pa.table(_rate_table(1, tariff))
    )
    context = RatingContext(book, History.empty(), History.build([7], [0], [1]), History.build([3], [0], [1]))
    batch = pa.record_batch(
        {
            "connect_time": pa.array(
                [datetime.fromtimestamp(BASE + x[1], UTC) for x in xdrs], pa.timestamp("us", tz="UTC")
            ),
            "duration": pa.array([x[2] for x in xdrs], pa.int64()),
            "number": normalize_numbers(pa.array([x[0] for x in xdrs], pa.string())),
            "account_id": pa.array([5] * len(xdrs), pa.int64()),
            "customer_id": pa.array([7] * len(xdrs), pa.int64()),
            "vendor_id": pa.array([3] * len(xdrs), pa.int64()),
        }
    )
    order = np.random.default_rng(seed).permutation(len(xdrs))
    straight = rate_batch(batch, context).to_pylist()
    shuffled = rate_batch(batch.take(pa.array(order)), context).to_pylist()
    assert [straight[i] for i in order] == shuffled
