"""A month's summary report from the aggregates, against the same summary computed from raw XDRs.

The demo world's month of ``--xdrs`` XDRs is ingested; then the summary by
customer and currency (calls, seconds, billed, revenue, cost, failed) is
computed the way ``rerate report summary`` does, from the daily totals, and,
as the baseline in the same run, by scanning the XDR table's current state.
The same again per customer and matched prefix (the monthly per-prefix
totals against the XDRs).  The script checks both give the same figures.

    python bench/bench_reports.py --xdrs 5000000
    python bench/bench_reports.py --xdrs 50000000      # the issue's scale (about 6 minutes of ingest)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rerate.bootstrap import bootstrap
from rerate.ledger.reader import open_views
from rerate.services import report as report_service
from rerate.services.demo import load_world
from rerate.services.ingest import ingest
from rerate.services.report import ReportRequest, summary_report
from rerate.services.setup import initialize
from rerate.services.visibility import current_visibility
from rerate.services.worldgen import WorldSpec, generate_world
from rerate.settings import Settings

from common import timed

RAW_SUMMARY = """
SELECT customer_id, currency,
       count(*) FILTER (WHERE status = 'rated') AS calls,
       coalesce(sum(duration) FILTER (WHERE status = 'rated'), 0) AS seconds,
       coalesce(sum(billed) FILTER (WHERE status = 'rated'), 0) AS billed,
       coalesce(sum(amount) FILTER (WHERE status = 'rated'), 0) AS revenue,
       coalesce(sum(cost) FILTER (WHERE vendor_status = 'rated'), 0) AS cost,
       count(*) FILTER (WHERE status = 'failed' OR vendor_status = 'failed') AS failed
FROM xdrs WHERE customer_id IS NOT NULL AND connect_time >= ? AND connect_time < ?
GROUP BY ALL
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xdrs", type=int, default=5_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench-data/reports"))
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    spec = WorldSpec(xdrs=args.xdrs)
    world = generate_world(spec, work / "world")
    app = bootstrap(Settings(home=work / "home"))
    initialize(app)
    load_world(app, world)
    started = time.perf_counter()
    ingest(app, [world.xdr_files[0]])
    print(f"ledger: {args.xdrs:,} XDRs ingested in {time.perf_counter() - started:.0f} s")
    period = f"{spec.month:%Y-%m}"
    request = ReportRequest(period=period, group_by=["customer"])
    report, seconds = timed(lambda: summary_report(app, request), repeat=3)

    with app.catalog.reading() as session:
        visibility = current_visibility(session)
    start, end = (
        f"{period}-01",
        f"{spec.month.year + spec.month.month // 12}-{spec.month.month % 12 + 1:02d}-01",
    )

    def from_raw() -> list[tuple[object, ...]]:
        con = open_views(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
        return con.execute(RAW_SUMMARY, [start, end]).fetchall()

    raw, raw_seconds = timed(from_raw, repeat=1)
    by_totals = {
        (line["calls"], line["revenue"]) for line in report.lines if line["customer"] != "(unknown account)"
    }
    by_raw = {(int(r[2]), Decimal(r[5])) for r in raw if int(r[2])}
    if by_totals != by_raw:
        raise SystemExit(
            f"the summary disagrees with the raw XDRs: {sorted(by_totals)[:3]} vs {sorted(by_raw)[:3]}"
        )
    print(
        f"summary of {period} by customer from the daily totals: {seconds:.3f} s ({len(report.lines)} lines; goal <= 1 s)"
    )
    print(
        f"the same from the raw XDRs: {raw_seconds:.2f} s; the report is {raw_seconds / seconds:.0f}x faster"
    )
    by_prefix = ReportRequest(period=period, group_by=["customer", "prefix"])
    prefix_report, prefix_seconds = timed(lambda: summary_report(app, by_prefix), repeat=3)

    def prefix_from_raw() -> report_service.Report:  # the same report, its lines computed from the XDRs
        chosen = report_service._source
        report_service._source = lambda *_: "xdrs"  # type: ignore[assignment]
        try:
            return summary_report(app, by_prefix)
        finally:
            report_service._source = chosen

    raw_prefix, raw_prefix_seconds = timed(prefix_from_raw, repeat=1)
    if raw_prefix.source != "xdrs" or raw_prefix.lines != prefix_report.lines:
        raise SystemExit("the per-prefix summary from the aggregate disagrees with the one from the XDRs")
    names = {line["customer"] for line in prefix_report.lines}
    print(
        f"summary of {period} by customer and prefix from the per-prefix totals ({prefix_report.source}): "
        f"{prefix_seconds:.2f} s ({len(prefix_report.lines):,} lines, {len(names)} customers)"
    )
    print(
        f"the same report with its lines from the raw XDRs: {raw_prefix_seconds:.2f} s; "
        f"the report is {raw_prefix_seconds / prefix_seconds:.1f}x faster"
    )
    app.close()


if __name__ == "__main__":
    main()
