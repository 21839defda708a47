"""The summary report and the mismatch views, against the ledger they summarize."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.domain.rating import Side
from rerate.entrypoints.cli_reports import write_csv, write_xlsx
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.errors import InvalidInputError, NotFoundError
from rerate.services.export import export_xdrs
from rerate.services.ingest import ingest
from rerate.services.periods import close_period
from rerate.services.report import (
    ReportRequest,
    day_over_day_jumps,
    failures_by_reason,
    negative_margins,
    summary_report,
)
from rerate.services.scopes import resolve_scope
from rerate.services.tariffs import import_rates
from tests.factories import COST, write_rates, write_xdrs

ROWS = [
    ("o1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("o2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ("o3", "2026-10-20T11:00:00Z", "30", "1", "4420794600", "acc2", "gw1"),
    ("f1", "2026-10-20T12:00:00Z", "30", "1", "4420794600", "stranger", "gw1"),  # unknown account
    ("f2", "2026-10-20T13:00:00Z", "30", "1", "4420794600", "acc1", "gw9"),  # unknown vendor
    ("n1", "2026-11-02T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
]


@pytest.fixture
def loaded(world: App, tmp_path: Path) -> App:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    return world


def _exported(app: App, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        return list(csv.DictReader(handle))


def test_summary_by_customer_equals_the_xdrs_it_summarizes(loaded: App, tmp_path: Path) -> None:
    report = summary_report(loaded, ReportRequest(period="2026-10"))
    (acme,) = [line for line in report.lines if line["customer"] == "Acme"]
    october = [r for r in _exported(loaded, tmp_path) if r["connect_time"].startswith("2026-10")]
    rated = [r for r in october if r["customer"] == "Acme" and r["status"] == "rated"]
    assert acme["calls"] == len(rated) and rated
    assert acme["seconds"] == sum(int(r["duration"]) for r in rated)
    assert acme["billed"] == sum(int(r["billed"]) for r in rated)
    assert acme["revenue"] == sum((Decimal(r["amount"]) for r in rated), Decimal(0))
    vendor_rated = [r for r in october if r["customer"] == "Acme" and r["vendor_status"] == "rated"]
    assert acme["cost"] == sum((Decimal(r["cost"]) for r in vendor_rated), Decimal(0))
    assert acme["margin"] == acme["revenue"] - acme["cost"]
    assert acme["failed"] == 1  # f2: the vendor side failed
    unknown = next(line for line in report.lines if line["customer"] == "(unknown account)")
    assert (unknown["calls"], unknown["failed"]) == (0, 1)
    text = io.StringIO()
    write_csv(report, text)
    zero = next(
        r for r in csv.DictReader(io.StringIO(text.getvalue())) if r["customer"] == "(unknown account)"
    )
    assert Decimal(zero["revenue"]) == 0 and "E" not in zero["revenue"].upper()  # a zero sum is not 0E-9
    total = next(t for t in report.totals if t["currency"] == "EUR")
    assert total["revenue"] == acme["revenue"]


def test_groupings_add_their_keys_and_csv_and_xlsx_keep_exact_money(loaded: App, tmp_path: Path) -> None:
    report = summary_report(loaded, ReportRequest(customers=["Acme"], group_by=["day", "account"]))
    keys = [(line["day"], line["account"]) for line in report.lines]
    assert keys == sorted(keys) and ("2026-10-20", "acc2") in keys and ("2026-11-02", "acc1") in keys
    text = io.StringIO()
    write_csv(report, text)
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert list(rows[0])[:3] == ["section", "day", "account"]
    assert {"currency", "calls", "seconds", "billed", "revenue", "cost", "margin"} <= set(rows[0])
    lines = [r for r in rows if r["section"] == "line"]
    assert sum((Decimal(r["revenue"]) for r in lines), Decimal(0)) == Decimal(
        next(r for r in rows if r["section"] == "total")["revenue"]
    )
    assert all("e" not in r["revenue"].lower() for r in rows)  # exact decimals, never 1E-5
    path = tmp_path / "summary.xlsx"
    write_xlsx(report, path)
    book = load_workbook(path, read_only=True)
    assert book.sheetnames == ["lines", "adjustments", "totals"]
    sheet = book["lines"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    book.close()
    assert values[0][:2] == ["day", "account"] and len(values) == len(lines) + 1
    assert isinstance(values[1][values[0].index("revenue")], str)  # money as text, not a float


def test_grouping_by_prefix_equals_the_xdrs_matched_prefixes(loaded: App, tmp_path: Path) -> None:
    report = summary_report(loaded, ReportRequest(customers=["Acme"], group_by=["prefix"]))
    rated = [r for r in _exported(loaded, tmp_path) if r["customer"] == "Acme" and r["status"] == "rated"]
    expected: dict[str, tuple[int, Decimal]] = {}
    for row in rated:
        calls, revenue = expected.get(row["prefix"], (0, Decimal(0)))
        expected[row["prefix"]] = (calls + 1, revenue + Decimal(row["amount"]))
    lines = {line["prefix"]: (line["calls"], line["revenue"]) for line in report.lines if line["calls"]}
    assert lines == expected and len(expected) >= 2
    assert report.source == "prefix_totals"  # no window: whole months, from the per-prefix aggregate


def test_prefix_lines_from_the_aggregate_equal_those_from_the_xdrs_after_a_correction(loaded: App) -> None:
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(loaded, RerateRequest(scope=scope, tariff="cost", ghost_percent=Decimal(10)))
    october = datetime(2026, 10, 1, tzinfo=UTC)
    keys = ["customer", "period", "country", "prefix"]
    month = summary_report(loaded, ReportRequest(period="2026-10", group_by=keys))
    # A window that cuts a month cannot be answered by monthly totals: it reads the XDRs.
    cut = summary_report(
        loaded,
        ReportRequest(
            start=october + timedelta(days=1), end=datetime(2026, 11, 1, tzinfo=UTC), group_by=keys
        ),
    )
    whole = summary_report(
        loaded, ReportRequest(start=october, end=datetime(2026, 11, 1, tzinfo=UTC), group_by=keys)
    )
    assert (month.source, whole.source, cut.source) == ("prefix_totals", "prefix_totals", "xdrs")
    # Every XDR of October is on or after the 2nd, so the cut window holds the same XDRs.
    assert month.lines == cut.lines == whole.lines and month.totals == cut.totals
    by_account = summary_report(loaded, ReportRequest(period="2026-10", group_by=["account", "prefix"]))
    assert by_account.source == "xdrs"
    revenue = sum((line["revenue"] for line in month.lines), Decimal(0))
    assert revenue > 0 and sum((line["revenue"] for line in by_account.lines), Decimal(0)) == revenue


def test_corrections_to_a_closed_period_are_a_section_and_the_closed_period_stays(loaded: App) -> None:
    close_period(loaded, "Acme", "2026-10")
    as_closed = summary_report(loaded, ReportRequest(customers=["Acme"], period="2026-10", as_closed=True))
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(loaded, RerateRequest(scope=scope, tariff="cost", allow_closed=True))
    with loaded.catalog.reading() as session:
        finished = session.scalars(select(Job.finished_at)).one()
    assert finished is not None
    billing = f"{finished:%Y-%m}"  # the period the correction is invoiced in
    report = summary_report(loaded, ReportRequest(customers=["Acme"], period=billing))
    assert report.adjustments and {a["corrected_period"] for a in report.adjustments} == {"2026-10"}
    delta = sum((a["revenue"] for a in report.adjustments), Decimal(0))
    assert delta != 0
    again = summary_report(loaded, ReportRequest(customers=["Acme"], period="2026-10", as_closed=True))
    assert again.lines == as_closed.lines and again.totals == as_closed.totals  # the invoice stays true
    now = summary_report(loaded, ReportRequest(customers=["Acme"], period="2026-10"))
    assert now.lines[0]["revenue"] - as_closed.lines[0]["revenue"] == delta


def test_mismatch_views(loaded: App, tmp_path: Path) -> None:
    failures = failures_by_reason(loaded)
    assert {(f["customer"], f["side"], f["reason"], f["xdrs"]) for f in failures} == {
        ("(unknown account)", "customer", "unknown_account", 1),
        ("Acme", "vendor", "unknown_vendor", 1),
    }
    assert negative_margins(loaded) == []
    dearer = RerateRequest(
        scope=_scope(loaded), tariff="retail", sides=(Side.VENDOR,), ghost_percent=Decimal(50)
    )
    rerate(loaded, dearer)  # the vendor now charges retail prices for half as much time again
    losing = negative_margins(loaded)
    assert losing and all(m["customer"] == "Acme" and m["margin"] < 0 for m in losing)
    assert "DE" in {
        m["country"] for m in losing
    }  # 45 s: billed 45 s + 50 % by the vendor, 60/60 hides it for GB
    more = write_xdrs(
        tmp_path / "busy.csv",
        [(f"b{i}", "2026-10-21T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1") for i in range(5)],
    )
    ingest(loaded, [more])
    jumps = day_over_day_jumps(loaded, threshold_percent=50, minimum_calls=2)
    assert [(j["customer"], j["day"], j["calls_before"], j["calls"]) for j in jumps] == [
        ("Acme", "2026-10-21", 3, 5)
    ]


def _scope(app: App):  # type: ignore[no-untyped-def]
    with app.catalog.reading() as session:
        return resolve_scope(session, customers=["Acme"])


def test_report_errors_are_clear(loaded: App) -> None:
    with pytest.raises(InvalidInputError, match="no prefix"):
        summary_report(
            loaded, ReportRequest(customers=["Acme"], period="2026-10", group_by=["prefix"], as_closed=True)
        )
    with pytest.raises(InvalidInputError, match="unknown: planet"):
        summary_report(loaded, ReportRequest(group_by=["prefix", "planet"]))
    with pytest.raises(InvalidInputError, match="names customer more than once"):
        summary_report(loaded, ReportRequest(group_by=["customer", "day", "customer"]))
    with pytest.raises(InvalidInputError, match="not both"):
        summary_report(loaded, ReportRequest(period="2026-10", start=datetime(2026, 10, 1, tzinfo=UTC)))
    with pytest.raises(InvalidInputError, match="one customer's closed"):
        summary_report(loaded, ReportRequest(period="2026-10", as_closed=True))
    with pytest.raises(NotFoundError, match="is not closed"):
        summary_report(loaded, ReportRequest(customers=["Acme"], period="2026-10", as_closed=True))
    with pytest.raises(NotFoundError, match="no customer 'Nobody'"):
        summary_report(loaded, ReportRequest(customers=["Nobody"]))
    start = datetime(2026, 10, 20, tzinfo=UTC)
    one_day = summary_report(
        loaded, ReportRequest(start=start, end=start + timedelta(days=1), group_by=["day"])
    )
    assert {line["day"] for line in one_day.lines} == {"2026-10-20"}


def test_the_services_cached_summary_follows_every_change_of_the_ledger(loaded: App) -> None:
    from rerate.services.jobs import revert
    from rerate.services.report import cached_summary_report

    request = ReportRequest(period="2026-10")
    first = cached_summary_report(loaded, request)
    assert cached_summary_report(loaded, request) is first  # nothing changed: the same report
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    job = rerate(loaded, RerateRequest(scope=scope, tariff="cost"))
    changed = cached_summary_report(loaded, request)
    assert changed.totals != first.totals and changed.totals == summary_report(loaded, request).totals
    revert(loaded, job.job_id)
    assert (
        cached_summary_report(loaded, request).totals
        == first.totals
        == summary_report(loaded, request).totals
    )


def test_names_that_look_like_formulas_stay_text_in_the_xlsx(tmp_path: Path) -> None:
    from rerate.services.report import Report

    line = {"customer": '=HYPERLINK("http://x")', "currency": "EUR", "calls": 1, "revenue": Decimal("0.5")}
    report = Report(["customer"], (None, None), lines=[line])
    path = tmp_path / "summary.xlsx"
    write_xlsx(report, path)
    book = load_workbook(path)
    cell = book["lines"]["A2"]
    assert cell.value == line["customer"] and cell.data_type == "s"  # text, never a formula


def test_a_window_holding_the_corrected_period_counts_the_correction_once(loaded: App) -> None:
    close_period(loaded, "Acme", "2026-10")
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(loaded, RerateRequest(scope=scope, tariff="cost", allow_closed=True))
    october = datetime(2026, 10, 1, tzinfo=UTC)
    for window in (
        ReportRequest(customers=["Acme"]),  # no window: every period is in the lines
        ReportRequest(customers=["Acme"], start=october, end=datetime(2100, 1, 1, tzinfo=UTC)),
    ):
        report = summary_report(loaded, window)
        assert report.adjustments == []  # October's lines are the corrected ones already
        revenue = sum((line["revenue"] for line in report.lines), Decimal(0))
        assert [t["revenue"] for t in report.totals] == [revenue]
    cut = ReportRequest(
        customers=["Acme"], start=october + timedelta(days=14), end=datetime(2100, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(InvalidInputError, match=r"starts inside 2026-10.*2026-10-01 or 2026-11-01"):
        summary_report(loaded, cut)


def test_totals_name_the_currency_of_every_cost_they_hold(loaded: App, tmp_path: Path) -> None:
    """A vendor moved to USD in a closed EUR period: its adjustments' costs keep their currencies."""
    import_rates(loaded, "usd", write_rates(tmp_path / "usd.csv", COST), currency="USD", allow_past=True)
    close_period(loaded, "Acme", "2026-10")
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(loaded, RerateRequest(scope=scope, tariff="usd", sides=(Side.VENDOR,), allow_closed=True))
    with loaded.catalog.reading() as session:
        finished = session.scalars(select(Job.finished_at)).one()
    report = summary_report(loaded, ReportRequest(customers=["Acme"], period=f"{finished:%Y-%m}"))
    assert {a["currency"] for a in report.adjustments if a["cost"]} == {"EUR", "USD"}
    for total in report.totals:
        held = {line["cost_currency"] for line in report.lines if line["currency"] == total["currency"]}
        held |= {
            a["currency"] for a in report.adjustments if a["currency"] == total["currency"] and a["cost"]
        }
        held.discard("")
        assert total["cost_currency"] == (held.pop() if len(held) == 1 else "mixed" if held else "")
        if total["cost_currency"] in ("", total["currency"]):
            assert total["margin"] == total["revenue"] - total["cost"]
        else:
            assert total["margin"] is None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_window_cutting_days_counts_each_call_by_its_time(loaded: App, tmp_path: Path) -> None:
    rows = _exported(loaded, tmp_path)
    start = _moment("2026-10-20T10:30:00Z")  # after o2 (10:00), before o3 (11:00)
    for end, expected in (
        (_moment("2026-11-02T10:00:30Z"), ["f2", "n1", "o3"]),
        (_moment("2026-11-02T09:00:00Z"), ["f2", "o3"]),
    ):
        inside = [r for r in rows if start <= _moment(r["connect_time"]) < end and r["status"] == "rated"]
        assert sorted(r["source_id"] for r in inside) == expected
        for group_by in (["customer"], ["customer", "prefix"], ["customer", "day"]):
            report = summary_report(loaded, ReportRequest(start=start, end=end, group_by=group_by))
            rated = [line for line in report.lines if line["customer"] == "Acme"]
            assert sum(line["calls"] for line in rated) == len(inside)
            assert sum(line["revenue"] for line in rated) == sum(Decimal(r["amount"]) for r in inside)


