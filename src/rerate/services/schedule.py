"""Scheduled corrections: ``--at`` records a job to run later; ``jobs run-due`` runs what is due.

The scheduler of the service (a later issue) calls :func:`run_due`; operators
can call it from cron through the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.domain.rating import Side
from rerate.domain.scopes import Scope
from rerate.services import audit, ingest_jobs
from rerate.services.corrections import (
    Correction,
    CorrectionReport,
    JobProgress,
    RerateRequest,
    execute,
    rerate_correction,
)
from rerate.services.dry_runs import APPLIES, apply_once, note_applying
from rerate.services.errors import (
    ConflictError,
    InvalidInputError,
    JobNotScheduledError,
    LedgerBusyError,
    NotFoundError,
    RerateError,
)
from rerate.services.ingest import IngestProgress
from rerate.services.reprocess import reprocess_correction
from rerate.services.rollback import rollback_correction
from rerate.services.timeparse import parse_utc
from rerate.services.visibility import UNFINISHED

#: How far in the past a requested time may be (clocks differ, typing takes time) and still mean "now".
_PAST_GRACE = timedelta(minutes=5)


def when_to_run(text: str, *, field: str = "--at", now: datetime | None = None) -> datetime:
    """``text`` as the UTC time a job is to run: a time already past is a typing error, not a wish."""
    when = parse_utc(text, field=field)
    if when < (now or datetime.now(UTC)) - _PAST_GRACE:
        raise InvalidInputError(
            f"{field} {when:%Y-%m-%d %H:%M} UTC is in the past: give a later time, or leave {field} out "
            "to apply the correction now"
        )
    return when


def schedule(app: App, correction: Correction, at: datetime) -> int:
    """Record ``correction`` to be applied at ``at`` (UTC); returns the job id."""
    if correction.dry_run:
        raise ConflictError("a dry run runs now: --at is for applying a correction later")
    return _record(app, correction, at, "job.schedule", {"at": at.isoformat()})


def queue(app: App, correction: Correction) -> int:
    """Record ``correction`` (a dry run or not) to be run as soon as the service's job runner can."""
    return _record(app, correction, datetime.now(UTC), "job.queue", {"dry_run": correction.dry_run})


def _record(app: App, correction: Correction, at: datetime, action: str, noted: dict[str, object]) -> int:
    with app.catalog.transaction() as session:
        job = Job(
            kind=correction.kind,
            state="scheduled",
            dry_run=correction.dry_run,
            scope=correction.scope.as_dict(),
            parameters=correction.parameters,
            description=correction.description,
            actor=app.actor,
            scheduled_for=at,
        )
        session.add(job)
        session.flush()
        note_applying(session, job)
        audit.record(session, app.actor, action, f"job {job.id}", after=noted)
        return job.id


def _rebuild(app: App, job: Job) -> Correction:
    """The job's correction, to run now: a queued dry run previews; anything else applies."""
    correction = _rebuild_correction(app, job)
    return replace(correction, dry_run=bool(job.dry_run) and job.state == "scheduled")


def rebuild_for_apply(app: App, planned: Job) -> Correction:
    """A dry run's correction, to apply (the same parameters, not a preview), naming the dry run."""
    correction = _rebuild_correction(app, planned)
    return replace(correction, dry_run=False, parameters={**correction.parameters, APPLIES: planned.id})


def _rebuild_correction(app: App, job: Job) -> Correction:
    scope = Scope.from_dict(dict(job.scope))
    parameters = dict(job.parameters)
    allow_closed = bool(parameters.get("allow_closed", False))
    if job.kind == "rerate":
        named_sides = parameters.get("sides") or ["customer", "vendor"]
        sides = tuple(Side(str(s)) for s in named_sides) if isinstance(named_sides, list) else ()
        request = RerateRequest(
            scope=scope,
            tariff=str(parameters["tariff"]) if parameters.get("tariff") else None,
            ghost_percent=Decimal(str(parameters.get("ghost_percent", "0"))),
            sides=sides,
            allow_closed=allow_closed,
        )
        return rerate_correction(app, request)
    if job.kind == "reprocess":
        return reprocess_correction(
            scope, failed_only=bool(parameters.get("failed_only")), allow_closed=allow_closed
        )
    if job.kind == "rollback":
        return rollback_correction(app, int(str(parameters["collection"])), allow_closed=allow_closed)
    raise ConflictError(f"job {job.id} of kind {job.kind} cannot be scheduled")


