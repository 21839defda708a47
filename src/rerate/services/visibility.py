"""What the catalog says is committed, handed to the ledger's readers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.catalog.models import Collection, Job
from rerate.ledger.reader import Visibility

VISIBLE_STATES = ("loaded",)
#: Jobs whose revisions and totals count.  A reverted job's writes are hidden.
#: Job states of work not yet finished (queued, previewing, applying, loading a file).
UNFINISHED = ("scheduled", "planning", "running", "ingesting")
APPLIED = "applied"


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
