"""Re-rating: dry run, apply, idempotence, revert, and crash atomicity."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.domain.rating import Side
from rerate.ledger.tables import REVISIONS, TOTALS
from rerate.services import corrections, parties
from rerate.services.audit_log import entries
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.diff_file import diff_csv
from rerate.services.errors import ConflictError, InvalidInputError
from rerate.services.export import export_xdrs
from rerate.services.faults import CRASH_EXIT_CODE
from rerate.services.ingest import ingest
from rerate.services.jobs import job, prune_diffs, revert
from rerate.services.scopes import resolve_scope
from tests.factories import ledger_and_totals, small_world, write_xdrs

ROWS = [
    ("a1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("a2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ("a3", "2026-10-20T12:00:00Z", "30", "1", "447900123456", "acc2", "gw1"),  # forbidden in retail
    ("a4", "2026-10-21T12:00:00Z", "30", "1", "4420794600", "stranger", "gw1"),  # unknown account
]


@pytest.fixture
def loaded(world: App, tmp_path: Path) -> App:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    return world


def _export(app: App, tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        return {r["source_id"]: r for r in csv.DictReader(handle)}


def _request(app: App, **kwargs: object) -> RerateRequest:
    with app.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    return RerateRequest(scope=scope, **kwargs)  # type: ignore[arg-type]


def test_dry_run_reports_the_diff_and_writes_nothing(loaded: App, tmp_path: Path) -> None:
    before = _export(loaded, tmp_path)
    versions = (loaded.ledger.version(REVISIONS), loaded.ledger.version(TOTALS))
    report = rerate(loaded, _request(loaded, tariff="cost", dry_run=True))
    assert (report.state, report.in_scope, report.changed, report.cured) == ("planned", 3, 3, 1)
    assert report.before["EUR"]["amount"] == Decimal("0.0245") + Decimal("0.02")
    assert report.delta["EUR"]["amount"] == report.after["EUR"]["amount"] - report.before["EUR"]["amount"]
    with diff_csv(Path(str(report.diff_path))).open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["source_id"] for r in rows) == ["a1", "a2", "a3"]
    assert all(r["old_tariff_id"] != r["new_tariff_id"] for r in rows)
    assert (loaded.ledger.version(REVISIONS), loaded.ledger.version(TOTALS)) == versions
    assert _export(loaded, tmp_path) == before


def test_apply_changes_only_what_differs_and_twice_changes_nothing(loaded: App, tmp_path: Path) -> None:
    report = rerate(loaded, _request(loaded, tariff="cost"))
    assert (report.state, report.changed) == ("applied", 3)
    rows = _export(loaded, tmp_path)
    assert (rows["a3"]["status"], rows["a3"]["tariff"]) == ("rated", "cost")  # cured by the new prices
    assert Decimal(rows["a2"]["amount"]) == Decimal("0.00407")
    assert rows["a4"]["status"] == "failed"  # out of scope: untouched
    ledger, totals = ledger_and_totals(loaded)
    assert ledger == totals  # the aggregates moved by exactly the delta
    again = rerate(loaded, _request(loaded, tariff="cost"))
    assert again.changed == 0
    assert ledger_and_totals(loaded)[1] == totals


def test_customer_side_only_leaves_the_vendor_side_alone(loaded: App, tmp_path: Path) -> None:
    before = _export(loaded, tmp_path)
    rerate(loaded, _request(loaded, tariff="cost", sides=(Side.CUSTOMER,)))
    after = _export(loaded, tmp_path)
    assert all(after[k]["cost"] == before[k]["cost"] for k in before)
    assert after["a1"]["amount"] != before["a1"]["amount"]


def test_ghost_percent_bills_more_time(loaded: App, tmp_path: Path) -> None:
    rerate(loaded, _request(loaded, ghost_percent=Decimal(10), sides=(Side.CUSTOMER,)))
    rows = _export(loaded, tmp_path)
    assert rows["a2"]["billed"] == "120"  # 61 s * 1.1 = 68 s -> two 60 s intervals
    assert rows["a1"]["billed"] == "54"  # 45 s * 1.1 = 50 s -> 30 + 4 x 6
    with pytest.raises(InvalidInputError):
        rerate(loaded, _request(loaded, ghost_percent=Decimal("-1")))
    # Beyond ten times the call, the ghost usage of a long call would no longer be exact.
    with pytest.raises(InvalidInputError, match="between 0 and 1000"):
        rerate(loaded, _request(loaded, ghost_percent=Decimal("1000000"), dry_run=True))


def test_revert_restores_the_exact_previous_state(loaded: App, tmp_path: Path) -> None:
    before = _export(loaded, tmp_path)
    totals_before = ledger_and_totals(loaded)
    report = rerate(loaded, _request(loaded, tariff="cost"))
    assert _export(loaded, tmp_path) != before
    undo = revert(loaded, report.job_id)
    assert undo.kind == "revert"
    assert undo.delta and all(  # what the revert moved: the job's delta, negated
        undo.delta[c][k] == -report.delta[c][k] for c in report.delta for k in report.delta[c]
    )
    assert _export(loaded, tmp_path) == before
    assert ledger_and_totals(loaded) == totals_before
    with pytest.raises(ConflictError, match="only an applied correction"):
        revert(loaded, report.job_id)


def test_revert_is_refused_when_a_later_job_changed_the_same_xdrs(loaded: App) -> None:
    first = rerate(loaded, _request(loaded, tariff="cost"))
    second = rerate(loaded, _request(loaded, tariff="retail"))
    assert second.changed == 3
    with pytest.raises(ConflictError, match=f"job {second.job_id} changed the same XDRs"):
        revert(loaded, first.job_id)
    revert(loaded, second.job_id)
    revert(loaded, first.job_id)


@pytest.mark.parametrize(
    "checkpoint", ["rerate.batch_written", "rerate.totals_committed", "rerate.revisions_committed"]
)
def test_killed_rerate_leaves_the_ledger_as_it_was(tmp_path: Path, checkpoint: str) -> None:
    home = tmp_path / "home"
    app = small_world(home)
    ingest(app, [write_xdrs(tmp_path / "x.csv", ROWS)])
    before = (_export(app, tmp_path), ledger_and_totals(app))
    crashed = subprocess.run(
        [
            sys.executable,
            "-m",
            "rerate.entrypoints.cli",
            "--home",
            str(home),
            "rerate",
            "--customer",
            "Acme",
            "--tariff",
            "cost",
            "--yes",
        ],
        env={**os.environ, "RERATE_CRASH_AT": checkpoint},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stdout + crashed.stderr
    assert (_export(app, tmp_path), ledger_and_totals(app)) == before
    retry = rerate(app, _request(app, tariff="cost"))  # cleans up the crashed job first
    assert retry.changed == 3
    with app.catalog.reading() as session:
        states = [j.state for j in session.scalars(select(Job).order_by(Job.id))]
    assert states == ["failed", "applied"]
    assert not any("j00000001-" in f for f in app.ledger.files(REVISIONS) + app.ledger.files(TOTALS))
    app.close()


@pytest.mark.parametrize(("stage", "function"), [("accounting", "diff_rows"), ("re-pricing", "_reprice")])
def test_a_job_failing_midway_publishes_nothing_and_leaves_no_diff(
    loaded: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, function: str
) -> None:
    """A failure in either stage, with the other stage busy, surfaces and leaves the ledger as it was."""
    before = _export(loaded, tmp_path)
    versions = (loaded.ledger.version(REVISIONS), loaded.ledger.version(TOTALS))
    original = getattr(corrections, function)
    calls: list[int] = []

    def failing_second_time(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # the rows span three call dates: one batch each
            raise RuntimeError(f"{stage} failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(corrections, function, failing_second_time)
    with pytest.raises(RuntimeError, match=f"{stage} failed"):
        rerate(loaded, _request(loaded, tariff="cost"))
    assert (loaded.ledger.version(REVISIONS), loaded.ledger.version(TOTALS)) == versions
    assert _export(loaded, tmp_path) == before
    with loaded.catalog.reading() as session:
        job = session.scalars(select(Job).order_by(Job.id.desc())).first()
        assert job is not None
        assert job.state != "applied"
        assert f"{stage} failed" in (job.error or "")
    assert not list((loaded.home / "jobs" / str(job.id)).glob("diff.arrow*"))


def test_a_failing_dry_run_ends_failed_not_planning(loaded: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A preview that fails (a full disk under its diff, say) must not show as planning for ever."""
    original = corrections.diff_rows

    def disk_full(*args: object, **kwargs: object) -> object:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(corrections, "diff_rows", disk_full)
    with pytest.raises(OSError, match="No space left"):
        rerate(loaded, _request(loaded, tariff="cost", dry_run=True))
    monkeypatch.setattr(corrections, "diff_rows", original)
    with loaded.catalog.reading() as session:
        preview = session.scalars(select(Job).order_by(Job.id.desc())).one()
        assert (preview.state, preview.finished_at is not None) == ("failed", True)
        assert "No space left on device" in (preview.error or "")
    assert next(e["action"] for e in entries(loaded) if e["subject"] == f"job {preview.id}") == "job.failed"


