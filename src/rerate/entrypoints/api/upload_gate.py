"""Uploads are refused before their body is read: who may send them, and how large they may be.

FastAPI reads a multipart body (spooling it to disk) before it runs a route's
dependencies, and the web UI's forms read theirs before checking the role, so
without this gate anyone could make the service write an upload of any size
before hearing "no".  The gate asks the same questions as the routes (token or
session, role) from the headers alone, refuses a declared size over the limit
at once, and stops a body sent without one (chunked) as soon as it passes it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from rerate.domain.roles import Permission, allowed
from rerate.entrypoints.api.security import check, current_principal, deny, session_principal, wired

#: The upload routes (API and web forms) and the permission each needs.
UPLOAD_ROUTES = (
    (re.compile(r"/api/ingest"), Permission.INGEST),
    (re.compile(r"/api/tariffs/.+/import"), Permission.TARIFFS),  # a tariff name may hold "/"
    (re.compile(r"/collections/ingest"), Permission.INGEST),
    (re.compile(r"/import"), Permission.TARIFFS),
)

Scope = dict[str, Any]
Receive = Any
Send = Any


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _limit_bytes(request: Request) -> int:
    return int(wired(request).settings.max_upload_mb) * 1024 * 1024


def _too_large(limit: int) -> str:
    return f"the upload is larger than {limit // (1024 * 1024)} MB (RERATE_MAX_UPLOAD_MB)"


def _refusal(request: Request, permission: Permission) -> Response | None:
    """The answer to give without reading the body, or None to let the route read it."""
    limit = _limit_bytes(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return JSONResponse({"detail": _too_large(limit)}, status_code=413)
    what = f"{request.method} {request.url.path}"
    if not request.url.path.startswith("/api/"):  # a web form: its CSRF token is in the body
        principal = session_principal(request)
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        if not allowed(principal.role, permission):
            from rerate.entrypoints.api.web import error_page

            refused = deny(wired(request), principal, permission, what)
            return error_page(request, refused.detail, refused.status_code)
        return None
    try:
        principal = current_principal(request, _bearer_token(request))
        check(wired(request), principal, [permission], what)
    except HTTPException as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return None


class UploadGate:
    """ASGI middleware: the checks above before the body, and the size limit while it is read."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        permission = _gated(scope)
        if permission is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refusal = await run_in_threadpool(_refusal, request, permission)  # the catalog is sync
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        limit = _limit_bytes(request)
        received = 0

        async def counted() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # handled as any HTTP error: JSON for the API, a page for the web
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _gated(scope: Scope) -> Permission | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    return next((p for route, p in UPLOAD_ROUTES if route.fullmatch(scope["path"])), None)
