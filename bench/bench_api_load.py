"""The service under load: 50 clients poll a job and read reports while a large re-rating runs.

A demo-shaped month of ``--xdrs`` XDRs is ingested and ``rerate serve`` is
started as its own process.  The re-rating (every XDR of the month priced with
the customer tariff "Wholesale Standard", as a dry run so both runs do the
same work) is run twice through ``POST /api/rerate``: alone, then with
``--clients`` clients that each, every ``--interval`` seconds, poll the job's
progress and read the month's summary report (alternating; the clients start
spread over the first interval, as pollers of many browsers are).  Printed: the
requests, errors, p50/p95/p99 latency of each kind of read, and the job's
throughput under load against alone (same data, same run).

    python bench/bench_api_load.py --xdrs 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rerate.bootstrap import bootstrap
from rerate.services.demo import load_world
from rerate.services.ingest import ingest
from rerate.services.setup import initialize
from rerate.services.users import add_user
from rerate.services.worldgen import WorldSpec, generate_world
from rerate.settings import Settings

from common import rate

PASSWORD = "bench password 123"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _job_seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - started).total_seconds()


def _run_job(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    queued = client.post("/api/rerate", json=body)
    queued.raise_for_status()
    job_id = queued.json()["job_id"]
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        if job["finished"]:
            if job["state"] != "planned":
                raise SystemExit(f"the re-rating ended {job['state']}: {job.get('error')}")
            return job
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xdrs", type=int, default=2_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a client's reads")
    parser.add_argument("--work", type=Path, default=Path("bench-data/api-load"))
    parser.add_argument("--reuse", action="store_true", help="keep the ledger of an earlier run in --work")
    args = parser.parse_args()
    work = args.work.resolve()
    spec = WorldSpec(xdrs=args.xdrs)
    if not (args.reuse and (work / "home").is_dir()):
        shutil.rmtree(work, ignore_errors=True)
        world = generate_world(spec, work / "world")
        app = bootstrap(Settings(home=work / "home"))
        initialize(app)
        load_world(app, world)
        started = time.perf_counter()
        ingest(app, [world.xdr_files[0]])
        print(f"ledger: {args.xdrs:,} XDRs ingested in {time.perf_counter() - started:.0f} s")
        add_user(app, "bench", "admin", PASSWORD)
        app.close()

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rerate.entrypoints.cli",
            "--home",
            str(work / "home"),
            "serve",
            "--port",
            str(port),
            "--poll",
            "0.2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = httpx.post(f"{base}/api/token", data={"username": "bench", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        period = f"{spec.month:%Y-%m}"
        first = spec.month.replace(day=1)
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        body = {
            "from": f"{first:%Y-%m-%d}T00:00:00Z",
            "to": f"{after:%Y-%m-%d}T00:00:00Z",
            "tariff": "Wholesale Standard",
            "side": "customer",
            "dry_run": True,
        }
        with httpx.Client(base_url=base, headers=headers, timeout=60) as control:
            alone = _run_job(control, body)
            alone_seconds = _job_seconds(alone)
            print(
                f"re-rating alone: {alone['in_scope']:,} XDRs in {alone_seconds:.1f} s "
                f"({rate(alone['in_scope'], alone_seconds)}), {alone['changed']:,} changed"
            )
            queued = control.post("/api/rerate", json=body).json()
            job_id = queued["job_id"]
            latencies: dict[str, list[float]] = defaultdict(list)
            errors: list[str] = []
            stop = threading.Event()
            slow_at: list[tuple[float, float]] = []
            load_started = time.perf_counter()

            def client_loop(number: int) -> None:
                # Pollers are not in step: client n starts n/clients of an interval after the first.
                if stop.wait(args.interval * number / args.clients):
                    return
                with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                    kinds = ("job", "report") if number % 2 else ("report", "job")
                    turn = 0
                    while not stop.is_set():
                        kind = kinds[turn % 2]
                        path = (
                            f"/api/jobs/{job_id}"
                            if kind == "job"
                            else f"/api/reports/summary?period={period}"
                        )
                        begun = time.perf_counter()
                        try:
                            response = client.get(path)
                            if response.status_code != 200:
                                errors.append(f"{kind}: HTTP {response.status_code}")
                        except httpx.HTTPError as exc:
                            errors.append(f"{kind}: {type(exc).__name__}")
                        latencies[kind].append(time.perf_counter() - begun)
                        slow_at.append((begun - load_started, time.perf_counter() - begun))
                        turn += 1
                        stop.wait(args.interval)

            threads = [
                threading.Thread(target=client_loop, args=(n,), daemon=True) for n in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            while True:
                job = control.get(f"/api/jobs/{job_id}").json()
                if job["finished"]:
                    break
                time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join(35)
        loaded_seconds = _job_seconds(job)
        every = [v for values in latencies.values() for v in values]
        print(
            f"under load ({args.clients} clients, a read every {args.interval:g} s each): "
            f"{len(every):,} reads, {len(errors)} errors"
            + (f" ({', '.join(sorted(set(errors))[:3])})" if errors else "")
        )
        for kind, values in sorted(latencies.items()):
            print(
                f"  {kind} reads: {len(values):,}, p50 {_percentile(values, 0.5) * 1000:.0f} ms, "
                f"p95 {_percentile(values, 0.95) * 1000:.0f} ms, p99 {_percentile(values, 0.99) * 1000:.0f} ms"
            )
        print(
            f"all reads: p99 {_percentile(every, 0.99) * 1000:.0f} ms (goal <= 200 ms); "
            f"re-rating under load: {loaded_seconds:.1f} s ({rate(job['in_scope'], loaded_seconds)}), "
            f"{alone_seconds / loaded_seconds:.0%} of its throughput alone (goal >= 80%)"
        )
        slow = [(round(at, 1), round(took, 2)) for at, took in slow_at if took > 0.2]
        print(f"reads over 200 ms: {len(slow)}, at (s after the load began, took): {slow[:20]}")
        print(json.dumps({"state": job["state"], "in_scope": job["in_scope"]}))
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