def test_a_report_as_closed_carries_the_adjustments_its_invoice_carried(loaded: App) -> None:
    close_period(loaded, "Acme", "2026-10")
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"], end=datetime(2026, 11, 1, tzinfo=UTC))
    rerate(loaded, RerateRequest(scope=scope, tariff="cost", allow_closed=True))
    with loaded.catalog.reading() as session:
        finished = session.scalars(select(Job.finished_at)).one()
    assert finished is not None
    billing = f"{finished:%Y-%m}"
    invoiced = summary_report(loaded, ReportRequest(customers=["Acme"], period=billing))
    assert invoiced.adjustments
    close_period(loaded, "Acme", billing, now=datetime(2100, 1, 1, tzinfo=UTC))
    as_closed = summary_report(loaded, ReportRequest(customers=["Acme"], period=billing, as_closed=True))
    assert (as_closed.adjustments, as_closed.totals) == (invoiced.adjustments, invoiced.totals)


def test_charts_summaries_and_exports_keep_currencies_and_sides_apart(loaded: App, tmp_path: Path) -> None:
    """A vendor billing in USD: its cost is never subtracted from EUR revenue; a call failed on the
    vendor side is failed for the export and the summary as for the report."""
    from rerate.services.report import calls_by_day
    from rerate.services.summary import customer_summary

    import_rates(loaded, "usd", write_rates(tmp_path / "usd.csv", COST), currency="USD", allow_past=True)
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(loaded, RerateRequest(scope=scope, tariff="usd", sides=(Side.VENDOR,)))

    for row in calls_by_day(loaded):
        assert row["margin"] == row["revenue"] - row["cost"]
        if row["currency"] == "USD":
            assert (row["revenue"], row["rated"]) == (0, 0) and row["cost"] > 0
    (acme,) = [s for s in customer_summary(loaded) if s.customer == "Acme"]
    assert (acme.currency, acme.cost_currency, acme.margin) == ("EUR", "USD", None)
    # f1's customer side failed (unknown account); its vendor rated it: it cost what it cost.
    (stranger,) = [s for s in customer_summary(loaded) if s.customer == "(unknown account)"]
    lines = summary_report(loaded, ReportRequest()).lines
    (unknown,) = [line for line in lines if line["customer"] == "(unknown account)"]
    assert stranger.cost == unknown["cost"] > 0
    assert acme.failed == 1 and acme.failed_by_reason == {"vendor unknown_vendor": 1}

    out = tmp_path / "failed.csv"
    export_xdrs(loaded, out, status="failed")
    with out.open() as handle:
        assert sorted(r["source_id"] for r in csv.DictReader(handle)) == ["f1", "f2"]


