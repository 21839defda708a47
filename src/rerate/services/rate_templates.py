"""Rate-deck templates: the wizard's whole parse and mapping setup, saved under a name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import ImportTemplate
from rerate.domain.deck_mapping import DeckSettings
from rerate.services import audit
from rerate.services.errors import NotFoundError
from rerate.services.rate_results import when

TEMPLATE_KIND = "rate_deck"


def load_template(session: Session, name: str) -> DeckSettings:
    template = session.scalar(
        select(ImportTemplate).where(ImportTemplate.kind == TEMPLATE_KIND, ImportTemplate.name == name)
    )
    if template is None:
        known = session.scalars(select(ImportTemplate.name).where(ImportTemplate.kind == TEMPLATE_KIND)).all()
        raise NotFoundError(f"no rate-deck template {name!r}; templates: {', '.join(known) or 'none yet'}")
    return DeckSettings.from_dict(template.settings)


def save_template(session: Session, name: str, settings: DeckSettings, actor: str) -> None:
    template = session.scalar(
        select(ImportTemplate).where(ImportTemplate.kind == TEMPLATE_KIND, ImportTemplate.name == name)
    )
    before = template.settings if template else None
    if template is None:
        template = ImportTemplate(kind=TEMPLATE_KIND, name=name, created_by=actor)
        session.add(template)
    template.settings = settings.as_dict()
    template.updated_at = datetime.now(UTC)
    audit.record(
        session, actor, "template.save", f"rate-deck template {name}", before=before, after=template.settings
    )


def templates(app: App) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        rows = session.scalars(
            select(ImportTemplate).where(ImportTemplate.kind == TEMPLATE_KIND).order_by(ImportTemplate.name)
        ).all()
        return [
            {
                "name": t.name,
                "settings": t.settings,
                "created_by": t.created_by,
                "updated_at": when(t.updated_at),
            }
            for t in rows
        ]