def test_old_diffs_are_pruned_and_their_jobs_stay(loaded: App) -> None:
    """Previews' diffs go after the retention; applied jobs' only when asked; nothing else changes."""
    preview = rerate(loaded, _request(loaded, tariff="cost", dry_run=True))
    applied = rerate(loaded, _request(loaded, tariff="cost"))
    recent = rerate(loaded, _request(loaded, ghost_percent=Decimal(10), dry_run=True))
    assert preview.diff_path and applied.diff_path and recent.diff_path
    with loaded.catalog.transaction() as session:
        for job_id in (preview.job_id, applied.job_id):
            aged = session.get(Job, job_id)
            assert aged is not None and aged.finished_at is not None
            aged.finished_at -= timedelta(days=40)
    diff_csv(Path(preview.diff_path))  # the CSV made on request goes with it
    month = timedelta(days=30)

    listed = prune_diffs(loaded, older_than=month, dry_run=True)
    assert (listed.jobs, listed.files) == ([preview.job_id], 2) and listed.bytes > 0
    assert Path(preview.diff_path).is_file()
    pruned = prune_diffs(loaded, older_than=month)
    assert (pruned.jobs, pruned.files, pruned.bytes) == (listed.jobs, listed.files, listed.bytes)
    assert not Path(preview.diff_path).exists() and not Path(preview.diff_path).with_suffix(".csv").exists()
    assert Path(applied.diff_path).is_file() and Path(recent.diff_path).is_file()
    assert job(loaded, preview.job_id).state == "planned"  # the job and its report stay
    assert (loaded.home / "jobs" / str(preview.job_id) / "report.json").is_file()
    assert prune_diffs(loaded, older_than=month).jobs == []  # nothing left to prune

    assert prune_diffs(loaded, older_than=month, include_applied=True).jobs == [applied.job_id]
    assert Path(recent.diff_path).is_file()
    assert [e["after"]["jobs"] for e in entries(loaded) if e["action"] == "jobs.prune_diffs"] == [
        [applied.job_id],
        [preview.job_id],
    ]
    for wrong in (timedelta(days=-1), timedelta(days=10**6)):
        with pytest.raises(InvalidInputError):
            prune_diffs(loaded, older_than=wrong)


