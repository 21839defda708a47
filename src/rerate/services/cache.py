"""``cache sync``: check the aggregates against the ledger, and repair them.

The aggregates (daily totals, monthly totals per prefix) are maintained by
deltas; this recomputes them from the current state of the XDRs for a range
of days (whole months for the monthly one) and compares.  A repair appends the
difference as a ``sync:<n>`` unit of work, so it is itself auditable and the
totals stay append-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.ledger.reader import open_views
from rerate.ledger.tables import unit_prefix
from rerate.ledger.totals import AGGREGATES, DAILY, MEASURES, Aggregate
from rerate.services import audit
from rerate.services.locks import ledger_lock
from rerate.services.visibility import APPLIED, current_visibility


@dataclass
class CacheReport:
    checked_days: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    repaired: bool = False
    job_id: int | None = None


def _differences_sql(aggregate: Aggregate, where: str) -> str:
    """Rows of ``aggregate`` where the ledger's XDRs (filtered by ``where``) and the stored rows differ."""
    keys = aggregate.keys
    measures = ", ".join(f"coalesce(l.{m}, 0) - coalesce(t.{m}, 0) AS {m}" for m in MEASURES)
    stored_where = where.replace("call_date", aggregate.time_key)
    return f"""
        WITH ledger AS ({aggregate.select(f"(SELECT * FROM xdrs WHERE {where})", "''")}),
        cached AS (
            SELECT {", ".join(keys)}, {", ".join(f"sum({m}) AS {m}" for m in MEASURES)}
            FROM {aggregate.table} WHERE {stored_where} GROUP BY ALL
        )
        SELECT {", ".join(f"coalesce(l.{k}, t.{k}) AS {k}" for k in keys)}, {measures}
        FROM ledger l FULL OUTER JOIN cached t
          ON {" AND ".join(f"l.{k} IS NOT DISTINCT FROM t.{k}" for k in keys)}
        WHERE {" OR ".join(f"coalesce(l.{m}, 0) <> coalesce(t.{m}, 0)" for m in MEASURES)}
    """


def _window(aggregate: Aggregate, start: date | None, end: date | None) -> str:
    """SQL over ``call_date`` for the days an aggregate's rows cover: whole months for the monthly one."""
    if aggregate.monthly:
        start = start.replace(day=1) if start else None
        end = (end.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1) if end else None
    where = "true"
    if start:
        where += f" AND call_date >= DATE '{start.isoformat()}'"
    if end:
        where += f" AND call_date <= DATE '{end.isoformat()}'"
    return where


def sync(app: App, *, start: date | None = None, end: date | None = None, check: bool = False) -> CacheReport:
    """Compare (``check``) or repair the totals of days ``start`` to ``end`` inclusive."""
    where = _window(DAILY, start, end)
    app.ledger.ensure()
    with ledger_lock(app.home, f"cache sync by {app.actor}"):
        with app.catalog.reading() as session:
            visibility = current_visibility(session)
        con = open_views(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
        (days,) = con.execute(f"SELECT count(DISTINCT call_date) FROM xdrs WHERE {where}").fetchall()
        report = CacheReport(checked_days=int(days[0]))
        found = {
            aggregate: con.sql(_differences_sql(aggregate, _window(aggregate, start, end))).to_arrow_table()
            for aggregate in AGGREGATES
        }
        for aggregate, diff in found.items():
            report.differences += [{"table": aggregate.table, **row} for row in diff.to_pylist()]
        if check or not report.differences:
            return report
        with app.catalog.transaction() as session:
            job = Job(
                kind="cache_sync",
                state="running",
                actor=app.actor,
                description="cache sync repair",
                scope={"from": str(start), "to": str(end)},
                started_at=datetime.now(UTC),
            )
            session.add(job)
            session.flush()
            job_id = job.id
        label = f"job:{job_id}"
        for aggregate, diff in found.items():
            repair = diff.append_column("source", pa.array([label] * diff.num_rows)).cast(aggregate.schema)
            writer = aggregate.writer(app.ledger.path(aggregate.table), unit_prefix("j", job_id))
            if repair.num_rows:
                writer.write_rows(repair)
            writer.close()
            app.ledger.commit(aggregate.table, writer.actions, {"job_id": str(job_id)})
        repaired = {aggregate.table: diff.num_rows for aggregate, diff in found.items()}
        with app.catalog.transaction() as session:
            stored = session.get(Job, job_id)
            assert stored is not None
            stored.state = APPLIED
            stored.changed = len(report.differences)
            stored.finished_at = datetime.now(UTC)
            audit.record(session, app.actor, "cache.sync", "aggregates", after={"groups_repaired": repaired})
        report.repaired = True
        report.job_id = job_id
        return report
