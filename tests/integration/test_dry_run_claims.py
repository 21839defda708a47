"""A dry run is applied once: by applies at the same instant, and when an apply is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.services.audit_log import entries
from rerate.services.corrections import CorrectionReport, RerateRequest, rerate
from rerate.services.dry_runs import APPLYING, apply_once, blocking_claim, claimed, record_applied
from rerate.services.errors import ConflictError
from rerate.services.faults import CRASH_EXIT_CODE
from rerate.services.ingest import ingest
from rerate.services.jobs import job
from rerate.services.locks import ledger_lock
from rerate.services.schedule import apply_planned, queue, rebuild_for_apply, run_due
from rerate.services.scopes import resolve_scope
from tests.factories import ledger_and_totals, write_xdrs

ROWS = [
    (f"a{i}", f"2026-10-{1 + i % 20:02d}T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1")
    for i in range(40)
]


def _onto_cost(world: App, tmp_path: Path) -> CorrectionReport:
    """The XDRs loaded, and a preview of Acme's re-rating onto the cost tariff."""
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    return rerate(world, RerateRequest(scope=scope, tariff="cost", dry_run=True))


def _revenue(world: App) -> object:
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
    return sum(row[5] for row in ledger)


def _change(planned: CorrectionReport) -> object:
    """The revenue the dry run says its apply changes, in every currency (not nothing)."""
    change = sum(by_measure["amount"] for by_measure in planned.delta.values())
    assert change and planned.changed
    return change


