"""Collections (ingest and the list), XDR search and export, billing periods."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile as Upload

from rerate.bootstrap import App
from rerate.domain.roles import Permission
from rerate.entrypoints.api.routes_jobs import wake_runner
from rerate.entrypoints.api.schemas import PeriodCloseBody, job_view
from rerate.entrypoints.api.security import Viewer, require
from rerate.services import jobs as jobs_service
from rerate.services import listings, periods, rollback
from rerate.services.errors import InvalidInputError
from rerate.services.export import export_xdrs, search_xdrs
from rerate.services.ingest_jobs import queue_ingest
from rerate.services.jsonable import plain
from rerate.services.timeparse import parse_utc

router = APIRouter(prefix="/api", tags=["collections"])
xdrs_router = APIRouter(prefix="/api/xdrs", tags=["xdrs"])
periods_router = APIRouter(prefix="/api/periods", tags=["periods"])
#: Every router of this module, one per resource.
ROUTERS = (router, xdrs_router, periods_router)

#: ``from``/``to`` query parameters (UTC ISO times; ``to`` excluded), as the CLI's ``--from``/``--to``.
From = Annotated[str | None, Query(alias="from")]
To = Annotated[str | None, Query(alias="to")]


@router.get("/collections")
def list_collections(app: Viewer) -> list[dict[str, Any]]:
    """Every ingested file, newest first, with its counts and state (rolled back ones say so)."""
    return [dict(plain(c)) for c in rollback.collections(app)]


@router.get("/collections/{collection_id}")
def show_collection(app: Viewer, collection_id: int) -> dict[str, Any]:
    for collection in rollback.collections(app):
        if collection["collection_id"] == collection_id:
            return dict(plain(collection))
    raise HTTPException(404, f"no collection {collection_id}")


def save_upload(app: App, upload: Upload) -> Path:
    """An uploaded file under the home's uploads folder, keeping its name (collections are named by it)."""
    name = Path(upload.filename or "").name
    if name in ("", ".", "..") or "\x00" in name:
        raise InvalidInputError(f"the uploaded file needs a proper name, got {upload.filename!r}")
    if len(name.encode()) > 200:  # file systems stop at 255 bytes per name
        raise InvalidInputError(
            f"the uploaded file's name is too long ({len(name.encode())} bytes, 200 at most)"
        )
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=_uploads(app)))
    target = folder / name
    with target.open("wb") as handle:
        shutil.copyfileobj(upload.file, handle)
    return target


def _uploads(app: App) -> Path:
    folder = app.home / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def queue_saved_upload(app: App, saved: Path, template: str | None) -> int:
    """The ingest job of an uploaded file; refused (an unknown template), nothing of it stays on disk."""
    try:
        return queue_ingest(app, saved, template)
    except BaseException:
        shutil.rmtree(saved.parent, ignore_errors=True)
        raise


@router.post("/ingest", status_code=202)
def ingest_file(
    request: Request,
    file: UploadFile,
    app: Annotated[App, Depends(require(Permission.INGEST))],
    template: str | None = None,
) -> dict[str, Any]:
    """Ingest one XDR file as its own collection, read by ``template`` (default canonical): the job.

    The file is stored at once; the job runner loads it (poll ``GET /api/jobs/{id}``: state ``done``,
    with the collection's report in ``totals.collections``, or ``failed`` with the reason).
    """
    job_id = queue_saved_upload(app, save_upload(app, file), template)
    wake_runner(request)
    return job_view(app, jobs_service.job(app, job_id))


def _filters(
    status: str = "all",
    customer: str | None = None,
    account: str | None = None,
    start: From = None,
    end: To = None,
) -> dict[str, Any]:
    """The XDR filters shared by search and export, from the query string."""
    return {
        "status": status,
        "customer": customer or None,
        "account": account or None,
        "start": parse_utc(start, field="from") if start else None,
        "end": parse_utc(end, field="to") if end else None,
    }


XdrFilters = Annotated[dict[str, Any], Depends(_filters)]


@xdrs_router.get("")
def xdrs(
    app: Viewer,
    filters: XdrFilters,
    number: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    """XDRs in their current state (after corrections), by connect time; ``number`` matches CLI or CLD."""
    found = search_xdrs(app, **filters, number=number, limit=limit)
    return [dict(plain(row)) for row in found]


@xdrs_router.get("/export")
def export(app: Viewer, filters: XdrFilters, format: str = "csv", number: str | None = None) -> FileResponse:
    """Every matching XDR as CSV or Parquet (exact decimals); ``number`` as in the search."""
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=_uploads(app)))
    out = folder / f"xdrs.{format}"
    try:
        export_xdrs(app, out, fmt=format, number=number or None, **filters)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        out,
        filename=out.name,
        media_type="text/csv" if format == "csv" else "application/vnd.apache.parquet",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


@periods_router.get("")
def list_periods(app: Viewer, customer: str | None = None) -> list[dict[str, Any]]:
    """Closed billing periods."""
    return [dict(plain(p)) for p in periods.list_periods(app, customer)]


@periods_router.post("/close", status_code=201)
def close_period(
    body: PeriodCloseBody, app: Annotated[App, Depends(require(Permission.CLOSE_PERIOD))]
) -> dict[str, Any]:
    """Close a customer's period: later changes to it become adjustment lines."""
    closed = periods.close_period(app, body.customer, body.period)
    return {"customer": body.customer, "period": closed.period, "closed_at": plain(closed.closed_at)}


@periods_router.get("/adjustments")
def adjustments(app: Viewer) -> list[dict[str, Any]]:
    """Adjustment lines of corrections to closed periods, newest first, with their job's state."""
    return [dict(plain(a)) for a in listings.adjustments(app)]
