"""The web UI's times and money: readable, and exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rerate.entrypoints.api.display import shown_error, shown_money, shown_time


def test_times_are_shown_in_utc_to_the_second() -> None:
    assert shown_time("2026-11-30T14:05:09.123456+00:00") == "2026-11-30 14:05:09 UTC"
    assert shown_time(datetime(2026, 11, 30, 15, 5, 9, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-11-30 14:05:09 UTC"
    )
    assert shown_time(datetime(2026, 11, 30, 14, 5, 9, 999_999)) == "2026-11-30 14:05:09 UTC"  # stored UTC
    assert shown_time(None) == shown_time("") == ""
    assert shown_time("soon") == "soon"


def test_money_loses_its_storage_zeros_and_no_digit() -> None:
    assert shown_money(Decimal("12.345670000")) == "12.34567"
    assert shown_money("3.000000000") == "3.00"
    assert shown_money(Decimal("-0.500000000")) == "-0.50"
    assert shown_money(Decimal("-0E-9")) == "0.00"
    assert shown_money(Decimal("1E+3")) == "1000.00"
    assert shown_money(Decimal("0.000000001")) == "0.000000001"
    assert shown_money(None) == ""
    assert shown_money("mixed") == "mixed"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=9, min_value=-(10**12), max_value=10**12))
def test_money_shown_is_the_same_amount(amount: Decimal) -> None:
    shown = shown_money(amount)
    assert Decimal(shown) == amount
    assert len(shown.split(".")[1]) >= 2


def test_a_time_is_never_shifted_by_the_servers_zone() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    assert shown_time(now.isoformat()) == f"{now:%Y-%m-%d %H:%M:%S} UTC"


def test_errors_name_the_requests_fields_not_the_command_lines_options() -> None:
    assert shown_error(ValueError("--to 2026-10-01 must be after --from 2026-11-01")) == (
        "'to' 2026-10-01 must be after 'from' 2026-11-01"
    )
    assert shown_error("--ghost-percent must be between 0 and 100") == (
        "'ghost_percent' must be between 0 and 100"
    )
    assert shown_error("no job 7 (see 'rerate jobs list')") == "no job 7 (see 'rerate jobs list')"
    assert shown_error("a--b and ---x stay as they are") == "a--b and ---x stay as they are"


def test_a_quoted_value_is_not_taken_for_an_option() -> None:
    assert shown_error("--period '--x' must look like 2026-10") == "'period' '--x' must look like 2026-10"
