from __future__ import annotations

from decimal import Decimal

import pytest

from rerate.domain.money import (
    MoneyError,
    format_money,
    from_nanos,
    parse_decimal,
    percent_to_scaled,
    round_half_up,
    to_nanos,
)


def test_nanos_round_trip_is_exact() -> None:
    for text in ["0", "0.000000001", "123.456789012", "-5.5"]:
        assert from_nanos(to_nanos(Decimal(text))) == Decimal(text)


def test_more_than_nine_places_is_refused_not_rounded() -> None:
    with pytest.raises(MoneyError, match=r"^value 0\.0000000001 has more than 9 decimal places"):
        to_nanos(Decimal("0.0000000001"))  # written out, not 1E-10


@pytest.mark.parametrize("text", ["NaN", "inf", "", "1,5", "abc"])
def test_parse_decimal_refuses_non_numbers(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_decimal(text)


def test_round_half_up_rounds_ties_away_from_zero() -> None:
    assert round_half_up(Decimal("0.000005"), 5) == Decimal("0.00001")
    assert round_half_up(Decimal("0.0000049999"), 5) == Decimal("0.00000")
    assert format_money(Decimal("2.5"), 0) == "3"


def test_percent_keeps_four_places() -> None:
    assert percent_to_scaled(Decimal("2.5")) == 25_000
    with pytest.raises(MoneyError):
        percent_to_scaled(Decimal("0.00001"))
