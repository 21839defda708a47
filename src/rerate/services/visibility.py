"""What the catalog says is committed, handed to the ledger's readers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from rerate.catalog.models import Collection, Job
from rerate.ledger.reader import Visibility
from rerate.services.errors import JobNotScheduledError

VISIBLE_STATES = ("loaded",)
#: Job states of work not yet finished (queued, previewing, applying, loading a file).
UNFINISHED = ("scheduled", "planning", "running", "ingesting")
#: Jobs whose revisions and totals count.  A reverted job's writes are hidden.
APPLIED = "applied"


def claim_scheduled(session: Session, job_id: int, state: str) -> None:
    """Move a scheduled job to ``state`` in one statement, or raise :class:`JobNotScheduledError`.

    Of two runners (the service, a cron ``jobs run-due``) one wins; a job cancelled meanwhile
    is not run.
    """
    claimed = cast(
        CursorResult[Any],
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "scheduled")
            .values(state=state, started_at=datetime.now(UTC))
        ),
    )
    if claimed.rowcount != 1:
        raise JobNotScheduledError(f"job {job_id} is not scheduled")


def rolled_back_collections(session: Session) -> dict[int, int]:
    """Collection id -> the applied rollback job that voided it."""
    jobs = session.scalars(select(Job).where(Job.kind == "rollback", Job.state == APPLIED)).all()
    return {int(j.parameters["collection"]): j.id for j in jobs}  # type: ignore[call-overload]


def current_visibility(session: Session) -> Visibility:
    ids = session.scalars(select(Collection.id).where(Collection.state.in_(VISIBLE_STATES))).all()
    jobs = session.scalars(select(Job.id).where(Job.state == APPLIED)).all()
    return Visibility(
        collections=tuple(ids),
        sources=tuple(f"collection:{i}" for i in ids) + tuple(f"job:{j}" for j in jobs),
        jobs=tuple(jobs),
    )
