"""Ingest through import templates: real switch layouts, re-saved files, compressed files, folders."""

from __future__ import annotations

import csv
import gzip
import lzma
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Collection, ImportTemplate
from rerate.services.errors import InvalidInputError, NotFoundError
from rerate.services.export import export_xdrs
from rerate.services.ingest import CollectionReport, expand_sources, ingest
from rerate.services.mediation_trace import trace
from rerate.services.rollback import collections
from rerate.services.xdr_templates import (
    TEMPLATE_KIND,
    add_template,
    list_templates,
    show_template,
    template_toml,
)
from tests.factories import headed_template, write_xdrs
from tests.switch_samples import (
    CALLS,
    Call,
    asterisk_csv,
    asterisk_custom,
    asterisk_resaved,
    cucm,
    freeswitch_csv,
)


def _export(app: App, tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        return {row["source_id"]: row for row in csv.DictReader(handle)}


def _one(app: App, path: Path, template: str) -> CollectionReport:
    (report,) = ingest(app, [path], template=template)
    assert report.state == "loaded", report.error
    return report


def _counts(report: CollectionReport) -> tuple[int, int, int, int, int]:
    return report.read, report.loaded, report.duplicates, report.rejected, report.skipped


def _reasons(report: CollectionReport) -> dict[int, str]:
    """The rejects file's reasons by line."""
    with open(str(report.rejects_path)) as handle:
        return {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}


@pytest.mark.parametrize("width", [16, 18, 21])
def test_asterisk_cdr_csv_with_and_without_the_optional_columns(
    world: App, tmp_path: Path, width: int
) -> None:
    report = _one(world, asterisk_csv(tmp_path / "Master.csv", width=width), "asterisk-csv")
    assert _counts(report) == (3, 2, 0, 0, 1)  # the unanswered call is skipped and counted
    rows = _export(world, tmp_path)
    if width >= 17:
        assert set(rows) == {"1729500000.101", "1729500000.102"}
    else:  # no uniqueid column: the call is identified by a hash of its start, parties and channels
        assert all(re.fullmatch("[0-9a-f]{32}", source_id) for source_id in rows)
    first = rows["1729500000.101"] if width >= 17 else min(rows.values(), key=lambda r: r["connect_time"])
    assert first["connect_time"].startswith("2026-10-20T10:00:05")  # answer time, local = UTC here
    assert (first["account"], first["vendor"], first["cld"], first["duration"]) == (
        "acc1",
        "Carrier",
        "4420794600",
        "61",
    )
    assert first["status"] == "rated" and first["vendor_status"] == "rated"
    with world.catalog.reading() as session:
        collection = session.scalars(select(Collection)).one()
        assert (collection.template, collection.skipped) == ("asterisk-csv", 1)


@pytest.mark.parametrize("first_width", [16, 18])
def test_a_master_csv_whose_width_changed_midway_loads_every_row(
    world: App, tmp_path: Path, first_width: int
) -> None:
    later = Call(
        "1729600000.7", "acc2", "1002", "4930123456", datetime(2026, 10, 21, 9, 0, tzinfo=UTC), True, 30
    )
    path = asterisk_csv(tmp_path / "Master.csv", width=first_width)
    other = asterisk_csv(tmp_path / "tail.csv", calls=(later,), width=34 - first_width)
    path.write_text(path.read_text() + other.read_text())  # the switch's CDR settings changed
    report = _one(world, path, "asterisk-csv")
    assert _counts(report) == (4, 3, 0, 0, 1)
    rows = _export(world, tmp_path)
    if first_width == 18:  # the short row has no uniqueid: its hash identifies it
        assert {"1729500000.101", "1729500000.102"} < set(rows) and "1729600000.7" not in rows
    else:  # the file's columns are its first row's: the long row's extra fields are not read
        assert all(re.fullmatch("[0-9a-f]{32}", source_id) for source_id in rows)
    assert len(rows) == 3 and "4930123456" in {r["cld"] for r in rows.values()}


def test_the_hash_identity_finds_the_same_calls_again(world: App, tmp_path: Path) -> None:
    _one(world, asterisk_csv(tmp_path / "a.csv", width=16), "asterisk-csv")
    later = Call("", "acc2", "1002", "4930123456", datetime(2026, 10, 21, 9, 0, tzinfo=UTC), True, 30)
    again = _one(world, asterisk_csv(tmp_path / "b.csv", calls=(*CALLS, later), width=16), "asterisk-csv")
    assert _counts(again) == (4, 1, 2, 0, 1)  # the same calls again in a longer file: duplicates


def test_a_file_a_spreadsheet_re_saved_still_loads_and_bad_rows_are_rejected(
    world: App, tmp_path: Path
) -> None:
    path = asterisk_resaved(tmp_path / "Master.csv")
    with path.open("a") as handle:  # a row whose start cannot be read, and a row too short
        handle.write(
            "acc1,1001,4420794600,ctx,x,SIP/1,SIP/gw1-00000099,Dial,,31/31/2026 25:00,,,9,9,ANSWERED,DOC,u9,\n"
        )
        handle.write("acc1,1001\n")
    report = _one(world, path, "asterisk-csv")
    assert _counts(report) == (5, 2, 0, 2, 1)
    rows = _export(world, tmp_path)
    assert rows["1729500000.101"]["connect_time"].startswith("2026-10-20T10:00:00")  # seconds were dropped
    with open(str(report.rejects_path)) as handle:
        rejects = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert rejects == {
        4: "connect_time is not a time: 31/31/2026 25:00",
        5: "expected 16 to 21 fields, found 2",
    }


def test_asterisk_cdr_custom_default_mapping(world: App, tmp_path: Path) -> None:
    report = _one(world, asterisk_custom(tmp_path / "Master.csv"), "asterisk-custom")
    assert _counts(report) == (3, 2, 0, 0, 1)
    assert _export(world, tmp_path)["1729500000.102"]["account"] == "acc2"


def test_freeswitch_local_times_in_the_switch_time_zone(world: App, tmp_path: Path) -> None:
    template = tmp_path / "berlin.toml"
    builtin = (Path(__file__).parents[2] / "src/rerate/templates/freeswitch-csv.toml").read_text()
    template.write_text(
        builtin.replace('name = "freeswitch-csv"', 'name = "fs-berlin"')
        .replace('timezone = "UTC"', 'timezone = "Europe/Berlin"')
        .replace('account = "accountcode"', 'account = "accountcode"\nvendor = { value = "gw1" }')
    )
    add_template(world, "fs-berlin", template)
    # 20 October is summer time in Berlin: UTC+2.
    report = _one(world, freeswitch_csv(tmp_path / "Master.csv", zone_offset_hours=2), "fs-berlin")
    assert _counts(report) == (3, 2, 0, 0, 1)  # billsec 0: not answered, skipped
    row = _export(world, tmp_path)["1729500000.101-a"]
    assert row["connect_time"].startswith("2026-10-20T10:00:05")  # back in UTC
    assert (row["vendor"], row["vendor_status"]) == ("Carrier", "rated")


def test_cucm_flat_file_with_its_type_row_and_epoch_times(world: App, tmp_path: Path) -> None:
    report = _one(world, cucm(tmp_path / "cdr_StandAloneCluster_01_202610201000_1"), "cucm")
    assert _counts(report) == (3, 2, 0, 0, 1)
    rows = _export(world, tmp_path)
    first = next(r for r in rows.values() if r["cld"] == "4420794600")
    assert first["connect_time"].startswith("2026-10-20T10:00:05")
    assert (first["account"], first["vendor"], first["line"]) == (
        "acc1",
        "Carrier",
        "3",
    )  # after 2 header rows


def test_unanswered_calls_load_with_zero_usage_when_the_template_says_so(world: App, tmp_path: Path) -> None:
    template = tmp_path / "zero.toml"
    builtin = (Path(__file__).parents[2] / "src/rerate/templates/asterisk-csv.toml").read_text()
    template.write_text(builtin.replace('name = "asterisk-csv"', 'name = "x"\nunanswered = "zero"'))
    add_template(world, "asterisk-all", template)
    report = _one(world, asterisk_csv(tmp_path / "Master.csv"), "asterisk-all")
    assert _counts(report) == (3, 3, 0, 0, 0)
    assert _export(world, tmp_path)["1729500000.103"]["duration"] == "0"


def test_expressions_rewrite_a_field_once_per_value(world: App, tmp_path: Path) -> None:
    headed_template(world, tmp_path, "uk-national", "secs", """cld = '"44" + value'""")
    path = tmp_path / "national.csv"
    path.write_text(
        "id,when,secs,called,who\nn1,1792490400,60,20794600,acc1\nn2,1792490400,60,20794601,acc2\n"
    )
    report = _one(world, path, "uk-national")
    assert _counts(report) == (2, 2, 0, 0, 0)
    rows = _export(world, tmp_path)
    assert (rows["n1"]["cld"], rows["n1"]["status"], rows["n1"]["prefix"]) == ("4420794600", "rated", "44")


@pytest.mark.parametrize("kind", ["gz", "xz", "zip"])
def test_compressed_files_are_read_directly(world: App, tmp_path: Path, kind: str) -> None:
    plain = asterisk_csv(tmp_path / "Master.csv").read_bytes()
    packed = tmp_path / f"Master.csv.{kind}"
    if kind == "gz":
        packed.write_bytes(gzip.compress(plain))
    elif kind == "xz":
        packed.write_bytes(lzma.compress(plain))
    else:
        with zipfile.ZipFile(packed, "w") as archive:
            archive.writestr("Master.csv", plain)
    report = _one(world, packed, "asterisk-csv")
    assert _counts(report) == (3, 2, 0, 0, 1)
    (listed,) = collections(world)  # what collection list and show give: the counts add up there too
    assert (listed["read"], listed["skipped"], listed["template"]) == (3, 1, "asterisk-csv")


def test_bad_compressed_files_get_clear_errors(world: App, tmp_path: Path) -> None:
    broken = tmp_path / "x.csv.gz"
    broken.write_bytes(gzip.compress(b"source_id,connect_time,duration,cli,cld,account,vendor\n" * 5)[:-12])
    (report,) = ingest(world, [broken])
    assert report.state == "error" and "cannot decompress" in str(report.error)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    (report,) = ingest(world, [two])
    assert report.state == "error" and "holds 2 files" in str(report.error)
    locked = tmp_path / "locked.zip"
    with zipfile.ZipFile(locked, "w") as archive:
        archive.writestr("a.csv", "source_id,connect_time,duration,cli,cld,account,vendor\n")
    data = bytearray(locked.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # mark the member encrypted
        at = data.index(signature) + flags_at
        data[at] |= 0x01
    locked.write_bytes(bytes(data))
    (report,) = ingest(world, [locked])
    assert report.state == "error" and "encrypted" in str(report.error)
    with world.catalog.reading() as session:  # nothing half-loaded is visible
        assert all(c.state != "loaded" for c in session.scalars(select(Collection)))


def test_a_file_damaged_partway_leaves_no_collection_however_often_it_is_met(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated .gz in a drop folder (a mediator still writing it, say) is found damaged only
    after its first chunks are rated and written: those files, its rejects folder and its
    collection row all go, so a scheduled run over the folder does not add one each time."""
    monkeypatch.setattr(world.settings, "ingest_chunk_mb", 1)  # several chunks before the damage
    header = "source_id,connect_time,duration,cli,cld,account,vendor\n"
    rows = "".join(f"d{i},2026-10-20T10:{i % 60:02d}:00Z,60,1,4420794600,acc1,gw1\n" for i in range(60_000))
    packed = gzip.compress((header + rows).encode())
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "calls.csv.gz").write_bytes(packed[: len(packed) * 3 // 4])
    for _ in range(2):
        (report,) = ingest(world, expand_sources([str(drop)]))
        assert report.state == "error" and report.collection_id is None
        assert "cannot decompress" in str(report.error) and str(report.error).endswith("nothing was kept")
    with world.catalog.reading() as session:
        assert list(session.scalars(select(Collection))) == []
    assert not list((world.home / "collections").glob("*/rejects.csv"))
    assert not [f for f in world.ledger.path("xdrs").rglob("*.parquet")]
    (drop / "calls.csv.gz").write_bytes(packed)  # whole at last: it loads
    (report,) = ingest(world, expand_sources([str(drop)]))
    assert (report.state, report.loaded) == ("loaded", 60_000)


def test_a_folder_loads_each_file_once_in_name_order(world: App, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for day in (2, 1):
        calls = [c.__class__(**{**c.__dict__, "uniqueid": f"{day}-{c.uniqueid}"}) for c in CALLS]
        asterisk_csv(drop / f"Master-2026102{day}.csv", calls=calls)
    (drop / ".partial").write_text("being written")
    (drop / "Master-20261020.csv").symlink_to(tmp_path / "moved-away.csv")  # a link left broken
    first = ingest(world, expand_sources([str(drop)]), template="asterisk-csv")
    assert [(Path(r.file).name, r.state) for r in first] == [
        ("Master-20261020.csv", "error"),
        ("Master-20261021.csv", "loaded"),
        ("Master-20261022.csv", "loaded"),
    ]
    assert (
        first[0].error
        == f"{drop / 'Master-20261020.csv'} is a link to {tmp_path / 'moved-away.csv'}, which does not exist"
    )
    assert drop / "Master-20261020.csv" in expand_sources([str(drop / "*.csv")])  # a glob lists it too
    (drop / "Master-20261020.csv").unlink()
    (device,) = ingest(world, [Path("/dev/null")])
    assert device.error == "/dev/null is not a regular file"
    gzip_copy = drop / "Master-20261023.csv.gz"
    gzip_copy.write_bytes(gzip.compress(asterisk_csv(tmp_path / "c.csv", calls=[CALLS[0]]).read_bytes()))
    second = ingest(world, expand_sources([str(drop / "*.csv*")]), template="asterisk-csv")
    assert [r.state for r in second] == ["already_loaded", "already_loaded", "loaded"]
    assert second[2].duplicates == 0 and second[2].loaded == 1


def test_a_glob_matching_nothing_loads_nothing_and_the_other_sources_still_load(
    world: App, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    one = asterisk_csv(tmp_path / "Master.csv", calls=[CALLS[0]])
    # An empty drop folder's glob is nothing to do; a glob into a folder that is not there is
    # reported like a missing file; neither stops the file named beside them.
    sources = [str(drop / "*.csv"), str(tmp_path / "nowhere" / "*.csv"), str(one)]
    reports = ingest(world, expand_sources(sources), template="asterisk-csv")
    assert [(r.state, r.error) for r in reports] == [
        ("error", f"no file matches {tmp_path / 'nowhere' / '*.csv'}: its folder does not exist"),
        ("loaded", None),
    ]
    assert expand_sources([str(drop / "*.csv")]) == []
    # A file named like a glob is that file; a wildcard in a missing folder's name says so too.
    odd = asterisk_csv(drop / "Master[1].csv", calls=[CALLS[1]])
    assert expand_sources([str(odd)]) == [odd]
    (nested,) = ingest(world, expand_sources([str(tmp_path / "gone" / "2026-*" / "x.csv")]))
    assert (
        nested.error == f"no file matches {tmp_path / 'gone' / '2026-*' / 'x.csv'}: its folder does not exist"
    )


def test_template_errors_are_clear(world: App, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[fields\n")
    with pytest.raises(InvalidInputError, match="not a TOML file"):
        add_template(world, "bad", bad)
    bad.write_text(
        '[source]\nheader = true\n[fields]\nsource_id = "a"\nconnect_time = "b"\nduration = "c"\ncld = "d"\n'
    )
    with pytest.raises(InvalidInputError, match="connect_time: give its format"):
        add_template(world, "bad", bad)
    bad.write_text(
        '[fields]\nsource_id = "a"\nconnect_time = { column = "b", format = "iso" }\nduration = "c"\n'
        'cld = "d"\nvendor = { column = "e", pattern = "gw[0-9]+" }\n'
    )
    with pytest.raises(InvalidInputError, match=r"needs a group"):
        add_template(world, "bad", bad)
    bad.write_text(bad.read_text().replace("gw[0-9]+", "(?=gw)(.+)"))  # fine for Python, not for RE2
    with pytest.raises(InvalidInputError, match="the template's query fails"):
        add_template(world, "bad", bad)
    with pytest.raises(InvalidInputError, match="built-in"):
        add_template(world, "cucm", bad)
    bad.write_text(bad.read_text().replace("(?=gw)(.+)", "(gw[0-9]+)"))
    with pytest.raises(InvalidInputError, match="differs from the template 'cucm' only in case"):
        add_template(world, "CUCM", bad)
    assert add_template(world, " mine ", bad).name == "mine"
    with pytest.raises(InvalidInputError, match="differs from the template 'mine' only in case"):
        add_template(world, "Mine", bad)
    with pytest.raises(NotFoundError, match="asterisk-csv"):
        ingest(world, [tmp_path / "x.csv"], template="no-such")
    names = {t["name"] for t in list_templates(world)}
    assert {"asterisk-csv", "asterisk-custom", "freeswitch-csv", "cucm", "canonical"} <= names
    with world.catalog.transaction() as session:  # twins an older rerate let in: each can be replaced
        for twin in ("Carrier", "carrier"):
            session.add(ImportTemplate(kind=TEMPLATE_KIND, name=twin, settings={}, created_by="x"))
    assert add_template(world, "carrier", bad).name == "carrier"
    with pytest.raises(InvalidInputError, match="only in case"):
        add_template(world, "CARRIER", bad)
    with world.catalog.transaction() as session:  # as an older rerate may have saved one
        session.add(ImportTemplate(kind=TEMPLATE_KIND, name="older", settings={"fields": {}}, created_by="x"))
    with pytest.raises(InvalidInputError, match=r"the saved template 'older' cannot be read .*save it again"):
        ingest(world, [tmp_path / "x.csv"], template="older")


def test_the_wrong_template_for_a_file_is_named_not_half_loaded(world: App, tmp_path: Path) -> None:
    path = write_xdrs(
        tmp_path / "x.csv", [("a1", "2026-10-20T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1")]
    )
    (report,) = ingest(world, [path], template="asterisk-csv")
    assert report.state == "error" and "first row has 7 fields" in str(report.error)
    (report,) = ingest(world, [asterisk_csv(tmp_path / "Master.csv")], template="cucm")
    assert report.state == "error" and "no column for source_id" in str(report.error)


def test_an_iax2_trunk_is_the_vendor_as_a_sip_one_is(world: App, tmp_path: Path) -> None:
    """IAX2 channels end in a decimal call number (IAX2/peer-3073), SIP ones in eight hex digits."""
    path = asterisk_csv(tmp_path / "Master.csv", CALLS[:2])
    first = path.read_text().splitlines()
    channel = re.search(r'"SIP/gw1-0000[0-9a-f]{4}"', first[0])
    assert channel is not None
    first[0] = first[0].replace(channel.group(0), '"IAX2/gw1-3073"')
    path.write_text("\n".join(first) + "\n")
    report = _one(world, path, "asterisk-csv")
    assert report.loaded == 2
    assert {row["vendor"] for row in _export(world, tmp_path).values()} == {"Carrier"}


def test_an_expression_made_duration_is_checked_as_a_file_one_is(world: App, tmp_path: Path) -> None:
    """Milliseconds turned into seconds: a fraction or a negative result is a rejected row."""
    headed_template(world, tmp_path, "milliseconds", "ms", "duration = 'num(value) / 1000 - 1'")
    path = tmp_path / "ms.csv"
    path.write_text(
        "id,when,ms,called,who\n"
        "m1,1792490400,61000,4420794600,acc1\n"
        "m2,1792490400,61400,4420794600,acc1\n"
        "m3,1792490400,500,4420794600,acc1\n"
    )
    report = _one(world, path, "milliseconds")
    assert _counts(report) == (3, 1, 0, 2, 0)
    assert _export(world, tmp_path)["m1"]["duration"] == "60"
    with open(str(report.rejects_path)) as handle:
        reasons = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert reasons == {
        3: "expressions.duration: duration is not a whole number of seconds: 60.4",
        4: "expressions.duration: negative duration: -0.5",
    }


def test_a_file_read_with_the_wrong_template_can_be_read_again_with_the_right_one(
    world: App, tmp_path: Path
) -> None:
    """Nothing loaded (every row rejected): the checksum does not keep the file out for good."""
    path = asterisk_custom(tmp_path / "Master.csv", CALLS)
    (wrong,) = ingest(world, [path], template="asterisk-csv")
    assert wrong.state == "loaded" and wrong.loaded == 0 and wrong.rejected > 0
    right = _one(world, path, "asterisk-custom")
    assert right.loaded > 0
    (again,) = ingest(world, [path], template="asterisk-custom")
    assert (again.state, again.duplicate_of) == ("already_loaded", right.collection_id)


def test_bytes_that_are_not_utf8_reject_a_row_only_in_a_field_the_template_reads(
    world: App, tmp_path: Path
) -> None:
    path = asterisk_csv(tmp_path / "Master.csv")
    lines = path.read_bytes().splitlines(keepends=True)
    # A Latin-1 byte in lastapp (a column the template does not read), and a blank line that
    # sends the chunk through the line-by-line reader.
    second = lines[1].replace(b'"Dial"', b'"Di\xe1l"')
    assert second != lines[1]
    path.write_bytes(lines[0] + second + b"\n" + b"".join(lines[2:]))
    report = _one(world, path, "asterisk-csv")
    assert (report.loaded, report.rejected) == (2, 1)  # only the blank line is rejected


def test_a_whole_number_an_expression_makes_with_decimals_is_a_whole_number(
    world: App, tmp_path: Path
) -> None:
    headed_template(world, tmp_path, "scaled", "ms", "duration = 'num(value) * 0.001'")
    path = tmp_path / "scaled.csv"
    path.write_text("id,when,ms,called,who\ns1,1792490400,61000,4420794600,acc1\n")
    assert _counts(_one(world, path, "scaled")) == (1, 1, 0, 0, 0)
    assert _export(world, tmp_path)["s1"]["duration"] == "61"


def test_an_unreadable_answer_time_rejects_its_call_rather_than_moving_it_to_the_start(
    world: App, tmp_path: Path
) -> None:
    path = asterisk_csv(tmp_path / "Master.csv")
    text = path.read_text()
    path.write_text(text.replace('"2026-10-20 10:00:05"', '"20266-10-20 10:00:05"', 1))
    report = _one(world, path, "asterisk-csv")
    assert (report.loaded, report.rejected, report.skipped) == (1, 1, 1)  # the third call: unanswered
    with open(str(report.rejects_path)) as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["line"] == "1" and "connect_time is not a time" in reject["reason"]
    assert CALLS[0].uniqueid not in {row["source_id"] for row in _export(world, tmp_path).values()}


def test_a_headerless_files_first_row_decides_only_how_wide_its_rows_are(world: App, tmp_path: Path) -> None:
    """A blank line on top, a Latin-1 caller name in a column not read, a NUL byte in a number."""
    lines = asterisk_csv(tmp_path / "plain.csv").read_bytes().split(b"\n")
    lines[0] = lines[0].replace(b'"Dial"', b'"Dial \xe9"')  # lastapp: not read by the template
    lines[1] = lines[1].replace(b'"1002"', b'"10\x0002"', 1)  # src: the calling number
    path = tmp_path / "Master.csv"
    path.write_bytes(b"\n" + b"\n".join(lines))
    report = _one(world, path, "asterisk-csv")
    assert (report.loaded, report.rejected, report.skipped) == (1, 2, 1)
    with open(str(report.rejects_path)) as handle:
        reasons = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert reasons == {1: "empty line", 3: "a NUL byte in a field (a damaged file?)"}


def test_a_cucm_file_without_its_type_row_loads_its_first_call(world: App, tmp_path: Path) -> None:
    """Some exports leave the row of types out: the first call is read, not taken for that row."""
    path = cucm(tmp_path / "cdr_StandAloneCluster_01_202610201000_2")
    lines = path.read_text().splitlines(keepends=True)
    assert lines[1].startswith("INTEGER")
    path.write_text(lines[0] + "".join(lines[2:]))
    report = _one(world, path, "cucm")
    assert _counts(report) == (3, 2, 0, 0, 1)
    first = next(r for r in _export(world, tmp_path).values() if r["cld"] == "4420794600")
    assert (first["line"], first["duration"]) == ("2", "61")


def test_a_quoted_line_break_in_a_headerless_files_first_row_is_part_of_that_row(
    world: App, tmp_path: Path
) -> None:
    path = asterisk_csv(tmp_path / "Master.csv")
    path.write_text(path.read_text().replace('"""Desk 1001"" <1001>"', '"""Desk\n1001"" <1001>"', 1))
    assert _counts(_one(world, path, "asterisk-csv")) == (3, 2, 0, 0, 1)


def test_a_utf16_file_is_one_clear_error_and_no_collection(world: App, tmp_path: Path) -> None:
    """What a spreadsheet's "Unicode text" saves: refused whole, whatever the template."""
    path = tmp_path / "Master.csv"
    path.write_bytes(asterisk_csv(tmp_path / "plain.csv").read_text().encode("utf-16"))
    for template in ("asterisk-csv", "canonical"):
        (report,) = ingest(world, [path], template=template)
        assert report.state == "error" and "UTF-16" in str(report.error), report.error
    with world.catalog.reading() as session:
        assert session.scalars(select(Collection)).all() == []


def test_an_unanswered_call_with_an_empty_or_negative_usage_is_skipped_not_rejected(
    world: App, tmp_path: Path
) -> None:
    path = asterisk_csv(tmp_path / "Master.csv")
    lines = path.read_text().splitlines()
    # The unanswered call (third row) three times, its billsec (the 14th field) empty, -1 and text.
    unanswered = next(csv.reader([lines[2]]))
    assert unanswered[14] == "NO ANSWER"
    with path.open("w", newline="") as handle:
        handle.write("\n".join(lines[:2]) + "\n")
        for usage in ("", "-1", "x"):
            csv.writer(handle, lineterminator="\n").writerow([*unanswered[:13], usage, *unanswered[14:]])
    report = _one(world, path, "asterisk-csv")
    assert _counts(report) == (5, 2, 0, 1, 2)  # text in the usage field still rejects the row
    assert _reasons(report) == {5: "duration is not a whole number of seconds: x"}


def test_an_unreadable_time_is_named_alone_not_with_the_later_source_the_row_also_holds(
    world: App, tmp_path: Path
) -> None:
    path = asterisk_csv(tmp_path / "Master.csv")
    path.write_text(path.read_text().replace('"2026-10-20 10:00:05"', '"2026-13-45 10:00:05"', 1))
    report = _one(world, path, "asterisk-csv")
    assert _reasons(report) == {1: "connect_time is not a time: 2026-13-45 10:00:05"}


def test_a_template_needs_a_name_to_be_saved(world: App, tmp_path: Path) -> None:
    template = tmp_path / "named.toml"
    builtin = (Path(__file__).parents[2] / "src/rerate/templates/asterisk-csv.toml").read_text()
    template.write_text(builtin.replace('name = "asterisk-csv"', 'name = "pbx-berlin"'))
    for blank in ("", "   "):
        with pytest.raises(InvalidInputError, match="needs a name"):
            add_template(world, blank, template)
    assert "" not in {t["name"] for t in list_templates(world)}


@pytest.mark.parametrize(
    "builtin", ["asterisk-csv", "asterisk-custom", "freeswitch-csv", "cucm", "canonical"]
)
def test_a_shown_template_saves_back_as_the_same_template(world: App, tmp_path: Path, builtin: str) -> None:
    """The documented way to adapt a built-in: show it, edit the TOML, save it under a new name."""
    copy = tmp_path / "copy.toml"
    copy.write_text(template_toml(world, builtin))
    add_template(world, "ours", copy)
    original, saved = show_template(world, builtin), show_template(world, "ours")
    assert saved == {**original, "name": "ours"}


@pytest.mark.parametrize("width", [16, 18])
def test_a_latin1_caller_name_read_only_into_the_hashed_id_does_not_reject_the_call(
    world: App, tmp_path: Path, width: int
) -> None:
    """clid is hashed only when uniqueid is missing (16 columns); either way the call loads, and
    the same file read again finds the same ids."""
    path = asterisk_csv(tmp_path / "Master.csv", width=width)
    path.write_bytes(path.read_bytes().replace(b'"Desk 1001"', b'"M\xfcller 1001"', 1))
    assert _counts(_one(world, path, "asterisk-csv")) == (3, 2, 0, 0, 1)
    again = path.with_name("again.csv.gz")
    again.write_bytes(gzip.compress(path.read_bytes()))  # another checksum: every call a duplicate
    assert _counts(_one(world, again, "asterisk-csv")) == (3, 0, 2, 0, 1)
    raw = path.read_bytes().replace(b'"M\xfcller 1001"', b'"Desk 1001"').replace(b'"1001"', b'"10\xfc1"', 1)
    path.with_name("src.csv").write_bytes(raw)  # the calling number itself: still the row's problem
    report = _one(world, path.with_name("src.csv"), "asterisk-csv")
    assert _reasons(report)[1] == "not UTF-8 text (re-save the file as UTF-8)"  # line 2: loaded already


def test_an_expression_converts_a_usage_in_decimal_minutes(world: App, tmp_path: Path) -> None:
    """The expression gets the file's text; only its result must be whole seconds."""
    headed_template(world, tmp_path, "minutes", "mins", "duration = 'num(value) * 60'")
    usages = {"d1": "2", "d2": "1.5", "d3": "x", "d4": "0.01", "d5": "0"}
    path = tmp_path / "minutes.csv"
    path.write_text(
        "id,when,mins,called,who\n"
        + "".join(f"{i},1792490400,{u},4420794600,acc1\n" for i, u in usages.items())
    )
    report = _one(world, path, "minutes")
    assert _counts(report) == (5, 2, 0, 2, 1)  # 0 minutes: unanswered, skipped
    rows = _export(world, tmp_path)
    assert (rows["d1"]["duration"], rows["d2"]["duration"]) == ("120", "90")
    reasons = _reasons(report)
    assert reasons[4].startswith("expressions.duration: ") and "x" in reasons[4]
    assert reasons[5] == "expressions.duration: duration is not a whole number of seconds: 0.60"


@pytest.mark.parametrize(
    "shown",
    [
        "10/20/26 10:00",
        "10/20/26 10:00 AM",
        "10/20/2026 10:00:00 AM",
        "2026-10-20 10:00 AM",
        "2026/10/20 10:00",
    ],
)
def test_a_spreadsheets_short_dates_and_12_hour_clock_still_load(
    world: App, tmp_path: Path, shown: str
) -> None:
    """Two-digit years are not read as the years 1 to 99, nor AM/PM dropped."""
    path = asterisk_resaved(tmp_path / "Master.csv")
    path.write_text(path.read_text().replace("2026/10/20 10:00", shown))
    report = _one(world, path, "asterisk-csv")
    assert _counts(report) == (3, 2, 0, 0, 1)
    assert _export(world, tmp_path)["1729500000.101"]["connect_time"].startswith("2026-10-20T10:00:00")


@pytest.mark.parametrize("unanswered", ["skip", "zero"])
def test_an_expressions_usage_of_zero_seconds_is_an_unanswered_call(
    world: App, tmp_path: Path, unanswered: str
) -> None:
    """Without a disposition column, a call is answered when its usage is above zero and the
    expression's seconds are above zero.  A negative usage is rejected before the expression
    runs, as it is where no expression converts it: nothing marks that call unanswered."""
    headed_template(world, tmp_path, "rounded", "ms", "duration = 'round(num(value) / 1000)'")
    template = tmp_path / "rounded.toml"
    template.write_text(f'unanswered = "{unanswered}"\n' + template.read_text())
    add_template(world, "rounded", template)
    usages = {"r1": "61000", "r2": "400", "r3": "-1", "r4": '"-0,5"', "r5": "-0"}  # -0,5: as num() reads
    path = tmp_path / "rounded.csv"
    path.write_text(
        "id,when,ms,called,who\n"
        + "".join(f"{i},1792490400,{u},4420794600,acc1\n" for i, u in usages.items())
    )
    report = _one(world, path, "rounded")
    outcomes = {row["line"]: row["outcome"] for row in trace(world, path, "rounded")}
    assert (outcomes[4], outcomes[5]) == (
        "rejected: negative duration: -1",
        "rejected: negative duration: -0,5",
    )
    assert outcomes[6] == "rejected: negative duration: -0"  # as the plain reading below says
    if unanswered == "skip":
        assert _counts(report) == (5, 1, 0, 3, 1)
        assert outcomes[3] == "skipped: not answered"
    else:
        assert _counts(report) == (5, 2, 0, 3, 0)
        assert {r["source_id"]: r["duration"] for r in _export(world, tmp_path).values()} == {
            "r1": "61",
            "r2": "0",
        }
    # The same usages read as seconds, with no expression: the same calls are rejected.
    headed_template(world, tmp_path, "seconds", "ms")
    again = tmp_path / "seconds.csv"
    again.write_text(path.read_text().replace("\nr", "\ns"))
    plain = _one(world, again, "seconds")
    with open(str(plain.rejects_path)) as handle:
        reasons = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert (reasons[4], reasons[5]) == (
        "negative duration: -1",
        "duration is not a whole number of seconds: -0,5",
    )
    assert reasons[6] == "negative duration: -0"


def test_an_unanswered_call_without_a_usage_still_needs_its_called_number(world: App, tmp_path: Path) -> None:
    """Excusing the usage of an unanswered call does not excuse the rest of its row."""
    template = tmp_path / "zero.toml"
    builtin = (Path(__file__).parents[2] / "src/rerate/templates/asterisk-csv.toml").read_text()
    template.write_text(builtin.replace('name = "asterisk-csv"', 'name = "x"\nunanswered = "zero"'))
    add_template(world, "asterisk-all", template)
    path = asterisk_csv(tmp_path / "Master.csv")
    lines = path.read_text().splitlines()
    unanswered = next(csv.reader([lines[2]]))
    unanswered[2], unanswered[13] = "", "-1"  # dst, billsec
    with path.open("w", newline="") as handle:
        handle.write("\n".join(lines[:2]) + "\n")
        csv.writer(handle, lineterminator="\n").writerow(unanswered)
    report = _one(world, path, "asterisk-all")
    assert _counts(report) == (3, 2, 0, 1, 0)
    assert _reasons(report) == {3: "missing cld (called number)"}


def test_a_stray_quote_inside_the_first_rows_field_does_not_carry_it_over(world: App, tmp_path: Path) -> None:
    """Only a quote that opens a field starts a quoted field (as the row reader has it)."""
    path = asterisk_csv(tmp_path / "Master.csv")
    path.write_text(path.read_text().replace('"""Desk 1001"" <1001>"', 'Desk 12" monitor', 1))
    assert _counts(_one(world, path, "asterisk-csv")) == (3, 2, 0, 0, 1)


def _typed_template(world: App, tmp_path: Path) -> None:
    """A headerless layout with a row of types: id, when, secs, called, who."""
    template = tmp_path / "typed.toml"
    settings = [
        "[source]",
        "header = false",
        "type_row = true",
        'columns = ["id", "when", "secs", "called", "who"]',
        "[fields]",
        'source_id = "id"',
        'connect_time = { column = "when", format = "epoch" }',
        'duration = "secs"',
        'cld = "called"',
        'account = "who"',
        'vendor = { value = "gw1" }',
    ]
    template.write_text("\n".join(settings) + "\n")
    add_template(world, "typed", template)


def test_a_first_call_whose_first_line_looks_like_types_is_still_a_call(world: App, tmp_path: Path) -> None:
    """The row of types is judged on the first row, not on the first line of a row that runs on."""
    _typed_template(world, tmp_path)
    path = tmp_path / "typed.csv"
    path.write_text('"T\nX",1792490400,60,4420794600,acc1\nt2,1792490400,60,4420794600,acc1\n')
    report = _one(world, path, "typed")
    assert _counts(report) == (2, 2, 0, 0, 0)
    assert "T\nX" in {r["source_id"] for r in _export(world, tmp_path).values()}


def test_a_header_whose_quote_is_never_closed_is_an_error_not_an_empty_file(
    world: App, tmp_path: Path
) -> None:
    path = tmp_path / "calls.csv"
    path.write_text('when,secs,called,who,caller,"note\n1792490400,60,4420794600,acc1,x,y\n')
    (report,) = ingest(world, [path], template=_hashed_template(world, tmp_path))
    assert report.state == "error" and "never closed" in str(report.error)


@pytest.mark.parametrize("before", ["", "\ufeff", "\n\n", "\ufeff\n"])
def test_a_headerless_layouts_row_of_types_is_its_first_row(world: App, tmp_path: Path, before: str) -> None:
    """Also after a spreadsheet's byte-order mark, or blank lines."""
    _typed_template(world, tmp_path)
    path = tmp_path / "typed.csv"
    path.write_text(
        before + "VARCHAR(20),INTEGER,INTEGER,VARCHAR(20),NVARCHAR(MAX)\nt1,1792490400,60,4420794600,acc1\n"
    )
    report = _one(world, path, "typed")
    assert _counts(report) == (1, 1, 0, 0, 0) and _reasons(report) == {}


HASHED_CALLER = """
[source]
header = true
[fields]
source_id = { hash = ["when", "called", "caller"] }
connect_time = { column = "when", format = "epoch" }
duration = "secs"
cld = "called"
account = "who"
vendor = { value = "gw1" }
"""


def _hashed_template(world: App, tmp_path: Path) -> str:
    """Saves :data:`HASHED_CALLER` as ``hashed``: an id hashed from the time, number and caller."""
    template = tmp_path / "hashed.toml"
    template.write_text(HASHED_CALLER)
    add_template(world, "hashed", template)
    return "hashed"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_bytes_read_only_into_a_hashed_id_load_alike_from_csv_and_parquet(
    world: App, tmp_path: Path, kind: str
) -> None:
    """A caller name in Latin-1 or with a NUL, in any chunk: hashed as U+FFFD, never a reject."""
    _hashed_template(world, tmp_path)
    names = ["when", "secs", "called", "who", "caller"]
    rows = [
        [b"1792490400", b"60", b"4420794600", b"acc1", b"M\xfcller"],
        [b"1792490401", b"60", b"4420794600", b"acc1", b"De\x00sk"],
        [b"1792490402", b"60", b"4420794600", b"acc1", b"plain"],
    ]
    path = tmp_path / f"calls.{kind}"
    if kind == "csv":
        path.write_bytes(
            b",".join(n.encode() for n in names) + b"\n" + b"".join(b",".join(r) + b"\n" for r in rows)
        )
    else:
        pq.write_table(
            pa.table({n: pa.array([r[i] for r in rows], pa.binary()) for i, n in enumerate(names)}), path
        )
    report = _one(world, path, "hashed")
    assert _counts(report) == (3, 3, 0, 0, 0), _reasons(report)


def test_a_nul_read_only_into_a_hashed_id_gives_the_same_id_from_csv_and_parquet(
    world: App, tmp_path: Path
) -> None:
    """A Parquet text column with a NUL is valid UTF-8: it is still hashed as the CSV's is."""
    _hashed_template(world, tmp_path)
    rows = {"when": ["1792490400", "1792490401"], "secs": ["60", "60"], "called": ["4420794600"] * 2}
    rows |= {"who": ["acc1", "acc1"], "caller": ["De\x00sk", "plain"]}
    csv_path = tmp_path / "calls.csv"
    lines = [",".join(rows), *(",".join(r) for r in zip(*rows.values(), strict=True))]
    csv_path.write_text("\n".join(lines) + "\n")
    assert _counts(_one(world, csv_path, "hashed")) == (2, 2, 0, 0, 0)
    parquet_path = tmp_path / "calls.parquet"
    pq.write_table(pa.table({n: pa.array(v, pa.string()) for n, v in rows.items()}), parquet_path)
    assert _counts(_one(world, parquet_path, "hashed")) == (2, 0, 2, 0, 0)  # the same calls: duplicates


def test_a_header_with_a_quoted_line_break_is_passed_over_whole(world: App, tmp_path: Path) -> None:
    path = cucm(tmp_path / "cdr_StandAloneCluster_01_202610201000_3")
    path.write_text(path.read_text().replace('"origSpan"', '"orig\nSpan"', 1))
    report = _one(world, path, "cucm")
    assert _counts(report) == (3, 2, 0, 0, 1)
    first = next(r for r in _export(world, tmp_path).values() if r["cld"] == "4420794600")
    assert first["line"] == "4"  # two lines of header, then the row of types


def test_a_utc_time_may_say_it_is_utc(world: App, tmp_path: Path) -> None:
    """format = "utc" reads a time that ends in Z, UTC or +00:00 as the time it is; any other
    offset is not UTC, and its row is rejected (format = "iso" reads offsets)."""
    headed_template(world, tmp_path, "utc-times", "secs", time_format="utc")
    times = {
        "u1": "2026-10-20 10:00:00",
        "u2": "2026-10-20T10:00:00Z",
        "u3": "2026-10-20 10:00:00 UTC",
        "u4": "2026-10-20T10:00:00+00:00",
        "u5": "2026-10-20T10:00:00+02:00",
        "u6": "2026-10-20 10:00 -0500",
        "u7": "yesterday",
    }
    path = tmp_path / "utc.csv"
    path.write_text(
        "id,when,secs,called,who\n" + "".join(f"{i},{t},60,4420794600,acc1\n" for i, t in times.items())
    )
    report = _one(world, path, "utc-times")
    assert _counts(report) == (7, 4, 0, 3, 0)
    loaded = {r["source_id"]: r["connect_time"] for r in _export(world, tmp_path).values()}
    assert set(loaded) == {"u1", "u2", "u3", "u4"}
    assert {t[:19] for t in loaded.values()} == {"2026-10-20T10:00:00"}
    # An offset's row says how to read it; a text that is no time at all gets no such advice.
    with open(str(report.rejects_path)) as handle:
        reasons = {r["line"]: r["reason"] for r in csv.DictReader(handle)}
    hint = ' (format "utc" reads only UTC times; format = "iso" reads times with an offset)'
    assert reasons == {
        "6": "connect_time is not a time: 2026-10-20T10:00:00+02:00" + hint,
        "7": "connect_time is not a time: 2026-10-20 10:00 -0500" + hint,
        "8": "connect_time is not a time: yesterday",
    }


def test_seconds_in_a_milliseconds_column_are_rejected_not_loaded_in_1970(world: App, tmp_path: Path) -> None:
    headed_template(world, tmp_path, "ms-times", "secs", time_format="epoch_ms")
    path = tmp_path / "ms.csv"
    path.write_text(
        "id,when,secs,called,who\n"
        "m1,1792490400000,60,4420794600,acc1\n"  # milliseconds: 2026-10-20 10:00 UTC
        "m2,1792490400,60,4420794600,acc1\n"  # seconds, in the wrong column
    )
    report = _one(world, path, "ms-times")
    assert _counts(report) == (2, 1, 0, 1, 0)
    assert _export(world, tmp_path)["m1"]["connect_time"].startswith("2026-10-20T10:00:00")
    with open(str(report.rejects_path)) as handle:
        (reject,) = list(csv.DictReader(handle))
    assert (reject["line"], reject["reason"]) == ("3", "connect_time is not a time: 1792490400")
