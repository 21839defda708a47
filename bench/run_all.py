"""``make bench``: every benchmark with its default sizes, one after the other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in (
    "bench_kernel.py",
    "bench_ingest.py",
    "bench_templates.py",
    "bench_corrections.py",
    "bench_rate_import.py",
    "bench_reports.py",
    "bench_delivery.py",
    "bench_api_load.py",
):
    print(f"\n=== {script} ===", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)
