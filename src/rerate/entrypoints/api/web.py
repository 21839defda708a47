"""The web UI for the billing team: server-rendered pages on the same service functions as the API.

Pages are Jinja2 templates; forms post back here with the session's CSRF
token; long work (dry runs, corrections, rollbacks) is queued as a job whose
page polls ``/api/jobs/{id}`` for progress.  A page the role does not allow
shows the refusal (and it is audited); buttons a role cannot use are hidden.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from rerate.bootstrap import App
from rerate.domain.deck_review import Mode, PastPolicy
from rerate.domain.roles import MATRIX, Permission, allowed, correction_permissions
from rerate.entrypoints.api import charts
from rerate.entrypoints.api.display import shown_error, shown_money, shown_time
from rerate.entrypoints.api.routes_jobs import (
    apply_dry_run,
    check_revert,
    rerate_correction_of,
    scope_of,
    submit,
    wake_runner,
)
from rerate.entrypoints.api.routes_ledger import queue_saved_upload, save_upload
from rerate.entrypoints.api.routes_tariffs import pairs
from rerate.entrypoints.api.schemas import RerateBody, ScopeBody, job_view
from rerate.entrypoints.api.security import SESSION_COOKIE, acting, check, session_principal, wired
from rerate.services import (
    audit,
    audit_log,
    delivery,
    delivery_schedules,
    dry_runs,
    listings,
    periods,
    rate_import,
    rollback,
    tariff_admin,
    users,
    xdr_templates,
)
from rerate.services import jobs as jobs_service
from rerate.services import report as report_service
from rerate.services.errors import InvalidInputError, RerateError
from rerate.services.export import search_xdrs
from rerate.services.jsonable import plain
from rerate.services.rate_results import rate_entry
from rerate.services.reprocess import reprocess_correction
from rerate.services.rollback import rollback_correction
from rerate.services.timeparse import parse_utc
from rerate.services.users import Principal
from rerate.services.visibility import UNFINISHED

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["when"] = shown_time
templates.env.filters["money"] = shown_money
router = APIRouter(include_in_schema=False)
SESSION_LIFETIME = timedelta(hours=10)
#: Report lines a page shows (the exports have them all).
SHOWN_LINES = 2000

#: Navigation: (path, label, permission needed to see it).
NAV = (
    ("/", "Dashboard", Permission.VIEW),
    ("/xdrs", "XDRs", Permission.VIEW),
    ("/rerate", "Re-rate", Permission.DRY_RUN),
    ("/jobs", "Jobs", Permission.VIEW),
    ("/collections", "Collections", Permission.VIEW),
    ("/periods", "Periods", Permission.VIEW),
    ("/reports", "Reports", Permission.VIEW),
    ("/deliveries", "CDR delivery", Permission.VIEW),
    ("/tariffs", "Tariffs", Permission.VIEW),
    ("/parties", "Parties", Permission.VIEW),
    ("/audit", "Audit", Permission.VIEW),
)


class SignInRequiredError(Exception):
    """Raised by a page when nobody is signed in: the handler sends the browser to the login page."""


def mount(service: FastAPI) -> None:
    service.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    service.include_router(router)

    @service.exception_handler(SignInRequiredError)
    async def to_login(request: Request, _: SignInRequiredError) -> Response:
        return RedirectResponse(f"/login?{urlencode({'next': _back_to(request)}, safe='/')}", status_code=303)

    @service.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}" for error in exc.errors()
        )
        return error_page(request, f"the form was not filled in right: {problems}", 422)

    # Starlette's own (an unknown page, a wrong method) as well as the routes': pages get the error page.
    @service.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            from fastapi.exception_handlers import http_exception_handler

            return await http_exception_handler(request, exc)
        return error_page(request, exc.detail, exc.status_code)


def _back_to(request: Request) -> str:
    """Where to go once signed in: the page asked for, its query included; for a form posted after
    the session ended, the page the form was on (the post itself is not replayed)."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    came_from = urlsplit(request.headers.get("referer", ""))
    if came_from.path.startswith("/") and came_from.netloc in ("", request.url.netloc):
        return came_from.path + (f"?{came_from.query}" if came_from.query else "")
    return "/"


def error_page(request: Request, error: Any, status: int) -> HTMLResponse:
    principal = session_principal(request)
    return templates.TemplateResponse(
        request,
        "error.html",
        {**_base(request, principal), "error": shown_error(error), "status": status},
        status_code=status,
    )


