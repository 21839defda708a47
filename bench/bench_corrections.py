"""Corrections at scale: re-rating dry run and apply, collection rollback, and the incumbents' way.

A demo-shaped ledger of ``--ledger`` XDRs is built (one month, one file) and
compacted (``rerate ledger compact``, as a nightly run would); the re-rating
scope is the busiest customers over the days that come closest to ``--scope`` XDRs, re-priced with
another tariff; the rollback is of a second collection of ``--rollback``
XDRs, timed twice: as loaded (then reverted), and after the re-rate revised
its XDRs of the scope's customers.  Baseline in the same run (when PostgreSQL answers at
RERATE_TEST_PG_URL): the same re-pricing as an in-place UPDATE of an XDR table
in PostgreSQL, longest prefix by candidate-prefix index lookups, which is what
correction tools that rewrite rated XDRs do.

    python bench/bench_corrections.py --ledger 50000000 --scope 10000000 --rollback 5000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy import select

from rerate.bootstrap import App, bootstrap
from rerate.catalog.models import Customer, Job
from rerate.ledger.reader import open_views
from rerate.services.compaction import compact
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.demo import load_world
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.rollback import rollback
from rerate.services.scopes import resolve_scope
from rerate.services.setup import initialize
from rerate.services.visibility import current_visibility
from rerate.services.worldgen import WorldSpec, generate_world, write_xdrs
from rerate.settings import Settings

from common import rate

PG_URL = os.environ.get("RERATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def postgres_update(con_duck, customers: list[int], sample: int, work: Path) -> tuple[int, float] | None:
    """Load the scope's XDRs and the tariff into PostgreSQL, then time the in-place UPDATE."""
    try:
        import psycopg
    except ImportError:
        return None
    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        pg = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError:
        return None
    ids = ", ".join(str(c) for c in customers)
    xdrs_csv, rates_csv = work / "pg-xdrs.csv", work / "pg-rates.csv"
    con_duck.execute(
        f"COPY (SELECT xdr_id, customer_id, number, duration, amount FROM xdrs WHERE customer_id IN ({ids}) "
        f"AND number IS NOT NULL LIMIT {int(sample)}) TO '{xdrs_csv}' (HEADER false)"
    )
    con_duck.execute(f"COPY (SELECT * FROM bench_rates) TO '{rates_csv}' (HEADER false)")
    with pg.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_xdrs; DROP TABLE IF EXISTS bench_rates")
        cur.execute(
            "CREATE TABLE bench_xdrs (xdr_id bigint PRIMARY KEY, customer_id int, number text, duration int, "
            "amount numeric(18, 9))"
        )
        cur.execute(
            "CREATE TABLE bench_rates (prefix text PRIMARY KEY, first_interval int, next_interval int, "
            "first_price numeric(18, 9), next_price numeric(18, 9))"
        )
        for table, path in (("bench_xdrs", xdrs_csv), ("bench_rates", rates_csv)):
            with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy, path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
        cur.execute("ANALYZE bench_xdrs; ANALYZE bench_rates")
        started = time.perf_counter()
        cur.execute(
            f"""
            UPDATE bench_xdrs x SET amount = round(
                r.first_price * least(b.billed, r.first_interval) / 60
                + r.next_price * greatest(b.billed - r.first_interval, 0) / 60, 5)
            FROM bench_xdrs y
            CROSS JOIN LATERAL (
                SELECT * FROM bench_rates r
                WHERE r.prefix IN (SELECT left(y.number, k) FROM generate_series(1, least(length(y.number), 18)) k)
                ORDER BY length(r.prefix) DESC LIMIT 1
            ) r
            CROSS JOIN LATERAL (
                SELECT CASE WHEN y.duration = 0 THEN 0 ELSE r.first_interval + ceil(
                    greatest(y.duration - r.first_interval, 0)::numeric / r.next_interval) * r.next_interval END AS billed
            ) b
            WHERE x.xdr_id = y.xdr_id AND y.customer_id IN ({ids})
            """
        )
        seconds = time.perf_counter() - started
        rows = cur.rowcount
        cur.execute("DROP TABLE bench_xdrs; DROP TABLE bench_rates")
    pg.close()
    return rows, seconds


