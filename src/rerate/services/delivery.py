"""CDR delivery runs: render each due period's file, e-mail it, and keep the delivery log.

Idempotent: a period already sent is not sent again unless asked
(``--resend``).  Temporary SMTP failures are retried with backoff within the
run and, if they persist, by the next run (state ``deferred``); a permanent
failure is recorded (``failed``) and shown, never dropped.  Each sent part is
committed to the log as soon as the server accepts it, so a run that dies
half-way resends only the parts not yet accepted.

After a correction (or a late file, or a rollback) changes the XDRs of a
period already delivered, the run finds it (see rerate.services.delivery_query)
and offers a corrected delivery, or sends it when the schedule says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
from sqlalchemy import func, select

from rerate.bootstrap import App
from rerate.catalog.models import Customer, Delivery, DeliverySchedule
from rerate.domain.delivery import (
    Cadence,
    Period,
    covered_period,
    due_dates,
    is_due,
    local_now,
)
from rerate.services import audit
from rerate.services.delivery_query import (
    Window,
    fingerprint,
    open_delivery_views,
    sources_digests,
    utc_days,
)
from rerate.services.delivery_send import DeliveryOutcome, DeliveryProgress, DueDelivery, SendJob, send_jobs
from rerate.services.errors import ConflictError, NotFoundError
from rerate.services.locks import ledger_lock
from rerate.services.mailer import check_addresses
from rerate.services.parties import customer_named
from rerate.services.timeparse import iso

__all__ = ["DeliveryOutcome", "DeliveryRun", "delivery_log", "resend_delivery", "run_deliveries"]


@dataclass
class DeliveryRun:
    on: str | None
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)

    def as_dict(self) -> dict[str, Any]:
        states = ("sent", "deferred", "failed", "offered", "skipped")
        return {
            "on": self.on,
            **{s: self.count(s) for s in states},
            "deliveries": [o.as_dict() for o in self.outcomes],
        }


def _schedules(app: App, customer: str | None) -> list[tuple[DeliverySchedule, str, str]]:
    with app.catalog.reading() as session:
        query = (
            select(DeliverySchedule, Customer.name, Customer.currency)
            .join(Customer, Customer.id == DeliverySchedule.customer_id)
            .where(DeliverySchedule.active.is_(True))
        )
        if customer is not None:
            query = query.where(DeliverySchedule.customer_id == customer_named(session, customer).id)
        rows = session.execute(query.order_by(Customer.name, DeliverySchedule.id)).all()
        for schedule, _, _ in rows:
            session.expunge(schedule)
        return [(s, name, currency) for s, name, currency in rows]


def _latest(app: App, schedule_id: int, first_day: str) -> Delivery | None:
    with app.catalog.reading() as session:
        row = session.scalars(
            select(Delivery)
            .where(Delivery.schedule_id == schedule_id, Delivery.first_day == first_day)
            .order_by(Delivery.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def _due_items(app: App, on: date | None, customer: str | None, now: datetime) -> list[DueDelivery]:
    items = []
    for schedule, name, currency in _schedules(app, customer):
        cadence = Cadence(schedule.cadence)
        if on is not None:
            dates = [on] if is_due(cadence, schedule.weekday, on) else []
        else:
            today = local_now(now, schedule.timezone).date()
            created = local_now(schedule.created_at, schedule.timezone).date()
            since = max(created, today - timedelta(days=app.settings.delivery_lookback_days))
            dates = due_dates(cadence, schedule.weekday, schedule.send_at, schedule.timezone, since, now)
        items += [DueDelivery(schedule, name, currency, covered_period(cadence, d)) for d in dates]
    return items


def _skipped(due: DueDelivery, latest: Delivery, note: str) -> DeliveryOutcome:
    return DeliveryOutcome(
        schedule_id=due.schedule.id,
        customer=due.customer,
        period=due.period.label,
        kind=latest.kind,
        state="skipped",
        delivery_id=latest.id,
        rows=latest.rows,
        error=latest.error,
        note=note,
    )


def _views_for(app: App, items: list[DueDelivery]) -> duckdb.DuckDBPyConnection:
    spans = [utc_days(*d.period.instants(d.schedule.timezone)) for d in items]
    return open_delivery_views(app, (min(s[0] for s in spans), max(s[1] for s in spans)))


def _first_day_checked(app: App, schedule_ids: list[int], since: date, until: date) -> list[date]:
    """The first day of the earliest delivered period :func:`_corrections` will check (if any)."""
    if not schedule_ids:
        return []
    with app.catalog.reading() as session:
        first = session.scalar(
            select(func.min(Delivery.first_day)).where(
                Delivery.schedule_id.in_(schedule_ids),
                Delivery.end_day >= since.isoformat(),
                Delivery.end_day <= until.isoformat(),
            )
        )
    return [date.fromisoformat(first)] if first else []


def _corrections(
    app: App,
    con: duckdb.DuckDBPyConnection,
    schedules: list[tuple[DeliverySchedule, str, str]],
    since: date,
    until: date,
) -> list[DeliveryOutcome]:
    """Delivered periods that ended between ``since`` and ``until`` (what the views hold) and whose
    XDRs changed since: offer (or send) a corrected delivery."""
    by_id = {s.id: (s, name, currency) for s, name, currency in schedules}
    if not by_id:
        return []
    with app.catalog.reading() as session:
        delivered = session.scalars(
            select(Delivery)
            .where(
                Delivery.schedule_id.in_(by_id),
                Delivery.state != "superseded",
                Delivery.recipients.is_(None),  # a copy to a few addresses is not the customer's file
                Delivery.end_day >= since.isoformat(),
                Delivery.end_day <= until.isoformat(),
            )
            .order_by(Delivery.id)
        ).all()
        newest: dict[tuple[int, str], Delivery] = {}
        for row in delivered:
            session.expunge(row)
            newest[(row.schedule_id, row.first_day)] = row
    # Only a period whose newest delivery went out (or is offered) is compared: a deferred one is
    # retried by the due run, a failed one waits for --resend; neither is offered again meanwhile.
    latest = {key: row for key, row in newest.items() if row.state == "offered" or _went_out(row)}
    now_digests = sources_digests(
        con, [Window(r.id, r.customer_id, r.starts, r.ends) for r in latest.values()]
    )
    outcomes = []
    for (schedule_id, _), row in latest.items():
        if now_digests.get(row.id) == row.sources:
            continue
        schedule, name, currency = by_id[schedule_id]
        current = fingerprint(con, row.customer_id, row.starts, row.ends, schedule.include_failed)
        if current == row.fingerprint:  # other customers' changes, or none to this file's fields
            with app.catalog.transaction() as session:
                stored = session.get(Delivery, row.id)
                if stored is not None:
                    stored.sources = now_digests[row.id]
            continue
        replaces = row if _went_out(row) else _replaced(app, row)
        if row.state == "offered" and replaces is not None and current == replaces.fingerprint:
            # Back to what the customer has (a revert of the correction): the offer is withdrawn.
            with app.catalog.transaction() as session:
                stored = session.get(Delivery, row.id)
                if stored is not None:
                    stored.state = "superseded"
                    stored.error = "withdrawn: the CDRs are again as delivered"
                audit.record(
                    session,
                    app.actor,
                    "delivery.withdraw",
                    f"schedule {schedule.id}",
                    after={"delivery": row.id},
                )
            continue
        first = date.fromisoformat(row.first_day)
        due = DueDelivery(
            schedule,
            name,
            currency,
            Period(Cadence(schedule.cadence), first, date.fromisoformat(row.end_day)),
        )
        if schedule.corrections == "send":
            outcomes += send_jobs(app, con, [SendJob(due, "correction", replaces=replaces)])
            continue
        with app.catalog.transaction() as session:
            if row.state == "offered":
                stored = session.get(Delivery, row.id)
                if stored is not None:
                    stored.state = "superseded"
            starts, ends = due.period.instants(schedule.timezone)
            offer = Delivery(
                schedule_id=schedule.id,
                customer_id=schedule.customer_id,
                kind="correction",
                corrects_id=replaces.id if replaces else None,
                period=due.period.label,
                first_day=row.first_day,
                end_day=row.end_day,
                starts=starts,
                ends=ends,
                state="offered",
                rows=int(current.partition(":")[0]),
                message_ids=[],
                fingerprint=current,
                sources=now_digests[row.id],
                actor=app.actor,
                error=None,
            )
            session.add(offer)
            session.flush()
            audit.record(
                session,
                app.actor,
                "delivery.offer",
                f"schedule {schedule.id} {due.period.label}",
                after={"delivery": offer.id},
            )
            outcomes.append(
                DeliveryOutcome(
                    schedule_id=schedule.id,
                    customer=name,
                    period=due.period.label,
                    kind="correction",
                    state="offered",
                    delivery_id=offer.id,
                    rows=offer.rows,
                    note=f"XDRs changed after delivery {replaces.id if replaces else row.id}: "
                    f"send with 'rerate delivery resend {offer.id}'",
                )
            )
    return outcomes


def _went_out(row: Delivery) -> bool:
    """Whether the customer has this file: sent, or failed only because the server refused some
    recipients after taking every part for the others."""
    if row.state == "sent":
        return True
    return row.state == "failed" and bool(row.refused) and len(row.message_ids or []) == row.parts > 0


def _replaced(app: App, offer: Delivery) -> Delivery | None:
    if offer.corrects_id is None:
        return None
    with app.catalog.reading() as session:
        row = session.get(Delivery, offer.corrects_id)
        if row is not None:
            session.expunge(row)
        return row


def run_deliveries(
    app: App,
    *,
    on: date | None = None,
    customer: str | None = None,
    resend: bool = False,
    now: datetime | None = None,
    progress: DeliveryProgress | None = None,
) -> DeliveryRun:
    """Send what is due (on local date ``on``, or everything due up to ``now``); then look for corrections."""
    with ledger_lock(app.home, f"delivery run by {app.actor}", name="delivery"):
        return _run(app, on, customer, resend, now or datetime.now(UTC), progress)


def _run(
    app: App,
    on: date | None,
    customer: str | None,
    resend: bool,
    now: datetime,
    progress: DeliveryProgress | None,
) -> DeliveryRun:
    run = DeliveryRun(on=on.isoformat() if on else None)
    items = _due_items(app, on, customer, now)
    schedules = _schedules(app, customer)
    lookback = (on or now.date()) - timedelta(days=app.settings.delivery_lookback_days)
    until = (on or now.date()) + timedelta(days=1)
    # The views hold every period checked: a monthly file that ended within the look-back began
    # before it, and a run for a past date sees nothing after that date.
    checked = _first_day_checked(app, [s.id for s, _, _ in schedules], lookback, until)
    check_from = min([lookback, *checked, *(d.period.first for d in items)]) - timedelta(days=1)
    con = open_delivery_views(app, (check_from, until)) if schedules else None
    try:
        jobs: list[SendJob] = []
        for due in items:
            latest = _latest(app, due.schedule.id, due.period.first.isoformat())
            if latest is None:
                jobs.append(SendJob(due, "regular"))
            elif resend and latest.state == "offered":  # the data changed: it goes out as the correction
                jobs.append(SendJob(due, "correction", replaces=_replaced(app, latest)))
            elif resend:
                jobs.append(SendJob(due, "resend", replaces=latest))
            elif latest.state in ("deferred", "sending"):
                jobs.append(
                    SendJob(
                        due,
                        latest.kind,
                        existing=latest,
                        replaces=_replaced(app, latest),
                        recipients=tuple(latest.recipients or ()),  # a resend --to keeps to its addresses
                    )
                )
            elif latest.state == "failed":
                run.outcomes.append(_skipped(due, latest, "failed permanently before: fix it, then --resend"))
            else:
                run.outcomes.append(_skipped(due, latest, "delivered already (--resend sends it again)"))
        if con is not None:
            run.outcomes += send_jobs(app, con, jobs, progress)
            run.outcomes += _corrections(app, con, schedules, lookback, until)
    finally:
        if con is not None:
            con.close()
    return run


def resend_delivery(app: App, delivery_id: int, to: Sequence[str] = ()) -> DeliveryOutcome:
    """Send a logged delivery's period again now; an offered correction is sent as the correction.

    ``to``: only these addresses (say, the one recipient a server refused, once its mailbox is
    fixed), instead of the schedule's recipients and copies.
    """
    recipients = tuple(check_addresses(to)) if to else ()
    with ledger_lock(app.home, f"delivery resend by {app.actor}", name="delivery"):
        return _resend(app, delivery_id, recipients)


def _resend(app: App, delivery_id: int, recipients: tuple[str, ...]) -> DeliveryOutcome:
    with app.catalog.reading() as session:
        row = session.get(Delivery, delivery_id)
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id} (see 'rerate delivery log')")
        schedule = session.get(DeliverySchedule, row.schedule_id)
        customer = session.get(Customer, row.customer_id)
        assert schedule is not None and customer is not None
        if row.state == "sending":
            raise ConflictError(f"delivery {delivery_id} is being sent by another run")
        for entry in (row, schedule):
            session.expunge(entry)
        name, currency = customer.name, customer.currency
    period = Period(
        Cadence(schedule.cadence), date.fromisoformat(row.first_day), date.fromisoformat(row.end_day)
    )
    due = DueDelivery(schedule, name, currency, period)
    con = _views_for(app, [due])
    try:
        if row.state == "offered":
            replaces = _replaced(app, row)
            (outcome,) = send_jobs(
                app, con, [SendJob(due, "correction", replaces=replaces, recipients=recipients)]
            )
            if recipients:  # a copy to a few addresses: the offer still waits for the schedule's
                return outcome
            with app.catalog.transaction() as session:
                stored = session.get(Delivery, row.id)
                if stored is not None and stored.state == "offered":
                    stored.state = "superseded"
            return outcome
        (outcome,) = send_jobs(app, con, [SendJob(due, "resend", replaces=row, recipients=recipients)])
        return outcome
    finally:
        con.close()


def delivery_log(app: App, *, customer: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with app.catalog.reading() as session:
        query = select(Delivery, Customer.name).join(Customer, Customer.id == Delivery.customer_id)
        if customer is not None:
            query = query.where(Delivery.customer_id == customer_named(session, customer).id)
        rows = session.execute(query.order_by(Delivery.id.desc()).limit(limit)).all()
        return [
            {
                "id": d.id,
                "schedule": d.schedule_id,
                "customer": name,
                "period": d.period,
                "kind": d.kind,
                "state": d.state,
                "rows": d.rows,
                "bytes": d.bytes,
                "parts": d.parts,
                "attempts": d.attempts,
                "message_ids": list(d.message_ids),
                "corrects": d.corrects_id,
                "sent_at": iso(d.sent_at) if d.sent_at else None,
                "error": d.error,
            }
            for d, name in rows
        ]
