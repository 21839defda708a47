"""CLI of reports: the summary for invoicing, and the views that find mistakes before it."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from rerate.bootstrap import App
from rerate.domain.money import decimal_text
from rerate.entrypoints.console import DataTable, out, print_json, print_listing
from rerate.entrypoints.options import JsonOption
from rerate.services import report as report_service
from rerate.services.cdr_files import as_text_cells
from rerate.services.errors import InvalidInputError
from rerate.services.jsonable import plain
from rerate.services.timeparse import parse_utc

report_cli = typer.Typer(
    help="Reports from the daily totals: summary for invoicing, mismatch views.", no_args_is_help=True
)

FromReportOption = Annotated[str | None, typer.Option("--from", help="From (ISO, UTC), included.")]
ToReportOption = Annotated[str | None, typer.Option("--to", help="To (ISO, UTC), excluded.")]


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return decimal_text(value)  # money as its exact decimal text: never a float, never 0E-9
    return "" if value is None else str(value)


def write_csv(report: report_service.Report, handle: Any) -> None:
    writer = csv.DictWriter(handle, fieldnames=report.columns, lineterminator="\n")
    writer.writeheader()
    for row in report.rows():
        writer.writerow({k: _text(v) for k, v in row.items()})


def write_xlsx(report: report_service.Report, path: Path) -> None:
    """One sheet per section; amounts as text (a spreadsheet number is a binary float)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, section in (("lines", "line"), ("adjustments", "adjustment"), ("totals", "total")):
        sheet = book.create_sheet(title)
        sheet.append(report.columns[1:])
        for row in report.rows():
            if row["section"] == section:
                values = [_text(v) if isinstance(v, Decimal) else v for k, v in row.items() if k != "section"]
                sheet.append(as_text_cells(sheet, values))  # names from decks are data, never formulas
    book.save(path)


def _show(report: report_service.Report) -> None:
    title = "Summary" + (" (as closed)" if report.as_closed else "")
    window = " to ".join(w or "..." for w in report.window)
    if report.source == "xdrs":  # the only report that scans XDRs: say why it takes seconds
        window += " (from the XDRs: per prefix by account, vendor or day, or a window cutting a month)"
    for caption, entries, keys in (
        (f"{title}: {window}", report.lines, [*report.group_by, "currency"]),
        (
            "Corrections to closed periods (adjustment lines)",
            report.adjustments,
            ["customer", "corrected_period", "destination", "currency"],
        ),
        ("Totals", report.totals, ["currency"]),
    ):
        if not entries and caption.startswith("Corrections"):
            continue
        table = DataTable(title=caption)
        measures = ["calls", "seconds", "billed", "revenue", "cost", "margin", "failed"]
        for column in [*keys, *measures]:
            table.add_column(column, justify="left" if column in keys else "right")
        for entry in entries:
            table.add_row(*(_text(entry.get(c)) for c in [*keys, *measures]))
        out.print(table)


def register(cli: typer.Typer, app: Callable[[], App]) -> None:
    cli.add_typer(report_cli, name="report")

    @report_cli.command("summary")
    def summary(
        customer: Annotated[list[str] | None, typer.Option(help="Only this customer (repeatable).")] = None,
        period: Annotated[str | None, typer.Option(help="A month, YYYY-MM (UTC).")] = None,
        start: FromReportOption = None,
        end: ToReportOption = None,
        group_by: Annotated[
            str, typer.Option(help=f"Comma list of {', '.join(report_service.GROUPS)}.")
        ] = "customer",
        as_closed: Annotated[
            bool, typer.Option(help="One customer's closed --period exactly as it was closed.")
        ] = False,
        format_: Annotated[
            ReportFormat, typer.Option("--format", help="Output format.")
        ] = ReportFormat.table,
        out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    ) -> None:
        """Calls, seconds, billed units, revenue, cost, margin and failures per group and currency,
        corrections to closed periods, and totals (from the daily totals, never raw XDRs)."""
        report = report_service.summary_report(
            app(),
            report_service.ReportRequest(
                customers=customer or [],
                period=period,
                start=parse_utc(start, field="--from") if start else None,
                end=parse_utc(end, field="--to") if end else None,
                group_by=[g.strip() for g in group_by.split(",") if g.strip()],
                as_closed=as_closed,
            ),
        )
        if format_ is ReportFormat.xlsx:
            if out_file is None:
                raise InvalidInputError("--format xlsx needs --out FILE.xlsx")
            write_xlsx(report, out_file)
            out.print(f"[green]written[/] {out_file}")
        elif format_ is ReportFormat.csv:
            if out_file is None:
                write_csv(report, sys.stdout)
            else:
                with out_file.open("w", newline="", encoding="utf-8") as handle:
                    write_csv(report, handle)
                out.print(f"[green]written[/] {out_file}")
        elif format_ is ReportFormat.json:
            shaped = report.as_dict()
            if out_file is None:
                print_json(shaped)
            else:
                out_file.write_text(json.dumps(plain(shaped), indent=2))
                out.print(f"[green]written[/] {out_file}")
        else:
            _show(report)

    @report_cli.command("failures")
    def failures(
        start: FromReportOption = None, end: ToReportOption = None, as_json: JsonOption = False
    ) -> None:
        """Failed XDRs by customer, side and reason."""
        rows = report_service.failures_by_reason(app(), *_window(start, end))
        print_listing(
            rows,
            title="Failed XDRs by reason",
            columns=("customer", "side", "reason", "xdrs"),
            as_json=as_json,
        )

    @report_cli.command("negative-margin")
    def negative_margin(
        start: FromReportOption = None, end: ToReportOption = None, as_json: JsonOption = False
    ) -> None:
        """Customer and destination pairs that cost more than they earn."""
        rows = report_service.negative_margins(app(), *_window(start, end))
        columns = (
            "customer",
            "country",
            "destination_group",
            "currency",
            "calls",
            "revenue",
            "cost",
            "margin",
        )
        print_listing(rows, title="Negative margin", columns=columns, as_json=as_json)

    @report_cli.command("jumps")
    def jumps(
        start: FromReportOption = None,
        end: ToReportOption = None,
        threshold: Annotated[int, typer.Option(min=1, help="Percent change that counts as a jump.")] = 50,
        minimum_calls: Annotated[int, typer.Option(min=0, help="Ignore days with fewer calls.")] = 100,
        as_json: JsonOption = False,
    ) -> None:
        """Days whose calls or revenue jumped from the day before, per customer."""
        rows = report_service.day_over_day_jumps(
            app(), *_window(start, end), threshold_percent=threshold, minimum_calls=minimum_calls
        )
        columns = ("customer", "day", "currency", "calls_before", "calls", "revenue_before", "revenue")
        print_listing(
            rows, title=f"Day-over-day changes over {threshold} %", columns=columns, as_json=as_json
        )


def _window(start: str | None, end: str | None) -> tuple[Any, Any]:
    return (
        parse_utc(start, field="--from") if start else None,
        parse_utc(end, field="--to") if end else None,
    )
