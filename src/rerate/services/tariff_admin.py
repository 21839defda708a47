"""Tariff settings and views: off-peak windows, the rates in force at a date, exchange rates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from rerate.bootstrap import App
from rerate.catalog.models import ExchangeRate, Rate
from rerate.domain.deck_values import DeckValueError, parse_number
from rerate.domain.offpeak import OffPeakError, Schedule, Window, parse_window, zone
from rerate.services import audit
from rerate.services.errors import InvalidInputError
from rerate.services.parties import tariff_named

_SHOWN = (
    "prefix",
    "effective_from",
    "first_interval",
    "next_interval",
    "first_price",
    "next_price",
    "connect_fee",
    "off_peak_first_price",
    "off_peak_next_price",
    "forbidden",
    "description",
    "country",
)


def set_off_peak(app: App, name: str, timezone: str, windows: list[str]) -> dict[str, Any]:
    """Give tariff ``name`` its time zone and off-peak windows (none: off-peak is switched off)."""
    try:
        zone(timezone)
        parsed = [parse_window(w) for w in windows]
        Schedule.compile(timezone, parsed)
    except OffPeakError as exc:
        raise InvalidInputError(str(exc)) from exc
    with app.catalog.transaction() as session:
        tariff = tariff_named(session, name)
        before = {"timezone": tariff.timezone, "off_peak": tariff.off_peak}
        tariff.timezone = timezone
        tariff.off_peak = [w.as_dict() for w in parsed]
        tariff.revision += 1  # prices of off-peak XDRs change: recompile
        after = {"timezone": tariff.timezone, "off_peak": tariff.off_peak}
        audit.record(session, app.actor, "tariff.off_peak", f"tariff {name}", before=before, after=after)
    return {"tariff": name, "timezone": timezone, "windows": [w.describe() for w in parsed]}


@dataclass
class TariffView:
    name: str
    currency: str
    decimals: int
    rate_unit: int
    timezone: str
    off_peak: list[str]
    at: datetime
    rates: list[dict[str, Any]] = field(default_factory=list)
    versions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tariff": self.name,
            "currency": self.currency,
            "decimals": self.decimals,
            "rate_unit": self.rate_unit,
            "timezone": self.timezone,
            "off_peak": self.off_peak,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "versions_in_history": self.versions,
            "rates": [
                {k: (str(v) if isinstance(v, Decimal) else _iso(v)) for k, v in r.items()} for r in self.rates
            ],
        }


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def show_tariff(app: App, name: str, at: datetime | None = None) -> TariffView:
    """The tariff's rates in force at ``at`` (default now): the latest version per prefix, if live."""
    moment = at or datetime.now(UTC)
    with app.catalog.reading() as session:
        tariff = tariff_named(session, name)
        latest = (
            select(Rate.prefix, func.max(Rate.effective_from).label("since"))
            .where(Rate.tariff_id == tariff.id, Rate.effective_from <= moment)
            .group_by(Rate.prefix)
            .subquery()
        )
        rows = session.scalars(
            select(Rate)
            .join(latest, (Rate.prefix == latest.c.prefix) & (Rate.effective_from == latest.c.since))
            .where(Rate.tariff_id == tariff.id, Rate.discontinued.is_(False))
            .order_by(Rate.prefix)
        ).all()
        versions = session.scalar(select(func.count()).select_from(Rate).where(Rate.tariff_id == tariff.id))
        return TariffView(
            name=tariff.name,
            currency=tariff.currency,
            decimals=tariff.decimals,
            rate_unit=tariff.rate_unit,
            timezone=tariff.timezone,
            off_peak=[Window.from_dict(w).describe() for w in tariff.off_peak or []],
            at=moment,
            rates=[{c: getattr(r, c) for c in _SHOWN} for r in rows],
            versions=int(versions or 0),
        )


def set_exchange_rate(
    app: App, currency: str, to_currency: str, rate: str, effective_from: datetime | None = None
) -> dict[str, Any]:
    """Store how much one ``currency`` is worth in ``to_currency`` (used by ``fx()`` in import rules)."""
    try:
        value = parse_number(rate)
    except DeckValueError as exc:
        raise InvalidInputError(f"exchange rate: {exc}") from exc
    if value <= 0:
        raise InvalidInputError("an exchange rate must be positive")
    codes = (currency.upper(), to_currency.upper())
    if not all(len(c) == 3 and c.isalpha() for c in codes):
        raise InvalidInputError("currencies are ISO 4217 codes such as EUR and USD")
    since = effective_from or datetime.now(UTC)
    with app.catalog.transaction() as session:
        session.add(ExchangeRate(currency=codes[0], to_currency=codes[1], rate=value, effective_from=since))
        audit.record(
            session,
            app.actor,
            "fx.set",
            f"exchange rate {codes[0]}->{codes[1]}",
            after={"rate": str(value), "effective_from": _iso(since)},
        )
    return {"currency": codes[0], "to_currency": codes[1], "rate": str(value), "effective_from": _iso(since)}


def exchange_rates(app: App) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        rows = session.scalars(
            select(ExchangeRate).order_by(
                ExchangeRate.currency, ExchangeRate.to_currency, ExchangeRate.effective_from
            )
        ).all()
        return [
            {
                "currency": r.currency,
                "to_currency": r.to_currency,
                "rate": str(r.rate),
                "effective_from": _iso(r.effective_from),
            }
            for r in rows
        ]
