"""Health, sign-in tokens, the caller, users and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import OAuth2PasswordRequestForm

from rerate import __version__
from rerate.bootstrap import App
from rerate.domain.roles import MATRIX, Permission
from rerate.entrypoints.api.schemas import UserBody
from rerate.entrypoints.api.security import Caller, Viewer, require, wired
from rerate.services import audit, audit_log, users

router = APIRouter(prefix="/api", tags=["auth"])
users_router = APIRouter(prefix="/api/users", tags=["users"])
audit_router = APIRouter(prefix="/api/audit", tags=["audit"])
#: Every router of this module, one per resource.
ROUTERS = (router, users_router, audit_router)

TOKEN_LIFETIME = timedelta(hours=12)


@router.get("/health")
def health() -> dict[str, str]:
    """No sign-in needed: for load balancers and monitoring."""
    return {"status": "ok", "version": __version__}


@router.post("/token")
def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    """OAuth2 password flow: ``username`` and ``password`` as a form; a bearer token valid 12 hours."""
    app = wired(request)
    principal = users.authenticate(app, form.username, form.password)
    if principal is None:
        with app.catalog.transaction() as session:
            audit.record(session, form.username or "?", "access.sign_in_failed", "api token")
        raise HTTPException(401, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"})
    issued, _ = users.issue_token(app, principal, "api", TOKEN_LIFETIME)
    return {
        "access_token": issued,
        "token_type": "bearer",
        "expires_in": int(TOKEN_LIFETIME.total_seconds()),
        "role": principal.role.value,
    }


@router.get("/me")
def me(principal: Caller) -> dict[str, Any]:
    """The caller, their role and what it allows."""
    return {
        "name": principal.name,
        "role": principal.role.value,
        "permissions": sorted(p.value for p in MATRIX[principal.role]),
    }


@router.get("/roles")
def roles(_: Viewer) -> dict[str, list[str]]:
    """The role matrix: each role and its permissions."""
    return {role.value: sorted(p.value for p in permissions) for role, permissions in MATRIX.items()}


@users_router.get("")
def list_users(app: Annotated[App, Depends(require(Permission.USERS))]) -> list[dict[str, Any]]:
    return [
        {"name": u.name, "role": u.role, "active": u.active, "created_at": u.created_at.isoformat()}
        for u in users.list_users(app)
    ]


@users_router.post("", status_code=201)
def add_user(body: UserBody, app: Annotated[App, Depends(require(Permission.USERS))]) -> dict[str, Any]:
    """A new user; without ``password`` one is generated and returned once."""
    user, generated = users.add_user(app, body.name, body.role, body.password)
    return {"name": user.name, "role": user.role, "password": generated}


@audit_router.get("")
def audit_entries(app: Viewer, limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[dict[str, Any]]:
    """The audit log, newest first: who did what, including refused calls."""
    return audit_log.entries(app, limit=limit)
