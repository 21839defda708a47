"""Uploads are refused before their body is read: who may send them, and how large they may be.

FastAPI reads a multipart body (spooling it to disk) before it runs a route's
dependencies, so without this gate anyone could make the service write an
upload of any size before hearing 401.  The gate asks the same questions as
the routes (token or session, role) from the headers alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from rerate.domain.roles import Permission
from rerate.entrypoints.api.security import check, current_principal, wired

#: The API's upload routes and the permission each needs.
UPLOAD_ROUTES = (
    (re.compile(r"/api/ingest"), Permission.INGEST),
    (re.compile(r"/api/tariffs/.+/import"), Permission.TARIFFS),  # a tariff name may hold "/"
)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _refusal(request: Request, permission: Permission) -> Response | None:
    """The answer to give without reading the body, or None to let the route read it."""
    limit = wired(request).settings.max_upload_mb * 1024 * 1024
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return JSONResponse(
            {"detail": f"the upload is larger than {limit // (1024 * 1024)} MB (RERATE_MAX_UPLOAD_MB)"},
            status_code=413,
        )
    try:
        principal = current_principal(request, _bearer_token(request))
        check(wired(request), principal, [permission], f"{request.method} {request.url.path}")
    except HTTPException as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return None


def install(service: FastAPI) -> None:
    @service.middleware("http")
    async def upload_gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method == "POST":
            for route, permission in UPLOAD_ROUTES:
                if route.fullmatch(request.url.path):
                    refusal = await run_in_threadpool(_refusal, request, permission)  # the catalog is sync
                    if refusal is not None:
                        return refusal
                    break
        return await call_next(request)
