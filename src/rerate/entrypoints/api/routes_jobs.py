"""Corrections as jobs: queue re-ratings, re-processing and rollbacks; list, poll, revert, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from rerate.bootstrap import App
from rerate.domain.rating import Side
from rerate.domain.roles import Permission, allowed, correction_permissions
from rerate.domain.scopes import Scope
from rerate.entrypoints.api.schemas import ReprocessBody, RerateBody, RollbackBody, ScopeBody, job_view
from rerate.entrypoints.api.security import Caller, Viewer, acting, check, deny, wired
from rerate.services import dry_runs
from rerate.services import jobs as jobs_service
from rerate.services import schedule as schedule_service
from rerate.services.corrections import Correction, RerateRequest, parse_ghost_percent, rerate_correction
from rerate.services.diff_file import diff_csv
from rerate.services.errors import InvalidInputError
from rerate.services.reprocess import reprocess_correction
from rerate.services.rollback import rollback_correction
from rerate.services.scopes import resolve_scope
from rerate.services.timeparse import parse_utc
from rerate.services.users import Principal

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
corrections = APIRouter(prefix="/api", tags=["corrections"])
#: Every router of this module, one per resource.
ROUTERS = (corrections, router)

SIDES = {"customer": (Side.CUSTOMER,), "vendor": (Side.VENDOR,), "both": (Side.CUSTOMER, Side.VENDOR)}


def scope_of(app: App, body: ScopeBody) -> Scope:
    with app.catalog.reading() as session:
        return resolve_scope(
            session,
            customers=body.customer,
            accounts=body.account,
            vendors=body.vendor,
            prefixes=body.prefix,
            countries=body.country,
            destination_groups=body.destination_group,
            collections=body.collection,
            statuses=body.status,
            start=parse_utc(body.start, field="from") if body.start else None,
            end=parse_utc(body.end, field="to") if body.end else None,
        )


def submit(request: Request, app: App, correction: Correction, at: str | None) -> dict[str, Any]:
    """Queue ``correction`` for the job runner (or schedule it at ``at``) and return the job."""
    if at is not None:  # an empty "at" (a script's unset variable) is refused, not taken for now
        job_id = schedule_service.schedule(app, correction, schedule_service.when_to_run(at, field="at"))
    else:
        job_id = schedule_service.queue(app, correction)
        wake_runner(request)
    return job_view(app, jobs_service.job(app, job_id))


def wake_runner(request: Request) -> None:
    """A job was queued: the service's runner looks now rather than at its next poll."""
    runner = request.app.state.runner
    if runner is not None:
        runner.wake()


def apply_dry_run(request: Request, principal: Principal, job_id: int, what: str) -> dict[str, Any]:
    """Queue a dry run's correction for real, if the caller may apply that kind of correction."""
    app = wired(request)
    # Refused before the job is looked up when the role applies no correction at all: it learns
    # nothing of the job (exists, state), and the refusal is audited like any other.
    appliable = (Permission.RERATE, Permission.REPROCESS, Permission.ROLLBACK)
    if not any(allowed(principal.role, permission) for permission in appliable):
        raise deny(app, principal, Permission.RERATE, what)
    planned = dry_runs.planned_job(app, job_id)
    allow_closed = bool(dict(planned.parameters).get("allow_closed"))
    check(
        app, principal, correction_permissions(planned.kind, dry_run=False, allow_closed=allow_closed), what
    )
    app = acting(app, principal)
    return dry_runs.apply_once(
        app,
        job_id,
        lambda claimed: submit(request, app, schedule_service.rebuild_for_apply(app, claimed), None),
        lambda queued: int(queued["job_id"]),
    )


def rerate_correction_of(app: App, body: RerateBody) -> Correction:
    """The re-rating a request body (API or web form) asks for."""
    if body.side not in SIDES:
        raise InvalidInputError("side is customer, vendor or both")
    return rerate_correction(
        app,
        RerateRequest(
            scope=scope_of(app, body),
            tariff=body.tariff,
            ghost_percent=parse_ghost_percent(body.ghost_percent, field="ghost_percent"),
            sides=SIDES[body.side],
            dry_run=body.dry_run,
            allow_closed=body.allow_closed,
        ),
    )


@corrections.post("/rerate", status_code=202)
def rerate(request: Request, body: RerateBody, principal: Caller) -> dict[str, Any]:
    """Re-price a scope (today's configuration, or ``tariff`` for every XDR in it); returns the queued job."""
    app = wired(request)
    check(
        app,
        principal,
        correction_permissions("rerate", dry_run=body.dry_run, allow_closed=body.allow_closed),
        "POST /api/rerate",
    )
    app = acting(app, principal)
    correction = rerate_correction_of(app, body)
    return submit(request, app, correction, body.at)


