"""The ``rerate`` command line.  Commands parse, call one service, render."""

from __future__ import annotations

import itertools
import sys
from datetime import datetime
from decimal import InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from sqlalchemy.exc import DatabaseError

from rerate.bootstrap import App, bootstrap
from rerate.catalog.database import schema_is_current
from rerate.entrypoints import (
    cli_corrections,
    cli_delivery,
    cli_ingest,
    cli_mediation,
    cli_reports,
    cli_service,
    cli_tariffs,
)
from rerate.entrypoints.console import DataTable, err, out, print_json, print_listing
from rerate.entrypoints.options import JsonOption
from rerate.services import export as export_service
from rerate.services import listings, parties
from rerate.services.errors import RerateError
from rerate.services.jsonable import plain
from rerate.services.setup import initialize
from rerate.services.timeparse import parse_utc
from rerate.settings import Settings, settings_problem

cli = typer.Typer(
    help="rerate: rate telecom XDRs and correct them safely (previewed, undoable, audited).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
tariff_cli = typer.Typer(help="Tariffs and their rate history.", no_args_is_help=True)
customer_cli = typer.Typer(help="Customers and their tariff assignments.", no_args_is_help=True)
account_cli = typer.Typer(help="Accounts (identifiers as they appear in XDRs).", no_args_is_help=True)
vendor_cli = typer.Typer(help="Vendors and their connections.", no_args_is_help=True)
xdr_cli = typer.Typer(help="XDRs in their current state.", no_args_is_help=True)
cli.add_typer(tariff_cli, name="tariff")
cli.add_typer(customer_cli, name="customer")
cli.add_typer(account_cli, name="account")
cli.add_typer(vendor_cli, name="vendor")
cli.add_typer(xdr_cli, name="xdr")

_state: dict[str, App] = {}

OtherCurrencyOption = Annotated[
    bool,
    typer.Option(
        "--allow-other-currency",
        help="Accept a tariff whose currency is not the customer's billing currency (nothing is converted).",
    ),
]
SinceOption = Annotated[str, typer.Option("--from", help="ISO UTC time.")]
FromOption = Annotated[
    str | None, typer.Option("--from", help="Effective from, ISO UTC (2026-10-01T00:00:00Z).")
]


@cli.callback()
def _main(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="RERATE_HOME",
            help="Home directory of catalog and ledger \\[default: ./rerate-home].",
        ),
    ] = None,
) -> None:
    settings = Settings(home=home) if home is not None else Settings()
    _state["settings"] = settings  # type: ignore[assignment]


def app(require_schema: bool = True) -> App:
    """The wired application, built on first use (nothing connects at import time)."""
    if "app" not in _state:
        given = _state.get("settings")
        settings = given if isinstance(given, Settings) else Settings()
        home = settings.resolved_home
        uninitialized = RerateError(
            f"the home {home} is not initialized, or was made by another version "
            "of rerate: run 'rerate init' (safe to repeat)"
        )
        if require_schema and not home.is_dir():  # a typo must not leave a folder
            raise RerateError(f"no rerate home at {home}: run 'rerate init' to create one")
        if require_schema and not settings.catalog_url and not (home / "catalog.sqlite").is_file():
            raise uninitialized  # nor an empty catalog file in a folder that is no home
        _state["app"] = bootstrap(settings)
        if require_schema and not schema_is_current(_state["app"].catalog.engine):
            raise uninitialized
    return _state["app"]


def _time(value: str | None, field: str) -> datetime | None:
    return parse_utc(value, field=field) if value else None


@cli.command()
def init(as_json: JsonOption = False) -> None:
    """Create or upgrade the home directory: catalog schema, country codes, ledger tables."""
    report = initialize(app(require_schema=False))
    admin = cli_service.first_admin(app())
    if as_json:
        print_json(
            {**plain(report), "admin_created": admin is not None, "admin_password": admin and admin[1]}
        )
        return
    state = "created" if report.schema_before is None else "up to date"
    out.print(f"[green]rerate home ready[/] at {report.home} (catalog schema {report.schema_now}, {state})")
    out.print(f"  catalog: {report.catalog}\n  ledger:  {report.ledger}")
    out.print(f"  {report.country_prefixes} country prefixes loaded from phonenumbers")
    if admin is not None:
        shown = (
            f"password [bold]{admin[1]}[/] (shown once)"
            if admin[1]
            else f"password from ${cli_service.ADMIN_PASSWORD_ENV}"
        )
        out.print(f"  first user of the web UI and API: [bold]admin[/], {shown}")


