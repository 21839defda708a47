"""A correction's per-day read gives exactly the rows of the current-state view, whatever the jobs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rerate.bootstrap import App
from rerate.domain.scopes import Scope
from rerate.ledger.reader import connect_duckdb, files_of, open_views, parquet_source, scoped_select
from rerate.ledger.schema import XDR_FILE_SCHEMA, XDR_TABLE_SCHEMA
from rerate.ledger.scope_sql import scope_predicate
from rerate.ledger.tables import REVISIONS, XDRS
from rerate.services import parties
from rerate.services.corrections import BASE_COLUMNS, RerateRequest, rerate
from rerate.services.ingest import ingest
from rerate.services.jobs import revert
from rerate.services.rollback import rollback
from rerate.services.scopes import resolve_scope
from rerate.services.visibility import current_visibility
from tests.factories import small_world, write_xdrs

ACCOUNTS = ("acc1", "acc2", "acc3", "stranger")


def _rows(tag: str, count: int) -> list[tuple[str, ...]]:
    return [
        (
            f"{tag}{i}",
            f"2026-10-{1 + i % 3:02d}T{i % 24:02d}:00:00Z",
            str(20 + i),
            "1",
            "4420794600" if i % 2 else "447900123456",
            ACCOUNTS[i % len(ACCOUNTS)],
            "gw1",
        )
        for i in range(count)
    ]


def _scopes(app: App) -> list[Scope]:
    with app.catalog.reading() as session:
        return [
            resolve_scope(session, customers=["Acme"]),
            resolve_scope(session, customers=["Beta"], statuses=["rated"]),
            resolve_scope(session, accounts=["acc1"], prefixes=["4420"]),
            resolve_scope(session, collections=[1]),
            resolve_scope(session, collections=[2], customers=["Acme"]),
            resolve_scope(
                session,
                statuses=["failed"],
                start=datetime(2026, 10, 2, tzinfo=UTC),
                end=datetime(2026, 10, 3, tzinfo=UTC),
            ),
        ]


def _same_as_the_view(app: App) -> None:
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
    view = open_views(app.ledger, visibility)
    xdr_files, revision_files = app.ledger.files_by_day(XDRS), app.ledger.files_by_day(REVISIONS)
    for scope in _scopes(app):
        predicate = scope_predicate(scope)
        expected = view.execute(f"SELECT * FROM xdrs x WHERE {predicate} ORDER BY xdr_id").fetchall()
        con = connect_duckdb()
        got: list[Any] = []
        ranges = " OR ".join(f"xdr_id BETWEEN {c << 32} AND {((c + 1) << 32) - 1}" for c in scope.collections)
        for day, files in sorted(xdr_files.items()):
            query = scoped_select(
                con, visibility, files, revision_files.get(day, []), ["*"], predicate, ranges or None
            )
            got.extend(con.execute(f"SELECT * FROM ({query}) ORDER BY xdr_id").fetchall())
        got.sort(key=lambda row: row[0])  # days in turn: back in id order, as the view gave them
        columns = [d[0] for d in view.execute("SELECT * FROM xdrs LIMIT 0").description]
        assert [dict(zip(columns, r, strict=True)) for r in got] == [
            dict(zip(columns, r, strict=True)) for r in expected
        ], scope.describe()
        # The correction's own column list reads the same rows.
        narrow = sum(
            len(
                con.execute(
                    scoped_select(con, visibility, f, revision_files.get(d, []), BASE_COLUMNS, predicate)
                ).fetchall()
            )
            for d, f in xdr_files.items()
        )
        assert narrow == len(got)
        if scope.is_whole_collections():  # a rollback's read: its collections' files, in one pass
            whole: list[Any] = []
            for day, files in sorted(xdr_files.items()):
                query = scoped_select(
                    con,
                    visibility,
                    files_of(files, "c", scope.collections),
                    revision_files.get(day, []),
                    ["*"],
                    predicate,
                    ranges,
                    whole_files=True,
                )
                whole.extend(con.execute(f"SELECT * FROM ({query}) ORDER BY xdr_id").fetchall())
            assert sorted(whole, key=lambda row: row[0]) == expected, scope.describe()


def test_scoped_reads_match_the_view_through_jobs_reverts_and_rollbacks(tmp_path: Path) -> None:
    app = small_world(tmp_path / "home")
    parties.add_customer(app, "Beta", tariff="cost")
    parties.add_account(app, "acc3", customer="Beta")
    ingest(app, [write_xdrs(tmp_path / "one.csv", _rows("a", 60))])
    ingest(app, [write_xdrs(tmp_path / "two.csv", _rows("b", 30))])
    _same_as_the_view(app)  # revision 0 only

    with app.catalog.reading() as session:
        acme = resolve_scope(session, customers=["Acme"])
        acc1 = resolve_scope(session, accounts=["acc1"])
    first = rerate(app, RerateRequest(scope=acme, tariff="cost"))
    _same_as_the_view(app)  # one job's revisions
    rerate(app, RerateRequest(scope=acc1, tariff="retail"))
    _same_as_the_view(app)  # two jobs on the same XDRs: the newest wins
    assert first.changed
    rolled = rollback(app, 2)
    _same_as_the_view(app)  # and a rollback of one collection
    revert(app, rolled.job_id)
    _same_as_the_view(app)  # a reverted job's revisions no longer count


def _xdr_file(path: Path, first_id: int, drop: tuple[str, ...] = ()) -> None:
    rows = {name: [None, None] for name in XDR_FILE_SCHEMA.names}
    rows |= {"xdr_id": [first_id, first_id + 1], "collection_id": [1, 1], "rating_key": ["voice", "sms"]}
    table = pa.Table.from_pydict(rows, schema=XDR_FILE_SCHEMA).drop_columns(list(drop))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_files_without_a_later_column_read_it_as_null_and_complete_files_read_alike(tmp_path: Path) -> None:
    day = tmp_path / "call_date=2026-10-01"
    complete, older = str(day / "complete.parquet"), str(day / "older.parquet")
    _xdr_file(Path(complete), 10)
    _xdr_file(Path(older), 20, drop=("rating_key",))  # written before the column existed
    con = connect_duckdb()

    def read(files: list[str]) -> list[tuple[Any, ...]]:
        source = parquet_source(con, "xdr", files, XDR_TABLE_SCHEMA)
        return con.execute(f"SELECT xdr_id, rating_key, call_date FROM ({source}) ORDER BY xdr_id").fetchall()

    october_first = date(2026, 10, 1)
    assert read([complete]) == [(10, "voice", october_first), (11, "sms", october_first)]
    assert read([older]) == [(20, None, october_first), (21, None, october_first)]
    assert read([complete, older]) == read([complete]) + read([older])
    assert read([]) == []
