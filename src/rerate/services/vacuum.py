"""Reclaiming the disk that compaction and crash recovery leave behind.

Compaction replaces a day's small files by one file and crash recovery
removes an interrupted unit's files, both as Delta remove actions: the old
files stay on disk so that earlier table versions can still be read.
``rerate ledger vacuum`` deletes the ones removed more than ``retention``
hours ago (Delta's "lite" vacuum: only files the log says were removed, never
a file the log does not know).  The versions a closed billing period recorded
are kept, so its totals as closed stay reproducible.  It runs under the
ledger lock, like every writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from deltalake import DeltaTable
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import BillingPeriod
from rerate.ledger.tables import REVISIONS, TABLES, TOTALS, XDRS
from rerate.services import audit
from rerate.services.errors import InvalidInputError
from rerate.services.locks import ledger_lock
from rerate.services.recovery import recover_interrupted

#: A week: a reader that opened the ledger before a compaction keeps finding its files.
DEFAULT_RETENTION_HOURS = 168


@dataclass
class VacuumReport:
    dry_run: bool
    retention_hours: int
    #: Table -> files deleted (or, for a dry run, that would be).
    files: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0


def _kept_versions(app: App) -> dict[str, list[int]]:
    """Per table, the versions closed billing periods recorded."""
    with app.catalog.reading() as session:
        periods = session.scalars(select(BillingPeriod)).all()
        return {
            XDRS: sorted({p.xdr_version for p in periods}),
            REVISIONS: sorted({p.revision_version for p in periods}),
            TOTALS: sorted({p.totals_version for p in periods}),
        }


def vacuum(
    app: App, *, retention_hours: int = DEFAULT_RETENTION_HOURS, dry_run: bool = False
) -> VacuumReport:
    """Delete (or with ``dry_run`` list) the ledger's files removed over ``retention_hours`` ago."""
    if retention_hours < 0:
        raise InvalidInputError("--retain-hours must be zero or more")
    started = time.perf_counter()
    report = VacuumReport(dry_run=dry_run, retention_hours=retention_hours)
    app.ledger.ensure()
    with ledger_lock(app.home, f"vacuum by {app.actor}"):
        recover_interrupted(app)
        kept = _kept_versions(app)
        for name in TABLES:
            table, keep = app.ledger.table(name), kept.get(name, [])
            root = app.ledger.path(name)
            # The log keeps its removals after a vacuum: files already deleted are not counted.
            listed = [r for r in _vacuum(table, retention_hours, keep, listing=True) if (root / r).exists()]
            report.bytes += sum(_size(root / relative) for relative in listed)
            if listed and not dry_run:
                _vacuum(table, retention_hours, keep, listing=False)
            report.files[name] = len(listed)
        report.seconds = round(time.perf_counter() - started, 3)
        if not dry_run:
            with app.catalog.transaction() as session:
                audit.record(
                    session,
                    app.actor,
                    "ledger.vacuum",
                    "ledger",
                    after={"files": report.files, "bytes": report.bytes, "retention_hours": retention_hours},
                )
    return report


def _vacuum(table: DeltaTable, retention_hours: int, keep: list[int], *, listing: bool) -> list[str]:
    return table.vacuum(
        retention_hours=retention_hours,
        dry_run=listing,
        enforce_retention_duration=False,  # the retention is the operator's choice
        keep_versions=keep or None,
        # Files no version ever listed (a compaction killed before its commit) go too, once older
        # than the retention: every writer holds the ledger lock, which vacuum holds now.
        full=True,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
