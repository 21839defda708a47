"""Scheduled corrections run when due, exactly like applied ones, and can be cancelled."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from rerate.bootstrap import App
from rerate.services.audit_log import entries
from rerate.services.corrections import Correction, RerateRequest, rerate, rerate_correction
from rerate.services.errors import ConflictError
from rerate.services.ingest import ingest
from rerate.services.jobs import job, revert
from rerate.services.rollback import rollback_correction
from rerate.services.schedule import cancel, run_due, schedule
from rerate.services.scopes import resolve_scope
from tests.factories import ledger_and_totals, write_xdrs

ROWS = [("a1", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _acme_onto_cost(world: App, tmp_path: Path) -> Correction:
    """The XDRs loaded, and Acme's re-rating onto the cost tariff, ready to schedule."""
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    return rerate_correction(world, RerateRequest(scope=scope, tariff="cost"))


def test_scheduled_rerate_runs_when_due(world: App, tmp_path: Path) -> None:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"], start=datetime(2026, 10, 1, tzinfo=UTC))
    job_id = schedule(world, rerate_correction(world, RerateRequest(scope=scope, tariff="cost")), AT)
    assert job(world, job_id).state == "scheduled"
    assert run_due(world, now=datetime(2026, 11, 30, tzinfo=UTC)) == []
    (report,) = run_due(world, now=AT)
    assert not isinstance(report, str)
    assert (report.job_id, report.state, report.changed) == (job_id, "applied", 1)
    assert job(world, job_id).state == "applied"
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
    assert run_due(world, now=AT) == []  # ran once


