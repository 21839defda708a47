"""Small worlds for tests: rate decks, XDR files and a configured home."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rerate.bootstrap import App, bootstrap
from rerate.services import parties, tariffs, xdr_templates
from rerate.services.setup import initialize
from rerate.settings import Settings

XDR_HEADER = ("source_id", "connect_time", "duration", "cli", "cld", "account", "vendor")


def write_rates(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    rows = list(rows)
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_xdrs(path: Path, rows: Sequence[Sequence[Any]], header: Sequence[str] = XDR_HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def ledger_and_totals(app: App) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The same grouping computed from the XDRs and from the daily totals."""
    from rerate.ledger.reader import open_views
    from rerate.services.visibility import current_visibility

    with app.catalog.reading() as session:
        con = open_views(app.ledger, current_visibility(session))
    ledger = con.execute(
        "SELECT customer_id, status, vendor_status, count(*), sum(duration), "
        "coalesce(sum(amount), 0), coalesce(sum(cost), 0) FROM xdrs GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    totals = con.execute(
        "SELECT customer_id, status, vendor_status, sum(calls), sum(seconds), sum(amount), sum(cost) "
        "FROM daily_totals GROUP BY ALL "
        # a group a correction emptied nets to zero: it is not a group of the ledger any more
        "HAVING sum(calls) <> 0 OR sum(seconds) <> 0 OR sum(amount) <> 0 OR sum(cost) <> 0 ORDER BY ALL"
    ).fetchall()
    return ledger, totals


def ledger_and_prefix_totals(app: App) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Per month, customer and matched prefix: computed from the XDRs and from the prefix totals."""
    from rerate.ledger.reader import open_views
    from rerate.services.visibility import current_visibility

    with app.catalog.reading() as session:
        con = open_views(app.ledger, current_visibility(session))
    ledger = con.execute(
        "SELECT date_trunc('month', call_date)::DATE, customer_id, prefix, status, vendor_status, count(*), "
        "sum(duration), coalesce(sum(billed), 0), coalesce(sum(amount), 0), coalesce(sum(cost), 0) "
        "FROM xdrs GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    totals = con.execute(
        "SELECT period, customer_id, prefix, status, vendor_status, sum(calls), sum(seconds), sum(billed), "
        "sum(amount), sum(cost) FROM prefix_totals GROUP BY ALL "
        "HAVING sum(calls) <> 0 OR sum(seconds) <> 0 OR sum(amount) <> 0 OR sum(cost) <> 0 ORDER BY ALL"
    ).fetchall()
    return ledger, totals


def make_app(home: Path, catalog_url: str | None = None) -> App:
    app = bootstrap(Settings(home=home, catalog_url=catalog_url))
    initialize(app)
    return app


RETAIL = [
    {
        "prefix": "44",
        "effective_from": "2026-01-01T00:00:00Z",
        "first_interval": 60,
        "next_interval": 60,
        "first_price": "0.0100",
        "next_price": "0.0100",
    },
    {
        "prefix": "447",
        "effective_from": "2026-01-01T00:00:00Z",
        "first_interval": 1,
        "next_interval": 1,
        "first_price": "0.0500",
        "next_price": "0.0500",
    },
    {
        "prefix": "4479",
        "effective_from": "2026-01-01T00:00:00Z",
        "first_price": "0.0500",
        "forbidden": "true",
    },
    {
        "prefix": "49",
        "effective_from": "2026-01-01T00:00:00Z",
        "first_interval": 30,
        "next_interval": 6,
        "first_price": "0.0200",
        "next_price": "0.0150",
        "connect_fee": "0.01",
    },
    {
        "prefix": "49",
        "effective_from": "2026-10-15T00:00:00Z",
        "first_interval": 30,
        "next_interval": 6,
        "first_price": "0.0300",
        "next_price": "0.0250",
        "connect_fee": "0.01",
    },
]
COST = [{"prefix": "4", "effective_from": "2026-01-01T00:00:00Z", "first_price": "0.004"}]


def small_world(home: Path, catalog_url: str | None = None) -> App:
    """A customer Acme with accounts acc1/acc2, vendor Carrier on gw1, EUR tariffs."""
    app = make_app(home, catalog_url)
    tariffs.import_rates(
        app, "retail", write_rates(home / "retail.csv", RETAIL), currency="EUR", allow_past=True
    )
    tariffs.import_rates(app, "cost", write_rates(home / "cost.csv", COST), currency="EUR", allow_past=True)
    parties.add_customer(app, "Acme", tariff="retail")
    parties.add_account(app, "acc1", customer="Acme")
    parties.add_account(app, "acc2", customer="Acme")
    parties.add_vendor(app, "Carrier", tariff="cost", connections=["gw1"])
    return app


def headed_template(
    world: App, tmp_path: Path, name: str, duration: str, expression: str = "", time_format: str = "epoch"
) -> None:
    """A saved template for a headed CSV (id, when, <duration>, called, who), with one expression
    if given, and its times (``when``) in ``time_format``."""
    template = tmp_path / f"{name}.toml"
    template.write_text(
        f"""
[source]
header = true
[fields]
source_id = "id"
connect_time = {{ column = "when", format = "{time_format}" }}
duration = "{duration}"
cld = "called"
account = "who"
vendor = {{ value = "gw1" }}
[expressions]
{expression}
"""
    )
    xdr_templates.add_template(world, name, template)


def deck_date(days_ahead: int = 60) -> date:
    """A rate deck's effective date that is in the future whenever the test runs (rows dated in
    the past are skipped by default): for tests that cannot tell the import what "now" is."""
    return datetime.now(UTC).date() + timedelta(days=days_ahead)
