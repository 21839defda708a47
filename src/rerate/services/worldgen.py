"""A realistic synthetic carrier world, for the demo and the benchmarks.

Real country calling codes (from phonenumbers) carry destinations; customers,
accounts, vendors and a month of traffic are generated from a seed, so the
same seed always gives the same world.  Everything is written in rerate's
canonical file formats and loaded through the same services an operator uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from rerate.services.countries import country_prefixes
from rerate.services.tariffs import CANONICAL_COLUMNS

RATE_HEADER = CANONICAL_COLUMNS
_NAMES = (
    "Atlas Borealis Cobalt Delta Ember Fjord Granite Harbor Iris Juniper Kestrel Lumen Meridian Nimbus "
    "Onyx Pioneer Quartz Raven Sierra Tundra Umbra Vertex Willow Xenon Yarrow Zephyr Aurora Beacon "
    "Cascade Dune Echo Falcon Glacier Helix Indigo Jade Kite Lagoon Mistral Nova Orbit Prism Quasar "
    "Ridge Summit Tidal Unity Vortex Wave Zenith"
).split()
_SUFFIXES = ("Telecom", "Networks", "Communications", "Voice", "Carrier Services")


@dataclass(frozen=True)
class WorldSpec:
    customers: int = 50
    accounts: int = 150
    vendors: int = 5
    customer_tariffs: int = 3
    prefixes: int = 20_000
    versions: int = 3
    xdrs: int = 2_000_000
    month: date = date(2026, 10, 1)
    seed: int = 7


@dataclass
class Party:
    name: str
    tariff: str
    identifiers: list[str] = field(default_factory=list)


@dataclass
class World:
    """What was generated: files to import and the parties to create."""

    spec: WorldSpec
    tariff_files: dict[str, Path]
    tariff_currency: dict[str, str]
    customers: list[Party]
    vendors: list[Party]
    xdr_files: list[Path]
    destination_prefixes: list[str]


def _destinations(rng: np.random.Generator, count: int) -> tuple[list[str], list[str]]:
    """``count`` distinct destination prefixes under real calling codes, with a label each."""
    countries = [c for c in country_prefixes() if c.prefix == str(c.calling_code)]
    # Big markets get more breakouts, as real decks have.
    weights = np.array([3.0 if len(c.prefix) <= 2 else 1.0 for c in countries])
    weights /= weights.sum()
    prefixes: dict[str, str] = {}
    for country in countries:  # every country has at least its plain code
        prefixes[country.prefix] = f"{country.name} Fixed"
    picks = rng.choice(len(countries), size=count * 2, p=weights)
    lengths = rng.integers(1, 5, size=count * 2)
    digits = rng.integers(0, 10**6, size=count * 2)
    for pick, length, tail in zip(picks.tolist(), lengths.tolist(), digits.tolist(), strict=True):
        if len(prefixes) >= count:
            break
        country = countries[pick]
        prefix = country.prefix + str(tail).zfill(6)[:length]
        kind = "Mobile" if int(str(tail)[0]) % 3 == 0 else "Fixed"
        prefixes.setdefault(prefix, f"{country.name} {kind}")
    ordered = sorted(prefixes)
    return ordered, [prefixes[p] for p in ordered]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_deck(
    path: Path,
    rng: np.random.Generator,
    prefixes: list[str],
    labels: list[str],
    base_price: np.ndarray,
    starts: list[datetime],
    *,
    forbidden_share: float,
) -> None:
    """Three (or more) effective-dated versions of a rate deck in one canonical CSV."""
    n = len(prefixes)
    rows: list[tuple[str, ...]] = []
    price = base_price.copy()
    forbidden = rng.random(n) < forbidden_share
    alive = np.ones(n, dtype=bool)
    intervals = rng.choice([(60, 60), (1, 1), (30, 6)], size=n, p=[0.5, 0.3, 0.2])
    for version, start in enumerate(starts):
        if version == 0:
            changed = np.ones(n, dtype=bool)
        else:
            changed = rng.random(n) < 0.3
            factor = rng.choice([0.85, 0.95, 1.05, 1.2], size=n)
            price = np.where(changed, np.maximum(price * factor, 1), price).astype(np.int64)
        dropped = (rng.random(n) < 0.01) & alive & (version > 0)
        for i in np.flatnonzero(changed | dropped).tolist():
            if not alive[i] and not changed[i]:
                continue
            text = str(Decimal(int(price[i])).scaleb(-5))
            rows.append(
                (
                    prefixes[i],
                    _iso(start),
                    str(intervals[i][0]),
                    str(intervals[i][1]),
                    text,
                    text,
                    "0",
                    "0",
                    "0",
                    "0",
                    "true" if forbidden[i] else "false",
                    "true" if dropped[i] else "false",
                    labels[i],
                )
            )
        alive &= ~dropped
    table = pa.table({name: pa.array([r[k] for r in rows]) for k, name in enumerate(RATE_HEADER)})
    pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(quoting_style="needed"))


def generate_world(spec: WorldSpec, folder: Path) -> World:
    """Write the world's rate decks and XDR files under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    prefixes, labels = _destinations(rng, spec.prefixes)
    month_start = datetime(spec.month.year, spec.month.month, spec.month.day, tzinfo=UTC)
    starts = [month_start - timedelta(days=60), month_start, month_start + timedelta(days=14)][
        : spec.versions
    ]
    # Prices in units of 1e-5 per minute: most destinations cheap, a long tail of expensive ones.
    cost = (rng.lognormal(mean=0.0, sigma=1.1, size=len(prefixes)) * 1500).astype(np.int64) + 50
    tariff_files: dict[str, Path] = {}
    currency: dict[str, str] = {}
    for t in range(spec.customer_tariffs):
        name = ["Wholesale Standard", "Wholesale Premium", "Retail Partner"][t % 3] + (
            "" if t < 3 else f" {t}"
        )
        markup = 1.15 + 0.1 * t
        path = folder / f"tariff-{t + 1}.csv"
        _write_deck(
            path,
            rng,
            prefixes,
            labels,
            (cost * markup).astype(np.int64),
            starts,
            forbidden_share=0.002,
        )
        tariff_files[name] = path
        currency[name] = "USD"
    vendor_parties: list[Party] = []
    for v in range(spec.vendors):
        name = f"{_NAMES[-1 - v]} Transit"
        tariff = f"{name} cost"
        path = folder / f"vendor-{v + 1}.csv"
        factor = rng.uniform(0.85, 1.0)
        _write_deck(
            path,
            rng,
            prefixes,
            labels,
            (cost * factor).astype(np.int64),
            starts,
            forbidden_share=0.0,
        )
        tariff_files[tariff] = path
        currency[tariff] = "USD"
        vendor_parties.append(Party(name, tariff, [f"gw-{name.split()[0].lower()}-{k}" for k in (1, 2)]))
    customers: list[Party] = []
    customer_tariffs = list(tariff_files)[: spec.customer_tariffs]
    for c in range(spec.customers):
        name = f"{_NAMES[c % len(_NAMES)]} {_SUFFIXES[c % len(_SUFFIXES)]}" + (
            "" if c < len(_NAMES) else f" {c}"
        )
        customers.append(Party(name, customer_tariffs[int(rng.integers(0, len(customer_tariffs)))]))
    for a in range(spec.accounts):
        owner = customers[a % len(customers)]
        owner.identifiers.append(f"{owner.name.split()[0].lower()}-trunk-{len(owner.identifiers) + 1:02d}")
    xdr_path = folder / f"xdrs-{spec.month:%Y-%m}.csv"
    write_xdrs(xdr_path, spec, rng, prefixes, customers, vendor_parties)
    late = folder / f"xdrs-{spec.month:%Y-%m}-late-delivery.csv"
    _write_late_file(late, xdr_path, rng, customers[0].identifiers[0], vendor_parties[0].identifiers[0])
    return World(spec, tariff_files, currency, customers, vendor_parties, [xdr_path, late], prefixes)