#: The collection the bench rolls back (the second file ingested).
SECOND_COLLECTION = 2


def _build(work: Path, xdrs: int, second_xdrs: int) -> App:
    """A fresh home: the demo world, a month of ``xdrs`` in one file, a second collection, compacted."""
    shutil.rmtree(work, ignore_errors=True)
    app = bootstrap(Settings(home=work / "home"))
    initialize(app)
    world = generate_world(WorldSpec(xdrs=xdrs), work / "world")
    load_world(app, world)
    started = time.perf_counter()
    ingest(app, [world.xdr_files[0]])
    print(f"ledger: {xdrs:,} XDRs ingested in {time.perf_counter() - started:.0f} s")
    second = work / "world" / "second.csv"
    write_xdrs(
        second,
        WorldSpec(xdrs=second_xdrs, seed=99),
        np.random.default_rng(99),
        world.destination_prefixes,
        world.customers,
        world.vendors,
    )
    (extra,) = ingest(app, [second])
    assert extra.collection_id == SECOND_COLLECTION
    started = time.perf_counter()
    compacted = compact(app)
    print(
        f"compaction: {compacted.files_before:,} files -> {compacted.files_after:,} "
        f"({compacted.xdrs:,} XDRs, {compacted.days} days) in {time.perf_counter() - started:.0f} s"
    )
    return app


def _undo_jobs(app: App) -> int:
    """Revert the applied jobs of an earlier run, newest first: the ledger reads as freshly built."""
    with app.catalog.reading() as session:
        applied = list(
            session.scalars(
                select(Job.id)
                .where(Job.state == "applied", Job.reverts_job_id.is_(None))
                .order_by(Job.id.desc())
            )
        )
    for job_id in applied:
        revert(app, job_id)
    return len(applied)


