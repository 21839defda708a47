"""``cache sync``: check the daily totals against the ledger, and repair them.

The totals are maintained by deltas; this recomputes them from the current
state of the XDRs for a range of days and compares.  A repair appends the
difference as a ``sync:<n>`` unit of work, so it is itself auditable and the
totals stay append-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.ledger.reader import open_views
from rerate.ledger.schema import TOTALS_SCHEMA
from rerate.ledger.tables import TOTALS, PartitionedWriter, unit_prefix
from rerate.ledger.totals import KEY_NAMES, TOTALS_SELECT
from rerate.services import audit
from rerate.services.locks import ledger_lock
from rerate.services.visibility import APPLIED, current_visibility

MEASURES = ("calls", "seconds", "billed", "vendor_billed", "amount", "cost")


@dataclass
class CacheReport:
    checked_days: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)
    repaired: bool = False
    job_id: int | None = None


def _differences_sql(where: str) -> str:
    keys = ", ".join(KEY_NAMES)
    measures = ", ".join(f"coalesce(l.{m}, 0) - coalesce(t.{m}, 0) AS {m}" for m in MEASURES)
    return f"""
        WITH ledger AS ({TOTALS_SELECT.format(source=f"(SELECT * FROM xdrs WHERE {where})", label="''")}),
        cached AS (
            SELECT {keys}, {", ".join(f"sum({m}) AS {m}" for m in MEASURES)}
            FROM daily_totals WHERE {where.replace("call_date", "day")} GROUP BY ALL
        )
        SELECT {", ".join(f"coalesce(l.{k}, t.{k}) AS {k}" for k in KEY_NAMES)}, {measures}
        FROM ledger l FULL OUTER JOIN cached t
          ON {" AND ".join(f"l.{k} IS NOT DISTINCT FROM t.{k}" for k in KEY_NAMES)}
        WHERE {" OR ".join(f"coalesce(l.{m}, 0) <> coalesce(t.{m}, 0)" for m in MEASURES)}
    """


def sync(app: App, *, start: date | None = None, end: date | None = None, check: bool = False) -> CacheReport:
    """Compare (``check``) or repair the totals of days ``start`` to ``end`` inclusive."""
    where = "true"
    if start:
        where += f" AND call_date >= DATE '{start.isoformat()}'"
    if end:
        where += f" AND call_date <= DATE '{end.isoformat()}'"
    app.ledger.ensure()
    with ledger_lock(app.home, f"cache sync by {app.actor}"):
        with app.catalog.reading() as session:
            visibility = current_visibility(session)
        con = open_views(app.ledger, visibility, memory_limit=app.settings.duckdb_memory_limit)
        (days,) = con.execute(f"SELECT count(DISTINCT call_date) FROM xdrs WHERE {where}").fetchall()
        report = CacheReport(checked_days=int(days[0]))
        diff = con.sql(_differences_sql(where)).to_arrow_table()
        report.differences = diff.to_pylist()
        if check or diff.num_rows == 0:
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
        repair = diff.append_column("source", pa.array([label] * diff.num_rows)).cast(TOTALS_SCHEMA)
        writer = PartitionedWriter(
            app.ledger.path(TOTALS), unit_prefix("j", job_id), TOTALS_SCHEMA, partitioned=False
        )
        writer.write_rows(repair)
        writer.close()
        app.ledger.commit(TOTALS, writer.actions, {"job_id": str(job_id)})
        with app.catalog.transaction() as session:
            stored = session.get(Job, job_id)
            assert stored is not None
            stored.state = APPLIED
            stored.changed = diff.num_rows
            stored.finished_at = datetime.now(UTC)
            audit.record(
                session, app.actor, "cache.sync", "daily_totals", after={"groups_repaired": diff.num_rows}
            )
        report.repaired = True
        report.job_id = job_id
        return report
