"""The catalog compiled for the kernel: rating and mediation contexts.

Compiling a tariff (flattening each epoch's prefixes) is the expensive part;
the compiled book is cached per process by every tariff's ``revision``, which
each change to a rate history bumps.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from rerate.catalog.models import (
    Account,
    AccountOwnership,
    CountryCode,
    DestinationGroup,
    DestinationGroupPrefix,
    Tariff,
    TariffAssignment,
    VendorConnection,
)
from rerate.domain.history import History
from rerate.domain.mediation import Lookup, MediationContext, PrefixNames
from rerate.domain.offpeak import Schedule, Window
from rerate.domain.rating import RATE_COLUMNS, RatingContext, TariffBook, TariffSpec, compile_book
from rerate.services.mediation_rules import rule_set

#: Bumped whenever the compiled book's layout changes, so old cache files are ignored.
_BOOK_FORMAT = 2
_BOOK_CACHE: dict[tuple[str, tuple[tuple[int, int], ...]], TariffBook] = {}

_RATE_QUERY = text(
    "SELECT id, tariff_id, prefix, effective_from, first_interval, next_interval, first_price, "
    "next_price, connect_fee, free_seconds, grace_period, post_call_surcharge, forbidden, discontinued, "
    "off_peak_first_price, off_peak_next_price FROM rates ORDER BY tariff_id, prefix, effective_from"
)


def _epoch_seconds(values: Sequence[Any]) -> pa.Array:
    """Stored times (SQLite: UTC text; PostgreSQL: aware datetimes) as epoch seconds."""
    if values and isinstance(values[0], datetime):
        stamps = pa.array(values, pa.timestamp("us", tz="UTC"))
    else:
        stamps = pa.array(values, pa.string()).cast(pa.timestamp("us"))
    # Rounded up: XDRs are looked up by their connect second t, and for a whole t, "t >= start"
    # holds exactly when t >= ceil(start).  (New history is stored on whole seconds; this keeps
    # rows stored with a fraction before that exact for whole-second calls.)
    micros = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return pa.array(-(-micros // 1_000_000))


def load_rates(session: Session) -> pa.Table:
    """Every rate row of the catalog as an Arrow table of :data:`RATE_COLUMNS`."""
    # Plain DB-API tuples: a quarter of a million ORM rows would cost seconds.
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(str(_RATE_QUERY))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in RATE_COLUMNS]
    arrays = {}
    for name, values in zip(RATE_COLUMNS, columns, strict=True):
        if name == "effective_from":
            arrays[name] = _epoch_seconds(values)
        elif RATE_COLUMNS[name] == pa.bool_():  # SQLite hands booleans back as 0/1
            arrays[name] = pa.array([bool(v) for v in values], pa.bool_())
        else:
            arrays[name] = pa.array(values, RATE_COLUMNS[name])
    return pa.table(arrays)


def tariff_book(session: Session, cache_dir: Path | None = None) -> TariffBook:
    """The compiled book of every tariff, from memory, from ``cache_dir``, or compiled now."""
    tariffs = session.execute(select(Tariff).order_by(Tariff.id)).scalars().all()
    url = str(session.get_bind().engine.url)
    revisions = tuple(
        (t.id, t.revision, t.currency, t.decimals, t.rate_unit, t.timezone, repr(t.off_peak)) for t in tariffs
    )
    key = (url, tuple((t.id, t.revision) for t in tariffs))
    book = _BOOK_CACHE.get(key)
    if book is not None:
        return book
    digest = hashlib.sha256(repr((url, revisions, _BOOK_FORMAT)).encode()).hexdigest()[:24]
    cached = cache_dir / f"tariff-book-{digest}.pickle" if cache_dir else None
    if cached is not None and cached.exists():
        with cached.open("rb") as handle:
            book = pickle.load(handle)  # written by this code, under the home directory
    else:
        specs = [TariffSpec(t.id, t.currency, t.decimals, t.rate_unit, _schedule(t)) for t in tariffs]
        book = compile_book(specs, load_rates(session))
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            for stale in cached.parent.glob("tariff-book-*.pickle"):
                stale.unlink()
            partial = cached.with_suffix(".tmp")
            with partial.open("wb") as handle:
                pickle.dump(book, handle, protocol=pickle.HIGHEST_PROTOCOL)
            partial.replace(cached)
    _BOOK_CACHE.clear()  # one catalog state per process is plenty
    _BOOK_CACHE[key] = book
    return book


def _schedule(tariff: Tariff) -> Schedule | None:
    if not tariff.off_peak:
        return None
    return Schedule.compile(tariff.timezone, [Window.from_dict(w) for w in tariff.off_peak])


def _history(session: Session, kind: str) -> History:
    rows = session.execute(
        select(TariffAssignment.owner_id, TariffAssignment.valid_from, TariffAssignment.tariff_id).where(
            TariffAssignment.owner_kind == kind
        )
    ).all()
    return History.build([r[0] for r in rows], [int(r[1].timestamp()) for r in rows], [r[2] for r in rows])


def rating_context(session: Session, cache_dir: Path | None = None) -> RatingContext:
    return RatingContext(
        book=tariff_book(session, cache_dir),
        account_tariffs=_history(session, "account"),
        customer_tariffs=_history(session, "customer"),
        vendor_tariffs=_history(session, "vendor"),
    )


def mediation_context(session: Session) -> MediationContext:
    accounts = session.execute(select(Account.identifier, Account.id)).all()
    ownership = session.execute(
        select(AccountOwnership.account_id, AccountOwnership.valid_from, AccountOwnership.customer_id)
    ).all()
    connections = session.execute(select(VendorConnection.identifier, VendorConnection.vendor_id)).all()
    countries = session.execute(select(CountryCode.prefix, CountryCode.iso)).all()
    groups = session.execute(
        select(DestinationGroupPrefix.prefix, DestinationGroup.name).join(
            DestinationGroup, DestinationGroup.id == DestinationGroupPrefix.group_id
        )
    ).all()
    return MediationContext(
        accounts=Lookup.build([a[0] for a in accounts], [a[1] for a in accounts]),
        ownership=History.build(
            [o[0] for o in ownership],
            [int(o[1].timestamp()) for o in ownership],
            [o[2] for o in ownership],
        ),
        connections=Lookup.build([c[0] for c in connections], [c[1] for c in connections]),
        countries=PrefixNames.build([c[0] for c in countries], [c[1] for c in countries]),
        destination_groups=PrefixNames.build([g[0] for g in groups], [g[1] for g in groups]),
        rules=rule_set(session),
    )