def test_mismatch_views_over_a_window_cutting_a_day_count_only_its_calls(loaded: App) -> None:
    """f1 (12:00, unknown account) and f2 (13:00, unknown vendor) share 2026-10-20 with rated calls."""
    noon = datetime(2026, 10, 20, 12, 30, tzinfo=UTC)
    after = failures_by_reason(loaded, noon, datetime(2026, 10, 21, tzinfo=UTC))
    assert [(f["side"], f["reason"], f["xdrs"]) for f in after] == [("vendor", "unknown_vendor", 1)]
    before = failures_by_reason(loaded, datetime(2026, 10, 20, tzinfo=UTC), noon)
    assert [(f["side"], f["reason"], f["xdrs"]) for f in before] == [("customer", "unknown_account", 1)]
    dearer = RerateRequest(
        scope=_scope(loaded), tariff="retail", ghost_percent=Decimal(50), sides=(Side.VENDOR,)
    )
    rerate(loaded, dearer)  # o1 (DE, 2026-10-10 10:00) now loses money
    ten_thirty = datetime(2026, 10, 10, 10, 30, tzinfo=UTC)
    assert [
        m["country"] for m in negative_margins(loaded, datetime(2026, 10, 10, tzinfo=UTC), ten_thirty)
    ] == ["DE"]
    assert negative_margins(loaded, ten_thirty, datetime(2026, 10, 11, tzinfo=UTC)) == []


def test_day_over_day_jumps_compare_each_currency_alone(loaded: App, tmp_path: Path) -> None:
    import_rates(loaded, "usd", write_rates(tmp_path / "usd.csv", COST), currency="USD", allow_past=True)
    same = [(f"s{i}", "2026-10-21T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1") for i in range(2)]
    ingest(loaded, [write_xdrs(tmp_path / "same.csv", same)])
    with loaded.catalog.reading() as session:
        one = resolve_scope(session, customers=["Acme"], start=datetime(2026, 10, 21, tzinfo=UTC))
    rerate(loaded, RerateRequest(scope=one, tariff="usd", sides=(Side.CUSTOMER,)))
    jumps = day_over_day_jumps(loaded, threshold_percent=1, minimum_calls=0)
    in_euros = [j for j in jumps if j["day"] == "2026-10-21" and j["currency"] == "EUR"]
    assert in_euros == []  # no euro calls left on the 21st: nothing to compare with the 20th's
    revenue = {(j["currency"], j["day"]): j["revenue"] for j in jumps}
    assert all(r == Decimal("0.008") for (currency, _), r in revenue.items() if currency == "USD")
