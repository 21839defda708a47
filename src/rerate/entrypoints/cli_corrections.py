"""CLI of corrections: ``rerate rerate`` and ``rerate jobs``."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rerate.bootstrap import App
from rerate.domain.rating import Side
from rerate.entrypoints.console import DataTable, RichJobProgress, err, out, print_json
from rerate.entrypoints.options import AllowClosedOption, AtOption, DryRunOption, JsonOption, YesOption
from rerate.services import audit_log, compaction, corrections, periods, vacuum
from rerate.services import cache as cache_service
from rerate.services import jobs as jobs_service
from rerate.services import rollback as rollback_service
from rerate.services import schedule as schedule_service
from rerate.services.corrections import CorrectionReport, RerateRequest
from rerate.services.diff_file import diff_csv
from rerate.services.errors import InvalidInputError, RerateError
from rerate.services.periods import closed_conflict, closed_period_names
from rerate.services.reprocess import reprocess, reprocess_correction
from rerate.services.scopes import resolve_scope
from rerate.services.timeparse import parse_utc

jobs_cli = typer.Typer(help="Correction jobs: list, inspect, revert.", no_args_is_help=True)
period_cli = typer.Typer(help="Billing periods: close, list.", no_args_is_help=True)
cache_cli = typer.Typer(help="The daily totals (billing cache).", no_args_is_help=True)
ledger_cli = typer.Typer(help="Maintenance of the XDR ledger's files.", no_args_is_help=True)
collection_cli = typer.Typer(
    help="Collections (ingested files): list, inspect, roll back.", no_args_is_help=True
)

Many = Annotated[list[str] | None, typer.Option()]


class SideChoice(StrEnum):
    customer = "customer"
    vendor = "vendor"
    both = "both"


def _scope(app: App, **names: Any) -> Any:
    with app.catalog.reading() as session:
        return resolve_scope(
            session,
            customers=names["customer"] or (),
            accounts=names["account"] or (),
            vendors=names["vendor"] or (),
            prefixes=names["prefix"] or (),
            countries=names["country"] or (),
            destination_groups=names["destination_group"] or (),
            collections=[_collection_id(c) for c in names["collection"] or ()],
            statuses=names["status"] or (),
            start=parse_utc(names["start"], field="--from") if names["start"] else None,
            end=parse_utc(names["end"], field="--to") if names["end"] else None,
        )


def _money(values: dict[str, dict[str, Decimal]]) -> str:
    parts = [f"{c} amount {v['amount']:,f} cost {v['cost']:,f}" for c, v in sorted(values.items())]
    return "; ".join(parts) or "-"


def show_report(report: CorrectionReport) -> None:
    out.print(f"[bold]job {report.job_id}[/] ({report.state}): {escape(report.description)}")
    out.print(f"  XDRs in scope: {report.in_scope:,}   changed: {report.changed:,}")
    out.print(f"  failures cured: {report.cured:,}")
    out.print(f"  before: {_money(report.before)}")
    out.print(f"  after:  {_money(report.after)}")
    out.print(f"  delta:  {_money(report.delta)}")
    if report.new_failures:
        failures = ", ".join(f"{k} {v:,}" for k, v in report.new_failures.items())
        out.print(f"  [yellow]new failures[/]: {failures}")
    if report.adjustments:
        periods = ", ".join(closed_period_names(report.adjustments))
        verb = "records" if report.state == "applied" else "would record"
        out.print(
            f"  [yellow]closed billing periods touched[/]: {escape(periods)}; it {verb} "
            f"{len(report.adjustments):,} adjustment line(s) for the open period"
        )
    for title, unordered, key, limit in (
        ("by customer", report.by_customer, "customer", 20),
        ("by destination (largest changes)", report.by_destination, "country", 10),
        ("by day", report.by_day, "day", 31),
    ):
        if not unordered:
            continue
        rows = sorted(unordered, key=lambda r: -abs(r["amount_delta"])) if key == "country" else unordered
        table = DataTable(title=f"Delta {title}")
        for column in (key, "currency", "xdrs", "amount delta", "cost delta"):
            table.add_column(column, justify="right" if column not in (key, "currency") else "left")
        for row in rows[:limit]:
            table.add_row(
                str(row[key] or "-"),
                str(row["currency"]),
                f"{row['xdrs']:,}",
                f"{row['amount_delta']:,f}",
                f"{row['cost_delta']:,f}",
            )
        if len(rows) > limit:
            more = len(rows) - limit
            table.caption = f"... and {more} more (every changed XDR: rerate jobs diff {report.job_id})"
        out.print(table)
    if report.diff_path:
        out.print(f"  every changed XDR, old and new values: rerate jobs diff {report.job_id} (CSV)")


def register(cli: typer.Typer, app: Any) -> None:
    """Add the correction commands to the main CLI (``app`` builds the wired application)."""

    @cli.command("rerate")
    def rerate_command(
        customer: Many = None,
        account: Many = None,
        vendor: Many = None,
        prefix: Many = None,
        country: Many = None,
        destination_group: Many = None,
        collection: Many = None,
        status: Many = None,
        start: Annotated[str | None, typer.Option("--from", help="Connect time from (ISO UTC).")] = None,
        end: Annotated[str | None, typer.Option("--to", help="Connect time to, exclusive (ISO UTC).")] = None,
        tariff: Annotated[str | None, typer.Option(help="Price every XDR in scope with this tariff.")] = None,
        ghost_percent: Annotated[
            str,
            typer.Option(
                help="Ghost time: bill usage x (100 + percent) / 100, rounded up, always from the "
                "original usage (0 to 1000)."
            ),
        ] = "0",
        side: Annotated[SideChoice, typer.Option(help="Which side to re-price.")] = SideChoice.both,
        dry_run: DryRunOption = False,
        allow_closed: AllowClosedOption = False,
        at: AtOption = None,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Re-price a scope with today's configuration (or a tariff override); dry run, then apply."""
        wired = app()
        scope = _scope(
            wired,
            customer=customer,
            account=account,
            vendor=vendor,
            prefix=prefix,
            country=country,
            destination_group=destination_group,
            collection=collection,
            status=status,
            start=start,
            end=end,
        )
        sides = (Side.CUSTOMER, Side.VENDOR) if side is SideChoice.both else (Side(side.value),)
        request = RerateRequest(
            scope=scope,
            tariff=tariff,
            ghost_percent=corrections.parse_ghost_percent(ghost_percent),
            sides=sides,
            allow_closed=allow_closed,
        )
        if at is not None:  # an empty --at (an unset variable in a script) is refused, not "now"
            _schedule(wired, corrections.rerate_correction(wired, request), at, as_json, dry_run)
            return
        _preview_then_apply(
            lambda dry, progress: corrections.rerate(wired, replace(request, dry_run=dry), progress),
            dry_run,
            yes,
            as_json,
            allow_closed,
        )

    @jobs_cli.command("list")
    def jobs_list(as_json: JsonOption = False) -> None:
        """Every job, newest first."""
        rows = jobs_service.jobs(app())
        if as_json:
            print_json([_job_dict(j) for j in rows])
            return
        table = DataTable(title="Jobs")
        for column in ("id", "kind", "state", "by", "created", "in scope", "changed", "what"):
            table.add_column(column)
        for j in rows:
            table.add_row(
                str(j.id),
                j.kind,
                f"scheduled for {j.scheduled_for:%Y-%m-%d %H:%M} UTC"
                if j.state == "scheduled" and j.scheduled_for is not None
                else j.state,
                j.actor,
                j.created_at.strftime("%Y-%m-%d %H:%M"),
                f"{j.in_scope:,}",
                f"{j.changed:,}",
                j.description,
            )
        out.print(table)

    @jobs_cli.command("show")
    def jobs_show(job_id: int, as_json: JsonOption = False) -> None:
        """One job: scope, parameters, totals, where its diff is."""
        found = jobs_service.job(app(), job_id)
        if as_json:
            print_json(_job_dict(found))
            return
        for key, value in _job_dict(found).items():
            out.print(f"[bold]{key}[/]: {value}")

    @jobs_cli.command("diff")
    def jobs_diff(
        job_id: int,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Copy the CSV here (default: print its path).")
        ] = None,
    ) -> None:
        """Every XDR the job changed, old and new values, as CSV (made from the job's Arrow diff file)."""
        found = jobs_service.job(app(), job_id)
        if not found.diff_path:
            err.print(f"[red]job {job_id} has no diff file[/]")
            raise typer.Exit(1)
        if not Path(found.diff_path).is_file():
            err.print(
                f"[red]job {job_id}'s diff file is gone ('rerate jobs prune-diffs'? see 'rerate audit')[/]"
            )
            raise typer.Exit(1)
        made = diff_csv(Path(found.diff_path))
        if output is None:
            out.print(str(made))
            return
        shutil.copyfile(made, output)
        out.print(f"{output}")

    @jobs_cli.command("prune-diffs")
    def jobs_prune_diffs(
        older_than: Annotated[
            int,
            typer.Option(
                "--older-than", help="Prune the diffs of jobs finished more than this many days ago."
            ),
        ] = 30,
        include_applied: Annotated[
            bool,
            typer.Option(
                "--include-applied", help="Applied and reverted jobs' diffs too, not only previews'."
            ),
        ] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Delete old jobs' diff files (a 10-million-XDR preview keeps about 1.5 GB); jobs stay."""
        report = jobs_service.prune_diffs(
            app(), older_than=timedelta(days=older_than), include_applied=include_applied, dry_run=dry_run
        )
        if as_json:
            print_json(report)
            return
        verb = "would be deleted" if dry_run else "deleted"
        out.print(
            f"{len(report.jobs):,} job(s): {report.files:,} diff file(s), {report.bytes / 1e6:,.1f} MB {verb}"
        )

    @jobs_cli.command("revert")
    def jobs_revert(
        job_id: int,
        allow_closed: AllowClosedOption = False,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Undo an applied job, restoring the exact previous state of its XDRs."""
        wired = app()
        target = jobs_service.job(wired, job_id)
        _confirm(yes, as_json, f"Revert job {job_id} ({target.description})?")
        report = jobs_service.revert(wired, job_id, allow_closed=allow_closed)
        if as_json:
            print_json(report)
        else:
            out.print(
                f"[green]job {job_id} reverted[/] by job {report.job_id}: {report.changed:,} XDR(s) restored"
            )

    @jobs_cli.command("apply")
    def jobs_apply(
        job_id: int,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Apply a dry run (a planned job, such as a rate import's proposed re-rating) as a new job."""
        wired = app()
        target = jobs_service.job(wired, job_id)
        _confirm(
            yes,
            as_json,
            f"Apply job {job_id} ({target.description}): change about {target.changed:,} XDR(s)?",
        )
        report = _with_progress(
            lambda _dry, progress: schedule_service.apply_planned(wired, job_id, progress), False, as_json
        )
        print_json(report) if as_json else show_report(report)

    @cli.command("reprocess")
    def reprocess_command(
        failed: Annotated[
            bool, typer.Option("--failed", help="Only XDRs that failed on either side.")
        ] = False,
        every: Annotated[
            bool, typer.Option("--all", help="Rated XDRs too (e.g. after set-customer).")
        ] = False,
        customer: Many = None,
        account: Many = None,
        vendor: Many = None,
        prefix: Many = None,
        country: Many = None,
        destination_group: Many = None,
        collection: Many = None,
        start: Annotated[str | None, typer.Option("--from", help="Connect time from (ISO UTC).")] = None,
        end: Annotated[str | None, typer.Option("--to", help="Connect time to, exclusive (ISO UTC).")] = None,
        dry_run: DryRunOption = False,
        allow_closed: AllowClosedOption = False,
        at: AtOption = None,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Re-mediate and re-rate XDRs after the configuration was fixed."""
        if failed == every:
            raise InvalidInputError("say which XDRs: --failed or --all (one of them)")
        wired = app()
        statuses = ["failed"] if failed else None
        scope = _scope(
            wired,
            customer=customer,
            account=account,
            vendor=vendor,
            prefix=prefix,
            country=country,
            destination_group=destination_group,
            collection=collection,
            status=statuses,
            start=start,
            end=end,
        )
        if at is not None:  # an empty --at (an unset variable in a script) is refused, not "now"
            correction = reprocess_correction(scope, failed_only=failed, allow_closed=allow_closed)
            _schedule(wired, correction, at, as_json, dry_run)
            return
        _preview_then_apply(
            lambda dry, progress: reprocess(
                wired, scope, failed_only=failed, dry_run=dry, allow_closed=allow_closed, progress=progress
            ),
            dry_run,
            yes,
            as_json,
            allow_closed,
        )

    @collection_cli.command("list")
    def collection_list(as_json: JsonOption = False) -> None:
        """Every collection, newest first."""
        rows = rollback_service.collections(app())
        if as_json:
            print_json(rows)
            return
        table = DataTable(title="Collections")
        for column in (
            "id",
            "file",
            "state",
            "read",
            "loaded",
            "duplicates",
            "rejected",
            "skipped",
            "failed",
            "template",
            "loaded at",
        ):
            table.add_column(column)
        for c in rows:
            table.add_row(
                str(c["collection_id"]),
                c["file"],
                c["state"],
                f"{c['read']:,}",
                f"{c['loaded']:,}",
                f"{c['duplicates']:,}",
                f"{c['rejected']:,}",
                f"{c['skipped']:,}",
                f"{c['failed']:,}",
                c["template"],
                c["finished_at"].strftime("%Y-%m-%d %H:%M") if c["finished_at"] else "",
            )
        out.print(table)

    @collection_cli.command("show")
    def collection_show(collection_id: int, as_json: JsonOption = False) -> None:
        """One collection: counts, state, checksum, rejects file."""
        found = [c for c in rollback_service.collections(app()) if c["collection_id"] == collection_id]
        if not found:
            raise RerateError(f"no collection {collection_id} (see 'rerate collection list')")
        if as_json:
            print_json(found[0])
            return
        for key, value in found[0].items():
            out.print(f"[bold]{key}[/]: {value}")

    @collection_cli.command("rollback")
    def collection_rollback(
        collection_id: int,
        dry_run: DryRunOption = False,
        allow_closed: AllowClosedOption = False,
        at: AtOption = None,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Void every XDR of a collection (undo with 'rerate jobs revert')."""
        wired = app()
        if at is not None:  # an empty --at (an unset variable in a script) is refused, not "now"
            correction = rollback_service.rollback_correction(wired, collection_id, allow_closed=allow_closed)
            _schedule(wired, correction, at, as_json, dry_run)
            return
        _preview_then_apply(
            lambda dry, progress: rollback_service.rollback(
                wired, collection_id, dry_run=dry, allow_closed=allow_closed, progress=progress
            ),
            dry_run,
            yes,
            as_json,
            allow_closed,
        )

    @cache_cli.command("sync")
    def cache_sync(
        start: Annotated[str | None, typer.Option("--from", help="First day (ISO date or time).")] = None,
        end: Annotated[str | None, typer.Option("--to", help="Last day (ISO date or time).")] = None,
        check: Annotated[bool, typer.Option("--check", help="Only report differences.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Compare the daily totals with the ledger; repair them unless --check."""
        report = cache_service.sync(
            app(),
            start=parse_utc(start, field="--from").date() if start else None,
            end=parse_utc(end, field="--to").date() if end else None,
            check=check,
        )
        if as_json:
            print_json(report)
        else:
            verb = "repaired" if report.repaired else "found"
            out.print(f"{report.checked_days} day(s) checked: {len(report.differences)} difference(s) {verb}")
            for difference in report.differences[:20]:
                out.print(f"  {difference}")
        if check and report.differences:
            raise typer.Exit(1)

    @ledger_cli.command("compact")
    def ledger_compact(
        start: Annotated[str | None, typer.Option("--from", help="First call date (ISO).")] = None,
        end: Annotated[str | None, typer.Option("--to", help="Last call date (ISO).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Merge each day's small XDR files per collection into one file sorted by customer.

        Corrections and reports of a few customers then skip the rest of the day.  No XDR
        changes; run it after large ingests or nightly (it takes the ledger lock).
        """
        first = parse_utc(start, field="--from").date() if start else None
        last = parse_utc(end, field="--to").date() if end else None
        if as_json:
            report = compaction.compact(app(), start=first, end=last)
        else:
            with out.status("compacting the XDR files...") as status:
                report = compaction.compact(
                    app(),
                    start=first,
                    end=last,
                    progress=lambda day, xdrs: status.update(f"compacted up to {day} ({xdrs:,} XDRs)"),
                )
        if as_json:
            print_json(report)
            return
        out.print(
            f"{report.days} day(s) compacted: {report.files_before:,} files -> {report.files_after:,} "
            f"({report.xdrs:,} XDRs) in {report.seconds:.1f} s"
        )

    @ledger_cli.command("vacuum")
    def ledger_vacuum(
        retain_hours: Annotated[
            int, typer.Option("--retain-hours", help="Keep files removed less than this many hours ago.")
        ] = vacuum.DEFAULT_RETENTION_HOURS,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Delete the files compaction replaced (and crash recovery removed) over a week ago.

        Earlier versions of the ledger can no longer be read from before the retention; the
        versions closed billing periods recorded are always kept.
        """
        report = vacuum.vacuum(app(), retention_hours=retain_hours, dry_run=dry_run)
        if as_json:
            print_json(report)
            return
        files = sum(report.files.values())
        verb = "would be deleted" if dry_run else "deleted"
        megabytes = report.bytes / 1e6
        out.print(f"{files:,} file(s), {megabytes:,.1f} MB {verb} (removed over {retain_hours} h ago)")

    @cli.command("audit")
    def audit_command(
        limit: Annotated[int, typer.Option(min=1, max=10**6, help="How many entries, newest first.")] = 50,
        as_json: JsonOption = False,
    ) -> None:
        """Who changed what, when: catalog changes, ingests and jobs."""
        rows = audit_log.entries(app(), limit=limit)
        if as_json:
            print_json(rows)
            return
        table = DataTable(title="Audit trail")
        for column in ("when", "who", "action", "subject", "before", "after"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["at"].strftime("%Y-%m-%d %H:%M:%S"),
                row["actor"],
                row["action"],
                row["subject"],
                str(row["before"] or ""),
                str(row["after"] or ""),
            )
        out.print(table)

    @jobs_cli.command("run-due")
    def jobs_run_due(as_json: JsonOption = False) -> None:
        """Apply every scheduled job whose time has come (for cron; the service runs it itself)."""
        results = schedule_service.run_due(app())
        failed = [r for r in results if isinstance(r, schedule_service.DueNote) and r.outcome == "failed"]
        if as_json:  # one kind of object per job: a correction's report, or what became of it
            print_json(
                [
                    {"job_id": r.job_id, "state": r.outcome, "message": str(r)}
                    if isinstance(r, schedule_service.DueNote)
                    else r
                    for r in results
                ]
            )
        else:
            if not results:
                out.print("no scheduled job is due")
            for result in results:
                if isinstance(result, str):
                    (err if result in failed else out).print(escape(result))
                else:
                    show_report(result)
        if failed:  # cron sees it
            raise typer.Exit(3)

    @jobs_cli.command("cancel")
    def jobs_cancel(job_id: int) -> None:
        """Cancel a scheduled job before it runs."""
        schedule_service.cancel(app(), job_id)
        out.print(f"[green]job {job_id} cancelled[/]")

    @period_cli.command("close")
    def period_close(customer: str, period: Annotated[str, typer.Option("--period", help="YYYY-MM")]) -> None:
        """Close a customer's billing period: later changes to it become adjustment lines."""
        closed = periods.close_period(app(), customer, period)
        out.print(f"[green]{escape(customer)} {period} closed[/]: {closed.summary or 'no rated traffic'}")

    @period_cli.command("list")
    def period_list(
        customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Closed billing periods with their totals as closed."""
        rows = periods.list_periods(app(), customer)
        if as_json:
            print_json(rows)
            return
        table = DataTable(title="Closed periods")
        for column in ("customer", "period", "closed", "by", "totals as closed"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["customer"],
                row["period"],
                row["closed_at"].strftime("%Y-%m-%d %H:%M"),
                row["closed_by"],
                str(row["summary"]),
            )
        out.print(table)

    cli.add_typer(period_cli, name="period")
    cli.add_typer(jobs_cli, name="jobs")
    cli.add_typer(collection_cli, name="collection")
    cli.add_typer(cache_cli, name="cache")
    cli.add_typer(ledger_cli, name="ledger")


def _schedule(wired: App, correction: Any, at: str, as_json: bool, dry_run: bool) -> None:
    if dry_run:  # a scheduled job applies: never let a preview turn into a change
        raise InvalidInputError(
            "a dry run runs now: --at is for applying a correction later (drop --dry-run)"
        )
    when = schedule_service.when_to_run(at)
    job_id = schedule_service.schedule(wired, correction, when)
    if as_json:
        print_json({"job_id": job_id, "state": "scheduled", "at": when})
    else:
        out.print(
            f"[green]scheduled[/] as job {job_id} for {when:%Y-%m-%d %H:%M} UTC: {correction.description}"
        )
        out.print("  'rerate jobs run-due' applies it once due; 'rerate jobs cancel' drops it")


def _collection_id(text: str) -> int:
    if not text.strip().isdigit() or len(text.strip()) > 18:
        raise InvalidInputError(
            f"--collection {text!r} is not a collection id (see 'rerate collection list')"
        )
    return int(text)


def _confirm(yes: bool, as_json: bool, question: str, *, previewed: bool = False) -> None:
    """Go on with --yes, or after the operator says so at a terminal; refuse otherwise.

    With ``--json`` and nothing printed yet (``previewed`` false), the refusal is the command's
    JSON answer: an error object on stdout, as every other error of a ``--json`` command."""
    if yes:
        return
    if as_json and not previewed:
        raise RerateError("not done: pass --yes to go on (--json never asks)")
    if as_json or not sys.stdin.isatty():
        err.print("[yellow]not done[/]: pass --yes to go on without a prompt")
        raise typer.Exit(1)
    if not typer.confirm(escape(question), default=False):
        raise typer.Exit(1)


def _with_progress(
    run: Callable[[bool, Any], CorrectionReport], dry: bool, as_json: bool
) -> CorrectionReport:
    with RichJobProgress(enabled=not as_json and err.is_terminal) as progress:
        return run(dry, progress)


def _preview_then_apply(
    run: Callable[[bool, Any], CorrectionReport],
    dry_run: bool,
    yes: bool,
    as_json: bool,
    allow_closed: bool,
) -> None:
    """Dry run first unless --yes; apply after confirmation (or with --yes)."""
    if dry_run or not yes:
        preview = _with_progress(run, True, as_json)
        print_json(preview) if as_json else show_report(preview)
        if dry_run or preview.changed == 0:
            return
        if preview.adjustments and not allow_closed and not as_json:
            # Refused now, not after the operator says yes and the apply has read every day again.
            # (The JSON preview lists the adjustments; a script applies with --yes.)
            raise closed_conflict("this correction", "apply", preview.adjustments)
        _confirm(False, as_json, f"Apply: change {preview.changed:,} XDR(s)?", previewed=True)
    report = _with_progress(run, False, as_json)
    print_json(report) if as_json else show_report(report)


def _job_dict(job: Any) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "kind": job.kind,
        "state": job.state,
        "description": job.description,
        "scope": job.scope,
        "parameters": job.parameters,
        "actor": job.actor,
        "created_at": job.created_at,
        "scheduled_for": job.scheduled_for,
        "finished_at": job.finished_at,
        "in_scope": job.in_scope,
        "changed": job.changed,
        "totals": job.totals,
        "diff_path": job.diff_path,
        "reverts_job_id": job.reverts_job_id,
        "reverted_by_job_id": job.reverted_by_job_id,
        "error": job.error,
    }