def _base(request: Request, principal: Principal | None) -> dict[str, Any]:
    can: Callable[[str], bool] = (
        (lambda name: allowed(principal.role, Permission(name))) if principal else (lambda _: False)
    )
    return {
        "user": principal,
        "csrf": principal.csrf_token if principal else "",
        "nav": [(p, label) for p, label, need in NAV if principal and allowed(principal.role, need)],
        "path": request.url.path,
        "can": can,
    }


def _signed_in(request: Request) -> Principal:
    principal = session_principal(request)
    if principal is None:
        raise SignInRequiredError
    return principal


def _viewer(request: Request) -> tuple[App, Principal]:
    principal = _signed_in(request)
    app = wired(request)
    check(app, principal, [Permission.VIEW], f"GET {request.url.path}")
    return acting(app, principal), principal


def _render(request: Request, principal: Principal, name: str, **context: Any) -> HTMLResponse:
    page = templates.TemplateResponse(request, name, {**_base(request, principal), **context})
    # A signed-in page holds billing data: after sign-out, the back button must not show it again.
    page.headers["Cache-Control"] = "no-store"
    return page


def _form_for(request: Request, principal: Principal, csrf: str, permissions: list[Permission]) -> App:
    """A posted form's go-ahead: the session's CSRF token, the role's permissions; the app acting for it."""
    _posted(request, principal, csrf)
    app = wired(request)
    check(app, principal, permissions, f"{request.method} {request.url.path}")
    return acting(app, principal)


def _posted(request: Request, principal: Principal, csrf: str) -> None:
    if not principal.csrf_token or not secrets.compare_digest(csrf.encode(), principal.csrf_token.encode()):
        raise HTTPException(403, "this form has expired (wrong CSRF token): reload the page and try again")


# --------------------------------------------------------------------------- sign in


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {**_base(request, None), "next": next})


