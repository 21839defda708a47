"""What a correction applies to: a scope of XDRs, described in plain words.

A scope combines customers, accounts, vendors, destination prefixes (a prefix
matches every number under it), countries, destination groups, collections,
a half-open UTC time window and statuses.  Values of one kind are alternatives
(OR); kinds combine (AND).  An empty scope is refused: a correction of
"everything" must be asked for with an explicit time window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class EmptyScopeError(ValueError):
    """A scope that names nothing."""


@dataclass(frozen=True)
class Scope:
    customers: tuple[int, ...] = ()
    accounts: tuple[int, ...] = ()
    vendors: tuple[int, ...] = ()
    prefixes: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    destination_groups: tuple[str, ...] = ()
    collections: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    #: XDRs priced (or failed) with these tariffs, on either side or only on ``tariff_sides``.
    tariffs: tuple[int, ...] = ()
    #: ``("customer",)`` or ``("vendor",)``: the side whose tariff ``tariffs`` names (empty: either).
    tariff_sides: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    #: Names for display, keyed like the id fields (ids alone do not read well).
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.is_empty():
            raise EmptyScopeError(
                "an empty scope is refused: name customers, accounts, vendors, prefixes, countries, "
                "destination groups, collections or a time window"
            )
        if self.start and self.end and self.start >= self.end:
            raise EmptyScopeError("the time window is empty: --from must be before --to")
        # ASCII digits only: str.isdigit() takes "４４" or "²", which no normalized number starts with.
        bad = [p for p in self.prefixes if not (p.isascii() and p.isdigit())]
        if bad:
            raise EmptyScopeError(f"prefixes must be digits: {', '.join(bad)}")

    def is_empty(self) -> bool:
        return not self.collections and not any(self._filters())

    def is_whole_collections(self) -> bool:
        """Whether the scope is every XDR of some collections (a rollback's), nothing narrower."""
        return bool(self.collections) and not any(self._filters())

    def _filters(self) -> tuple[object, ...]:
        """Everything that selects XDRs, except the collections."""
        return (
            self.customers,
            self.accounts,
            self.vendors,
            self.prefixes,
            self.countries,
            self.destination_groups,
            self.statuses,
            self.tariffs,
            self.start,
            self.end,
        )

    def describe(self) -> str:
        """The scope in plain words, for confirmations, job lists and the audit trail."""
        parts: list[str] = []
        for key, noun in (
            ("customers", "customer"),
            ("accounts", "account"),
            ("vendors", "vendor"),
            ("collections", "collection"),
            ("tariffs", "tariff"),
        ):
            values = self.labels.get(key) or tuple(str(v) for v in getattr(self, key))
            sided = key == "tariffs" and len(self.tariff_sides) == 1
            named = f"{self.tariff_sides[0]} {noun}" if sided else noun
            if values:
                parts.append(f"{named}{'s' if len(values) > 1 else ''} {', '.join(values)}")
        if self.prefixes:
            parts.append("numbers starting " + " or ".join(self.prefixes))
        if self.countries:
            parts.append("countries " + ", ".join(self.countries))
        if self.destination_groups:
            parts.append("destination groups " + ", ".join(self.destination_groups))
        if self.statuses:
            parts.append("status " + " or ".join(self.statuses))
        start = self.start.strftime("%Y-%m-%d %H:%M") if self.start else None
        end = self.end.strftime("%Y-%m-%d %H:%M") if self.end else None
        if start and end:
            window = f"connected from {start} to {end} UTC"
        elif start:
            window = f"connected from {start} UTC on"
        else:
            window = f"connected before {end} UTC" if end else ""
        if not parts:
            return f"XDRs {window}".rstrip()
        return "XDRs of " + "; ".join(parts) + (f", {window}" if window else "")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored with the job."""
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        """The inverse of :meth:`as_dict` (for scheduled jobs)."""
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            if name in ("start", "end"):
                values[name] = datetime.fromisoformat(value) if value else None
            elif name == "labels":
                values[name] = {k: tuple(v) for k, v in (value or {}).items()}
            else:
                values[name] = tuple(value or ())
        return cls(**values)
