"""Customers, accounts and vendors, and which tariff each uses over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import (
    BEGINNING,
    Account,
    AccountOwnership,
    Customer,
    Tariff,
    TariffAssignment,
    Vendor,
    VendorConnection,
)
from rerate.services import audit
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError
from rerate.services.tariffs import currency_code
from rerate.services.timeparse import iso

Named = TypeVar("Named", Tariff, Customer, Account, Vendor)


def _named(session: Session, model: type[Named], column: Any, value: str, what: str, hint: str) -> Named:
    found = session.scalar(select(model).where(column == value))
    if found is None:
        raise NotFoundError(f"no {what} {value!r} ({hint})")
    return found


def tariff_named(session: Session, name: str) -> Tariff:
    return _named(
        session, Tariff, Tariff.name, name, "tariff named", "import one with 'rerate tariff import'"
    )


def customer_named(session: Session, name: str) -> Customer:
    return _named(
        session, Customer, Customer.name, name, "customer named", "add one with 'rerate customer add'"
    )


def account_named(session: Session, identifier: str) -> Account:
    return _named(
        session, Account, Account.identifier, identifier, "account", "add it with 'rerate account add'"
    )


def vendor_named(session: Session, name: str) -> Vendor:
    return _named(session, Vendor, Vendor.name, name, "vendor named", "add one with 'rerate vendor add'")


def _whole_second(valid_from: datetime) -> datetime:
    """Refuse a fraction of a second: prices and owners are looked up by each XDR's connect
    second, which decides exactly only on a whole second."""
    if valid_from.microsecond:
        raise InvalidInputError(
            f"--from {valid_from.isoformat()} has a fraction of a second: tariffs and owners change "
            f"on a whole second; use {iso(valid_from.replace(microsecond=0))} or the second after"
        )
    return valid_from


def _assign(
    session: Session,
    actor: str,
    kind: str,
    owner_id: int,
    subject: str,
    tariff: Tariff,
    valid_from: datetime,
) -> None:
    _whole_second(valid_from)
    clash = session.scalar(
        select(TariffAssignment).where(
            TariffAssignment.owner_kind == kind,
            TariffAssignment.owner_id == owner_id,
            TariffAssignment.valid_from == valid_from,
        )
    )
    if clash is not None:
        raise ConflictError(
            f"{subject} already has a tariff assignment from {iso(valid_from)}; "
            "assignments are history and are not overwritten: choose another --from"
        )
    previous = session.scalar(
        select(TariffAssignment)
        .where(
            TariffAssignment.owner_kind == kind,
            TariffAssignment.owner_id == owner_id,
            TariffAssignment.valid_from < valid_from,
        )
        .order_by(TariffAssignment.valid_from.desc())
        .limit(1)
    )
    session.add(
        TariffAssignment(owner_kind=kind, owner_id=owner_id, tariff_id=tariff.id, valid_from=valid_from)
    )
    before = None
    if previous is not None:
        old = session.get(Tariff, previous.tariff_id)
        before = {
            "tariff": old.name if old else previous.tariff_id,
            "from": iso(previous.valid_from),
        }
    audit.record(
        session,
        actor,
        "tariff.assign",
        subject,
        before=before,
        after={"tariff": tariff.name, "from": iso(valid_from)},
    )


def _billed_in(customer: Customer, tariff: Tariff, allowed: bool, subject: str) -> None:
    """Refuse a tariff whose currency is not the customer's: rerate converts no amounts, so its
    calls would be priced, totalled and invoiced in another currency than the customer's."""
    if allowed or tariff.currency.upper() == customer.currency.upper():
        return
    raise ConflictError(
        f"tariff {tariff.name} prices in {tariff.currency} but {subject} is billed in {customer.currency} "
        f"(customer {customer.name}): choose a tariff in {customer.currency}, or pass "
        f"--allow-other-currency to price these calls in {tariff.currency}"
    )


def _owner_at(session: Session, account: Account, at: datetime) -> Customer:
    """The customer owning ``account`` at ``at`` (its first owner for a time before any)."""
    owners = select(AccountOwnership.customer_id).where(AccountOwnership.account_id == account.id)
    customer_id = session.scalar(
        owners.where(AccountOwnership.valid_from <= at).order_by(AccountOwnership.valid_from.desc()).limit(1)
    ) or session.scalar(owners.order_by(AccountOwnership.valid_from).limit(1))
    customer = session.get(Customer, customer_id)
    assert customer is not None
    return customer


