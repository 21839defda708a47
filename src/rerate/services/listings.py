"""Lists of the catalog's parties and tariffs, for the API and the web UI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from rerate.bootstrap import App
from rerate.catalog.models import (
    Account,
    AccountOwnership,
    Adjustment,
    Customer,
    Job,
    Rate,
    Tariff,
    Vendor,
    VendorConnection,
)


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


def parties(app: App) -> dict[str, list[dict[str, Any]]]:
    """Customers, accounts (with their customer now) and vendors (with their connections)."""
    with app.catalog.reading() as session:
        customers = {c.id: c for c in session.scalars(select(Customer).order_by(Customer.name))}
        owners: dict[int, str] = {}
        for ownership in session.scalars(select(AccountOwnership).order_by(AccountOwnership.valid_from)):
            owners[ownership.account_id] = customers[ownership.customer_id].name  # the latest wins
        connections: dict[int, list[str]] = {}
        for connection in session.scalars(select(VendorConnection)):
            connections.setdefault(connection.vendor_id, []).append(connection.identifier)
        return {
            "customers": [
                {"name": c.name, "currency": c.currency, "timezone": c.timezone} for c in customers.values()
            ],
            "accounts": [
                {"identifier": a.identifier, "customer": owners.get(a.id)}
                for a in session.scalars(select(Account).order_by(Account.identifier))
            ],
            "vendors": [
                {"name": v.name, "connections": sorted(connections.get(v.id, []))}
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
