from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake.transaction import AddAction
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Collection, Customer
from rerate.ledger.tables import PartitionedWriter
from rerate.services.export import export_xdrs
from rerate.services.ingest import CollectionReport, ingest
from tests.factories import ledger_and_totals, write_xdrs

ROWS = [
    ("a1", "2026-10-10T10:00:00Z", "45", "111", "+49 30 1234", "acc1", "gw1"),  # 49 before its price change
    ("a2", "2026-10-20T10:00:00Z", "45", "111", "0049301234", "acc1", "gw1"),  # 49 after it
    ("a3", "2026-10-20T11:00:00Z", "61", "111", "4420794600", "acc2", "gw1"),  # 60/60 intervals
    ("a4", "2026-10-20T12:00:00Z", "30", "111", "447900123456", "acc1", "gw1"),  # forbidden
    ("a5", "2026-10-20T13:00:00Z", "30", "111", "4420794600", "stranger", "gw1"),  # unknown account
    ("a6", "2026-10-20T14:00:00Z", "30", "111", "anonymous", "acc1", "gw7"),  # bad number, unknown vendor
    ("a7", "2026-10-20 15:00:00", "0", "111", "4420794600", "acc1", "gw1"),  # naive time is UTC; zero length
    ("b1", "yesterday", "30", "111", "4420794600", "acc1", "gw1"),  # rejected: time
    ("b2", "2026-10-20T15:00:00Z", "1.5", "111", "4420794600", "acc1", "gw1"),  # rejected: duration
    ("b3", "2026-10-20T15:00:00Z", "-2", "111", "4420794600", "acc1", "gw1"),  # rejected: negative
    ("", "2026-10-20T15:00:00Z", "2", "111", "4420794600", "acc1", "gw1"),  # rejected: no source id
    ("a3", "2026-10-20T11:00:00Z", "61", "111", "4420794600", "acc2", "gw1"),  # duplicate in file
]


def _export(app: App, tmp_path: Path, **filters: object) -> list[dict[str, str]]:
    out = tmp_path / "export.csv"
    export_xdrs(app, out, **filters)  # type: ignore[arg-type]
    with out.open() as handle:
        return list(csv.DictReader(handle))


def test_ingest_rates_both_sides_and_keeps_failures(world: App, tmp_path: Path) -> None:
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    assert (report.state, report.read, report.loaded, report.duplicates, report.rejected) == (
        "loaded",
        12,
        7,
        1,
        4,
    )
    rows = {r["source_id"]: r for r in _export(world, tmp_path)}
    assert set(rows) == {"a1", "a2", "a3", "a4", "a5", "a6", "a7"}
    assert (rows["a1"]["billed"], Decimal(rows["a1"]["amount"])) == ("48", Decimal("0.0245"))
    assert Decimal(rows["a2"]["amount"]) == Decimal("0.0325")  # the 2026-10-15 rate applies
    assert (rows["a3"]["prefix"], rows["a3"]["billed"], Decimal(rows["a3"]["amount"])) == (
        "44",
        "120",
        Decimal("0.02"),
    )
    assert Decimal(rows["a3"]["cost"]) == Decimal("0.00407")  # 61 s at 0.004/min, 1/1 intervals
    assert (rows["a4"]["status"], rows["a4"]["reason"]) == ("failed", "forbidden_destination")
    assert rows["a4"]["vendor_status"] == "rated"  # one side's failure never fails the other
    assert (rows["a5"]["reason"], rows["a5"]["customer"]) == ("unknown_account", "")
    assert (rows["a6"]["reason"], rows["a6"]["vendor_reason"]) == ("invalid_number", "unknown_vendor")
    assert (rows["a7"]["status"], rows["a7"]["billed"], Decimal(rows["a7"]["amount"])) == ("rated", "0", 0)
    assert rows["a1"]["customer"] == "Acme" and rows["a1"]["vendor"] == "Carrier"
    assert rows["a1"]["country"] == "DE" and rows["a3"]["country"] == "GB"


