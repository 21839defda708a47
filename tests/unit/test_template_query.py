"""A template's query without ``trim`` (batches with nothing to trim) against the query with it."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerate.services.xdr_projection import LINE, TemplateQuery
from rerate.services.xdr_templates import builtin_templates
from tests.unit.test_xdr_plain import by_query

CELLS = st.sampled_from(
    [
        "",
        "0",
        "45",
        "007",
        "-3",
        "1700000000",
        "1700000000000",
        "2026-10-21 16:11:30",
        "2026/2/10 22:41",
        "10.02.2026 22:41:05",
        "2026-10-21T16:11:30Z",
        "ANSWERED",
        "NO ANSWER",
        "NORMAL_CLEARING",
        "SIP/carrier-a-0000002a",
        "sofia/external/441234",
        "441234567",
        "+44 1234",
        "acc1",
        "x",
    ]
)
#: What ``trim`` may take off (DuckDB trims Unicode blanks too; the check refuses any non-ASCII end).
PADDING = st.sampled_from(["", "", "", "", " ", "  ", "\u00a0", "\t"])


@st.composite
def batches(draw: st.DrawFn, columns: tuple[str, ...]) -> pa.Table:
    rows = draw(st.integers(1, 12))
    data: dict[str, pa.Array] = {}
    for name in columns:
        values = [draw(PADDING) + draw(CELLS) + draw(PADDING) for _ in range(rows)]
        data[name] = pa.array(values, pa.string())
    data[LINE] = pa.array(range(1, rows + 1), pa.int64())
    return pa.table(data)


@pytest.mark.parametrize("name", ["asterisk-csv", "freeswitch-csv", "cucm", "asterisk-custom"])
def test_a_batch_is_read_as_the_query_with_trims_reads_it(name: str) -> None:
    template = builtin_templates()[name]
    columns = template.columns or tuple(sorted(template.columns_read()))
    query = TemplateQuery(template, columns)
    assert query.sql_unpadded != query.sql

    @settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(batches(tuple(query.needed)))
    def check(raw: pa.Table) -> None:
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        assert query.every_row(con, raw).sort_by("line").to_pylist() == by_query(query, raw).to_pylist()

    check()


def test_a_cell_with_blanks_around_it_is_trimmed() -> None:
    template = builtin_templates()["asterisk-csv"]
    query = TemplateQuery(template, template.columns)
    row = dict.fromkeys(query.needed, "x") | {
        "answer": "2026-10-21 16:11:30",
        "billsec": " 45 ",
        "disposition": "ANSWERED ",
        "dst": "4412",
        "dstchannel": "SIP/carrier-a-0000002a",
    }
    raw = pa.table({name: pa.array([row[name]]) for name in query.needed} | {LINE: pa.array([1])})
    (read,) = query.every_row(duckdb.connect(), raw).to_pylist()
    assert (read["duration"], read["unanswered"], read["reject_reason"]) == (45, False, None)


@pytest.mark.parametrize(("delimiter", "quote"), [(",", '"'), (";", "'"), ("|", '"')])
def test_a_rejected_rows_raw_text_reads_back_into_its_cells(delimiter: str, quote: str) -> None:
    import csv
    from dataclasses import replace

    template = replace(builtin_templates()["canonical"], delimiter=delimiter, quote=quote)
    names = ["source_id", "connect_time", "duration", "cli", "cld", "account", "vendor"]
    query = TemplateQuery(template, names)
    cells = ["id1", "2026-10-21 16:11:30", "", f"O{quote}Brien{delimiter} Pat", "44\n1", "acc", None]
    raw = pa.table({**{n: pa.array([c], pa.string()) for n, c in zip(names, cells, strict=True)}, LINE: [7]})
    (shown,) = query.raw_texts(raw, [7]).values()
    back = next(csv.reader([shown], delimiter=delimiter, quotechar=quote))
    assert back == [c or "" for c in cells]  # a null cell is empty, in its place
