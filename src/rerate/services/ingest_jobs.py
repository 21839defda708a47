"""Ingest as a job: a file uploaded to the service is loaded by the job runner, not in the request.

A large file takes minutes to load; the API answers at once with the job and
the caller polls it like a correction.  The job's final state is ``done``
(an ingest is undone by rolling back its collection, never by ``jobs
revert``); its totals hold each collection's report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.services import audit
from rerate.services.ingest import IngestProgress, ingest_locked
from rerate.services.jsonable import plain
from rerate.services.locks import ledger_lock
from rerate.services.recovery import INGESTING, recover_interrupted
from rerate.services.visibility import claim_scheduled
from rerate.services.xdr_templates import find_template

KIND = "ingest"
DONE = "done"


def queue_ingest(app: App, path: Path, template: str | None = None) -> int:
    """Record the ingest of ``path`` (already on the service's disk) to be run as soon as possible."""
    with app.catalog.transaction() as session:
        if template is not None:
            find_template(session, template)  # an unknown name is refused now, not by the job later
        job = Job(
            kind=KIND,
            state="scheduled",
            dry_run=False,
            scope={},
            parameters={"path": str(path), "template": template},
            description=f"ingest {path.name}" + (f" with template {template}" if template else ""),
            actor=app.actor,
            scheduled_for=datetime.now(UTC),
        )
        session.add(job)
        session.flush()
        audit.record(session, app.actor, "job.queue", f"job {job.id}", after={"ingest": path.name})
        return job.id


def run_ingest_job(app: App, job_id: int, progress: IngestProgress | None = None) -> None:
    """Load the job's file; the job ends ``done`` with the collections' reports, or failed."""
    app.ledger.ensure()
    # Claimed under the ledger lock: a busy ledger leaves the job scheduled for the next pass, and
    # a job found "ingesting" by the next writer (who holds the lock) died with its process.
    with ledger_lock(app.home, f"ingest job {job_id} by {app.actor}"):
        recover_interrupted(app)
        with app.catalog.transaction() as session:
            claim_scheduled(session, job_id, INGESTING)
            job = session.get(Job, job_id)
            assert job is not None
            path = Path(str(job.parameters["path"]))
            template = job.parameters.get("template")
        reports = ingest_locked(app, [path], progress=progress, template=str(template) if template else None)
        with app.catalog.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            refused = [r for r in reports if r.state == "error"]
            # A file refused whole (bad header, unreadable) fails the job.
            job.state = "failed" if refused else DONE
            job.error = "; ".join(f"{Path(r.file).name}: {r.error}" for r in refused) or None
            job.in_scope = sum(r.read for r in reports)
            job.changed = sum(r.loaded for r in reports)
            job.totals = {"collections": plain(reports)}
            job.finished_at = datetime.now(UTC)
