"""The rate-deck import wizard (seed 001) on realistic decks, through the service."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from rerate.bootstrap import App, bootstrap
from rerate.catalog.models import Destination, DestinationGroupPrefix, Job, Rate, RateImport, Tariff
from rerate.domain.deck_review import Mode, PastPolicy
from rerate.services import rate_results
from rerate.services.errors import ConflictError, InvalidInputError, NotFoundError, RerateError
from rerate.services.export import export_xdrs
from rerate.services.ingest import ingest
from rerate.services.rate_import import DeckImportRequest, import_deck
from rerate.services.schedule import apply_planned
from rerate.services.setup import initialize
from rerate.services.tariff_admin import set_exchange_rate, set_off_peak, show_tariff
from rerate.settings import Settings
from tests.factories import make_app, small_world, write_xdrs
from tests.mailbox import mailbox

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)

#: What carriers send: a notice block, quoted names with commas, decimal commas, country-area codes,
#: lists and ranges in one cell, + signs, dd-Mon-yy dates, increments in one column.
CARRIER_DECK = """X-Telecom rate notification
Valid from 01-Dec-26; prices in USD per minute

"Destination";"Code";"Rate";"Billing";"Effective date"
"Afghanistan, Mobile";"93-76; 93-77";"0,1450";"60/60";"01-Dec-26"
"United Kingdom";"44";"0,0123";"1/1";"01-Dec-26"
"UK London";"4420-4422";"0,0100";"1/1";"01-Dec-26"
"Canada Manitoba";"+1 204";"0,0050";"6/6";"01-Dec-26"
"USA Alabama";"1 205";"0,0060";"6/6";"01-Dec-26"
"Typo";"44x";"0,1";"1/1";"01-Dec-26"
"Germany";"0049";"abc";"1/1";"01-Dec-26"
"""


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(tmp_path / "home")


def _deck(tmp_path: Path, text: str, name: str = "deck.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _request(path: Path, **kwargs: object) -> DeckImportRequest:
    options: dict[str, object] = {"tariff": "X", "path": path, "currency": "USD", "now": NOW}
    options.update(kwargs)
    return DeckImportRequest(**options)  # type: ignore[arg-type]


def _rates(app: App) -> dict[str, list[tuple[datetime, Decimal, bool]]]:
    with app.catalog.reading() as session:
        rows = session.execute(
            select(Rate.prefix, Rate.effective_from, Rate.first_price, Rate.discontinued).order_by(
                Rate.prefix, Rate.effective_from
            )
        ).all()
    result: dict[str, list[tuple[datetime, Decimal, bool]]] = {}
    for prefix, since, price, stopped in rows:
        result.setdefault(prefix, []).append((since, price, stopped))
    return result


def test_a_carrier_deck_is_read_without_any_mapping(app: App, tmp_path: Path) -> None:
    report = import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), preview=True))
    assert report.state == "preview"
    assert report.mapping == {
        "description": "Destination",
        "prefix": "Code",
        "price": "Rate",
        "increments": "Billing",
        "effective_from": "Effective date",
    }
    assert (report.sheets[0].header_line, report.delimiter) == (4, ";")
    entries = {e["prefix"]: e for e in (rate_results.rate_entry(r) for r in report.rates)}
    assert set(entries) == {"9376", "9377", "44", "4420", "4421", "4422", "1204", "1205", "44x", "0049"}
    assert entries["9376"]["first_price"] == "0.1450" and entries["9376"]["first_interval"] == 60
    assert entries["1204"]["next_interval"] == 6 and entries["1204"]["line"] == 8
    assert entries["44"]["effective_from"] == "2026-12-01T00:00:00Z"
    assert (entries["44x"]["status"], entries["44x"]["error_column"]) == ("error", "Code")
    assert "not a number" in entries["0049"]["error"] and entries["0049"]["line"] == 11
    countries = {d.prefix: d.country for d in report.new_destinations}
    assert (countries["1204"], countries["1205"], countries["9376"]) == ("CA", "US", "AF")
    counts = report.summary
    assert (counts.total_processed, counts.created, counts.skipped_errors, counts.new_destinations) == (
        10,
        8,
        2,
        8,
    )
    assert _rates(app) == {}  # a preview writes nothing


def test_import_loads_good_rows_in_one_transaction_and_reports_every_row(app: App, tmp_path: Path) -> None:
    results = tmp_path / "results.xlsx"
    report = import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), results_file=results))
    assert report.state == "imported" and report.tariff_created
    rates = _rates(app)
    assert set(rates) == {"9376", "9377", "44", "4420", "4421", "4422", "1204", "1205"}
    assert rates["4421"] == [(datetime(2026, 12, 1, tzinfo=UTC), Decimal("0.01"), False)]
    with app.catalog.reading() as session:
        assert session.scalar(select(func.count()).select_from(Destination)) == 8
        record = session.scalars(select(RateImport)).one()
        assert record.summary["created"] == 8 and record.results_path
    with open(str(report.results_path)) as handle:
        outcome = list(csv.DictReader(handle))
    assert len(outcome) == 10 and {r["status"] for r in outcome} == {"new", "error"}
    book = load_workbook(results, read_only=True)
    sheet = book.active
    assert sheet is not None
    cells = [[cell.value for cell in row] for row in sheet.iter_rows()]
    book.close()
    assert len(cells) == 11 and cells[0][3] == "status"
    assert {row[3] for row in cells[1:]} == {"new", "error"}  # plain text, not enum names
    view = show_tariff(app, "X", at=datetime(2026, 12, 2, tzinfo=UTC))
    assert [r["prefix"] for r in view.rates] == ["1204", "1205", "44", "4420", "4421", "4422", "9376", "9377"]
    assert show_tariff(app, "X", at=NOW).rates == []  # scheduled, not yet in force


def test_a_failure_during_the_load_leaves_the_catalog_as_it_was(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path, rates: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(rate_results, "write_results", broken)  # the results file fails half way
    with pytest.raises(RerateError, match="disk full"):
        import_deck(app, _request(_deck(tmp_path, CARRIER_DECK)))
    with app.catalog.reading() as session:
        assert session.scalar(select(func.count()).select_from(Rate)) == 0
        assert session.scalar(select(func.count()).select_from(Destination)) == 0
        assert session.scalar(select(func.count()).select_from(RateImport)) == 0
    assert not list((app.home / "imports").rglob("results.csv"))  # no report of an import that failed


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["This workbook replaces every earlier notification."])
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        sheet.append(["Rates as below"])
        sheet.append([])
        sheet.append(
            ["Country/Description", "Dial Code", "Rate USD", "Initial Increment", "Next Increment", "Date"]
        )
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_workbooks_with_several_sheets_excel_dates_and_two_interval_columns(app: App, tmp_path: Path) -> None:
    import_deck(app, _request(_deck(tmp_path, CARRIER_DECK)))
    december = datetime(2026, 12, 1)
    deck = _workbook(
        tmp_path / "update.xlsx",
        {
            "Europe": [
                ["United Kingdom", 44, 0.0125, 1, 1, december],  # increase
                ["UK London", "4420, 4421", 0.0095, 1, 1, december],  # decrease, two codes
                ["UK London", 4422, 0.01, 1, 1, december],  # duplicate
            ],
            "World": [
                ["Afghanistan Mobile", 9376, 0.145, 60, 60, december],
                ["Canada", 1204, 0.005, 6, 6, december],
                ["US", 1205, 0.006, 6, 6, december],
                ["East Timor", 670, 0.5, 60, 60, december],  # new
            ],
        },
    )
    report = import_deck(app, _request(deck, mode=Mode.REPLACE))
    assert [s.name for s in report.sheets] == ["Europe", "World"]
    assert report.mapping["first_interval"] == "Initial Increment"
    statuses = {r.prefix: (r.status.value, r.action.value) for r in report.rates}
    assert statuses["44"] == ("increase", "replace_future")  # the seed: a future rate is replaced
    assert statuses["4420"][0] == statuses["4421"][0] == "decrease"
    assert statuses["4422"] == ("duplicate", "skip")
    assert statuses["670"] == ("new", "insert")
    # Absent from the deck, and only scheduled (never in force): its version is withdrawn.
    assert statuses["9377"] == ("discontinued", "skip")
    summary = report.summary
    assert (summary.created, summary.overridden, summary.skipped_duplicates, summary.discontinued) == (
        4,
        3,
        4,
        0,
    )
    assert summary.withdrawn == 1
    live = {r["prefix"]: r for r in show_tariff(app, "X", at=datetime(2026, 12, 2, tzinfo=UTC)).rates}
    assert "9377" not in live and live["44"]["first_price"] == Decimal("0.0125")
    assert len(_rates(app)["44"]) == 1  # replaced in place: it was not in force yet


def test_replace_mode_discontinues_nothing_when_the_deck_has_errors(app: App, tmp_path: Path) -> None:
    import_deck(
        app,
        _request(
            _deck(tmp_path, CARRIER_DECK), now=datetime(2026, 12, 5, tzinfo=UTC), past=PastPolicy.BACKDATE
        ),
    )
    deck = _deck(tmp_path, "code,price\n44,0.02\n4420,oops\n", "partial.csv")
    report = import_deck(app, _request(deck, mode=Mode.REPLACE, now=datetime(2026, 12, 10, tzinfo=UTC)))
    stopped = [r for r in report.rates if r.status.value == "discontinued"]
    assert stopped and all(r.action.value == "skip" for r in stopped)
    assert report.summary.discontinued == 0
    clean = _deck(tmp_path, "code,price\n44,0.02\n", "clean.csv")
    again = import_deck(app, _request(clean, mode=Mode.REPLACE, now=datetime(2026, 12, 10, tzinfo=UTC)))
    assert again.summary.discontinued == 7  # every other live prefix stops when the deck takes effect


def test_duplicates_are_skipped_or_kept_and_past_rows_follow_the_policy(app: App, tmp_path: Path) -> None:
    first = _deck(tmp_path, "prefix,price,effective date\n33,0.1,2026-11-01\n", "a.csv")
    import_deck(app, _request(first, past=PastPolicy.BACKDATE))
    same = _deck(tmp_path, "prefix,price\n33,0.1\n", "b.csv")
    skipped = import_deck(app, _request(same))
    assert skipped.summary.skipped_duplicates == 1 and skipped.summary.created == 0
    kept = import_deck(app, _request(same, skip_duplicates=False))
    assert kept.summary.created == 1
    old = _deck(tmp_path, "prefix,price,date\n34,0.2,15/10/2026\n", "c.csv")
    assert import_deck(app, _request(old)).summary.skipped_past == 1
    as_now = import_deck(app, _request(old, past=PastPolicy.NOW))
    assert as_now.rates[0].values["effective_from"] == NOW
    assert "34" in _rates(app)


def test_defaults_only_for_new_prefixes_keep_what_the_tariff_has(app: App, tmp_path: Path) -> None:
    first = _deck(tmp_path, "prefix,price,preference\n44,0.1,8\n", "a.csv")
    import_deck(app, _request(first, past=PastPolicy.NOW))
    update = _deck(tmp_path, "prefix,price\n44,0.2\n447,0.3\n", "b.csv")
    later = NOW.replace(day=23)
    overrides = {"defaults": {"preference": "5"}, "defaults_only_new": ["preference"]}
    report = import_deck(app, _request(update, overrides=overrides, now=later))
    preferences = {r.prefix: r.values["preference"] for r in report.rates}
    assert preferences == {"44": 8, "447": 5}


def test_rules_links_and_exchange_rates(app: App, tmp_path: Path) -> None:
    set_exchange_rate(app, "EUR", "USD", "1.08", effective_from=NOW - timedelta(days=1))  # not the wall clock
    deck = _deck(tmp_path, "code,eur per min,step\n44,0.0100,60\n", "eur.csv")
    request = _request(
        deck,
        mapping={"price": "eur per min", "first_interval": "step"},
        overrides={
            "rules": {"price": "round(value * fx('EUR') * 1.05, 6)", "prefix": "'9' + value"},
            "links": {"next_interval": "first_interval"},
        },
        preview=True,
    )
    (rate,) = import_deck(app, request).rates
    assert rate.prefix == "944"
    assert rate.values["first_price"] == rate.values["next_price"] == Decimal("0.011340")
    assert (rate.values["first_interval"], rate.values["next_interval"]) == (60, 60)
    with pytest.raises(InvalidInputError, match="are allowed"):
        import_deck(app, replace(request, overrides={"rules": {"price": "__import__('os')"}}))


def test_templates_save_the_whole_setup_for_the_next_deck(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "a|b|c\n44|zero dot one|0,1\n", "odd.csv")
    request = _request(
        deck,
        mapping={"prefix": "a", "price": "c"},
        overrides={"delimiter": "|", "decimal_comma": True},
        save_template="odd carrier",
        past=PastPolicy.NOW,
    )
    assert import_deck(app, request).state == "imported"
    again = _deck(tmp_path, "a|b|c\n45|x|0,2\n", "odd2.csv")
    report = import_deck(app, _request(again, template="odd carrier", preview=True, now=NOW.replace(day=23)))
    assert report.rates[0].prefix == "45" and report.rates[0].values["first_price"] == Decimal("0.2")
    with pytest.raises(NotFoundError, match="odd carrier"):
        import_deck(app, _request(again, template="nobody"))


def test_new_destinations_need_a_country_and_may_join_a_group(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price\n1,0.1\n33012,0.2\n4473,0.3\n", "new.csv")
    refused = import_deck(app, _request(deck, past=PastPolicy.NOW))
    assert refused.state == "rejected" and [d.prefix for d in refused.unresolved] == ["1"]
    assert _rates(app) == {}
    accepted = import_deck(
        app, _request(deck, countries={"1": "US"}, groups={"447": "UK-Mobile"}, past=PastPolicy.NOW)
    )
    assert accepted.state == "imported"
    with app.catalog.reading() as session:
        assert session.get(Destination, "1").country == "US"  # type: ignore[union-attr]
        assert session.get(DestinationGroupPrefix, "4473") is not None


def test_backdated_rates_propose_a_rerating_of_exactly_the_affected_xdrs(tmp_path: Path) -> None:
    world = small_world(tmp_path / "home")
    ingest(
        world,
        [
            write_xdrs(
                tmp_path / "x.csv",
                [
                    ("a1", "2026-10-10T10:00:00Z", "60", "1", "4930", "acc1", "gw1"),
                    ("a2", "2026-10-20T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1"),
                    ("a3", "2026-10-25T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1"),
                ],
            )
        ],
    )
    deck = _deck(tmp_path, "prefix,price,first interval,next interval,date\n442,0.02,60,60,2026-10-21\n")
    report = import_deck(
        world, DeckImportRequest("retail", deck, past=PastPolicy.BACKDATE, countries={"442": "GB"}, now=NOW)
    )
    (job_id,) = report.proposed_jobs
    with world.catalog.reading() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state == "planned"
        assert (job.in_scope, job.changed) == (1, 1)  # a3 only: a1 is another prefix, a2 came before
        assert session.get(RateImport, report.import_id).proposed_jobs == [job_id]  # type: ignore[union-attr]
        # retail prices no XDR's vendor side: that side's dry run is no proposal left to apply.
        (vendor_side,) = session.scalars(select(Job).where(Job.id != job_id, Job.kind == "rerate")).all()
        assert vendor_side.state == "cancelled" and "nothing to re-rate" in str(vendor_side.error)
    applied = apply_planned(world, job_id)
    assert (applied.state, applied.changed) == ("applied", 1)
    out = tmp_path / "after.csv"
    export_xdrs(world, out)
    with out.open() as handle:
        amounts = {r["source_id"]: Decimal(r["amount"]) for r in csv.DictReader(handle)}
    assert (amounts["a2"], amounts["a3"]) == (Decimal("0.01"), Decimal("0.02"))  # 44 at 0.01, 442 at 0.02
    with pytest.raises(ConflictError, match="only a dry run"):
        apply_planned(world, applied.job_id)
    with pytest.raises(ConflictError, match=rf"applied already \(as job {applied.job_id}\)"):
        apply_planned(world, job_id)  # the proposal is applied once


def test_a_price_with_too_many_decimals_is_named_as_written(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "Code;Rate;Date\n44;0,00000000001;2026-12-05\n")
    (rate,) = import_deck(app, _request(deck, preview=True)).rates
    assert rate.status.value == "error"
    assert str(rate.error).startswith("first_price 0.00000000001 has more than 9 decimal places")  # not 1E-11


def test_a_file_that_is_not_a_deck_is_one_clear_error(app: App, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no prefix and price columns could be recognized"):
        import_deck(app, _request(_deck(tmp_path, "hello\nworld\n", "notes.txt")))
    with pytest.raises(InvalidInputError, match="not found"):
        import_deck(app, _request(tmp_path / "absent.csv"))
    with pytest.raises(InvalidInputError, match="lacks"):
        import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), mapping={"price": "Tarif"}))
    with pytest.raises(
        InvalidInputError, match=r"prefix is mapped to column #99, but the file's rows have \d+"
    ):
        import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), mapping={"prefix": "#99"}, preview=True))
    for options, said in (
        ({"delimiter": ";;"}, "--delimiter is one character"),
        ({"quotechar": ""}, "--quote is one character"),
        ({"delimiter": ";", "quotechar": ";"}, "cannot both be ';'"),
    ):
        with pytest.raises(InvalidInputError, match=said):
            import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), overrides=options, preview=True))
    latin = _deck(tmp_path, "Destination;Code;Rate\nCôte d'Ivoire;225;0,2\n", "latin.csv", "cp1252")
    report = import_deck(app, _request(latin, preview=True, past=PastPolicy.NOW))
    assert report.encoding == "cp1252" and report.rates[0].values["description"] == "Côte d'Ivoire"


def test_off_peak_xdrs_are_priced_with_the_off_peak_prices(tmp_path: Path) -> None:
    world = small_world(tmp_path / "home")
    deck = _deck(
        tmp_path,
        "prefix,price,off-peak price,increments,effective date\n4420,0.06,0.03,60/60,2026-01-01\n",
        "night.csv",
    )
    report = import_deck(world, DeckImportRequest("retail", deck, past=PastPolicy.BACKDATE, now=NOW))
    assert report.mapping["off_peak_price"] == "off-peak price" and report.state == "imported"
    set_off_peak(world, "retail", "Europe/London", ["sat,sun", "mon-fri 20:00-08:00"])
    rows = [
        ("wed", "2026-10-21T12:00:00Z", "60", "1", "4420794600", "acc1", "gw1"),
        ("sat", "2026-10-24T12:00:00Z", "60", "1", "4420794600", "acc1", "gw1"),
        ("night", "2026-10-21T19:30:00Z", "60", "1", "4420794600", "acc1", "gw1"),  # 20:30 in London
        ("other", "2026-10-24T12:00:00Z", "60", "1", "4930", "acc1", "gw1"),  # no off-peak price: peak
    ]
    ingest(world, [write_xdrs(tmp_path / "x.csv", rows)])
    out = tmp_path / "export.csv"
    export_xdrs(world, out)
    with out.open() as handle:
        amounts = {r["source_id"]: Decimal(r["amount"]) for r in csv.DictReader(handle)}
    assert (amounts["wed"], amounts["sat"], amounts["night"]) == (
        Decimal("0.06"),
        Decimal("0.03"),
        Decimal("0.03"),
    )
    # 49 has no off-peak price: peak prices on a Saturday too (fee 0.01 + 30 s at 0.03 + 30 s at 0.025).
    assert amounts["other"] == Decimal("0.0375")


def test_the_import_report_is_e_mailed_with_the_results_file(tmp_path: Path) -> None:
    with mailbox() as inbox:
        settings = Settings(
            home=tmp_path / "home", smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_security="none"
        )
        app = bootstrap(settings)
        initialize(app)
        report = import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), email=["rates@carrier.example"]))
    assert report.state == "imported" and report.mail_id and report.mail_error is None
    (message,) = inbox.messages
    assert message["To"] == "rates@carrier.example" and "Rate upload report: X" in message["Subject"]
    body = message.get_body(("plain",))
    assert body is not None and "Total rates created: 8" in body.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "results.csv" and "error" in attachment.get_content()


def test_an_unreachable_mail_server_does_not_undo_the_import(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        smtp_host="127.0.0.1",
        smtp_port=1,
        smtp_security="none",
        smtp_attempts=2,
        smtp_backoff_seconds=0,
    )
    app = bootstrap(settings)
    initialize(app)
    report = import_deck(app, _request(_deck(tmp_path, CARRIER_DECK), email=["rates@carrier.example"]))
    assert report.state == "imported" and report.mail_id is None and "cannot reach" in str(report.mail_error)
    assert len(_rates(app)) == 8


def test_replace_mode_withdraws_every_version_not_yet_in_force(app: App, tmp_path: Path) -> None:
    scheduled = _deck(
        tmp_path,
        "prefix,price,date\n44,0.10,2026-11-01\n44,0.20,2027-01-10\n44,0.30,2027-01-20\n"
        "33,0.10,2026-11-01\n33,0.40,2027-02-01\n49,0.10,2026-11-01\n49,0.50,2027-03-01\n",
        "scheduled.csv",
    )
    import_deck(app, _request(scheduled, past=PastPolicy.BACKDATE))
    replacement = _deck(tmp_path, "prefix,price\n44,0.15\n33,0.10\n", "replacement.csv")
    report = import_deck(app, _request(replacement, mode=Mode.REPLACE))
    assert report.summary.withdrawn == 4  # 44's two, 33's one (its row is a duplicate), 49's one
    rates = _rates(app)
    assert [p for _, p, _ in rates["44"]] == [Decimal("0.1"), Decimal("0.15")]
    assert [p for _, p, _ in rates["33"]] == [Decimal("0.1")]
    assert [stopped for _, _, stopped in rates["49"]] == [False, True]  # discontinued, never back


def test_an_operator_mapping_keeps_the_guesses_for_the_other_columns(app: App, tmp_path: Path) -> None:
    report = import_deck(
        app,
        _request(_deck(tmp_path, CARRIER_DECK), mapping={"prefix": "Code", "price": "Rate"}, preview=True),
    )
    assert report.mapping["increments"] == "Billing" and report.mapping["effective_from"] == "Effective date"
    assert report.rates[0].values["first_interval"] == 60


def test_an_interval_too_large_for_the_catalog_is_an_error_row_not_a_crash(app: App, tmp_path: Path) -> None:
    deck = _deck(
        tmp_path,
        "Code;Rate;Increment;Effective date\n44;0.0100;60/60;2027-12-01\n49;0.0200;99999999999999999999/1;2027-12-01\n",
    )
    report = import_deck(app, _request(deck))
    assert report.state == "imported"
    assert set(_rates(app)) == {"44"}
    with open(str(report.results_path)) as handle:
        rows = {r["prefix"]: r for r in csv.DictReader(handle)}
    assert rows["49"]["status"] == "error" and "too large" in rows["49"]["error"]


def _prices(app: App, prefix: str) -> list[tuple[str, Decimal, bool]]:
    return [(f"{since:%Y-%m-%d}", price, stopped) for since, price, stopped in _rates(app).get(prefix, [])]


def test_a_deck_that_raises_a_price_and_later_lowers_it_back_keeps_both_rows(
    app: App, tmp_path: Path
) -> None:
    import_deck(
        app,
        _request(
            _deck(tmp_path, "prefix,price,date\n44,0.10,2026-11-01\n", "a.csv"), past=PastPolicy.BACKDATE
        ),
    )
    # The lowering comes first in the file: rows of a prefix are reviewed in date order.
    promotion = _deck(tmp_path, "prefix,price,date\n44,0.10,2026-12-15\n44,0.20,2026-12-01\n", "b.csv")
    report = import_deck(app, _request(promotion))
    assert [(r.status.value, r.action.value) for r in report.rates] == [
        ("decrease", "insert"),
        ("increase", "insert"),
    ]
    assert report.rates[0].old is not None and report.rates[0].old.values["first_price"] == Decimal("0.20")
    assert (report.summary.created, report.summary.overridden) == (2, 1)
    assert _prices(app, "44") == [
        ("2026-11-01", Decimal("0.1"), False),
        ("2026-12-01", Decimal("0.2"), False),
        ("2026-12-15", Decimal("0.1"), False),
    ]


def test_past_as_now_loads_the_latest_of_a_prefixs_past_rows(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price,date\n44,0.10,2026-10-01\n44,0.20,2026-11-01\n", "past.csv")
    report = import_deck(app, _request(deck, past=PastPolicy.NOW))
    assert [(r.status.value, r.action.value) for r in report.rates] == [("past", "skip"), ("new", "insert")]
    assert "line 3" in str(report.rates[0].error)
    assert (report.summary.skipped_errors, report.summary.skipped_past, report.summary.created) == (0, 1, 1)
    assert _prices(app, "44") == [(f"{NOW:%Y-%m-%d}", Decimal("0.2"), False)]


def test_replace_mode_keeps_the_scheduled_versions_the_deck_gives_again(app: App, tmp_path: Path) -> None:
    scheduled = "prefix,price,date\n44,0.20,2027-01-10\n44,0.30,2027-01-20\n"
    import_deck(
        app,
        _request(
            _deck(tmp_path, "prefix,price,date\n44,0.10,2026-11-01\n" + scheduled.split("\n", 1)[1], "a.csv"),
            past=PastPolicy.BACKDATE,
        ),
    )
    again = import_deck(app, _request(_deck(tmp_path, scheduled, "b.csv"), mode=Mode.REPLACE))
    assert again.summary.withdrawn == 0 and again.summary.skipped_duplicates == 2
    assert [p for _, p, _ in _prices(app, "44")] == [Decimal("0.1"), Decimal("0.2"), Decimal("0.3")]
    moved = import_deck(
        app, _request(_deck(tmp_path, "prefix,price,date\n44,0.20,2027-01-25\n", "c.csv"), mode=Mode.REPLACE)
    )
    # Both scheduled versions are withdrawn, so 0.20 from the 25th follows the 0.10 in force, not 0.30.
    assert moved.summary.withdrawn == 2 and moved.rates[0].status.value == "increase"
    assert [p for _, p, _ in _prices(app, "44")] == [Decimal("0.1"), Decimal("0.2")]


def test_replace_mode_withdraws_a_prefix_that_is_only_scheduled(app: App, tmp_path: Path) -> None:
    first = _deck(tmp_path, "prefix,price,date\n44,0.10,2026-11-01\n33,0.40,2027-02-01\n", "a.csv")
    import_deck(app, _request(first, past=PastPolicy.BACKDATE))
    report = import_deck(
        app, _request(_deck(tmp_path, "prefix,price\n44,0.10\n", "b.csv"), mode=Mode.REPLACE)
    )
    assert report.summary.withdrawn == 1 and report.summary.discontinued == 0
    assert "33" not in _rates(app)


def test_discontinuing_a_prefix_without_a_rate_stores_nothing(app: App, tmp_path: Path) -> None:
    import_deck(app, _request(_deck(tmp_path, "prefix,price\n44,0.10\n", "a.csv")))
    deck = _deck(tmp_path, "prefix,price,discontinued\n44,0.10,yes\n55,0.10,yes\n", "b.csv")
    report = import_deck(app, _request(deck, now=NOW + timedelta(days=1)))
    assert report.summary.discontinued == 1 and report.summary.created == 1
    assert report.summary.new_destinations == 0
    assert report.rates[1].action.value == "skip" and "nothing to discontinue" in str(report.rates[1].error)
    assert "55" not in _rates(app) and [s for _, _, s in _prices(app, "44")] == [False, True]


def test_decimal_comma_applies_to_text_not_to_a_workbooks_number_cells(app: App, tmp_path: Path) -> None:
    rows = [["Kenya", 254, 0.0123, 60, 60, "01.12.2026"], ["Ghana", 233, "0,0456", 60, 60, "01.12.2026"]]
    book = _workbook(tmp_path / "deck.xlsx", {"Rates": rows})
    report = import_deck(app, _request(book, overrides={"decimal_comma": True}, preview=True))
    prices = {r.prefix: r.values["first_price"] for r in report.rates}
    assert prices == {"254": Decimal("0.0123"), "233": Decimal("0.0456")}


def test_prices_are_plain_decimals_in_the_preview_and_the_results_file(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price\n44,0.0000002\n49,1'234.50\n")
    report = import_deck(app, _request(deck, results_file=tmp_path / "results.csv"))
    entries = {e["prefix"]: e for e in map(rate_results.rate_entry, report.rates)}
    assert (entries["44"]["first_price"], entries["49"]["first_price"]) == ("0.0000002", "1234.50")
    with (tmp_path / "results.csv").open() as handle:
        rows = {r["prefix"]: r for r in csv.DictReader(handle)}
    assert (rows["44"]["first_price"], rows["44"]["next_price"]) == ("0.0000002", "0.0000002")


def test_a_rule_on_a_field_no_column_gives_is_refused(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price\n44,0.01\n")
    with pytest.raises(InvalidInputError, match="rule on connect_fee would never apply"):
        import_deck(app, _request(deck, overrides={"rules": {"connect_fee": "value * 2"}}, preview=True))
    given = import_deck(
        app,
        _request(
            deck,
            overrides={"rules": {"connect_fee": "value * 2"}, "defaults": {"connect_fee": "0.01"}},
            preview=True,
        ),
    )
    assert given.rates[0].values["connect_fee"] == Decimal("0.02")


def test_a_template_saved_from_one_sheet_reads_a_sheet_that_names_its_columns_otherwise(
    app: App, tmp_path: Path
) -> None:
    def workbook(path: Path, asia_header: list[str]) -> Path:
        book = Workbook()
        notes = book.active
        assert notes is not None
        notes.title = "Notes"
        notes.append(["Prices per minute"])
        for name, header, row in (
            ("Europe", ["Destination", "Code", "Rate", "Date"], ["UK", 44, 0.01, "2026-12-01"]),
            ("Asia", asia_header, ["Japan", 81, 0.02, "2026-12-01"]),
        ):
            sheet = book.create_sheet(name)
            sheet.append(header)
            sheet.append(row)
        book.save(path)
        return path

    first = workbook(tmp_path / "a.xlsx", ["Destination", "Code", "Rate", "Date"])
    import_deck(app, _request(first, save_template="two sheets"))
    later = workbook(tmp_path / "b.xlsx", ["Name", "Dial code", "Price", "Valid from"])
    report = import_deck(app, _request(later, template="two sheets", preview=True))
    assert [(s.name, s.mapping["prefix"]) for s in report.sheets] == [
        ("Europe", "Code"),
        ("Asia", "Dial code"),
    ]
    assert {r.prefix: r.values["first_price"] for r in report.rates} == {
        "44": Decimal("0.01"),
        "81": Decimal("0.02"),
    }


def test_a_status_column_and_immediate_dates_read_as_carriers_write_them(app: App, tmp_path: Path) -> None:
    import_deck(app, _request(_deck(tmp_path, "prefix,price\n44,0.10\n", "a.csv")))
    deck = _deck(
        tmp_path,
        "Code;Rate;Status;Effective\n44;0,10;Closed;Immediate\n49;0,20;New;immediately\n33;0,30;Increase;01/12/2026\n",
        "b.csv",
    )
    later = NOW + timedelta(days=1)
    report = import_deck(app, _request(deck, mapping={"discontinued": "Status"}, now=later))
    assert report.mapping["effective_from"] == "Effective"
    assert [(r.prefix, r.status.value) for r in report.rates] == [
        ("44", "discontinued"),
        ("49", "new"),
        ("33", "new"),
    ]
    assert [r.values["effective_from"] for r in report.rates[:2]] == [later, later]
    assert _prices(app, "44")[-1] == (f"{later:%Y-%m-%d}", Decimal("0.1"), True)


def test_the_date_order_is_the_columns_not_each_cells(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price,date\n44,0.1,12/01/2026\n49,0.2,12/13/2026\n")
    report = import_deck(app, _request(deck, preview=True))
    dates = [f"{r.values['effective_from']:%Y-%m-%d}" for r in report.rates]
    assert dates == ["2026-12-01", "2026-12-13"]  # 12/13 can only be month first: so is 12/01
    assert report.summary.skipped_past == 0


def test_notes_section_titles_and_a_headers_second_row_are_not_error_rows(app: App, tmp_path: Path) -> None:
    deck = _deck(
        tmp_path,
        "Destination,Code,Rate,Rate,Effective\n,,Peak,Off-peak,\nEUROPE,,,,\nUK,44,0.10,0.05,2026-12-01\n"
        "Ghana,,0.20,,2026-12-01\n\nPrices exclude VAT.,,,,\n",
    )
    report = import_deck(app, _request(deck, preview=True))
    assert [(r.line, r.prefix, r.status.value) for r in report.rates] == [(4, "44", "new"), (5, "", "error")]
    assert report.summary.skipped_errors == 1  # a price without a code is still an error


def test_deck_dates_are_whole_seconds(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price,date\n44,0.1,46357.33333\n49,0.1,2026-12-01T00:00:00.5Z\n")
    later = NOW.replace(microsecond=250000)
    report = import_deck(app, _request(deck, preview=True, now=later))
    first, second = report.rates
    assert first.values["effective_from"] == datetime(2026, 12, 1, 8, tzinfo=UTC)  # an Excel serial's 08:00
    assert second.status.value == "error" and "fraction of a second" in str(second.error)
    undated = import_deck(app, _request(_deck(tmp_path, "prefix,price\n33,0.1\n", "b.csv"), now=later))
    assert undated.rates[0].values["effective_from"] == NOW + timedelta(seconds=1)


def test_workbook_number_cells_and_text_cells_are_never_read_for_each_other(app: App, tmp_path: Path) -> None:
    """A number cell equals the text it shows; no cache may hand one's reading to the other."""
    earlier = _deck(tmp_path, "prefix,price\n49,0.0123\n", "earlier.csv")  # refused with a decimal comma
    import_deck(app, _request(earlier, overrides={"decimal_comma": True}, preview=True))
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Code", "Rate", "Surcharge"])
    for row in ([44, "1.234", 2.5], [45, 1.234, "2,5"], [46, 0.0123, 0]):
        sheet.append(row)
    book.save(tmp_path / "deck.xlsx")
    report = import_deck(
        app,
        _request(
            tmp_path / "deck.xlsx",
            overrides={"decimal_comma": True},
            mapping={"post_call_surcharge": "Surcharge"},
            preview=True,
        ),
    )
    values = {r.prefix: r.values for r in report.rates}
    assert [values[p]["first_price"] for p in ("44", "45", "46")] == [
        Decimal("1234"),  # text: "1.234" with a decimal comma
        Decimal("1.234"),  # a number cell
        Decimal("0.0123"),
    ]
    assert values["44"]["post_call_surcharge"] == values["45"]["post_call_surcharge"]  # 2.5 %, twice


