"""Aggregates equal the ledger after any sequence of jobs; cache sync finds and repairs drift."""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerate.bootstrap import App
from rerate.ledger.tables import PREFIX_TOTALS, TOTALS, unit_prefix
from rerate.services import cache, parties
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.errors import ConflictError
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.reprocess import reprocess
from rerate.services.rollback import rollback
from rerate.services.scopes import resolve_scope
from tests.factories import ledger_and_prefix_totals, ledger_and_totals, small_world, write_xdrs

FILES = [
    [
        ("a1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
        ("a2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "late", "gw1"),
    ],
    [
        ("b1", "2026-10-21T10:00:00Z", "300", "1", "447900123456", "acc2", "gw1"),
        ("b2", "2026-10-21T11:00:00Z", "7", "1", "4420794600", "acc1", "gw2"),
    ],
]
STEPS = st.lists(
    st.sampled_from(
        [
            "ingest0",
            "ingest1",
            "rerate_cost",
            "rerate_retail",
            "ghost",
            "reprocess",
            "fix_config",
            "rollback1",
            "revert_last",
        ]
    ),
    min_size=1,
    max_size=8,
)


def _apply(app: App, root: Path, step: str, applied: list[int]) -> None:
    with app.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
        failed = resolve_scope(session, statuses=["failed"])
    try:
        if step.startswith("ingest"):
            number = int(step[-1])
            ingest(app, [write_xdrs(root / f"f{number}.csv", FILES[number])])
        elif step == "rerate_cost":
            applied.append(rerate(app, RerateRequest(scope=acme, tariff="cost")).job_id)
        elif step == "rerate_retail":
            applied.append(rerate(app, RerateRequest(scope=acme)).job_id)
        elif step == "ghost":
            applied.append(rerate(app, RerateRequest(scope=acme, ghost_percent=Decimal(25))).job_id)
        elif step == "reprocess":
            applied.append(reprocess(app, failed, failed_only=True).job_id)
        elif step == "fix_config":
            parties.add_account(app, "late", customer="Acme")
            parties.add_vendor(app, "Second", tariff="cost", connections=["gw2"])
        elif step == "rollback1":
            applied.append(rollback(app, 1).job_id)
        elif step == "revert_last" and applied:
            revert(app, applied.pop())
    except ConflictError:
        pass  # refused steps (a second rollback, a revert under a later job) change nothing


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_totals_equal_ledger_after_any_sequence_of_jobs(steps: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        app = small_world(root / "home")
        applied: list[int] = []
        for step in ["ingest0", *steps]:
            _apply(app, root, step, applied)
            ledger, totals = ledger_and_totals(app)
            assert ledger == totals, step
            ledger, by_prefix = ledger_and_prefix_totals(app)
            assert ledger == by_prefix, step
        assert cache.sync(app, check=True).differences == []
        app.close()


def test_cache_sync_reports_and_repairs_drift(world: App, tmp_path: Path) -> None:
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", FILES[0])])
    assert cache.sync(world, check=True).differences == []
    for table in (TOTALS, PREFIX_TOTALS):  # simulate drift in both aggregates
        world.ledger.remove_unit(table, unit_prefix("c", int(report.collection_id or 0)))
    found = cache.sync(world, check=True)
    assert found.differences and not found.repaired
    assert {d["table"] for d in found.differences} == {TOTALS, PREFIX_TOTALS}
    repaired = cache.sync(world)
    assert repaired.repaired and len(repaired.differences) == len(found.differences)
    assert cache.sync(world, check=True).differences == []
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
    ledger, by_prefix = ledger_and_prefix_totals(world)
    assert ledger == by_prefix
    # A repair is not a correction: undoing it would bring the difference back.
    with pytest.raises(ConflictError, match="only an applied correction"):
        revert(world, repaired.job_id or 0)
    assert cache.sync(world, check=True).differences == []


def test_cache_sync_of_some_days_checks_their_whole_month_per_prefix(world: App, tmp_path: Path) -> None:
    """The monthly per-prefix totals are compared month by month, whatever days were asked for."""
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", FILES[0])])
    world.ledger.remove_unit(PREFIX_TOTALS, unit_prefix("c", int(report.collection_id or 0)))
    found = cache.sync(world, start=date(2026, 10, 20), end=date(2026, 10, 20), check=True)
    prefixes = {(d["period"], d["prefix"]) for d in found.differences if d["table"] == PREFIX_TOTALS}
    ledger, _ = ledger_and_prefix_totals(world)
    assert prefixes == {(row[0], row[2]) for row in ledger}  # the 10th's calls too, not only the 20th's
    assert not [d for d in found.differences if d["table"] == TOTALS]
    cache.sync(world, start=date(2026, 10, 20), end=date(2026, 10, 20))
    assert cache.sync(world, check=True).differences == []
