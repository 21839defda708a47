"""Sending CDR deliveries: files rendered from rows staged in one pass, e-mailed part by part.

The rows of every delivery of a run are copied out of the ledger in one scan
(rerate.services.delivery_query.stage_rows, in chunks of bounded size); the
files are then written and sent by a small pool of workers, since compression
(zlib) and DuckDB release the GIL while SMTP waits on the network.
"""

from __future__ import annotations

import os
import queue
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Delivery, DeliverySchedule
from rerate.domain.delivery import CdrColumn, CdrFormat, Compression, Period
from rerate.services import audit
from rerate.services.cdr_files import CdrFileSpec, RenderedCdr, write_cdr_file
from rerate.services.delivery_query import (
    StagedWindow,
    Window,
    cdr_query,
    drop_staged,
    estimated_rows,
    sources_digests,
    stage_rows,
)
from rerate.services.errors import RerateError
from rerate.services.mailer import MailError, build_message, deliver
from rerate.services.timeparse import iso

#: Rows fetched from DuckDB per batch while a file is written.
_BATCH_ROWS = 50_000
#: Rows staged at once: a month of every customer is staged in several passes, never all in memory.
STAGE_ROWS = 4_000_000
#: Files written and sent at the same time.
WORKERS = max(1, min(4, os.cpu_count() or 1))
DeliveryProgress = Callable[[int, int, str], None]


@dataclass
class DeliveryOutcome:
    schedule_id: int
    customer: str
    period: str
    kind: str
    #: sent | deferred | failed | offered | skipped
    state: str
    delivery_id: int | None = None
    rows: int = 0
    bytes: int = 0
    parts: int = 0
    attempts: int = 0
    message_ids: list[str] = field(default_factory=list)
    error: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DueDelivery:
    schedule: DeliverySchedule
    customer: str
    currency: str
    period: Period


def _spec(schedule: DeliverySchedule, customer: str, period: Period, kind: str) -> CdrFileSpec:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in customer)
    suffix = "_correction" if kind == "correction" else ""
    return CdrFileSpec(
        format=CdrFormat(schedule.format),
        compress=Compression(schedule.compress),
        columns=tuple(CdrColumn(n, h) for n, h in schedule.columns),
        max_bytes=encoded_budget(schedule.max_attachment_bytes),
        stem=f"{safe}_cdr_{period.label.replace('..', '_')}{suffix}",
    )


def _body(due: DueDelivery, rendered: RenderedCdr, index: int, kind: str, replaces: Delivery | None) -> str:
    schedule, period = due.schedule, due.period
    last = period.end - timedelta(days=1)
    span = period.first.isoformat() if last == period.first else f"{period.first} to {last}"
    lines = []
    if kind == "correction":
        sent = iso(replaces.sent_at) if replaces and replaces.sent_at else "earlier"
        lines += [
            "CORRECTED DELIVERY: the CDRs of this period changed after it was delivered "
            f"(corrections, late files or a rollback). This file replaces the one sent {sent}"
            + (f" (delivery {replaces.id})." if replaces else "."),
            "",
        ]
    lines += [
        f"CDRs of {due.customer} for {span} ({schedule.timezone} days).",
        f"Calls: {rendered.rows:,}. Times in {schedule.timestamp_zone}; amounts in {due.currency}"
        + (" as rated." if schedule.money_decimals is None else f" to {schedule.money_decimals} decimals."),
    ]
    if len(rendered.parts) > 1:
        lines += [
            "",
            f"The file is larger than the attachment limit and is split into {len(rendered.parts)} parts, "
            f"one e-mail each. This is part {index + 1} of {len(rendered.parts)}: "
            f"{rendered.parts[index].name} "
            f"({rendered.part_rows[index]:,} calls).",
        ]
    if rendered.rows == 0:
        lines += ["", "There were no calls in this period; the attached file holds the header only."]
    return "\n".join(lines) + "\n"


def _subject(due: DueDelivery, kind: str, index: int, parts: int) -> str:
    subject = f"CDRs {due.customer} {due.period.label}"
    if kind == "correction":
        subject = "CORRECTED " + subject
    return subject + (f" (part {index + 1} of {parts})" if parts > 1 else "")