def _timed_rollback(app: App, what: str) -> int:
    """Roll back the second collection, print the time; the rollback's job id."""
    started = time.perf_counter()
    rolled = rollback(app, SECOND_COLLECTION)
    seconds = time.perf_counter() - started
    print(f"{what}: {rolled.changed:,} XDRs voided, {seconds:.1f} s ({rate(rolled.changed, seconds)})")
    return rolled.job_id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ledger", type=int, default=2_000_000)
    parser.add_argument("--scope", type=int, default=500_000)
    parser.add_argument("--rollback", type=int, default=500_000)
    parser.add_argument("--pg-sample", type=int, default=100_000, help="rows the PostgreSQL UPDATE rewrites")
    parser.add_argument("--work", type=Path, default=Path("bench-data/corrections"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the compacted ledger of an earlier run in --work (its jobs undone)",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    if args.reuse and (work / "home").is_dir():
        app = bootstrap(Settings(home=work / "home"))
        undone = _undo_jobs(app)
        print(f"ledger of an earlier run reused ({undone} job(s) reverted)")
    else:
        app = _build(work, args.ledger, args.rollback)

    with app.catalog.reading() as session:
        con = open_views(app.ledger, current_visibility(session))
    # The scope is the busiest customers over the days that bring it closest to --scope XDRs (the
    # live XDRs of both collections): the figure is for a scope of that size.  The demo
    # world's busiest customer alone has about a fifth of the month, so a customer set rarely
    # lands near it; a window of whole days does.  (Counting the first collection alone, whole
    # month, used to give 11.8 M XDRs for --scope 10000000.)
    month, after = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    live = f"status <> 'voided' AND connect_time >= '{month.isoformat()}' AND connect_time < '{after.isoformat()}'"
    by_customer = con.execute(
        f"SELECT customer_id, count(*) FROM xdrs WHERE customer_id IS NOT NULL AND {live} "
        "GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    chosen, total = [], 0
    for customer_id, count in by_customer:
        if total >= args.scope:
            break
        chosen.append(int(customer_id))
        total += int(count)
    ids = ", ".join(str(c) for c in chosen)
    by_day = con.execute(
        f"SELECT call_date, count(*) FROM xdrs WHERE customer_id IN ({ids}) AND {live} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    end, running = after, 0
    for day, count in by_day:
        if running and abs(running + int(count) - args.scope) >= abs(running - args.scope):
            end = datetime(day.year, day.month, day.day, tzinfo=UTC)
            break
        running += int(count)
    with app.catalog.reading() as session:
        scope_names = list(session.scalars(select(Customer.name).where(Customer.id.in_(chosen))))
        scope = resolve_scope(session, customers=scope_names, start=month, end=end)
    override = "Wholesale Premium"
    (overlap,) = con.execute(
        f"SELECT count(*) FROM xdrs WHERE collection_id = {SECOND_COLLECTION} AND customer_id IN ({ids}) "
        f"AND connect_time >= '{month.isoformat()}' AND connect_time < '{end.isoformat()}'"
    ).fetchall()[0]

    # A rollback soon after the load (a file imported twice), then undone for what follows.
    revert(app, _timed_rollback(app, "rollback of the collection as loaded"))

    started = time.perf_counter()
    preview = rerate(app, RerateRequest(scope=scope, tariff=override, dry_run=True))
    dry = time.perf_counter() - started
    print(
        f"re-rate dry run: {preview.in_scope:,} XDRs in scope, {preview.changed:,} changed, {dry:.1f} s "
        f"({rate(preview.in_scope, dry)})"
    )
    started = time.perf_counter()
    applied = rerate(app, RerateRequest(scope=scope, tariff=override))
    apply = time.perf_counter() - started
    print(f"re-rate apply:   {applied.changed:,} revisions, {apply:.1f} s ({rate(applied.in_scope, apply)})")
    _timed_rollback(app, f"rollback after the re-rate revised {overlap:,} of its XDRs")

    import sqlalchemy

    with app.catalog.reading() as session:
        rows = session.execute(
            sqlalchemy.text(
                "SELECT r.prefix, r.first_interval, r.next_interval, r.first_price, r.next_price FROM rates r "
                "JOIN tariffs t ON t.id = r.tariff_id WHERE t.name = :name AND NOT r.discontinued "
                "AND r.effective_from = (SELECT max(effective_from) FROM rates r2 WHERE r2.tariff_id = r.tariff_id "
                "AND r2.prefix = r.prefix)"
            ),
            {"name": override},
        ).all()
    import pyarrow as pa

    con.register(
        "rates_in",
        pa.table(
            {
                "prefix": [r[0] for r in rows],
                "first_interval": [r[1] for r in rows],
                "next_interval": [r[2] for r in rows],
                "first_price": pa.array([r[3] for r in rows], pa.int64()),
                "next_price": pa.array([r[4] for r in rows], pa.int64()),
            }
        ),
    )
    con.execute(
        "CREATE TABLE bench_rates AS SELECT prefix, first_interval, next_interval, "
        "(first_price::DECIMAL(38, 0) / 1000000000)::DECIMAL(18, 9) AS first_price, "
        "(next_price::DECIMAL(38, 0) / 1000000000)::DECIMAL(18, 9) AS next_price FROM rates_in"
    )
    result = postgres_update(con, chosen, args.pg_sample, work)
    if result is None:
        print("PostgreSQL UPDATE baseline: skipped (no server at RERATE_TEST_PG_URL)")
    else:
        updated, pg_seconds = result
        ratio = (applied.in_scope / apply) / (updated / pg_seconds)
        print(
            f"PostgreSQL in-place UPDATE of a sample of the same scope: {updated:,} rows in {pg_seconds:.1f} s "
            f"({rate(updated, pg_seconds)}); rerate apply's throughput is {ratio:.0f}x that (goal >= 20x)"
        )
    app.close()


if __name__ == "__main__":
    main()
