"""Destinations: the prefixes the system knows, each with its country (seed 001's new-destination step)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.catalog.models import CountryCode, Destination, DestinationGroup, DestinationGroupPrefix
from rerate.domain.deck_review import Action, ReviewedRate
from rerate.services.countries import nanp_region


@dataclass
class NewDestination:
    prefix: str
    country: str | None
    #: Where the country came from: the deck, --country, the dialling plan; None: unresolved.
    source: str | None
    description: str | None = None
    group: str | None = None


class CountryResolver:
    """Proposes a country for a new code: the longest country prefix it starts with (seed 001).

    Codes inside a calling code shared by several countries are resolved by
    their national digits (``1204`` Canada, ``1205`` United States); a code too
    short to decide (``1``, ``12``) stays unresolved for the operator.
    """

    def __init__(self, session: Session) -> None:
        self._codes: dict[str, str] = {
            p: i for p, i in session.execute(select(CountryCode.prefix, CountryCode.iso))
        }
        self._longest = max((len(p) for p in self._codes), default=0)

    def __call__(self, prefix: str) -> str | None:
        if prefix.startswith("1"):
            return nanp_region(prefix[:4]) if len(prefix) >= 4 else None
        for length in range(min(len(prefix), self._longest), 0, -1):
            iso = self._codes.get(prefix[:length])
            if iso is not None:
                return iso
        return None


def by_longest(prefix: str, table: Mapping[str, str]) -> str | None:
    for length in range(len(prefix), 0, -1):
        if prefix[:length] in table:
            return table[prefix[:length]]
    return None


def new_destinations(
    session: Session,
    rates: Sequence[ReviewedRate],
    known: Mapping[str, str],
    countries: Mapping[str, str],
    groups: Mapping[str, str],
) -> list[NewDestination]:
    """The codes being loaded that the system does not know yet (``known``), each with a proposed country."""
    loading = {r.prefix: r for r in rates if r.action is not Action.SKIP}
    if not loading:
        return []
    resolver = CountryResolver(session)
    given = {p: c.upper() for p, c in countries.items()}
    found = []
    for prefix in sorted(set(loading) - known.keys()):
        rate = loading[prefix]
        # The operator's word for this very code, then the deck's column, then the dialling plan,
        # then the operator's word for a shorter code that covers it.
        candidates = (
            (given.get(prefix), "given"),
            (str(rate.values["country"]).upper() if rate.values.get("country") else None, "deck"),
            (resolver(prefix), "dialling plan"),
            (by_longest(prefix, given), "given"),
        )
        country, source = next(((c, s) for c, s in candidates if c), (None, None))
        found.append(
            NewDestination(
                prefix,
                country,
                source,
                rate.values.get("description"),
                by_longest(prefix, groups),
            )
        )
    return found


def destination_countries(session: Session, prefixes: set[str]) -> dict[str, str]:
    """The countries of those of ``prefixes`` the system knows."""
    if len(prefixes) <= 5_000:  # else reading them all beats a huge IN list
        query = select(Destination.prefix, Destination.country).where(
            Destination.prefix.in_(sorted(prefixes))
        )
        return {p: c for p, c in session.execute(query)}
    cursor = session.connection().connection.cursor()  # plain tuples: no per-row wrapping
    try:
        cursor.execute("SELECT prefix, country FROM destinations")
        return {p: c for p, c in cursor.fetchall() if p in prefixes}
    finally:
        cursor.close()


def add_to_groups(session: Session, destinations: Sequence[NewDestination]) -> None:
    wanted = {d.group for d in destinations if d.group}
    if not wanted:
        return
    groups: dict[str, int] = {
        n: i for n, i in session.execute(select(DestinationGroup.name, DestinationGroup.id))
    }
    for name in sorted(wanted - set(groups)):
        group = DestinationGroup(name=name)
        session.add(group)
        session.flush()
        groups[name] = group.id
    for destination in destinations:
        if destination.group:
            session.merge(
                DestinationGroupPrefix(prefix=destination.prefix, group_id=groups[destination.group])
            )
