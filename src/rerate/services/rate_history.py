"""A tariff's rate history as the import's review needs it: fast to read, converted on demand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

from sqlalchemy.orm import Session

from rerate.domain.deck_mapping import MONEY
from rerate.domain.deck_review import COMPARED, StoredRate
from rerate.domain.money import NANOS

_MONEY_COLUMNS = frozenset(MONEY)


@lru_cache(maxsize=1 << 12)  # a history has few distinct times
def _utc(value: Any) -> datetime:
    """A stored time: SQLite hands back text, PostgreSQL an aware datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def load_history(session: Session, tariff_id: int, prefixes: set[str] | None) -> dict[str, list[StoredRate]]:
    """The tariff's versions of ``prefixes`` (None: of every prefix), oldest first.

    Read as plain values (no per-value type processing) and converted only
    when the review looks at them: a deck of a few thousand rows need not pay
    for a tariff of a million versions.
    """
    names = (*COMPARED, "description", "country")
    query = (
        f"SELECT id, prefix, effective_from, {', '.join(names)} FROM rates WHERE tariff_id = {int(tariff_id)}"
    )
    history: dict[str, list[StoredRate]] = {}
    # DB-API tuples: no per-row wrapping or type processing.
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(query)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    decode = partial(_stored_values, names)
    for row in rows:
        prefix = row[1]
        if prefixes is not None and prefix not in prefixes:
            continue
        versions = history.get(prefix)
        if versions is None:
            versions = history[prefix] = []
        versions.append(StoredRate(row[0], _utc(row[2]), partial(decode, row)))
    for versions in history.values():  # ordered here: most prefixes have one version, nothing to sort
        if len(versions) > 1:
            versions.sort(key=lambda v: (v.effective_from, v.id))
    return history


@lru_cache(maxsize=1 << 16)  # a tariff repeats its prices
def _amount(nanos: int) -> Decimal:
    amount: Decimal = Decimal(nanos) / NANOS  # exact, without trailing zeros
    return amount


_FLAGS = frozenset(("forbidden", "discontinued", "hidden"))


def _stored_values(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A stored version's attributes from its row (``id, prefix, effective_from`` first)."""
    values = dict(zip(names, row[3:], strict=True))
    for name in _MONEY_COLUMNS:
        if values[name] is not None:
            values[name] = _amount(values[name])
    for name in _FLAGS:
        values[name] = bool(values[name])  # SQLite hands booleans back as 0/1
    return values
