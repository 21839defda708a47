"""Arrow's typing of clean batches (rerate.services.xdr_plain) against the template's query."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerate.domain.xdr_templates import XdrTemplate, parse_template
from rerate.services.xdr_projection import LINE, TemplateQuery
from rerate.services.xdr_templates import builtin_templates

CANONICAL = ["source_id", "connect_time", "duration", "cli", "cld", "account", "vendor"]

CLEAN_TIMES = st.sampled_from(
    [
        "2026-10-21T16:11:30Z",
        "2026-10-21T16:11:30.25Z",
        "2026-10-21T16:11:30+02:00",
        "1970-01-01T00:00:00Z",
        "2199-12-31T23:59:59Z",
        "2026-02-28T00:00:00-05:00",
    ]
)
ZONELESS_TIMES = st.sampled_from(["2026-10-21 16:11:30", "2026-10-21T16:11:30.5", "2026-01-01 00:00:00"])
ODD_TIMES = st.sampled_from(
    [
        "",
        " 2026-10-21T16:11:30Z",
        "2026-10-21T16:11:30Z ",
        "2026-10-21",
        "2026-10-21T16:11",
        "2026-10-21T16",  # to the hour: Arrow reads it, the query rejects it
        "2026-10-21 16Z",
        "2026-10-21T16+02:00",
        "2026-10-21T16:11:30.",
        "2026-10-21T24:00:00Z",
        "2026-02-30T10:00:00Z",
        "1969-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "2026-10-21T16:11:30.1234567Z",
        "yesterday",
    ]
)
CLEAN_USAGE = st.one_of(st.integers(0, 10**6).map(str), st.just("0"), st.just("007"))
ODD_USAGE = st.sampled_from(["", "-5", "-0", "+5", " 5", "5 ", "1.5", "1000000001", "9" * 19, "٣"])
CLEAN_TEXT = st.text(alphabet="abcXYZ019-+_.@:/", min_size=1, max_size=12)
ODD_TEXT = st.sampled_from(["", " ", " a", "a ", "\ta", "a\u00a0", "é", "ab\u3000"])


def _rows(draw: st.DrawFn, times: st.SearchStrategy[str], odd: bool) -> list[list[str]]:
    # One column may hold odd values (the others stay clean), so each check is met on its own.
    clean = [CLEAN_TEXT, times, CLEAN_USAGE, CLEAN_TEXT, CLEAN_TEXT, CLEAN_TEXT, CLEAN_TEXT]
    oddities = [ODD_TEXT, ODD_TIMES, ODD_USAGE, ODD_TEXT, ODD_TEXT, ODD_TEXT, ODD_TEXT]
    if odd:
        column = draw(st.integers(0, len(clean) - 1))
        clean[column] = st.one_of(clean[column], oddities[column])
    count = draw(st.integers(1, 30))
    return [[draw(values) for values in clean] for _ in range(count)]


@st.composite
def batches(draw: st.DrawFn, odd: bool) -> pa.Table:
    times = draw(st.sampled_from([CLEAN_TIMES, ZONELESS_TIMES]))
    rows = _rows(draw, times, odd)
    columns = {name: pa.array([r[i] for r in rows], pa.string()) for i, name in enumerate(CANONICAL)}
    columns[LINE] = pa.array(range(2, len(rows) + 2), pa.int64())
    return pa.table(columns)


def by_query(query: TemplateQuery, raw: pa.Table) -> pa.Table:
    """The query with ``trim`` (the reference reading) of ``raw``, by line."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("raw_batch", raw)
    return con.sql(query.sql).to_arrow_table().sort_by("line")


def _canonical() -> XdrTemplate:
    return builtin_templates()["canonical"]


def _both_ways(raw: pa.Table) -> tuple[pa.Table | None, pa.Table]:
    """The batch typed by Arrow (None: left to the query), and by the query."""
    query = TemplateQuery(_canonical(), CANONICAL, keep_other_columns=True)
    assert query.plain is not None
    return query.plain.read(raw), by_query(query, raw)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(batches(odd=False))
def test_a_clean_batch_is_typed_by_arrow_as_the_query_types_it(raw: pa.Table) -> None:
    typed, expected = _both_ways(raw)
    assert typed is not None, "a clean batch must not need the query"
    assert typed.schema == expected.schema
    assert typed.sort_by("line").to_pylist() == expected.to_pylist()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(batches(odd=True))
def test_any_batch_arrow_types_is_typed_as_the_query_types_it(raw: pa.Table) -> None:
    # Odd values mixed in: Arrow either leaves the batch to the query or gives the query's rows.
    typed, expected = _both_ways(raw)
    if typed is not None:
        assert expected.column("reject_reason").null_count == expected.num_rows, "Arrow missed a reject"
        assert typed.sort_by("line").to_pylist() == expected.to_pylist()


def test_a_blank_or_an_odd_value_leaves_the_batch_to_the_query() -> None:
    query = TemplateQuery(_canonical(), CANONICAL, keep_other_columns=True)
    assert query.plain is not None
    good = ["id1", "2026-10-21T16:11:30Z", "60", "441", "442", "acc", "ven"]
    for column, odd in (
        ("source_id", ""),
        ("cld", ""),
        ("cli", " 441"),
        ("duration", "-1"),
        ("connect_time", ""),
        ("connect_time", "2200-01-01T00:00:00Z"),
        ("connect_time", "2026-10-21T16"),
        ("connect_time", "2026-10-21T16+02:00"),
        ("connect_time", "1969-12-31T23:59:59Z"),
        ("duration", "1000000001"),
    ):
        row = dict(zip(CANONICAL, good, strict=True)) | {column: odd}
        raw = pa.table(
            {name: pa.array([row[name]], pa.string()) for name in CANONICAL} | {LINE: pa.array([2])}
        )
        assert query.plain.read(raw) is None, column
    empty_cli = dict(zip(CANONICAL, good, strict=True)) | {"cli": ""}
    raw = pa.table({n: pa.array([empty_cli[n]], pa.string()) for n in CANONICAL} | {LINE: pa.array([2])})
    typed = query.plain.read(raw)
    assert typed is not None and typed.column("cli").to_pylist() == [""]


@pytest.mark.parametrize(
    ("fields", "plain"),
    [
        ('connect_time = { column = "start", format = "local" }', False),  # local times: the query
        (
            'connect_time = { column = "start", format = "iso" }\ncli = { column = "c", pattern = "(.*)" }',
            False,
        ),
        ('connect_time = { column = "start", format = "iso" }\nsource_id = { hash = ["a", "b"] }', False),
        ('connect_time = { column = "start", format = "iso" }', True),
    ],
)
def test_only_layouts_of_whole_columns_and_iso_times_are_typed_by_arrow(fields: str, plain: bool) -> None:
    import tomllib

    base = {"source_id": "a", "duration": "d", "cld": "n"}
    text = "name = 't'\n[fields]\n" + "\n".join(f'{k} = "{v}"' for k, v in base.items() if k not in fields)
    template = parse_template(tomllib.loads(text + "\n" + fields))
    query = TemplateQuery(template, ["a", "b", "start", "d", "n", "c"])
    assert (query.plain is not None) is plain
