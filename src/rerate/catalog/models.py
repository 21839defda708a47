"""The catalog: everything that decides a price, and the bookkeeping of jobs.

History tables (rates, assignments) are append-only: a change is a new row
with a later ``valid_from``/``effective_from``; nothing is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rerate.catalog.types import NanoMoney, UtcDateTime

#: The beginning of time for assignments given without ``--from``.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class CountryCode(Base):
    """A dialling prefix that identifies a country (from phonenumbers metadata)."""

    __tablename__ = "country_codes"

    prefix: Mapped[str] = mapped_column(String(18), primary_key=True)
    iso: Mapped[str] = mapped_column(String(2), index=True)
    name: Mapped[str] = mapped_column(String(100))
    calling_code: Mapped[int] = mapped_column(Integer)


class DestinationGroup(Base):
    """A named set of prefixes (for example "Germany Mobile") used in reports and scopes."""

    __tablename__ = "destination_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class DestinationGroupPrefix(Base):
    __tablename__ = "destination_group_prefixes"

    prefix: Mapped[str] = mapped_column(String(18), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("destination_groups.id"), index=True)


class Tariff(Base):
    __tablename__ = "tariffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    decimals: Mapped[int] = mapped_column(Integer, default=5)
    rate_unit: Mapped[int] = mapped_column(Integer, default=60)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Off-peak windows in the tariff's time zone (shared/RATING.md section 5), as
    #: ``[{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}]``; Monday is 0.
    off_peak: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    #: Bumped by every change to the rate history; compiled indexes are cached by it.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Rate(Base):
    """One row of a tariff's rate history (shared/RATING.md "Rate row")."""

    __tablename__ = "rates"
    __table_args__ = (
        # Also the index of every lookup by (tariff_id, prefix).
        UniqueConstraint("tariff_id", "prefix", "effective_from", name="uq_rate_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    prefix: Mapped[str] = mapped_column(String(18))
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime)
    first_interval: Mapped[int] = mapped_column(Integer, default=1)
    next_interval: Mapped[int] = mapped_column(Integer, default=1)
    first_price: Mapped[Decimal] = mapped_column(NanoMoney)
    next_price: Mapped[Decimal] = mapped_column(NanoMoney)
    connect_fee: Mapped[Decimal] = mapped_column(NanoMoney, default=Decimal(0))
    free_seconds: Mapped[int] = mapped_column(Integer, default=0)
    grace_period: Mapped[int] = mapped_column(Integer, default=0)
    #: Percent with 4 decimal places, as an integer (2.5 % -> 25000).
    post_call_surcharge: Mapped[int] = mapped_column(Integer, default=0)
    forbidden: Mapped[bool] = mapped_column(Boolean, default=False)
    discontinued: Mapped[bool] = mapped_column(Boolean, default=False)
    off_peak_first_price: Mapped[Decimal | None] = mapped_column(NanoMoney, nullable=True)
    off_peak_next_price: Mapped[Decimal | None] = mapped_column(NanoMoney, nullable=True)
    preference: Mapped[int | None] = mapped_column(Integer, nullable=True)
    route_category: Mapped[str | None] = mapped_column(String(100), nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    payback: Mapped[Decimal | None] = mapped_column(NanoMoney, nullable=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    billing_period: Mapped[str] = mapped_column(String(20), default="monthly")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Account(Base):
    """An identifier as it appears in XDRs; it belongs to customers over time."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccountOwnership(Base):
    """History of which customer an account belongs to."""

    __tablename__ = "account_ownership"
    __table_args__ = (UniqueConstraint("account_id", "valid_from", name="uq_ownership_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Vendor(Base):
    __tablename__ = "vendors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class VendorConnection(Base):
    """An identifier (trunk, gateway, IP) by which XDRs name the vendor that carried them."""

    __tablename__ = "vendor_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    identifier: Mapped[str] = mapped_column(String(200), unique=True)


class TariffAssignment(Base):
    """History of which tariff a customer, an account or a vendor uses."""

    __tablename__ = "tariff_assignments"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id", "valid_from", name="uq_assignment_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # customer | account | vendor
    owner_id: Mapped[int] = mapped_column(Integer)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"))
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Collection(Base):
    """One ingested file.  Its XDRs have ids ``collection_id << 32 | row``."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    source_path: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64), index=True)
    #: loading -> loaded; loading -> aborted (crash or error, cleaned up).
    state: Mapped[str] = mapped_column(String(16), default="loading")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    read: Mapped[int] = mapped_column(BigInteger, default=0)
    loaded: Mapped[int] = mapped_column(BigInteger, default=0)
    duplicates: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Unanswered calls its template leaves out.
    skipped: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The import template the file was read with.
    template: Mapped[str] = mapped_column(String(200), default="canonical", server_default="canonical")
    rejects_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    xdr_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    totals_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str] = mapped_column(String(100), default="cli")


class AuditEntry(Base):
    """Who changed what, when, with the values before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)


class Job(Base):
    """A correction: what it applies to, with which parameters, who asked, and what it did.

    ``state``: planned (a dry run), scheduled, running, applied, failed, reverted.
    Revisions and totals written by a job are visible only while it is
    ``applied``; reverting a job hides them again (ARCHITECTURE.md "Undo").
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # rerate | reprocess | rollback | revert
    state: Mapped[str] = mapped_column(String(16), index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    scope: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    parameters: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    scheduled_for: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    in_scope: Mapped[int] = mapped_column(BigInteger, default=0)
    changed: Mapped[int] = mapped_column(BigInteger, default=0)
    totals: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    diff_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    revision_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reverts_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    reverted_by_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Progress of a running job: call dates done out of the scope's, XDRs read so far.
    days_done: Mapped[int] = mapped_column(Integer, default=0)
    days_total: Mapped[int] = mapped_column(Integer, default=0)
    xdrs_read: Mapped[int] = mapped_column(BigInteger, default=0)


class BillingPeriod(Base):
    """A customer's closed billing period, with what the ledger looked like at closing.

    ``totals_version`` and ``sources`` pin the daily totals exactly as they were,
    so the period's summary can be reproduced after later corrections
    (ARCHITECTURE.md "Billing periods").
    """

    __tablename__ = "billing_periods"
    __table_args__ = (UniqueConstraint("customer_id", "period", name="uq_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    state: Mapped[str] = mapped_column(String(16), default="closed")
    closed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    closed_by: Mapped[str] = mapped_column(String(100))
    xdr_version: Mapped[int] = mapped_column(BigInteger)
    revision_version: Mapped[int] = mapped_column(BigInteger)
    totals_version: Mapped[int] = mapped_column(BigInteger)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class Adjustment(Base):
    """A correction to a closed period, to be invoiced in the open one (never rewriting the old invoice)."""

    __tablename__ = "adjustments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    destination: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    xdrs: Mapped[int] = mapped_column(BigInteger)
    amount_delta: Mapped[Decimal] = mapped_column(NanoMoney)
    cost_delta: Mapped[Decimal] = mapped_column(NanoMoney)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Destination(Base):
    """A dialling prefix known to the system, with its country (the seed's "destination")."""

    __tablename__ = "destinations"

    prefix: Mapped[str] = mapped_column(String(18), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ImportTemplate(Base):
    """Saved parsing and mapping settings of an import, reused by name."""

    __tablename__ = "import_templates"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_template_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # rate_deck | xdr
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ExchangeRate(Base):
    """How much one unit of ``currency`` is worth in ``to_currency`` from a point in time on."""

    __tablename__ = "exchange_rates"
    __table_args__ = (
        UniqueConstraint("currency", "to_currency", "effective_from", name="uq_exchange_rate_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    to_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(NanoMoney)
    effective_from: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RateImport(Base):
    """One run of the rate-deck import: its settings, its summary and its results file."""

    __tablename__ = "rate_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(500))
    mode: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    results_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    proposed_jobs: Mapped[list[int]] = mapped_column(JSON, default=list)
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MediationRuleRow(Base):
    """One mediation rule (rerate.domain.mediation_rules): ordered, scoped, effective-dated."""

    __tablename__ = "mediation_rules"
    #: The audit trail names rules by id: SQLite must not give a removed rule's id to a new one.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    match: Mapped[str] = mapped_column(String(200))
    replace: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(16), default="global")
    scope_value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    min_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    valid_from: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DeliverySchedule(Base):
    """A customer's CDR e-mail: cadence, local send time and zone, recipients and the file's shape."""

    __tablename__ = "delivery_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    cadence: Mapped[str] = mapped_column(String(16))  # daily | weekly | monthly
    weekday: Mapped[int | None] = mapped_column(Integer, nullable=True)  # Monday is 0 (weekly)
    send_at: Mapped[str] = mapped_column(String(5), default="06:00")  # local HH:MM
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    to: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc: Mapped[list[str]] = mapped_column(JSON, default=list)
    format: Mapped[str] = mapped_column(String(8), default="csv")
    #: ``[[name, header], ...]`` in file order (rerate.domain.delivery.CDR_FIELDS).
    columns: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    #: Zone the file's timestamps are written in (default: the schedule's).
    timestamp_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: Decimals of money in the file; None keeps the amounts exactly as rated.
    money_decimals: Mapped[int | None] = mapped_column(Integer, nullable=True)
    compress: Mapped[str] = mapped_column(String(8), default="zip")
    max_attachment_bytes: Mapped[int] = mapped_column(BigInteger)
    include_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: After a correction changes a delivered period: ``offer`` a corrected delivery, or ``send`` it.
    corrections: Mapped[str] = mapped_column(String(8), default="offer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Delivery(Base):
    """One delivery of a schedule's period: what was sent, to whom, how it went (the delivery log).

    ``state``: sent; deferred (temporary SMTP failures, retried by the next run);
    failed (a permanent failure, sent again only with ``--resend``); offered (a
    corrected delivery waiting to be sent); superseded (an offer replaced by a newer one).
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("delivery_schedules.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="regular")  # regular | correction
    #: The delivery a correction replaces.
    corrects_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    period: Mapped[str] = mapped_column(String(32))
    first_day: Mapped[str] = mapped_column(String(10))  # local date, included
    end_day: Mapped[str] = mapped_column(String(10))  # local date, excluded
    starts: Mapped[datetime] = mapped_column(UtcDateTime)
    ends: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16), index=True)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    message_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The addresses a resend ``--to`` went to (None: the schedule's), so that a retry keeps to them.
    recipients: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    #: Recipients the server refused for any part so far, with its answer: they did not get the file.
    refused: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Digest of the delivered rows, and of the units of work (collections, jobs) behind them.
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    sources: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class User(Base):
    """Someone who signs in to the service; ``role`` decides what they may do (docs/service.md)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: argon2id hash of the password (never the password).
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccessToken(Base):
    """An API token or a web session: only its SHA-256 is stored; a session also has a CSRF token."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # api | session
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