@dataclass(frozen=True)
class PartyResult:
    kind: str
    name: str
    id: int
    detail: str


#: Billing periods a customer may have (the closed-period and delivery logic is by calendar month).
BILLING_PERIODS = ("monthly",)


def _check_customer(name: str, currency: str | None, billing_period: str, timezone: str) -> None:
    """Refuse what would only fail later (a delivery's time zone) or mislead (an empty name)."""
    if not name.strip() or len(name) > 200:
        raise InvalidInputError("a customer needs a name of 1 to 200 characters")
    if currency is not None:
        currency_code(currency)
    if billing_period not in BILLING_PERIODS:
        raise InvalidInputError(f"--billing-period {billing_period!r}: use {', '.join(BILLING_PERIODS)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(f"--timezone {timezone!r} is not a time zone such as Europe/Berlin") from exc


def add_customer(
    app: App,
    name: str,
    *,
    tariff: str,
    valid_from: datetime | None = None,
    currency: str | None = None,
    billing_period: str = "monthly",
    timezone: str = "UTC",
    emails: list[str] | None = None,
    allow_other_currency: bool = False,
) -> PartyResult:
    _check_customer(name, currency, billing_period, timezone)
    with app.catalog.transaction() as session:
        if session.scalar(select(Customer).where(Customer.name == name)) is not None:
            raise ConflictError(f"customer {name!r} exists already")
        chosen = tariff_named(session, tariff)
        customer = Customer(
            name=name,
            currency=(currency or chosen.currency).upper(),
            billing_period=billing_period,
            timezone=timezone,
            emails=emails or [],
        )
        _billed_in(customer, chosen, allow_other_currency, f"customer {name}")
        session.add(customer)
        session.flush()
        audit.record(
            session,
            app.actor,
            "customer.add",
            f"customer {name}",
            after={"currency": customer.currency},
        )
        _assign(
            session,
            app.actor,
            "customer",
            customer.id,
            f"customer {name}",
            chosen,
            valid_from or BEGINNING,
        )
        return PartyResult(
            "customer", name, customer.id, f"tariff {chosen.name}, currency {customer.currency}"
        )


def set_customer_tariff(
    app: App, name: str, tariff: str, valid_from: datetime, *, allow_other_currency: bool = False
) -> PartyResult:
    with app.catalog.transaction() as session:
        customer = customer_named(session, name)
        chosen = tariff_named(session, tariff)
        _billed_in(customer, chosen, allow_other_currency, f"customer {name}")
        _assign(session, app.actor, "customer", customer.id, f"customer {name}", chosen, valid_from)
        return PartyResult("customer", name, customer.id, f"tariff {chosen.name} from {iso(valid_from)}")


def add_account(
    app: App,
    identifier: str,
    *,
    customer: str,
    tariff: str | None = None,
    valid_from: datetime | None = None,
    allow_other_currency: bool = False,
) -> PartyResult:
    if not identifier.strip():
        raise InvalidInputError("an account identifier cannot be empty")
    with app.catalog.transaction() as session:
        if session.scalar(select(Account).where(Account.identifier == identifier)) is not None:
            raise ConflictError(f"account {identifier!r} exists already")
        owner = customer_named(session, customer)
        account = Account(identifier=identifier)
        session.add(account)
        session.flush()
        start = _whole_second(valid_from or BEGINNING)
        session.add(AccountOwnership(account_id=account.id, customer_id=owner.id, valid_from=start))
        audit.record(
            session,
            app.actor,
            "account.add",
            f"account {identifier}",
            after={"customer": customer, "from": iso(start)},
        )
        detail = f"customer {customer}"
        if tariff is not None:
            chosen = tariff_named(session, tariff)
            _billed_in(owner, chosen, allow_other_currency, f"account {identifier}")
            _assign(session, app.actor, "account", account.id, f"account {identifier}", chosen, start)
            detail += f", own tariff {chosen.name}"
        return PartyResult("account", identifier, account.id, detail)


def set_account_tariff(
    app: App, identifier: str, tariff: str, valid_from: datetime, *, allow_other_currency: bool = False
) -> PartyResult:
    with app.catalog.transaction() as session:
        account = account_named(session, identifier)
        chosen = tariff_named(session, tariff)
        owner = _owner_at(session, account, valid_from)
        _billed_in(owner, chosen, allow_other_currency, f"account {identifier}")
        _assign(session, app.actor, "account", account.id, f"account {identifier}", chosen, valid_from)
        return PartyResult("account", identifier, account.id, f"tariff {chosen.name} from {iso(valid_from)}")


def set_account_customer(app: App, identifier: str, customer: str, valid_from: datetime) -> PartyResult:
    """Move an account to another customer from a point in time (ownership is history)."""
    _whole_second(valid_from)
    with app.catalog.transaction() as session:
        account = account_named(session, identifier)
        owner = customer_named(session, customer)
        clash = session.scalar(
            select(AccountOwnership).where(
                AccountOwnership.account_id == account.id, AccountOwnership.valid_from == valid_from
            )
        )
        if clash is not None:
            raise ConflictError(
                f"account {identifier} already changes owner at {iso(valid_from)}; ownership is history: "
                "choose another --from"
            )
        previous = session.scalar(
            select(AccountOwnership)
            .where(AccountOwnership.account_id == account.id, AccountOwnership.valid_from < valid_from)
            .order_by(AccountOwnership.valid_from.desc())
            .limit(1)
        )
        session.add(AccountOwnership(account_id=account.id, customer_id=owner.id, valid_from=valid_from))
        before = None
        if previous is not None:
            old = session.get(Customer, previous.customer_id)
            before = {"customer": old.name if old else previous.customer_id, "from": iso(previous.valid_from)}
        audit.record(
            session,
            app.actor,
            "account.set_customer",
            f"account {identifier}",
            before=before,
            after={"customer": customer, "from": iso(valid_from)},
        )
        return PartyResult(
            "account",
            identifier,
            account.id,
            f"customer {customer} from {iso(valid_from)}; re-process its XDRs to apply it "
            f"('rerate reprocess --all --account {identifier} --from {iso(valid_from)}')",
        )


def add_vendor(
    app: App, name: str, *, tariff: str, connections: list[str], valid_from: datetime | None = None
) -> PartyResult:
    if not connections or any(not c.strip() for c in connections):
        raise InvalidInputError("a vendor needs at least one --connection identifier, none of them blank")
    if not name.strip():
        raise InvalidInputError("a vendor needs a name")
    with app.catalog.transaction() as session:
        if session.scalar(select(Vendor).where(Vendor.name == name)) is not None:
            raise ConflictError(f"vendor {name!r} exists already")
        chosen = tariff_named(session, tariff)
        vendor = Vendor(name=name)
        session.add(vendor)
        session.flush()
        for identifier in connections:
            session.add(VendorConnection(vendor_id=vendor.id, identifier=identifier))
        try:
            session.flush()
        except IntegrityError as exc:
            raise ConflictError(f"a connection of vendor {name!r} is already used by another vendor") from exc
        audit.record(session, app.actor, "vendor.add", f"vendor {name}", after={"connections": connections})
        _assign(
            session,
            app.actor,
            "vendor",
            vendor.id,
            f"vendor {name}",
            chosen,
            valid_from or BEGINNING,
        )
        return PartyResult(
            "vendor", name, vendor.id, f"tariff {chosen.name}, {len(connections)} connection(s)"
        )


def set_vendor_tariff(app: App, name: str, tariff: str, valid_from: datetime) -> PartyResult:
    with app.catalog.transaction() as session:
        vendor = vendor_named(session, name)
        chosen = tariff_named(session, tariff)
        _assign(session, app.actor, "vendor", vendor.id, f"vendor {name}", chosen, valid_from)
        return PartyResult(
            "vendor",
            name,
            vendor.id,
            f"tariff {chosen.name} from {iso(valid_from)}; re-rate its traffic since then to apply it "
            f"('rerate rerate --vendor {name!r} --side vendor --from {iso(valid_from)}')",
        )


def counts(session: Session) -> dict[str, int]:
    return {
        "customers": session.scalar(select(func.count()).select_from(Customer)) or 0,
        "accounts": session.scalar(select(func.count()).select_from(Account)) or 0,
        "vendors": session.scalar(select(func.count()).select_from(Vendor)) or 0,
        "tariffs": session.scalar(select(func.count()).select_from(Tariff)) or 0,
    }