@customer_cli.command("list")
def customer_list(as_json: JsonOption = False) -> None:
    """Customers with their billing currency, time zone, tariff in force now and accounts."""
    rows = listings.parties(app())["customers"]
    print_listing(
        rows,
        title="Customers",
        columns=("name", "currency", "timezone", "tariff", "accounts"),
        as_json=as_json,
    )


@customer_cli.command("show")
def customer_show(name: str, as_json: JsonOption = False) -> None:
    """A customer's settings, tariff history, accounts (and when each was theirs) and closed periods."""
    shown = listings.customer(app(), name)
    if as_json:
        print_json(shown)
        return
    emails = ", ".join(shown["emails"]) or "no e-mail"
    out.print(
        f"[bold]{escape(shown['name'])}[/]: billed in {shown['currency']}, {shown['billing_period']}, "
        f"zone {shown['timezone']}, {escape(emails)}"
    )
    history = DataTable(title="Tariff history", show_edge=False)
    for column in ("from", "tariff"):
        history.add_column(column)
    for entry in shown["tariffs"]:
        history.add_row(_when(entry["from"]), entry["tariff"])
    out.print(history)
    owned = DataTable(title=f"{len(shown['accounts'])} account period(s)", show_edge=False)
    for column in ("account", "from", "until"):
        owned.add_column(column)
    for entry in shown["accounts"]:
        owned.add_row(
            entry["identifier"], _when(entry["from"]), _when(entry["until"]) if entry["until"] else ""
        )
    out.print(owned)
    closed = ", ".join(f"{p['period']} ({p['state']})" for p in shown["periods"]) or "none"
    out.print(f"billing periods closed: {closed}")


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


@customer_cli.command("add")
def customer_add(
    name: str,
    tariff: Annotated[str, typer.Option(help="Tariff the customer uses.")],
    valid_from: FromOption = None,
    currency: Annotated[str | None, typer.Option(help="Billing currency \\[default: the tariff's].")] = None,
    billing_period: Annotated[str, typer.Option(help="Billing period.")] = "monthly",
    timezone: Annotated[str, typer.Option(help="Customer's time zone.")] = "UTC",
    email: Annotated[list[str] | None, typer.Option(help="Billing e-mail address (repeatable).")] = None,
    allow_other_currency: OtherCurrencyOption = False,
) -> None:
    """Add a customer with its tariff."""
    result = parties.add_customer(
        app(),
        name,
        tariff=tariff,
        valid_from=_time(valid_from, "--from"),
        currency=currency,
        billing_period=billing_period,
        timezone=timezone,
        emails=email,
        allow_other_currency=allow_other_currency,
    )
    out.print(f"[green]customer {escape(result.name)}[/] (id {result.id}): {escape(result.detail)}")


@customer_cli.command("set-tariff")
def customer_set_tariff(
    name: str,
    tariff: str,
    valid_from: SinceOption,
    allow_other_currency: OtherCurrencyOption = False,
) -> None:
    """Assign another tariff to a customer from a point in time (history is kept)."""
    result = parties.set_customer_tariff(
        app(), name, tariff, parse_utc(valid_from, field="--from"), allow_other_currency=allow_other_currency
    )
    out.print(f"[green]customer {escape(result.name)}[/]: {escape(result.detail)}")


