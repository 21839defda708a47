"""A rollback's delta taken from the collection's own aggregate rows equals the per-XDR one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rerate.bootstrap import App
from rerate.ledger.reader import connect_duckdb, open_totals
from rerate.ledger.tables import TOTALS, unit_prefix
from rerate.services import cache
from rerate.services.corrections import CorrectionReport, RerateRequest, execute, rerate
from rerate.services.errors import CacheDriftError
from rerate.services.export import export_xdrs
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.rollback import rollback, rollback_correction
from rerate.services.rollback_totals import WholeCollection
from rerate.services.scopes import resolve_scope
from rerate.services.visibility import current_visibility
from tests.factories import ledger_and_prefix_totals, ledger_and_totals, write_xdrs

#: Rated and failed on either side, two months, two customers' accounts.
ROWS = [
    ("r1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("r2", "2026-10-10T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ("r3", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "stranger", "gw1"),
    ("r4", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc2", "gw-new"),
    ("r5", "2026-11-02T09:00:00Z", "300", "1", "447900123456", "acc2", "gw1"),
    ("r6", "2026-11-02T09:30:00Z", "0", "0", "4930", "acc1", "gw1"),
]


def _per_xdr(app: App, collection_id: int, *, dry_run: bool) -> CorrectionReport:
    """The same rollback with its totals computed from the voided XDRs."""
    correction = rollback_correction(app, collection_id, dry_run=dry_run)
    return execute(app, dataclasses.replace(correction, whole_collection=None))


def _comparable(report: CorrectionReport) -> dict[str, Any]:
    fields = ("in_scope", "changed", "before", "after", "delta", "by_customer", "by_day", "by_destination")
    return {f: getattr(report, f) for f in (*fields, "new_failures", "cured", "adjustments")}


def _job_rows(app: App, job_id: int) -> dict[str, list[tuple[Any, ...]]]:
    with app.catalog.reading() as session:
        con = open_totals(app.ledger, current_visibility(session))
    return {
        table: con.execute(
            f"SELECT * EXCLUDE (source) FROM {table} WHERE source = 'job:{job_id}' ORDER BY ALL"
        ).fetchall()
        for table in ("daily_totals", "prefix_totals")
    }


def _collection(world: App, tmp_path: Path) -> int:
    (loaded,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    assert loaded.collection_id is not None and loaded.loaded == len(ROWS)
    return loaded.collection_id


def _shortcut_usable(world: App, collection_id: int) -> bool:
    with world.catalog.reading() as session:
        visibility = current_visibility(session)
    return WholeCollection(collection_id).usable(world, connect_duckdb(), visibility)


def test_rollback_from_the_collection_totals_equals_the_per_xdr_rollback(world: App, tmp_path: Path) -> None:
    collection_id = _collection(world, tmp_path)
    assert _shortcut_usable(world, collection_id)
    preview, per_xdr_preview = (
        rollback(world, collection_id, dry_run=True),
        _per_xdr(world, collection_id, dry_run=True),
    )
    assert _comparable(preview) == _comparable(per_xdr_preview)
    assert preview.before and preview.delta["EUR"]["amount"] == -preview.before["EUR"]["amount"] != 0

    applied = rollback(world, collection_id)
    written = _job_rows(world, applied.job_id)
    assert written["daily_totals"] and written["prefix_totals"]
    assert (ledger_and_totals(world)[0], ledger_and_prefix_totals(world)[0]) == (
        ledger_and_totals(world)[1],
        ledger_and_prefix_totals(world)[1],
    )
    revert(world, applied.job_id)

    per_xdr = _per_xdr(world, collection_id, dry_run=False)
    assert _job_rows(world, per_xdr.job_id) == written
    assert _comparable(per_xdr) == _comparable(applied)


def test_a_collection_a_job_revised_is_rolled_back_per_xdr(world: App, tmp_path: Path) -> None:
    collection_id = _collection(world, tmp_path)
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    assert rerate(world, RerateRequest(scope=acme, tariff="cost")).changed
    assert not _shortcut_usable(world, collection_id)
    rollback(world, collection_id)
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
    assert cache.sync(world, check=True).differences == []


def test_totals_that_disagree_with_the_xdrs_stop_the_rollback_until_repaired(
    world: App, tmp_path: Path
) -> None:
    collection_id = _collection(world, tmp_path)
    export_xdrs(world, tmp_path / "before.csv")
    world.ledger.remove_unit(TOTALS, unit_prefix("c", collection_id))  # drift: the daily rows are gone
    with pytest.raises(CacheDriftError, match="cache sync"):
        rollback(world, collection_id)
    export_xdrs(world, tmp_path / "after.csv")
    assert (tmp_path / "after.csv").read_text() == (tmp_path / "before.csv").read_text()

    assert cache.sync(world).repaired
    assert not _shortcut_usable(world, collection_id)  # the repair's rows are not the collection's
    assert rollback(world, collection_id).changed == len(ROWS)
    assert cache.sync(world, check=True).differences == []
