"""A crash in the middle of an ingest leaves nothing visible, and the next run cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from rerate.catalog.models import Collection
from rerate.ledger.reader import open_views
from rerate.ledger.tables import TOTALS, XDRS
from rerate.services.faults import CRASH_EXIT_CODE
from rerate.services.ingest import ingest
from rerate.services.periods import close_period, summary_as_closed
from rerate.services.vacuum import vacuum
from rerate.services.visibility import current_visibility
from tests.factories import small_world, write_xdrs

ROWS = [
    (f"s{i}", f"2026-10-{1 + i % 28:02d}T10:00:00Z", "60", "1", "4420794600", "acc1", "gw1")
    for i in range(300)
]


def _visible(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with app.catalog.reading() as session:
        con = open_views(app.ledger, current_visibility(session))
    (xdrs,) = con.execute("SELECT count(*) FROM xdrs").fetchall()
    (calls,) = con.execute("SELECT coalesce(sum(calls), 0) FROM daily_totals").fetchall()
    return int(xdrs[0]), int(calls[0])


@pytest.mark.parametrize(
    "checkpoint", ["ingest.batch_written", "ingest.totals_committed", "ingest.xdrs_committed"]
)
def test_killed_ingest_leaves_no_partial_collection(tmp_path: Path, checkpoint: str) -> None:
    home = tmp_path / "home"
    app = small_world(home)
    ingest(app, [write_xdrs(tmp_path / "first.csv", ROWS[:100])])
    before = _visible(app)
    files_before = {XDRS: len(app.ledger.files(XDRS)), TOTALS: len(app.ledger.files(TOTALS))}
    second = write_xdrs(tmp_path / "second.csv", ROWS[100:])
    crashed = subprocess.run(
        [sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(home), "ingest", str(second)],
        env={**os.environ, "RERATE_CRASH_AT": checkpoint},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert _visible(app) == before  # readers see exactly the ledger as it was

    (retry,) = ingest(app, [second])  # the next writer cleans up, then loads
    assert (retry.state, retry.loaded) == ("loaded", 200)
    assert _visible(app) == (300, 300)
    with app.catalog.reading() as session:
        states = [c.state for c in session.scalars(select(Collection).order_by(Collection.id))]
    assert states == ["loaded", "aborted", "loaded"]
    assert len(app.ledger.files(TOTALS)) == files_before[TOTALS] + 1
    assert not any(f"c{2:08d}-" in f for f in app.ledger.files(XDRS))
    # What was committed stays on disk for older versions until vacuum; nothing else is left.
    vacuum(app, retention_hours=0)
    leftovers = list(app.ledger.path(XDRS).rglob(f"c{2:08d}-*.parquet"))
    assert leftovers == []
    app.close()


def test_a_period_closed_after_a_crash_stays_reproducible(tmp_path: Path) -> None:
    """The close cleans up a crashed job first; the clean-up leaves committed files to vacuum."""
    home = tmp_path / "home"
    app = small_world(home)
    ingest(app, [write_xdrs(tmp_path / "october.csv", ROWS)])
    crashed = subprocess.run(
        [
            *(sys.executable, "-m", "rerate.entrypoints.cli", "--home", str(home), "rerate"),
            *("--customer", "Acme", "--tariff", "retail", "--ghost-percent", "10", "--yes"),
        ],
        env={**os.environ, "RERATE_CRASH_AT": "rerate.totals_committed"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    close_period(app, "Acme", "2026-10")
    closed = summary_as_closed(app, "Acme", "2026-10")
    ingest(
        app,
        [
            write_xdrs(
                tmp_path / "late.csv", [("n1", "2026-11-02T10:00:00Z", "60", "1", "44207", "acc1", "gw1")]
            )
        ],
    )
    assert summary_as_closed(app, "Acme", "2026-10") == closed  # after the next writers too
    vacuum(app, retention_hours=0)
    assert summary_as_closed(app, "Acme", "2026-10") == closed
    app.close()