def test_cancel_only_scheduled_jobs(world: App, tmp_path: Path) -> None:
    (loaded,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    job_id = schedule(world, rollback_correction(world, int(loaded.collection_id or 0)), AT)
    cancel(world, job_id)
    assert job(world, job_id).state == "cancelled"
    assert run_due(world, now=AT) == []
    with pytest.raises(ConflictError, match="only a scheduled job"):
        cancel(world, job_id)


def test_cancel_loses_to_a_runner_that_claimed_the_job_meanwhile(world: App, tmp_path: Path) -> None:
    """A runner claims the job between cancel's check and its write: the cancel is refused, never
    reported (and audited) while the job runs."""
    (loaded,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    job_id = schedule(world, rollback_correction(world, int(loaded.collection_id or 0)), AT)
    claimed: list[bool] = []

    def runner_claims_first(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if (
            statement.lstrip().upper().startswith("UPDATE JOBS")
            and "cancelled" in str(parameters)
            and not claimed
        ):
            claimed.append(True)
            cursor.execute("UPDATE jobs SET state = 'running' WHERE id = :id", {"id": job_id})  # SQLite

    event.listen(world.catalog.engine, "before_cursor_execute", runner_claims_first)
    try:
        with pytest.raises(ConflictError, match="started meanwhile"):
            cancel(world, job_id)
    finally:
        event.remove(world.catalog.engine, "before_cursor_execute", runner_claims_first)
    assert claimed
    assert not [e for e in entries(world) if e["action"] == "job.cancel"]


def test_a_cancelled_job_is_not_run_and_a_busy_ledger_only_delays_one(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functools import partial

    from rerate.services import corrections
    from rerate.services.locks import ledger_lock
    from rerate.services.schedule import queue

    correction = _acme_onto_cost(world, tmp_path)
    cancelled = queue(world, correction)
    cancel(world, cancelled)
    waiting = queue(world, correction)
    monkeypatch.setattr(corrections, "ledger_lock", partial(ledger_lock, wait_seconds=0.2))
    with ledger_lock(world.home, "someone at the CLI"):
        (outcome,) = run_due(world)
    assert isinstance(outcome, str) and "someone at the CLI" in outcome
    assert job(world, waiting).state == "scheduled" and job(world, waiting).error is None  # retried later
    (report,) = run_due(world)
    assert not isinstance(report, str) and report.job_id == waiting and job(world, waiting).state == "applied"
    assert job(world, cancelled).state == "cancelled" and job(world, cancelled).error is None
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals


def test_a_scheduled_job_overtaken_by_a_later_one_runs_as_a_new_job(world: App, tmp_path: Path) -> None:
    """The CLI applies a job while a scheduled one waits: the scheduled one must still come out on top."""
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    dearer = rerate_correction(world, RerateRequest(scope=scope, tariff="retail", ghost_percent=Decimal(50)))
    waiting = schedule(world, dearer, AT)
    overtaking = rerate(world, RerateRequest(scope=scope, tariff="cost"))
    assert overtaking.job_id > waiting
    watched: list[int] = []

    class Watcher:  # the service's progress: one per job, writing to that job's row
        def __init__(self, job_id: int) -> None:
            self.job_id = job_id

        def started(self, description: str, days: int) -> None:
            watched.append(self.job_id)

        def advanced(self, day: str, xdrs: int) -> None:
            pass

    (report,) = run_due(world, now=AT, progress=Watcher)
    assert not isinstance(report, str) and report.changed == 1
    assert report.job_id > overtaking.job_id
    assert watched == [report.job_id]  # progress shows on the job that runs
    assert job(world, waiting).state == "superseded"
    assert job(world, waiting).parameters["ran_as_job"] == report.job_id
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals  # the ledger shows the job applied last, and so do the totals
    with pytest.raises(ConflictError, match=f"job {report.job_id} changed the same XDRs later"):
        revert(world, overtaking.job_id)
    revert(world, report.job_id)
    assert ledger_and_totals(world)[0] == ledger_and_totals(world)[1]


def test_a_scheduled_job_that_fails_is_recorded_and_audited(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rerate.services import schedule as schedule_module

    job_id = schedule(world, _acme_onto_cost(world, tmp_path), AT)

    def tariff_gone(*args: object) -> object:
        raise RuntimeError("no tariff named 'cost'")

    monkeypatch.setattr(schedule_module, "_rebuild", tariff_gone)
    (outcome,) = run_due(world, now=AT)
    assert outcome == f"job {job_id} failed: RuntimeError: no tariff named 'cost'"
    assert (job(world, job_id).state, job(world, job_id).error) == (
        "failed",
        "RuntimeError: no tariff named 'cost'",
    )
    failure = next(e for e in entries(world) if e["subject"] == f"job {job_id}")
    assert (failure["action"], failure["after"]) == (
        "job.failed",
        {"error": "RuntimeError: no tariff named 'cost'"},
    )


def test_a_queued_ingest_waits_for_a_busy_ledger_and_a_dead_one_is_failed(world: App, tmp_path: Path) -> None:
    """Claimed under the ledger lock: a busy ledger leaves it scheduled; one left "ingesting" by a
    dead process is failed by the next writer, not left for ever."""
    import subprocess
    import sys

    from rerate.catalog.models import Job
    from rerate.services.ingest_jobs import queue_ingest

    rows = [("q1", "2026-10-20T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1")]
    job_id = queue_ingest(world, write_xdrs(tmp_path / "q.csv", rows))
    holder = subprocess.Popen(  # another process holds the ledger (a compaction, say)
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from rerate.services.locks import ledger_lock\n"
            f"with ledger_lock(Path({str(world.home)!r}), 'compaction by ops'):\n"
            "    print('locked', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        (waiting,) = run_due(world)
        assert "waits" in str(waiting) and job(world, job_id).state == "scheduled"
    finally:
        holder.communicate("\n", timeout=30)
    assert run_due(world) == [f"job {job_id}: ingest q.csv: done"]

    dead = queue_ingest(world, write_xdrs(tmp_path / "r.csv", rows))
    with world.catalog.transaction() as session:  # as a process killed in the middle leaves it
        stored = session.get(Job, dead)
        assert stored is not None
        stored.state = "ingesting"
    ingest(world, [write_xdrs(tmp_path / "s.csv", [("s1", *rows[0][1:])])])  # the next writer
    assert job(world, dead).state == "failed"
