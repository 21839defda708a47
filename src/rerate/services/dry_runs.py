"""Applying a dry run once, even when the process applying it is killed.

A dry run (a ``planned`` job) is claimed before it is applied, so that a
double click or two operators at the same instant apply it once.  The claim
has three ways to end:

* the apply creates its job: the transaction that creates that job names it
  on the dry run (``applied_as``), so an apply killed after that commit is
  found by its job, which crash recovery marks failed, which frees the dry
  run again;
* the apply fails: the claim is freed;
* the process is killed before it created its job: nothing was applied.  The
  claimer held an OS file lock from its claim on, which the kernel released
  when it died, so the next apply finds the claim unheld and takes it over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.ipc
from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.ledger.reader import sql_paths
from rerate.ledger.tables import REVISIONS, unit_prefix
from rerate.services import audit, faults
from rerate.services.errors import ConflictError, LedgerBusyError, NotFoundError
from rerate.services.locks import FileLock, ledger_lock
from rerate.services.recovery import recover_interrupted

#: A dry run being applied right now (its new job not yet numbered).
APPLYING = "in progress"
#: The parameter of a job that applies a dry run: the dry run's job id.
APPLIES = "applies_dry_run"
#: Who claimed a dry run being applied (only claims that hold an apply lock have one).
_CLAIMED_BY = "claimed_by"
#: States of a job that applied a dry run in which the dry run counts as not applied.
_GAVE_UP = ("failed", "cancelled")
#: How long a claim waits for a failed apply to let go of the dry run's lock.
_LET_GO_SECONDS = 5.0

Applied = TypeVar("Applied")


def planned_job(app: App, job_id: int) -> Job:
    """A dry run (a ``planned`` job) that may be applied; refused clearly otherwise."""
    with app.catalog.reading() as session:
        job = _planned_in(session, job_id)
        session.expunge(job)
        return job


def _planned_in(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id} (see 'rerate jobs list')")
    if job.state != "planned":
        raise ConflictError(f"job {job_id} is {job.state}: only a dry run (planned) can be applied")
    return job


def note_applying(session: Session, job: Job) -> None:
    """In the transaction that creates ``job``: if it applies a dry run, name it there."""
    planned_id = dict(job.parameters).get(APPLIES)
    planned = session.get(Job, planned_id) if isinstance(planned_id, int) else None
    if planned is not None:
        planned.parameters = {**dict(planned.parameters), "applied_as": job.id}


def _apply_lock(app: App, job_id: int) -> FileLock:
    return FileLock(app.home / "claims" / f"dry-run-{job_id}.lock")


@contextmanager
def claimed(app: App, job_id: int) -> Iterator[Job]:
    """The dry run, marked as being applied while the block runs.

    It is applied once: a second try (a double click, the browser's back button, two operators
    at the same instant) is refused naming the job that applied it, or the apply still running.
    Claims are taken one at a time, across processes.
    """
    apply_lock = _apply_lock(app, job_id)
    holder = f"apply of dry run {job_id} by {app.actor}"
    with ledger_lock(app.home, holder, name="claims"):
        _recover_a_killed_apply(app, job_id)
        try:
            with app.catalog.transaction() as session:
                job = _claim(app, session, job_id, apply_lock, holder)
        except BaseException:
            apply_lock.release()  # refused, or the claim was not stored: no apply follows
            raise
    try:
        yield job
    finally:
        apply_lock.release()


def _recover_a_killed_apply(app: App, job_id: int) -> None:
    """The job that applies the dry run is running, but nothing holds the ledger: its process
    died.  Clean it up now, as the next writing job would, rather than refuse the apply."""
    with app.catalog.reading() as session:
        planned = session.get(Job, job_id)
        applied_as = dict(planned.parameters).get("applied_as") if planned is not None else None
        applying = session.get(Job, applied_as) if isinstance(applied_as, int) else None
        if applying is None or applying.state != "running":
            return
    try:
        with ledger_lock(app.home, f"recovery before applying dry run {job_id}", wait_seconds=0):
            recover_interrupted(app)
    except LedgerBusyError:
        return  # it runs: the claim is refused naming it


def _claim(app: App, session: Session, job_id: int, apply_lock: FileLock, holder: str) -> Job:
    job = _planned_in(session, job_id)
    parameters = dict(job.parameters)
    left_by = _claimer_to_take_over(session, job_id, parameters)
    # A claim's lock is free once its claimer died; one not claimed is free or about to be (a
    # failed apply lets go of it just after freeing the claim).
    if not apply_lock.acquire(holder, wait_seconds=0.0 if left_by else _LET_GO_SECONDS):
        raise ConflictError(f"dry run {job_id} is being applied right now ({apply_lock.holder()})")
    if left_by:
        audit.record(
            session,
            "rerate",
            "job.claim_recovered",
            f"job {job_id}",
            before={"claimed_by": left_by},
            after={"reason": "the apply was killed before it created its job"},
        )
    _refuse_if_prices_changed(session, job)
    _refuse_if_its_xdrs_changed(app, session, job)
    job.parameters = {**parameters, "applied_as": APPLYING, _CLAIMED_BY: apply_lock.holder()}
    session.flush()
    session.expunge(job)
    return job


def _claimer_to_take_over(session: Session, job_id: int, parameters: dict[str, object]) -> str | None:
    """Refuse a dry run applied; for one claimed, who claimed it (its lock tells if they live)."""
    applied_as = parameters.get("applied_as")
    if applied_as is None:
        return None
    if applied_as == APPLYING:
        claimer = parameters.get(_CLAIMED_BY)
        # A claim made before claims held a lock names no claimer: whether it applied anything
        # cannot be told, so it stays refused.
        if claimer is not None:
            return str(claimer)
    elif isinstance(applied_as, int):
        applying = session.get(Job, applied_as)
        if _gave_up(applying):
            return None
        if applying is not None and applying.state == "running":
            raise ConflictError(
                f"dry run {job_id} is being applied as job {applied_as}, which is running (a job left "
                "running by a killed process is marked failed by the next writing job, and the dry "
                "run may then be applied again)"
            )
    raise ConflictError(
        f"dry run {job_id} was applied already (as job {applied_as}): preview again to apply "
        "the correction once more"
    )


def _gave_up(applying: Job | None) -> bool:
    """Whether the job named as applying a dry run applied nothing (failed, cancelled, or gone)."""
    return applying is None or applying.state in _GAVE_UP


def _refuse_if_prices_changed(session: Session, job: Job) -> None:
    parameters = dict(job.parameters)
    mark = parameters.get("pricing_mark")
    override = parameters.get("tariff") if job.kind == "rerate" else None
    changes = (
        audit.pricing_changes_since(session, mark, tariff=str(override) if override else None)
        if isinstance(mark, int)
        else []
    )
    if changes:
        raise ConflictError(
            f"the prices behind dry run {job.id} changed since it was made ({'; '.join(changes)}): "
            "applying it would apply something else than what was previewed; preview again"
        )


def _refuse_if_its_xdrs_changed(app: App, session: Session, job: Job) -> None:
    """Refuse when a job applied or reverted since the preview changed XDRs the preview changes,
    on a side the preview prices: the apply prices them as they are now, not as previewed.

    Not checked: XDRs loaded since (they enter the scope as any new traffic does), XDRs in scope
    the preview left unchanged, and a dry run whose diff was pruned (it no longer says which XDRs
    it changes).
    """
    # The preview read the ledger as it was when it started (a preview takes no lock).
    seen = job.started_at or job.finished_at
    diff_path = Path(job.diff_path) if job.diff_path else None
    if (
        seen is None
        or not job.changed
        or diff_path is None
        or diff_path.suffix != ".arrow"
        or not diff_path.exists()
    ):
        return
    sides = _sides(job)
    #: The job whose revisions count differently now -> the job that made it so.
    moved: dict[int, int] = {}
    for later in session.scalars(select(Job).where(Job.finished_at > seen, Job.state == "applied")):
        if later.reverts_job_id is None:
            if _sides(later) & sides:
                moved[later.id] = later.id
            continue
        # A revert: the reverted job's revisions stop counting.  One applied after the preview
        # started too changed nothing the preview saw.
        reverted = session.get(Job, later.reverts_job_id)
        if (
            reverted is not None
            and reverted.finished_at is not None
            and reverted.finished_at <= seen
            and _sides(reverted) & sides
        ):
            moved[reverted.id] = later.id
    if not moved:
        return
    prefixes = tuple(unit_prefix("j", unit) for unit in moved)
    files = [f for f in app.ledger.files(REVISIONS) if Path(f).name.startswith(prefixes)]
    if not files:
        return
    with pa.ipc.open_file(diff_path) as diff:
        previewed = diff.read_all().select(["xdr_id"]).cast(pa.schema([("xdr_id", pa.int64())]))
    con = duckdb.connect()
    con.register("previewed", previewed)
    rows = con.execute(
        f"""
        SELECT DISTINCT job_id FROM read_parquet({sql_paths(files)}, hive_partitioning=false)
        WHERE xdr_id IN (SELECT xdr_id FROM previewed)
        """
    ).fetchall()
    by = sorted({moved[int(job_id)] for (job_id,) in rows})  # the files are the moved jobs' own
    if by:
        raise ConflictError(
            f"job(s) {', '.join(map(str, by))} changed XDRs of dry run {job.id} since it was made: "
            "applying it would apply something else than what was previewed; preview again"
        )


#: Both sides: what a job that is no side's re-rating (a re-processing, a rollback) may change.
_BOTH_SIDES = frozenset({"customer", "vendor"})


def _sides(job: Job) -> frozenset[str]:
    """The sides whose prices a job sets: a re-rating's own, or both (a re-processing re-mediates
    the XDR, which both sides' prices follow)."""
    sides = dict(job.parameters or {}).get("sides") if job.kind == "rerate" else None
    return frozenset(str(s) for s in sides) & _BOTH_SIDES if isinstance(sides, list) else _BOTH_SIDES


