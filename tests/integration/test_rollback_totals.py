"""A rollback's delta taken from the collection's own aggregate rows equals the per-XDR one."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.ledger.reader import open_totals
from rerate.ledger.tables import PREFIX_TOTALS, REVISIONS, TOTALS, PartitionedWriter, unit_prefix
from rerate.services import cache, corrections
from rerate.services.corrections import CorrectionReport, RerateRequest, execute, rerate
from rerate.services.errors import CacheDriftError, ConflictError
from rerate.services.export import export_xdrs
from rerate.services.faults import CRASH_EXIT_CODE
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.periods import close_period
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
    return WholeCollection(collection_id).usable(world, visibility)


def _revise_some(world: App) -> None:
    """Two applied jobs on the same XDRs (the newest counts), one reverted job, a customer's XDRs only."""
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    assert rerate(world, RerateRequest(scope=acme, tariff="cost")).changed
    assert rerate(world, RerateRequest(scope=acme, ghost_percent=Decimal(30))).changed
    undone = rerate(world, RerateRequest(scope=acme, ghost_percent=Decimal(70)))
    revert(world, undone.job_id)


@pytest.mark.parametrize("revised", [False, True], ids=["as-loaded", "after-jobs-revised-some"])
def test_rollback_from_the_collection_totals_equals_the_per_xdr_rollback(
    world: App, tmp_path: Path, revised: bool
) -> None:
    collection_id = _collection(world, tmp_path)
    if revised:
        _revise_some(world)
    assert _shortcut_usable(world, collection_id)
    preview = rollback(world, collection_id, dry_run=True)
    assert _comparable(preview) == _comparable(_per_xdr(world, collection_id, dry_run=True))
    assert preview.before and preview.delta["EUR"]["amount"] == -preview.before["EUR"]["amount"] != 0

    applied = rollback(world, collection_id)
    written = _job_rows(world, applied.job_id)
    assert written["daily_totals"] and written["prefix_totals"]
    assert ledger_and_totals(world)[0] == ledger_and_totals(world)[1]
    assert ledger_and_prefix_totals(world)[0] == ledger_and_prefix_totals(world)[1]
    revert(world, applied.job_id)

    per_xdr = _per_xdr(world, collection_id, dry_run=False)
    assert _net(_job_rows(world, per_xdr.job_id)) == _net(written)
    assert _comparable(per_xdr) == _comparable(applied)


def _net(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Rows summed by key (the measures are the last six columns), zero rows left out."""
    netted: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    for table, table_rows in rows.items():
        sums: dict[tuple[Any, ...], list[Any]] = {}
        for row in table_rows:
            slot = sums.setdefault(tuple(row[:-6]), [0] * 6)
            for index, value in enumerate(row[-6:]):
                slot[index] += value
        netted[table] = {key: tuple(values) for key, values in sums.items() if any(values)}
    return netted


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


@pytest.mark.parametrize("checkpoint", ["rerate.batch_written", "rerate.totals_committed"])
def test_killed_rollback_leaves_the_ledger_as_it_was(world: App, tmp_path: Path, checkpoint: str) -> None:
    collection_id = _collection(world, tmp_path)
    _revise_some(world)
    before = (_exported(world, tmp_path), ledger_and_totals(world), ledger_and_prefix_totals(world))
    command = ["collection", "rollback", str(collection_id), "--yes"]
    crashed = subprocess.run(
        [sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(world.home), *command],
        env={**os.environ, "RERATE_CRASH_AT": checkpoint},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stdout + crashed.stderr
    after = (_exported(world, tmp_path), ledger_and_totals(world), ledger_and_prefix_totals(world))
    assert after == before
    assert rollback(world, collection_id).changed == len(ROWS)  # the retry cleans up first
    assert cache.sync(world, check=True).differences == []


def _exported(app: App, tmp_path: Path) -> str:
    export_xdrs(app, tmp_path / "export.csv")
    return (tmp_path / "export.csv").read_text()


@pytest.mark.parametrize("failure", ["after-the-xdrs", "closed-period"])
def test_a_rollback_failing_after_its_totals_were_encoded_leaves_no_file_behind(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """The collection's delta files are encoded on the side thread while the XDRs are read; a
    failure after that (an error, or the refusal to change a closed period) publishes nothing
    and removes them with the rest of the job's files."""
    collection_id = _collection(world, tmp_path)
    _revise_some(world)
    expected: type[Exception] = RuntimeError
    if failure == "closed-period":
        close_period(world, "Acme", "2026-10")
        expected = ConflictError
    before = (_exported(world, tmp_path), ledger_and_totals(world), ledger_and_prefix_totals(world))
    encoded: list[str] = []
    original_delta = WholeCollection.delta

    def delta_then_note(self: WholeCollection, *args: Any, **kwargs: Any) -> Any:
        result = original_delta(self, *args, **kwargs)
        encoded.append("delta")
        return result

    def failing_take(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("failed after the totals were encoded")

    original_write = PartitionedWriter._write
    writes: list[str] = []

    def slow_write(self: PartitionedWriter, *args: Any) -> Any:
        if self.partitioned:  # XDR revisions: as fast as ever
            return original_write(self, *args)
        writes.append("started")
        time.sleep(1)  # an aggregate's delta still encoding when the job fails: the clean-up waits
        written = original_write(self, *args)
        writes.append("finished")
        return written

    monkeypatch.setattr(WholeCollection, "delta", delta_then_note)
    monkeypatch.setattr(PartitionedWriter, "_write", slow_write)
    if failure == "after-the-xdrs":
        monkeypatch.setattr(corrections, "_take_whole", failing_take)
    with pytest.raises(expected):
        rollback(world, collection_id)
    assert encoded  # the side thread did hand both aggregates' rows to their writers
    assert writes.count("started") >= 2 and writes.count("started") == writes.count("finished")
    job_files = [
        path
        for table in (TOTALS, PREFIX_TOTALS, REVISIONS)
        for path in world.ledger.path(table).rglob("j*.parquet")
        if path.name.startswith(unit_prefix("j", _newest_job(world)))
    ]
    assert job_files == []
    assert not list((world.home / "jobs" / str(_newest_job(world))).glob("diff.arrow*"))  # none points to it
    after = (_exported(world, tmp_path), ledger_and_totals(world), ledger_and_prefix_totals(world))
    assert after == before
    monkeypatch.undo()
    assert rollback(world, collection_id, allow_closed=True).changed == len(ROWS)
    assert cache.sync(world, check=True).differences == []


def _newest_job(app: App) -> int:
    with app.catalog.reading() as session:
        newest = session.scalars(select(Job.id).order_by(Job.id.desc())).first()
    assert newest is not None
    return newest
