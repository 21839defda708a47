"""Closed billing periods: refusal without --allow-closed, adjustment lines, reproduction as closed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Adjustment, Job
from rerate.domain.rating import Side
from rerate.services import parties
from rerate.services.audit_log import entries
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.errors import ConflictError, InvalidInputError
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.periods import close_period, list_periods, summary_as_closed, summary_now
from rerate.services.reprocess import reprocess
from rerate.services.rollback import collections, rollback
from rerate.services.scopes import resolve_scope
from rerate.services.tariffs import import_rates
from tests.factories import COST, ledger_and_totals, write_rates, write_xdrs

ROWS = [
    ("o1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("o2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ("n1", "2026-11-02T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
]


@pytest.fixture
def closed(world: App, tmp_path: Path) -> App:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    close_period(world, "Acme", "2026-10")
    return world


def _request(app: App, **kwargs: object) -> RerateRequest:
    with app.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    return RerateRequest(scope=scope, tariff="cost", **kwargs)  # type: ignore[arg-type]


def test_closing_validates_and_records_the_totals(closed: App) -> None:
    (period,) = list_periods(closed)
    assert (period["customer"], period["period"]) == ("Acme", "2026-10")
    assert period["summary"]["EUR"]["calls"] == 2
    with pytest.raises(ConflictError, match="closed already"):
        close_period(closed, "Acme", "2026-10")
    with pytest.raises(ConflictError, match="has not ended"):
        close_period(closed, "Acme", "2999-01")
    with pytest.raises(InvalidInputError, match="2026-10"):
        close_period(closed, "Acme", "October")


def test_correction_touching_a_closed_period_is_refused_naming_it(closed: App) -> None:
    before = ledger_and_totals(closed)
    preview = rerate(closed, _request(closed, dry_run=True))
    assert {a["period"] for a in preview.adjustments} == {"2026-10"}  # the dry run shows them
    with pytest.raises(ConflictError, match=r"Acme 2026-10.*--allow-closed"):
        rerate(closed, _request(closed))
    assert ledger_and_totals(closed) == before
    with closed.catalog.reading() as session:
        failed = session.scalars(select(Job).order_by(Job.id.desc())).first()
        assert failed is not None and failed.state == "failed"
        failed_id = failed.id
    # The audit trail says who asked and why it failed, not only that a clean-up ran.
    (failure,) = [e for e in entries(closed) if e["action"] == "job.failed"]
    assert failure["subject"] == f"job {failed_id}" and failure["actor"] == closed.actor
    assert "Acme 2026-10" in failure["after"]["error"]

    # Scheduled, the same refusal is one audit entry too: the runner does not record it again.
    from rerate.services.corrections import rerate_correction
    from rerate.services.schedule import run_due, schedule

    at = datetime.now(UTC)
    scheduled = schedule(closed, rerate_correction(closed, _request(closed)), at)
    (outcome,) = run_due(closed, now=at)
    assert "Acme 2026-10" in outcome
    assert [e["action"] for e in entries(closed) if e["subject"] == f"job {scheduled}"].count(
        "job.failed"
    ) == 1


def test_allow_closed_writes_adjustments_and_keeps_the_closed_totals(closed: App) -> None:
    as_closed = summary_as_closed(closed, "Acme", "2026-10")
    report = rerate(closed, _request(closed, allow_closed=True))
    assert report.changed == 3
    october = [a for a in report.adjustments if a["period"] == "2026-10"]
    assert sum(a["xdrs"] for a in october) == 2
    assert all(a["period"] != "2026-11" for a in report.adjustments)  # open periods need no adjustment
    with closed.catalog.reading() as session:
        stored = session.scalars(select(Adjustment)).all()
    assert sum((a.amount_delta for a in stored), Decimal(0)) == sum(
        (a["amount_delta"] for a in october), Decimal(0)
    )
    assert summary_as_closed(closed, "Acme", "2026-10") == as_closed  # the invoice stays true
    now = summary_now(closed, "Acme", "2026-10")
    assert Decimal(now["EUR"]["amount"]) - Decimal(as_closed["EUR"]["amount"]) == sum(
        (a["amount_delta"] for a in october), Decimal(0)
    )
    revert(closed, report.job_id)
    assert summary_now(closed, "Acme", "2026-10") == as_closed


def _per_currency(rows: list[dict[str, object]]) -> dict[str, dict[str, Decimal]]:
    sums: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        slot = sums.setdefault(str(row["currency"]), {"amount": Decimal(0), "cost": Decimal(0)})
        slot["amount"] += Decimal(str(row["amount_delta"]))
        slot["cost"] += Decimal(str(row["cost_delta"]))
    return {c: v for c, v in sums.items() if v["amount"] or v["cost"]}


@pytest.mark.parametrize("side", [Side.CUSTOMER, Side.VENDOR])
def test_breakdowns_and_adjustments_keep_each_currency_apart(closed: App, tmp_path: Path, side: Side) -> None:
    """Moving one side to a tariff in another currency: every breakdown line is in one currency."""
    import_rates(closed, "usd", write_rates(tmp_path / "usd.csv", COST), currency="USD", allow_past=True)
    with closed.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    report = rerate(closed, RerateRequest(scope=scope, tariff="usd", sides=(side,), allow_closed=True))
    delta = {c: v for c, v in report.delta.items() if v["amount"] or v["cost"]}
    measure = "amount" if side is Side.CUSTOMER else "cost"
    assert delta["USD"][measure] > 0 > delta["EUR"][measure]  # the money moved from EUR to USD
    for breakdown in (report.by_customer, report.by_day, report.by_destination):
        assert _per_currency(breakdown) == delta
    october = [a for a in report.adjustments if a["period"] == "2026-10"]
    assert {a["currency"] for a in october} == {"EUR", "USD"}
    october_days = [row for row in report.by_day if row["day"].startswith("2026-10")]
    assert _per_currency(october) == _per_currency(october_days)
    assert sum(a["xdrs"] for a in october) == 2  # each XDR counted once, under its new currency

    (collection,) = collections(closed)
    rolled = rollback(closed, collection["collection_id"], allow_closed=True)
    undone = {c: v for c, v in rolled.delta.items() if v["amount"] or v["cost"]}
    assert set(undone) == {"EUR", "USD"}
    for breakdown in (rolled.by_customer, rolled.by_day, rolled.by_destination):
        assert _per_currency(breakdown) == undone


def test_moving_xdrs_to_another_customer_touches_the_old_customers_closed_period(closed: App) -> None:
    """A re-mediation moving an account's XDRs away: the old customer loses the money, named."""
    parties.add_customer(closed, "Beta", tariff="retail")
    parties.set_account_customer(closed, "acc1", "Beta", datetime(2026, 2, 1, tzinfo=UTC))
    as_closed = summary_as_closed(closed, "Acme", "2026-10")
    november = Decimal(summary_now(closed, "Acme", "2026-11")["EUR"]["amount"])
    before = ledger_and_totals(closed)
    with closed.catalog.reading() as session:
        scope = resolve_scope(session, accounts=["acc1"])
    with pytest.raises(ConflictError, match=r"Acme 2026-10.*--allow-closed"):
        reprocess(closed, scope, failed_only=False)
    assert ledger_and_totals(closed) == before
    assert summary_now(closed, "Acme", "2026-10") == as_closed

    report = reprocess(closed, scope, failed_only=False, allow_closed=True)
    assert report.changed == 3
    by_customer = {(row["customer"], row["currency"]): row for row in report.by_customer}
    acme, beta = by_customer[("Acme", "EUR")], by_customer[("Beta", "EUR")]
    assert acme["xdrs"] == 0 and beta["xdrs"] == 3  # each XDR counted once, where it is now
    assert acme["amount_delta"] == -Decimal(as_closed["EUR"]["amount"]) - november
    assert beta["amount_delta"] == -acme["amount_delta"]  # same tariff: the money moved, whole
    acme_october = [a for a in report.adjustments if (a["customer"], a["period"]) == ("Acme", "2026-10")]
    assert sum(a["xdrs"] for a in acme_october) == 0
    assert sum((a["amount_delta"] for a in acme_october), Decimal(0)) == -Decimal(as_closed["EUR"]["amount"])
    now = summary_now(closed, "Acme", "2026-10")["EUR"]
    assert (now["calls"], Decimal(now["amount"])) == (0, 0)  # everything moved to Beta
    assert summary_as_closed(closed, "Acme", "2026-10") == as_closed