def _send(
    app: App, cursor: duckdb.DuckDBPyConnection, job: SendJob, key: int, sources: str
) -> DeliveryOutcome:
    """Render one period's file from the staged rows and send it, logging before and after each part."""
    due, kind, existing, replaces = job.due, job.kind, job.existing, job.replaces
    schedule, period = due.schedule, due.period
    spec = _spec(schedule, due.customer, period, kind)
    with tempfile.TemporaryDirectory(prefix="rerate-cdr-") as work:
        sql = cdr_query(spec.columns, schedule.timestamp_zone, schedule.money_decimals)
        rendered = write_cdr_file(
            spec, Path(work), cursor.sql(sql, params=[key]).to_arrow_reader(_BATCH_ROWS)
        )
        with app.catalog.transaction() as session:
            if existing is not None:
                row = session.get(Delivery, existing.id)
                assert row is not None
                if row.fingerprint != rendered.fingerprint or row.parts != len(rendered.parts):
                    row.message_ids = []  # the content changed since the first try: every part again
            else:
                row = _new_row(app, job)
                session.add(row)
            row.state, row.rows, row.bytes, row.parts = (
                "sending",
                rendered.rows,
                rendered.bytes,
                len(rendered.parts),
            )
            row.fingerprint, row.sources, row.error = rendered.fingerprint, sources, None
            resumed = bool(row.message_ids)  # parts the server accepted in an earlier try stay sent
            if not resumed:
                row.refused = []
            session.flush()
            delivery_id = row.id
        sent_ids: list[str] = list(existing.message_ids) if existing is not None and resumed else []
        # Refusals of parts sent in an earlier try: those recipients still lack them.
        refused: set[str] = set(existing.refused or []) if existing is not None and resumed else set()
        attempts = existing.attempts if existing is not None else 0
        state, error = "sent", None
        for index, part in enumerate(rendered.parts):
            if index < len(sent_ids):
                continue  # accepted by the server in an earlier try
            message = build_message(
                app.settings,
                list(job.recipients or schedule.to),
                _subject(due, kind, index, len(rendered.parts)),
                _body(due, rendered, index, kind, replaces),
                [part],
                cc=[] if job.recipients else list(schedule.cc),
            )
            try:
                accepted = deliver(app.settings, message)
            except MailError as exc:
                attempts += int(getattr(exc, "attempts", 1))
                state, error = ("deferred" if exc.temporary else "failed"), str(exc)
                break
            attempts += accepted.attempts
            sent_ids.append(accepted.message_id)
            refused.update(accepted.refused)
            with app.catalog.transaction() as session:
                stored = session.get(Delivery, delivery_id)
                assert stored is not None
                stored.message_ids, stored.attempts = list(sent_ids), attempts
                stored.refused = sorted(refused)
        if refused:  # the others got it; these did not: never "sent", whatever happened after
            addresses = sorted({address.split(" (")[0] for address in refused})
            refusal = (
                f"refused by the server for: {', '.join(sorted(refused))}; the other recipients got "
                f"it ('rerate delivery resend {delivery_id} --to {' --to '.join(addresses)}' sends it "
                "to those alone, without --to to all)"
            )
            if state == "sent":
                state, error = "failed", refusal
            else:  # deferred: the next run sends the remaining parts, and still reports the refusal
                error = f"{error}; earlier parts: {refusal}"
        with app.catalog.transaction() as session:
            stored = session.get(Delivery, delivery_id)
            assert stored is not None
            stored.state, stored.error, stored.attempts, stored.message_ids = (
                state,
                error,
                attempts,
                list(sent_ids),
            )
            if state == "sent":
                stored.sent_at = datetime.now(UTC)
                # Older offers for the period are answered by this one (not by a copy to a few).
                if kind == "correction" and not job.recipients:
                    for offer in session.scalars(
                        select(Delivery).where(
                            Delivery.schedule_id == schedule.id,
                            Delivery.first_day == period.first.isoformat(),
                            Delivery.state == "offered",
                            Delivery.id != delivery_id,
                        )
                    ):
                        offer.state = "superseded"
            audit.record(
                session,
                app.actor,
                f"delivery.{state}",
                f"schedule {schedule.id} {period.label}",
                after={
                    "delivery": delivery_id,
                    "kind": kind,
                    "rows": rendered.rows,
                    "parts": len(rendered.parts),
                    **({"to": list(job.recipients)} if job.recipients else {}),
                },
            )
        return DeliveryOutcome(
            schedule_id=schedule.id,
            customer=due.customer,
            period=period.label,
            kind=kind,
            state=state,
            delivery_id=delivery_id,
            rows=rendered.rows,
            bytes=rendered.bytes,
            parts=len(rendered.parts),
            attempts=attempts,
            message_ids=sent_ids,
            error=error,
            note=f"{rendered.oversize} row(s) larger than the attachment limit"
            if rendered.oversize
            else None,
        )


def encoded_budget(limit: int) -> int:
    """The largest file whose mail attachment stays within ``limit`` bytes: mail carries it in
    base64 (4 bytes for 3, in lines of 76 characters and a line break), with a few headers."""
    return max(limit - 2048, 1024) * 57 // 78


