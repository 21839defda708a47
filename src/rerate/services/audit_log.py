"""Reading the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import AuditEntry


def entries(app: App, *, limit: int = 200, since: datetime | None = None) -> list[dict[str, Any]]:
    """Newest first: who, when, what, before and after."""
    with app.catalog.reading() as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        return [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "before": e.before,
                "after": e.after,
            }
            for e in session.scalars(query)
        ]