def test_rejects_file_names_line_and_reason(world: App, tmp_path: Path) -> None:
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    assert report.rejects_path is not None
    with open(report.rejects_path) as handle:
        rejects = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert rejects[9].startswith("connect_time is not a time")
    assert rejects[10].startswith("duration is not a whole number")
    assert rejects[11].startswith("negative duration")
    assert rejects[12] == "missing source_id"
    assert rejects[13] == "duplicate of line 4 of this file"


def test_structurally_broken_rows_are_rejected_and_the_rest_loads(world: App, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        "source_id,connect_time,duration,cli,cld,account,vendor\n"
        "x1,2026-10-20T10:00:00Z,10,1,4420,acc1,gw1\n"
        "x2,2026-10-20T10:00:00Z\n"
        "\n"
        "x3,2026-10-20T10:00:00Z,10,1,4420,acc1,gw1,extra\n"
        "x4,2026-10-20T10:00:00Z,10,1,4420,acc1,gw1\n"
    )
    (report,) = ingest(world, [path])
    assert (report.loaded, report.rejected) == (2, 3)
    with open(str(report.rejects_path)) as handle:
        lines = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert lines == {3: "expected 7 fields, found 2", 4: "empty line", 5: "expected 7 fields, found 8"}
    assert [r["line"] for r in _export(world, tmp_path)] == ["2", "6"]


def test_call_times_out_of_any_plausible_range_are_rejected_rows(world: App, tmp_path: Path) -> None:
    """A typing error in a year (20266), or a milliseconds value in a seconds column, is one bad
    row, not a crashed file."""
    from tests.switch_samples import CALLS, cucm

    path = tmp_path / "far.csv"
    path.write_text(
        "source_id,connect_time,duration,cli,cld,account,vendor\n"
        "y1,20266-10-20T10:00:00Z,10,1,4420,acc1,gw1\n"
        "y2,1969-12-31T23:59:59Z,10,1,4420,acc1,gw1\n"
        "y3,2026-10-20T10:00:00Z,10,1,4420,acc1,gw1\n"
    )
    (report,) = ingest(world, [path])
    assert (report.state, report.loaded, report.rejected) == ("loaded", 1, 2)
    with open(str(report.rejects_path)) as handle:
        reasons = {int(r["line"]): r["reason"] for r in csv.DictReader(handle)}
    assert sorted(reasons) == [2, 3] and all(
        r.startswith("connect_time is not a time") for r in reasons.values()
    )

    far = cucm(tmp_path / "cucm.csv", CALLS[:2])
    header, types, *rows = far.read_text().splitlines()
    columns = [c.strip('"') for c in header.split(",")]
    for row, bad in zip(rows, ("99999999999999", "1792483205000"), strict=True):  # overflow; milliseconds
        fields = row.split(",")
        for name in ("dateTimeOrigination", "dateTimeConnect"):
            fields[columns.index(name)] = bad
        rows[rows.index(row)] = ",".join(fields)
    far.write_text("\n".join([header, types, *rows]) + "\n")
    (cucm_report,) = ingest(world, [far], template="cucm")
    assert (cucm_report.state, cucm_report.loaded, cucm_report.rejected) == ("loaded", 0, 2)


def test_same_file_twice_loads_nothing(world: App, tmp_path: Path) -> None:
    path = write_xdrs(tmp_path / "x.csv", ROWS)
    first, second = ingest(world, [path, path])
    assert second.state == "already_loaded" and second.duplicate_of == first.collection_id
    assert len(_export(world, tmp_path)) == 7


