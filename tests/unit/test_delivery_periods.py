"""Delivery periods: what a schedule sent on a local date covers, in the customer's own days."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerate.domain.delivery import (
    DEFAULT_COLUMNS,
    Cadence,
    DeliveryRuleError,
    covered_period,
    is_due,
    parse_columns,
    send_time,
    weekday_number,
)

DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(st.sampled_from(list(Cadence)), st.integers(0, 6), DATES, st.integers(1, 120))
def test_the_periods_of_successive_due_days_tile_time_without_gaps_or_overlap(
    cadence: Cadence, weekday: int, start: date, days: int
) -> None:
    due = [d for d in (start + timedelta(n) for n in range(days)) if is_due(cadence, weekday, d)]
    periods = [covered_period(cadence, d) for d in due]
    for earlier, later in pairwise(periods):
        assert earlier.end == later.first
    for sent_on, period in zip(due, periods, strict=True):
        assert period.first < period.end <= sent_on  # only days that are over


def test_daily_weekly_and_monthly_cover_the_previous_day_week_and_month() -> None:
    assert covered_period(Cadence.daily, date(2026, 3, 1)).label == "2026-02-28"
    week = covered_period(Cadence.weekly, date(2026, 11, 25))  # a Wednesday
    assert (week.first, week.end) == (date(2026, 11, 16), date(2026, 11, 23))
    assert covered_period(Cadence.monthly, date(2026, 1, 1)).label == "2025-12"
    assert is_due(Cadence.weekly, weekday_number("Wednesday"), date(2026, 11, 25))
    assert not is_due(Cadence.monthly, None, date(2026, 11, 2))


def test_a_local_day_of_a_clock_change_has_its_true_length() -> None:
    autumn = covered_period(Cadence.daily, date(2026, 10, 26)).instants("Europe/Berlin")  # 25 h on 10-25
    spring = covered_period(Cadence.daily, date(2026, 3, 30)).instants("Europe/Berlin")  # 23 h on 03-29
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[0].isoformat() == "2026-10-24T22:00:00+00:00"


def test_column_templates_and_settings_are_checked() -> None:
    columns = parse_columns("source_id:Call ID, connect_time ,amount:Charge")
    assert [(c.name, c.header) for c in columns] == [
        ("source_id", "Call ID"),
        ("connect_time", "connect_time"),
        ("amount", "Charge"),
    ]
    assert parse_columns(None) == parse_columns(",".join(DEFAULT_COLUMNS))
    for bad in ("cost", "vendor", "amount,amount"):
        with pytest.raises(DeliveryRuleError):
            parse_columns(bad)
    assert send_time("6:05") == "06:05"
    with pytest.raises(DeliveryRuleError):
        send_time("6pm")
