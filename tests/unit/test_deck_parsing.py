"""Reading rate-deck cells, guessing the mapping, and the rule language."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerate.domain.deck_mapping import DeckSettings, find_header, guess_mapping, map_rows
from rerate.domain.deck_values import (
    DeckValueError,
    parse_date,
    parse_increments,
    parse_number,
    split_codes,
)
from rerate.domain.expressions import ExpressionError, compile_expression


@pytest.mark.parametrize(
    ("cell", "codes"),
    [
        ("44", ["44"]),
        ("+44 20", ["4420"]),
        ("0049 30", ["4930"]),
        ("93-76", ["9376"]),  # country-area, not a range
        ("1-204", ["1204"]),
        ("44, 447; 4420-4422", ["44", "447", "4420", "4421", "4422"]),
        ("33 1|33 6", ["331", "336"]),
        ("44.0", ["44"]),  # a spreadsheet number
    ],
)
def test_codes_in_a_cell(cell: str, codes: list[str]) -> None:
    assert split_codes(cell) == codes


def test_bad_codes_are_refused_with_the_reason() -> None:
    with pytest.raises(DeckValueError, match="digits only"):
        split_codes("44x")
    with pytest.raises(DeckValueError, match="would make"):
        split_codes("4400000-4499999")
    assert split_codes("0044", strip_00=False) == ["0044"]


@given(st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False))
def test_numbers_read_exactly_with_a_point_or_a_comma(value: Decimal) -> None:
    text = format(value, "f")
    assert parse_number(text) == value
    assert parse_number(text.replace(".", ",")) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.234,50", "1234.50"),
        ("1,234.50", "1234.50"),
        ("$0.015", "0.015"),
        ("5%", "0.05"),
        ("0.0120 USD", "0.012"),
    ],
)
def test_number_formats(text: str, value: str) -> None:
    assert parse_number(text) == Decimal(value)


@pytest.mark.parametrize(
    ("text", "decimal_comma"),
    [
        ("0.01", True),
        ("0.050", True),  # three decimals, as most decks write them: never 50
        ("$0.0123/min", True),
        ("1'234.50", True),
        ("0,5", False),
        ("0,050", False),
        ("€ 0,0123", False),
    ],
)
def test_a_forced_separator_never_reads_a_price_as_thousands(text: str, decimal_comma: bool) -> None:
    """With --decimal-comma, 0.01 is no grouping of thousands: an error, not a price of 1."""
    with pytest.raises(DeckValueError, match="may only group thousands"):
        parse_number(text, decimal_comma=decimal_comma)


@pytest.mark.parametrize(
    ("text", "decimal_comma", "value"),
    [
        ("1.234,5", True, "1234.5"),
        ("1.234", True, "1234"),
        ("-12.345.678", True, "-12345678"),
        ("1,234.5", False, "1234.5"),
        ("1,23,456.00", False, "123456.00"),  # lakhs
        ("1,23,456.00", None, "123456.00"),
    ],
)
def test_a_forced_separator_still_reads_thousands(text: str, decimal_comma: bool | None, value: str) -> None:
    assert parse_number(text, decimal_comma=decimal_comma) == Decimal(value)


def test_increments_and_dates() -> None:
    assert (parse_increments("60/1").first, parse_increments("60/1").next) == (60, 1)
    assert parse_increments("30").next is None
    with pytest.raises(DeckValueError):
        parse_increments("60/0")
    december = datetime(2026, 12, 1, tzinfo=UTC)
    for text in (
        "2026-12-01",
        "01/12/2026",
        "01.12.2026",
        "1-Dec-26",
        "Dec 1, 2026",
        "46357",
        "2026-12-01T01:00:00+01:00",
    ):
        assert parse_date(text) == december, text
    assert parse_date("12/01/2026", day_first=False) == december
    assert parse_date("2026/2/10 22:41") == datetime(2026, 2, 10, 22, 41, tzinfo=UTC)  # Excel re-saved
    with pytest.raises(DeckValueError):
        parse_date("31/02/2026")


NOTICE = [
    ["Carrier X rates"],
    ["prices in USD"],
    [],
    ["Destination", "Dial Code", "Rate (USD/min)", "Billing", "Effective"],
    ["Germany", "49", "0,0120", "60/60", "01-Dec-26"],
]


def test_the_header_is_found_below_a_notice_block_and_mapped_by_its_words() -> None:
    index = find_header(NOTICE)
    assert index == 3
    mapping = guess_mapping(NOTICE[3], NOTICE[4:])
    assert mapping == {
        "description": "Destination",
        "prefix": "Dial Code",
        "price": "Rate (USD/min)",
        "increments": "Billing",
        "effective_from": "Effective",
    }


def test_a_deck_without_a_header_is_mapped_by_its_contents() -> None:
    rows = [
        ["Germany", "49", "0.0120", "60/60"],
        ["France", "33", "0.0110", "1/1"],
        ["Italy", "39", "0.0130", "60/60"],
    ]
    mapping = guess_mapping(None, rows)
    assert mapping == {"description": "#1", "prefix": "#2", "price": "#3", "increments": "#4"}


def test_mapping_applies_virtual_fields_links_defaults_and_rules() -> None:
    header = ["code", "rate", "first"]
    settings = DeckSettings(
        mapping={"prefix": "code", "price": "rate", "first_interval": "first"},
        links={"next_interval": "first_interval"},
        defaults={"connect_fee": "0.01", "price": "0.5"},
        rules={"price": "value * 2"},
    )
    (good, empty, bad) = map_rows(
        [(2, None, ["44", "0,1", "60"]), (3, None, ["45", "", "30"]), (4, None, ["46", "x", "1"])],
        header,
        settings,
    )
    assert good.values["first_price"] == good.values["next_price"] == Decimal("0.2")
    assert (good.values["first_interval"], good.values["next_interval"]) == (60, 60)
    assert good.values["connect_fee"] == Decimal("0.01") and "connect_fee" not in good.given
    assert empty.values["first_price"] == Decimal("1.0")  # the default, then the rule
    assert (bad.error_column, bad.line) == ("rate", 4) and "not a number" in str(bad.error)


def test_rules_are_exact_and_cannot_escape() -> None:
    assert compile_expression("value * 3").evaluate(Decimal("0.1")) == Decimal("0.3")
    assert compile_expression("value * 1.1 if value < 0.01 else value").evaluate(Decimal("0.005")) == Decimal(
        "0.0055"
    )
    assert compile_expression("'44' + value").evaluate("20") == "4420"
    assert compile_expression("right(value, 3)").evaluate("0044123") == "123"
    for hostile in (
        "__import__('os')",
        "value.__class__",
        "[x for x in value]",
        "lambda: 1",
        "open('/etc/passwd')",
    ):
        with pytest.raises(ExpressionError):
            compile_expression(hostile)
    with pytest.raises(ExpressionError, match="no exchange rate"):
        compile_expression("value * fx('JPY')").evaluate(Decimal(1), exchange_rates={"EUR": Decimal("1.1")})
    with pytest.raises(ExpressionError, match="unknown name"):
        compile_expression("price * 2").evaluate(Decimal(1))


def test_what_a_review_of_real_decks_turned_up() -> None:
    assert [parse_number(t) for t in ("0.01 EUR", "0.05EUR", "0.01 per minute")] == [
        Decimal("0.01"),
        Decimal("0.05"),
        Decimal("0.01"),
    ]
    assert split_codes("0044-0046") == ["44", "45", "46"]
    assert split_codes("93–76") == ["9376"]  # an en dash
    assert parse_date("2026-12-01 2:00 PM") == datetime(2026, 12, 1, 14, tzinfo=UTC)
    with pytest.raises(DeckValueError):
        parse_date("01/12/2026 25:41")
    header = ["Country", "Country Code", "Dial Code", "Rate", "Rate Off-Peak"]
    assert guess_mapping(header, []) == {
        "prefix": "Dial Code",
        "price": "Rate",
        "off_peak_price": "Rate Off-Peak",
    }
    assert compile_expression("value * 1.00000000000000001").evaluate(Decimal(2)) == Decimal(
        "2.00000000000000002"
    )
    assert compile_expression("value or 5").evaluate(Decimal(0)) == Decimal(5)
    assert compile_expression("value != 0 and 1 / value").evaluate(Decimal(0)) is False
    settings = DeckSettings(
        mapping={"prefix": "code", "price": "rate"},
        defaults={"increments": "60/60"},
        rules={"first_interval": "value / 7"},
    )
    (row,) = map_rows([(2, None, ["44", "0.1"])], ["code", "rate"], settings)
    assert row.error_column == "first_interval" and "gave" in str(row.error)  # 60 / 7 is not whole
    settings.rules = {}
    (row,) = map_rows([(2, None, ["44", "0.1"])], ["code", "rate"], settings)
    assert (row.values["first_interval"], row.values["next_interval"]) == (60, 60)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Old Rate", "New Rate"),
        ("Current Rate", "New Rate"),
        ("Previous Rate", "Rate"),
        ("Rate (old)", "Rate (new)"),
    ],
)
def test_a_deck_showing_the_old_price_beside_the_new_one_maps_the_new_one(old: str, new: str) -> None:
    header = ["Destination", "Code", old, new]
    rows = [["UK", "44", "0.0100", "0.0123"]]
    assert guess_mapping(header, rows)["price"] == new
    assert guess_mapping(["Destination", "Code", new, old], rows)["price"] == new


@pytest.mark.parametrize(
    ("stored", "shown"),
    [(0.0123 * 1.1, "0.01353"), (0.1 + 0.2, "0.3"), (2.5e-7, "0.00000025"), (60.0, "60"), (-0.5, "-0.5")],
)
def test_a_workbook_number_reads_as_the_spreadsheet_shows_it(stored: float, shown: str) -> None:
    """A formula's price (0.0123*1.1) is stored with binary noise; Excel shows 15 digits."""
    from rerate.services.deck_files import cell_text

    assert cell_text(stored) == shown


@pytest.mark.parametrize("text", ["2026-13-01", "0000-01-01", "2026-02-30"])
def test_impossible_dates_are_errors_not_other_dates(text: str) -> None:
    """A year-first date is never read month and day swapped; year 0000 is not 2000."""
    with pytest.raises(DeckValueError, match="not a valid date"):
        parse_date(text)
