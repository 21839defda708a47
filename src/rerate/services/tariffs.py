"""Tariffs and their rate history: import of the canonical rate CSV.

The canonical CSV has a header of shared/RATING.md column names.  Required:
``prefix`` and ``first_price``; every other column is optional and takes the
default documented in docs/rating.md.  An import is one transaction: a file
with any bad row loads nothing, and every error names its line and column.
History is never rewritten: a row for a (prefix, effective_from) that already
exists is skipped when identical and is an error when different.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import Rate, Tariff
from rerate.domain.deck_mapping import MONEY
from rerate.domain.deck_review import COMPARED, RATE_ROW
from rerate.domain.money import MoneyError, parse_decimal, percent_to_scaled, to_nanos
from rerate.domain.prefix_index import KEY_DIGITS
from rerate.services import audit
from rerate.services.errors import InvalidInputError
from rerate.services.timeparse import iso, next_whole_second, parse_utc

#: The canonical rate CSV's columns, in the order rerate writes them.
CANONICAL_COLUMNS = ("prefix", "effective_from", *RATE_ROW, "description")
REQUIRED = ("prefix", "first_price")
INTEGER_FIELDS = {"first_interval": 1, "next_interval": 1, "free_seconds": 0, "grace_period": 0}
BOOLEAN_FIELDS = ("forbidden", "discontinued", "hidden")
MONEY_FIELDS = MONEY
KNOWN = {
    *CANONICAL_COLUMNS,
    *MONEY_FIELDS,
    "hidden",
    "preference",
    "route_category",
    "country",
}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}
#: Columns compared to decide whether an incoming row equals the stored one (as the wizard does).
_COMPARED = COMPARED


def currency_code(text: str, field: str = "--currency") -> str:
    """``text`` as an ISO 4217 code in capitals; anything else would head report lines forever."""
    if not re.fullmatch(r"[A-Za-z]{3}", text.strip()):
        raise InvalidInputError(f"{field} {text!r} is not an ISO 4217 code such as EUR or USD")
    return text.strip().upper()


def new_tariff(name: str, currency: str | None, decimals: int | None) -> Tariff:
    """A tariff to create, its name, currency and decimals checked (nothing is stored yet)."""
    if not name.strip() or len(name) > 200:
        raise InvalidInputError("a tariff needs a name of 1 to 200 characters")
    if not currency:
        raise InvalidInputError(f"tariff {name!r} does not exist yet: give --currency to create it")
    decimals = 5 if decimals is None else decimals
    if not 0 <= decimals <= 9:
        raise InvalidInputError("--decimals must be between 0 and 9")
    return Tariff(name=name, currency=currency_code(currency), decimals=decimals)


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


@dataclass
class RateImportReport:
    tariff: str
    file: str
    state: str = "imported"  # imported | rejected | preview
    tariff_created: bool = False
    read: int = 0
    added: int = 0
    unchanged: int = 0
    past: int = 0
    earliest: str | None = None
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tariff": self.tariff,
            "file": self.file,
            "state": self.state,
            "tariff_created": self.tariff_created,
            "read": self.read,
            "added": self.added,
            "unchanged": self.unchanged,
            "past": self.past,
            "earliest_effective_from": self.earliest,
            "errors": [{"line": e.line, "column": e.column, "message": e.message} for e in self.errors],
        }


def _parse_row(
    raw: dict[str, str], line: int, default_from: datetime, errors: list[RowError]
) -> dict[str, Any]:
    def fail(column: str, message: str) -> None:
        errors.append(RowError(line, column, message))

    row: dict[str, Any] = {}
    prefix = (raw.get("prefix") or "").strip().lstrip("+")
    if not prefix.isdigit() or not 1 <= len(prefix) <= KEY_DIGITS:
        fail("prefix", f"must be 1 to {KEY_DIGITS} digits, got {raw.get('prefix')!r}")
    row["prefix"] = prefix
    text_from = (raw.get("effective_from") or "").strip()
    try:
        row["effective_from"] = parse_utc(text_from, field="effective_from") if text_from else default_from
    except InvalidInputError as exc:
        fail("effective_from", str(exc))
    if getattr(row.get("effective_from"), "microsecond", 0):
        fail("effective_from", f"{text_from} has a fraction of a second: rates change on a whole second")
    for name, default in INTEGER_FIELDS.items():
        text = (raw.get(name) or "").strip()
        if not text:
            row[name] = default
            continue
        if not text.isdigit():
            fail(name, f"must be a whole number of seconds, got {text!r}")
            continue
        row[name] = int(text)
    if row.get("next_interval") == 0:
        fail("next_interval", "must be at least 1")
    for name in MONEY_FIELDS:
        text = (raw.get(name) or "").strip()
        if not text:
            row[name] = None
            continue
        try:
            value = parse_decimal(text, field=name)
            to_nanos(value, field=name)
        except MoneyError as exc:
            fail(name, str(exc))
            continue
        if value < 0 and name != "payback":
            fail(name, f"must not be negative, got {text}")
        row[name] = value
    if row.get("next_price") is None:
        row["next_price"] = row.get("first_price")
    if row.get("connect_fee") is None:
        row["connect_fee"] = Decimal(0)
    surcharge = (raw.get("post_call_surcharge") or "").strip()
    try:
        percent = parse_decimal(surcharge, field="post_call_surcharge") if surcharge else Decimal(0)
        row["post_call_surcharge"] = percent_to_scaled(percent, field="post_call_surcharge")
        if percent < -100:
            fail("post_call_surcharge", "cannot be below -100 %")
    except MoneyError as exc:
        fail("post_call_surcharge", str(exc))
    for name in BOOLEAN_FIELDS:
        text = (raw.get(name) or "").strip().lower()
        if text in _TRUE:
            row[name] = True
        elif text in _FALSE:
            row[name] = False
        else:
            fail(name, f"must be true or false, got {text!r}")
    preference = (raw.get("preference") or "").strip()
    if preference and not preference.lstrip("-").isdigit():
        fail("preference", f"must be a whole number, got {preference!r}")
    row["preference"] = int(preference) if preference.lstrip("-").isdigit() else None
    for name in ("route_category", "description"):
        row[name] = (raw.get(name) or "").strip() or None
    country = (raw.get("country") or "").strip().upper()
    if country and len(country) != 2:
        fail("country", f"must be an ISO 3166 two-letter code, got {country!r}")
    row["country"] = country or None
    return row


def read_canonical_rates(path: Path, *, now: datetime) -> tuple[list[dict[str, Any]], list[RowError]]:
    """Parse and validate a canonical rate CSV; rows are returned only for reference."""
    if not path.is_file():
        raise InvalidInputError(
            f"{path} is a folder, not a rate file" if path.is_dir() else f"rate file not found: {path}"
        )
    errors: list[RowError] = []
    rows: list[dict[str, Any]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InvalidInputError(
                    f"{path.name} is not a canonical rate CSV: missing column(s) {', '.join(missing)} "
                    f"(header: {', '.join(header) or 'empty'})"
                )
            unknown = [c for c in header if c not in KNOWN]
            if unknown:
                raise InvalidInputError(
                    f"{path.name}: unknown column(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}"
                )
            seen: dict[tuple[str, datetime], int] = {}
            for line_offset, raw in enumerate(reader):
                line = line_offset + 2
                if None in raw:
                    errors.append(RowError(line, "*", "more fields than the header has"))
                    continue
                row = _parse_row(raw, line, now, errors)
                row["line"] = line
                key = (row["prefix"], row.get("effective_from", now))
                if key in seen:
                    errors.append(
                        RowError(line, "prefix", f"same prefix and effective_from as line {seen[key]}")
                    )
                seen[key] = line
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path.name} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise InvalidInputError(f"{path.name} is not a readable CSV: {exc}") from exc
    return rows, errors


def _existing(session: Session, tariff_id: int) -> dict[tuple[str, datetime], dict[str, Any]]:
    stored = session.execute(select(Rate).where(Rate.tariff_id == tariff_id)).scalars()
    return {(r.prefix, r.effective_from): {c: getattr(r, c) for c in _COMPARED} for r in stored}


def import_rates(
    app: App,
    name: str,
    path: Path,
    *,
    currency: str | None = None,
    decimals: int | None = None,
    allow_past: bool = False,
    preview: bool = False,
    now: datetime | None = None,
) -> RateImportReport:
    """Add a canonical rate CSV to tariff ``name``'s history, creating the tariff if needed."""
    now = next_whole_second(now or datetime.now(UTC))
    report = RateImportReport(tariff=name, file=str(path))
    rows, errors = read_canonical_rates(path, now=now)
    report.read = len(rows)
    report.errors = errors
    past = [r for r in rows if "effective_from" in r and r["effective_from"] < now]
    report.past = len(past)
    if past:
        report.earliest = iso(min(r["effective_from"] for r in past))
        if not allow_past:
            report.errors.append(
                RowError(
                    past[0]["line"],
                    "effective_from",
                    f"{len(past)} row(s) take effect in the past (earliest {report.earliest}); "
                    "XDRs already rated would not see them: pass --allow-past to load them anyway",
                )
            )
    if report.errors:
        report.state = "rejected"
        return report
    with app.catalog.transaction() as session:
        tariff = session.scalar(select(Tariff).where(Tariff.name == name))
        if tariff is None:
            tariff = new_tariff(name, currency, decimals)
            session.add(tariff)
            session.flush()
            report.tariff_created = True
        elif currency and currency.upper() != tariff.currency:
            raise InvalidInputError(f"tariff {name!r} is in {tariff.currency}, not {currency.upper()}")
        existing = _existing(session, tariff.id) if not report.tariff_created else {}
        fresh: list[dict[str, Any]] = []
        for row in rows:
            stored = existing.get((row["prefix"], row["effective_from"]))
            if stored is None:
                fresh.append(row)
            elif all(stored[c] == row[c] for c in _COMPARED):
                report.unchanged += 1
            else:
                report.errors.append(
                    RowError(
                        row["line"],
                        "prefix",
                        f"prefix {row['prefix']} already has a different rate effective "
                        f"{iso(row['effective_from'])}; "
                        "rate history is not rewritten: import it with a new effective_from",
                    )
                )
        if report.errors:
            report.state = "rejected"
            session.rollback()
            return report
        report.added = len(fresh)
        if preview:
            report.state = "preview"
            session.rollback()
            return report
        if fresh:
            session.execute(
                insert(Rate),
                [{k: v for k, v in row.items() if k != "line"} | {"tariff_id": tariff.id} for row in fresh],
            )
            tariff.revision += 1
        audit.record(
            session,
            app.actor,
            "tariff.import",
            f"tariff {name}",
            after={
                "file": path.name,
                "added": report.added,
                "unchanged": report.unchanged,
                "past": report.past,
            },
        )
    return report
