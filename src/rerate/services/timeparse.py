"""Parsing of the ISO times operators type (``2026-10-01T00:00:00Z``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rerate.services.errors import InvalidInputError


def parse_utc(text: str, *, field: str = "time") -> datetime:
    """An aware UTC datetime; naive input is taken as UTC.

    >>> parse_utc("2026-10-01T00:00:00Z").isoformat()
    '2026-10-01T00:00:00+00:00'
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise InvalidInputError(f"{field}: not an ISO time like 2026-10-01T00:00:00Z: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_whole_second(value: datetime) -> datetime:
    """``value``, or the whole second after it: rate history changes on whole seconds, since
    XDRs are priced by their connect second (a change at 12:00:00.6 must not reach 12:00:00)."""
    return value if not value.microsecond else value.replace(microsecond=0) + timedelta(seconds=1)