def test_reverting_into_a_period_closed_since_is_refused_or_adjusted(world: App, tmp_path: Path) -> None:
    """A job applied while October was open, October invoiced, then the job reverted."""
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    job = rerate(world, _request(world))
    close_period(world, "Acme", "2026-10")  # invoiced with the job's prices
    as_closed = summary_as_closed(world, "Acme", "2026-10")
    before = ledger_and_totals(world)
    with pytest.raises(ConflictError, match=r"reverting job \d+ .*Acme 2026-10.*--allow-closed"):
        revert(world, job.job_id)
    assert ledger_and_totals(world) == before
    with world.catalog.reading() as session:
        assert session.get(Job, job.job_id).state == "applied"  # type: ignore[union-attr]

    undone = revert(world, job.job_id, allow_closed=True)
    october = [a for a in undone.adjustments if a["period"] == "2026-10"]
    assert sum(a["xdrs"] for a in october) == 2 and all(a["period"] != "2026-11" for a in undone.adjustments)
    assert summary_as_closed(world, "Acme", "2026-10") == as_closed  # the invoice stays true
    now = summary_now(world, "Acme", "2026-10")
    recorded = Decimal(now["EUR"]["amount"]) - Decimal(as_closed["EUR"]["amount"])
    with world.catalog.reading() as session:
        stored = session.scalars(select(Adjustment).where(Adjustment.job_id == undone.job_id)).all()
    assert recorded != 0
    assert sum((a.amount_delta for a in stored), Decimal(0)) == recorded


