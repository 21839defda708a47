"""Rate-deck import at scale: a 200,000-row deck against a 200,000-prefix tariff.

A tariff of ``--prefixes`` prefixes is loaded first; then a carrier deck of
``--rows`` rows (semicolon separated, decimal commas, a notice block, one
increment column; a mix of increases, decreases, duplicates and new codes)
goes through the wizard: parse, guess the mapping, classify every row against
the tariff's history, create destinations, load.  Baseline in the same run:
the same deck loaded row by row through the ORM (query the rate in force,
compare, add), as a hand-written import script would.

    python bench/bench_rate_import.py --prefixes 200000 --rows 200000
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy import select

from rerate.bootstrap import bootstrap
from rerate.catalog.models import Rate, Tariff
from rerate.domain.deck_review import PastPolicy
from rerate.services.rate_import import DeckImportRequest, import_deck
from rerate.services.setup import initialize
from rerate.settings import Settings

from common import rate

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _codes(count: int, rng: np.random.Generator) -> list[str]:
    """Distinct realistic codes: country codes the dialling plan knows, extended with digits."""
    stems = ["44", "49", "33", "39", "34", "7", "86", "91", "55", "52", "234", "254", "61", "81", "62"]
    codes: set[str] = set()
    while len(codes) < count:
        stem = stems[int(rng.integers(len(stems)))]
        codes.add(stem + str(int(rng.integers(10**4, 10**7))))
    return sorted(codes)


def write_tariff_deck(path: Path, codes: list[str], rng: np.random.Generator) -> None:
    prices = rng.integers(50, 50_000, len(codes))
    with path.open("w") as handle:
        handle.write("prefix,price,increments,effective date,description\n")
        for code, price in zip(codes, prices, strict=True):
            handle.write(f"{code},0.{int(price):06d},60/60,2026-11-01,Destination {code[:3]}\n")


def write_update_deck(path: Path, codes: list[str], new: list[str], rng: np.random.Generator) -> None:
    """The carrier's update: existing codes repriced or repeated, plus new ones."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("Rate notification\nAll prices per minute\n\n")
        handle.write('"Destination";"Code";"Rate";"Billing";"Effective date"\n')
        for code in [*codes, *new]:
            price = int(rng.integers(50, 50_000))
            handle.write(f'"Destination {code[:3]}, mobile";"{code}";"0,{price:06d}";"60/60";"01-Dec-26"\n')


def orm_row_by_row(app_home: Path, deck: Path, tariff_name: str) -> tuple[int, float]:
    """The baseline: parse with csv, then per row query the rate in force, compare and add one ORM object."""
    import csv

    app = bootstrap(Settings(home=app_home))
    started = time.perf_counter()
    added = 0
    with app.catalog.transaction() as session, deck.open(newline="") as handle:
        tariff = session.scalars(select(Tariff).where(Tariff.name == tariff_name)).one()
        reader = csv.reader(handle, delimiter=";")
        for _ in range(4):
            next(reader)
        since = datetime(2026, 12, 1, tzinfo=UTC)
        for _, code, price_text, increments, _ in reader:
            price = Decimal(price_text.replace(",", "."))
            first, following = (int(v) for v in increments.split("/"))
            current = session.scalars(
                select(Rate)
                .where(Rate.tariff_id == tariff.id, Rate.prefix == code, Rate.effective_from <= since)
                .order_by(Rate.effective_from.desc())
                .limit(1)
            ).first()
            if current is not None and current.first_price == price and current.first_interval == first:
                continue
            session.add(
                Rate(
                    tariff_id=tariff.id,
                    prefix=code,
                    effective_from=since,
                    first_interval=first,
                    next_interval=following,
                    first_price=price,
                    next_price=price,
                )
            )
            added += 1
            if added % 1000 == 0:
                session.flush()
        session.rollback()  # measure the work, leave the catalog to the wizard's run
    app.close()
    return added, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prefixes", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--work", type=Path, default=Path("bench-data/rate-import"))
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="imports, each into a fresh copy of the catalog (the machine is noisy)",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = np.random.default_rng(5)
    app = bootstrap(Settings(home=work / "home"))
    initialize(app)
    codes = _codes(args.prefixes + args.rows // 10, rng)
    existing, fresh = codes[: args.prefixes], codes[args.prefixes :]
    tariff_deck = work / "tariff.csv"
    write_tariff_deck(tariff_deck, existing, rng)
    started = time.perf_counter()
    loaded = import_deck(
        app,
        DeckImportRequest(
            "Vendor X", tariff_deck, currency="USD", past=PastPolicy.BACKDATE, now=NOW, countries={"7": "RU"}
        ),
    )
    print(f"tariff: {loaded.summary.created:,} prefixes loaded in {time.perf_counter() - started:.1f} s")

    update_rows = args.rows - len(fresh)
    chosen = sorted(rng.choice(len(existing), size=min(update_rows, len(existing)), replace=False).tolist())
    deck = work / "update.csv"
    write_update_deck(deck, [existing[i] for i in chosen], fresh, rng)
    request = DeckImportRequest("Vendor X", deck, now=NOW + timedelta(days=1), countries={"7": "RU"})
    baseline_rows, baseline_seconds = orm_row_by_row(work / "home", deck, "Vendor X")
    print(f"baseline: ORM row by row, {baseline_rows:,} rates added in {baseline_seconds:.1f} s")
    started = time.perf_counter()
    preview_summary = import_deck(app, replace(request, preview=True)).summary
    preview_seconds = time.perf_counter() - started
    app.close()
    snapshot = work / "home-before-import"
    shutil.copytree(work / "home", snapshot)
    runs = []
    for attempt in range(max(args.repeat, 1)):
        if attempt:  # the same catalog as before the first import
            shutil.rmtree(work / "home")
            shutil.copytree(snapshot, work / "home")
        app = bootstrap(Settings(home=work / "home"))
        gc.collect()  # each import starts as a fresh process's would
        started = time.perf_counter()
        summary = import_deck(app, request).summary  # the report's rows go before the next run
        runs.append(time.perf_counter() - started)
        if attempt + 1 < max(args.repeat, 1):
            app.close()
    seconds = sorted(runs)[len(runs) // 2]
    if preview_summary != summary:  # the review must promise exactly what the load does
        raise SystemExit(f"preview and import disagree: {preview_summary} vs {summary}")
    print(
        f"preview (parse, map, classify {summary.total_processed:,} rows): {preview_seconds:.1f} s "
        f"({rate(summary.total_processed, preview_seconds)})"
    )
    print(
        f"import (parse, map, classify, load), median of {len(runs)}: {seconds:.1f} s "
        f"(runs: {', '.join(f'{r:.1f}' for r in runs)}; {rate(summary.total_processed, seconds)}); "
        f"{summary.created:,} created, {summary.skipped_duplicates:,} duplicates, "
        f"{summary.increases:,} increases, {summary.decreases:,} decreases, {summary.new_destinations:,} new "
        f"destinations (goal <= 10 s); {baseline_seconds / seconds:.1f}x the ORM baseline"
    )
    app.close()


if __name__ == "__main__":
    main()
