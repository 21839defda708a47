"""CDR delivery: files e-mailed to a real SMTP server on loopback, compared with the ledger."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest
from openpyxl import load_workbook

from rerate.bootstrap import App, bootstrap
from rerate.services import parties
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.delivery import delivery_log, resend_delivery, run_deliveries
from rerate.services.delivery_schedules import ScheduleRequest, add_schedule, list_schedules, remove_schedule
from rerate.services.errors import InvalidInputError
from rerate.services.export import export_xdrs
from rerate.services.ingest import ingest
from rerate.services.scopes import resolve_scope
from tests.factories import small_world, write_xdrs
from tests.mailbox import DROP, Mailbox, free_port, mailbox

# Acme is in New York: its 2026-10-20 runs from 04:00 UTC that day to 04:00 UTC the next (EDT, UTC-4).
ROWS = [
    ("before", "2026-10-20T03:59:59Z", "60", "111", "4420794600", "acc1", "gw1"),  # local 10-19
    ("first", "2026-10-20T04:00:00Z", "61", "111", "4420794600", "acc1", "gw1"),
    ("mid", "2026-10-20T15:30:00Z", "30", "222", "4930123", "acc2", "gw1"),
    ("last", "2026-10-21T03:59:59Z", "45", "333", "4930123", "acc1", "gw1"),  # local 23:59:59
    ("after", "2026-10-21T04:00:00Z", "60", "111", "4420794600", "acc1", "gw1"),  # local 10-21
    ("forbidden", "2026-10-20T12:00:00Z", "60", "111", "447912345", "acc1", "gw1"),  # failed: forbidden
    ("other", "2026-10-20T12:00:00Z", "60", "111", "4420794600", "bob1", "gw1"),  # another customer
]
IN_PERIOD = ["first", "mid", "last"]


@pytest.fixture
def app(tmp_path: Path) -> App:
    world = small_world(tmp_path / "home")
    parties.add_customer(world, "Bob", tariff="retail")
    parties.add_account(world, "bob1", customer="Bob")
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    return world


def _with_mail(app: App, box: Mailbox | int, **settings: object) -> App:
    port = box if isinstance(box, int) else box.port
    changed = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_attempts": 3,
        "smtp_backoff_seconds": 0,
        **settings,
    }
    return bootstrap(app.settings.model_copy(update=changed))


def _schedule(app: App, **overrides: object) -> int:
    request = ScheduleRequest(
        customer="Acme",
        to=["noc@acme.example"],
        cc=["billing@acme.example"],
        cadence="daily",
        timezone="America/New_York",
    )
    return add_schedule(app, replace(request, **overrides)).id  # type: ignore[arg-type]


def _attached_rows(message: EmailMessage) -> tuple[str, list[dict[str, str]]]:
    (attachment,) = list(message.iter_attachments())
    name = attachment.get_filename() or ""
    data = attachment.get_content()
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            (member,) = archive.namelist()
            text = archive.read(member).decode()
    elif name.endswith(".gz"):
        text = gzip.decompress(data).decode()
    elif name.endswith(".xlsx"):
        sheet = load_workbook(io.BytesIO(data), read_only=True).active
        assert sheet is not None
        cells = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        width = len(cells[0])  # trailing empty cells are not stored
        return name, [dict(zip(cells[0], row + [""] * (width - len(row)), strict=True)) for row in cells[1:]]
    else:
        text = data if isinstance(data, str) else data.decode()
    return name, list(csv.DictReader(io.StringIO(text)))


def _ledger(app: App, tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "ledger.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        return {row["source_id"]: row for row in csv.DictReader(handle)}


def test_a_daily_delivery_sends_the_customers_local_day_as_the_ledger_has_it(
    app: App, tmp_path: Path
) -> None:
    _schedule(app)
    with mailbox() as box:
        run = run_deliveries(_with_mail(app, box), on=date(2026, 10, 21))
    (outcome,) = run.outcomes
    assert (outcome.state, outcome.period, outcome.rows, outcome.parts) == ("sent", "2026-10-20", 3, 1)
    (message,) = box.messages
    assert message["To"] == "noc@acme.example" and message["Cc"] == "billing@acme.example"
    assert sorted(box.recipients[0]) == ["billing@acme.example", "noc@acme.example"]
    assert message["Subject"] == "CDRs Acme 2026-10-20"
    assert message["Message-ID"] == outcome.message_ids[0]
    name, rows = _attached_rows(message)
    assert name == "Acme_cdr_2026-10-20.csv.zip"
    assert list(rows[0])[:8] == [
        "source_id",
        "connect_time",
        "cli",
        "cld",
        "duration",
        "billed",
        "amount",
        "currency",
    ]
    assert [r["source_id"] for r in rows] == IN_PERIOD  # in call order, the local day's edges exact
    assert [r["connect_time"] for r in rows] == [
        "2026-10-20 00:00:00",
        "2026-10-20 11:30:00",
        "2026-10-20 23:59:59",
    ]
    ledger = _ledger(app, tmp_path)
    for row in rows:
        stored = ledger[row["source_id"]]
        assert Decimal(row["amount"]) == Decimal(stored["amount"]) and row["billed"] == stored["billed"]
        assert row["currency"] == "EUR" and row["status"] == "rated"
    assert "cost" not in rows[0] and "vendor" not in rows[0]  # the vendor side never reaches a customer
    (logged,) = delivery_log(app)
    assert logged["state"] == "sent" and logged["rows"] == 3 and logged["message_ids"] == outcome.message_ids
    assert logged["bytes"] == outcome.bytes > 0


def test_a_period_is_sent_once_unless_resent(app: App) -> None:
    _schedule(app)
    with mailbox() as box:
        mailing = _with_mail(app, box)
        run_deliveries(mailing, on=date(2026, 10, 21))
        again = run_deliveries(mailing, on=date(2026, 10, 21))
        assert [o.state for o in again.outcomes] == ["skipped"] and len(box.messages) == 1
        resent = run_deliveries(mailing, on=date(2026, 10, 21), resend=True)
    assert [(o.state, o.kind) for o in resent.outcomes] == [("sent", "resend")] and len(box.messages) == 2
    assert _attached_rows(box.messages[0])[1] == _attached_rows(box.messages[1])[1]


def test_failed_xdrs_columns_headers_zones_and_decimals_follow_the_template(app: App) -> None:
    _schedule(
        app,
        include_failed=True,
        columns="source_id:Call ID,connect_time:Start,disconnect_time:End,cld,amount:Charge,status,reason",
        timestamp_zone="UTC",
        money_decimals=2,
        compress="gzip",
    )
    with mailbox() as box:
        run_deliveries(_with_mail(app, box), on=date(2026, 10, 21))
    name, rows = _attached_rows(box.messages[0])
    assert name.endswith(".csv.gz")
    assert list(rows[0]) == ["Call ID", "Start", "End", "cld", "Charge", "status", "reason"]
    by_id = {r["Call ID"]: r for r in rows}
    assert set(by_id) == {*IN_PERIOD, "forbidden"}
    assert by_id["first"]["Start"] == "2026-10-20 04:00:00" and by_id["first"]["End"] == "2026-10-20 04:01:01"
    assert by_id["forbidden"]["status"] == "failed" and by_id["forbidden"]["reason"]
    assert by_id["forbidden"]["Charge"] == ""
    assert all(len(r["Charge"].split(".")[1]) == 2 for r in rows if r["Charge"])


def test_weekly_and_monthly_schedules_cover_the_previous_week_and_month(app: App) -> None:
    weekly = _schedule(app, cadence="weekly", weekday="wed", format="xlsx")
    monthly = _schedule(app, cadence="monthly", compress="none")
    with mailbox() as box:
        mailing = _with_mail(app, box)
        assert run_deliveries(mailing, on=date(2026, 10, 27)).outcomes == []  # a Tuesday, not the 1st
        week = run_deliveries(mailing, on=date(2026, 10, 28))
        month = run_deliveries(mailing, on=date(2026, 11, 1))
    assert [(o.schedule_id, o.period, o.rows) for o in week.outcomes] == [
        (weekly, "2026-10-19..2026-10-25", 5)
    ]
    assert [(o.schedule_id, o.period, o.rows) for o in month.outcomes] == [(monthly, "2026-10", 5)]
    week_name, week_rows = _attached_rows(box.messages[0])
    assert week_name.endswith(".xlsx") and {r["source_id"] for r in week_rows} == {
        "before",
        *IN_PERIOD,
        "after",
    }
    assert _attached_rows(box.messages[1])[0] == "Acme_cdr_2026-10.csv"


@pytest.mark.parametrize(
    ("fmt", "compress"), [("csv", "none"), ("csv", "gzip"), ("csv", "zip"), ("xlsx", "none")]
)
def test_large_files_are_split_into_numbered_parts_that_each_fit(
    tmp_path: Path, fmt: str, compress: str
) -> None:
    app = small_world(tmp_path / "home")
    start = datetime(2026, 10, 20, 4, tzinfo=UTC)
    many = [
        (
            f"c{i:04d}",
            (start + timedelta(seconds=37 * i)).isoformat(),
            str(i % 300 + 1),
            f"1{i:09d}",
            f"4930{i:07d}",
            "acc1",
            "gw1",
        )
        for i in range(1500)
    ]
    ingest(app, [write_xdrs(tmp_path / "many.csv", many)])
    limit = 16_384
    _schedule(app, format=fmt, compress=compress, max_attachment_bytes=limit, cc=[])
    with mailbox() as box:
        (outcome,) = run_deliveries(_with_mail(app, box), on=date(2026, 10, 21)).outcomes
    assert outcome.state == "sent" and outcome.parts == len(box.messages) > 1
    received: list[str] = []
    for number, message in enumerate(box.messages, start=1):
        assert message["Subject"].endswith(f"(part {number} of {outcome.parts})")
        body = message.get_body(("plain",))
        assert body is not None and f"part {number} of {outcome.parts}" in body.get_content()
        (attachment,) = list(message.iter_attachments())
        assert len(attachment.as_bytes()) <= limit  # as mailed: base64, its line breaks and headers
        name, rows = _attached_rows(message)
        assert f"_part{number:03d}." in name  # numbered 1 to N, no gaps, whatever was split again
        received += [r["source_id"] for r in rows]
    assert received == [row[0] for row in many]  # every row once, in order: nothing truncated


def test_a_server_that_is_down_defers_and_the_next_run_sends(app: App) -> None:
    _schedule(app)
    port = free_port()
    down = run_deliveries(_with_mail(app, port), on=date(2026, 10, 21))
    (outcome,) = down.outcomes
    assert outcome.state == "deferred" and outcome.attempts == 3 and "cannot reach" in str(outcome.error)
    with mailbox(port=port) as box:
        (retried,) = run_deliveries(_with_mail(app, box), on=date(2026, 10, 21)).outcomes
    assert retried.state == "sent" and retried.delivery_id == outcome.delivery_id and retried.attempts == 4
    assert len(box.messages) == 1
    (logged,) = delivery_log(app)
    assert logged["state"] == "sent" and logged["error"] is None


@pytest.mark.parametrize("failure", ["451 4.3.0 try again later", DROP])
def test_temporary_failures_are_retried_with_backoff(app: App, failure: str) -> None:
    _schedule(app)
    with mailbox([failure]) as box:
        (outcome,) = run_deliveries(_with_mail(app, box), on=date(2026, 10, 21)).outcomes
    assert outcome.state == "sent" and outcome.attempts == 2 and box.tries == 2 and len(box.messages) == 1


def test_a_permanent_failure_is_recorded_shown_and_sent_only_on_resend(app: App) -> None:
    _schedule(app)
    with mailbox(["550 5.1.1 mailbox unavailable"]) as box:
        mailing = _with_mail(app, box)
        (failed,) = run_deliveries(mailing, on=date(2026, 10, 21)).outcomes
        assert failed.state == "failed" and failed.attempts == 1 and "550" in str(failed.error)
        (logged,) = delivery_log(app)
        assert logged["state"] == "failed" and "mailbox unavailable" in logged["error"]
        (skipped,) = run_deliveries(mailing, on=date(2026, 10, 21)).outcomes
        assert skipped.state == "skipped" and "--resend" in str(skipped.note) and box.tries == 1
        (sent,) = run_deliveries(mailing, on=date(2026, 10, 21), resend=True).outcomes
    assert sent.state == "sent" and len(box.messages) == 1


def test_a_correction_after_delivery_offers_a_corrected_file(app: App, tmp_path: Path) -> None:
    _schedule(app)
    day = date(2026, 10, 21)
    with mailbox() as box:
        mailing = _with_mail(app, box)
        run_deliveries(mailing, on=day)
        assert [o.state for o in run_deliveries(mailing, on=day).outcomes] == ["skipped"]  # nothing changed
        with app.catalog.reading() as session:
            scope = resolve_scope(session, customers=["Acme"])
        rerate(app, RerateRequest(scope=scope, ghost_percent=Decimal("10")))
        offered = run_deliveries(mailing, on=day).outcomes
        offer = next(o for o in offered if o.state == "offered")
        assert offer.kind == "correction" and offer.period == "2026-10-20" and len(box.messages) == 1
        # A copy to one address first: the offer still waits for the schedule's recipients.
        copy = resend_delivery(mailing, offer.delivery_id or 0, ["audit@acme.example"])
        assert copy.state == "sent" and box.recipients[-1] == ["audit@acme.example"]
        assert {row["id"]: row["state"] for row in delivery_log(app)}[offer.delivery_id] == "offered"
        corrected = resend_delivery(mailing, offer.delivery_id or 0)
    assert corrected.state == "sent" and corrected.kind == "correction"
    message = box.messages[-1]
    assert box.recipients[-1] != ["audit@acme.example"]
    assert message["Subject"].startswith("CORRECTED CDRs Acme 2026-10-20")
    body = message.get_body(("plain",))
    assert body is not None and "replaces" in body.get_content()
    ledger = _ledger(app, tmp_path)
    name, rows = _attached_rows(message)
    assert "correction" in name
    assert {r["source_id"]: Decimal(r["amount"]) for r in rows} == {
        s: Decimal(ledger[s]["amount"]) for s in IN_PERIOD
    }
    before = {r["source_id"]: Decimal(r["amount"]) for r in _attached_rows(box.messages[0])[1]}
    after = {s: Decimal(ledger[s]["amount"]) for s in IN_PERIOD}
    assert after != before and all(
        after[s] >= before[s] for s in IN_PERIOD
    )  # the ghost time reached the file
    states = {row["id"]: row["state"] for row in delivery_log(app)}
    assert states[offer.delivery_id] == "superseded"


def test_a_schedule_may_send_corrections_by_itself(app: App) -> None:
    _schedule(app, corrections="send")
    with mailbox() as box:
        mailing = _with_mail(app, box)
        run_deliveries(mailing, on=date(2026, 10, 21))
        with app.catalog.reading() as session:
            scope = resolve_scope(session, customers=["Acme"])
        rerate(app, RerateRequest(scope=scope, ghost_percent=Decimal("5")))
        outcomes = run_deliveries(mailing, on=date(2026, 10, 21)).outcomes
    assert [(o.state, o.kind) for o in outcomes if o.state == "sent"] == [("sent", "correction")]
    assert box.messages[-1]["Subject"].startswith("CORRECTED")


def test_a_run_without_a_date_catches_up_on_every_due_day(app: App) -> None:
    _schedule(app, timezone="UTC", at="00:00")
    created = datetime.now(UTC)
    with mailbox() as box:
        outcomes = run_deliveries(_with_mail(app, box), now=created + timedelta(days=2)).outcomes
    periods = [o.period for o in outcomes if o.state == "sent"]
    first = created.date() - timedelta(days=1)
    assert periods == [(first + timedelta(days=n)).isoformat() for n in range(3)]


def test_schedules_are_checked_listed_and_stopped(app: App) -> None:
    with pytest.raises(InvalidInputError, match="cadence"):
        _schedule(app, cadence="hourly")
    with pytest.raises(InvalidInputError, match="unknown CDR column 'cost'"):
        _schedule(app, columns="source_id,cost")
    with pytest.raises(InvalidInputError, match="time zone"):
        _schedule(app, timezone="Mars/Olympus")
    with pytest.raises(InvalidInputError, match="compressed already"):
        _schedule(app, format="xlsx", compress="zip")
    with pytest.raises(InvalidInputError, match="at least 16 KB"):
        _schedule(app, format="xlsx", max_attachment_bytes=10_000)
    with pytest.raises(InvalidInputError, match="HH:MM"):
        _schedule(app, at="25:00")
    with pytest.raises(InvalidInputError, match="e-mail"):
        _schedule(app, to=["not-an-address"])
    kept = _schedule(app, cadence="weekly", weekday="Friday")
    assert [(s.id, s.weekday, s.timezone) for s in list_schedules(app)] == [(kept, "fri", "America/New_York")]
    remove_schedule(app, kept)
    assert list_schedules(app) == [] and len(list_schedules(app, include_inactive=True)) == 1


def test_a_deferred_correction_is_retried_not_offered_again(app: App) -> None:
    _schedule(app, corrections="send")
    day = date(2026, 10, 21)
    with mailbox() as box:
        run_deliveries(_with_mail(app, box), on=day)
        port = box.port
    with app.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    rerate(app, RerateRequest(scope=scope, ghost_percent=Decimal("5")))
    down = _with_mail(app, port)
    first = [o for o in run_deliveries(down, on=date(2026, 10, 22)).outcomes if o.kind == "correction"]
    assert [o.state for o in first] == ["deferred"]
    assert [o for o in run_deliveries(down, on=date(2026, 10, 22)).outcomes if o.kind == "correction"] == []
    with mailbox(port=port) as box:
        (retried,) = run_deliveries(_with_mail(app, box), on=day).outcomes
    assert (retried.kind, retried.state, retried.delivery_id) == ("correction", "sent", first[0].delivery_id)
    assert box.messages[0]["Subject"].startswith("CORRECTED")
    assert [row["kind"] for row in delivery_log(app)].count("correction") == 1


def test_corrections_are_checked_over_whole_periods_and_never_past_the_runs_date(app: App) -> None:
    """A monthly file is checked while it ended within the look-back (not while it began), and a
    run for an earlier date neither sees nor empties the periods delivered after it."""
    _schedule(app, cadence="monthly", corrections="send")
    with mailbox() as box:
        mailing = _with_mail(app, box)
        (october,) = run_deliveries(mailing, on=date(2026, 11, 1)).outcomes
        assert october.state == "sent" and october.rows > 0
        with app.catalog.reading() as session:
            scope = resolve_scope(session, customers=["Acme"])
        rerate(app, RerateRequest(scope=scope, ghost_percent=Decimal("10")))
        assert run_deliveries(mailing, on=date(2026, 10, 25)).outcomes == []  # before October was sent
        late = run_deliveries(mailing, on=date(2026, 11, 20)).outcomes  # October began 50 days before
    assert [(o.kind, o.state, o.rows) for o in late] == [("correction", "sent", october.rows)]


def test_one_customers_bad_data_or_refused_address_never_stops_or_hides_the_others(
    app: App, tmp_path: Path
) -> None:
    """A control character in a calling number, a recipient the server refuses: that period is
    made readable or reported failed, and every other customer's file still goes."""
    ingest(
        app,
        [
            write_xdrs(
                tmp_path / "odd.csv",
                [("odd", "2026-10-20T16:00:00Z", "60", "1\x0123", "4930123", "acc1", "gw1")],
            )
        ],
    )
    _schedule(app, format="xlsx", cc=["billing@acme.example"])
    _schedule(app, customer="Bob", to=["noc@bob.example"], cc=[], compress="none")
    with pytest.raises(InvalidInputError, match="not an e-mail address: foo@"):
        _schedule(app, customer="Bob", to=["foo@"])
    with pytest.raises(InvalidInputError, match="not an e-mail address"):
        _schedule(app, customer="Bob", to=["noc@bob.example;ops@bob.example"])
    with mailbox(refuse={"billing@acme.example": "450 4.2.0 greylisted"}) as box:
        outcomes = {
            o.customer: o for o in run_deliveries(_with_mail(app, box), on=date(2026, 10, 21)).outcomes
        }
    assert outcomes["Bob"].state == "sent"
    acme = outcomes["Acme"]
    assert acme.state == "failed" and "billing@acme.example (450 4.2.0 greylisted)" in (acme.error or "")
    acme_mail = next(
        m for m, to in zip(box.messages, box.recipients, strict=True) if to == ["noc@acme.example"]
    )
    (attachment,) = list(acme_mail.iter_attachments())
    sheet = load_workbook(io.BytesIO(attachment.get_content())).active
    assert sheet is not None
    assert "1\ufffd23" in [str(cell.value) for row in sheet.iter_rows() for cell in row]
    assert {row["id"]: row["state"] for row in delivery_log(app)}[acme.delivery_id] == "failed"
    bob_mail = next(
        m for m, to in zip(box.messages, box.recipients, strict=True) if to == ["noc@bob.example"]
    )
    (csv_file,) = list(bob_mail.iter_attachments())
    assert csv_file.get_content_type() == "text/csv" and csv_file.get_content_charset() == "utf-8"


