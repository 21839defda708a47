"""Compaction merges a collection's files of a day into one customer-sorted file and changes no XDR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import delete, select

from rerate.bootstrap import App
from rerate.catalog.models import BillingPeriod
from rerate.ledger.reader import open_views
from rerate.ledger.tables import XDRS
from rerate.services import compaction, faults, parties
from rerate.services.compaction import compact
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.faults import CRASH_EXIT_CODE
from rerate.services.ingest import ingest
from rerate.services.periods import close_period
from rerate.services.scopes import resolve_scope
from rerate.services.vacuum import vacuum
from rerate.services.visibility import current_visibility
from tests.factories import ledger_and_totals, small_world, write_xdrs

ACCOUNTS = ("acc1", "acc3", "acc2", "nobody")  # Acme, Beta, Acme, unknown (no customer)


def _rows(count: int, tag: str) -> list[tuple[str, ...]]:
    return [
        (
            f"{tag}{i}",
            f"2026-10-{1 + i % 5:02d}T{(i * 7) % 24:02d}:{i % 60:02d}:00Z",
            str(30 + i % 300),
            "1",
            "4420794600" if i % 3 else "4470000000",
            ACCOUNTS[i % len(ACCOUNTS)],
            "gw1",
        )
        for i in range(count)
    ]


@pytest.fixture
def fragmented(tmp_path: Path) -> App:
    """Two collections; the first read in 1 MB chunks, so each of its days has several files."""
    app = small_world(tmp_path / "home")
    parties.add_customer(app, "Beta", tariff="retail")
    parties.add_account(app, "acc3", customer="Beta")
    app.settings.ingest_chunk_mb = 1
    ingest(app, [write_xdrs(tmp_path / "big.csv", _rows(40_000, "b"))])
    ingest(app, [write_xdrs(tmp_path / "small.csv", _rows(500, "s"))])
    return app


def _xdrs(app: App) -> list[tuple[Any, ...]]:
    with app.catalog.reading() as session:
        con = open_views(app.ledger, current_visibility(session))
    return con.execute("SELECT * FROM xdrs ORDER BY xdr_id").fetchall()


def _beta(app: App) -> Any:
    with app.catalog.reading() as session:
        return resolve_scope(session, customers=["Beta"])


def _preview(app: App) -> tuple[int, int, Any]:
    report = rerate(app, RerateRequest(scope=_beta(app), tariff="cost", dry_run=True))
    return report.in_scope, report.changed, report.delta


def _live(app: App) -> dict[str, list[str]]:
    return {day: sorted(files) for day, files in app.ledger.files_by_day(XDRS).items()}


def _encodings(path: str) -> dict[str, set[str]]:
    """Each column's Parquet encodings, over every row group."""
    meta = pq.ParquetFile(path).metadata
    found: dict[str, set[str]] = {}
    for group in range(meta.num_row_groups):
        for position in range(meta.num_columns):
            column = meta.row_group(group).column(position)
            found.setdefault(column.path_in_schema, set()).update(column.encodings)
    return found


def test_compaction_merges_and_sorts_files_without_changing_any_xdr(
    fragmented: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fragmented
    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 3_000)  # 8,000 XDRs a day: three row groups
    before = (_xdrs(app), ledger_and_totals(app), _preview(app))
    version = app.ledger.version(XDRS)
    old_files = _live(app)
    assert all(len(files) > 2 for files in old_files.values())  # the fixture made fragments

    report = compact(app)

    assert (report.days, report.xdrs) == (5, 40_000)  # the second collection has one file a day
    fragments = [f for files in old_files.values() for f in files if Path(f).name.startswith("c00000001-")]
    assert (report.files_before, report.files_after) == (len(fragments), 5)  # the first collection's
    live = _live(app)
    for files in live.values():
        assert sorted(Path(f).name[:10] for f in files) == ["c00000001-", "c00000002-"]
        for path in files:
            table = pq.read_table(path, columns=["customer_id", "connect_time"]).to_pylist()
            keys = [(r["customer_id"] is not None, r["customer_id"] or 0, r["connect_time"]) for r in table]
            assert keys == sorted(keys)  # customer (unknown first), then connect time
            assert pq.read_schema(path).names == pq.read_schema(old_files["2026-10-01"][0]).names
            # Encoded as ingest encodes XDR files (delta-encoded ids and times, dictionaries).
            assert _encodings(path) == _encodings(old_files["2026-10-01"][0])
            if Path(path).name.startswith("c00000001-"):
                meta = pq.ParquetFile(path).metadata
                groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
                assert groups == [3_000, 3_000, 2_000]
    assert (_xdrs(app), ledger_and_totals(app), _preview(app)) == before
    # Time travel: the version before still lists the old files, and they are still there.
    assert sorted(app.ledger.files(XDRS, version=version)) == sorted(f for v in old_files.values() for f in v)
    assert all(Path(f).exists() for files in old_files.values() for f in files)

    again = compact(app)
    assert (again.days, again.files_before, again.files_after) == (0, 0, 0)
    applied = rerate(app, RerateRequest(scope=_beta(app), tariff="cost"))
    assert applied.changed == before[2][1]
    ledger, totals = ledger_and_totals(app)
    assert ledger == totals


