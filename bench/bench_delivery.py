"""Daily CDR e-mails of every customer, rendered and sent to an SMTP server on loopback.

The demo world's month of ``--xdrs`` XDRs (50 customers) is ingested; each
customer gets a daily schedule (time zones mixed: UTC, Berlin, New York,
Singapore; zipped CSV).  ``rerate delivery run --date D`` is timed for one day
of the month.  The baseline, on the same data in the same run, is what a
billing team's script does: per customer, the rows fetched into Python,
written with the csv module into a zip, and sent with smtplib.  The SMTP
server (aiosmtpd, discarding what it receives) runs in its own process.

    python bench/bench_delivery.py --xdrs 5000000
    python bench/bench_delivery.py --xdrs 50000000     # the issue's scale (about 5 minutes of ingest)
    python bench/bench_delivery.py --reuse            # the ledger of the previous run
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import smtplib
import subprocess
import sys
import time
import zipfile
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy import select

from rerate.bootstrap import App, bootstrap
from rerate.catalog.models import Customer
from rerate.services.delivery import run_deliveries
from rerate.services.delivery_query import open_delivery_views
from rerate.services.delivery_schedules import ScheduleRequest, add_schedule
from rerate.services.demo import load_world
from rerate.services.ingest import ingest
from rerate.services.setup import initialize
from rerate.services.worldgen import WorldSpec, generate_world
from rerate.settings import Settings

from common import timed

HEADER = "source_id connect_time cli cld duration billed amount currency prefix country destination account status reason"
HEADER_COLUMNS = HEADER.split()
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Singapore")
BASELINE_SQL = """
    SELECT x.source_id, strftime(timezone(?, x.connect_time), '%Y-%m-%d %H:%M:%S'), x.cli, x.cld,
           x.duration, x.billed, x.amount, x.currency, x.prefix, x.country, x.destination_group,
           x.account, x.status, x.reason
    FROM xdrs x
    WHERE x.customer_id = ? AND x.connect_time >= ? AND x.connect_time < ? AND x.status = 'rated'
    ORDER BY x.connect_time, x.xdr_id
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _smtp_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"]
    )
    for _ in range(100):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the SMTP server did not start")


def _ledger(args: argparse.Namespace, work: Path) -> tuple[App, WorldSpec]:
    spec = WorldSpec(xdrs=args.xdrs)
    home = work / "home"
    if args.reuse and (home / "catalog.sqlite").exists():
        print(f"ledger: reusing {home}")
        return bootstrap(Settings(home=home)), spec
    shutil.rmtree(work, ignore_errors=True)
    world = generate_world(spec, work / "world")
    app = bootstrap(Settings(home=home))
    initialize(app)
    load_world(app, world)
    started = time.perf_counter()
    ingest(app, [world.xdr_files[0]])
    print(f"ledger: {args.xdrs:,} XDRs ingested in {time.perf_counter() - started:.0f} s")
    shutil.rmtree(work / "world", ignore_errors=True)
    return app, spec


def _baseline(app: App, day: date, port: int) -> tuple[int, int]:
    """Per customer: fetch into Python, csv module into a zip, smtplib."""
    with app.catalog.reading() as session:
        customers = session.execute(select(Customer.id, Customer.name).order_by(Customer.id)).all()
    con = open_delivery_views(app, (day - timedelta(days=2), day + timedelta(days=1)))
    rows_sent = bytes_sent = 0
    from rerate.domain.delivery import Cadence, covered_period

    for index, (customer_id, name) in enumerate(customers):
        zone = ZONES[index % len(ZONES)]
        starts, ends = covered_period(Cadence.daily, day).instants(zone)
        rows = con.execute(BASELINE_SQL, [zone, customer_id, starts, ends]).fetchall()
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(HEADER_COLUMNS)
        writer.writerows(rows)
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{name}.csv", text.getvalue())
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "rerate@localhost", "noc@example.com", name
        message.set_content("CDRs attached")
        message.add_attachment(
            packed.getvalue(), maintype="application", subtype="zip", filename=f"{name}.zip"
        )
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message)
        rows_sent += len(rows)
        bytes_sent += len(packed.getvalue())
    con.close()
    return rows_sent, bytes_sent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--xdrs", type=int, default=5_000_000)
    parser.add_argument("--work", type=Path, default=Path("bench-data/delivery"))
    parser.add_argument("--reuse", action="store_true", help="Reuse the ledger of an earlier run.")
    parser.add_argument("--day", type=int, default=15, help="Day of the month the deliveries are sent on.")
    args = parser.parse_args()
    work = args.work.resolve()
    app, spec = _ledger(args, work)
    port = _free_port()
    server = _smtp_server(port)
    try:
        mailing = bootstrap(
            app.settings.model_copy(
                update={
                    "smtp_host": "127.0.0.1",
                    "smtp_port": port,
                    "smtp_security": "none",
                    "home": app.home,
                }
            )
        )
        with mailing.catalog.transaction() as session:
            from rerate.catalog.models import Delivery, DeliverySchedule

            session.query(Delivery).delete()
            session.query(DeliverySchedule).delete()
            names = session.scalars(select(Customer.name).order_by(Customer.id)).all()
        for index, name in enumerate(names):
            add_schedule(
                mailing,
                ScheduleRequest(
                    customer=name, to=["noc@example.com"], cadence="daily", timezone=ZONES[index % 4]
                ),
            )
        day = spec.month.replace(day=args.day)
        run, seconds = timed(lambda: run_deliveries(mailing, on=day), repeat=1)
        sent = [o for o in run.outcomes if o.state == "sent"]
        if len(sent) != len(names):
            raise SystemExit(f"only {len(sent)} of {len(names)} deliveries were sent: {run.as_dict()}")
        rows = sum(o.rows for o in sent)
        size = sum(o.bytes for o in sent)
        (base_rows, base_bytes), base_seconds = timed(lambda: _baseline(mailing, day, port), repeat=1)
        if base_rows != rows:
            raise SystemExit(f"the baseline sent {base_rows:,} rows, rerate {rows:,}")
        print(
            f"{len(sent)} daily deliveries of {day - timedelta(days=1)}: {rows:,} CDRs, {size / 1e6:.1f} MB zipped, "
            f"rendered and sent in {seconds:.1f} s (goal <= 60 s)"
        )
        print(
            f"baseline (fetch into Python, csv module, zip, smtplib): {base_seconds:.1f} s "
            f"({base_bytes / 1e6:.1f} MB); rerate is {base_seconds / seconds:.1f}x faster"
        )
    finally:
        server.terminate()
        server.wait()
        app.close()


if __name__ == "__main__":
    main()