def test_duplicates_across_collections_are_counted_not_loaded(world: App, tmp_path: Path) -> None:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    overlap = [
        ("a1", "2026-10-10T10:00:00Z", "45", "111", "4930", "acc1", "gw1"),  # same id, same day
        ("a1", "2026-10-11T10:00:00Z", "45", "111", "4930", "acc1", "gw1"),  # same id, another day
        ("n1", "2026-10-10T10:00:00Z", "45", "111", "4930", "acc1", "gw1"),
    ]
    (report,) = ingest(world, [write_xdrs(tmp_path / "y.csv", overlap)])
    assert (report.loaded, report.duplicates) == (2, 1)
    assert len(_export(world, tmp_path)) == 9


def test_a_file_of_the_wrong_shape_is_one_clear_error(world: App, tmp_path: Path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_text("name,price\nfoo,1\n")
    (report,) = ingest(world, [junk])
    assert report.state == "error" and "missing column(s) source_id" in str(report.error)
    with world.catalog.reading() as session:
        assert session.scalars(select(Collection)).all() == []


def test_parquet_input_loads_like_csv(world: App, tmp_path: Path) -> None:
    header = ["source_id", "connect_time", "duration", "cli", "cld", "account", "vendor"]
    table = pa.table({name: [row[i] for row in ROWS[:3]] for i, name in enumerate(header)})
    table = table.set_column(2, "duration", pa.array([45, 45, None], pa.int64()))
    caller = 'Doe, "J"'  # a cell holding the delimiter and a quote
    table = table.set_column(3, "cli", pa.array([ROWS[0][3], ROWS[1][3], caller]))
    pq.write_table(table, tmp_path / "x.parquet")
    (report,) = ingest(world, [tmp_path / "x.parquet"])
    assert (report.state, report.loaded, report.rejected) == ("loaded", 2, 1)
    assert Decimal(_export(world, tmp_path)[0]["amount"]) == Decimal("0.0245")
    with open(str(report.rejects_path)) as handle:
        (reject,) = list(csv.DictReader(handle))
    # The row shown is a CSV row: the null duration keeps its place (the fields do not shift
    # left), and the cell holding a comma is quoted, so the row reads back as the file had it.
    assert reject["reason"] == "missing duration"
    assert next(csv.reader([reject["raw"]])) == [*ROWS[2][:2], "", caller, *ROWS[2][4:]]


@pytest.mark.parametrize("kind", [pa.string(), pa.binary(), pa.large_binary()])
def test_a_parquet_cell_that_is_not_utf8_rejects_its_row(
    world: App, tmp_path: Path, kind: pa.DataType
) -> None:
    header = ["source_id", "connect_time", "duration", "cli", "cld", "account", "vendor"]
    table = pa.table({name: [row[i] for row in ROWS[:3]] for i, name in enumerate(header)})
    # Bytes a Parquet writer may store as text, or as bytes, without checking them.
    cells = [b"acc1", b"a\xffb", b"acc1"]
    offsets = np.cumsum([0, *(len(c) for c in cells)]).astype(np.int32)
    bad = pa.Array.from_buffers(
        pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(cells))]
    )
    bad = bad if kind == pa.string() else bad.view(pa.binary()).cast(kind)
    pq.write_table(table.set_column(5, "account", bad), tmp_path / "x.parquet")
    (report,) = ingest(world, [tmp_path / "x.parquet"])
    assert (report.state, report.loaded, report.rejected) == ("loaded", 2, 1)
    with open(str(report.rejects_path)) as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["line"] == "2" and reject["reason"].startswith("not UTF-8 text")
    assert "a\ufffdb" in reject["raw"]
    accounts = {row["account"] for row in _export(world, tmp_path)}
    assert accounts == {"acc1"}


