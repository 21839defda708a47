"""Mediation rules in the catalog: add, list, end or remove; compiled for ingest and re-processing."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import MediationRuleRow
from rerate.domain.mediation_rules import MediationRule, RuleError, RuleSet
from rerate.services import audit
from rerate.services.errors import InvalidInputError, NotFoundError

_STEP = 10  # room to put a rule between two others later (--position)


def _domain(row: MediationRuleRow) -> MediationRule:
    return MediationRule(
        id=row.id,
        position=row.position,
        kind=row.kind,
        match=row.match,
        replace=row.replace,
        scope=row.scope,
        scope_value=row.scope_value,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        min_length=row.min_length,
    )


def rule_set(session: Session) -> RuleSet:
    """Every rule, in position order (each applies only to XDRs of its dates and scope)."""
    return RuleSet.build([_domain(row) for row in session.scalars(select(MediationRuleRow))])


def add_rule(
    app: App,
    kind: str,
    match: str,
    replace: str = "",
    *,
    account: str | None = None,
    vendor: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    min_length: int | None = None,
    position: int | None = None,
    description: str | None = None,
) -> MediationRule:
    """Add a rule (after the others unless ``position`` says where); it applies from its next use."""
    if account and vendor:
        raise InvalidInputError("a rule is scoped to one account or one vendor connection, not both")
    if kind == "number" and (match.strip().startswith("+") or any(c in match for c in " -")):
        raise InvalidInputError(
            f"number rule --match {match!r} can never match: numbers lose spaces, dashes and a leading "
            "+ (or 00) before rules see them (docs/mediation.md); give the prefix as digits"
        )
    scope, scope_value = (
        ("account", account) if account else ("vendor", vendor) if vendor else ("global", None)
    )
    with app.catalog.transaction() as session:
        if position is None:
            last = session.scalar(select(func.max(MediationRuleRow.position)))
            position = (last or 0) + _STEP
        candidate = MediationRule(
            0,
            position,
            kind,
            match.strip(),
            replace.strip(),
            scope,
            scope_value,
            valid_from,
            valid_to,
            min_length,
        )
        try:
            candidate.check()
        except RuleError as exc:
            raise InvalidInputError(str(exc)) from exc
        row = MediationRuleRow(
            position=position,
            kind=kind,
            match=candidate.match,
            replace=candidate.replace,
            scope=scope,
            scope_value=scope_value,
            min_length=min_length,
            valid_from=valid_from,
            valid_to=valid_to,
            description=description,
            created_by=app.actor,
        )
        session.add(row)
        session.flush()
        rule = _domain(row)
        audit.record(
            session,
            app.actor,
            "mediation.rule_add",
            f"mediation rule {row.id}",
            after=_shown(rule, description),
        )
    return rule


def _shown(rule: MediationRule, description: str | None) -> dict[str, Any]:
    shown = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(rule).items()}
    return {**shown, "description": description, "in_words": rule.describe()}


def list_rules(app: App) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        rows = session.scalars(
            select(MediationRuleRow).order_by(MediationRuleRow.position, MediationRuleRow.id)
        )
        return [_shown(_domain(row), row.description) for row in rows]


def remove_rule(app: App, rule_id: int, *, ending: datetime | None = None) -> str:
    """Delete a rule, or with ``ending`` keep it for earlier XDRs and end it then; returns what was done."""
    with app.catalog.transaction() as session:
        row = session.get(MediationRuleRow, rule_id)
        if row is None:
            raise NotFoundError(f"no mediation rule {rule_id} (see: rerate mediation rule list)")
        before = _shown(_domain(row), row.description)
        if ending is None:
            session.delete(row)
            done = f"rule {rule_id} removed"
            after = None
        else:
            if row.valid_from is not None and ending <= row.valid_from:
                raise InvalidInputError(
                    f"rule {rule_id} starts {row.valid_from:%Y-%m-%d %H:%M}: end it later"
                )
            row.valid_to = ending
            done = f"rule {rule_id} ends {ending:%Y-%m-%d %H:%M} (it still applies to earlier XDRs)"
            after = _shown(_domain(row), row.description)
        audit.record(
            session,
            app.actor,
            "mediation.rule_remove",
            f"mediation rule {rule_id}",
            before=before,
            after=after,
        )
    return done
