"""Ingest through an import template against the canonical path, on the same calls.

The demo world's XDRs are written twice: as rerate's canonical CSV and as an
Asterisk ``cdr_csv`` Master.csv (no header, quoted strings, local times,
trunk inside the channel name, uniqueid), gzip-compressed as a mediator's
drop folder would hold it.  Both are ingested end to end into two homes with
the same catalog; the script checks they load the same XDRs with the same
money, and prints the template's cost against the canonical path.

    python bench/bench_templates.py --xdrs 2000000
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rerate.bootstrap import App
from rerate.ledger.reader import connect_duckdb
from rerate.ledger.tables import TOTALS
from rerate.services.ingest import ingest
from rerate.services.worldgen import WorldSpec, generate_world

from common import compile_book, rate, world_home

ASTERISK_SELECT = """
SELECT account AS accountcode, cli AS src, cld AS dst, 'from-trunk' AS dcontext,
       '"' || cli || '" <' || cli || '>' AS clid, 'SIP/' || account || '-00000001' AS channel,
       'SIP/' || vendor || '-0000abcd' AS dstchannel, 'Dial' AS lastapp, 'SIP/' || vendor || '/' || cld AS lastdata,
       strftime(ts, '%Y-%m-%d %H:%M:%S') AS start, strftime(ts, '%Y-%m-%d %H:%M:%S') AS answer,
       strftime(ts + to_seconds(duration::BIGINT), '%Y-%m-%d %H:%M:%S') AS "end",
       duration AS duration, duration AS billsec, 'ANSWERED' AS disposition, 'DOCUMENTATION' AS amaflags,
       source_id AS uniqueid, '' AS userfield
FROM (SELECT *, CAST(connect_time AS TIMESTAMPTZ) AS ts FROM read_csv('{source}', all_varchar=true))
"""


def money(app: App) -> tuple[int, str, str]:
    """Calls, revenue and cost in the ledger's daily totals (exact decimals)."""
    con = connect_duckdb()
    files = ", ".join(f"'{f}'" for f in app.ledger.files(TOTALS))
    calls, amount, cost = con.sql(
        f"SELECT sum(calls), sum(amount), sum(cost) FROM read_parquet([{files}])"
    ).fetchall()[0]
    return int(calls), str(amount), str(cost)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xdrs", type=int, default=2_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench-data/templates"))
    args = parser.parse_args()
    work = args.work.resolve()
    world = generate_world(WorldSpec(xdrs=args.xdrs), work / "world")
    canonical = world.xdr_files[0]
    asterisk = work / "Master.csv"
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute(
        f"COPY ({ASTERISK_SELECT.format(source=canonical)}) TO '{asterisk}' "
        "(FORMAT csv, HEADER false, QUOTE '\"', FORCE_QUOTE (accountcode, src, dst, dcontext, clid, channel, "
        'dstchannel, lastapp, lastdata, start, answer, "end", disposition, amaflags, uniqueid, userfield))'
    )
    packed = work / "Master.csv.gz"
    with asterisk.open("rb") as plain, gzip.open(packed, "wb", compresslevel=6) as zipped:
        shutil.copyfileobj(plain, zipped, 16 << 20)
    print(
        f"{args.xdrs:,} calls: canonical CSV {canonical.stat().st_size / 1e6:,.0f} MB, "
        f"Asterisk Master.csv.gz {packed.stat().st_size / 1e6:,.0f} MB"
    )

    results = {}
    for label, path, template in (("canonical", canonical, None), ("asterisk-csv", packed, "asterisk-csv")):
        app = world_home(work / f"home-{label}", world)
        compiled = compile_book(app)  # as for every file but the first after a tariff change
        started = time.perf_counter()
        (report,) = ingest(app, [path], template=template)
        seconds = time.perf_counter() - started
        if report.state != "loaded":
            raise SystemExit(f"{label}: {report.error}")
        results[label] = (seconds, report.loaded, report.failed, money(app))
        print(
            f"{label:>13}: {report.loaded:,} loaded, {report.failed:,} failed in {seconds:.1f} s "
            f"({rate(report.loaded, seconds)}; tariff book compiled before it in {compiled:.1f} s)"
        )
        app.close()
    base, through = results["canonical"], results["asterisk-csv"]
    if base[1:] != through[1:]:
        raise SystemExit(f"the two paths disagree: {base} vs {through}")
    print(
        f"template cost: {through[0] / base[0]:.2f}x the canonical path's time "
        f"(goal: ingest >= 1 M XDRs/s either way; template path {rate(through[1], through[0])})"
    )


if __name__ == "__main__":
    main()
