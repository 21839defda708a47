"""Cleaning up after units of work that died before their catalog commit.

Collections (``loading``) and jobs (``running``) write files named after
themselves into the ledger's tables and publish them before the catalog
commit that makes them visible.  A unit found unfinished by the next writer
(who holds the ledger lock, so it cannot be running) is unpublished and its
files deleted, by name; readers never saw it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Collection, Job
from rerate.ledger.tables import PREFIX_TOTALS, REVISIONS, TOTALS, XDRS, unit_prefix
from rerate.services import audit

#: An ingest job's state while it loads (claimed under the ledger lock: one found by the next
#: writer died with its process).
INGESTING = "ingesting"

#: Unit kind -> (catalog model, unfinished state, final state, tables it writes).
_UNITS: dict[str, tuple[type[Collection] | type[Job], str, str, tuple[str, ...]]] = {
    "c": (Collection, "loading", "aborted", (TOTALS, PREFIX_TOTALS, XDRS)),
    "j": (Job, "running", "failed", (TOTALS, PREFIX_TOTALS, REVISIONS)),
}


def remove_unit_files(app: App, kind: str, unit_id: int) -> None:
    """Unpublish and delete every file one collection (``c``) or job (``j``) wrote, by name."""
    for table in _UNITS[kind][3]:
        app.ledger.remove_unit(table, unit_prefix(kind, unit_id))


def recover_interrupted(app: App) -> list[str]:
    """Remove what crashed collections and jobs left behind; call with the ledger lock held."""
    recovered: list[str] = []
    with app.catalog.transaction() as session:
        for kind, (model, unfinished, final, _) in _UNITS.items():
            units: list[Collection | Job] = list(
                session.scalars(select(model).where(model.state == unfinished))
            )
            for unit in units:
                remove_unit_files(app, kind, unit.id)
                unit.state = final
                unit.error = (unit.error or "interrupted") + "; its partial files were removed"
                unit.finished_at = datetime.now(UTC)
                name = f"{model.__tablename__[:-1]} {unit.id}"
                audit.record(session, "rerate", f"{model.__tablename__[:-1]}.recover", name)
                recovered.append(name)
        for job in session.scalars(select(Job).where(Job.state == INGESTING)):
            job.state = "failed"
            job.error = "interrupted; its collection was cleaned up (queue the file again)"
            job.finished_at = datetime.now(UTC)
            audit.record(session, "rerate", "job.recover", f"job {job.id}")
            recovered.append(f"job {job.id}")
    return recovered
