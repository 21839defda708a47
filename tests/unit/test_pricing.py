from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from rerate.domain.money import from_nanos, to_nanos
from rerate.domain.pricing import PriceRows, ghost_usage, price


def rows(**overrides: int) -> PriceRows:
    base = {
        "first_interval": 60,
        "next_interval": 60,
        "free_seconds": 0,
        "grace_period": 0,
        "first_price": to_nanos(Decimal("0.01")),
        "next_price": to_nanos(Decimal("0.01")),
        "connect_fee": 0,
        "surcharge": 0,
        "rate_unit": 60,
        "decimals": 5,
    }
    base.update(overrides)
    return PriceRows.build(**{k: np.array([v], dtype=np.int64) for k, v in base.items()})


def one(table: PriceRows, usage: int, ghost: int = 0) -> tuple[int, Decimal]:
    billed, amount, fits = price(table, np.array([0]), np.array([usage]), ghost_percent_scaled=ghost)
    assert fits.all()
    return int(billed[0]), from_nanos(int(amount[0]))


def test_interval_rounding_bills_whole_intervals() -> None:
    assert one(rows(), 61) == (120, Decimal("0.02"))
    assert one(rows(first_interval=30, next_interval=6), 31) == (36, Decimal("0.006"))


def test_zero_length_call_is_free_even_with_connect_fee() -> None:
    assert one(rows(connect_fee=to_nanos(Decimal("0.5"))), 0) == (0, Decimal(0))


def test_grace_period_waives_everything() -> None:
    assert one(rows(grace_period=5, connect_fee=to_nanos(Decimal("0.5"))), 5) == (0, Decimal(0))
    assert one(rows(grace_period=5), 6)[0] == 60


def test_free_seconds_that_cover_the_call_leave_only_the_connect_fee() -> None:
    assert one(rows(free_seconds=30, connect_fee=to_nanos(Decimal("0.1"))), 30) == (0, Decimal("0.1"))


def test_surcharge_is_applied_before_the_single_rounding() -> None:
    # 1 s at 0.00001/min = 0.000000166..; +50 % = 0.00000025 -> rounds half up to 0.00000 at 5 places
    table = rows(first_interval=1, next_interval=1, first_price=10_000, next_price=10_000, surcharge=500_000)
    assert one(table, 1)[1] == Decimal("0.00000")
    # 30 s at 0.00001/min = 0.000005; +0 % -> tie, rounds up to 0.00001
    plain = rows(first_interval=1, next_interval=1, first_price=10_000, next_price=10_000)
    assert one(plain, 30)[1] == Decimal("0.00001")


def test_ghost_time_is_computed_from_the_original_usage() -> None:
    usage = np.array([100, 0, 7])
    once = ghost_usage(usage, 100_000)  # +10 %
    assert once.tolist() == [110, 0, 8]
    assert ghost_usage(usage, 100_000).tolist() == once.tolist()


def test_amounts_beyond_int64_fast_path_stay_exact() -> None:
    huge = rows(first_price=to_nanos(Decimal("900000000")), next_price=to_nanos(Decimal("900000000")))
    billed, amount = one(huge, 600)
    assert billed == 600
    assert amount == Decimal("9000000000")


def test_amount_too_large_to_store_is_flagged_not_wrapped() -> None:
    huge = rows(first_price=to_nanos(Decimal("900000000")), next_price=to_nanos(Decimal("900000000")))
    _, _, fits = price(huge, np.array([0]), np.array([6000]))
    assert not fits[0]


@pytest.mark.parametrize("decimals", [0, 2, 5, 9])
def test_tariff_decimals_decide_the_rounding(decimals: int) -> None:
    table = rows(
        first_interval=1,
        next_interval=1,
        first_price=to_nanos(Decimal("0.123456789")),
        next_price=to_nanos(Decimal("0.123456789")),
        decimals=decimals,
        surcharge=12_345,
    )
    billed, amount = one(table, 77)
    assert billed == 77
    expected = Decimal("0.123456789") * 77 / 60 * (Decimal(100) + Decimal("1.2345")) / 100
    assert amount == expected.quantize(Decimal(1).scaleb(-decimals), rounding="ROUND_HALF_UP")