@dataclass(frozen=True)
class SendJob:
    """One period to send: new, a retry of a deferred one (``existing``), a resend or a correction."""

    due: DueDelivery
    kind: str
    existing: Delivery | None = None
    replaces: Delivery | None = None
    #: Only these addresses (a resend to the recipients a server refused), instead of the schedule's.
    recipients: tuple[str, ...] = ()


def _chunks(windows: Sequence[StagedWindow], estimates: dict[int, int]) -> list[list[StagedWindow]]:
    chunks: list[list[StagedWindow]] = [[]]
    staged = 0
    for window in windows:
        rows = estimates.get(window.key, 0)
        if chunks[-1] and staged + rows > STAGE_ROWS:
            chunks.append([])
            staged = 0
        chunks[-1].append(window)
        staged += rows
    return [c for c in chunks if c]


def _send_borrowing(
    idle: queue.SimpleQueue[duckdb.DuckDBPyConnection],
    app: App,
    jobs: Sequence[SendJob],
    digests: dict[int, str],
    window: StagedWindow,
) -> DeliveryOutcome:
    cursor = idle.get()
    job = jobs[window.key]
    try:
        return _send(app, cursor, job, window.key, digests[window.key])
    except Exception as exc:  # one period's failure must not stop the other customers'
        return _failed(app, job, str(exc) if isinstance(exc, RerateError) else f"{type(exc).__name__}: {exc}")
    finally:
        idle.put(cursor)


def _new_row(app: App, job: SendJob) -> Delivery:
    """The log row of one period's delivery, before it is sent."""
    schedule, period = job.due.schedule, job.due.period
    starts, ends = period.instants(schedule.timezone)
    return Delivery(
        schedule_id=schedule.id,
        customer_id=schedule.customer_id,
        kind=job.kind,
        corrects_id=job.replaces.id if job.replaces else None,
        period=period.label,
        first_day=period.first.isoformat(),
        end_day=period.end.isoformat(),
        starts=starts,
        ends=ends,
        message_ids=[],
        recipients=list(job.recipients) or None,
        refused=[],
        actor=app.actor,
    )


def _failed(app: App, job: SendJob, error: str) -> DeliveryOutcome:
    """Record a period that could not be made or sent (``failed``: shown, and sent on --resend)."""
    due = job.due
    schedule, period = due.schedule, due.period
    with app.catalog.transaction() as session:
        row = session.scalars(
            select(Delivery)
            .where(Delivery.schedule_id == schedule.id, Delivery.first_day == period.first.isoformat())
            .where(Delivery.state == "sending")
            .order_by(Delivery.id.desc())
        ).first()
        if row is None:
            row = _new_row(app, job)
            session.add(row)
        row.state, row.error = "failed", error
        session.flush()
        audit.record(
            session,
            app.actor,
            "delivery.failed",
            f"schedule {schedule.id} {period.label}",
            after={"error": error},
        )
        delivery_id = row.id
    return DeliveryOutcome(
        schedule_id=schedule.id,
        customer=due.customer,
        period=period.label,
        kind=job.kind,
        state="failed",
        delivery_id=delivery_id,
        error=error,
    )


def send_jobs(
    app: App,
    con: duckdb.DuckDBPyConnection,
    jobs: Sequence[SendJob],
    progress: DeliveryProgress | None = None,
) -> list[DeliveryOutcome]:
    """Send every job; the outcomes come in the jobs' order."""
    windows = []
    for key, job in enumerate(jobs):
        starts, ends = job.due.period.instants(job.due.schedule.timezone)
        windows.append(
            StagedWindow(key, job.due.schedule.customer_id, starts, ends, job.due.schedule.include_failed)
        )
    if not windows:
        return []
    digests = sources_digests(con, [Window(w.key, w.customer_id, w.starts, w.ends) for w in windows])
    outcomes: dict[int, DeliveryOutcome] = {}
    for chunk in _chunks(windows, estimated_rows(con, windows)):
        stage_rows(con, chunk)
        # A DuckDB connection runs one query at a time: each worker borrows its own cursor.
        cursors = [con.cursor() for _ in range(min(WORKERS, len(chunk)))]
        idle: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        for cursor in cursors:
            idle.put(cursor)

        send = partial(_send_borrowing, idle, app, jobs, digests)
        try:
            with ThreadPoolExecutor(max_workers=len(cursors)) as pool:
                for window, outcome in zip(chunk, pool.map(send, chunk), strict=True):
                    outcomes[window.key] = outcome
                    if progress is not None:
                        job = jobs[window.key]
                        progress(len(outcomes), len(jobs), f"{job.due.customer} {job.due.period.label}")
        finally:
            for cursor in cursors:
                cursor.close()
            drop_staged(con)
    return [outcomes[key] for key in range(len(jobs))]