def test_a_scope_naming_nothing_that_exists_is_refused(loaded: App) -> None:
    from datetime import UTC, datetime

    from rerate.services.errors import NotFoundError

    with loaded.catalog.reading() as session:
        with pytest.raises(NotFoundError, match="no destination group 'Nowhere'"):
            resolve_scope(session, destination_groups=["Nowhere"])
        with pytest.raises(InvalidInputError, match="must be after --from"):
            resolve_scope(
                session,
                customers=["Acme"],
                start=datetime(2026, 11, 1, tzinfo=UTC),
                end=datetime(2026, 10, 1, tzinfo=UTC),
            )


def test_a_vendor_moved_to_another_tariff_is_costed_anew_from_that_date(loaded: App, tmp_path: Path) -> None:
    before = _export(loaded, tmp_path)
    parties.set_vendor_tariff(loaded, "Carrier", "retail", datetime(2026, 10, 15, tzinfo=UTC))
    with loaded.catalog.reading() as session:
        scope = resolve_scope(session, vendors=["Carrier"], start=datetime(2026, 10, 15, tzinfo=UTC))
    report = rerate(loaded, RerateRequest(scope=scope, sides=(Side.VENDOR,)))
    after = _export(loaded, tmp_path)
    assert after["a1"] == before["a1"]  # called before the change
    assert (after["a2"]["vendor_tariff"], after["a2"]["cost"]) == ("retail", after["a2"]["amount"])
    assert after["a2"]["amount"] == before["a2"]["amount"] and report.changed >= 1


def test_many_readers_asking_for_the_same_diff_at_once_all_get_it(loaded: App) -> None:
    preview = rerate(loaded, _request(loaded, tariff="cost", dry_run=True))
    diff = Path(str(preview.diff_path))
    start = threading.Barrier(8)
    made: list[Path | BaseException] = []

    def ask() -> None:
        start.wait()
        try:
            made.append(diff_csv(diff))
        except BaseException as exc:  # collected: a failure of any reader fails the test below
            made.append(exc)

    readers = [threading.Thread(target=ask) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert made == [diff.with_suffix(".csv")] * 8
    assert sorted(p.name for p in diff.parent.iterdir() if "partial" in p.name) == []
    with diff.with_suffix(".csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == preview.changed
