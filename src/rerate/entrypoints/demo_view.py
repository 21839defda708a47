"""Rendering of ``rerate demo``."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from rerate.bootstrap import bootstrap
from rerate.entrypoints.cli_corrections import show_report
from rerate.entrypoints.console import DataTable, RichIngestProgress, err, out
from rerate.services.demo import prepare_home, run_demo
from rerate.services.worldgen import WorldSpec
from rerate.settings import Settings


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def show_demo(settings: Any, *, xdrs: int, seed: int, destinations: int = 20_000) -> None:
    settings = settings if isinstance(settings, Settings) else Settings()
    prepare_home(settings.resolved_home)
    app = bootstrap(settings)
    try:
        with RichIngestProgress(enabled=err.is_terminal) as progress:
            report = run_demo(
                app,
                WorldSpec(xdrs=xdrs, seed=seed, prefixes=destinations),
                progress=progress,
                say=lambda text: out.print(f"[bold cyan]>[/] {text}"),
            )
    finally:
        app.close()
    table = DataTable(title="Collections")
    for column in ("file", "id", "read", "loaded", "duplicates", "rejected", "failed", "seconds"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for c in report.collections:
        table.add_row(
            c.file.rsplit("/", 1)[-1],
            str(c.collection_id),
            f"{c.read:,}",
            f"{c.loaded:,}",
            f"{c.duplicates:,}",
            f"{c.rejected:,}",
            f"{c.failed:,}",
            f"{c.seconds:.1f}",
        )
    out.print(table)
    if report.preview is not None and report.applied is not None:
        out.print(f"\n[bold cyan]>[/] Correction: {report.correction_story}")
        out.print("[bold]Preview[/] (dry run, nothing written):")
        show_report(report.preview)
        out.print(
            f"[bold green]Applied[/] as job {report.applied.job_id}: {report.applied.changed:,} XDR(s) got a "
            f"new revision; undo with 'rerate jobs revert {report.applied.job_id}'"
        )

    summary = DataTable(title="Summary per customer (rated XDRs; from the daily totals)")
    for column in (
        "customer",
        "cur",
        "calls",
        "minutes",
        "revenue",
        "cost",
        "margin",
        "failed",
        "failed by reason",
    ):
        summary.add_column(
            column, justify="left" if column in ("customer", "cur", "failed by reason") else "right"
        )
    for s in report.summary:
        reasons = ", ".join(
            f"{k} {v:,}" for k, v in sorted(s.failed_by_reason.items(), key=lambda kv: -kv[1])
        )
        margin = s.margin
        summary.add_row(
            s.customer,
            s.currency,
            f"{s.calls:,}",
            f"{s.minutes:,.0f}",
            _money(s.revenue),
            _money(s.cost),
            _money(margin) if margin is not None else "n/a",
            f"{s.failed:,}",
            reasons,
        )
    revenue = sum((s.revenue for s in report.summary), Decimal(0))
    cost = sum((s.cost for s in report.summary), Decimal(0))
    summary.add_section()
    summary.add_row(
        "All customers",
        "",
        f"{sum(s.calls for s in report.summary):,}",
        f"{sum((s.minutes for s in report.summary), Decimal(0)):,.0f}",
        _money(revenue),
        _money(cost),
        _money(revenue - cost),
        f"{sum(s.failed for s in report.summary):,}",
        "",
    )
    out.print(summary)
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in report.timings.items())
    out.print(f"[dim]timings: {timing}[/]")
    home = settings.resolved_home
    command = sys.argv[0] if sys.argv and sys.argv[0].endswith("rerate") else "rerate"
    late = report.collections[-1]
    out.print(
        f"\n[bold]Try next[/] (the demo's home is {home}):\n"
        f"  {command} --home {home} xdr export --status failed --out failed.csv\n"
        f"  {command} --home {home} xdr export --customer '{report.world.customers[0].name}' "
        "--out customer.csv\n"
        f"  cat {late.rejects_path}     # rejected and duplicate rows, with line and reason\n"
        f"  {command} --home {home} ingest {report.world.xdr_files[0]}     # loads nothing: same file\n"
        f"  {command} --home {home} report summary --period {report.world.spec.month:%Y-%m} --format csv\n"
        f"  {command} --home {home} report failures     # what to fix before invoicing\n"
        f"  {command} --home {home} mediation test {report.world.xdr_files[0]} --limit 5\n"
        f"  {command} --home {home} delivery add '{report.world.customers[0].name}' --email noc@example.com "
        "--cadence daily     # then: delivery run --date "
        f"{report.world.spec.month:%Y-%m}-15 (with RERATE_SMTP_HOST set)\n"
        f"  {command} --home {home} serve     # web UI and REST API on http://127.0.0.1:8000/ "
        "(the first start prints the admin password)\n"
        f"  {command} --help"
    )
