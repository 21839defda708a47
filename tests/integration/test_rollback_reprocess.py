"""Collection rollback and re-processing of failed XDRs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rerate.bootstrap import App
from rerate.services import parties
from rerate.services.errors import ConflictError, InvalidInputError
from rerate.services.export import export_xdrs
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.reprocess import reprocess
from rerate.services.rollback import collections, rollback
from rerate.services.scopes import resolve_scope
from tests.factories import ledger_and_totals, write_xdrs

ROWS = [
    ("a1", "2026-10-10T10:00:00Z", "45", "1", "4930", "acc1", "gw1"),
    ("a2", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "stranger", "gw1"),
    ("a3", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc2", "gw-new"),
]


def _export(app: App, tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        return {r["xdr_id"]: r for r in csv.DictReader(handle)}


def test_rollback_voids_the_collection_and_the_file_loads_again(world: App, tmp_path: Path) -> None:
    path = write_xdrs(tmp_path / "x.csv", ROWS)
    (first,) = ingest(world, [path])
    assert first.collection_id is not None
    preview = rollback(world, first.collection_id, dry_run=True)
    assert (preview.state, preview.in_scope, preview.changed) == ("planned", 3, 3)
    assert all(r["status"] != "voided" for r in _export(world, tmp_path).values())

    applied = rollback(world, first.collection_id)
    assert applied.delta["EUR"]["amount"] == -applied.before["EUR"]["amount"]
    assert {r["status"] for r in _export(world, tmp_path).values()} == {"voided"}
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
    assert all(row[1] == "voided" for row in totals)  # nothing left to bill
    assert collections(world)[0]["state"] == "rolled back"

    (again,) = ingest(world, [path])  # the same file loads as new
    assert (again.state, again.loaded, again.duplicates) == ("loaded", 3, 0)
    with pytest.raises(ConflictError, match="loaded again as collection"):
        revert(world, applied.job_id)
    with pytest.raises(ConflictError, match="rolled back already"):
        rollback(world, first.collection_id)


def test_revert_of_a_rollback_brings_the_collection_back(world: App, tmp_path: Path) -> None:
    (first,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    assert first.collection_id is not None
    before = (_export(world, tmp_path), ledger_and_totals(world))
    applied = rollback(world, first.collection_id)
    revert(world, applied.job_id)
    assert (_export(world, tmp_path), ledger_and_totals(world)) == before


def test_a_rollback_is_not_reverted_while_its_calls_are_live_in_another_collection(
    world: App, tmp_path: Path
) -> None:
    """Neither the same file live again in an earlier collection, nor a corrected file (another
    checksum, the same source ids) loaded after the rollback: each would bill the calls twice."""
    path = write_xdrs(tmp_path / "x.csv", ROWS)
    (first,) = ingest(world, [path])
    assert first.collection_id is not None
    first_rollback = rollback(world, first.collection_id)
    (second,) = ingest(world, [path])
    assert second.collection_id is not None
    second_rollback = rollback(world, second.collection_id)
    revert(world, first_rollback.job_id)  # the file is live once again, as the first collection
    with pytest.raises(ConflictError, match=f"loaded again as collection {first.collection_id}"):
        revert(world, second_rollback.job_id)

    corrected = write_xdrs(tmp_path / "corrected.csv", [(*ROWS[0][:2], "50", *ROWS[0][3:]), *ROWS[1:]])
    third_rollback = rollback(world, first.collection_id)
    (fixed,) = ingest(world, [corrected])
    assert (fixed.loaded, fixed.duplicates) == (3, 0)
    for undo in (third_rollback.job_id, second_rollback.job_id):
        with pytest.raises(
            ConflictError, match=rf"collection {fixed.collection_id} holds 1 XDR\(s\) of 2026-10-10"
        ):
            revert(world, undo)
    live = [r for r in _export(world, tmp_path).values() if r["status"] != "voided"]
    assert sorted(r["source_id"] for r in live) == ["a1", "a2", "a3"]


def test_reprocess_failed_keeps_the_price_of_a_side_that_was_rated(world: App, tmp_path: Path) -> None:
    """Curing a vendor side must not undo the customer side's deliberate re-rating."""
    from rerate.domain.rating import Side
    from rerate.services.corrections import RerateRequest, rerate

    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    rerate(world, RerateRequest(scope=acme, tariff="cost", sides=(Side.CUSTOMER,)))
    before = _export(world, tmp_path)
    a3 = next(k for k, r in before.items() if r["source_id"] == "a3")
    assert (before[a3]["tariff"], before[a3]["vendor_status"]) == ("cost", "failed")

    parties.add_vendor(world, "NewCarrier", tariff="cost", connections=["gw-new"])
    with world.catalog.reading() as session:
        scope = resolve_scope(session, statuses=["failed"])
    report = reprocess(world, scope, failed_only=True)

    after = _export(world, tmp_path)
    customer_side = ("tariff", "amount", "status")
    assert [after[a3][c] for c in customer_side] == [before[a3][c] for c in customer_side]
    assert (after[a3]["vendor"], after[a3]["vendor_status"]) == ("NewCarrier", "rated")
    assert sum(v["amount"] for v in report.delta.values()) == 0
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals


def test_corrections_leave_a_rolled_back_collection_voided(world: App, tmp_path: Path) -> None:
    """Re-pricing a customer after its file was rolled back and loaded again must not bill the
    voided copy a second time."""
    from rerate.services.corrections import RerateRequest, rerate

    path = write_xdrs(tmp_path / "x.csv", ROWS)
    (first,) = ingest(world, [path])
    assert first.collection_id is not None
    rollback(world, first.collection_id)
    (again,) = ingest(world, [path])
    assert again.loaded == 3
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])

    rerated = rerate(world, RerateRequest(scope=scope, tariff="cost"))
    reprocessed = reprocess(world, scope, failed_only=False)

    with world.catalog.reading() as session:
        only_voided = resolve_scope(session, statuses=["voided"])
    with pytest.raises(InvalidInputError, match="revert its rollback"):
        rerate(world, RerateRequest(scope=only_voided, tariff="cost", dry_run=True))

    rows = _export(world, tmp_path).values()
    voided = [r for r in rows if r["collection_id"] == str(first.collection_id)]
    assert [r["status"] for r in voided] == ["voided"] * 3
    # Only the live copy was in scope: Acme's two XDRs of the file loaded again.
    assert (rerated.in_scope, reprocessed.in_scope) == (2, 2)
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals


def test_reprocess_failed_picks_up_fixed_configuration(world: App, tmp_path: Path) -> None:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    rows = _export(world, tmp_path)
    assert sorted(r["reason"] or r["vendor_reason"] for r in rows.values() if r["source_id"] != "a1") == [
        "unknown_account",
        "unknown_vendor",
    ]
    parties.add_account(world, "stranger", customer="Acme")
    parties.add_vendor(world, "NewCarrier", tariff="cost", connections=["gw-new"])
    with world.catalog.reading() as session:
        scope = resolve_scope(session, statuses=["failed"])
    report = reprocess(world, scope, failed_only=True)
    assert (report.in_scope, report.changed, report.cured) == (
        2,
        2,
        2,
    )  # a2 its customer side, a3 its vendor side
    # a2 leaves "no customer" for Acme: no line of its own for the customer it never had.
    for breakdown in (report.by_customer, report.by_day, report.by_destination):
        assert all(line["currency"] is not None for line in breakdown), breakdown
    after = {r["source_id"]: r for r in _export(world, tmp_path).values()}
    assert (after["a2"]["status"], after["a2"]["customer"]) == ("rated", "Acme")
    assert (after["a3"]["vendor_status"], after["a3"]["vendor"]) == ("rated", "NewCarrier")
    assert reprocess(world, scope, failed_only=True).changed == 0
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals


def test_an_owner_change_inside_a_second_is_refused_clearly(world: App) -> None:
    """Owners are looked up by each XDR's connect second: a change at a fraction of a second
    would move calls made just before it."""
    from datetime import UTC, datetime

    with pytest.raises(InvalidInputError, match=r"00:00:00\.500000\+00:00 has a fraction of a second"):
        parties.set_account_customer(
            world, "acc1", "Acme", datetime(2026, 10, 15, 0, 0, 0, 500000, tzinfo=UTC)
        )
    with pytest.raises(InvalidInputError, match="whole second"):
        parties.set_customer_tariff(world, "Acme", "cost", datetime(2026, 10, 15, 0, 0, 0, 1, tzinfo=UTC))
    parties.set_account_customer(world, "acc1", "Acme", datetime(2026, 10, 15, tzinfo=UTC))  # a whole second
