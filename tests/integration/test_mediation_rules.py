"""Mediation rules in the catalog: applied at ingest, by re-processing, dated, scoped, traced."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import AuditEntry
from rerate.ledger.reader import open_views
from rerate.ledger.schema import XDR_FILE_SCHEMA
from rerate.ledger.tables import REVISIONS, TABLES, XDRS, Ledger
from rerate.services.errors import InvalidInputError, NotFoundError
from rerate.services.export import export_xdrs
from rerate.services.ingest import ingest
from rerate.services.mediation_rules import add_rule, list_rules, remove_rule
from rerate.services.mediation_trace import trace
from rerate.services.reprocess import reprocess
from rerate.services.scopes import resolve_scope
from rerate.services.timeparse import parse_utc
from rerate.services.visibility import current_visibility
from tests.factories import headed_template, ledger_and_totals, write_xdrs
from tests.switch_samples import asterisk_csv

ROWS = [
    ("n1", "2026-10-20T10:00:00Z", "60", "1001", "020 7946 0000", "acc1", "gw1"),  # national UK number
    ("n2", "2026-10-20T10:00:00Z", "60", "1001", "0049301234", "acc1", "gw1"),  # international, 00
    ("n3", "2026-10-20T10:00:00Z", "60", "1001", "02079460000", "acc2", "gw1"),  # other account: no rule
    ("i1", "2026-10-20T10:00:00Z", "60", "1001", "4420794600", "10.0.0.5", "trunk-b"),  # IP and trunk alias
    ("d1", "2026-10-05T10:00:00Z", "60", "1001", "4420794600", "10.0.0.5", "gw1"),  # before the alias
]


def _export(app: App, tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        return {row["source_id"]: row for row in csv.DictReader(handle)}


def _uk_rules(app: App) -> None:
    add_rule(app, "number", "0", "44", account="acc1", min_length=8, description="UK PBX dials nationally")
    add_rule(app, "account", "10.0.0.5", "acc1", valid_from=parse_utc("2026-10-10T00:00:00Z", field="from"))
    add_rule(app, "vendor", "trunk-b", "gw1")


def test_rules_apply_at_ingest_by_scope_and_date(world: App, tmp_path: Path) -> None:
    _uk_rules(world)
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    assert report.loaded == 5
    rows = _export(world, tmp_path)
    assert (rows["n1"]["status"], rows["n1"]["prefix"], rows["n1"]["cld"]) == ("rated", "44", "020 7946 0000")
    # 0049... lost its 00 before the rules (RATING.md section 2): never taken for a national number
    assert (rows["n2"]["status"], rows["n2"]["prefix"]) == ("rated", "49")
    assert rows["n3"]["reason"] == "no_rate"  # acc2 has no rule: 02079460000 matches no prefix
    assert (rows["i1"]["customer"], rows["i1"]["vendor"], rows["i1"]["vendor_status"]) == (
        "Acme",
        "Carrier",
        "rated",
    )
    assert rows["d1"]["reason"] == "unknown_account"  # the alias starts on the 10th
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals


def test_reprocessing_applies_rules_added_later_and_ending_a_rule_keeps_history(
    world: App, tmp_path: Path
) -> None:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    assert _export(world, tmp_path)["n1"]["reason"] == "no_rate"
    _uk_rules(world)
    with world.catalog.reading() as session:
        scope = resolve_scope(session, statuses=["failed"])
    report = reprocess(world, scope, failed_only=True)
    assert report.cured == 2  # n1 (number rule), i1 (account and vendor aliases); n3 and d1 still fail
    rows = _export(world, tmp_path)
    assert [rows[s]["status"] for s in ("n1", "n3", "i1", "d1")] == ["rated", "failed", "rated", "failed"]

    number_rule = next(r for r in list_rules(world) if r["match"] == "0")
    message = remove_rule(world, number_rule["id"], ending=parse_utc("2026-10-20T00:00:00Z", field="from"))
    assert "ends 2026-10-20" in message
    with world.catalog.reading() as session:
        everything = resolve_scope(session, customers=["Acme"])
    reprocess(world, everything, failed_only=False)
    assert _export(world, tmp_path)["n1"]["reason"] == "no_rate"  # called after the rule ended
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals
    with world.catalog.reading() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry))]
    assert actions.count("mediation.rule_add") == 3 and "mediation.rule_remove" in actions


def test_rule_errors_are_clear(world: App) -> None:
    with pytest.raises(InvalidInputError, match="not both"):
        add_rule(world, "number", "0", "44", account="acc1", vendor="gw1")
    with pytest.raises(InvalidInputError, match="needs the identifier"):
        add_rule(world, "account", "10.0.0.5")
    for match in ("+44", "0044", "44 20"):
        with pytest.raises(InvalidInputError, match="can never match"):
            add_rule(world, "number", match, "44")
    with pytest.raises(InvalidInputError, match="--account needs an identifier"):
        add_rule(world, "number", "0", "44", account=" ")  # not a rule for every XDR
    with pytest.raises(InvalidInputError, match="must be digits"):
        add_rule(world, "number", "0", "x44")
    with pytest.raises(InvalidInputError, match="must be digits"):
        add_rule(world, "service", "+44800", "tollfree")
    with pytest.raises(InvalidInputError, match="not an IP network"):
        add_rule(world, "account", "10.0.0.0/33", "acc1")
    with pytest.raises(InvalidInputError, match=r"\{servcie\} is not known"):  # a typo'd placeholder
        add_rule(world, "rating_key", "", "{servcie}:inbound")
    with pytest.raises(InvalidInputError, match="at most 20 digits"):
        add_rule(world, "service", "1" * 21, "premium")
    with pytest.raises(InvalidInputError, match="longer than any number"):
        add_rule(world, "number", "0", "1" * 21)
    with pytest.raises(InvalidInputError, match="a brace without its pair"):
        add_rule(world, "rating_key", "", "{service:inbound")
    with pytest.raises(InvalidInputError, match="is a network, and a rule's scope is one identifier"):
        add_rule(world, "number", "0", "44", account="10.0.0.0/24")
    longest = add_rule(world, "number", "1" * 20, "1" * 20)  # the longest number still fits
    keyed = add_rule(world, "rating_key", "", "{service}:in")
    technical = add_rule(world, "number", "1234#" + "9" * 17, "")  # normalization leaves # and *
    assert (longest.match, keyed.replace, technical.match) == ("1" * 20, "{service}:in", "1234#" + "9" * 17)
    for rule in (longest, keyed, technical):
        remove_rule(world, rule.id)
    with pytest.raises(InvalidInputError, match="--position"):
        add_rule(world, "number", "0", "44", position=10**20)
    with pytest.raises(InvalidInputError, match="--min-length"):
        add_rule(world, "number", "0", "44", min_length=10**20)
    with pytest.raises(NotFoundError):
        remove_rule(world, 10**20)
    scoped = add_rule(world, "number", "0", "44", account=" acc1 ")
    assert scoped.scope_value == "acc1"
    ended = parse_utc("2026-10-10T00:00:00Z", field="to")
    remove_rule(world, scoped.id, ending=ended)
    with pytest.raises(InvalidInputError, match="can only end earlier"):  # never reaching later calls
        remove_rule(world, scoped.id, ending=parse_utc("2026-12-01T00:00:00Z", field="to"))
    remove_rule(world, scoped.id)
    with pytest.raises(NotFoundError, match="no mediation rule 99"):
        remove_rule(world, 99)
    rule = add_rule(world, "number", "9", "")
    assert remove_rule(world, rule.id) == f"rule {rule.id} removed" and list_rules(world) == []


def test_trace_follows_rows_from_raw_fields_to_rating(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_rule(world, "number", "0", "44", min_length=8)
    path = asterisk_csv(tmp_path / "Master.csv")
    with path.open("a") as handle:
        handle.write('"acc9","1009","02079460000","ctx","x","SIP/1-1","SIP/gw1-00000001","Dial","",')
        handle.write(
            '"2026-10-20 13:00:00","2026-10-20 13:00:01","2026-10-20 13:01:00",60,59,"ANSWERED","D","u9",""\n'
        )
        handle.write('"acc1","1001","4420794600","ctx","x","SIP/1-2","SIP/gw1-00000002","Dial","",')
        handle.write('"yesterday","","",60,59,"ANSWERED","D","u10",""\n')
        handle.write('"acc1","1001","4420794600"\n')  # too few fields: refused by the reader itself
    rows = trace(world, path, "asterisk-csv", limit=10)
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    first = rows[0]
    assert first["raw"]["dstchannel"] == "SIP/gw1-00000010" and first["canonical"]["vendor"] == "gw1"
    assert first["mediated"]["customer"] == "Acme" and first["rated"]["status"] == "rated"
    assert first["outcome"] == "rated" and first["rated"]["amount"] is not None
    assert rows[2]["outcome"] == "skipped: not answered"
    assert rows[3]["mediated"]["number"] == "442079460000"  # the rule, then normalization
    assert rows[3]["outcome"] == "failed: unknown_account"
    assert rows[4]["outcome"] == "rejected: connect_time is not a time: yesterday"
    assert rows[4]["raw"]["start"] == "yesterday"
    # Every row's raw fields are an object; a row that could not be split shows its line as read.
    assert rows[5]["outcome"].startswith("rejected: ") and "found 3" in rows[5]["outcome"]
    assert rows[5]["raw"] == {"text": "acc1,1001,4420794600"}
    assert trace(world, path, "asterisk-csv", limit=2) == rows[:2]
    with pytest.raises(InvalidInputError, match=r"follows one file, and .* is a pattern: name one file"):
        trace(world, tmp_path / "Master.*", "asterisk-csv")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert trace(world, Path("~/Master.csv"), "asterisk-csv", limit=2) == rows[:2]  # as ingest reads it
    ledger, _ = ledger_and_totals(world)
    assert ledger == []  # a trace writes nothing


def test_service_and_rating_key_are_stored_with_each_xdr_and_follow_reprocessing(
    world: App, tmp_path: Path
) -> None:
    add_rule(world, "service", "4479", "mobile")
    ingest(
        world,
        [write_xdrs(tmp_path / "x.csv", [*ROWS[:2], ("m1", *ROWS[0][1:4], "447900123456", "acc1", "gw1")])],
    )
    rows = _export(world, tmp_path)
    assert [rows[s]["rating_key"] for s in ("n1", "n2", "m1")] == ["voice", "voice", "mobile"]
    assert rows["m1"]["service"] == "voice"  # the raw field stays as received
    add_rule(world, "rating_key", "", "{service}:outbound", account="acc1")
    with world.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    report = reprocess(world, scope, failed_only=False)
    assert report.changed == 3
    rows = _export(world, tmp_path)
    assert [rows[s]["rating_key"] for s in ("n1", "m1")] == ["voice:outbound", "mobile:outbound"]
    ledger, totals = ledger_and_totals(world)
    assert ledger == totals


def test_a_ledger_from_before_the_rating_key_gains_the_column(world: App, tmp_path: Path) -> None:
    old = Ledger(tmp_path / "old-ledger")
    for name, (schema, partitions) in TABLES.items():  # the tables as an earlier version made them
        without = pa.schema([f for f in schema if f.name != "rating_key"])
        DeltaTable.create(str(old.path(name)), schema=without, partition_by=partitions)
    assert "rating_key" not in {f.name for f in old.table(XDRS).schema().fields}
    old.ensure()
    old.ensure()  # idempotent
    for name in (XDRS, REVISIONS):
        assert "rating_key" in {f.name for f in old.table(name).schema().fields}
    # A data file written before the column existed reads as null through the views.
    old_file = tmp_path / "old.parquet"
    file_schema = pa.schema([f for f in XDR_FILE_SCHEMA if f.name != "rating_key"])
    pq.write_table(file_schema.empty_table(), old_file)
    with world.catalog.reading() as session:
        visibility = current_visibility(session)
    con = open_views(world.ledger, visibility, files=([str(old_file)], []))
    assert ("rating_key", "VARCHAR") in [(c[0], c[1]) for c in con.execute("DESCRIBE xdrs").fetchall()]


def test_vendor_side_failures_are_counted_cured_and_new(world: App, tmp_path: Path) -> None:
    """A vendor side cured, or newly failed, counts in the report as a customer side does."""
    rows = [
        ("v1", "2026-10-20T10:00:00Z", "60", "1", "4420794600", "acc1", "trunk-b"),
        ("v2", "2026-10-21T10:00:00Z", "60", "1", "4420794600", "acc1", "trunk-b"),
    ]
    ingest(world, [write_xdrs(tmp_path / "x.csv", rows)])
    assert {r["vendor_reason"] for r in _export(world, tmp_path).values()} == {"unknown_vendor"}
    alias = add_rule(world, "vendor", "trunk-b", "gw1")
    with world.catalog.reading() as session:
        scope = resolve_scope(session, start=parse_utc("2026-10-01T00:00:00Z"))
    cured = reprocess(world, scope, failed_only=True)
    assert (cured.changed, cured.cured, cured.new_failures) == (2, 2, {})

    remove_rule(world, alias.id, ending=parse_utc("2026-10-21T00:00:00Z"))  # v2 is no longer carried
    failed = reprocess(world, scope, failed_only=False)
    assert (failed.changed, failed.cured, failed.new_failures) == (1, 0, {"vendor unknown_vendor": 1})


def test_trace_reads_rows_as_ingest_does_and_shows_the_first_ones(world: App, tmp_path: Path) -> None:
    """The template's expressions apply; a malformed row further down takes no earlier row's place."""
    headed_template(world, tmp_path, "uk-national", "secs", """cld = '"44" + value'""")
    path = tmp_path / "national.csv"
    good = [f"n{i},1792490400,60,2079460{i:03d},acc1" for i in range(8)]
    path.write_text("id,when,secs,called,who\n" + "\n".join([*good, "broken,row"]) + "\n")
    rows = trace(world, path, "uk-national", limit=3)
    assert [r["line"] for r in rows] == [2, 3, 4]
    assert [r["canonical"]["cld"] for r in rows] == ["442079460000", "442079460001", "442079460002"]
    assert all(r["outcome"] == "rated" for r in rows)


def test_trace_refuses_what_ingest_refuses_after_rating(world: App, tmp_path: Path) -> None:
    """A call in a closed period and duplicates rate, then ingest rejects them: so does the trace."""
    from rerate.services.periods import close_period

    loaded = ("dup", "2026-10-20T10:00:00Z", "60", "1", "442079460000", "acc1", "gw1")
    ingest(world, [write_xdrs(tmp_path / "old.csv", [loaded])])
    close_period(world, "Acme", "2026-09")
    rows = [
        ("late", "2026-09-20T10:00:00Z", "60", "1", "442079460000", "acc1", "gw1"),
        loaded,
        ("new", "2026-10-21T10:00:00Z", "60", "1", "442079460000", "acc1", "gw1"),
        ("new", "2026-10-21T10:00:00Z", "60", "1", "442079460000", "acc1", "gw1"),
    ]
    path = write_xdrs(tmp_path / "x.csv", rows)
    outcomes = [r["outcome"] for r in trace(world, path)]
    assert outcomes[0].startswith("rejected: ") and "2026-09" in outcomes[0]
    assert outcomes[1:] == [
        "duplicate: of an XDR already loaded",  # counted as ingest counts them: duplicates
        "rated",
        "duplicate: of line 4 of this file",
    ]
    (report,) = ingest(world, [path])  # what ingest does with the same rows
    assert (report.loaded, report.rejected, report.duplicates) == (1, 1, 2)


def test_rules_of_every_age_and_identifiers_with_slashes_keep_working(world: App, tmp_path: Path) -> None:
    """A trunk prefix before 00: the default applies again to what the rule leaves.  A rule stored
    with a 00 match (added before rules saw normalized numbers) matches what it meant then.  An
    identifier with a slash is an identifier, not a network."""
    from rerate.catalog.models import MediationRuleRow

    add_rule(world, "number", "9", "", account="acc1")  # the trunk prefix
    add_rule(world, "vendor", "SIP/trunk-b", "gw1")
    with world.catalog.transaction() as session:  # as an older version stored it
        session.add(
            MediationRuleRow(
                position=5, kind="number", match="0011", replace="", scope="global", created_by="old"
            )
        )
    rows = [
        ("t1", "2026-10-20T10:00:00Z", "60", "1", "900442079460000", "acc1", "gw1"),
        ("t2", "2026-10-20T10:00:00Z", "60", "1", "9+442079460000", "acc1", "gw1"),
        ("a1", "2026-10-20T10:00:00Z", "60", "1", "0011442079460000", "acc2", "SIP/trunk-b"),
    ]
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", rows)])
    assert report.loaded == 3
    exported = _export(world, tmp_path)
    assert {s: (r["status"], r["prefix"]) for s, r in exported.items()} == {
        "t1": ("rated", "44"),
        "t2": ("rated", "44"),
        "a1": ("rated", "44"),
    }
    assert (exported["a1"]["vendor"], exported["a1"]["vendor_status"]) == ("Carrier", "rated")


def test_a_rating_key_names_only_the_service(world: App) -> None:
    """A typo in a placeholder would stamp its literal text on every XDR in scope."""
    with pytest.raises(InvalidInputError, match=r"\{servcie\}, \{x\} is not known"):
        add_rule(world, "rating_key", "", "{servcie}:{x}")
    assert add_rule(world, "rating_key", "", "{service}:inbound").replace == "{service}:inbound"


def test_a_removed_rules_id_is_never_given_to_a_new_rule(world: App) -> None:
    """The audit trail names rules by id: one subject must not name two rules."""
    first = add_rule(world, "number", "9", "")
    remove_rule(world, first.id)
    second = add_rule(world, "number", "8", "")
    assert second.id > first.id
    with world.catalog.reading() as session:
        subjects = [(a.action, a.subject) for a in session.scalars(select(AuditEntry))]
    assert subjects.count(("mediation.rule_add", f"mediation rule {first.id}")) == 1
