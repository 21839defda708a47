"""Mediation rules in the catalog: add, list, end or remove; compiled for ingest and re-processing."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from datetime import datetime
from ipaddress import ip_network
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
    rules = (_as_normalized(_domain(row)) for row in session.scalars(select(MediationRuleRow)))
    return RuleSet.build([rule for rule in rules if rule is not None])


def _as_normalized(rule: MediationRule) -> MediationRule | None:
    """A number rule stored before rules saw normalized numbers, matching what it meant then.

    Its match lost its spaces, dashes and a leading + or 00 as the numbers did (``0011`` is ``11``
    now); one that matched only ``00`` or ``+`` did what the default normalization does: None.
    """
    if rule.kind != "number":
        return rule
    match = rule.match.replace(" ", "").replace("-", "")
    match = match[1:] if match.startswith("+") else match[2:] if match.startswith("00") else match
    if match == rule.match:
        return rule
    return replace(rule, match=match) if match else None


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
    account, vendor = _identifier(account, "--account"), _identifier(vendor, "--vendor")
    if account is not None and vendor is not None:
        raise InvalidInputError("a rule is scoped to one account or one vendor connection, not both")
    _check_inputs(kind, match.strip(), replace.strip(), min_length, position)
    scope, scope_value = (
        ("account", account)
        if account is not None
        else ("vendor", vendor)
        if vendor is not None
        else ("global", None)
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


#: Digits in the longest number rating accepts (RATING.md section 2: 1 to 20 digits).
_LONGEST_NUMBER = 20
#: The largest position or id the catalog's integer columns hold.
_LARGEST = 2**31 - 1


def _identifier(value: str | None, option: str) -> str | None:
    """A scope's identifier as XDRs carry it; a blank one is refused (it is not "every XDR")."""
    if value is None:
        return None
    if not value.strip():
        raise InvalidInputError(f"{option} needs an identifier; leave it out for a rule on every XDR")
    if "/" in value and _is_network(value.strip()):
        raise InvalidInputError(
            f"{option} {value.strip()!r} is a network, and a rule's scope is one identifier as XDRs "
            "carry it; to map a network's addresses, add an account or vendor rule with --match NETWORK"
        )
    return value.strip()


def _check_inputs(kind: str, match: str, replace: str, min_length: int | None, position: int | None) -> None:
    """What the rule's own check cannot know: what numbers look like when rules see them."""
    if kind == "number" and (match.startswith(("+", "00")) or any(c in match for c in " -")):
        raise InvalidInputError(
            f"number rule --match {match!r} can never match: numbers lose spaces, dashes and a leading "
            "+ or 00 before rules see them (docs/mediation.md); give the prefix as it remains"
        )
    # A number rule's --match may hold what normalization leaves (a technical prefix's # or *),
    # so only the rules that see the final number are held to its digits and length.
    if kind in ("service", "rating_key") and len(match) > _LONGEST_NUMBER:
        raise InvalidInputError(
            f"{kind} rule --match {match!r} can never match: a number has at most {_LONGEST_NUMBER} digits"
        )
    if kind == "number" and len(replace) > _LONGEST_NUMBER:
        raise InvalidInputError(
            f"number rule --replace {replace!r} is longer than any number ({_LONGEST_NUMBER} digits): "
            "every XDR it touches would fail (invalid_number)"
        )
    if kind == "number" and replace and not replace.isdigit():
        raise InvalidInputError(
            f"number rule --replace {replace!r} must be digits (or empty): a number that is not "
            "digits fails every XDR it touches (invalid_number)"
        )
    if (
        kind in ("account", "vendor")
        and re.fullmatch(r"[0-9A-Fa-f:.]+/\d+", match)
        and not _is_network(match)
    ):
        raise InvalidInputError(f"{kind} rule --match {match!r} is not an IP network (such as 10.0.0.0/24)")
    if kind in ("service", "rating_key") and match and not match.isdigit():
        raise InvalidInputError(
            f"{kind} rule --match {match!r} must be digits: it is compared with the normalized number"
        )
    unknown = sorted(set(re.findall(r"\{[^{}]*\}", replace)) - {"{service}"}) if kind == "rating_key" else []
    if kind == "rating_key" and not unknown and set("{}") & set(replace.replace("{service}", "")):
        raise InvalidInputError(
            f"rating_key rule --replace {replace!r}: a brace without its pair; "
            "write {service} (the XDR's service) whole, or no brace"
        )
    if unknown:
        raise InvalidInputError(
            f"rating_key rule --replace {replace!r}: {', '.join(unknown)} is not known; "
            "{service} (the XDR's service) is the one value a key can name"
        )
    if position is not None and not 0 <= position <= _LARGEST:
        raise InvalidInputError(f"--position must be between 0 and {_LARGEST:,}")
    if min_length is not None and not 1 <= min_length <= _LONGEST_NUMBER:
        raise InvalidInputError(
            f"--min-length must be between 1 and {_LONGEST_NUMBER} (the digits of the longest number)"
        )


def _is_network(text: str) -> bool:
    try:
        ip_network(text, strict=False)
    except ValueError:
        return False
    return True


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
        row = session.get(MediationRuleRow, rule_id) if 0 < rule_id <= _LARGEST else None
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
            if row.valid_to is not None and ending >= row.valid_to:
                # Moving the end later would apply the rule to calls it never covered.
                raise InvalidInputError(
                    f"rule {rule_id} already ends {row.valid_to:%Y-%m-%d %H:%M}: it can only end earlier"
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
