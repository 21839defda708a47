"""Jobs: listing, inspecting, reverting applied corrections, and pruning old diff files.

Reverting hides a job's revisions and totals (the catalog stops counting it),
which restores the exact previous state; it is refused, naming the job, when
a later job changed the same XDRs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import Adjustment, BillingPeriod, Job
from rerate.domain.money import money_text
from rerate.ledger.reader import sql_paths
from rerate.ledger.tables import REVISIONS
from rerate.services import audit
from rerate.services.corrections import CorrectionReport, adjustment_row
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError
from rerate.services.locks import ledger_lock
from rerate.services.periods import closed_conflict, closed_periods, negated_lines, touched
from rerate.services.rollback import check_revert_of_rollback
from rerate.services.visibility import APPLIED

#: Job kinds that change XDRs and can be undone.  A revert is undone by no revert (apply the
#: correction again); a cache repair made the aggregates equal the ledger: undoing it would
#: bring the difference back; an ingest is undone by rolling its collection back.
REVERTIBLE = frozenset({"rerate", "reprocess", "rollback"})


def revert(app: App, job_id: int, *, allow_closed: bool = False) -> CorrectionReport:
    """Undo an applied job: its revisions and totals stop counting; refused if later jobs built on them.

    Undoing changes inside a billing period closed after the job was applied is refused unless
    ``allow_closed``; with it, adjustment lines taking the job's changes back are recorded with
    the revert.  Periods that were closed when the job was applied need none: the job's own
    adjustment lines stop counting with it.
    """
    with ledger_lock(app.home, f"revert by {app.actor}"):
        with app.catalog.reading() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFoundError(f"no job {job_id} (see 'rerate jobs list')")
            if job.state != APPLIED or job.kind not in REVERTIBLE:
                what = job.state if job.state != APPLIED else f"a {job.kind.replace('_', ' ')}"
                raise ConflictError(
                    f"job {job_id} is {what}: only an applied correction (re-rate, re-process, "
                    "rollback) can be reverted"
                )
            later = session.scalars(select(Job.id).where(Job.state == APPLIED, Job.id > job_id)).all()
        if job.kind == "rollback":
            check_revert_of_rollback(app, job)
        blocking = _later_jobs_touching(app, job_id, list(later))
        if blocking:
            raise ConflictError(
                f"job {job_id} cannot be reverted: job {blocking[0]} changed the same XDRs later; "
                f"revert job {blocking[0]} first"
            )
        with app.catalog.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            # In the transaction that records the revert: a period closed meanwhile is seen.
            adjustments = _closed_since(app, session, job, allow_closed)
            negated = _negated(job.totals.get("delta"))
            undo = Job(
                kind="revert",
                state=APPLIED,
                dry_run=False,
                scope=job.scope,
                parameters={"job": job_id},
                description=f"revert job {job_id}: {job.description}",
                actor=app.actor,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
                in_scope=job.changed,
                changed=job.changed,
                reverts_job_id=job_id,
                totals={"delta": negated},
            )
            session.add(undo)
            session.flush()
            for line in adjustments:  # committed with the revert: visible exactly when it is
                session.add(adjustment_row(undo.id, line))
            job.state = "reverted"
            job.reverted_by_job_id = undo.id
            audit.record(
                session,
                app.actor,
                "job.revert",
                f"job {job_id}",
                before={"state": APPLIED},
                after={"state": "reverted", "by": undo.id},
            )
            return CorrectionReport(
                job_id=undo.id,
                kind="revert",
                state=APPLIED,
                description=undo.description,
                in_scope=job.changed,
                changed=job.changed,
                # Exact: the job's XDRs get back the values they had, so the totals move by the
                # job's delta negated.  (The scope's totals before and after are not computed.)
                delta={
                    currency: {kind: Decimal(value) for kind, value in values.items()}
                    for currency, values in negated.items()
                },
                adjustments=adjustments,
            )


def _customers_of(app: App, job_id: int) -> set[int] | None:
    """The customers a job's report names (None when it has no report)."""
    path = app.home / "jobs" / str(job_id) / "report.json"
    try:
        rows = json.loads(path.read_text()).get("by_customer", [])
    except (OSError, ValueError):
        return None
    return {int(row["customer_id"]) for row in rows if row.get("customer_id") is not None}


def _closed_since(app: App, session: Session, job: Job, allow_closed: bool) -> list[dict[str, Any]]:
    """Adjustment lines for what reverting ``job`` undoes in periods closed since it was applied.

    A job that did not keep its changes per period is checked against the periods of the
    customers its report names (all customers without a report).
    """
    closed = closed_periods(session)
    # The job's own adjustment lines go with it, so their periods need no new lines: unless the
    # period that invoiced them (the one the job was applied in) is closed too.  Then the
    # customer was billed for them, and only new lines, taking them back, undo that.
    invoiced_in = f"{job.finished_at or job.started_at:%Y-%m}"
    own = {
        (a.customer_id, a.period)
        for a in session.scalars(select(Adjustment).where(Adjustment.job_id == job.id))
        if (a.customer_id, invoiced_in) not in closed
    }
    stored = (job.totals or {}).get("periods")
    if not isinstance(stored, list):  # applied before jobs kept their changes per period
        applied_at = job.finished_at or job.started_at
        customers = _customers_of(app, job.id)
        since = sorted(
            f"{closed[(p.customer_id, p.period)]} {p.period}"
            for p in session.scalars(select(BillingPeriod).where(BillingPeriod.closed_at > applied_at))
            if (p.customer_id, p.period) not in own and (customers is None or p.customer_id in customers)
        )
        if since and not allow_closed:
            raise ConflictError(
                f"job {job.id} was applied before rerate kept each job's changes per billing period, "
                f"and these periods were closed since: {', '.join(since)}; pass --allow-closed to "
                "revert it anyway (no adjustment lines can be recorded for it)"
            )
        return []
    lines = [
        line
        for line in touched(negated_lines(stored), closed)
        if (line["customer_id"], line["period"]) not in own
    ]
    if lines and not allow_closed:
        raise closed_conflict(f"reverting job {job.id}", "revert", lines)
    return lines