def test_reverting_a_job_allowed_into_a_closed_period_needs_no_new_lines(closed: App) -> None:
    report = rerate(closed, _request(closed, allow_closed=True))
    undone = revert(closed, report.job_id)  # its own adjustment lines stop counting with it
    assert undone.adjustments == []


def test_a_periods_costs_are_summed_in_the_vendors_currency(closed: App, tmp_path: Path) -> None:
    import_rates(closed, "usd", write_rates(tmp_path / "usd.csv", COST), currency="USD", allow_past=True)
    as_closed = summary_as_closed(closed, "Acme", "2026-10")
    with closed.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    report = rerate(closed, RerateRequest(scope=scope, tariff="usd", sides=(Side.VENDOR,), allow_closed=True))
    now = summary_now(closed, "Acme", "2026-10")
    assert Decimal(as_closed["EUR"]["cost"]) > 0 and "USD" not in as_closed
    assert Decimal(now["EUR"]["cost"]) == 0 and Decimal(now["USD"]["cost"]) > 0
    assert now["EUR"]["amount"] == as_closed["EUR"]["amount"]  # the customer side did not move
    for currency in ("EUR", "USD"):  # the adjustment lines explain the change, currency by currency
        change = Decimal(now.get(currency, {}).get("cost", 0)) - Decimal(
            as_closed.get(currency, {}).get("cost", 0)
        )
        lines = [a for a in report.adjustments if (a["period"], a["currency"]) == ("2026-10", currency)]
        assert change == sum((a["cost_delta"] for a in lines), Decimal(0))


def test_a_job_without_its_changes_per_period_is_judged_by_its_customers(world: App, tmp_path: Path) -> None:
    """Jobs applied before rerate kept per-period changes: only their customers' periods count."""
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    job = rerate(world, _request(world))
    with world.catalog.transaction() as session:
        stored = session.get(Job, job.job_id)
        assert stored is not None and "periods" in stored.totals
        stored.totals = {k: v for k, v in stored.totals.items() if k != "periods"}
    parties.add_customer(world, "Beta", tariff="retail")
    close_period(world, "Beta", "2026-10")  # not a customer of the job: no reason to refuse
    close_period(world, "Acme", "2026-10")
    with pytest.raises(ConflictError, match=r"before rerate kept .* Acme 2026-10; pass --allow-closed"):
        revert(world, job.job_id)
    assert revert(world, job.job_id, allow_closed=True).adjustments == []


