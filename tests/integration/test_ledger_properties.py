"""Ledger invariants over random sequences of ingests (Hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rerate.ledger.reader import open_views
from rerate.services.ingest import ingest
from rerate.services.visibility import current_visibility
from tests.factories import ledger_and_totals, small_world, write_xdrs

ROW = st.tuples(
    st.sampled_from([f"id{i}" for i in range(12)]),  # few ids: duplicates happen
    st.sampled_from(["2026-10-10T10:00:00Z", "2026-10-20T23:59:59Z", "2026-10-21T00:00:00Z", "bad"]),
    st.sampled_from(["0", "1", "59", "61", "3600", "-1", "x"]),
    st.just("1"),
    st.sampled_from(["4930", "+4420794600", "447900123", "0033", "nope"]),
    st.sampled_from(["acc1", "acc2", "ghost"]),
    st.sampled_from(["gw1", "gw9"]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(st.lists(ROW, min_size=1, max_size=15), min_size=1, max_size=3))
def test_totals_equal_ledger_and_every_row_is_accounted_for(files: list[list[tuple[str, ...]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        app = small_world(root / "home")
        reports = []
        for number, rows in enumerate(files):
            reports.extend(ingest(app, [write_xdrs(root / f"f{number}.csv", rows)]))
        ledger, totals = ledger_and_totals(app)
        with app.catalog.reading() as session:
            con = open_views(app.ledger, current_visibility(session))
        assert ledger == totals
        (distinct,) = con.execute(
            "SELECT count(DISTINCT (call_date, source_id)) = count(*) FROM xdrs"
        ).fetchall()
        assert distinct[0]  # no duplicate is ever loaded
        for report in reports:
            if report.state == "loaded":
                assert report.read == report.loaded + report.duplicates + report.rejected
        loaded = sum(r.loaded for r in reports if r.state == "loaded")
        assert sum(row[3] for row in ledger) == loaded
        app.close()
