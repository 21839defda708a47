"""CDR delivery schedules: per customer, any number, each with its cadence, recipients and file shape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Customer, DeliverySchedule
from rerate.domain.delivery import (
    WEEKDAYS,
    Cadence,
    CdrColumn,
    CdrFormat,
    Compression,
    DeliveryRuleError,
    describe_columns,
    parse_columns,
    send_time,
    weekday_number,
    zone_named,
)
from rerate.services import audit
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError
from rerate.services.mailer import check_addresses
from rerate.services.parties import customer_named

CORRECTIONS = ("offer", "send")
MIN_ATTACHMENT_BYTES = 16 * 1024


@dataclass
class ScheduleRequest:
    customer: str
    to: Sequence[str]
    cadence: str
    cc: Sequence[str] = ()
    weekday: str | None = None
    at: str = "06:00"
    #: Default: the customer's time zone.
    timezone: str | None = None
    format: str = "csv"
    columns: str | None = None
    #: Default: zip for CSV, none for XLSX (already compressed).
    compress: str | None = None
    #: Default: the setting ``RERATE_DELIVERY_MAX_ATTACHMENT_MB``.
    max_attachment_mb: int | None = None
    #: Exact limit in bytes (overrides ``max_attachment_mb``; for small test limits).
    max_attachment_bytes: int | None = None
    include_failed: bool = False
    corrections: str = "offer"
    #: Zone of the file's timestamps; default: the schedule's.
    timestamp_zone: str | None = None
    money_decimals: int | None = None


@dataclass(frozen=True)
class ScheduleView:
    id: int
    customer: str
    cadence: str
    weekday: str | None
    at: str
    timezone: str
    to: list[str]
    cc: list[str]
    format: str
    compress: str
    columns: str
    timestamp_zone: str
    money_decimals: int | None
    max_attachment_bytes: int
    include_failed: bool
    corrections: str
    active: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"}

    @property
    def column_list(self) -> tuple[CdrColumn, ...]:
        return parse_columns(self.columns)


def _choice(value: str, choices: Sequence[str], what: str) -> str:
    cleaned = value.strip().lower()
    if cleaned not in choices:
        raise InvalidInputError(f"{what} {value!r}: use {'|'.join(choices)}")
    return cleaned


def view_of(schedule: DeliverySchedule, customer: str) -> ScheduleView:
    return ScheduleView(
        id=schedule.id,
        customer=customer,
        cadence=schedule.cadence,
        weekday=WEEKDAYS[schedule.weekday] if schedule.weekday is not None else None,
        at=schedule.send_at,
        timezone=schedule.timezone,
        to=list(schedule.to),
        cc=list(schedule.cc),
        format=schedule.format,
        compress=schedule.compress,
        columns=describe_columns(tuple(CdrColumn(n, h) for n, h in schedule.columns)),
        timestamp_zone=schedule.timestamp_zone,
        money_decimals=schedule.money_decimals,
        max_attachment_bytes=schedule.max_attachment_bytes,
        include_failed=schedule.include_failed,
        corrections=schedule.corrections,
        active=schedule.active,
    )


def add_schedule(app: App, request: ScheduleRequest) -> ScheduleView:
    """Record a schedule after checking every setting (nothing half-valid is stored)."""
    try:
        cadence = Cadence(_choice(request.cadence, [c.value for c in Cadence], "cadence"))
        fmt = CdrFormat(_choice(request.format, [f.value for f in CdrFormat], "format"))
        default_compress = Compression.none if fmt is CdrFormat.xlsx else Compression.zip
        compress = Compression(
            _choice(request.compress or default_compress.value, [c.value for c in Compression], "compression")
        )
        if fmt is CdrFormat.xlsx and compress is not Compression.none:
            raise InvalidInputError(
                "an XLSX file is compressed already: use --compress none with --format xlsx"
            )
        if request.weekday is not None and cadence is not Cadence.weekly:
            raise InvalidInputError("--weekday is for a weekly cadence")
        weekday = weekday_number(request.weekday or "mon") if cadence is Cadence.weekly else None
        at = send_time(request.at)
        columns = parse_columns(request.columns)
        corrections = _choice(request.corrections, CORRECTIONS, "corrections")
        if request.money_decimals is not None and not 0 <= request.money_decimals <= 9:
            raise InvalidInputError("--decimals takes 0 to 9 (amounts are kept to 9 decimals)")
        to = check_addresses(request.to)
        cc = check_addresses(request.cc) if request.cc else []
    except DeliveryRuleError as exc:
        raise InvalidInputError(str(exc)) from None
    limit = request.max_attachment_bytes or (
        request.max_attachment_mb or app.settings.delivery_max_attachment_mb
    ) * (1 << 20)
    if limit < MIN_ATTACHMENT_BYTES:
        # An empty workbook alone is about 5 KB; a part must hold its header and at least some rows.
        raise InvalidInputError(f"the attachment limit must be at least {MIN_ATTACHMENT_BYTES // 1024} KB")
    with app.catalog.transaction() as session:
        customer = customer_named(session, request.customer)
        zone = request.timezone or customer.timezone or "UTC"
        try:
            zone_named(zone)
            zone_named(request.timestamp_zone or zone)
        except DeliveryRuleError as exc:
            raise InvalidInputError(str(exc)) from None
        schedule = DeliverySchedule(
            customer_id=customer.id,
            cadence=cadence.value,
            weekday=weekday,
            send_at=at,
            timezone=zone,
            to=to,
            cc=cc,
            format=fmt.value,
            columns=[[c.name, c.header] for c in columns],
            timestamp_zone=request.timestamp_zone or zone,
            money_decimals=request.money_decimals,
            compress=compress.value,
            max_attachment_bytes=limit,
            include_failed=request.include_failed,
            corrections=corrections,
            active=True,
            created_by=app.actor,
        )
        session.add(schedule)
        session.flush()
        view = view_of(schedule, customer.name)
        audit.record(session, app.actor, "delivery.add", f"schedule {schedule.id}", after=view.as_dict())
        return view


def list_schedules(app: App, *, include_inactive: bool = False) -> list[ScheduleView]:
    with app.catalog.reading() as session:
        query = select(DeliverySchedule, Customer.name).join(
            Customer, Customer.id == DeliverySchedule.customer_id
        )
        if not include_inactive:
            query = query.where(DeliverySchedule.active.is_(True))
        rows = session.execute(query.order_by(Customer.name, DeliverySchedule.id)).all()
        return [view_of(schedule, name) for schedule, name in rows]


def remove_schedule(app: App, schedule_id: int) -> ScheduleView:
    """Stop a schedule (kept, inactive: its delivery log still refers to it)."""
    with app.catalog.transaction() as session:
        schedule = session.get(DeliverySchedule, schedule_id)
        if schedule is None:
            raise NotFoundError(f"no delivery schedule {schedule_id} (see 'rerate delivery list')")
        if not schedule.active:
            raise ConflictError(f"delivery schedule {schedule_id} is stopped already")
        schedule.active = False
        customer = session.get(Customer, schedule.customer_id)
        audit.record(session, app.actor, "delivery.remove", f"schedule {schedule_id}")
        return view_of(schedule, customer.name if customer else "?")