def test_a_failed_compaction_leaves_no_file_behind(fragmented: App, monkeypatch: pytest.MonkeyPatch) -> None:
    app = fragmented
    on_disk = set(app.ledger.path(XDRS).rglob("*.parquet"))
    live, rows = _live(app), _xdrs(app)

    def fail(name: str) -> None:
        if name == "compact.file_written":
            raise OSError("disk full")

    monkeypatch.setattr(faults, "checkpoint", fail)
    with pytest.raises(OSError, match="disk full"):
        compact(app)
    assert set(app.ledger.path(XDRS).rglob("*.parquet")) == on_disk
    assert (_live(app), _xdrs(app)) == (live, rows)


def test_a_killed_compaction_changes_nothing_and_can_run_again(fragmented: App) -> None:
    app = fragmented
    live, rows = _live(app), _xdrs(app)
    crashed = subprocess.run(
        [sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(app.home), "ledger", "compact"],
        env={**os.environ, "RERATE_CRASH_AT": "compact.file_written"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert (_live(app), _xdrs(app)) == (live, rows)  # the file it wrote was never published

    done = subprocess.run(
        [sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(app.home), "ledger", "compact"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "5 day(s) compacted" in done.stdout
    assert _xdrs(app) == rows
    # The file the killed run wrote was never listed by any version: vacuum deletes it.
    vacuum(app, retention_hours=0)
    on_disk = {
        p.relative_to(app.ledger.path(XDRS)).as_posix() for p in app.ledger.path(XDRS).rglob("*.parquet")
    }
    assert on_disk == {p.split("/xdrs/", 1)[-1] for p in app.ledger.files(XDRS)}
    assert _xdrs(app) == rows


def test_vacuum_deletes_the_replaced_files_and_keeps_a_closed_period_reproducible(fragmented: App) -> None:
    app = fragmented
    close_period(app, "Acme", "2026-10")
    with app.catalog.reading() as session:
        closed_version = session.scalars(select(BillingPeriod.xdr_version)).one()
    compact(app)
    compacted_version = app.ledger.version(XDRS)
    before = (_xdrs(app), ledger_and_totals(app))
    replaced = [f for f in app.ledger.files(XDRS, version=closed_version) if f not in app.ledger.files(XDRS)]
    assert replaced

    assert sum(vacuum(app).files.values()) == 0  # removed minutes ago: inside the default week
    listed = vacuum(app, retention_hours=0, dry_run=True)
    assert listed.dry_run and listed.files[XDRS] == 0 and listed.bytes == 0  # the closed version keeps them

    reopened_versions = app.ledger.files(XDRS, version=compacted_version)
    with app.catalog.transaction() as session:  # as if the period had never been closed
        session.execute(delete(BillingPeriod))
    listed = vacuum(app, retention_hours=0, dry_run=True)
    assert listed.files[XDRS] == len(replaced) and listed.bytes > 0
    assert all(Path(f).exists() for f in replaced)
    done = vacuum(app, retention_hours=0)
    assert done.files[XDRS] == len(replaced) and not done.dry_run
    assert not any(Path(f).exists() for f in replaced)
    assert all(Path(f).exists() for f in reopened_versions)
    assert (_xdrs(app), ledger_and_totals(app)) == before
    assert sum(vacuum(app, retention_hours=0).files.values()) == 0