@account_cli.command("list")
def account_list(
    customer: Annotated[str | None, typer.Option(help="Only this customer's accounts (owned now).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Accounts with the customer owning them now and their own tariff, if any."""
    rows = listings.parties(app())["accounts"]
    if customer is not None:
        rows = [r for r in rows if r["customer"] == customer]
    print_listing(rows, title="Accounts", columns=("identifier", "customer", "own_tariff"), as_json=as_json)


@account_cli.command("add")
def account_add(
    ident: Annotated[str, typer.Argument(help="Identifier as it appears in XDRs.")],
    customer: Annotated[str, typer.Option(help="Customer the account belongs to.")],
    tariff: Annotated[str | None, typer.Option(help="Own tariff, overriding the customer's.")] = None,
    valid_from: FromOption = None,
    allow_other_currency: OtherCurrencyOption = False,
) -> None:
    """Add an account for a customer."""
    result = parties.add_account(
        app(),
        ident,
        customer=customer,
        tariff=tariff,
        valid_from=_time(valid_from, "--from"),
        allow_other_currency=allow_other_currency,
    )
    out.print(f"[green]account {escape(result.name)}[/] (id {result.id}): {escape(result.detail)}")


@account_cli.command("set-tariff")
def account_set_tariff(
    ident: str,
    tariff: str,
    valid_from: SinceOption,
    allow_other_currency: OtherCurrencyOption = False,
) -> None:
    """Give an account its own tariff from a point in time."""
    result = parties.set_account_tariff(
        app(), ident, tariff, parse_utc(valid_from, field="--from"), allow_other_currency=allow_other_currency
    )
    out.print(f"[green]account {escape(result.name)}[/]: {escape(result.detail)}")


@account_cli.command("set-customer")
def account_set_customer(ident: str, customer: str, valid_from: SinceOption) -> None:
    """Move an account to another customer from a point in time (history is kept)."""
    result = parties.set_account_customer(app(), ident, customer, parse_utc(valid_from, field="--from"))
    out.print(f"[green]account {escape(result.name)}[/]: {escape(result.detail)}")


@vendor_cli.command("list")
def vendor_list(as_json: JsonOption = False) -> None:
    """Vendors with their tariff in force now and their connection identifiers."""
    vendors = listings.parties(app())["vendors"]
    rows = vendors if as_json else [{**v, "connections": ", ".join(v["connections"])} for v in vendors]
    print_listing(rows, title="Vendors", columns=("name", "tariff", "connections"), as_json=as_json)


@vendor_cli.command("add")
def vendor_add(
    name: str,
    tariff: Annotated[str, typer.Option(help="Vendor's (cost) tariff.")],
    connection: Annotated[list[str], typer.Option(help="Connection identifier in XDRs (repeatable).")],
    valid_from: FromOption = None,
) -> None:
    """Add a vendor, its cost tariff and the connections that carry its traffic."""
    result = parties.add_vendor(
        app(), name, tariff=tariff, connections=connection, valid_from=_time(valid_from, "--from")
    )
    out.print(f"[green]vendor {escape(result.name)}[/] (id {result.id}): {escape(result.detail)}")


@vendor_cli.command("set-tariff")
def vendor_set_tariff(name: str, tariff: str, valid_from: SinceOption) -> None:
    """Price a vendor's traffic with another (cost) tariff from a point in time (history is kept)."""
    result = parties.set_vendor_tariff(app(), name, tariff, parse_utc(valid_from, field="--from"))
    out.print(f"[green]vendor {escape(result.name)}[/]: {escape(result.detail)}")


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


class ExportStatus(StrEnum):
    rated = "rated"
    failed = "failed"
    voided = "voided"
    all = "all"


XdrStatusOption = Annotated[ExportStatus, typer.Option(help="Which XDRs.")]
XdrCustomerOption = Annotated[str | None, typer.Option(help="Only this customer's XDRs.")]
XdrAccountOption = Annotated[str | None, typer.Option(help="Only this account's XDRs.")]
XdrFromOption = Annotated[str | None, typer.Option("--from", help="Connect time from (ISO UTC, inclusive).")]
XdrToOption = Annotated[str | None, typer.Option("--to", help="Connect time to (ISO UTC, exclusive).")]


@xdr_cli.command("export")
def xdr_export(
    out_file: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or parquet.")] = ExportFormat.csv,
    status: XdrStatusOption = ExportStatus.all,
    customer: XdrCustomerOption = None,
    account: XdrAccountOption = None,
    start: XdrFromOption = None,
    end: XdrToOption = None,
) -> None:
    """Export XDRs in their current state (after corrections), money as exact decimals."""
    report = export_service.export_xdrs(
        app(),
        out_file,
        fmt=fmt.value,
        status=status.value,
        customer=customer,
        account=account,
        start=_time(start, "--from"),
        end=_time(end, "--to"),
    )
    out.print(f"[green]{report.rows:,} XDR(s)[/] written to {report.path} ({report.format})")


#: What a search shows in its table (JSON carries every exported column).
_SEARCH_COLUMNS = (
    "connect_time",
    "source_id",
    "customer",
    "account",
    "cld",
    "duration",
    "status",
    "reason",
    "amount",
    "currency",
    "vendor",
    "vendor_status",
    "cost",
)


@xdr_cli.command("search")
def xdr_search(
    number: Annotated[
        str | None,
        typer.Option(help="Calling or called number starting with this, as received or as normalized."),
    ] = None,
    status: XdrStatusOption = ExportStatus.all,
    customer: XdrCustomerOption = None,
    account: XdrAccountOption = None,
    start: XdrFromOption = None,
    end: XdrToOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="XDRs shown, earliest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Look up XDRs in their current state (why was this call priced so?), earliest first."""
    rows = export_service.search_xdrs(
        app(),
        status=status.value,
        customer=customer,
        account=account,
        start=_time(start, "--from"),
        end=_time(end, "--to"),
        number=number,
        limit=limit,
    )
    title = f"{len(rows):,} XDR(s)" + (f" (the first {limit})" if len(rows) == limit else "")
    print_listing(rows, title=title, columns=_SEARCH_COLUMNS, as_json=as_json)


@cli.command()
def demo(
    xdrs: Annotated[
        int, typer.Option(min=1, max=10**9, help="How many XDRs the demo month has.")
    ] = 2_000_000,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the generated world.")] = 7,
    destinations: Annotated[int, typer.Option(min=10, max=10**6, help="Prefixes per rate deck.")] = 20_000,
) -> None:
    """Build a realistic carrier world in the home directory, ingest a month, summarize it."""
    from rerate.entrypoints.demo_view import show_demo

    show_demo(_state.get("settings"), xdrs=xdrs, seed=seed, destinations=destinations)


cli_corrections.register(cli, app)
cli_tariffs.register(tariff_cli, cli, app)
cli_ingest.register(cli, app)
cli_mediation.register(cli, app)
cli_reports.register(cli, app)
cli_delivery.register(cli, app)
cli_service.register(cli, app)


#: A path given that cannot be used (an output in a missing folder, a folder for a file...).
_PATH_ERRORS = (IsADirectoryError, NotADirectoryError, FileNotFoundError, FileExistsError, PermissionError)


def _json_requested(args: list[str]) -> bool:
    """Whether the command line asks for JSON output (``--json`` or ``--format json``)."""
    if "--json" in args or "--format=json" in args:
        return True
    return any(a == "--format" and b == "json" for a, b in itertools.pairwise(args))


def _fail(message: str, code: int) -> None:
    """One clear line on stderr; with JSON asked for, the same as an object on stdout for scripts."""
    err.print(f"[red]error:[/] {escape(message)}")  # messages quote TOML tables such as [fields]
    if _json_requested(sys.argv[1:]):
        print_json({"error": message, "exit_code": code})
    sys.exit(code)


def main() -> None:
    """Console entry point: operator errors are one clear line, never a traceback."""
    try:
        cli()
    except RerateError as exc:
        _fail(str(exc), exc.exit_code)
    except ValidationError as exc:  # a RERATE_* setting of the environment
        _fail(settings_problem(exc), 2)
    # What an option or a path can still trip over below the checks: one line, not a traceback.
    except OverflowError:
        _fail("a number or a date given is out of range", 2)
    except InvalidOperation:
        _fail("a value given is not a number", 2)
    except _PATH_ERRORS as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 1)
    except DatabaseError as exc:
        _fail(f"the catalog cannot be used: {exc.orig or exc}", 1)
    finally:
        if "app" in _state:
            _state["app"].close()


if __name__ == "__main__":
    main()