def test_a_large_files_totals_are_written_in_parts_that_add_up(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of two rows: a file's totals are streamed in parts, never held whole.
    monkeypatch.setattr("rerate.services.ingest.TOTALS_PART_ROWS", 2)
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    from rerate.ledger.tables import PREFIX_TOTALS, TOTALS

    assert len(world.ledger.files(TOTALS)) >= 3 and len(world.ledger.files(PREFIX_TOTALS)) >= 2
    from_ledger, from_totals = ledger_and_totals(world)
    assert from_ledger == from_totals
    failed = sum(r[3] for r in from_ledger if "failed" in (r[1], r[2]))
    assert report.failed == failed > 1


def test_a_failure_while_totals_are_written_leaves_no_file_behind(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    import rerate.services.ingest as ingest_module
    from rerate.ledger.tables import TOTALS

    monkeypatch.setattr(ingest_module, "TOTALS_PART_ROWS", 1)
    # A totals part is still being encoded when the failure comes.
    _slow_encoding(monkeypatch, lambda writer: not writer.partitioned)
    streamed = ingest_module._totals

    def failing(*args: object, **kwargs: object) -> object:
        parts = streamed(*args, **kwargs)  # type: ignore[arg-type]
        yield next(parts)
        raise MemoryError("out of memory while grouping")

    monkeypatch.setattr(ingest_module, "_totals", failing)
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    _assert_failed_leaving_no_file(report, world.ledger.path(TOTALS))


def test_each_xdr_file_holds_one_day_sorted_by_customer_then_time_with_its_rows_whole(
    world: App, tmp_path: Path
) -> None:
    # A month of calls in no order, from two customers' accounts and an unknown one: the batch is
    # gathered into order once (its columns split between threads) and cut into one file a day.
    from datetime import UTC, datetime, timedelta
    from random import Random

    from rerate.ledger.tables import XDRS
    from rerate.services import parties

    parties.add_customer(world, "Beta", tariff="retail")
    parties.add_account(world, "acc3", customer="Beta")
    rng = Random(7)
    rows = []
    for i in range(3000):
        when = datetime(2026, 10, rng.randrange(1, 29), tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))
        account = rng.choice(["acc1", "acc2", "acc3", "stranger"])
        rows.append(
            (
                f"s{i}",
                f"{when:%Y-%m-%dT%H:%M:%SZ}",
                str(rng.randrange(600)),
                "111",
                f"4420{i:06d}",
                account,
                "gw1",
            )
        )
    (report,) = ingest(world, [write_xdrs(tmp_path / "shuffled.csv", rows)])
    assert report.loaded == len(rows)
    sent = {row[0]: (index + 2, row) for index, row in enumerate(rows)}  # line 1 is the header
    owners = {"acc1": "Acme", "acc2": "Acme", "acc3": "Beta", "stranger": None}
    with world.catalog.reading() as session:
        ids = {name: id_ for name, id_ in session.execute(select(Customer.name, Customer.id))}
    seen: set[str] = set()
    files = world.ledger.files(XDRS)
    for file in files:
        day = Path(file).parent.name.removeprefix("call_date=")
        columns = pq.ParquetFile(file).metadata.row_group(0)
        encodings = {
            columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)
        }
        assert all("DELTA_BINARY_PACKED" in encodings[c] for c in ("xdr_id", "line", "connect_time"))
        table = pq.read_table(file).to_pylist()
        order = [(r["customer_id"] if r["customer_id"] is not None else -1, r["connect_time"]) for r in table]
        assert order == sorted(order)
        for xdr in table:
            line, (source_id, when, duration, _, cld, account, _) = sent[xdr["source_id"]]
            assert (xdr["line"], xdr["xdr_id"] & 0xFFFFFFFF, xdr["cld"], xdr["account"]) == (
                line,
                line,
                cld,
                account,
            )
            assert (f"{xdr['connect_time']:%Y-%m-%dT%H:%M:%SZ}", str(xdr["duration"])) == (when, duration)
            assert when.startswith(day)
            assert xdr["customer_id"] == ids.get(owners[account])
            # The priced columns (gathered on the other thread) belong to the same call: 44, 60/60.
            billed = -(-int(duration) // 60) * 60 if owners[account] else None
            assert (xdr["status"], xdr["billed"]) == ("rated" if billed is not None else "failed", billed)
            seen.add(source_id)
    assert len(files) == len({row[1][:10] for row in rows}) and seen == set(sent)


def test_a_failure_while_duplicates_are_dropped_leaves_no_file_behind(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from rerate.ledger.tables import XDRS

    # Two days, each with a call repeated: two files are rewritten without their duplicate.
    rows = [
        ("d1", "2026-10-10T10:00:00Z", "5", "111", "4420794600", "acc1", "gw1"),
        ("d1", "2026-10-10T10:00:00Z", "5", "111", "4420794600", "acc1", "gw1"),
        ("d2", "2026-10-11T10:00:00Z", "5", "111", "4420794600", "acc1", "gw1"),
        ("d2", "2026-10-11T10:00:00Z", "5", "111", "4420794600", "acc1", "gw1"),
    ]
    # The first rewritten file is still being encoded when the failure comes.
    _slow_encoding(monkeypatch, lambda writer: True)
    write = PartitionedWriter.write_xdrs
    calls: list[int] = []

    def failing_second_rewrite(self: PartitionedWriter, batch: pa.Table) -> None:
        calls.append(batch.num_rows)
        if len(calls) == 3:  # the file's one batch, then the first rewrite, then this
            raise MemoryError("out of memory while rewriting")
        write(self, batch)

    monkeypatch.setattr(PartitionedWriter, "write_xdrs", failing_second_rewrite)
    (report,) = ingest(world, [write_xdrs(tmp_path / "x.csv", rows)])
    _assert_failed_leaving_no_file(report, world.ledger.path(XDRS))


def _before_encoding(
    monkeypatch: pytest.MonkeyPatch, hook: Callable[[PartitionedWriter, pa.Table], None]
) -> None:
    """Every file's encoding first calls ``hook`` with its writer and rows (to delay or fail it)."""
    encode = PartitionedWriter._write

    def hooked(self: PartitionedWriter, rows: Callable[[], pa.Table], partition: dict[str, str]) -> AddAction:
        hook(self, rows())
        return encode(self, rows, partition)

    monkeypatch.setattr(PartitionedWriter, "_write", hooked)


def _slow_encoding(monkeypatch: pytest.MonkeyPatch, which: Callable[[PartitionedWriter], bool]) -> None:
    """Files of the writers ``which`` picks take half a second to encode: one is in flight when
    a failure comes."""
    _before_encoding(monkeypatch, lambda writer, _rows: time.sleep(0.5) if which(writer) else None)


def _parts_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before_part: Callable[[int], None]
) -> PartitionedWriter:
    """A writer of two threads whose files are one-row parts, each numbered in its ``part``
    column; ``before_part`` is called with that number before the part is encoded."""
    monkeypatch.setattr("rerate.ledger.tables._WRITER_THREADS", 2)
    _before_encoding(monkeypatch, lambda _writer, rows: before_part(rows.column("part")[0].as_py()))
    return PartitionedWriter(tmp_path, "c00000001-", pa.schema([("part", pa.int64())]), partitioned=False)


def _assert_failed_leaving_no_file(report: CollectionReport, table_dir: Path) -> None:
    assert report.state == "error" and "MemoryError" in str(report.error)
    time.sleep(1)  # had a file been left encoding, it would have landed by now
    assert list(table_dir.rglob("c*.parquet")) == []


def test_daily_totals_equal_the_ledger(world: App, tmp_path: Path) -> None:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    ingest(
        world,
        [write_xdrs(tmp_path / "y.csv", [("z9", "2026-10-21T10:00:00Z", "600", "1", "4930", "acc2", "gw1")])],
    )
    from_ledger, from_totals = ledger_and_totals(world)
    assert from_ledger == from_totals
    assert sum(r[3] for r in from_ledger) == 8


@pytest.mark.parametrize("status", ["rated", "failed"])
def test_export_filters_by_status(world: App, tmp_path: Path, status: str) -> None:
    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    rows = _export(world, tmp_path, status=status)
    assert rows and all(r["status"] == status for r in rows)


def test_a_new_home_without_any_rate_loads_calls_as_failed(tmp_path: Path) -> None:
    """No tariff yet: every call is kept, failed with its reason, not lost to a crash."""
    from tests.factories import make_app

    app = make_app(tmp_path / "home")
    rows = [("a", "2026-10-20T10:00:00Z", "60", "1", "442079460000", "acc1", "gw1")]
    (report,) = ingest(app, [write_xdrs(tmp_path / "x.csv", rows)])
    assert (report.state, report.loaded) == ("loaded", 1)
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["status"], row["reason"], row["vendor_reason"]) == (
        "failed",
        "unknown_account",
        "unknown_vendor",
    )


