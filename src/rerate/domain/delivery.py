"""CDR delivery rules: when a schedule is due, which local period it covers, which columns it sends.

A schedule lives in its customer's time zone: a daily delivery sent on local
date D covers the customer's previous local day, a weekly one the previous
Monday-to-Sunday week, a monthly one the previous calendar month (issue 6's
contract).  Periods are half-open ``[first, end)`` in local dates; their UTC
instants come from the zone database, so a day of a daylight-saving change is
23 or 25 hours long and nothing is counted twice or left out.

>>> covered_period(Cadence.weekly, date(2026, 11, 23)).label
'2026-11-16..2026-11-22'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DeliveryRuleError(ValueError):
    """A schedule setting that cannot be understood."""


class Cadence(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


class Compression(StrEnum):
    none = "none"
    zip = "zip"
    gzip = "gzip"


class CdrFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


@dataclass(frozen=True)
class Period:
    """Local dates ``[first, end)`` of one delivery."""

    cadence: Cadence
    first: date
    end: date

    @property
    def label(self) -> str:
        if self.cadence is Cadence.daily:
            return self.first.isoformat()
        if self.cadence is Cadence.monthly:
            return self.first.strftime("%Y-%m")
        return f"{self.first.isoformat()}..{(self.end - timedelta(days=1)).isoformat()}"

    def instants(self, zone: str) -> tuple[datetime, datetime]:
        """The period's UTC start (included) and end (excluded)."""
        tz = zone_named(zone)
        start = datetime.combine(self.first, time(), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(self.end, time(), tzinfo=tz).astimezone(UTC)
        return start, end


def zone_named(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DeliveryRuleError(f"unknown time zone {zone!r} (use a name such as Europe/Berlin)") from None


def covered_period(cadence: Cadence, on: date) -> Period:
    """The local period a delivery sent on local date ``on`` covers."""
    if cadence is Cadence.daily:
        return Period(cadence, on - timedelta(days=1), on)
    if cadence is Cadence.weekly:
        this_monday = on - timedelta(days=on.weekday())
        return Period(cadence, this_monday - timedelta(days=7), this_monday)
    this_month = on.replace(day=1)
    previous = (this_month - timedelta(days=1)).replace(day=1)
    return Period(cadence, previous, this_month)


def is_due(cadence: Cadence, weekday: int | None, on: date) -> bool:
    """Whether a schedule sends on local ``on``: daily always, weekly on its weekday, monthly on the 1st."""
    if cadence is Cadence.daily:
        return True
    if cadence is Cadence.weekly:
        return on.weekday() == (weekday if weekday is not None else 0)
    return on.day == 1


def weekday_number(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in WEEKDAYS:
        raise DeliveryRuleError(f"unknown weekday {name!r}: use one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(key)


def send_time(text: str) -> str:
    """``HH:MM`` (24 h), normalised to two digits each."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise DeliveryRuleError(f"send time {text!r} is not HH:MM (24 h), such as 06:30")
    return f"{int(match[1]):02d}:{match[2]}"


def local_now(now: datetime, zone: str) -> datetime:
    return now.astimezone(zone_named(zone))


def due_dates(
    cadence: Cadence, weekday: int | None, at: str, zone: str, since: date, now: datetime
) -> list[date]:
    """Local dates from ``since`` up to now on which the schedule was due and its send time has passed."""
    local = local_now(now, zone)
    today = local.date()
    hour, minute = (int(part) for part in at.split(":"))
    last = today if local.time() >= time(hour, minute) else today - timedelta(days=1)
    days = []
    day = since
    while day <= last:
        if is_due(cadence, weekday, day):
            days.append(day)
        day += timedelta(days=1)
    return days


@dataclass(frozen=True)
class CdrColumn:
    """One column of a delivered CDR file: what it holds and its header."""

    name: str
    header: str


#: The columns a schedule sends unless it names its own.
DEFAULT_COLUMNS = (
    "source_id",
    "connect_time",
    "cli",
    "cld",
    "duration",
    "billed",
    "amount",
    "currency",
    "prefix",
    "country",
    "destination",
    "account",
    "status",
    "reason",
)
#: What a customer may receive: its own side of each XDR, never the vendor's or the cost.
CDR_FIELDS = (*DEFAULT_COLUMNS, "xdr_id", "disconnect_time", "number", "service", "customer", "tariff")


def parse_columns(text: str | None) -> tuple[CdrColumn, ...]:
    """``a,b:Header,c`` -> columns in that order; a name without ``:Header`` keeps its name as header.

    >>> [c.header for c in parse_columns("connect_time:Start,cld")]
    ['Start', 'cld']
    """
    names = [part.strip() for part in (text or ",".join(DEFAULT_COLUMNS)).split(",") if part.strip()]
    if not names:
        raise DeliveryRuleError("--columns names no column")
    columns: list[CdrColumn] = []
    for entry in names:
        name, _, header = entry.partition(":")
        name = name.strip()
        if name not in CDR_FIELDS:
            raise DeliveryRuleError(f"unknown CDR column {name!r}: choose from {', '.join(CDR_FIELDS)}")
        if any(c.name == name for c in columns):
            raise DeliveryRuleError(f"column {name!r} is listed twice")
        columns.append(CdrColumn(name, header.strip() or name))
    return tuple(columns)


def describe_columns(columns: tuple[CdrColumn, ...]) -> str:
    return ",".join(c.name if c.header == c.name else f"{c.name}:{c.header}" for c in columns)