def test_a_refused_recipient_is_sent_the_file_alone_once_fixed(app: App) -> None:
    _schedule(app, cc=["billing@acme.example"])
    with mailbox(refuse={"billing@acme.example": "550 5.1.1 mailbox unavailable"}) as box:
        (first,) = run_deliveries(_with_mail(app, box), on=date(2026, 10, 21)).outcomes
    assert first.state == "failed"
    assert f"resend {first.delivery_id} --to billing@acme.example" in (first.error or "")
    with pytest.raises(InvalidInputError, match="not an e-mail address"):
        resend_delivery(app, first.delivery_id, ["billing@acme"])
    with mailbox() as box:
        again = resend_delivery(_with_mail(app, box), first.delivery_id, ["billing@acme.example"])
    assert again.state == "sent" and again.rows == first.rows
    assert box.recipients == [["billing@acme.example"]]  # not the customer's NOC a second time
    assert box.messages[0]["Cc"] is None and box.messages[0]["To"] == "billing@acme.example"


def _many_calls(app: App, tmp_path: Path) -> None:
    start = datetime(2026, 10, 20, 4, tzinfo=UTC)
    many = [
        (
            f"p{i:04d}",
            (start + timedelta(seconds=41 * i)).isoformat(),
            "61",
            f"1{i:09d}",
            "4930123",
            "acc1",
            "gw1",
        )
        for i in range(900)
    ]
    ingest(app, [write_xdrs(tmp_path / "many.csv", many)])


