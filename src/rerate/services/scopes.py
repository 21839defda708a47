"""Scopes named the way operators name things, resolved to catalog ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.catalog.models import Collection, CountryCode, DestinationGroup
from rerate.domain.scopes import EmptyScopeError, Scope
from rerate.services.errors import InvalidInputError, NotFoundError
from rerate.services.parties import account_named, customer_named, vendor_named


def resolve_scope(
    session: Session,
    *,
    customers: Sequence[str] = (),
    accounts: Sequence[str] = (),
    vendors: Sequence[str] = (),
    prefixes: Sequence[str] = (),
    countries: Sequence[str] = (),
    destination_groups: Sequence[str] = (),
    collections: Sequence[int] = (),
    statuses: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
) -> Scope:
    known_countries = set(session.scalars(select(CountryCode.iso)).all())
    unknown = [c for c in countries if c.upper() not in known_countries]
    if unknown:
        raise NotFoundError(f"unknown country code(s): {', '.join(unknown)} (use ISO codes such as DE, US)")
    known_groups = set(session.scalars(select(DestinationGroup.name)).all()) if destination_groups else set()
    unknown_groups = [g for g in destination_groups if g not in known_groups]
    if unknown_groups:
        listed = ", ".join(sorted(known_groups)[:10]) or "none yet"
        raise NotFoundError(f"no destination group {', '.join(map(repr, unknown_groups))} (groups: {listed})")
    for collection in collections:
        if session.get(Collection, collection) is None:
            raise NotFoundError(f"no collection {collection} (see 'rerate collection list')")
    if start is not None and end is not None and end <= start:
        raise InvalidInputError(f"--to {end.isoformat()} must be after --from {start.isoformat()}")
    bad_status = [s for s in statuses if s not in ("rated", "failed", "voided")]
    if bad_status:
        raise InvalidInputError(f"unknown status {', '.join(bad_status)}: use rated, failed or voided")
    try:
        return Scope(
            customers=tuple(customer_named(session, c).id for c in customers),
            accounts=tuple(account_named(session, a).id for a in accounts),
            vendors=tuple(vendor_named(session, v).id for v in vendors),
            prefixes=tuple(p.lstrip("+") for p in prefixes),
            countries=tuple(c.upper() for c in countries),
            destination_groups=tuple(destination_groups),
            collections=tuple(collections),
            statuses=tuple(statuses),
            start=start,
            end=end,
            labels={"customers": tuple(customers), "accounts": tuple(accounts), "vendors": tuple(vendors)},
        )
    except EmptyScopeError as exc:
        raise InvalidInputError(str(exc)) from exc
