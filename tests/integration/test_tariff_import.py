from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rerate.catalog.models import Rate, Tariff
from rerate.services import tariffs
from rerate.services.errors import InvalidInputError
from tests.factories import make_app, write_rates

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _count(app) -> int:  # type: ignore[no-untyped-def]
    with app.catalog.reading() as session:
        return session.scalar(select(func.count()).select_from(Rate)) or 0


def test_import_creates_tariff_with_defaults(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    deck = write_rates(tmp_path / "d.csv", [{"prefix": "44", "first_price": "0.01"}])
    report = tariffs.import_rates(app, "t", deck, currency="usd", now=NOW)
    assert (report.state, report.added, report.tariff_created) == ("imported", 1, True)
    with app.catalog.reading() as session:
        tariff = session.scalar(select(Tariff))
        rate = session.scalar(select(Rate))
    assert tariff is not None and (tariff.currency, tariff.decimals, tariff.rate_unit) == ("USD", 5, 60)
    assert rate is not None and rate.next_price == rate.first_price and rate.effective_from == NOW
    assert (rate.first_interval, rate.next_interval, rate.forbidden) == (1, 1, False)


def test_bad_rows_load_nothing_and_name_line_and_column(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    deck = write_rates(
        tmp_path / "d.csv",
        [
            {"prefix": "44", "first_price": "0.01", "next_interval": "60"},
            {"prefix": "4x", "first_price": "0.01", "next_interval": "60"},
            {"prefix": "45", "first_price": "-1", "next_interval": "0"},
        ],
    )
    report = tariffs.import_rates(app, "t", deck, currency="USD", now=NOW)
    assert report.state == "rejected"
    assert {(e.line, e.column) for e in report.errors} == {
        (3, "prefix"),
        (4, "first_price"),
        (4, "next_interval"),
    }
    assert _count(app) == 0


def test_past_rows_need_allow_past(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    deck = write_rates(
        tmp_path / "d.csv", [{"prefix": "44", "first_price": "0.01", "effective_from": "2026-01-01"}]
    )
    refused = tariffs.import_rates(app, "t", deck, currency="USD", now=NOW)
    assert refused.state == "rejected" and "--allow-past" in refused.errors[0].message
    assert _count(app) == 0
    accepted = tariffs.import_rates(app, "t", deck, currency="USD", now=NOW, allow_past=True)
    assert accepted.added == 1 and accepted.past == 1


def test_history_is_never_rewritten(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    row = {"prefix": "44", "first_price": "0.01", "effective_from": "2027-01-01T00:00:00Z"}
    tariffs.import_rates(app, "t", write_rates(tmp_path / "a.csv", [row]), currency="USD", now=NOW)
    same = tariffs.import_rates(app, "t", write_rates(tmp_path / "b.csv", [row]), now=NOW)
    assert (same.added, same.unchanged) == (0, 1)
    changed = tariffs.import_rates(
        app, "t", write_rates(tmp_path / "c.csv", [row | {"first_price": "0.02"}]), now=NOW
    )
    assert changed.state == "rejected" and "new effective_from" in changed.errors[0].message
    assert _count(app) == 1


def test_a_file_that_is_not_a_rate_csv_is_one_clear_error(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    junk = tmp_path / "junk.csv"
    junk.write_text("hello,world\n1,2\n")
    with pytest.raises(InvalidInputError, match="missing column"):
        tariffs.import_rates(app, "t", junk, currency="USD", now=NOW)
    with pytest.raises(InvalidInputError, match="not found"):
        tariffs.import_rates(app, "t", tmp_path / "absent.csv", currency="USD", now=NOW)


def test_rate_history_changes_on_whole_seconds(tmp_path: Path) -> None:
    """RATING.md 1.2 by the connect second: a change at 12:00:00.6 must not price a call at 12:00:00."""
    from decimal import Decimal

    from rerate.services.export import export_xdrs
    from rerate.services.ingest import ingest
    from tests.factories import small_world, write_xdrs

    app = small_world(tmp_path / "home")
    fraction = write_rates(
        tmp_path / "a.csv",
        [{"prefix": "44", "effective_from": "2026-10-20T12:00:00.600Z", "first_price": "1.00"}],
    )
    refused = tariffs.import_rates(app, "retail", fraction, allow_past=True)
    assert refused.state == "rejected" and "fraction of a second" in refused.errors[0].message
    # Without a date a rate takes the import time, rounded up to the next whole second.
    now = datetime(2026, 10, 21, 9, 30, 0, 750000, tzinfo=UTC)
    undated = write_rates(
        tmp_path / "b.csv", [{"prefix": "49", "first_price": "2.00", "first_interval": "60"}]
    )
    tariffs.import_rates(app, "retail", undated, allow_past=True, now=now)
    # A row stored with a fraction before (by an older version) still prices whole seconds exactly.
    with app.catalog.transaction() as session:
        retail = session.scalars(select(Tariff).where(Tariff.name == "retail")).one()
        session.add(
            Rate(
                tariff_id=retail.id,
                prefix="44",
                effective_from=datetime(2026, 10, 20, 12, 0, 0, 600000, tzinfo=UTC),
                first_interval=60,
                next_interval=60,
                first_price=Decimal("1.00"),
                next_price=Decimal("1.00"),
            )
        )
        retail.revision += 1
    rows = [
        ("s1", "2026-10-20T12:00:00Z", "60", "1", "4420794600", "acc1", "gw1"),
        ("s2", "2026-10-20T12:00:01Z", "60", "1", "4420794600", "acc1", "gw1"),
        ("s3", "2026-10-21T09:30:00Z", "60", "1", "49301234", "acc1", "gw1"),
        ("s4", "2026-10-21T09:30:01Z", "60", "1", "49301234", "acc1", "gw1"),
    ]
    ingest(app, [write_xdrs(tmp_path / "x.csv", rows)])
    out = tmp_path / "export.csv"
    export_xdrs(app, out)
    with out.open() as handle:
        amounts = {r["source_id"]: Decimal(r["amount"]) for r in csv.DictReader(handle)}
    assert amounts["s2"] == Decimal("1.00") and amounts["s1"] < Decimal("1.00")
    assert amounts["s4"] == Decimal("2.00") and amounts["s3"] < Decimal("2.00")
