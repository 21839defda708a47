"""Audit trail: every change to the catalog and every job leaves a row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
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


#: Catalog changes that can change what an XDR is priced at: a preview made before one is stale.
PRICING_ACTIONS = (
    "tariff.import",
    "tariff.import_deck",
    "tariff.assign",
    "tariff.off_peak",
    "account.add",
    "account.set_customer",
    "vendor.add",
    "mediation.rule_add",
    "mediation.rule_remove",
    "countries.load",
)


def pricing_mark(session: Session) -> int:
    """The newest audit row of a pricing change: a dry run records it, its apply compares it."""
    newest = session.scalar(select(func.max(AuditEntry.id)).where(AuditEntry.action.in_(PRICING_ACTIONS)))
    return int(newest or 0)


#: The changes to one tariff's rates or windows.
TARIFF_ACTIONS = ("tariff.import", "tariff.import_deck", "tariff.off_peak")


def pricing_changes_since(
    session: Session, mark: int, *, tariff: str | None = None, limit: int = 5
) -> list[str]:
    """The pricing changes recorded after ``mark``, oldest first, in words; with ``tariff`` (a
    re-rating onto that tariff, which prices every XDR in scope with it), only that tariff's."""
    query = select(AuditEntry).where(AuditEntry.id > mark)
    if tariff is None:
        query = query.where(AuditEntry.action.in_(PRICING_ACTIONS))
    else:
        query = query.where(AuditEntry.action.in_(TARIFF_ACTIONS), AuditEntry.subject == f"tariff {tariff}")
    rows = session.scalars(query.order_by(AuditEntry.id).limit(limit))
    return [f"{row.action} {row.subject} by {row.actor} at {row.at:%Y-%m-%d %H:%M} UTC" for row in rows]
