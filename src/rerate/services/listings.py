"""Lists and views of the catalog's parties and tariffs, for the CLI, the API and the web UI."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import (
    Account,
    AccountOwnership,
    Adjustment,
    BillingPeriod,
    Customer,
    Job,
    Rate,
    Tariff,
    TariffAssignment,
    Vendor,
    VendorConnection,
)
from rerate.services.parties import customer_named


def tariffs(app: App) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        versions = dict(session.execute(select(Rate.tariff_id, func.count()).group_by(Rate.tariff_id)).all())
        return [
            {
                "name": t.name,
                "currency": t.currency,
                "decimals": t.decimals,
                "timezone": t.timezone,
                "revision": t.revision,
                "rate_versions": int(versions.get(t.id, 0)),
                "off_peak": bool(t.off_peak),
            }
            for t in session.scalars(select(Tariff).order_by(Tariff.name))
        ]


def _tariffs_now(session: Session, now: datetime) -> dict[str, dict[int, str]]:
    """Owner kind -> owner id -> the name of the tariff assigned to it in force at ``now``."""
    in_force: dict[str, dict[int, str]] = {"customer": {}, "account": {}, "vendor": {}}
    assignments = session.execute(
        select(TariffAssignment.owner_kind, TariffAssignment.owner_id, Tariff.name)
        .join(Tariff, Tariff.id == TariffAssignment.tariff_id)
        .where(TariffAssignment.valid_from <= now)
        .order_by(TariffAssignment.valid_from)
    )
    for kind, owner_id, name in assignments:
        in_force.setdefault(kind, {})[owner_id] = name  # the latest wins
    return in_force


def parties(app: App, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Customers, accounts and vendors as they are ``now``: each one's tariff in force, an account's
    customer, a vendor's connections."""
    now = now or datetime.now(UTC)
    with app.catalog.reading() as session:
        customers = {c.id: c for c in session.scalars(select(Customer).order_by(Customer.name))}
        owners: dict[int, str] = {}
        owned = select(AccountOwnership).where(AccountOwnership.valid_from <= now)
        for ownership in session.scalars(owned.order_by(AccountOwnership.valid_from)):
            owners[ownership.account_id] = customers[ownership.customer_id].name  # the latest wins
        connections: dict[int, list[str]] = {}
        for connection in session.scalars(select(VendorConnection)):
            connections.setdefault(connection.vendor_id, []).append(connection.identifier)
        tariff = _tariffs_now(session, now)
        counted = Counter(owners.values())  # accounts owned now, per customer
        return {
            "customers": [
                {
                    "name": c.name,
                    "currency": c.currency,
                    "timezone": c.timezone,
                    "tariff": tariff["customer"].get(c.id),
                    "accounts": counted.get(c.name, 0),
                }
                for c in customers.values()
            ],
            "accounts": [
                # An account not yet owned at ``now`` (its first owner starts later) shows none.
                {
                    "identifier": a.identifier,
                    "customer": owners.get(a.id),
                    "own_tariff": tariff["account"].get(a.id),
                }
                for a in session.scalars(select(Account).order_by(Account.identifier))
            ],
            "vendors": [
                {
                    "name": v.name,
                    "tariff": tariff["vendor"].get(v.id),
                    "connections": sorted(connections.get(v.id, [])),
                }
                for v in session.scalars(select(Vendor).order_by(Vendor.name))
            ],
        }


def customer_names(app: App) -> list[str]:
    with app.catalog.reading() as session:
        return list(session.scalars(select(Customer.name).order_by(Customer.name)))


def adjustments(app: App, limit: int = 500) -> list[dict[str, Any]]:
    """Adjustment lines of corrections to closed periods, newest first, with their job's state."""
    with app.catalog.reading() as session:
        rows = session.execute(
            select(Adjustment, Customer.name, Job.state)
            .join(Customer, Customer.id == Adjustment.customer_id)
            .join(Job, Job.id == Adjustment.job_id)
            .order_by(Adjustment.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "customer": name,
                "corrected_period": a.period,
                "destination": a.destination,
                "currency": a.currency,
                "xdrs": a.xdrs,
                "amount_delta": a.amount_delta,
                "cost_delta": a.cost_delta,
                "job_id": a.job_id,
                "job_state": state,  # a reverted job's lines no longer count
            }
            for a, name, state in rows
        ]


def customer(app: App, name: str) -> dict[str, Any]:
    """One customer's settings and histories: tariffs, accounts (with when each was theirs), periods."""
    with app.catalog.reading() as session:
        found = customer_named(session, name)
        names = dict(session.execute(select(Tariff.id, Tariff.name)).all())
        assigned = select(TariffAssignment).where(
            TariffAssignment.owner_kind == "customer", TariffAssignment.owner_id == found.id
        )
        tariff_history = [
            {"from": a.valid_from, "tariff": names[a.tariff_id]}
            for a in session.scalars(assigned.order_by(TariffAssignment.valid_from))
        ]
        ever_owned = select(AccountOwnership.account_id).where(AccountOwnership.customer_id == found.id)
        ownerships = session.execute(
            select(AccountOwnership, Account.identifier)
            .join(Account, Account.id == AccountOwnership.account_id)
            .where(AccountOwnership.account_id.in_(ever_owned))
            .order_by(Account.identifier, AccountOwnership.valid_from)
        ).all()
        accounts = []
        for index, (ownership, identifier) in enumerate(ownerships):
            if ownership.customer_id != found.id:
                continue
            following = ownerships[index + 1] if index + 1 < len(ownerships) else None
            until = following[0].valid_from if following and following[1] == identifier else None
            accounts.append({"identifier": identifier, "from": ownership.valid_from, "until": until})
        periods = session.scalars(
            select(BillingPeriod).where(BillingPeriod.customer_id == found.id).order_by(BillingPeriod.period)
        )
        return {
            "name": found.name,
            "currency": found.currency,
            "timezone": found.timezone,
            "billing_period": found.billing_period,
            "emails": list(found.emails or []),
            "tariffs": tariff_history,
            "accounts": accounts,
            "periods": [
                {"period": p.period, "state": p.state, "closed_at": p.closed_at, "closed_by": p.closed_by}
                for p in periods
            ],
        }
