"""CLI of tariffs: the rate-deck import wizard, history loads, views, off-peak, templates, exchange rates."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from rerate.bootstrap import App
from rerate.domain.deck_review import Mode, PastPolicy
from rerate.entrypoints.console import DataTable, err, out, print_json, print_listing
from rerate.entrypoints.options import JsonOption, YesOption
from rerate.services import listings, rate_import, rate_results, rate_templates, tariff_admin, tariffs
from rerate.services.errors import InvalidInputError
from rerate.services.rate_import import DeckImportReport, DeckImportRequest
from rerate.services.timeparse import parse_utc

Many = Annotated[list[str] | None, typer.Option()]
template_cli = typer.Typer(help="Saved rate-deck import settings.", no_args_is_help=True)
fx_cli = typer.Typer(help='Exchange rates used by import rules (fx("EUR")).', no_args_is_help=True)

_STATUS_STYLE = {
    "increase": "[red]↑ increase[/]",
    "decrease": "[green]↓ decrease[/]",
    "duplicate": "[grey50]duplicate[/]",
    "error": "[bold red]error[/]",
    "past": "[yellow]past[/]",
    "discontinued": "[magenta]discontinued[/]",
}


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"{option} takes KEY=VALUE, got {value!r}")
        result[key.strip()] = rest.strip()
    return result


def _country_file(path: Path | None) -> dict[str, str]:
    """``prefix,country`` lines (a header is allowed) from a mapping file."""
    if path is None:
        return {}
    if not path.is_file():
        raise InvalidInputError(f"country mapping file not found: {path}")
    mapping: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if len(row) < 2 or not row[0].strip().isdigit():
                if line == 1:
                    continue  # header
                raise InvalidInputError(f"{path.name}, line {line}: expected PREFIX,COUNTRY")
            mapping[row[0].strip()] = row[1].strip()
    return mapping


def _render(report: DeckImportReport, limit: int) -> None:
    sheets = ", ".join(
        f"{s.name or 'file'} (header line {s.header_line or 'none'}, {s.rows} rate(s))" for s in report.sheets
    )
    out.print(f"[bold]{escape(report.file)}[/] -> tariff [bold]{escape(report.tariff)}[/]: {escape(sheets)}")
    if report.encoding:
        out.print(f"  read as {report.encoding}, separator {report.delimiter!r}")
    mapping = DataTable(title="Field mapping", show_edge=False)
    mapping.add_column("field")
    mapping.add_column("column")
    for name, column in report.mapping.items():
        mapping.add_row(name, column)
    out.print(mapping)
    rows = DataTable(title=f"Rate review (first {limit})", show_edge=False)
    for column in ("line", "prefix", "status", "price", "old price", "intervals", "effective", "note"):
        rows.add_column(column)
    for rate in report.rates[:limit]:
        entry = rate_results.rate_entry(rate)
        rows.add_row(
            str(entry["line"] or ""),
            entry["prefix"],
            Text.from_markup(_STATUS_STYLE.get(entry["status"], escape(entry["status"]))),
            f"{entry['first_price'] or ''}/{entry['next_price'] or ''}",
            f"{entry['old_first_price'] or ''}/{entry['old_next_price'] or ''}"
            if entry["old_first_price"]
            else "",
            f"{entry['first_interval'] or ''}/{entry['next_interval'] or ''}",
            (entry["effective_from"] or "")[:16],
            (f"{entry['error_column']}: " if entry["error_column"] else "") + (entry["error"] or ""),
        )
    out.print(rows)
    if len(report.rates) > limit:
        out.print(f"  ... {len(report.rates) - limit} more (see the results file or --json)")
    if report.new_destinations:
        table = DataTable(title="New destinations", show_edge=False)
        for column in ("prefix", "country", "from", "group", "description"):
            table.add_column(column)
        for d in report.new_destinations[:limit]:
            table.add_row(
                d.prefix,
                d.country or Text("?", style="red"),
                d.source or "",
                d.group or "",
                d.description or "",
            )
        out.print(table)
    summary = DataTable(title="Summary", show_edge=False, show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    counts = report.summary.as_dict()
    for key, label in rate_import.SUMMARY_LINES:
        summary.add_row(label, f"{counts[key]:,}")
    out.print(summary)
    for problem in report.problems:
        err.print(f"[red]refused:[/] {escape(str(problem))}")
    if report.results_path:
        out.print(f"  every row's outcome: {report.results_path}")
    if report.mail_id:
        out.print(f"  report e-mailed ({report.mail_id})")
    if report.mail_error:
        err.print(f"[yellow]report not e-mailed[/]: {report.mail_error}")
    for job in report.proposed_jobs:
        out.print(
            f"  [yellow]backdated rates[/]: re-rating proposed as dry-run job {job} "
            f"('rerate jobs show {job}', then 'rerate jobs apply {job}')"
        )


def register(tariff_cli: typer.Typer, cli: typer.Typer, app: Callable[[], App]) -> None:
    tariff_cli.add_typer(template_cli, name="template")
    cli.add_typer(fx_cli, name="fx")

    @tariff_cli.command("import")
    def tariff_import(
        name: Annotated[str, typer.Argument(help="Tariff name (created if new: give --currency).")],
        file: Annotated[Path, typer.Argument(help="Rate deck: CSV/TXT, XLSX/XLS/ODS.")],
        template: Annotated[str | None, typer.Option(help="Use the saved settings of this template.")] = None,
        save_template: Annotated[
            str | None, typer.Option(help="Save this import's settings under a name.")
        ] = None,
        map_: Annotated[
            list[str] | None, typer.Option("--map", help="FIELD=COLUMN (a header text or #N); repeatable.")
        ] = None,
        mode: Annotated[
            Mode, typer.Option(help="add: update what the deck lists; replace: discontinue the rest.")
        ] = Mode.ADD,
        past_as_now: Annotated[
            bool, typer.Option("--past-as-now", help="Load past-dated rows as effective now.")
        ] = False,
        allow_past: Annotated[
            bool,
            typer.Option("--allow-past", help="Load past-dated rows as backdated; propose the re-rating."),
        ] = False,
        skip_duplicates: Annotated[
            bool,
            typer.Option("--skip-duplicates/--keep-duplicates", help="Skip rows equal to the rate in force."),
        ] = True,
        preview: Annotated[bool, typer.Option("--preview", help="Review only: write nothing.")] = False,
        country: Annotated[
            list[str] | None, typer.Option(help="PREFIX=CC: country of new destinations under PREFIX.")
        ] = None,
        countries: Annotated[
            Path | None, typer.Option(help="CSV of PREFIX,COUNTRY for new destinations.")
        ] = None,
        group: Annotated[
            list[str] | None, typer.Option(help="PREFIX=GROUP: destination group of new destinations.")
        ] = None,
        currency: Annotated[str | None, typer.Option(help="Currency of a new tariff (ISO 4217).")] = None,
        decimals: Annotated[
            int | None, typer.Option(help="Decimals amounts are rounded to (new tariff).")
        ] = None,
        delimiter: Annotated[str | None, typer.Option(help="CSV separator \\[detected].")] = None,
        encoding: Annotated[str | None, typer.Option(help="Text encoding \\[detected].")] = None,
        quote: Annotated[str | None, typer.Option(help='CSV quote character \\["].')] = None,
        sheet: Annotated[
            list[str] | None, typer.Option(help="Workbook sheet(s) to read \\[all with rates].")
        ] = None,
        header_row: Annotated[
            int | None, typer.Option(help="Line of the header \\[detected]; 0: none.")
        ] = None,
        skip_rows: Annotated[int | None, typer.Option(help="Lines to skip after the header.")] = None,
        code_delimiters: Annotated[
            str | None, typer.Option(help="Characters separating codes in one cell \\[,;|].")
        ] = None,
        decimal_comma: Annotated[
            bool | None,
            typer.Option("--decimal-comma/--decimal-point", help="Decimal separator \\[per value]."),
        ] = None,
        month_first: Annotated[
            bool, typer.Option("--month-first", help="Dates like 12/01/2026 are MM/DD.")
        ] = False,
        keep_00: Annotated[
            bool, typer.Option("--keep-00", help="Do not strip a leading 00 from codes.")
        ] = False,
        rule: Annotated[
            list[str] | None, typer.Option(help='FIELD=EXPRESSION, e.g. price="value * 1.05"; repeatable.')
        ] = None,
        default: Annotated[
            list[str] | None, typer.Option(help="FIELD=VALUE for empty or unmapped fields.")
        ] = None,
        default_only_new: Annotated[
            list[str] | None,
            typer.Option(help="FIELD whose default applies only to prefixes new to the tariff."),
        ] = None,
        link: Annotated[list[str] | None, typer.Option(help="FIELD=OTHER: take FIELD from OTHER.")] = None,
        strict: Annotated[
            bool, typer.Option("--strict", help="Refuse the whole deck if a row has an error.")
        ] = False,
        email: Annotated[
            list[str] | None, typer.Option(help="E-mail the report and results file to ADDR; repeatable.")
        ] = None,
        results: Annotated[
            Path | None, typer.Option(help="Also write every row's outcome here (.csv/.xlsx).")
        ] = None,
        limit: Annotated[int, typer.Option(min=0, max=10**6, help="Rows shown in the review table.")] = 30,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Import a carrier's rate deck: parse, map, review, create destinations, load (seed 001)."""
        if past_as_now and allow_past:
            raise InvalidInputError("--past-as-now and --allow-past exclude each other")
        overrides: dict[str, Any] = {
            key: value
            for key, value in {
                "delimiter": delimiter,
                "encoding": encoding,
                "quotechar": quote,
                "sheets": sheet,
                "header_row": header_row,
                "skip_rows": skip_rows,
                "code_delimiters": code_delimiters,
                "decimal_comma": decimal_comma,
                "rules": _pairs(rule, "--rule") or None,
                "defaults": _pairs(default, "--default") or None,
                "links": _pairs(link, "--link") or None,
                "defaults_only_new": default_only_new,
            }.items()
            if value is not None
        }
        if month_first:
            overrides["day_first"] = False
        if keep_00:
            overrides["strip_00"] = False
        request = DeckImportRequest(
            tariff=name,
            path=file,
            mode=mode,
            past=PastPolicy.NOW if past_as_now else PastPolicy.BACKDATE if allow_past else PastPolicy.SKIP,
            skip_duplicates=skip_duplicates,
            preview=preview,
            strict=strict,
            template=template,
            save_template=save_template,
            overrides=overrides,
            mapping=_pairs(map_, "--map"),
            countries=_country_file(countries) | _pairs(country, "--country"),
            groups=_pairs(group, "--group"),
            currency=currency,
            decimals=decimals,
            results_file=results,
            email=email or [],
        )
        if not preview and not yes and not as_json and sys.stdin.isatty():
            review = rate_import.import_deck(app(), _preview(request))
            _render(review, limit)
            if review.state == "rejected":
                raise typer.Exit(1)
            if not typer.confirm(
                f"Load {review.summary.created:,} rate(s) into tariff {name!r}?", default=True
            ):
                raise typer.Exit(1)
        report = rate_import.import_deck(app(), request)
        if as_json:
            print_json(report.as_dict())
        else:
            _render(report, limit)
            if report.state == "imported":
                out.print(f"[green]imported[/] into tariff {escape(name)} (import {report.import_id})")
            elif report.state == "preview":
                out.print("[yellow]preview only[/]: nothing was written")
        if report.state == "rejected":
            raise typer.Exit(1)

    @tariff_cli.command("load-history")
    def load_history(
        name: Annotated[str, typer.Argument(help="Tariff name (created if new).")],
        file: Annotated[Path, typer.Argument(help="Canonical rate CSV (header of RATING.md column names).")],
        currency: Annotated[str | None, typer.Option(help="Currency of a new tariff (ISO 4217).")] = None,
        decimals: Annotated[
            int | None, typer.Option(help="Decimals amounts are rounded to (new tariff).")
        ] = None,
        allow_past: Annotated[
            bool, typer.Option("--allow-past", help="Accept rows effective in the past.")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Load a whole rate history from a canonical CSV (migrations; all rows or none)."""
        report = tariffs.import_rates(
            app(), name, file, currency=currency, decimals=decimals, allow_past=allow_past
        )
        if as_json:
            print_json(report.as_dict())
        elif report.state == "rejected":
            err.print(f"[red]nothing loaded[/]: {len(report.errors)} problem(s) in {file}")
            for problem in report.errors[:50]:
                err.print(f"  {escape(str(problem))}")
        else:
            out.print(
                f"[green]tariff {name}[/]: {report.added} rate version(s) added, {report.unchanged} present"
            )
        if report.state == "rejected":
            raise typer.Exit(1)

    @tariff_cli.command("list")
    def tariff_list(as_json: JsonOption = False) -> None:
        """Tariffs with their currency, decimals, time zone and number of rate versions."""
        print_listing(
            listings.tariffs(app()),
            title="Tariffs",
            columns=("name", "currency", "decimals", "timezone", "rate_versions", "off_peak"),
            as_json=as_json,
        )

    @tariff_cli.command("show")
    def tariff_show(
        name: str,
        at: Annotated[str | None, typer.Option(help="The rates in force at this ISO time \\[now].")] = None,
        limit: Annotated[
            int | None,
            typer.Option(min=1, max=10**7, help="Rates listed \\[table: 50; JSON: every rate in force]."),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """A tariff's settings and its rates in force at a date."""
        view = tariff_admin.show_tariff(app(), name, parse_utc(at, field="--at") if at else None)
        if as_json:
            shown = view.as_dict()
            # How many are in force stays visible when the list is cut short.
            shown["rates_in_force"] = len(view.rates)
            if limit is not None:
                shown["rates"] = shown["rates"][:limit]
            print_json(shown)
            return
        limit = 50 if limit is None else limit
        out.print(
            f"[bold]{view.name}[/] {view.currency}, {view.decimals} decimals, per {view.rate_unit} s, "
            f"zone {view.timezone}; off-peak: {'; '.join(view.off_peak) or 'none'}"
        )
        table = DataTable(
            title=f"{len(view.rates):,} rate(s) in force at {view.at:%Y-%m-%d %H:%M} UTC", show_edge=False
        )
        for column in ("prefix", "since", "price", "off-peak", "intervals", "fee", "country", "description"):
            table.add_column(column)
        for r in view.rates[:limit]:
            table.add_row(
                r["prefix"],
                f"{r['effective_from']:%Y-%m-%d}",
                f"{r['first_price']}/{r['next_price']}",
                f"{r['off_peak_first_price']}/{r['off_peak_next_price']}"
                if r["off_peak_first_price"]
                else "",
                f"{r['first_interval']}/{r['next_interval']}",
                str(r["connect_fee"]),
                r["country"] or "",
                r["description"] or "",
            )
        out.print(table)

    @tariff_cli.command("set-off-peak")
    def set_off_peak(
        name: str,
        timezone: Annotated[str, typer.Option(help="The tariff's time zone, e.g. Europe/London.")],
        window: Annotated[
            list[str] | None, typer.Option(help='"mon-fri 20:00-08:00", "sat,sun"; repeatable; none: off.')
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Set a tariff's time zone and off-peak windows (RATING.md section 5)."""
        result = tariff_admin.set_off_peak(app(), name, timezone, window or [])
        if as_json:
            print_json(result)
        else:
            windows = "; ".join(result["windows"]) or "none (off-peak switched off)"
            out.print(f"[green]tariff {escape(name)}[/]: zone {timezone}, off-peak {windows}")

    @template_cli.command("list")
    def template_list(as_json: JsonOption = False) -> None:
        """Saved rate-deck templates."""
        rows = rate_templates.templates(app())
        if as_json:
            print_json(rows)
            return
        for row in rows:
            mapping = ", ".join(f"{k}={v}" for k, v in row["settings"].get("mapping", {}).items())
            out.print(f"[bold]{escape(row['name'])}[/] ({row['updated_at']}): {escape(str(mapping))}")

    @template_cli.command("show")
    def template_show(name: str) -> None:
        """One template's settings as JSON."""
        with app().catalog.reading() as session:
            print_json(rate_templates.load_template(session, name).as_dict())

    @fx_cli.command("set")
    def fx_set(
        currency: str,
        to: Annotated[str, typer.Option("--to", help="Currency the rate converts into.")],
        rate: Annotated[str, typer.Option(help="Value of one CURRENCY in --to units.")],
        valid_from: Annotated[str | None, typer.Option("--from", help="Effective from, ISO \\[now].")] = None,
    ) -> None:
        """Store an exchange rate."""
        result = tariff_admin.set_exchange_rate(
            app(), currency, to, rate, parse_utc(valid_from, field="--from") if valid_from else None
        )
        out.print(
            f"[green]1 {result['currency']} = {result['rate']} {result['to_currency']}[/] "
            f"from {result['effective_from']}"
        )

    @fx_cli.command("list")
    def fx_list(as_json: JsonOption = False) -> None:
        """Stored exchange rates."""
        rows = tariff_admin.exchange_rates(app())
        if as_json:
            print_json(rows)
            return
        for row in rows:
            out.print(
                f"1 {row['currency']} = {row['rate']} {row['to_currency']} from {row['effective_from']}"
            )


def _preview(request: DeckImportRequest) -> DeckImportRequest:
    return replace(request, preview=True, save_template=None, results_file=None)