@corrections.post("/reprocess", status_code=202)
def reprocess(request: Request, body: ReprocessBody, principal: Caller) -> dict[str, Any]:
    """Re-mediate and re-rate failed XDRs (``failed``: true) or every XDR of the scope."""
    app = wired(request)
    needed = correction_permissions("reprocess", dry_run=body.dry_run, allow_closed=body.allow_closed)
    check(app, principal, needed, "POST /api/reprocess")
    app = acting(app, principal)
    correction = reprocess_correction(
        scope_of(app, body), failed_only=body.failed, dry_run=body.dry_run, allow_closed=body.allow_closed
    )
    return submit(request, app, correction, body.at)


@corrections.post("/collections/{collection_id}/rollback", status_code=202)
def rollback(request: Request, collection_id: int, body: RollbackBody, principal: Caller) -> dict[str, Any]:
    """Void every XDR of a collection (``dry_run`` previews the impact)."""
    app = wired(request)
    needed = correction_permissions("rollback", dry_run=body.dry_run, allow_closed=body.allow_closed)
    check(app, principal, needed, f"POST /api/collections/{collection_id}/rollback")
    app = acting(app, principal)
    correction = rollback_correction(app, collection_id, dry_run=body.dry_run, allow_closed=body.allow_closed)
    return submit(request, app, correction, None)


@router.get("")
def list_jobs(
    app: Viewer, state: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 200
) -> list[dict[str, Any]]:
    """Jobs, newest first (``state`` filters: planned, scheduled, running, applied, failed, ...)."""
    found = jobs_service.jobs(app, states=[state] if state else (), limit=limit)
    return [job_view(app, j) for j in found]


@router.get("/{job_id}")
def show_job(app: Viewer, job_id: int) -> dict[str, Any]:
    """One job: state, progress (call dates done), counts, totals, and the full report when done."""
    return job_view(app, jobs_service.job(app, job_id))


@router.get("/{job_id}/diff")
def job_diff(app: Viewer, job_id: int) -> FileResponse:
    """Every changed XDR of the job, old and new values (CSV)."""
    job = jobs_service.job(app, job_id)
    if not job.diff_path or not Path(job.diff_path).is_file():
        raise HTTPException(404, f"job {job_id} has no diff file")
    made = diff_csv(Path(job.diff_path))  # once per job, on the first request
    return FileResponse(made, media_type="text/csv", filename=f"job-{job_id}-diff.csv")


def check_revert(
    app: App, principal: Principal, job_id: int, what: str, *, allow_closed: bool = False
) -> None:
    """Reverting needs REVERT, and CLOSED_PERIODS too when the job was allowed into closed periods
    or the revert is (``allow_closed``)."""
    check(app, principal, [Permission.REVERT], what)  # before looking the job up: no hint to the refused
    job = jobs_service.job(app, job_id)
    allow_closed = allow_closed or bool(dict(job.parameters).get("allow_closed"))
    check(app, principal, correction_permissions("revert", dry_run=False, allow_closed=allow_closed), what)


@router.post("/{job_id}/revert")
def revert(request: Request, job_id: int, principal: Caller, allow_closed: bool = False) -> dict[str, Any]:
    """Undo an applied job exactly; refused, naming the later job, when a later job changed the same XDRs.

    Undoing changes in billing periods closed since the job was applied needs ``allow_closed``
    (and the closed-periods permission); adjustment lines are then recorded with the revert.
    """
    app = wired(request)
    check_revert(app, principal, job_id, f"POST /api/jobs/{job_id}/revert", allow_closed=allow_closed)
    app = acting(app, principal)
    report = jobs_service.revert(app, job_id, allow_closed=allow_closed)
    return job_view(app, jobs_service.job(app, report.job_id))


@router.post("/{job_id}/cancel")
def cancel(request: Request, job_id: int, principal: Caller) -> dict[str, Any]:
    """Cancel a scheduled (not yet started) job."""
    app = wired(request)
    check(app, principal, [Permission.REVERT], f"POST /api/jobs/{job_id}/cancel")
    app = acting(app, principal)
    schedule_service.cancel(app, job_id)
    return job_view(app, jobs_service.job(app, job_id))


@router.post("/{job_id}/apply", status_code=202)
def apply(request: Request, job_id: int, principal: Caller) -> dict[str, Any]:
    """Apply a dry run (a planned job) as a new, queued job with the same parameters."""
    return apply_dry_run(request, principal, job_id, f"POST /api/jobs/{job_id}/apply")