def test_past_as_now_keeps_a_row_dated_now_over_the_past_ones(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price,date\n44,0.20,Immediate\n44,0.10,2026-10-01\n")
    report = import_deck(app, _request(deck, past=PastPolicy.NOW))
    assert [(r.status.value, r.action.value) for r in report.rates] == [("new", "insert"), ("past", "skip")]
    assert _prices(app, "44") == [(f"{NOW:%Y-%m-%d}", Decimal("0.2"), False)]


def test_replace_mode_withdraws_what_the_deck_drops_whatever_its_first_row(app: App, tmp_path: Path) -> None:
    first = "prefix,price,date\n44,0.10,2026-11-01\n44,0.30,2027-01-10\n33,0.40,2026-12-05\n"
    import_deck(app, _request(_deck(tmp_path, first, "a.csv"), past=PastPolicy.BACKDATE))
    # 44's first row asks to rewrite history in force (an error); its later row still withdraws the
    # scheduled 0.30.  (With an error in the deck, no other prefix is stopped.)
    deck = _deck(tmp_path, "prefix,price,date\n44,0.11,2026-11-01\n44,0.20,2026-12-10\n", "b.csv")
    report = import_deck(app, _request(deck, mode=Mode.REPLACE, past=PastPolicy.BACKDATE))
    assert report.rates[0].status.value == "error" and report.summary.withdrawn == 1
    assert [p for _, p, _ in _prices(app, "44")] == [Decimal("0.1"), Decimal("0.2")]
    # 33 is only scheduled, before the deck's date: withdrawn, never live (no stop after it).
    clean = _deck(tmp_path, "prefix,price,date\n44,0.20,2026-12-10\n", "c.csv")
    again = import_deck(app, _request(clean, mode=Mode.REPLACE))
    assert (again.summary.withdrawn, again.summary.discontinued) == (1, 0)
    assert "33" not in _rates(app)


def test_status_words_belong_to_their_flag_and_mixed_date_styles_keep_their_order(
    app: App, tmp_path: Path
) -> None:
    import_deck(app, _request(_deck(tmp_path, "prefix,price\n44,0.10\n", "a.csv")))
    deck = _deck(tmp_path, "Code;Rate;Status\n44;0,10;Blocked\n", "b.csv")
    (blocked,) = import_deck(app, _request(deck, mapping={"discontinued": "Status"}, preview=True)).rates
    assert blocked.status.value == "error" and "not yes or no" in str(blocked.error)
    dates = _deck(
        tmp_path, "prefix,price,date\n45,0.1,01.12.2026\n46,0.1,05.12.2026\n47,0.1,12/13/2026\n", "c.csv"
    )
    report = import_deck(app, _request(dates, preview=True))
    assert [f"{r.values['effective_from']:%m-%d}" for r in report.rates] == ["12-01", "12-05", "12-13"]


def test_a_deck_of_nothing_but_errors_is_rejected_and_creates_no_tariff(app: App, tmp_path: Path) -> None:
    deck = _deck(tmp_path, "prefix,price\n44,abc\n49,\n")
    report = import_deck(app, _request(deck, tariff="New"))
    assert report.state == "rejected" and "every row (2) has an error" in report.problems[-1]
    with app.catalog.reading() as session:
        assert session.scalar(select(func.count()).select_from(RateImport)) == 0
        assert session.scalar(select(func.count()).select_from(Tariff)) == 0


def test_a_folder_given_as_a_deck_is_named_as_one(app: App, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is a folder, not a rate deck"):
        import_deck(app, _request(tmp_path))


def test_two_undated_imports_in_one_second_refuse_the_row_instead_of_crashing(
    app: App, tmp_path: Path
) -> None:
    import_deck(app, _request(_deck(tmp_path, "prefix,price\n44,0.10\n", "a.csv")))
    again = import_deck(app, _request(_deck(tmp_path, "prefix,price\n44,0.20\n49,0.10\n", "b.csv")))
    assert again.state == "imported"
    assert [(r.prefix, r.status.value) for r in again.rates] == [("44", "error"), ("49", "new")]
    assert "already has a rate effective" in str(again.rates[0].error)
    same = import_deck(app, _request(_deck(tmp_path, "prefix,price\n44,0.10\n", "c.csv")))
    assert same.rates[0].status.value == "duplicate"


def test_a_backdated_deck_re_prices_only_the_side_priced_with_it_and_keeps_deliberate_re_ratings(
    tmp_path: Path,
) -> None:
    from rerate.domain.rating import Side
    from rerate.services.corrections import RerateRequest, rerate
    from rerate.services.scopes import resolve_scope
    from rerate.services.tariffs import import_rates
    from tests.factories import write_rates

    world = small_world(tmp_path / "home")
    premium = [{"prefix": "44", "effective_from": "2026-01-01T00:00:00Z", "first_price": "0.1"}]
    import_rates(
        world, "premium", write_rates(tmp_path / "premium.csv", premium), currency="EUR", allow_past=True
    )
    rows = [("a1", "2026-10-20T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1")]
    ingest(world, [write_xdrs(tmp_path / "x.csv", rows)])
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    rerate(world, RerateRequest(scope=acme, tariff="premium", sides=(Side.CUSTOMER,)))  # on purpose

    def exported() -> dict[str, str]:
        out = tmp_path / "now.csv"
        export_xdrs(world, out)
        with out.open() as handle:
            (row,) = list(csv.DictReader(handle))
        return row

    before = exported()
    vendor_fix = _deck(
        tmp_path, "prefix,price,first interval,next interval,date\n44,0.006,1,1,2026-10-01\n", "v.csv"
    )
    fixed = import_deck(world, DeckImportRequest("cost", vendor_fix, past=PastPolicy.BACKDATE, now=NOW))
    (vendor_side,) = fixed.proposed_jobs
    apply_planned(world, vendor_side)
    after = exported()
    assert (after["tariff"], after["amount"]) == ("premium", before["amount"])  # the customer side stays
    assert (after["vendor_tariff"], after["cost"]) == ("cost", "0.006000000")
    customer_fix = _deck(
        tmp_path, "prefix,price,first interval,next interval,date\n44,0.2,60,60,2026-10-01\n", "c.csv"
    )
    fixed = import_deck(world, DeckImportRequest("premium", customer_fix, past=PastPolicy.BACKDATE, now=NOW))
    (customer_side,) = fixed.proposed_jobs
    apply_planned(world, customer_side)
    assert (exported()["tariff"], exported()["amount"]) == ("premium", "0.200000000")  # its new price


def test_a_dry_run_whose_prices_changed_since_is_not_applied(tmp_path: Path) -> None:
    from rerate.services.corrections import RerateRequest, rerate
    from rerate.services.scopes import resolve_scope
    from rerate.services.tariffs import import_rates
    from tests.factories import COST, write_rates

    world = small_world(tmp_path / "home")
    ingest(
        world,
        [
            write_xdrs(
                tmp_path / "x.csv", [("a1", "2026-10-20T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1")]
            )
        ],
    )
    with world.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
    preview = rerate(world, RerateRequest(scope=acme, tariff="cost", dry_run=True))
    dearer = _deck(tmp_path, "prefix,price,first interval,next interval,date\n4,0.5,1,1,2026-10-01\n")
    dearer_import = DeckImportRequest(
        "cost", dearer, past=PastPolicy.BACKDATE, countries={"4": "ZZ"}, now=NOW
    )
    assert import_deck(world, dearer_import).state == "imported"
    with pytest.raises(
        ConflictError, match=r"prices behind dry run .* changed since.*tariff.import_deck tariff cost"
    ):
        apply_planned(world, preview.job_id)
    onto_cost = rerate(world, RerateRequest(scope=acme, tariff="cost", dry_run=True))
    as_configured = rerate(world, RerateRequest(scope=acme, dry_run=True))
    import_rates(world, "other", write_rates(tmp_path / "other.csv", COST), currency="EUR", allow_past=True)
    with pytest.raises(ConflictError, match=r"tariff\.import tariff other"):
        apply_planned(world, as_configured.job_id)  # priced by what is assigned: any price change counts
    assert apply_planned(world, onto_cost.job_id).state == "applied"  # priced with cost alone: unchanged