def _xdr_batches(
    spec: WorldSpec,
    rng: np.random.Generator,
    prefixes: list[str],
    customers: list[Party],
    vendors: list[Party],
    rows_per_batch: int = 1_000_000,
) -> Iterator[pa.Table]:
    accounts = [i for c in customers for i in c.identifiers]
    connections = [i for v in vendors for i in v.identifiers]
    account_weights = 1.0 / np.arange(1, len(accounts) + 1) ** 0.8  # a few big accounts, a long tail
    account_weights /= account_weights.sum()
    destination_weights = 1.0 / np.arange(1, len(prefixes) + 1) ** 0.6
    destination_weights = rng.permutation(destination_weights / destination_weights.sum())
    prefix_array = pa.array(prefixes)
    month_start = datetime(spec.month.year, spec.month.month, spec.month.day, tzinfo=UTC)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    seconds_in_month = int((next_month - month_start).total_seconds())
    made = 0
    while made < spec.xdrs:
        n = min(rows_per_batch, spec.xdrs - made)
        # Busy hours: connect times drawn with a daily rhythm peaking in the afternoon.
        day = rng.integers(0, seconds_in_month // 86_400, size=n)
        hour = np.clip(rng.normal(14.0, 4.5, size=n), 0, 23.999)
        second = (day * 86_400 + hour * 3600).astype(np.int64)
        micros = (int(month_start.timestamp()) + second) * 1_000_000
        answered = rng.random(n) < 0.72
        duration = np.where(answered, np.minimum(rng.lognormal(4.6, 1.0, size=n), 7200), 0).astype(np.int64)
        destination = pc.take(
            prefix_array, pa.array(rng.choice(len(prefixes), size=n, p=destination_weights))
        )
        subscriber = pc.cast(pa.array(rng.integers(10**6, 10**8, size=n)), pa.string())
        number = pc.binary_join_element_wise(destination, subscriber, "")
        # Realistic dirt: national formatting, unknown accounts and gateways, garbage numbers.
        formatted = pc.binary_join_element_wise(pa.array(np.full(n, "+")), number, "")
        number = pc.if_else(pa.array(rng.random(n) < 0.3), formatted, number)
        garbage = pa.array(rng.random(n) < 0.002)
        number = pc.if_else(garbage, pa.array(np.full(n, "anonymous")), number)
        account = pc.take(pa.array(accounts), pa.array(rng.choice(len(accounts), size=n, p=account_weights)))
        unknown = pa.array(rng.random(n) < 0.003)
        account = pc.if_else(unknown, pa.array(np.full(n, "unprovisioned-trunk")), account)
        vendor = pc.take(pa.array(connections), pa.array(rng.integers(0, len(connections), size=n)))
        vendor = pc.if_else(pa.array(rng.random(n) < 0.002), pa.array(np.full(n, "gw-retired-9")), vendor)
        source = pc.binary_join_element_wise(
            pa.array(np.full(n, "sw1-")),
            pc.cast(pa.array(np.arange(made, made + n) + 10**9), pa.string()),
            "",
        )
        yield pa.table(
            {
                "source_id": source,
                "connect_time": pc.strftime(
                    pa.array(micros // 1_000_000, pa.timestamp("s", tz="UTC")),
                    format="%Y-%m-%dT%H:%M:%SZ",
                ),
                "duration": duration,
                "cli": pc.cast(pa.array(rng.integers(10**10, 10**11, size=n)), pa.string()),
                "cld": number,
                "account": account,
                "vendor": vendor,
            }
        )
        made += n


def write_xdrs(
    path: Path,
    spec: WorldSpec,
    rng: np.random.Generator,
    prefixes: list[str],
    customers: list[Party],
    vendors: list[Party],
) -> None:
    """Stream ``spec.xdrs`` XDRs into a canonical CSV, a million rows at a time."""
    writer: pcsv.CSVWriter | None = None
    try:
        for table in _xdr_batches(spec, rng, prefixes, customers, vendors):
            if writer is None:
                # No field of a generated XDR holds a comma or a quote: write them bare, as switches do.
                writer = pcsv.CSVWriter(
                    path, table.schema, write_options=pcsv.WriteOptions(quoting_style="none")
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _write_late_file(
    path: Path, first: Path, rng: np.random.Generator, account: str, connection: str
) -> None:
    """A second delivery that overlaps the first (duplicates) and has a few broken rows."""
    with first.open("r", encoding="utf-8") as handle:
        header = handle.readline()
        overlap = [handle.readline() for _ in range(500)]
    broken = [
        "sw2-1,2026-13-40T25:00:00Z,60,4420,4420794600,x,y\n",
        "sw2-2,2026-10-05T10:00:00Z,-15,4420,4420794600,x,y\n",
        "sw2-3,2026-10-05T10:00:00Z,12.5,4420,4420794600,x,y\n",
        "sw2-4,2026-10-05T10:00:00Z\n",
        ",2026-10-05T10:00:00Z,60,4420,4420794600,x,y\n",
    ]
    fresh = []
    for i in range(1500):
        moment = datetime(2026, 10, 31, 23, 0, tzinfo=UTC) + timedelta(seconds=int(rng.integers(0, 3599)))
        seconds = int(rng.integers(0, 900))
        fresh.append(f"sw2-late-{i},{_iso(moment)},{seconds},4420,4420794{i:04d},{account},{connection}\n")
    with path.open("w", encoding="utf-8") as handle:
        handle.write(header)
        handle.writelines(overlap + broken + fresh)
