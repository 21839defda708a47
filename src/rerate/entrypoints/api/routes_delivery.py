"""CDR delivery: schedules, the delivery log, runs and resends."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from rerate.bootstrap import App
from rerate.domain.roles import Permission
from rerate.entrypoints.api.schemas import ScheduleBody
from rerate.entrypoints.api.security import Viewer, require
from rerate.services import delivery, delivery_schedules
from rerate.services.jsonable import plain

router = APIRouter(prefix="/api/deliveries", tags=["deliveries"])
#: Every router of this module (one resource).
ROUTERS = (router,)

Deliverer = Annotated[App, Depends(require(Permission.DELIVERIES))]


@router.get("/schedules")
def schedules(app: Viewer) -> list[dict[str, Any]]:
    return [dict(plain(s)) for s in delivery_schedules.list_schedules(app)]


@router.post("/schedules", status_code=201)
def add_schedule(body: ScheduleBody, app: Deliverer) -> dict[str, Any]:
    """A customer's daily, weekly or monthly CDR e-mail."""
    request = delivery_schedules.ScheduleRequest(
        customer=body.customer,
        to=body.email,
        cc=body.cc,
        cadence=body.cadence,
        weekday=body.weekday,
        at=body.at,
        timezone=body.timezone,
        format=body.format,
        columns=body.columns,
        compress=body.compress,
        max_attachment_mb=body.max_attachment_mb,
        include_failed=body.include_failed,
    )
    return dict(plain(delivery_schedules.add_schedule(app, request)))


@router.delete("/schedules/{schedule_id}")
def remove_schedule(schedule_id: int, app: Deliverer) -> dict[str, Any]:
    return dict(plain(delivery_schedules.remove_schedule(app, schedule_id)))


@router.get("/log")
def log(
    app: Viewer, customer: str | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 200
) -> list[dict[str, Any]]:
    """Every delivery: period covered, rows, bytes, message ids, attempts, state, error."""
    return [dict(plain(d)) for d in delivery.delivery_log(app, customer=customer, limit=limit)]


@router.post("/run")
def run(app: Deliverer, on: date | None = None, customer: str | None = None) -> dict[str, Any]:
    """Send what is due (on local date ``on``, or everything due now), then offer corrections."""
    return dict(plain(delivery.run_deliveries(app, on=on, customer=customer).as_dict()))


@router.post("/{delivery_id}/resend")
def resend(
    delivery_id: int, app: Deliverer, to: Annotated[list[str] | None, Query()] = None
) -> dict[str, Any]:
    """Send a logged delivery again; ``?to=ADDRESS`` (repeatable) sends it to those addresses alone."""
    return dict(plain(delivery.resend_delivery(app, delivery_id, to or ())))
