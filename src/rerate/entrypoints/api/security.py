"""Who is calling, and whether they may: bearer tokens, web sessions with CSRF, the role matrix.

Every ``/api/`` route but health and token takes a bearer token (or, from the
web UI's pages, the session cookie plus the ``X-CSRF-Token`` header on
anything that changes state).  A call the caller's role does not allow is a
403 naming the permission, and is written to the audit log like every change.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer

from rerate.bootstrap import App
from rerate.domain.roles import Permission, allowed
from rerate.services import audit
from rerate.services.users import Principal, principal_of

SESSION_COOKIE = "rerate_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)


def wired(request: Request) -> App:
    app: App = request.app.state.rerate
    return app


def session_principal(request: Request) -> Principal | None:
    """The web session's user, or None (no cookie, expired, revoked)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return principal_of(wired(request), cookie, "session") if cookie else None


def current_principal(request: Request, token: Annotated[str | None, Depends(bearer)]) -> Principal:
    app = wired(request)
    if token:
        principal = principal_of(app, token, "api")
    else:
        principal = session_principal(request)
        unsafe = request.method not in SAFE_METHODS
        sent = request.headers.get(CSRF_HEADER, "")
        if (
            principal is not None
            and unsafe
            and not secrets.compare_digest(sent.encode(), (principal.csrf_token or "-").encode())
        ):
            raise HTTPException(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
    if principal is None:
        raise HTTPException(
            401,
            "sign in first: POST /api/token with username and password, then send "
            "'Authorization: Bearer <access_token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def acting(app: App, principal: Principal) -> App:
    """The application acting for ``principal``: services audit under the user's name."""
    return replace(app, settings=app.settings.model_copy(update={"actor": principal.name}))


def deny(app: App, principal: Principal, permission: Permission, what: str) -> HTTPException:
    """Record the refusal and give the 403 to raise."""
    with app.catalog.transaction() as session:
        audit.record(
            session,
            principal.name,
            "access.denied",
            what,
            after={"role": principal.role.value, "needs": permission.value},
        )
    role = principal.role.value
    return HTTPException(
        403, f"your role ({role}) does not allow this: it needs the '{permission}' permission"
    )


def check(app: App, principal: Principal, permissions: list[Permission], what: str) -> None:
    for permission in permissions:
        if not allowed(principal.role, permission):
            raise deny(app, principal, permission, what)


def require(permission: Permission) -> Callable[..., App]:
    """A dependency: the application acting for the caller, if their role has ``permission``."""

    def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> App:
        app = wired(request)
        check(app, principal, [permission], f"{request.method} {request.url.path}")
        return acting(app, principal)

    return dependency


Caller = Annotated[Principal, Depends(current_principal)]
Viewer = Annotated[App, Depends(require(Permission.VIEW))]
