"""A :class:`~rerate.domain.scopes.Scope` as a DuckDB predicate over the ``xdrs`` view."""

from __future__ import annotations

from datetime import date

from rerate.domain.scopes import Scope


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def scope_predicate(scope: Scope, alias: str = "x") -> str:
    """SQL that is true for the XDRs in ``scope`` (values are ids, digits or escaped names)."""
    clauses: list[str] = []
    for column, values in (
        ("customer_id", scope.customers),
        ("account_id", scope.accounts),
        ("vendor_id", scope.vendors),
        ("collection_id", scope.collections),
    ):
        if values:
            clauses.append(f"{alias}.{column} IN ({', '.join(str(int(v)) for v in values)})")
    if scope.tariffs:
        listed = ", ".join(str(int(t)) for t in scope.tariffs)
        sides = set(scope.tariff_sides) or {"customer", "vendor"}
        columns = [
            c for side, c in (("customer", "tariff_id"), ("vendor", "vendor_tariff_id")) if side in sides
        ]
        clauses.append("(" + " OR ".join(f"{alias}.{c} IN ({listed})" for c in columns) + ")")
    if scope.prefixes:
        clauses.append("(" + " OR ".join(f"starts_with({alias}.number, '{p}')" for p in scope.prefixes) + ")")
    if scope.countries:
        clauses.append(f"{alias}.country IN ({_quoted(scope.countries)})")
    if scope.destination_groups:
        clauses.append(f"{alias}.destination_group IN ({_quoted(scope.destination_groups)})")
    if scope.statuses:
        # "failed" means failed on either side: a vendor-side failure needs fixing too.
        either = [f"{alias}.status IN ({_quoted(scope.statuses)})"]
        if "failed" in scope.statuses:
            either.append(f"{alias}.vendor_status = 'failed'")
        clauses.append("(" + " OR ".join(either) + ")")
    if scope.start:
        clauses.append(f"{alias}.connect_time >= '{scope.start.isoformat()}'::TIMESTAMPTZ")
    if scope.end:
        clauses.append(f"{alias}.connect_time < '{scope.end.isoformat()}'::TIMESTAMPTZ")
    return " AND ".join(clauses) if clauses else "true"


def scope_days(scope: Scope) -> tuple[date, date] | None:
    """The call dates a scope can touch, for partition pruning (None: all)."""
    if not scope.start and not scope.end:
        return None
    first = scope.start.date() if scope.start else date(1970, 1, 1)
    last = scope.end.date() if scope.end else date(9999, 12, 31)
    return first, last


def collection_xdr_ids(collection_id: int) -> str:
    """SQL true for the ids of a collection's XDRs (``collection_id << 32 | row``): one range."""
    return f"xdr_id BETWEEN {collection_id << 32} AND {((collection_id + 1) << 32) - 1}"