def test_a_recipient_refused_for_one_part_is_still_named_after_the_rest_went_out_later(
    app: App, tmp_path: Path
) -> None:
    _many_calls(app, tmp_path)
    _schedule(app, compress="none", max_attachment_bytes=16_384)
    day = date(2026, 10, 21)
    greylisted = {"billing@acme.example": "450 4.2.0 greylisted"}
    with mailbox(
        script=["250 OK", "451 4.3.0 later", "451 4.3.0 later", "451 4.3.0 later"], refuse=greylisted
    ) as box:
        (first,) = run_deliveries(_with_mail(app, box), on=day).outcomes
    assert first.state == "deferred" and "billing@acme.example" in (first.error or "")
    with mailbox() as box:
        (second,) = run_deliveries(_with_mail(app, box), on=day).outcomes
    assert len(box.messages) == second.parts - 1  # the rest, once each
    assert second.state == "failed" and "billing@acme.example (450" in (second.error or "")


def test_a_retried_copy_goes_to_its_own_addresses_only(app: App) -> None:
    _schedule(app)
    day = date(2026, 10, 21)
    with mailbox() as box:
        (sent,) = run_deliveries(_with_mail(app, box), on=day).outcomes
    port = free_port()  # nothing listens: the copy is deferred
    copy = resend_delivery(_with_mail(app, port), sent.delivery_id or 0, ["audit@acme.example"])
    assert copy.state == "deferred"
    with mailbox(port=port) as box:
        retried = [o for o in run_deliveries(_with_mail(app, box), on=day).outcomes if o.state == "sent"]
    assert [o.delivery_id for o in retried] == [copy.delivery_id]
    assert box.recipients == [["audit@acme.example"]]