def test_a_row_that_is_not_utf8_is_rejected_with_its_line(world: App, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    good = "g1,2026-10-20T10:00:00Z,60,1,4420794600,acc1,gw1\n"
    latin1 = "l1,2026-10-20T10:00:00Z,60,1,4420794600,caf\u00e9,gw1\n".encode("latin-1")
    path.write_bytes(b"source_id,connect_time,duration,cli,cld,account,vendor\n" + good.encode() + latin1)
    (report,) = ingest(world, [path])
    assert (report.loaded, report.rejected) == (1, 1)
    with open(str(report.rejects_path)) as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["line"] == "3" and "not UTF-8" in reject["reason"] and "caf\ufffd" in reject["raw"]


GOOD = "{id},2026-10-20T10:00:00Z,61,1001,4420794600,acc1,gw1"
HEADER = "source_id,connect_time,duration,cli,cld,account,vendor"


def test_files_no_check_foresaw_fail_alone_with_a_clear_error(world: App, tmp_path: Path) -> None:
    import gzip
    import zipfile

    stray_cr = tmp_path / "stray_cr.csv"  # a carriage return alone inside one row
    stray_cr.write_bytes(
        f"{HEADER}\n{GOOD.format(id='c1')}\nc2,2026-10-20T10:00:00Z,61,10\r01,44,acc1,gw1\n".encode()
    )
    old_mac = tmp_path / "old_mac.csv"  # every line ends in a carriage return alone
    old_mac.write_bytes(f"{HEADER}\r{GOOD.format(id='m1')}\r".encode())
    damaged = tmp_path / "damaged.csv.gz"
    packed = bytearray(
        gzip.compress(("\n".join([HEADER, *(GOOD.format(id=f"z{i}") for i in range(500))]) + "\n").encode())
    )
    packed[len(packed) // 2] ^= 0xFF  # a flipped byte in the deflate stream
    damaged.write_bytes(bytes(packed))
    trailing = tmp_path / "trailing.csv"  # a spreadsheet's separator at the end of every line
    trailing.write_text(f"{HEADER},\n{GOOD.format(id='t1')},\n")
    own_line = tmp_path / "own_line.csv"  # a column of the carrier's own called "line"
    own_line.write_text(f"{HEADER},line\n{GOOD.format(id='l1')},trunk-7\n")
    finder = tmp_path / "finder.zip"  # as macOS Finder zips a file: with its resource fork beside it
    with zipfile.ZipFile(finder, "w") as archive:
        archive.writestr("calls.csv", f"{HEADER}\n{GOOD.format(id='f1')}\n")
        archive.writestr("__MACOSX/._calls.csv", b"\x00\x05\x16\x07")
    good = write_xdrs(
        tmp_path / "good.csv", [("g1", "2026-10-21T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    reports = ingest(world, [stray_cr, old_mac, damaged, trailing, own_line, finder, good])
    state = {Path(r.file).name: (r.state, r.loaded, r.rejected) for r in reports}
    assert state["stray_cr.csv"] == ("loaded", 1, 1)
    assert state["old_mac.csv"][0] == "error" and "carriage return" in str(reports[1].error)
    assert state["damaged.csv.gz"][0] == "error" and "cannot decompress" in str(reports[2].error)
    assert state["trailing.csv"] == ("loaded", 1, 0) and state["own_line.csv"] == ("loaded", 1, 0)
    assert state["finder.zip"] == ("loaded", 1, 0)
    assert state["good.csv"] == ("loaded", 1, 0)  # the files before it did not stop the run
    with Path(str(reports[0].rejects_path)).open() as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["line"] == "3" and "not a CSV row" in reject["reason"] and "c2" in reject["raw"]
    rows = {r["source_id"]: r for r in _export(world, tmp_path)}
    assert set(rows) == {"c1", "t1", "l1", "f1", "g1"}


def test_a_quoted_line_break_across_a_chunk_end_keeps_its_call_whole(world: App, tmp_path: Path) -> None:
    small = replace(world, settings=world.settings.model_copy(update={"ingest_chunk_mb": 1}))
    lines = [HEADER]
    size = len(HEADER) + 1
    while size < (1 << 20) - 200:
        lines.append(GOOD.format(id=f"r{len(lines)}"))
        size += len(lines[-1]) + 1
    opening = (1 << 20) - size - 40  # the quoted field opens before the chunk's end, its break is after it
    lines.append(f'split,2026-10-20T10:00:00Z,61,"{"1" * (opening + 100)}\n2",4420794600,acc1,gw1')
    lines += [GOOD.format(id=f"after{i}") for i in range(3)]
    big = tmp_path / "big.csv"
    big.write_text("\n".join(lines) + "\n")
    (report,) = ingest(small, [big])
    assert (report.read, report.loaded, report.rejected) == (len(lines) - 1, len(lines) - 1, 0)


def test_a_search_by_number_finds_calls_as_received_and_as_normalized(world: App, tmp_path: Path) -> None:
    from rerate.services.export import search_xdrs

    ingest(world, [write_xdrs(tmp_path / "x.csv", ROWS)])
    found = {row["source_id"] for row in search_xdrs(world, number="49301234")}
    assert found == {"a1", "a2"}  # "+49 30 1234" and "0049301234"
    assert {row["source_id"] for row in search_xdrs(world, number="+49 30")} == {"a1"}


def test_a_writer_with_room_for_one_file_per_thread_waits_for_its_oldest_files_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The totals of a large file are handed over in parts, a part per writer thread: the caller
    # may go on while the threads encode, and waits for the oldest parts, whose actions keep
    # the order the parts were given in.
    released = [threading.Event() for _ in range(3)]

    def held(part: int) -> None:
        assert released[part].wait(10), f"part {part} never released"

    writer = _parts_writer(tmp_path, monkeypatch, held)
    for part in range(3):
        writer.write_rows(pa.table({"part": [part]}))
    room = threading.Event()
    waiting = threading.Thread(target=lambda: (writer.wait_for_room(), room.set()))
    waiting.start()
    released[0].set()
    assert not room.wait(0.5), "room was given while the two oldest parts were still in flight"
    released[1].set()
    assert room.wait(10)
    waiting.join()
    firsts = [action.path for action in writer.actions]
    assert len(firsts) == 2
    released[2].set()
    writer.close()
    order = [pq.read_table(tmp_path / action.path).column("part")[0].as_py() for action in writer.actions]
    assert order == [0, 1, 2]
    assert [action.path for action in writer.actions[:2]] == firsts


def test_a_writer_given_up_after_a_failed_file_waits_for_the_files_still_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first file fails at once while the second is still being encoded: the unit is given up,
    # and its clean-up may remove its files only once none is still on its way to the disk.
    def failing_first(part: int) -> None:
        if part == 0:
            raise OSError("disk full")
        time.sleep(0.5)

    writer = _parts_writer(tmp_path, monkeypatch, failing_first)
    for part in range(2):
        writer.write_rows(pa.table({"part": [part]}))
    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    writer.abandon()
    assert len(list(tmp_path.glob("c00000001-*.parquet"))) == 1, "the second file was still in flight"