def _negated(delta: object) -> dict[str, dict[str, str]]:
    if not isinstance(delta, dict):
        return {}
    return {c: {k: money_text(-Decimal(v)) for k, v in vals.items()} for c, vals in delta.items()}


def _later_jobs_touching(app: App, job_id: int, later: list[int]) -> list[int]:
    if not later:
        return []
    files = app.ledger.files(REVISIONS)
    if not files:
        return []
    con = duckdb.connect()
    rows = con.execute(
        f"""
        WITH r AS (SELECT job_id, xdr_id FROM read_parquet({sql_paths(files)}, hive_partitioning=false))
        SELECT DISTINCT later.job_id FROM r later JOIN r mine ON later.xdr_id = mine.xdr_id
        WHERE mine.job_id = {int(job_id)} AND later.job_id IN ({", ".join(str(int(j)) for j in later)})
        ORDER BY 1
        """
    ).fetchall()
    return [int(r[0]) for r in rows]


#: Every state a job row can be in (corrections and queued ingests).
JOB_STATES = (
    "planning",
    "planned",
    "scheduled",
    "running",
    "ingesting",
    "applied",
    "done",
    "failed",
    "reverted",
    "superseded",
    "cancelled",
)


def jobs(app: App, *, states: Sequence[str] = (), limit: int | None = None) -> list[Job]:
    """Jobs, newest first; only those in ``states`` when given, at most ``limit``."""
    unknown = [s for s in states if s not in JOB_STATES]
    if unknown:  # a typo would otherwise read as "no such jobs"
        raise InvalidInputError(f"unknown job state {', '.join(unknown)}: use one of {', '.join(JOB_STATES)}")
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if states:
        query = query.where(Job.state.in_(list(states)))
    with app.catalog.reading() as session:
        return list(session.scalars(query).all())


def job(app: App, job_id: int) -> Job:
    with app.catalog.reading() as session:
        found = session.get(Job, job_id)
        if found is None:
            raise NotFoundError(f"no job {job_id} (see 'rerate jobs list')")
        return found


@dataclass
class PruneReport:
    """What pruning the diff files did, or with ``dry_run`` would do."""

    dry_run: bool
    jobs: list[int] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


#: Jobs whose diff the pruning takes by default: previews nobody applied.  An applied job's diff
#: is the record of what it changed, kept unless asked.
PRUNED_STATES = ("planned",)
PRUNED_STATES_WITH_APPLIED = ("planned", "applied", "reverted")
MAX_AGE = timedelta(days=36_500)


def prune_diffs(
    app: App, *, older_than: timedelta, include_applied: bool = False, dry_run: bool = False
) -> PruneReport:
    """Delete the diff files (Arrow and CSV) of jobs that finished over ``older_than`` ago.

    A 10-million-XDR preview keeps about 1.5 GB of diff; the job itself (with the diff's path),
    its totals, breakdowns and audit rows stay, and ``rerate jobs diff`` then says the diff is gone.
    """
    if not timedelta(0) <= older_than <= MAX_AGE:
        raise InvalidInputError(f"--older-than must be from 0 to {MAX_AGE.days} days")
    states = PRUNED_STATES_WITH_APPLIED if include_applied else PRUNED_STATES
    cutoff = datetime.now(UTC) - older_than
    report = PruneReport(dry_run=dry_run)
    with app.catalog.transaction() as session:
        query = (
            select(Job)
            .where(Job.diff_path.is_not(None), Job.state.in_(states), Job.finished_at < cutoff)
            .order_by(Job.id)
        )
        for found in session.scalars(query):
            assert found.diff_path is not None
            arrow = Path(found.diff_path)
            # The CSV is made from the Arrow file on request (older jobs kept the CSV alone).
            files = sorted(p for p in {arrow, arrow.with_suffix(".csv")} if p.is_file())
            if not files:  # pruned before
                continue
            report.jobs.append(found.id)
            report.files += len(files)
            report.bytes += sum(p.stat().st_size for p in files)
            if not dry_run:
                for path in files:
                    path.unlink()
        if report.jobs and not dry_run:
            audit.record(
                session,
                app.actor,
                "jobs.prune_diffs",
                f"{len(report.jobs)} job(s)",
                after={"jobs": report.jobs, "files": report.files, "bytes": report.bytes},
            )
    return report
