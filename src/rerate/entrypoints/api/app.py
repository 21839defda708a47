"""The FastAPI application: the API routers, the web UI, errors, and the job runner's life."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from rerate import __version__
from rerate.bootstrap import App
from rerate.entrypoints.api import (
    routes_auth,
    routes_delivery,
    routes_jobs,
    routes_ledger,
    routes_reports,
    routes_tariffs,
    upload_gate,
    web,
)
from rerate.entrypoints.api.display import shown_error
from rerate.services.errors import (
    ConflictError,
    InvalidInputError,
    LedgerBusyError,
    NotFoundError,
    RerateError,
)
from rerate.services.job_runner import JobRunner
from rerate.services.report import warm_summaries

#: How a service error maps onto HTTP (its message is the response's ``detail``).
STATUS = {NotFoundError: 404, ConflictError: 409, LedgerBusyError: 409, InvalidInputError: 422}


def status_of(error: RerateError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(error, kind)), 400)


def create_app(app: App, *, run_jobs: bool = True, poll_seconds: float = 5.0) -> FastAPI:
    """The service for ``app``; with ``run_jobs`` it hosts the job runner and scheduler."""
    runner = (
        JobRunner(app, poll_seconds=poll_seconds, after_jobs=lambda: warm_summaries(app))
        if run_jobs
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        app.ledger.ensure()
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()

    service = FastAPI(
        title="rerate",
        version=__version__,
        description="Rating and safe, previewed, undoable correction of telecom XDRs.",
        lifespan=lifespan,
    )
    service.state.rerate = app
    service.state.runner = runner

    @service.exception_handler(RerateError)
    async def service_error(request: Request, exc: RerateError) -> Response:
        if not request.url.path.startswith("/api/"):
            return web.error_page(request, exc, status_of(exc))
        return JSONResponse({"detail": shown_error(exc)}, status_code=status_of(exc))

    @service.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: OverflowError) -> Response:
        # An id or size beyond what the catalog's integers hold (the database driver refuses it):
        # no such thing exists, and the caller learns which input was wrong rather than a 500.
        return await service_error(request, InvalidInputError("a number in the request is out of range"))

    for module in (routes_auth, routes_jobs, routes_ledger, routes_reports, routes_delivery, routes_tariffs):
        for router in module.ROUTERS:  # one router per resource
            service.include_router(router)
    web.mount(service)
    service.add_middleware(upload_gate.UploadGate)
    return service
