"""Users, passwords and access tokens of the service.

Passwords are stored as argon2id hashes.  Tokens (API bearer tokens and web
sessions) are random 256-bit strings handed out once; the catalog keeps only
their SHA-256, so a copy of the catalog signs nobody in.  A web session also
carries a CSRF token that every form posts back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from rerate.bootstrap import App
from rerate.catalog.models import AccessToken, User
from rerate.domain.roles import Role, parse_role
from rerate.services import audit
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError

_HASHER = PasswordHasher()
#: A hash to verify against when the name is unknown, so both cases take the same time.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True)
class Principal:
    """The signed-in user of a request."""

    user_id: int
    name: str
    role: Role
    #: The session's CSRF token (None for API tokens, which are not sent by browsers on their own).
    csrf_token: str | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(app: App, name: str, role: str, password: str | None = None) -> tuple[User, str | None]:
    """Create a user; returns it and the generated password when none was given (shown once)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInputError("a user name is 1 to 100 characters")
    try:
        parsed = parse_role(role)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(15)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    with app.catalog.transaction() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise ConflictError(f"user {name!r} exists already")
        user = User(name=name, role=parsed.value, password_hash=_HASHER.hash(password))
        session.add(user)
        session.flush()
        audit.record(session, app.actor, "user.add", f"user {name}", after={"role": parsed.value})
        session.expunge(user)
    return user, generated


def set_password(app: App, name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    with app.catalog.transaction() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFoundError(f"no user {name!r}")
        user.password_hash = _HASHER.hash(password)
        session.execute(update(AccessToken).where(AccessToken.user_id == user.id).values(revoked=True))
        audit.record(session, app.actor, "user.password", f"user {name}")


def list_users(app: App) -> list[User]:
    with app.catalog.reading() as session:
        users = list(session.scalars(select(User).order_by(User.name)))
        for user in users:
            session.expunge(user)
        return users


def has_users(app: App) -> bool:
    with app.catalog.reading() as session:
        return session.scalar(select(User.id).limit(1)) is not None


def authenticate(app: App, name: str, password: str) -> Principal | None:
    """The user if the password is right and the account active; None otherwise (no hint which)."""
    with app.catalog.reading() as session:
        user = session.scalar(select(User).where(User.name == name))
        stored = user.password_hash if user is not None else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not user.active:
            return None
        return Principal(user.id, user.name, Role(user.role))


def principal_named(app: App, name: str) -> Principal:
    """The active user ``name`` (for tokens issued by an administrator at the CLI)."""
    with app.catalog.reading() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None or not user.active:
            raise NotFoundError(f"no active user {name!r} (see 'rerate user list')")
        return Principal(user.id, user.name, Role(user.role))


def issue_token(app: App, principal: Principal, kind: str, lifetime: timedelta) -> tuple[str, str | None]:
    """A new token (and, for a session, its CSRF token); only their digests are kept."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    with app.catalog.transaction() as session:
        # A sign-in (the user's own) or a token an administrator made at the CLI (issued_by says which).
        audit.record(session, principal.name, f"access.{kind}", "sign-in", after={"issued_by": app.actor})
        session.add(
            AccessToken(
                user_id=principal.user_id,
                kind=kind,
                token_hash=_digest(token),
                csrf_token=csrf,
                expires_at=datetime.now(UTC) + lifetime,
            )
        )
    return token, csrf


def principal_of(app: App, token: str, kind: str) -> Principal | None:
    """Who ``token`` belongs to, if it is live (not expired, not revoked, user active)."""
    with app.catalog.reading() as session:
        row = session.execute(
            select(User.id, User.name, User.role, User.active, AccessToken.expires_at, AccessToken.csrf_token)
            .join(AccessToken, AccessToken.user_id == User.id)
            .where(
                AccessToken.token_hash == _digest(token),
                AccessToken.kind == kind,
                AccessToken.revoked.is_(False),
            )
        ).first()
    if row is None or not row.active or row.expires_at <= datetime.now(UTC):
        return None
    return Principal(row.id, row.name, Role(row.role), row.csrf_token)


def revoke(app: App, token: str) -> None:
    with app.catalog.transaction() as session:
        session.execute(
            update(AccessToken).where(AccessToken.token_hash == _digest(token)).values(revoked=True)
        )