def record_applied(app: App, planned_id: int, job_id: int | None) -> None:
    """Note the job that applied a claimed dry run, or (``None``: the apply failed) free it again.

    Under the claims lock, so that a claim being checked sees either the claim or its outcome."""
    with (
        ledger_lock(app.home, f"outcome of the apply of dry run {planned_id}", name="claims"),
        app.catalog.transaction() as session,
    ):
        job = session.get(Job, planned_id)
        if job is None:
            return
        parameters = dict(job.parameters)
        parameters.pop(_CLAIMED_BY, None)
        if job_id is None:
            # Not when the job it created (queued, running or applied) was noted already, in the
            # transaction that created it.
            applied_as = parameters.get("applied_as")
            if not isinstance(applied_as, int) or _gave_up(session.get(Job, applied_as)):
                parameters.pop("applied_as", None)
        else:
            # Noted already by the transaction that created the job, and perhaps moved on since to
            # the new job a queued one ran as (the job runner may have started it meanwhile).
            if not isinstance(parameters.get("applied_as"), int):
                parameters["applied_as"] = job_id
            audit.record(session, app.actor, "job.apply_planned", f"job {planned_id}", after={"job": job_id})
        job.parameters = parameters


def blocking_claim(app: App, job_id: int, parameters: dict[str, object]) -> object | None:
    """What stops the dry run being applied now, as its page shows it: the job that applied it,
    or ``"in progress"``; None when it may be applied (again).  Takes no lock: the apply decides."""
    with app.catalog.reading() as session:
        try:
            left_by = _claimer_to_take_over(session, job_id, parameters)
        except ConflictError:
            return parameters.get("applied_as")
    return parameters.get("applied_as") if left_by and _apply_lock(app, job_id).busy() else None


def apply_once(
    app: App, job_id: int, apply: Callable[[Job], Applied], applied_id: Callable[[Applied], int]
) -> Applied:
    """``apply`` the claimed dry run (run it, or queue it) and note the job that did; an apply that
    fails frees the dry run again."""
    with claimed(app, job_id) as job:
        faults.checkpoint("apply.claimed")
        try:
            done = apply(job)
        except BaseException:
            record_applied(app, job_id, None)
            raise
        record_applied(app, job_id, applied_id(done))
    return done
