"""Ingest throughput (CSV -> ledger, end to end) and peak memory, on generated data.

* ``--xdrs`` XDRs of the demo world's shape are ingested through the service
  (validate, de-duplicate, mediate, rate both sides, write, publish), twice,
  each into its own home: the demo world's file, a month of calls in random
  order, and the same calls in call order, as a switch writes them;
* the tariff book is compiled before each timed ingest and its time printed
  apart: only the first file after a tariff change pays it, every later one
  finds it compiled; each ingest's time is also printed by phase (wall and
  CPU), as the ingest's own progress stages name them;
* baseline in the same run: DuckDB copying the same CSV to Parquet with no
  checks and no rating, the floor any loader pays for reading and writing;
* the floor of the work itself, beside it: the CPU per XDR of only reading the
  CSV (pyarrow, typed) and of only encoding the columns the XDR table stores
  (a sample of the XDRs just ingested, with the ledger's own Parquet options),
  against the 2,000 ns of CPU per XDR that 1 M XDRs/s leaves on 2 cores;
* ``--rss-xdrs`` XDRs are ingested by a separate ``rerate ingest`` process
  whose peak resident memory is read from the kernel (its VmHWM, Linux).

    python bench/bench_ingest.py --xdrs 5000000 --rss-xdrs 20000000
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rerate.bootstrap import App
from rerate.ledger.schema import RAW_FIELDS, XDR_FILE_SCHEMA
from rerate.ledger.tables import XDRS, PartitionedWriter, xdr_parquet_options
from rerate.services.ingest import ingest
from rerate.services.worldgen import World, WorldSpec, generate_world

from common import compile_book, rate, world_home

#: Runs rerate's CLI with the arguments given, then prints the process's peak resident memory.
PEAK_PROBE = """
import atexit, runpy, sys

def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"peak-rss-kb {kb}", file=sys.stderr)

atexit.register(peak)
runpy.run_module("rerate.entrypoints.cli", run_name="__main__")
"""


class PhaseClock:
    """An ingest progress that times each stage the ingest names (wall, and the process's CPU,
    writer and DuckDB threads included): where the time goes, not only how much."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float, float]] = []
        self._name, self._wall, self._cpu = "reading the catalog", time.perf_counter(), _cpu()

    def _next(self, name: str) -> None:
        wall, cpu = time.perf_counter(), _cpu()
        self.phases.append((self._name, wall - self._wall, cpu - self._cpu))
        self._name, self._wall, self._cpu = name, wall, cpu

    def file_started(self, name: str, total_bytes: int) -> None:
        self._next("streaming (read, type, mediate, rate, gather, encode)")

    def advanced(self, bytes_read: int, rows: int) -> None:
        pass

    def stage(self, text: str) -> None:
        self._next(text)

    def done(self) -> str:
        self._next("")
        return "; ".join(f"{name} {wall:.1f} s, CPU {cpu:.1f} s" for name, wall, cpu in self.phases)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: CPU per XDR that 1 M XDRs/s leaves for everything on the reference machine's 2 cores.
BUDGET_NS = 2 * 1e9 / 1e6


def floor(csv_path: Path, xdr_dir: Path, sample_rows: int = 1_000_000) -> tuple[float, float, float]:
    """CPU ns per XDR of the steps no loader of this ledger can skip: reading the CSV, encoding
    the XDR table's stored columns, and (part of that) encoding only the raw fields as received,
    which the architecture keeps in every row (best of three, on a sample of the files ingested).

    Encoding is timed on one file of the whole sample: the row-group size does not change its
    cost per XDR (docs/performance.md), and one file leaves out the per-day split.
    """
    read_ns = min(_cpu_ns_per_row(lambda: pa_csv.read_csv(csv_path).num_rows) for _ in range(3))
    parts, rows = [], 0
    for path in sorted(xdr_dir.rglob("*.parquet")):
        part = pq.read_table(path, partitioning=None)
        parts.append(part)
        rows += part.num_rows
        if rows >= sample_rows:
            break
    sample = pa.concat_tables(parts).combine_chunks()
    target = xdr_dir.parent / "floor-encoding.parquet"

    def encoding(table: pa.Table) -> Callable[[], int]:
        def encode() -> int:
            pq.write_table(
                table,
                target,
                row_group_size=PartitionedWriter.row_group_rows,
                **xdr_parquet_options(table.column_names),
            )
            return table.num_rows

        return encode

    encode_ns = min(_cpu_ns_per_row(encoding(sample)) for _ in range(3))
    raw = sample.select([f.name for f in RAW_FIELDS])
    raw_ns = min(_cpu_ns_per_row(encoding(raw)) for _ in range(3))
    target.unlink()
    return read_ns, encode_ns, raw_ns


