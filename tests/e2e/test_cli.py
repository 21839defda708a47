"""The CLI contract, run as an operator runs it: a real ``rerate`` process."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.factories import COST, RETAIL, deck_date, write_rates, write_xdrs
from tests.mailbox import mailbox
from tests.switch_samples import asterisk_csv


def rerate(
    home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    rerate(home, "init")
    write_rates(tmp_path / "retail.csv", RETAIL)
    write_rates(tmp_path / "cost.csv", COST)
    rerate(
        home,
        "tariff",
        "import",
        "retail",
        str(tmp_path / "retail.csv"),
        "--currency",
        "EUR",
        "--allow-past",
        "--yes",
    )
    rerate(
        home,
        "tariff",
        "import",
        "cost",
        str(tmp_path / "cost.csv"),
        "--currency",
        "EUR",
        "--allow-past",
        "--country",
        "4=ZZ",
    )
    rerate(home, "customer", "add", "Acme", "--tariff", "retail")
    rerate(home, "account", "add", "acc1", "--customer", "Acme")
    rerate(home, "vendor", "add", "Carrier", "--tariff", "cost", "--connection", "gw1", "--connection", "gw2")
    return home


def test_operator_flow_from_init_to_export(home: Path, tmp_path: Path) -> None:
    xdrs = write_xdrs(
        tmp_path / "x.csv",
        [
            ("a1", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
            ("a2", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "nobody", "gw2"),
            ("a3", "not a time", "61", "1", "4420794600", "acc1", "gw2"),
        ],
    )
    result = rerate(home, "ingest", str(xdrs), "--json")
    (collection,) = json.loads(result.stdout)
    assert {k: collection[k] for k in ("collection_id", "read", "loaded", "duplicates", "rejected")} == {
        "collection_id": 1,
        "read": 3,
        "loaded": 2,
        "duplicates": 0,
        "rejected": 1,
    }
    assert Path(collection["rejects_path"]).exists()

    out = tmp_path / "all.csv"
    rerate(home, "xdr", "export", "--out", str(out))
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    required = (
        "source_id, xdr_id, collection_id, connect_time, duration, cli, cld, account, customer, status, reason, "
        "tariff, prefix, billed, amount, currency, vendor, vendor_tariff, vendor_status, vendor_reason, "
        "vendor_prefix, vendor_billed, cost"
    ).split(", ")
    assert set(required) <= set(rows[0])
    by_id = {r["source_id"]: r for r in rows}
    assert (by_id["a1"]["amount"], by_id["a1"]["tariff"], by_id["a1"]["currency"]) == (
        "0.020000000",
        "retail",
        "EUR",
    )
    assert by_id["a2"]["reason"] == "unknown_account"

    failed = tmp_path / "failed.parquet"
    rerate(home, "xdr", "export", "--out", str(failed), "--format", "parquet", "--status", "failed")
    import pyarrow.parquet as pq

    assert pq.read_table(failed).column("source_id").to_pylist() == ["a2"]

    only = tmp_path / "acme.csv"
    rerate(
        home,
        "xdr",
        "export",
        "--out",
        str(only),
        "--customer",
        "Acme",
        "--from",
        "2026-10-20T00:00:00Z",
        "--to",
        "2026-10-21T00:00:00Z",
    )
    with only.open() as handle:
        assert [r["source_id"] for r in csv.DictReader(handle)] == ["a1"]


def test_errors_are_one_clear_line_not_a_traceback(home: Path, tmp_path: Path) -> None:
    missing = rerate(home, "customer", "add", "Beta", "--tariff", "nope", check=False)
    assert missing.returncode == 1
    assert "no tariff named 'nope'" in missing.stderr and "Traceback" not in missing.stderr

    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    bad = rerate(home, "ingest", str(junk), check=False)
    assert bad.returncode == 1 and "missing column(s)" in bad.stderr and "Traceback" not in bad.stderr

    bad_time = rerate(home, "customer", "set-tariff", "Acme", "cost", "--from", "soon", check=False)
    assert bad_time.returncode == 2 and "not an ISO time" in bad_time.stderr


def test_tariff_import_skips_past_rows_unless_told_otherwise(home: Path, tmp_path: Path) -> None:
    deck = write_rates(
        tmp_path / "old.csv", [{"prefix": "33", "first_price": "0.1", "effective_from": "2020-01-01"}]
    )
    skipped = json.loads(rerate(home, "tariff", "import", "retail", str(deck), "--json").stdout)
    assert skipped["summary"]["skipped_past"] == 1 and skipped["summary"]["created"] == 0
    assert skipped["rows"][0]["status"] == "past"
    as_now = json.loads(
        rerate(home, "tariff", "import", "retail", str(deck), "--past-as-now", "--json").stdout
    )
    assert as_now["summary"]["created"] == 1
    assert as_now["rows"][0]["effective_from"] > "2026-01-01"


def test_set_tariff_and_account_tariff(home: Path) -> None:
    rerate(home, "customer", "set-tariff", "Acme", "cost", "--from", "2026-12-01T00:00:00Z")
    rerate(home, "account", "set-tariff", "acc1", "retail", "--from", "2026-12-01T00:00:00Z")
    again = rerate(
        home, "account", "set-tariff", "acc1", "retail", "--from", "2026-12-01T00:00:00Z", check=False
    )
    assert again.returncode == 1 and "not overwritten" in again.stderr


def test_demo_builds_a_world_and_summarizes_it(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = rerate(home, "demo", "--xdrs", "20000", "--destinations", "2000")
    assert "Summary per customer" in result.stdout
    assert "All customers" in result.stdout
    assert "Try next" in result.stdout
    assert "Preview (dry run, nothing written)" in result.stdout and "Applied as job" in result.stdout
    again = rerate(
        home, "demo", "--xdrs", "5000", "--destinations", "1000"
    )  # a demo home is rebuilt, not appended to
    assert "All customers" in again.stdout
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    refused = rerate(foreign, "demo", "--xdrs", "1000", check=False)
    assert refused.returncode == 1 and "did not create" in refused.stderr
    assert (foreign / "keep.txt").exists()


def test_correction_json_contract(home: Path, tmp_path: Path) -> None:
    xdrs = write_xdrs(
        tmp_path / "x.csv", [("a1", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    rerate(home, "ingest", str(xdrs))
    preview = json.loads(
        rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--dry-run", "--json").stdout
    )
    assert {"job_id", "state", "in_scope", "changed", "before", "after", "delta", "adjustments"} <= set(
        preview
    )
    assert (preview["state"], preview["changed"]) == ("planned", 1)
    refused = rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--json", check=False)
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert json.loads(refused.stdout)["state"] == "planned"  # stdout stays JSON: the preview
    applied = json.loads(
        rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--yes", "--json").stdout
    )
    assert (applied["state"], applied["changed"]) == ("applied", 1)
    jobs = json.loads(rerate(home, "jobs", "list", "--json").stdout)
    assert [j["state"] for j in jobs][:2] == ["applied", "planned"]
    rerate(home, "jobs", "revert", str(applied["job_id"]), "--yes")
    rolled = json.loads(rerate(home, "collection", "rollback", "1", "--yes", "--json").stdout)
    assert rolled["changed"] == 1
    listed = json.loads(rerate(home, "collection", "list", "--json").stdout)
    assert listed[0]["state"] == "rolled back"
    empty = rerate(home, "rerate", "--tariff", "cost", check=False)
    assert empty.returncode == 2 and "empty scope" in empty.stderr
    compacted = json.loads(rerate(home, "ledger", "compact", "--json").stdout)
    assert compacted["days"] == 0  # one file a day already
    vacuumed = json.loads(
        rerate(home, "ledger", "vacuum", "--retain-hours", "0", "--dry-run", "--json").stdout
    )
    assert vacuumed["dry_run"] and set(vacuumed["files"]) == {
        "xdrs",
        "daily_totals",
        "prefix_totals",
        "revisions",
    }
    negative = rerate(home, "ledger", "vacuum", "--retain-hours", "-1", check=False)
    assert negative.returncode == 2 and "--retain-hours" in negative.stderr
    pruned = json.loads(rerate(home, "jobs", "prune-diffs", "--older-than", "0", "--json").stdout)
    assert preview["job_id"] in pruned["jobs"] and applied["job_id"] not in pruned["jobs"]
    gone = rerate(home, "jobs", "diff", str(preview["job_id"]), check=False)
    assert gone.returncode == 1 and "gone" in gone.stderr
    rerate(home, "jobs", "diff", str(applied["job_id"]))  # an applied job's diff is kept


def test_schedules_and_closed_periods_are_plain_before_anything_is_applied(
    home: Path, tmp_path: Path
) -> None:
    """An empty --at is refused (not "now"); a schedule shows when it runs; a preview says which
    closed periods it touches, and the apply is refused before the prompt; money is never 0E-9."""
    xdrs = write_xdrs(
        tmp_path / "x.csv", [("a1", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    rerate(home, "ingest", str(xdrs))
    unset = rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--at", "", "--yes", check=False)
    assert unset.returncode == 2 and "--at: not an ISO time" in unset.stderr
    typo = rerate(home, "rerate", "--customer", "Acme", "--ghost-percent", "abc", "--yes", check=False)
    assert typo.returncode == 2 and "--ghost-percent must be a decimal number" in typo.stderr
    which = rerate(home, "reprocess", "--dry-run", check=False)
    assert which.returncode == 2 and "--failed or --all" in which.stderr
    assert json.loads(rerate(home, "jobs", "list", "--json").stdout) == []

    rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--at", "2099-01-01T06:00:00Z")
    assert "scheduled for 2099-01-01 06:00 UTC" in rerate(home, "jobs", "list").stdout
    (scheduled,) = json.loads(rerate(home, "jobs", "list", "--json").stdout)
    assert scheduled["scheduled_for"].startswith("2099-01-01T06:00:00")
    rerate(home, "jobs", "cancel", str(scheduled["job_id"]))

    rerate(home, "period", "close", "Acme", "--period", "2026-10")
    refused = rerate(home, "rerate", "--customer", "Acme", "--ghost-percent", "10", check=False)
    assert "closed billing periods touched: Acme 2026-10" in refused.stdout  # the preview says so
    assert refused.returncode == 1 and "--allow-closed" in refused.stderr
    states = [j["state"] for j in json.loads(rerate(home, "jobs", "list", "--json").stdout)]
    assert states == ["planned", "cancelled"]  # the preview only: no apply was started
    unconfirmed = rerate(home, "jobs", "apply", str(len(states)), "--json", check=False)
    assert unconfirmed.returncode == 1 and "--yes" in json.loads(unconfirmed.stdout)["error"]

    just_now = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--at", just_now)
    due = rerate(home, "jobs", "run-due", "--json", check=False)
    (outcome,) = json.loads(due.stdout)  # one object per job, whatever became of it
    assert due.returncode == 3 and outcome["state"] == "failed" and outcome["job_id"] == len(states) + 1
    assert "closed billing period" in outcome["message"]

    applied = json.loads(
        rerate(
            home,
            "rerate",
            "--customer",
            "Acme",
            "--tariff",
            "cost",
            "--side",
            "customer",
            "--allow-closed",
            "--yes",
            "--json",
        ).stdout
    )
    assert applied["state"] == "applied"
    shown = rerate(home, "jobs", "show", str(applied["job_id"]), "--json").stdout
    assert "E-" not in shown
    ((*_, amount_delta, cost_delta),) = json.loads(shown)["totals"]["periods"]
    assert cost_delta == "0.000000000" and amount_delta != cost_delta  # the customer side only
    unconfirmed = rerate(home, "jobs", "revert", str(applied["job_id"]), "--json", check=False)
    assert unconfirmed.returncode == 1 and "--yes" in json.loads(unconfirmed.stdout)["error"]


def test_rate_deck_preview_json_contract_then_import_show_and_off_peak(home: Path, tmp_path: Path) -> None:
    deck = tmp_path / "carrier.csv"
    day = deck_date()  # in the future, so the rows are new rather than skipped as past
    deck.write_text(
        f"Carrier rates, valid from {day:%d-%b-%y}\n\n"
        '"Destination";"Code";"Rate";"Billing";"Effective date"\n'
        f'"UK, London";"4420; 4421";"0,0100";"60/60";"{day:%d-%b-%y}"\n'
        f'"Typo";"44x";"0,1";"1/1";"{day:%d-%b-%y}"\n'
    )
    preview = rerate(home, "tariff", "import", "X", str(deck), "--currency", "USD", "--preview", "--json")
    report = json.loads(preview.stdout)
    assert report["mapping"]["prefix"] == "Code" and report["mapping"]["price"] == "Rate"
    assert [r["prefix"] for r in report["rows"]] == ["4420", "4421", "44x"]
    first = report["rows"][0]
    assert set(first) >= {
        "line",
        "prefix",
        "first_price",
        "next_price",
        "first_interval",
        "next_interval",
        "connect_fee",
        "effective_from",
        "status",
        "error",
    }
    assert (first["line"], first["first_price"], first["next_interval"], first["status"]) == (
        4,
        "0.0100",
        60,
        "new",
    )
    assert report["summary"]["skipped_errors"] == 1 and report["summary"]["total_processed"] == 3
    absent = rerate(home, "tariff", "show", "X", check=False)
    assert absent.returncode == 1 and "no tariff" in absent.stderr  # the preview wrote nothing

    rerate(home, "tariff", "import", "X", str(deck), "--currency", "USD", "--yes")
    shown = json.loads(rerate(home, "tariff", "show", "X", "--at", f"{day}T12:00:00Z", "--json").stdout)
    assert [(r["prefix"], r["first_price"]) for r in shown["rates"]] == [("4420", "0.01"), ("4421", "0.01")]
    rerate(
        home, "tariff", "set-off-peak", "X", "--timezone", "Europe/London", "--window", "mon-fri 20:00-08:00"
    )
    shown = json.loads(rerate(home, "tariff", "show", "X", "--json").stdout)
    assert (shown["timezone"], shown["off_peak"]) == ("Europe/London", ["mon,tue,wed,thu,fri 20:00-08:00"])
    bad = rerate(home, "tariff", "set-off-peak", "X", "--timezone", "Mars/Base", check=False)
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr and "Traceback" not in bad.stderr


def test_ingest_a_drop_folder_by_template_json_contract(home: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    asterisk_csv(drop / "Master-1.csv")
    (drop / "Master-2.csv.gz").write_bytes(
        gzip.compress(asterisk_csv(tmp_path / "m2.csv", width=16).read_bytes())
    )
    first = json.loads(rerate(home, "ingest", str(drop), "--template", "asterisk-csv", "--json").stdout)
    assert [Path(r["file"]).name for r in first] == ["Master-1.csv", "Master-2.csv.gz"]
    for report in first:
        assert {
            "collection_id",
            "read",
            "loaded",
            "duplicates",
            "rejected",
            "skipped",
            "rejects_path",
        } <= set(report)
        assert (report["state"], report["read"], report["skipped"]) == ("loaded", 3, 1)
    assert (first[0]["loaded"], first[1]["loaded"]) == (2, 2)
    again = json.loads(
        rerate(home, "ingest", str(drop / "*.csv*"), "--template", "asterisk-csv", "--json").stdout
    )
    assert [r["state"] for r in again] == [
        "already_loaded",
        "already_loaded",
    ]  # a scheduled re-run loads nothing
    empty = rerate(home, "ingest", str(drop / "*.xml"), "--template", "asterisk-csv")
    assert empty.returncode == 0 and "nothing to load" in empty.stderr  # a quiet drop folder
    assert json.loads(rerate(home, "ingest", str(drop / "*.xml"), "--json").stdout) == []
    beside = rerate(
        home, "ingest", str(drop / "*.xml"), str(drop / "*.csv*"), "--template", "asterisk-csv", "--json"
    )
    assert [r["state"] for r in json.loads(beside.stdout)] == ["already_loaded", "already_loaded"]
    assert f"nothing to load from {drop / '*.xml'}: no file there" in " ".join(beside.stderr.split())
    unnamed = rerate(home, "ingest", str(drop / "*.xml"), "--template", "", check=False)  # even quiet
    assert unnamed.returncode == 2 and "give the template's name" in unnamed.stderr

    listed = json.loads(rerate(home, "template", "list", "--json").stdout)
    assert {"asterisk-csv", "asterisk-custom", "freeswitch-csv", "cucm", "canonical"} <= {
        t["name"] for t in listed
    }
    shown = json.loads(rerate(home, "template", "show", "cucm", "--json").stdout)
    assert shown["source"]["type_row"] is True and "connect_time" in shown["fields"]
    own = tmp_path / "mine.toml"
    own.write_text('[fields]\nsource_id = "id"\nconnect_time = { column = "at", format = "epoch" }\n')
    bad = rerate(home, "template", "add", "mine", str(own), check=False)
    assert bad.returncode != 0 and "lacks duration, cld" in bad.stderr and "Traceback" not in bad.stderr
    own.write_text(
        own.read_text() + 'duration = "secs"\ncld = "to"\naccount = "from"\nvendor = { value = "gw1" }\n'
    )
    rerate(home, "template", "add", "mine", str(own))
    mine = tmp_path / "mine.csv"
    mine.write_text("id,at,secs,to,from\nm1,1792490400,60,4420794600,acc1\n")
    (loaded,) = json.loads(rerate(home, "ingest", str(mine), "--template", "mine", "--json").stdout)
    assert (loaded["loaded"], loaded["template"]) == (1, "mine")


def test_mediation_rules_and_trace_from_the_command_line(home: Path, tmp_path: Path) -> None:
    added = json.loads(
        rerate(home, "mediation", "rule", "add", "number", "--match", "0", "--replace", "44", "--json").stdout
    )
    assert "prefix replaced by '44'" in added["in_words"]
    bad = rerate(home, "mediation", "rule", "add", "account", "--match", "10.0.0.5", check=False)
    assert bad.returncode != 0 and "needs the identifier" in bad.stderr and "Traceback" not in bad.stderr
    path = write_xdrs(
        tmp_path / "x.csv", [("t1", "2026-10-20T10:00:00Z", "60", "1", "02079460000", "acc1", "gw1")]
    )
    (row,) = json.loads(rerate(home, "mediation", "test", str(path), "--limit", "5", "--json").stdout)
    assert {"line", "raw", "canonical", "mediated", "rated", "outcome"} <= set(row)
    assert (row["mediated"]["number"], row["outcome"]) == ("442079460000", "rated")
    shown = rerate(home, "mediation", "test", str(path)).stdout
    assert "line 2: rated" in shown and "mediated" in shown
    listed = json.loads(rerate(home, "mediation", "rule", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [added["id"]]
    rerate(home, "mediation", "rule", "remove", str(added["id"]))
    assert json.loads(rerate(home, "mediation", "rule", "list", "--json").stdout) == []


def test_report_summary_csv_contract(home: Path, tmp_path: Path) -> None:
    rows = [("r1", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    rerate(home, "ingest", str(write_xdrs(tmp_path / "x.csv", rows)))
    text = rerate(
        home, "report", "summary", "--period", "2026-10", "--group-by", "customer", "--format", "csv"
    ).stdout
    parsed = list(csv.DictReader(text.splitlines()))
    assert {"customer", "currency", "calls", "seconds", "billed", "revenue", "cost", "margin"} <= set(
        parsed[0]
    )
    (line,) = [r for r in parsed if r["section"] == "line"]
    assert (line["customer"], line["calls"], line["seconds"]) == ("Acme", "1", "61")
    by_day = rerate(home, "report", "summary", "--group-by", "day,vendor", "--format", "json").stdout
    assert json.loads(by_day)["lines"][0]["day"] == "2026-10-20"
    shown = rerate(home, "report", "summary", "--period", "2026-10").stdout
    assert "Acme" in shown and "Totals" in shown
    bad = rerate(home, "report", "summary", "--group-by", "planet", check=False)
    assert bad.returncode != 0 and "--group-by" in bad.stderr and "Traceback" not in bad.stderr
    out = tmp_path / "r.xlsx"
    rerate(home, "report", "summary", "--format", "xlsx", "--out", str(out))
    assert out.stat().st_size > 0
    assert json.loads(rerate(home, "report", "failures", "--json").stdout) == []


def test_cdr_delivery_from_the_command_line(home: Path, tmp_path: Path) -> None:
    rows = [
        ("d1", "2026-10-20T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
        ("d2", "2026-10-21T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1"),
    ]
    rerate(home, "ingest", str(write_xdrs(tmp_path / "x.csv", rows)))
    added = rerate(
        home,
        "delivery",
        "add",
        "Acme",
        "--email",
        "noc@acme.example",
        "--cadence",
        "daily",
        "--at",
        "07:30",
        "--timezone",
        "Europe/Berlin",
        "--columns",
        "source_id,connect_time:Start,amount",
        "--compress",
        "none",
        "--json",
    )
    schedule = json.loads(added.stdout)
    assert (schedule["cadence"], schedule["at"], schedule["compress"]) == ("daily", "07:30", "none")
    listed = json.loads(rerate(home, "delivery", "list", "--json").stdout)
    assert [s["id"] for s in listed] == [schedule["id"]]
    with mailbox() as box:
        env = {"RERATE_SMTP_HOST": "127.0.0.1", "RERATE_SMTP_PORT": str(box.port), "RERATE_SMTP_TLS": "none"}
        run = json.loads(rerate(home, "delivery", "run", "--date", "2026-10-21", "--json", env=env).stdout)
        again = rerate(home, "delivery", "run", "--date", "2026-10-21", env=env).stdout
    assert (run["sent"], run["deliveries"][0]["period"], run["deliveries"][0]["rows"]) == (1, "2026-10-20", 1)
    assert "delivered already" in again
    (attachment,) = list(box.messages[0].iter_attachments())
    header, *lines = list(csv.reader(attachment.get_content().splitlines()))
    assert header == ["source_id", "Start", "amount"] and lines == [["d1", "2026-10-20 12:00:00", "0.02"]]
    (logged,) = json.loads(rerate(home, "delivery", "log", "--json").stdout)
    assert logged["state"] == "sent" and logged["message_ids"] == run["deliveries"][0]["message_ids"]
    down = rerate(
        home, "delivery", "run", "--date", "2026-10-22", env={**env, "RERATE_SMTP_ATTEMPTS": "1"}, check=False
    )
    assert down.returncode == 3 and "deferred" in down.stdout and "Traceback" not in down.stderr
    bad = rerate(home, "delivery", "add", "Acme", "--email", "x@y.z", "--cadence", "hourly", check=False)
    assert bad.returncode == 2 and "cadence" in bad.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """``rerate serve`` in its own process, and plain HTTP calls to it."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rerate.entrypoints.cli",
                "--home",
                str(home),
                "serve",
                "--port",
                str(self.port),
                "--poll",
                "0.2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        for _ in range(150):
            try:
                if self.call("/api/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the service did not start")

    def call(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sign_in(self, name: str, password: str) -> dict[str, str]:
        form = urllib.parse.urlencode({"username": name, "password": password}).encode()
        status, body = self.call("/api/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, body
        return {
            "Authorization": f"Bearer {json.loads(body)['access_token']}",
            "Content-Type": "application/json",
        }

    def finished(self, job_id: int, headers: dict[str, str]) -> dict[str, object]:
        for _ in range(300):
            job: dict[str, object] = json.loads(self.call(f"/api/jobs/{job_id}", headers=headers)[1])
            if job["finished"]:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


def test_serve_with_users_tokens_and_a_queued_rerating(home: Path, tmp_path: Path) -> None:
    """The service's outside contract: serve, user add, health, token, jobs, rerate, openapi, login page."""
    xdrs = write_xdrs(
        tmp_path / "x.csv", [("a1", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    rerate(home, "ingest", str(xdrs))
    fresh = tmp_path / "fresh"  # `init` makes the first admin and shows the password once
    created = json.loads(rerate(fresh, "init", "--json").stdout)
    assert created["admin_created"] and len(created["admin_password"]) >= 10
    assert not json.loads(rerate(fresh, "init", "--json").stdout)["admin_created"]
    added = json.loads(rerate(home, "user", "add", "fin", "--role", "finance", "--json").stdout)
    rerate(home, "user", "add", "ro", "--role", "readonly", "--password", "read only please")
    refused = rerate(home, "user", "add", "x", "--role", "boss", check=False)
    assert refused.returncode != 0 and "unknown role" in refused.stderr + refused.stdout
    served = Served(home)
    try:
        assert served.call("/api/jobs")[0] == 401
        finance = served.sign_in("fin", added["password"])
        status, body = served.call(
            "/api/rerate", json.dumps({"customer": "Acme", "tariff": "cost"}).encode(), finance
        )
        assert status == 202
        job_id = json.loads(body)["job_id"]
        assert served.finished(job_id, finance)["state"] == "applied"
        assert any(j["job_id"] == job_id for j in json.loads(served.call("/api/jobs", headers=finance)[1]))
        readonly = served.sign_in("ro", "read only please")
        status, body = served.call(
            "/api/rerate", json.dumps({"customer": "Acme", "dry_run": True}).encode(), readonly
        )
        assert status == 403 and "dry_run" in body
        assert "/api/rerate" in json.loads(served.call("/openapi.json")[1])["paths"]
        status, page = served.call("/")
        assert status == 200 and "Sign in to rerate" in page
    finally:
        served.stop()
    listed = json.loads(rerate(home, "user", "list", "--json").stdout)
    assert {u["name"]: u["role"] for u in listed} == {"admin": "admin", "fin": "finance", "ro": "readonly"}
    audit = json.loads(rerate(home, "audit", "--json").stdout)
    assert any(e["actor"] == "fin" and e["action"] == "job.applied" for e in audit)
    assert any(e["actor"] == "ro" and e["action"] == "access.denied" for e in audit)


def test_a_job_whose_process_dies_fails_and_leaves_the_ledger_as_it_was(home: Path, tmp_path: Path) -> None:
    """The job's child process is killed between its Delta commits: the service marks the job failed,
    keeps serving, and the ledger shows exactly what it showed before."""
    xdrs = write_xdrs(
        tmp_path / "x.csv", [("a1", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    rerate(home, "ingest", str(xdrs))
    rerate(home, "user", "add", "noc", "--role", "noc", "--password", "network ops 24x7")
    before = json.loads(rerate(home, "report", "summary", "--format", "json").stdout)["totals"]
    served = Served(home, env={"RERATE_CRASH_AT": "rerate.revisions_committed"})
    try:
        noc = served.sign_in("noc", "network ops 24x7")
        status, body = served.call(
            "/api/rerate", json.dumps({"customer": "Acme", "tariff": "cost"}).encode(), noc
        )
        assert status == 202
        job = served.finished(json.loads(body)["job_id"], noc)
        assert job["state"] == "failed" and "partial files were removed" in str(job["error"])
        assert served.call("/api/health")[0] == 200
        summary = json.loads(served.call("/api/reports/summary", headers=noc)[1])
        assert summary["totals"] == before
    finally:
        served.stop()
    rerun = json.loads(
        rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--yes", "--json").stdout
    )
    assert rerun["state"] == "applied" and rerun["changed"] == 1  # the next writer cleaned up and applied


def test_a_long_lived_api_token_from_the_command_line(home: Path) -> None:
    rerate(home, "user", "add", "billing-bot", "--role", "readonly", "--password", "bots have passwords")
    made = json.loads(rerate(home, "user", "token", "billing-bot", "--days", "30", "--json").stdout)
    assert made["role"] == "readonly" and len(made["access_token"]) > 30
    missing = rerate(home, "user", "token", "nobody", check=False)
    assert missing.returncode != 0 and "no active user" in missing.stdout + missing.stderr
    served = Served(home)
    try:
        bearer = {"Authorization": f"Bearer {made['access_token']}"}
        status, body = served.call("/api/me", headers=bearer)
        assert status == 200 and json.loads(body)["name"] == "billing-bot"
    finally:
        served.stop()


def test_template_errors_are_printed_whole_and_a_folder_is_not_a_template(home: Path, tmp_path: Path) -> None:
    """Messages quoting TOML tables keep their brackets (no console markup eats them)."""
    missing = tmp_path / "missing_cld.toml"
    missing.write_text(
        '[fields]\nsource_id = "a"\nconnect_time = { column = "b", format = "iso" }\nduration = "c"\n'
    )
    result = rerate(home, "template", "add", "mine", str(missing), check=False)
    assert result.returncode != 0 and "[fields] lacks cld" in result.stderr
    folder = rerate(home, "template", "add", "mine", str(tmp_path), check=False)
    assert folder.returncode != 0 and "cannot read" in folder.stderr and "Traceback" not in folder.stderr


def test_hostile_inputs_get_one_line_errors_and_change_nothing(home: Path, tmp_path: Path) -> None:
    xdrs = write_xdrs(
        tmp_path / "x.csv", [("a1", "2026-10-20T11:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    rerate(home, "ingest", str(xdrs))
    # A dry run never becomes a scheduled change.
    scheduled = rerate(
        home,
        "rerate",
        "--customer",
        "Acme",
        "--ghost-percent",
        "50",
        "--dry-run",
        "--at",
        "2020-01-01T00:00:00Z",
        check=False,
    )
    assert scheduled.returncode == 2 and "a dry run runs now" in scheduled.stderr
    assert json.loads(rerate(home, "jobs", "list", "--json").stdout) == []
    # Applying a planned job needs --yes when no one can be asked.
    plan = json.loads(
        rerate(home, "rerate", "--customer", "Acme", "--tariff", "cost", "--dry-run", "--json").stdout
    )
    unasked = rerate(home, "jobs", "apply", str(plan["job_id"]), "--json", check=False)
    assert unasked.returncode == 1 and "--yes" in unasked.stderr
    assert [j["state"] for j in json.loads(rerate(home, "jobs", "list", "--json").stdout)] == ["planned"]
    # Names are data, not markup: saved, listed and reported as they are.
    rerate(home, "customer", "add", "[/]", "--tariff", "retail")
    rerate(home, "account", "add", "acc9", "--customer", "[/]")
    odd = write_xdrs(
        tmp_path / "odd.csv", [("o1", "2026-10-21T11:00:00Z", "61", "1", "4420794600", "acc9", "gw1")]
    )
    rerate(home, "ingest", str(odd))
    summary = rerate(home, "report", "summary", "--period", "2026-10")
    assert "[/]" in summary.stdout and "Traceback" not in summary.stderr
    found = json.loads(rerate(home, "xdr", "search", "--number", "44207", "--json").stdout)
    assert sorted(x["source_id"] for x in found) == ["a1", "o1"]
    theirs = rerate(home, "xdr", "search", "--customer", "[/]").stdout
    assert "o1" in theirs and "a1" not in theirs and "[/]" in theirs
    for args, message in [
        (("jobs", "show", "99999999999999999999"), "out of range"),
        (("rerate", "--customer", "Acme", "--ghost-percent", "abc", "--dry-run"), "must be a decimal number"),
        (("rerate", "--collection", "abc", "--dry-run"), "not a collection id"),
        (("xdr", "export", "--out", str(tmp_path)), "is a folder"),
        (("report", "summary", "--format", "csv", "--out", str(tmp_path)), "Is a directory"),
    ]:
        result = rerate(home, *args, check=False)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, args


def test_a_command_on_a_missing_home_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "rerate-hmoe"
    result = rerate(typo, "jobs", "list", check=False)
    assert result.returncode == 1 and "no rerate home" in result.stderr and not typo.exists()


def test_mistakes_a_script_or_an_operator_makes_are_refused_before_anything_changes(
    home: Path, tmp_path: Path
) -> None:
    """JSON commands answer errors in JSON; past schedules, foreign currencies and typos are refused."""
    missing_job = rerate(home, "jobs", "show", "424242", "--json", check=False)
    error = json.loads(missing_job.stdout)
    assert missing_job.returncode == error["exit_code"] != 0 and "424242" in error["error"]
    assert "424242" in missing_job.stderr  # the operator's line stays
    shown = json.loads(rerate(home, "tariff", "show", "retail", "--json", "--limit", "1").stdout)
    assert len(shown["rates"]) == 1 and shown["rates_in_force"] > 1
    everything = json.loads(rerate(home, "tariff", "show", "retail", "--json").stdout)
    assert len(everything["rates"]) == shown["rates_in_force"]
    scheduled = "rerate --customer Acme --tariff cost --at 2020-01-01T00:00Z --yes".split()
    past = rerate(home, *scheduled, check=False)
    assert past.returncode == 2 and "in the past" in past.stderr
    assert json.loads(rerate(home, "jobs", "list", "--json").stdout) == []
    nowhere = tmp_path / "no-such-folder" / "x.csv"
    export = rerate(home, "xdr", "export", "--out", str(nowhere), check=False)
    assert export.returncode == 2 and "not a folder" in export.stderr and not nowhere.parent.exists()
    rerate(
        home, "tariff", "import", "dollars", str(tmp_path / "cost.csv"), "--currency", "USD", "--allow-past"
    )
    foreign = rerate(
        home, "customer", "set-tariff", "Acme", "dollars", "--from", "2026-11-01T00:00:00Z", check=False
    )
    assert foreign.returncode == 1 and "billed in EUR" in foreign.stderr
    own = rerate(home, "account", "add", "acc7", "--customer", "Acme", "--tariff", "dollars", check=False)
    assert own.returncode == 1 and "--allow-other-currency" in own.stderr
    accounts = json.loads(rerate(home, "account", "list", "--customer", "Acme", "--json").stdout)
    assert [a["identifier"] for a in accounts] == ["acc1"]
    rerate(
        home,
        "customer",
        "set-tariff",
        "Acme",
        "dollars",
        "--from",
        "2026-11-01T00:00:00Z",
        "--allow-other-currency",
    )
    (acme,) = json.loads(rerate(home, "customer", "list", "--json").stdout)
    assert (acme["currency"], acme["tariff"], acme["accounts"]) == ("EUR", "dollars", 1)
    history = rerate(home, "customer", "show", "Acme").stdout
    assert "retail" in history and "2026-11-01 00:00:00 UTC" in history and "acc1" in history
    listed = rerate(home, "tariff", "list").stdout
    assert all(name in listed for name in ("retail", "cost", "dollars"))
    (carrier,) = json.loads(rerate(home, "vendor", "list", "--json").stdout)
    assert (carrier["tariff"], carrier["connections"]) == ("cost", ["gw1", "gw2"])
    empty = tmp_path / "not-a-home"
    empty.mkdir()
    unready = rerate(empty, "jobs", "list", check=False)
    assert unready.returncode == 1 and "not initialized" in unready.stderr and list(empty.iterdir()) == []


@pytest.mark.parametrize("chunk", ["0", "-1", "abc"])
def test_a_bad_setting_in_the_environment_is_refused_before_anything_is_loaded(
    home: Path, tmp_path: Path, chunk: str
) -> None:
    """A chunk of 0 MB once read nothing, recorded the file as loaded, and kept it out for good."""
    path = asterisk_csv(tmp_path / "Master.csv")
    refused = rerate(
        home,
        "ingest",
        str(path),
        "--template",
        "asterisk-csv",
        check=False,
        env={"RERATE_INGEST_CHUNK_MB": chunk},
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"RERATE_INGEST_CHUNK_MB='{chunk}'" in refused.stderr
    loaded = json.loads(rerate(home, "ingest", str(path), "--template", "asterisk-csv", "--json").stdout)
    assert [(r["state"], r["loaded"]) for r in loaded] == [("loaded", 2)]


def test_help_texts_keep_their_bracketed_defaults(tmp_path: Path) -> None:
    """Rich reads [text] as markup: the defaults the help texts give in brackets must still show."""
    for args, shown in (
        ((), "Home directory of catalog and ledger [default: ./rerate-home]."),
        (("tariff", "import"), "CSV separator [detected]."),
        (("tariff", "import"), 'CSV quote character ["].'),
        (("tariff", "show"), "Rates listed [table: 50; JSON: every rate in force]."),
        (("delivery", "add"), "Time zone of the days covered [default: the customer's]."),
    ):
        helped = rerate(tmp_path / "home", *args, "--help")
        assert shown in helped.stdout, (args, helped.stdout)
