"""Collection rollback: every XDR of a collection becomes ``voided``.

A rollback is a correction like any other (ARCHITECTURE.md): its revisions
void the XDRs and its totals delta removes exactly their amounts.  Once it is
applied, the file's checksum and source ids stop counting, so the same file
can be ingested again and loads as new.  ``jobs revert`` undoes a rollback,
unless the file was loaded again meanwhile.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Collection, Job
from rerate.domain.scopes import Scope
from rerate.ledger.reader import connect_duckdb, files_of, sql_paths
from rerate.ledger.tables import XDRS
from rerate.services.corrections import Contexts, Correction, CorrectionReport, JobProgress, execute
from rerate.services.errors import ConflictError, NotFoundError
from rerate.services.ingest import live_xdrs_sql
from rerate.services.rollback_totals import VOIDED_VALUES, WholeCollection
from rerate.services.visibility import current_visibility, rolled_back_collections


def _void(current: pa.Table, _contexts: Contexts) -> pa.Table:
    updated = current
    for name, value in VOIDED_VALUES.items():
        kind = current.schema.field(name).type
        column = pa.repeat(pa.scalar(value, kind), current.num_rows)
        updated = updated.set_column(updated.schema.get_field_index(name), name, column)
    return updated


def collections(app: App) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        rolled = rolled_back_collections(session)
        rows = session.scalars(select(Collection).order_by(Collection.id.desc())).all()
        return [
            {
                "collection_id": c.id,
                "file": c.file_name,
                "state": "rolled back" if c.id in rolled else c.state,
                "rolled_back_by_job": rolled.get(c.id),
                "read": c.read,
                "loaded": c.loaded,
                "duplicates": c.duplicates,
                "rejected": c.rejected,
                # Unanswered calls the template left out: read = loaded + duplicates + rejected + skipped.
                "skipped": c.skipped,
                "failed": c.failed,
                "template": c.template,
                "started_at": c.started_at,
                "finished_at": c.finished_at,
                "checksum": c.checksum,
                "rejects_path": c.rejects_path,
                "error": c.error,
            }
            for c in rows
        ]


def rollback(
    app: App,
    collection_id: int,
    *,
    dry_run: bool = False,
    allow_closed: bool = False,
    progress: JobProgress | None = None,
) -> CorrectionReport:
    """Void every XDR of a loaded collection (a previewable, revertible job)."""
    correction = rollback_correction(app, collection_id, dry_run=dry_run, allow_closed=allow_closed)
    return execute(app, correction, progress=progress)


def rollback_correction(
    app: App, collection_id: int, *, dry_run: bool = False, allow_closed: bool = False
) -> Correction:
    with app.catalog.reading() as session:
        collection = session.get(Collection, collection_id)
        if collection is None:
            raise NotFoundError(f"no collection {collection_id} (see 'rerate collection list')")
        if collection.state != "loaded":
            raise ConflictError(f"collection {collection_id} is {collection.state}: nothing to roll back")
        rolled = rolled_back_collections(session)
        if collection_id in rolled:
            raise ConflictError(
                f"collection {collection_id} was rolled back already by job {rolled[collection_id]}"
            )
        name = collection.file_name
    correction = Correction(
        kind="rollback",
        scope=Scope(collections=(collection_id,), labels={"collections": (f"{collection_id} ({name})",)}),
        description=f"roll back collection {collection_id} ({name}): void its XDRs",
        parameters={"collection": collection_id, "allow_closed": allow_closed},
        dry_run=dry_run,
        compared=("status", "vendor_status"),
        transform=_void,
        allow_closed=allow_closed,
        whole_collection=WholeCollection(collection_id),
    )
    return correction


def check_revert_of_rollback(app: App, job: Job) -> None:
    """Refuse to bring a collection back when its XDRs were loaded again meanwhile.

    The same file loaded again is found by its checksum; a corrected file (another checksum)
    by its source ids, day by day, as ingest finds duplicates: either way, reverting the
    rollback would bill the same calls twice.
    """
    collection_id = int(job.parameters.get("collection", 0))  # type: ignore[call-overload]
    with app.catalog.reading() as session:
        original = session.get(Collection, collection_id)
        if original is None:
            return
        rolled_back = rolled_back_collections(session)
        again = session.scalars(
            select(Collection.id).where(
                Collection.checksum == original.checksum,
                Collection.state == "loaded",
                Collection.id != collection_id,
            )
        ).all()
        live = [
            c for c in current_visibility(session).collections if c not in rolled_back and c != collection_id
        ]
    twins = [c for c in again if c not in rolled_back]
    if twins:
        raise ConflictError(
            f"the file of collection {collection_id} was loaded again as collection {twins[0]}: "
            f"roll back collection {twins[0]} before bringing {collection_id} back"
        )
    found = _live_source_ids(app, collection_id, live)
    if found is not None:
        other, day, count = found
        raise ConflictError(
            f"collection {other} holds {count:,} XDR(s) of {day} with the source ids of collection "
            f"{collection_id} (a corrected file loaded after the rollback?): roll back collection "
            f"{other} before bringing {collection_id} back"
        )


def _live_source_ids(app: App, collection_id: int, live: list[int]) -> tuple[int, str, int] | None:
    """The first live collection, day and count of XDRs sharing a source id with the collection."""
    if not live:
        return None
    con = connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp")
    try:
        for day, files in sorted(app.ledger.files_by_day(XDRS).items()):
            mine = files_of(files, "c", [collection_id])
            others = [f for f in files if f not in mine]
            if not mine or not others:
                continue
            row = con.execute(
                f"""
                SELECT collection_id, count(*) FROM ({live_xdrs_sql(others, live)}) WHERE source_id IN (
                    SELECT source_id FROM read_parquet({sql_paths(mine)}, hive_partitioning=false))
                GROUP BY 1 ORDER BY 1 LIMIT 1
                """
            ).fetchone()
            if row is not None:
                return int(row[0]), day, int(row[1])
    finally:
        con.close()
    return None