@router.post("/login", response_model=None)
def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    app = wired(request)
    # No session yet, so no CSRF token: a sign-in posted by another site's page (which would sign
    # the browser into the sender's account) is told apart by the Origin browsers send.
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(403, "sign in from rerate's own sign-in page")
    principal = users.authenticate(app, username, password)
    if principal is None:
        with app.catalog.transaction() as session:
            audit.record(session, username or "?", "access.sign_in_failed", "web session")
        context = {**_base(request, None), "next": next, "error": "Wrong user name or password."}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    token, _ = users.issue_token(app, principal, "session", SESSION_LIFETIME)
    # Only a path of this site: browsers read "//x" and "/\\x" as another host.
    target = next if next.startswith("/") and not next.startswith(("//", "/\\")) else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        max_age=int(SESSION_LIFETIME.total_seconds()),
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    principal = _signed_in(request)
    _posted(request, principal, csrf)
    users.revoke(wired(request), request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --------------------------------------------------------------------------- dashboard, XDRs


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    by_day = report_service.calls_by_day(app)
    running = [job_view(app, j) for j in jobs_service.jobs(app, states=UNFINISHED)]
    return _render(
        request,
        principal,
        "dashboard.html",
        chart=charts.bars(
            [(r["day"], r["rated"]) for r in by_day[-31:]],
            title="Rated calls per day (last 31 days with traffic)",
        ),
        by_day=by_day[-31:],
        failures=report_service.failures_by_reason(app),
        running=running,
    )


@router.get("/xdrs", response_class=HTMLResponse)
def xdrs_page(
    request: Request,
    status: str = "all",
    customer: str = "",
    account: str = "",
    start: str = "",
    end: str = "",
    number: str = "",
    limit: int = 100,
) -> HTMLResponse:
    app, principal = _viewer(request)
    filters = {"status": status, "customer": customer, "account": account, "start": start, "end": end}
    if number:
        filters["number"] = number  # the export link takes every filter the search used
    rows: list[dict[str, Any]] = []
    error = None
    try:
        rows = search_xdrs(
            app,
            status=status,
            customer=customer or None,
            account=account or None,
            start=parse_utc(start, field="from") if start else None,
            end=parse_utc(end, field="to") if end else None,
            number=number or None,
            limit=limit,
        )
    except RerateError as exc:
        error = shown_error(exc)
    query = _query(filters)
    return _render(
        request,
        principal,
        "xdrs.html",
        rows=plain(rows),
        filters={**filters, "number": number, "limit": limit},
        export_url=f"/api/xdrs/export?{query}",
        error=error,
    )


# --------------------------------------------------------------------------- corrections


def _query(fields: dict[str, Any]) -> str:
    """An API query string for a page's filters (``start``/``end`` are the API's ``from``/``to``)."""
    renamed = {"start": "from", "end": "to"}
    return urlencode({renamed.get(k, k): v for k, v in fields.items() if v})


def _scope_body(form: dict[str, str], names: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Scope fields of a form: comma or newline separated lists; a line that is a whole known
    name (``Acme, Inc.``) is that name, not two."""
    body: dict[str, Any] = {name: _listed_values(form.get(name, ""), names) for name in ScopeBody.LIST_FIELDS}
    body["from"] = form.get("from") or None
    body["to"] = form.get("to") or None
    return body


def _listed_values(text: str, names: frozenset[str]) -> list[str]:
    values: list[str] = []
    for line in (line.strip() for line in text.splitlines()):
        values += [line] if line in names else [v.strip() for v in line.split(",") if v.strip()]
    return values


def _party_names(app: App) -> frozenset[str]:
    shown = listings.parties(app)
    return frozenset(
        [c["name"] for c in shown["customers"]]
        + [a["identifier"] for a in shown["accounts"]]
        + [v["name"] for v in shown["vendors"]]
    )


@router.get("/rerate", response_class=HTMLResponse)
def rerate_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(
        request,
        principal,
        "rerate.html",
        form={},
        tariffs=[t["name"] for t in listings.tariffs(app)],
        parties=listings.parties(app),
    )


@router.post("/rerate", response_model=None)
async def rerate_preview(request: Request) -> Response:
    """Step 2 of the wizard: the scope form becomes a dry-run job; its page shows the preview."""
    principal = _signed_in(request)
    async with request.form() as posted:
        form = {k: str(v) for k, v in posted.items()}
    return await run_in_threadpool(_rerate_preview, request, principal, form)


def _rerate_preview(request: Request, principal: Principal, form: dict[str, str]) -> Response:
    app = _form_for(request, principal, form.get("csrf", ""), [Permission.DRY_RUN])
    try:
        body = RerateBody.model_validate(
            {
                **_scope_body(form, _party_names(app)),
                "tariff": form.get("tariff") or None,
                "ghost_percent": form.get("ghost_percent") or "0",
                "side": form.get("side") or "both",
                "dry_run": True,
                "allow_closed": form.get("allow_closed") == "on",
            }
        )
        correction = rerate_correction_of(app, body)
    except (RerateError, ValueError) as exc:
        return _render(
            request,
            principal,
            "rerate.html",
            form=form,
            error=shown_error(exc),
            tariffs=[t["name"] for t in listings.tariffs(app)],
            parties=listings.parties(app),
        )
    job = submit(request, app, correction, None)
    return RedirectResponse(f"/jobs/{job['job_id']}", status_code=303)


@router.post("/reprocess-preview", response_model=None)
def reprocess_preview(
    request: Request, csrf: Annotated[str, Form()], customer: Annotated[str, Form()] = ""
) -> Response:
    """The dashboard's one click: preview re-processing a customer's failed XDRs."""
    principal = _signed_in(request)
    app = _form_for(request, principal, csrf, [Permission.DRY_RUN])
    body = ScopeBody.model_validate({"customer": [customer] if customer else [], "status": ["failed"]})
    correction = reprocess_correction(scope_of(app, body), failed_only=True, dry_run=True)
    job = submit(request, app, correction, None)
    return RedirectResponse(f"/jobs/{job['job_id']}", status_code=303)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    found = jobs_service.jobs(app, limit=300)
    return _render(request, principal, "jobs.html", jobs=[job_view(app, j) for j in found])


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int) -> HTMLResponse:
    app, principal = _viewer(request)
    job = job_view(app, jobs_service.job(app, job_id))
    report = job.get("report") or {}
    parameters = job.get("parameters") or {}
    allow_closed = bool(parameters.get("allow_closed"))
    # A preview touching closed periods without them allowed would fail once applied: no Apply.
    closed_refused = bool(report.get("adjustments")) and not allow_closed
    applied_as = dry_runs.blocking_claim(app, job_id, parameters) if job["state"] == "planned" else None
    can_apply = (
        job["state"] == "planned"
        and applied_as is None
        and not closed_refused
        and all(
            allowed(principal.role, p)
            for p in correction_permissions(job["kind"], dry_run=False, allow_closed=allow_closed)
        )
    )
    can_revert = (
        job["state"] == "applied"
        and job["kind"] != "revert"
        and all(
            allowed(principal.role, p)
            for p in correction_permissions("revert", dry_run=False, allow_closed=allow_closed)
        )
    )
    # Undoing changes in periods closed since the job was applied takes the closed-periods right.
    can_revert_closed = can_revert and all(
        allowed(principal.role, p) for p in correction_permissions("revert", dry_run=False, allow_closed=True)
    )
    return _render(
        request,
        principal,
        "job.html",
        job=job,
        report=report,
        can_apply=can_apply,
        applied_as=applied_as,
        closed_refused=closed_refused,
        can_revert=can_revert,
        can_revert_closed=can_revert_closed,
        day_chart=charts.signed_bars(
            [(r["day"], r["amount_delta"]) for r in report.get("by_day", [])], title="Amount delta by day"
        ),
        destination_chart=charts.signed_bars(
            [
                (r["country"] or "-", r["amount_delta"])
                for r in sorted(
                    report.get("by_destination", []), key=lambda r: -abs(float(r["amount_delta"]))
                )[:15]
            ],
            title="Amount delta by destination (largest 15)",
        ),
    )


@router.post("/jobs/{job_id}/apply", response_model=None)
def apply_job(request: Request, job_id: int, csrf: Annotated[str, Form()]) -> Response:
    principal = _signed_in(request)
    _posted(request, principal, csrf)
    job = apply_dry_run(request, principal, job_id, f"POST /jobs/{job_id}/apply")
    return RedirectResponse(f"/jobs/{job['job_id']}", status_code=303)


@router.post("/jobs/{job_id}/revert", response_model=None)
def revert_job(
    request: Request, job_id: int, csrf: Annotated[str, Form()], allow_closed: Annotated[str, Form()] = ""
) -> Response:
    principal = _signed_in(request)
    _posted(request, principal, csrf)
    app = wired(request)
    closed = allow_closed == "on"
    check_revert(app, principal, job_id, f"POST /jobs/{job_id}/revert", allow_closed=closed)
    report = jobs_service.revert(acting(app, principal), job_id, allow_closed=closed)
    return RedirectResponse(f"/jobs/{report.job_id}", status_code=303)


@router.get("/collections", response_class=HTMLResponse)
def collections_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(
        request,
        principal,
        "collections.html",
        collections=plain(rollback.collections(app)),
        templates=[t["name"] for t in xdr_templates.list_templates(app) if t["name"] != "canonical"],
    )


@router.post("/collections/ingest", response_model=None)
async def ingest_upload(request: Request) -> Response:
    """An uploaded XDR file becomes an ingest job; its page follows the load."""
    principal = _signed_in(request)
    async with request.form() as posted:
        csrf, template, upload = posted.get("csrf"), posted.get("template"), posted.get("file")
        app = _form_for(request, principal, csrf if isinstance(csrf, str) else "", [Permission.INGEST])
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInputError("choose a file to ingest")
        path = await run_in_threadpool(save_upload, app, upload)  # a large file: not on the event loop
    job_id = queue_saved_upload(app, path, template if isinstance(template, str) and template else None)
    wake_runner(request)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.post("/collections/{collection_id}/rollback", response_model=None)
def rollback_preview(request: Request, collection_id: int, csrf: Annotated[str, Form()]) -> Response:
    """A rollback's impact preview (a dry run); its job page applies it."""
    principal = _signed_in(request)
    app = _form_for(request, principal, csrf, [Permission.DRY_RUN])
    job = submit(request, app, rollback_correction(app, collection_id, dry_run=True), None)
    return RedirectResponse(f"/jobs/{job['job_id']}", status_code=303)


# --------------------------------------------------------------------------- periods, reports


@router.get("/periods", response_class=HTMLResponse)
def periods_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(
        request,
        principal,
        "periods.html",
        periods=plain(periods.list_periods(app)),
        adjustments=plain(listings.adjustments(app)),
        customers=listings.customer_names(app),
    )


@router.post("/periods/close", response_model=None)
def close_period(
    request: Request,
    csrf: Annotated[str, Form()],
    customer: Annotated[str, Form()],
    period: Annotated[str, Form()],
) -> Response:
    principal = _signed_in(request)
    app = _form_for(request, principal, csrf, [Permission.CLOSE_PERIOD])
    periods.close_period(app, customer, period)
    return RedirectResponse("/periods", status_code=303)


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request, period: str = "", start: str = "", end: str = "", group_by: str = "customer"
) -> HTMLResponse:
    app, principal = _viewer(request)
    error = None
    report = None
    window = {"period": period, "start": start, "end": end, "group_by": group_by}
    try:
        report = report_service.cached_summary_report(
            app,
            report_service.ReportRequest(
                period=period or None,
                start=parse_utc(start, field="from") if start else None,
                end=parse_utc(end, field="to") if end else None,
                group_by=[g.strip() for g in group_by.split(",") if g.strip()],
            ),
        )
    except RerateError as exc:
        error = shown_error(exc)
    bounds = report.window if report else (None, None)
    by_day = report_service.calls_by_day(
        app,
        parse_utc(bounds[0], field="from") if bounds[0] else None,
        parse_utc(bounds[1], field="to") if bounds[1] else None,
    )
    query = _query(window)
    return _render(
        request,
        principal,
        "reports.html",
        report=plain({**report.as_dict(), "lines": report.lines[:SHOWN_LINES]}) if report else None,
        more_lines=max(0, len(report.lines) - SHOWN_LINES) if report else 0,
        form=window,
        error=error,
        chart=charts.lines(
            [r["day"] for r in by_day],
            {
                "revenue": [r["revenue"] for r in by_day],
                "cost": [r["cost"] for r in by_day],
                "margin": [r["margin"] for r in by_day],
            },
            title="Revenue, cost and margin per day",
        ),
        export=f"/api/reports/summary?{query}",
        failures=report_service.failures_by_reason(app),
        margins=plain(report_service.negative_margins(app)),
    )


# --------------------------------------------------------------------------- deliveries


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(
        request,
        principal,
        "deliveries.html",
        schedules=plain(delivery_schedules.list_schedules(app)),
        log=plain(delivery.delivery_log(app, limit=100)),
        customers=listings.customer_names(app),
    )


@router.post("/deliveries/schedules", response_model=None)
def add_schedule(
    request: Request,
    csrf: Annotated[str, Form()],
    customer: Annotated[str, Form()],
    email: Annotated[str, Form()],
    cadence: Annotated[str, Form()],
    at: Annotated[str, Form()] = "06:00",
    weekday: Annotated[str, Form()] = "",
    format: Annotated[str, Form()] = "csv",
) -> Response:
    principal = _signed_in(request)
    app = _form_for(request, principal, csrf, [Permission.DELIVERIES])
    delivery_schedules.add_schedule(
        app,
        delivery_schedules.ScheduleRequest(
            customer=customer,
            to=[e.strip() for e in email.split(",") if e.strip()],
            cadence=cadence,
            weekday=weekday or None,
            at=at,
            format=format,
        ),
    )
    return RedirectResponse("/deliveries", status_code=303)


@router.post("/deliveries/{delivery_id}/resend", response_model=None)
def resend(request: Request, delivery_id: int, csrf: Annotated[str, Form()]) -> Response:
    principal = _signed_in(request)
    app = _form_for(request, principal, csrf, [Permission.DELIVERIES])
    delivery.resend_delivery(app, delivery_id)
    return RedirectResponse("/deliveries", status_code=303)


# --------------------------------------------------------------------------- tariffs, rate import


@router.get("/tariffs", response_class=HTMLResponse)
def tariffs_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(request, principal, "tariffs.html", tariffs=listings.tariffs(app))


#: Rates a tariff page lists; a prefix filter finds the others (the API and CLI give them all).
TARIFF_PAGE_RATES = 3000


@router.get("/tariffs/{name:path}", response_class=HTMLResponse)  # a name may hold "/"
def tariff_page(request: Request, name: str, at: str = "", prefix: str = "") -> HTMLResponse:
    app, principal = _viewer(request)
    view = tariff_admin.show_tariff(app, name, at=parse_utc(at, field="at") if at else None)
    shown = plain(view)
    wanted = prefix.strip()
    rates = [r for r in shown["rates"] if str(r["prefix"]).startswith(wanted)] if wanted else shown["rates"]
    return _render(
        request,
        principal,
        "tariff.html",
        tariff=shown,
        at=at,
        prefix=wanted,
        rates=rates[:TARIFF_PAGE_RATES],
        matching=len(rates),
    )


def _upload_path(app: App, token: str) -> Path:
    """An earlier upload of this wizard, by its folder and name under the uploads folder (nowhere else)."""
    root = (app.home / "uploads").resolve()
    try:
        path = (root / token).resolve()
    except (ValueError, OSError):  # a NUL byte, a name too long: not an upload of ours
        path = root
    if root not in path.parents or not path.is_file():
        raise InvalidInputError("the uploaded deck is gone: upload it again")
    return path


def _filled(text: str) -> str:
    """The ``KEY=VALUE`` lines of a review form, without those left blank (``1876=``: not decided yet)."""
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.strip().endswith("="))


