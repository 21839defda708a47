"""``rerate demo``: a realistic carrier world, ingested and rated, with a summary."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rerate.bootstrap import App
from rerate.services import parties, tariffs
from rerate.services.corrections import CorrectionReport, RerateRequest, rerate
from rerate.services.errors import ConflictError
from rerate.services.ingest import CollectionReport, IngestProgress, ingest
from rerate.services.scopes import resolve_scope
from rerate.services.setup import initialize
from rerate.services.summary import CustomerSummary, customer_summary
from rerate.services.worldgen import World, WorldSpec, generate_world

MARKER = ".rerate-demo"


@dataclass
class DemoReport:
    world: World
    collections: list[CollectionReport]
    summary: list[CustomerSummary]
    timings: dict[str, float] = field(default_factory=dict)
    correction_story: str = ""
    preview: CorrectionReport | None = None
    applied: CorrectionReport | None = None


def prepare_home(home: Path) -> None:
    """A demo home is rebuilt from scratch; any other non-empty home is left alone."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise ConflictError(
                f"{home} already holds rerate data that the demo did not create; "
                "run the demo with another --home"
            )
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("created by 'rerate demo'; the next demo run replaces this directory\n")


def load_world(app: App, world: World) -> None:
    """Import a generated world's rate decks and create its vendors, customers and accounts."""
    for name, path in world.tariff_files.items():
        tariffs.import_rates(app, name, path, currency=world.tariff_currency[name], allow_past=True)
    for vendor in world.vendors:
        parties.add_vendor(app, vendor.name, tariff=vendor.tariff, connections=vendor.identifiers)
    for customer in world.customers:
        parties.add_customer(app, customer.name, tariff=customer.tariff)
        for identifier in customer.identifiers:
            parties.add_account(app, identifier, customer=customer.name)


def run_demo(
    app: App,
    spec: WorldSpec,
    *,
    progress: IngestProgress | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> DemoReport:
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    initialize(app)
    say(
        f"Generating the world: {spec.customers} customers, {spec.accounts} accounts, "
        f"{spec.vendors} vendors, "
        f"{spec.prefixes:,} destinations x {spec.versions} rate versions, {spec.xdrs:,} XDRs"
    )
    world = generate_world(spec, app.home / "demo-input")
    lap("generate")
    say("Importing rate decks (canonical CSV, three effective dates each)")
    load_world(app, world)
    lap("catalog")
    say("Ingesting the month's XDR files (validated, de-duplicated, mediated, rated on both sides)")
    collections = ingest(app, world.xdr_files, progress)
    lap("ingest")
    story, preview, applied = _wrong_tariff_correction(app, world)
    lap("correction")
    summary = customer_summary(app)
    lap("summary")
    return DemoReport(world, collections, summary, timings, story, preview, applied)


def _wrong_tariff_correction(app: App, world: World) -> tuple[str, CorrectionReport, CorrectionReport]:
    """The classic mistake: a customer was on the wrong tariff for the whole month."""
    customer = world.customers[0]
    right = next(t for t in world.tariff_files if t != customer.tariff and not t.endswith(" cost"))
    month = datetime(world.spec.month.year, world.spec.month.month, 1, tzinfo=UTC)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    parties.set_customer_tariff(app, customer.name, right, month)
    with app.catalog.reading() as session:
        scope = resolve_scope(session, customers=[customer.name], start=month, end=following)
    preview = rerate(app, RerateRequest(scope=scope, dry_run=True))
    applied = rerate(app, RerateRequest(scope=scope))
    story = (
        f"{customer.name} should have been on tariff '{right}' all month, not '{customer.tariff}': "
        f"the assignment is fixed from {month:%Y-%m-%d} and the month is re-rated (preview, then apply)"
    )
    return story, preview, applied