class DueNote(str):
    """What became of a due job that leaves no correction report, as one line of text; its job and
    outcome (``done``, ``waits``, ``failed``) are kept apart for ``--json``."""

    job_id: int
    outcome: str

    @classmethod
    def of(cls, job_id: int, outcome: str, text: str) -> DueNote:
        note = cls(text)
        note.job_id, note.outcome = job_id, outcome
        return note


def run_due(
    app: App,
    now: datetime | None = None,
    progress: Callable[[int], JobProgress] | None = None,
    ingest_progress: Callable[[int], IngestProgress] | None = None,
) -> list[CorrectionReport | str]:
    """Apply every scheduled job whose time has come, oldest first; a failure does not stop the rest."""
    now = now or datetime.now(UTC)
    with app.catalog.reading() as session:
        due = session.scalars(
            select(Job)
            .where(Job.state == "scheduled", Job.scheduled_for <= now)
            .order_by(Job.scheduled_for, Job.id)
        ).all()
    results: list[CorrectionReport | str] = []
    for job in due:
        try:
            # Run on behalf of whoever asked for it: the audit log names them, not the runner.
            owner = replace(app, settings=app.settings.model_copy(update={"actor": job.actor}))
            if job.kind == ingest_jobs.KIND:
                loading = ingest_progress(job.id) if ingest_progress is not None else None
                ingest_jobs.run_ingest_job(owner, job.id, loading)
                results.append(DueNote.of(job.id, "done", f"job {job.id}: {job.description}: done"))
                continue
            # The progress of the job that runs: a new one when this one was overtaken.
            results.append(execute(owner, _rebuild(owner, job), job_id=job.id, progress_for=progress))
        except JobNotScheduledError:
            continue  # cancelled, or started by another runner: not ours to record
        except LedgerBusyError as exc:  # the CLI holds the ledger: stays scheduled, the next pass retries
            results.append(DueNote.of(job.id, "waits", f"job {job.id} waits: {exc}"))
            continue
        except Exception as exc:  # one failing job is recorded; the others still run
            message = str(exc) if isinstance(exc, RerateError) else f"{type(exc).__name__}: {exc}"
            with app.catalog.transaction() as session:
                stored = session.get(Job, job.id)
                # A job that failed while it ran is failed and audited already, by the correction.
                if stored is not None and stored.state in UNFINISHED:
                    stored.state = "failed"
                    stored.finished_at = datetime.now(UTC)
                    stored.error = message
                    audit.record(session, job.actor, "job.failed", f"job {job.id}", after={"error": message})
            results.append(DueNote.of(job.id, "failed", f"job {job.id} failed: {message}"))
    return results


def apply_planned(app: App, job_id: int, progress: JobProgress | None = None) -> CorrectionReport:
    """Apply a dry run (a ``planned`` job, such as a rate import's proposal) as a new job."""
    return apply_once(
        app,
        job_id,
        lambda job: execute(app, rebuild_for_apply(app, job), progress=progress),
        lambda report: report.job_id,
    )


def cancel(app: App, job_id: int) -> None:
    with app.catalog.transaction() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id} (see 'rerate jobs list')")
        if job.state != "scheduled":
            raise ConflictError(
                f"job {job_id} is {job.state}: only a scheduled job can be cancelled "
                "(an applied one is undone with 'rerate jobs revert')"
            )
        # One conditional statement: a runner claiming the job meanwhile (claim_scheduled) wins,
        # and the cancel is refused rather than reported while the job runs.
        cancelled = cast(
            CursorResult[Any],
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "scheduled")
                .values(state="cancelled", finished_at=datetime.now(UTC))
            ),
        )
        if cancelled.rowcount != 1:
            raise ConflictError(f"job {job_id} started meanwhile: only a scheduled job can be cancelled")
        audit.record(session, app.actor, "job.cancel", f"job {job_id}")
