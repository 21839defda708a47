"""Audit trail: every change to the catalog and every job leaves a row."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from rerate.catalog.models import AuditEntry


def record(
    session: Session,
    actor: str,
    action: str,
    subject: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the caller's transaction (it commits with the change)."""
    # A name typed at a sign-in page, or a path asked of the API, can be anything: the columns hold
    # 100 and 300 characters, and PostgreSQL refuses more (SQLite would not).
    session.add(
        AuditEntry(actor=actor[:100], action=action, subject=_cut(subject, 300), before=before, after=after)
    )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
