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
    # A name typed at a sign-in page can be anything: the column holds 100 characters.
    session.add(AuditEntry(actor=actor[:100], action=action, subject=subject, before=before, after=after))
