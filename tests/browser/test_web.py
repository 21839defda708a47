"""The web UI in a real browser: sign-in, the re-rating wizard, a rate import, a rollback."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Adjustment
from rerate.services import jobs as jobs_service
from rerate.services.corrections import RerateRequest, rerate
from rerate.services.periods import close_period
from rerate.services.report import ReportRequest, summary_report
from rerate.services.scopes import resolve_scope
from rerate.services.tariff_admin import show_tariff
from tests.browser.conftest import screenshot, sign_in
from tests.factories import deck_date, write_xdrs

MAIN_PAGES = {
    "dashboard": ("/", "Dashboard"),
    "xdrs": ("/xdrs", "XDR search"),
    "rerate": ("/rerate", "Re-rating wizard"),
    "jobs": ("/jobs", "Jobs"),
    "collections": ("/collections", "Collections"),
    "periods": ("/periods", "Billing periods"),
    "reports": ("/reports?period=2026-10", "Summary report"),
    "deliveries": ("/deliveries", "CDR delivery"),
    "tariffs": ("/tariffs", "Tariffs"),
    "tariff": ("/tariffs/retail?at=2026-10-20T00:00:00Z", "Tariff retail"),
    "import": ("/import", "Rate-deck import"),
    "parties": ("/parties", "Customers, accounts, vendors"),
    "audit": ("/audit", "Audit log"),
}


def test_sign_in_and_every_main_page(page: Any, live: tuple[str, App]) -> None:
    page.goto("/jobs")
    page.wait_for_url("**/login?next=/jobs")  # signed out: the login page
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("[role=alert]")
    screenshot(page, "login")
    sign_in(page)
    for name, (path, heading) in MAIN_PAGES.items():
        page.goto(path)
        assert page.inner_text("h1").startswith(heading), name
        screenshot(page, name)
    page.goto("/reports?period=2026-10")
    assert page.locator("svg.chart polyline").count() == 3  # revenue, cost, margin by day
    page.goto("/xdrs?status=failed")
    assert page.locator("table tr td:first-child").all_inner_texts() == ["f1"]


def _revenue(app: App) -> Decimal:
    totals = summary_report(app, ReportRequest(period="2026-10")).totals
    return sum((t["revenue"] for t in totals if t["currency"] == "EUR"), Decimal(0))


def _wait_for_state(page: Any, state: str) -> None:
    page.wait_for_selector(f"h1 >> text=({state})", timeout=30_000)


def test_rerating_wizard_preview_apply_revert(page: Any, live: tuple[str, App]) -> None:
    _, app = live
    before = _revenue(app)
    sign_in(page)
    page.goto("/rerate")
    page.fill("input[name=customer]", "Acme")
    page.select_option("select[name=tariff]", "cost")
    page.fill("input[name=ghost_percent]", "10")
    page.click("#rerate-form button[type=submit]")
    _wait_for_state(page, "planned")  # the preview: progress, then the result
    assert page.inner_text("#in-scope") == "3" and page.inner_text("#changed") == "3"
    assert page.locator("svg.chart rect.bar").count() >= 2  # delta by day and by destination
    screenshot(page, "rerate-preview")
    assert _revenue(app) == before
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#apply")
    _wait_for_state(page, "applied")
    screenshot(page, "rerate-applied")
    applied = int(re.findall(r"Job (\d+)", page.inner_text("h1"))[0])
    after = _revenue(app)
    assert after != before and jobs_service.job(app, applied).actor == "ada"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#revert")
    _wait_for_state(page, "applied")  # the revert job's own page
    assert "revert" in page.inner_text("h1")
    assert jobs_service.job(app, applied).state == "reverted"
    assert _revenue(app) == before


def test_rate_import_wizard_upload_review_import(page: Any, live: tuple[str, App], tmp_path: Path) -> None:
    _, app = live
    deck = tmp_path / "carrier-deck.csv"
    day = deck_date()  # in the future, so the rows are changes rather than skipped as past
    deck.write_text(
        "Rate notification from Carrier\n\n"
        "Destination;Code;Rate;Billing;Effective date\n"
        f"UK;44;0,0200;60/60;{day:%d-%b-%y}\n"
        f"Germany;49;0,0150;30/6;{day:%d-%b-%y}\n"
        f"Jamaica;1876;0,1000;60/60;{day:%d-%b-%y}\n",
        encoding="utf-8",
    )
    sign_in(page)
    page.goto("/import")
    page.fill("input[name=tariff]", "retail")
    page.set_input_files("input[name=file]", str(deck))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("h1 >> text=review")
    statuses = dict(
        zip(
            page.locator("#rates tr td:nth-child(2)").all_inner_texts(),
            page.locator("#rates tr td.status").all_inner_texts(),
            strict=True,
        )
    )
    assert statuses == {"44": "increase", "49": "decrease", "1876": "new"}
    assert page.inner_text("#summary-new_rates_for_tariff") == "1"  # 1876: new to this tariff
    screenshot(page, "import-review")
    page.click("#import")
    page.wait_for_selector("#imported")
    assert page.inner_text("#summary-created") == "3"
    screenshot(page, "import-done")
    rates = show_tariff(app, "retail", at=datetime.combine(day, time(12), UTC)).rates
    assert {r["prefix"]: Decimal(r["first_price"]) for r in rates if r["prefix"] in ("44", "1876")} == {
        "44": Decimal("0.02"),
        "1876": Decimal("0.1"),
    }


def test_ingest_upload_then_rollback_preview_and_apply(
    page: Any, live: tuple[str, App], tmp_path: Path
) -> None:
    _, app = live
    sign_in(page)
    page.goto("/collections")
    november = write_xdrs(
        tmp_path / "november.csv", [("n1", "2026-11-02T10:00:00Z", "61", "1", "4420794600", "acc1", "gw1")]
    )
    page.set_input_files("#ingest-form input[name=file]", str(november))
    page.click("#ingest-form button[type=submit]")
    _wait_for_state(page, "done")
    assert "november.csv): loaded; read 1, loaded 1" in page.inner_text("main")
    screenshot(page, "ingest-done")
    page.goto("/collections")
    page.locator("tr", has_text="october.csv").locator("text=Preview rollback").click()
    _wait_for_state(page, "planned")
    assert page.inner_text("#changed") == "4"
    screenshot(page, "rollback-preview")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#apply")
    _wait_for_state(page, "applied")
    page.goto("/collections")
    assert "rolled back" in page.inner_text("table")
    screenshot(page, "rollback-done")
    assert _revenue(app) == 0


def test_revert_into_a_period_closed_since_asks_for_the_closed_periods_box(
    page: Any, live: tuple[str, App]
) -> None:
    _, app = live
    with app.catalog.reading() as session:
        scope = resolve_scope(session, customers=["Acme"])
    applied = rerate(app, RerateRequest(scope=scope, tariff="cost")).job_id
    close_period(app, "Acme", "2026-10")  # invoiced with the job's prices
    sign_in(page)
    page.goto(f"/jobs/{applied}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#revert")
    page.wait_for_selector("text=Acme 2026-10", timeout=30_000)  # refused, naming the period
    assert jobs_service.job(app, applied).state == "applied"
    page.goto(f"/jobs/{applied}")
    page.check("#revert-allow-closed")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#revert")
    _wait_for_state(page, "applied")  # the revert job's own page
    undo = int(re.findall(r"Job (\d+)", page.inner_text("h1"))[0])
    assert jobs_service.job(app, applied).state == "reverted"
    with app.catalog.reading() as session:
        assert session.scalars(select(Adjustment).where(Adjustment.job_id == undo)).all()