def _cpu_ns_per_row(step: Callable[[], int]) -> float:
    started = _cpu()
    rows = step()
    return (_cpu() - started) / rows * 1e9


def build(home: Path, data: Path, xdrs: int) -> tuple[App, World]:
    world = generate_world(WorldSpec(xdrs=xdrs), data)
    return world_home(home, world), world


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xdrs", type=int, default=5_000_000)
    parser.add_argument("--rss-xdrs", type=int, default=20_000_000, help="0 to skip the memory run")
    parser.add_argument("--work", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    work = args.work.resolve()

    app, world = build(work / "home", work / "world", args.xdrs)
    source = world.xdr_files[0]
    size_mb = source.stat().st_size / 1e6
    print(f"file: {source.name}, {args.xdrs:,} XDRs, {size_mb:,.0f} MB")

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{source}', all_varchar=true)) TO '{work / 'copy.parquet'}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    baseline = time.perf_counter() - started
    print(f"baseline, DuckDB CSV -> Parquet copy: {rate(args.xdrs, baseline):>10}  ({baseline:.1f} s)")

    in_call_order = work / "in-call-order.csv"
    con.execute(
        f"COPY (SELECT * FROM read_csv('{source}', all_varchar=true) ORDER BY connect_time, source_id) "
        f"TO '{in_call_order}' (FORMAT csv, HEADER true)"
    )
    ordered_app = world_home(work / "home-ordered", world)
    slowest = float("inf")
    for label, home, path in (
        ("random order (demo world)", app, source),
        ("call order (as switches)", ordered_app, in_call_order),
    ):
        compiled = compile_book(home)
        clock = PhaseClock()
        started = time.perf_counter()
        (report,) = ingest(home, [path], progress=clock)
        seconds = time.perf_counter() - started
        assert report.loaded == args.xdrs, report
        slowest = min(slowest, args.xdrs / seconds)
        print(
            f"rerate ingest, {label:26s}{rate(args.xdrs, seconds):>10}  ({seconds:.1f} s; "
            f"{report.failed:,} failed kept) = {baseline / seconds:.2f}x the bare copy's speed; "
            f"tariff book compiled before it in {compiled:.1f} s"
        )
        print(f"  by phase: {clock.done()}")
        home.close()
    print(f"goal >= 1 M XDRs/s (both files): {'met' if slowest >= 1e6 else 'NOT met'}")
    read_ns, encode_ns, raw_ns = floor(source, app.ledger.path(XDRS))
    columns = len(XDR_FILE_SCHEMA)
    print(
        f"the floor, CPU per XDR: reading the CSV alone (pyarrow, typed) {read_ns:,.0f} ns + "
        f"encoding the {columns} stored columns alone (the ledger's options) {encode_ns:,.0f} ns "
        f"(the {len(RAW_FIELDS)} raw fields alone: {raw_ns:,.0f} ns) = {read_ns + encode_ns:,.0f} ns, "
        f"{(read_ns + encode_ns) / BUDGET_NS:.0%} of the {BUDGET_NS:,.0f} ns that 1 M XDRs/s leaves "
        "on 2 cores, before validation, mediation, rating, sorting, duplicates and totals"
    )

    if args.rss_xdrs:
        big_app, big_world = build(work / "home-rss", work / "world-rss", args.rss_xdrs)
        big_app.close()
        started = time.perf_counter()
        # `rerate ingest` run by a probe that prints the process's own peak (VmHWM) as it exits.
        # Not ru_maxrss: the kernel carries into it the pages of the process forked from this
        # one, which has just generated the 20 M-call world and ingested 5 M XDRs.
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK_PROBE,
                "--home",
                str(work / "home-rss"),
                "ingest",
                str(big_world.xdr_files[0]),
                "--json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        found = re.search(r"^peak-rss-kb (\d+)$", done.stderr, re.MULTILINE)
        if done.returncode or found is None:
            raise SystemExit(f"rerate ingest failed ({done.returncode}): {done.stderr[-2000:]}")
        peak_mb = int(found.group(1)) / 1024
        print(
            f"peak RSS ingesting {args.rss_xdrs:,} XDRs: {peak_mb:,.0f} MB in {seconds:.0f} s "
            f"({rate(args.rss_xdrs, seconds)}); goal < 2 GB: {'met' if peak_mb < 2048 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
