"""``rerate init``: create or upgrade a home directory.  Safe to run again."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select

from rerate.bootstrap import App
from rerate.catalog.database import migrate
from rerate.catalog.models import CountryCode
from rerate.services import audit
from rerate.services.countries import country_prefixes


@dataclass(frozen=True)
class InitReport:
    home: str
    catalog: str
    ledger: str
    schema_before: str | None
    schema_now: str
    country_prefixes: int


def initialize(app: App) -> InitReport:
    before, head = migrate(app.catalog.engine)
    prefixes = country_prefixes()
    with app.catalog.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(CountryCode)) or 0
        if stored != len(prefixes):
            # Reference data from phonenumbers: refreshed wholesale when the library's data changes.
            session.execute(delete(CountryCode))
            session.execute(
                insert(CountryCode),
                [
                    {
                        "prefix": p.prefix,
                        "iso": p.iso,
                        "name": p.name,
                        "calling_code": p.calling_code,
                    }
                    for p in prefixes
                ],
            )
            audit.record(
                session,
                app.actor,
                "countries.load",
                "country_codes",
                after={"prefixes": len(prefixes)},
            )
    app.ledger.ensure()
    return InitReport(
        home=str(app.home),
        catalog=app.settings.resolved_catalog_url,
        ledger=str(app.ledger.root),
        schema_before=before,
        schema_now=head,
        country_prefixes=len(prefixes),
    )