def _deck_request(app: App, tariff: str, path: Path, form: dict[str, str], preview: bool) -> Any:
    try:
        return rate_import.DeckImportRequest(
            tariff=tariff,
            path=path,
            mode=Mode(form.get("mode") or "add"),
            past=PastPolicy(form.get("past") or "skip"),
            preview=preview,
            mapping=pairs(_filled(form.get("mapping", "")), "mapping"),
            countries=pairs(_filled(form.get("countries", "")), "countries"),
            groups=pairs(_filled(form.get("groups", "")), "groups"),
            currency=form.get("currency") or None,
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(request, principal, "import.html", tariffs=listings.tariffs(app), form={})


@router.post("/import", response_model=None)
async def import_step(request: Request) -> Response:
    """Upload -> review (parsing, mapping, rates, new destinations) -> import -> summary."""
    principal = _signed_in(request)
    async with request.form() as posted:  # closes the uploaded file's spool when done
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        app = _form_for(request, principal, form.get("csrf", ""), [Permission.TARIFFS])
        upload = posted.get("file")
        try:
            path = (
                await run_in_threadpool(save_upload, app, upload)
                if isinstance(upload, UploadFile) and upload.filename
                else _upload_path(app, form.get("upload", ""))
            )
        except RerateError as exc:
            return _import_error(request, principal, app, form, exc)
    # Parsing and reviewing a large deck takes seconds: in a worker thread, not on the event loop.
    return await run_in_threadpool(_import_review, request, principal, app, form, path)


def _import_error(
    request: Request, principal: Principal, app: App, form: dict[str, str], exc: RerateError
) -> HTMLResponse:
    context = {"tariffs": listings.tariffs(app), "form": form, "error": shown_error(exc)}
    return _render(request, principal, "import.html", **context)


def _import_review(
    request: Request, principal: Principal, app: App, form: dict[str, str], path: Path
) -> HTMLResponse:
    tariff = form.get("tariff", "").strip()
    try:
        if not tariff:
            raise InvalidInputError("name the tariff to import into")
        token = str(path.relative_to((app.home / "uploads").resolve()))
        confirm = form.get("step") == "import"
        report = rate_import.import_deck(app, _deck_request(app, tariff, path, form, preview=not confirm))
    except RerateError as exc:
        return _import_error(request, principal, app, form, exc)
    if report.state == "imported":  # the wizard is over: its copy of the deck is not needed any more
        shutil.rmtree(path.parent, ignore_errors=True)
    return _render(
        request,
        principal,
        "import_review.html" if report.state != "imported" else "import_done.html",
        tariff=tariff,
        upload=token,
        form=form,
        report=plain(report.as_dict(rows=False)),  # a deck's rows: only the ones the page shows
        rows=plain([rate_entry(r) for r in report.rates[:SHOWN_LINES]]),
        more=max(0, len(report.rates) - SHOWN_LINES),
        summary_lines=rate_import.SUMMARY_LINES,
        countries=_countries_text(form.get("countries", ""), [d.prefix for d in report.unresolved]),
    )


def _countries_text(posted: str, unresolved: list[str]) -> str:
    """The countries box: what the operator wrote, then a ``prefix=`` line for each new destination
    still without a country and not written yet (a second review does not repeat them)."""
    lines = [line.strip() for line in posted.splitlines() if line.strip()]
    written = {line.partition("=")[0].strip() for line in lines}
    return "".join(f"{line}\n" for line in [*lines, *(f"{p}=" for p in unresolved if p not in written)])


# --------------------------------------------------------------------------- parties, audit, users


@router.get("/parties", response_class=HTMLResponse)
def parties_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(request, principal, "parties.html", parties=listings.parties(app))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> HTMLResponse:
    app, principal = _viewer(request)
    return _render(
        request,
        principal,
        "audit.html",
        entries=plain(audit_log.entries(app, limit=300)),
        matrix={r.value: sorted(p.value for p in ps) for r, ps in MATRIX.items()},
    )