class _ClosingBadly(Mailbox):
    """Takes the message, then answers QUIT with an error."""

    async def handle_QUIT(self, server: object, session: object, envelope: object) -> str:
        return "421 4.3.2 shutting down"


def test_a_message_the_server_took_is_sent_once_whatever_it_says_to_quit(app: App) -> None:
    from aiosmtpd.controller import Controller

    _schedule(app)
    box = _ClosingBadly()
    box.port = free_port()
    server = Controller(box, hostname="127.0.0.1", port=box.port)
    server.start()
    try:
        mailing = _with_mail(app, box, smtp_timeout_seconds=2)
        (outcome,) = run_deliveries(mailing, on=date(2026, 10, 21)).outcomes
        assert [o.state for o in run_deliveries(mailing, on=date(2026, 10, 21)).outcomes] == ["skipped"]
    finally:
        server.stop()
    assert outcome.state == "sent" and len(box.messages) == 1


def test_corrections_reach_a_customer_whose_cc_was_refused_and_a_reverted_one_is_withdrawn(app: App) -> None:
    from rerate.services.jobs import revert

    _schedule(app, corrections="offer")
    day = date(2026, 10, 21)
    with mailbox(refuse={"billing@acme.example": "550 5.1.1 no such mailbox"}) as box:
        (first,) = run_deliveries(_with_mail(app, box), on=day).outcomes
    assert first.state == "failed" and box.recipients == [["noc@acme.example"]]  # the NOC has the file
    with app.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    job = rerate(app, RerateRequest(scope=scope, ghost_percent=Decimal("10")))
    with mailbox() as box:
        offered = [o for o in run_deliveries(_with_mail(app, box), on=day).outcomes if o.state == "offered"]
        assert len(offered) == 1 and offered[0].kind == "correction"
        revert(app, job.job_id)
        again = run_deliveries(_with_mail(app, box), on=day).outcomes
    assert not [o for o in again if o.state == "offered"]  # back to what the NOC has: nothing to correct
    states = {row["id"]: row["state"] for row in delivery_log(app)}
    assert states[offered[0].delivery_id] == "superseded"


def test_a_resend_of_a_period_with_an_offered_correction_sends_that_correction(app: App) -> None:
    _schedule(app)
    day = date(2026, 10, 21)
    with mailbox() as box:
        mailing = _with_mail(app, box)
        run_deliveries(mailing, on=day)
        with app.catalog.reading() as session:
            scope = resolve_scope(session, customers=["Acme"])
        rerate(app, RerateRequest(scope=scope, ghost_percent=Decimal("10")))
        (offer,) = [o for o in run_deliveries(mailing, on=day).outcomes if o.state == "offered"]
        (resent,) = run_deliveries(mailing, on=day, resend=True).outcomes
    assert resent.kind == "correction" and box.messages[-1]["Subject"].startswith("CORRECTED")
    assert {row["id"]: row["state"] for row in delivery_log(app)}[offer.delivery_id] == "superseded"