def _killed_apply(world: App, job_id: int, checkpoint: str) -> None:
    """``rerate jobs apply`` of the dry run, killed at ``checkpoint`` as ``kill -9`` would."""
    crashed = subprocess.run(
        [
            *(sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(world.home)),
            *("jobs", "apply", str(job_id), "--yes"),
        ],
        env={**os.environ, "RERATE_CRASH_AT": checkpoint},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr


def _applied_as(world: App, job_id: int) -> object:
    return dict(job(world, job_id).parameters).get("applied_as")


def _claims_at_once(world: App, job_id: int) -> list[str]:
    """Two applies of one dry run at the same instant: what each was answered.  The one that
    claims it holds its claim until both have their answer."""
    start, answered = threading.Barrier(2), threading.Barrier(2)
    outcomes: list[str] = []

    def claim() -> None:
        start.wait()
        try:
            with claimed(world, job_id):
                outcomes.append("claimed")
                answered.wait()
        except ConflictError as exc:
            outcomes.append(str(exc))
            answered.wait()

    both = [threading.Thread(target=claim) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    return sorted(outcomes)


def test_a_dry_run_is_claimed_once_by_applies_at_the_same_instant(world: App, tmp_path: Path) -> None:
    planned = _onto_cost(world, tmp_path)
    for _ in range(5):
        first, second = _claims_at_once(world, planned.job_id)
        assert first == "claimed" and "is being applied right now" in second
        assert _applied_as(world, planned.job_id) == APPLYING
        # The claimer let go without an outcome, as a killed apply does: the next claim takes over.
        with claimed(world, planned.job_id):
            record_applied(world, planned.job_id, None)  # an apply that failed frees it again
        assert _applied_as(world, planned.job_id) is None


def test_an_apply_killed_before_it_created_its_job_leaves_the_dry_run_to_apply(
    world: App, tmp_path: Path
) -> None:
    planned = _onto_cost(world, tmp_path)
    before = _revenue(world)
    _killed_apply(world, planned.job_id, "apply.claimed")
    assert _applied_as(world, planned.job_id) == APPLYING
    assert _revenue(world) == before  # nothing was applied

    applied = apply_planned(world, planned.job_id)
    assert (applied.state, applied.changed) == ("applied", planned.changed)
    assert _revenue(world) == before + _change(planned)
    assert _applied_as(world, planned.job_id) == applied.job_id
    (recovered,) = [e for e in entries(world) if e["action"] == "job.claim_recovered"]
    assert recovered["subject"] == f"job {planned.job_id}" and "pid" in recovered["before"]["claimed_by"]
    with pytest.raises(ConflictError, match=rf"applied already \(as job {applied.job_id}\)"):
        apply_planned(world, planned.job_id)


def test_an_apply_killed_after_it_created_its_job_is_found_by_that_job(world: App, tmp_path: Path) -> None:
    planned = _onto_cost(world, tmp_path)
    before = _revenue(world)
    _killed_apply(world, planned.job_id, "rerate.batch_written")
    dead = _applied_as(world, planned.job_id)
    assert isinstance(dead, int) and job(world, dead).state == "running"
    assert dict(job(world, dead).parameters)["applies_dry_run"] == planned.job_id

    with ledger_lock(world.home, "a compaction"), pytest.raises(ConflictError, match="which is running"):
        apply_planned(world, planned.job_id)  # the ledger is held: the job may still run
    applied = apply_planned(world, planned.job_id)  # nothing holds it: the dead job is cleaned up
    assert job(world, dead).state == "failed"
    assert (applied.state, applied.changed) == ("applied", planned.changed)
    assert _revenue(world) == before + _change(planned)  # applied once


def test_a_claim_being_applied_is_refused_while_its_apply_runs(world: App, tmp_path: Path) -> None:
    planned = _onto_cost(world, tmp_path)
    with claimed(world, planned.job_id):
        with pytest.raises(ConflictError, match="is being applied right now"):
            apply_planned(world, planned.job_id)
        record_applied(world, planned.job_id, None)
    assert apply_planned(world, planned.job_id).state == "applied"


def test_a_claim_that_names_no_claimer_stays_refused(world: App, tmp_path: Path) -> None:
    """Such a claim may have applied the dry run without noting it: applying it again could
    apply the correction twice."""
    planned = _onto_cost(world, tmp_path)
    with world.catalog.transaction() as session:
        stored = session.get(Job, planned.job_id)
        assert stored is not None
        stored.parameters = {**dict(stored.parameters), "applied_as": APPLYING}
    with pytest.raises(ConflictError, match="applied already"):
        apply_planned(world, planned.job_id)


def _queued_apply(world: App, planned: CorrectionReport) -> int:
    """The dry run applied as the API applies it: queued for the job runner."""
    return apply_once(
        world, planned.job_id, lambda claimed: queue(world, rebuild_for_apply(world, claimed)), lambda q: q
    )


def test_an_apply_that_fails_after_queueing_its_job_keeps_the_dry_run_applied(
    world: App, tmp_path: Path
) -> None:
    planned = _onto_cost(world, tmp_path)
    before = _revenue(world)

    def queue_then_fail(claimed: Job) -> int:
        queue(world, rebuild_for_apply(world, claimed))
        raise OSError("the connection to the browser was lost")

    with pytest.raises(OSError, match="connection"):
        apply_once(world, planned.job_id, queue_then_fail, lambda queued: queued)
    queued = _applied_as(world, planned.job_id)
    assert isinstance(queued, int) and job(world, queued).state == "scheduled"
    with pytest.raises(ConflictError, match=rf"applied already \(as job {queued}\)"):
        apply_planned(world, planned.job_id)
    assert blocking_claim(world, planned.job_id, dict(job(world, planned.job_id).parameters)) == queued
    run_due(world)
    assert _revenue(world) == before + _change(planned)  # applied once


def test_a_queued_apply_that_runs_as_a_new_job_names_that_job_on_the_dry_run(
    world: App, tmp_path: Path
) -> None:
    planned = _onto_cost(world, tmp_path)
    queued = _queued_apply(world, planned)
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(world, RerateRequest(scope=scope, tariff="retail"))  # applied before the queued job runs
    (report,) = run_due(world)
    assert not isinstance(report, str) and job(world, queued).state == "superseded"
    assert _applied_as(world, planned.job_id) == report.job_id != queued
    assert dict(job(world, report.job_id).parameters)["applies_dry_run"] == planned.job_id
    with world.catalog.transaction() as session:  # as a crash recovery leaves it
        stored = session.get(Job, report.job_id)
        assert stored is not None
        stored.state = "failed"
    assert blocking_claim(world, planned.job_id, dict(job(world, planned.job_id).parameters)) is None


def test_the_dry_runs_page_offers_an_apply_once_its_claimer_died(world: App, tmp_path: Path) -> None:
    planned = _onto_cost(world, tmp_path)

    def blocking() -> object:
        return blocking_claim(world, planned.job_id, dict(job(world, planned.job_id).parameters))

    assert blocking() is None
    with claimed(world, planned.job_id):
        assert blocking() == APPLYING  # its claimer lives
    assert blocking() is None  # let go without an outcome, as a killed apply does
    applied = apply_planned(world, planned.job_id)
    assert blocking() == applied.job_id


def test_a_queued_apply_that_ran_before_its_outcome_was_noted_keeps_the_job_it_ran_as(
    world: App, tmp_path: Path
) -> None:
    """The service's job runner may run the queued job before the request notes its outcome."""
    planned = _onto_cost(world, tmp_path)
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    ran_as: list[int] = []

    def queue_and_run(claimed: Job) -> int:
        queued = queue(world, rebuild_for_apply(world, claimed))
        rerate(world, RerateRequest(scope=scope, tariff="retail"))  # applied first: a new job runs it
        (report,) = run_due(world)
        assert not isinstance(report, str)
        ran_as.append(report.job_id)
        return queued

    queued = apply_once(world, planned.job_id, queue_and_run, lambda q: q)
    assert job(world, queued).state == "superseded"
    assert _applied_as(world, planned.job_id) == ran_as[0] != queued


def test_a_dry_run_whose_xdrs_another_job_changed_since_is_not_applied(world: App, tmp_path: Path) -> None:
    """The apply prices the XDRs as they are: after another job changed them, that is not what
    was previewed.  A job applied and reverted since leaves them as they were."""
    from rerate.services.jobs import revert

    planned = _onto_cost(world, tmp_path)
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    both_since = rerate(world, RerateRequest(scope=acme, ghost_percent=Decimal(50)))
    assert both_since.changed
    revert(world, both_since.job_id)  # applied and reverted since the preview: nothing it saw moved
    ghost = rerate(world, RerateRequest(scope=acme, ghost_percent=Decimal(50)))
    with pytest.raises(
        ConflictError, match=rf"job\(s\) {ghost.job_id} changed XDRs of dry run {planned.job_id}"
    ):
        apply_planned(world, planned.job_id)
    assert job(world, planned.job_id).state == "planned"  # refused: it may still be previewed again

    earlier = rerate(world, RerateRequest(scope=acme, tariff="cost", dry_run=True))  # after the ghost job
    undo = revert(world, ghost.job_id)
    with pytest.raises(
        ConflictError, match=rf"job\(s\) {undo.job_id} changed XDRs of dry run {earlier.job_id}"
    ):
        apply_planned(world, earlier.job_id)  # the revert moved them back: also not what was seen
    fresh = rerate(world, RerateRequest(scope=acme, tariff="cost", dry_run=True))
    assert apply_planned(world, fresh.job_id).changed == fresh.changed


def test_a_dry_run_is_applied_when_what_changed_since_is_not_what_it_prices(
    world: App, tmp_path: Path
) -> None:
    """A vendor-side job since a customer-side preview leaves that preview true.  A preview that
    changed nothing has no XDR to check (its diff holds none): it is applied, not a crash."""
    from rerate.domain.rating import Side

    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    nothing = rerate(world, RerateRequest(scope=acme, dry_run=True))  # today's prices: no change
    customer = rerate(world, RerateRequest(scope=acme, tariff="cost", sides=(Side.CUSTOMER,), dry_run=True))
    vendor = rerate(world, RerateRequest(scope=acme, ghost_percent=Decimal(50), sides=(Side.VENDOR,)))
    assert nothing.changed == 0 and customer.changed and vendor.changed
    assert apply_planned(world, customer.job_id).changed == customer.changed  # on the vendor side too
    assert apply_planned(world, nothing.job_id).state == "applied"
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
