"""CLI of CDR delivery: schedules per customer, runs on demand (or from cron), the delivery log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from rerate.bootstrap import App
from rerate.entrypoints.console import err, out, print_json, print_listing
from rerate.entrypoints.options import JsonOption
from rerate.services import delivery as delivery_service
from rerate.services import delivery_schedules
from rerate.services.errors import InvalidInputError

delivery_cli = typer.Typer(
    help="CDR e-mails to customers: daily, weekly or monthly, in their own time zone.", no_args_is_help=True
)

_STATE_COLOURS = {
    "sent": "green",
    "offered": "yellow",
    "deferred": "yellow",
    "failed": "red",
    "skipped": "dim",
}


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--date: not a date like 2026-11-21: {text!r}") from None


def _show_run(run: delivery_service.DeliveryRun) -> None:
    if not run.outcomes:
        out.print("Nothing due" + (f" on {run.on}" if run.on else "") + ".")
        return
    for o in run.outcomes:
        colour = _STATE_COLOURS.get(o.state, "white")
        parts = f", {o.parts} parts" if o.parts > 1 else ""
        line = f"[{colour}]{o.state:>8}[/] {o.customer} {o.period} ({o.kind}): {o.rows:,} CDRs{parts}"
        if o.state == "sent":
            line += f", {o.bytes:,} bytes, {o.attempts} attempt(s)"
        out.print(line)
        for detail in (o.error, o.note):
            if detail:
                out.print(f"         {detail}")
    counts = ", ".join(
        f"{run.count(s)} {s}" for s in ("sent", "offered", "deferred", "failed", "skipped") if run.count(s)
    )
    out.print(f"[bold]{counts}[/]")


def register(cli: typer.Typer, app: Callable[[], App]) -> None:
    cli.add_typer(delivery_cli, name="delivery")

    @delivery_cli.command("add")
    def add(
        customer: Annotated[str, typer.Argument(help="Customer name.")],
        email: Annotated[list[str], typer.Option("--email", help="Recipient (repeatable).")],
        cadence: Annotated[str, typer.Option(help="daily, weekly or monthly.")],
        cc: Annotated[list[str] | None, typer.Option("--cc", help="Copy to (repeatable).")] = None,
        weekday: Annotated[str | None, typer.Option(help="Weekly: the day it is sent (mon..sun).")] = None,
        at: Annotated[str, typer.Option("--at", help="Local send time, HH:MM.")] = "06:00",
        timezone: Annotated[
            str | None, typer.Option(help="Time zone of the days covered \\[default: the customer's].")
        ] = None,
        format_: Annotated[str, typer.Option("--format", help="csv or xlsx.")] = "csv",
        columns: Annotated[
            str | None,
            typer.Option(help="Comma list of columns, each optionally NAME:Header (docs/delivery.md)."),
        ] = None,
        compress: Annotated[
            str | None, typer.Option(help="zip, gzip or none \\[default: zip for CSV, none for XLSX].")
        ] = None,
        max_attachment_mb: Annotated[
            int | None, typer.Option(min=1, help="Split larger files into parts \\[default: setting, 10].")
        ] = None,
        include_failed: Annotated[bool, typer.Option(help="Also send the failed XDRs.")] = False,
        corrections: Annotated[
            str, typer.Option(help="After a correction changes a sent period: offer or send.")
        ] = "offer",
        timestamps: Annotated[
            str | None,
            typer.Option("--timestamps-tz", help="Zone of the file's times \\[default: --timezone]."),
        ] = None,
        decimals: Annotated[
            int | None, typer.Option(help="Decimals of amounts \\[default: exactly as rated].")
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Schedule CDR e-mails for a customer."""
        view = delivery_schedules.add_schedule(
            app(),
            delivery_schedules.ScheduleRequest(
                customer=customer,
                to=email,
                cc=cc or [],
                cadence=cadence,
                weekday=weekday,
                at=at,
                timezone=timezone,
                format=format_,
                columns=columns,
                compress=compress,
                max_attachment_mb=max_attachment_mb,
                include_failed=include_failed,
                corrections=corrections,
                timestamp_zone=timestamps,
                money_decimals=decimals,
            ),
        )
        if as_json:
            print_json(view.as_dict())
            return
        when = (
            view.cadence + (f" on {view.weekday}" if view.weekday else "") + f" at {view.at} {view.timezone}"
        )
        out.print(f"[green]schedule {view.id}[/]: {escape(view.customer)}, {when}, to {', '.join(view.to)}")
        out.print(f"  {view.format} ({view.compress}), columns {view.columns}")

    @delivery_cli.command("list")
    def list_(
        all_: Annotated[bool, typer.Option("--all", help="Also stopped schedules.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """The delivery schedules."""
        views = delivery_schedules.list_schedules(app(), include_inactive=all_)
        rows = [
            v.as_dict() | {"to": ", ".join(v.to), "max_mb": v.max_attachment_bytes / (1 << 20)} for v in views
        ]
        if as_json:
            print_json([v.as_dict() for v in views])
            return
        columns = (
            "id",
            "customer",
            "cadence",
            "weekday",
            "at",
            "timezone",
            "to",
            "format",
            "compress",
            "active",
        )
        print_listing(rows, title="CDR delivery schedules", columns=columns, as_json=False)

    @delivery_cli.command("remove")
    def remove(schedule: Annotated[int, typer.Argument(help="Schedule id.")]) -> None:
        """Stop a schedule (its log is kept)."""
        view = delivery_schedules.remove_schedule(app(), schedule)
        out.print(f"[green]stopped[/] schedule {view.id} of {escape(view.customer)}")

    @delivery_cli.command("run")
    def run(
        on: Annotated[
            str | None,
            typer.Option(
                "--date", help="Send what is due on this local date \\[default: all due until now]."
            ),
        ] = None,
        customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
        resend: Annotated[bool, typer.Option(help="Send periods already delivered again.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Render and send the due CDR files; offer corrected files for periods changed since."""
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            disable=as_json or not err.is_terminal,
        )
        with progress:
            task = progress.add_task("deliveries", total=None)

            def advanced(done: int, total: int, label: str) -> None:
                progress.update(task, completed=done, total=total, description=label)

            result = delivery_service.run_deliveries(
                app(), on=_date(on), customer=customer, resend=resend, progress=advanced
            )
        if as_json:
            print_json(result.as_dict())
        else:
            _show_run(result)
        if result.count("failed") or result.count("deferred"):
            raise typer.Exit(3)

    @delivery_cli.command("resend")
    def resend_one(
        delivery: Annotated[int, typer.Argument(help="Delivery id from 'rerate delivery log'.")],
        to: Annotated[
            list[str] | None,
            typer.Option(
                "--to",
                help="Send only to this address (repeatable): a recipient the server refused. "
                "Default: the schedule's recipients and copies.",
            ),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Send a logged delivery again now (an offered correction is sent as the correction)."""
        outcome = delivery_service.resend_delivery(app(), delivery, to or ())
        if as_json:
            print_json(outcome.as_dict())
        else:
            _show_run(delivery_service.DeliveryRun(on=None, outcomes=[outcome]))
        if outcome.state in ("failed", "deferred"):
            raise typer.Exit(3)

    @delivery_cli.command("log")
    def log(
        customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=10**6, help="Newest entries shown.")] = 200,
        as_json: JsonOption = False,
    ) -> None:
        """The delivery log: schedule, period, rows, bytes, message ids, attempts, state, error."""
        rows = delivery_service.delivery_log(app(), customer=customer, limit=limit)
        if as_json:
            print_json(rows)
            return
        for row in rows:
            row["message_id"] = ", ".join(row["message_ids"])
        columns = (
            "id",
            "schedule",
            "customer",
            "period",
            "kind",
            "state",
            "rows",
            "bytes",
            "parts",
            "attempts",
            "sent_at",
            "message_id",
            "error",
        )
        print_listing(rows, title="CDR delivery log", columns=columns, as_json=False)
