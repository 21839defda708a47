"""Off-peak windows and prices (RATING.md section 5) against a per-row reading of the rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerate.domain.history import History
from rerate.domain.mediation import normalize_numbers
from rerate.domain.money import from_nanos
from rerate.domain.offpeak import DAY, OffPeakError, Schedule, Window, parse_window
from rerate.domain.rating import RatingContext, TariffSpec, compile_book, rate_batch
from tests.reference_rater import RefTariff, is_off_peak, rate_one
from tests.unit.test_kernel_properties import PRICES, _rate_table, tariffs

#: Two weeks around the end of European summer time 2026 (25 October), in steps of odd seconds.
START = int(datetime(2026, 10, 19, tzinfo=UTC).timestamp())
ZONES = st.sampled_from(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
WINDOWS = st.lists(
    st.tuples(
        st.frozensets(st.integers(0, 6), min_size=1),
        st.integers(0, 47).map(lambda h: h * 1800),
        st.integers(1, 48).map(lambda h: h * 1800),
    ).filter(lambda w: w[1] != w[2]),
    max_size=3,
)


def _schedule(zone: str, windows: list[tuple[frozenset[int], int, int]]) -> Schedule:
    return Schedule.compile(zone, [Window(tuple(sorted(d)), s, e) for d, s, e in windows])


@settings(max_examples=200, deadline=None)
@given(zone=ZONES, windows=WINDOWS, offsets=st.lists(st.integers(0, 14 * DAY), min_size=1, max_size=50))
def test_schedule_equals_the_reading_of_the_rule(
    zone: str, windows: list[tuple[frozenset[int], int, int]], offsets: list[int]
) -> None:
    tariff = RefTariff("EUR", 5, 60, (), zone, tuple(windows))
    when = np.array([START + o for o in offsets], dtype=np.int64)
    got = _schedule(zone, windows).contains(when).tolist()
    assert got == [is_off_peak(tariff, int(t)) for t in when]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tariff=tariffs(first_id=1),
    zone=ZONES,
    windows=WINDOWS,
    off_peak=st.lists(st.tuples(st.one_of(st.none(), PRICES), st.one_of(st.none(), PRICES)), min_size=12),
    xdrs=st.lists(
        st.tuples(st.text("0123", min_size=1, max_size=8), st.integers(0, 14 * DAY), st.integers(0, 3000)),
        min_size=1,
        max_size=40,
    ),
)
def test_kernel_prices_off_peak_xdrs_with_off_peak_prices(
    tariff: RefTariff,
    zone: str,
    windows: list[tuple[frozenset[int], int, int]],
    off_peak: list[tuple[int | None, int | None]],
    xdrs: list[tuple[str, int, int]],
) -> None:
    rates = tuple(
        replace(
            r,
            effective_from=START - 1000 + (r.effective_from % 1000),
            off_peak_first_price=None if first is None else from_nanos(first),
            off_peak_next_price=None if first is None or following is None else from_nanos(following),
        )
        for r, (first, following) in zip(tariff.rates, off_peak, strict=False)
    )
    tariff = replace(tariff, rates=rates, timezone=zone, windows=tuple(windows))
    table = _rate_table(1, tariff)
    table["off_peak_first_price"] = [
        None if r.off_peak_first_price is None else int(r.off_peak_first_price.scaleb(9)) for r in rates
    ]
    table["off_peak_next_price"] = [
        None if r.off_peak_next_price is None else int(r.off_peak_next_price.scaleb(9)) for r in rates
    ]
    spec = TariffSpec(1, tariff.currency, tariff.decimals, tariff.rate_unit, _schedule(zone, windows))
    context = RatingContext(
        book=compile_book([spec], pa.table(table)),
        account_tariffs=History.empty(),
        customer_tariffs=History.build([7], [0], [1]),
        vendor_tariffs=History.empty(),
    )
    batch = pa.record_batch(
        {
            "connect_time": pa.array(
                [datetime.fromtimestamp(START + x[1], UTC) for x in xdrs], pa.timestamp("us", tz="UTC")
            ),
            "duration": pa.array([x[2] for x in xdrs], pa.int64()),
            "number": normalize_numbers(pa.array([x[0] for x in xdrs], pa.string())),
            "account_id": pa.array([5] * len(xdrs), pa.int64()),
            "customer_id": pa.array([7] * len(xdrs), pa.int64()),
            "vendor_id": pa.array([None] * len(xdrs), pa.int64()),
        }
    )
    result = rate_batch(batch, context).to_pylist()
    for got, (number, offset, usage) in zip(result, xdrs, strict=True):
        expected = rate_one(tariff, number, START + offset, usage, True, "unknown_account")
        assert (got["status"], got["reason"]) == (expected.status, expected.reason)
        assert got["amount"] == expected.amount, (number, offset, usage, expected)


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    window = parse_window("fri 20:00-08:00")
    schedule = Schedule.compile("UTC", [window])
    friday = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())  # a Friday
    times = np.array(
        [friday + 19 * 3600, friday + 21 * 3600, friday + DAY + 7 * 3600, friday + DAY + 9 * 3600]
    )
    assert schedule.contains(times).tolist() == [False, True, True, False]


def test_sunday_night_wraps_into_monday_morning() -> None:
    schedule = Schedule.compile("UTC", [parse_window("sun 22:00-06:00")])
    monday = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp())
    assert schedule.contains(np.array([monday + 3600, monday + 7 * 3600])).tolist() == [True, False]


def test_windows_are_read_from_plain_words() -> None:
    assert parse_window("mon-fri 20:00-08:00").days == (0, 1, 2, 3, 4)
    assert parse_window("sat,sun") == Window((5, 6), 0, DAY)
    assert parse_window("fri-mon").days == (0, 4, 5, 6)
    assert parse_window("Saturday 00:00-24:00").describe() == "sat"
    for bad in ("someday", "mon 25:00-26:00", "mon 08:00-08:00", "mon-fri 8-20"):
        with pytest.raises(OffPeakError):
            parse_window(bad)


def test_local_time_follows_daylight_saving() -> None:
    """08:00-20:00 in London is 07:00-19:00 UTC in summer and 08:00-20:00 UTC in winter."""
    schedule = Schedule.compile("Europe/London", [parse_window("daily 08:00-20:00")])
    summer = int(datetime(2026, 10, 24, 7, 30, tzinfo=UTC).timestamp())
    winter = int(datetime(2026, 10, 26, 7, 30, tzinfo=UTC).timestamp())
    assert schedule.contains(np.array([summer, winter])).tolist() == [True, False]
