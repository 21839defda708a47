"""The summary report (JSON, CSV, XLSX) and the mismatch views."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from rerate.entrypoints.api.routes_ledger import From, To
from rerate.entrypoints.api.security import Viewer
from rerate.entrypoints.cli_reports import write_csv, write_xlsx
from rerate.services import report as report_service
from rerate.services.errors import InvalidInputError
from rerate.services.jsonable import plain
from rerate.services.timeparse import parse_utc

router = APIRouter(prefix="/api/reports", tags=["reports"])
#: Every router of this module (one resource).
ROUTERS = (router,)


def _time(text: str | None, name: str) -> Any:
    return parse_utc(text, field=name) if text else None


@router.get("/summary", response_model=None)
def summary(
    app: Viewer,
    customer: list[str] = Query(default=[]),
    period: str | None = None,
    start: From = None,
    end: To = None,
    group_by: str = "customer",
    as_closed: bool = False,
    format: str = "json",
) -> dict[str, Any] | Response:
    """Lines grouped by ``group_by`` (a comma list), corrections to closed periods, totals per currency."""
    report = report_service.cached_summary_report(
        app,
        report_service.ReportRequest(
            customers=customer,
            period=period or None,
            start=_time(start, "from"),
            end=_time(end, "to"),
            group_by=[g.strip() for g in group_by.split(",") if g.strip()],
            as_closed=as_closed,
        ),
    )
    if format == "csv":
        text = io.StringIO()
        write_csv(report, text)
        return Response(
            text.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="summary.csv"'},
        )
    if format == "xlsx":
        folder = Path(tempfile.mkdtemp(prefix="summary-"))
        write_xlsx(report, folder / "summary.xlsx")
        return FileResponse(
            folder / "summary.xlsx",
            filename="summary.xlsx",
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )
    if format != "json":
        raise InvalidInputError("format is json, csv or xlsx")
    return dict(plain(report.as_dict()))


@router.get("/failures")
def failures(app: Viewer, start: From = None, end: To = None) -> list[dict[str, Any]]:
    """Failed XDRs by reason per customer and side."""
    rows = report_service.failures_by_reason(app, _time(start, "from"), _time(end, "to"))
    return [dict(plain(r)) for r in rows]


@router.get("/negative-margins")
def negative_margins(app: Viewer, start: From = None, end: To = None) -> list[dict[str, Any]]:
    rows = report_service.negative_margins(app, _time(start, "from"), _time(end, "to"))
    return [dict(plain(r)) for r in rows]


@router.get("/jumps")
def jumps(app: Viewer, start: From = None, end: To = None) -> list[dict[str, Any]]:
    """Day-over-day jumps in calls or revenue per customer."""
    rows = report_service.day_over_day_jumps(app, _time(start, "from"), _time(end, "to"))
    return [dict(plain(r)) for r in rows]


@router.get("/by-day")
def ingest_by_day(app: Viewer, start: From = None, end: To = None) -> list[dict[str, Any]]:
    """Per day: calls rated and failed, revenue, cost, margin (the charts), from the daily totals."""
    return [dict(plain(r)) for r in report_service.calls_by_day(app, _time(start, "from"), _time(end, "to"))]