def test_closing_waits_for_the_job_that_holds_the_ledger(world: App, tmp_path: Path) -> None:
    """A period is closed between jobs, never while one runs: a job that read the closed periods
    before the close would otherwise change the period without adjustment lines."""
    import threading
    import time

    from rerate.services.locks import ledger_lock

    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    seen_while_held: list[list[dict[str, object]]] = []
    holding = threading.Event()

    def running_job() -> None:
        with ledger_lock(world.home, "job by alice"):
            holding.set()
            time.sleep(1.0)  # long enough for the close below to have run, had it not waited
            seen_while_held.append(list_periods(world))

    job = threading.Thread(target=running_job)
    job.start()
    holding.wait()
    close_period(world, "Acme", "2026-10")
    job.join()
    assert seen_while_held == [[]]
    assert [p["period"] for p in list_periods(world)] == ["2026-10"]


def test_reverting_a_job_whose_adjustments_were_invoiced_takes_them_back(closed: App) -> None:
    """October is closed; a job corrects it with adjustment lines, invoiced with November; once
    November is closed too, reverting the job must take those lines back in a later invoice, and
    November's report must keep showing what it invoiced."""
    from rerate.services.report import ReportRequest, summary_report

    with closed.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"], end=datetime(2026, 11, 1, tzinfo=UTC))
    job = rerate(closed, RerateRequest(scope=scope, tariff="cost", allow_closed=True))
    assert {a["period"] for a in job.adjustments} == {"2026-10"}
    with closed.catalog.transaction() as session:  # applied in November, whatever today's date
        applied = session.get(Job, job.job_id)
        assert applied is not None
        applied.finished_at = datetime(2026, 11, 20, tzinfo=UTC)

    def adjustments(period: str) -> list[tuple[str, Decimal, int]]:
        report = summary_report(closed, ReportRequest(customers=["Acme"], period=period))
        return [(a["corrected_period"], a["revenue"], a["job_id"]) for a in report.adjustments]

    invoiced = adjustments("2026-11")
    assert sum(line[1] for line in invoiced) == sum(a["amount_delta"] for a in job.adjustments) != 0
    close_period(closed, "Acme", "2026-11", now=datetime(2026, 12, 2, tzinfo=UTC))

    with pytest.raises(ConflictError, match="Acme 2026-10"):
        revert(closed, job.job_id)
    undo = revert(closed, job.job_id, allow_closed=True)
    assert sum(a["amount_delta"] for a in undo.adjustments) == -sum(
        a["amount_delta"] for a in job.adjustments
    )
    with closed.catalog.transaction() as session:  # a revert of December, as it would be in real time
        reverting = session.get(Job, undo.job_id)
        assert reverting is not None
        reverting.finished_at = datetime(2026, 12, 2, tzinfo=UTC)

    assert adjustments("2026-11") == invoiced
    december = adjustments("2026-12")
    assert {line[2] for line in december} == {undo.job_id}
    assert sum(line[1] for line in december) == -sum(line[1] for line in invoiced)


def test_late_xdrs_of_a_closed_period_are_rejected_with_the_period_named(closed: App, tmp_path: Path) -> None:
    """A late file must not change an invoiced month behind its back: its calls in a closed period
    are rejected (kept in the rejects file with their line), the rest loads."""
    import csv

    late = [
        ("late-oct", "2026-10-30T10:00:00Z", "60", "1", "4930", "acc1", "gw1"),
        ("late-nov", "2026-11-03T10:00:00Z", "60", "1", "4930", "acc1", "gw1"),
        ("late-stranger", "2026-10-30T11:00:00Z", "60", "1", "4930", "stranger", "gw1"),
    ]
    as_closed = summary_as_closed(closed, "Acme", "2026-10")
    (report,) = ingest(closed, [write_xdrs(tmp_path / "late.csv", late)])
    assert (report.loaded, report.rejected) == (2, 1)
    assert report.rejects_path is not None
    with open(report.rejects_path, newline="") as handle:
        (rejected,) = list(csv.DictReader(handle))
    assert (rejected["line"], rejected["raw"]) == ("2", "late-oct")
    assert "closed billing period Acme 2026-10" in rejected["reason"]
    assert summary_now(closed, "Acme", "2026-10") == as_closed
    ledger, totals = ledger_and_totals(closed)
    assert ledger == totals
