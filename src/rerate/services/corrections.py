"""Corrections: re-rating a scope as a dry run or as an applied, revertible job.

A job reads the scope's XDRs in their current state one call date at a time,
re-prices them with the kernel, and keeps only the XDRs whose result changed.
A dry run stops there and reports the full diff.  Applying writes, for the
changed XDRs only, revision rows and the daily totals' delta (old rows
negated, new rows added), publishes both, and then marks the job ``applied``
in the catalog, which is what makes them visible (ARCHITECTURE.md).  Applying
the same correction twice therefore writes nothing the second time.
Reverting hides a job's revisions and totals again, restoring the exact
previous state, unless a later job changed the same XDRs.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import Adjustment, Customer, Job
from rerate.domain.arrow_money import decimal_to_nanos
from rerate.domain.money import MONEY_DECIMALS, PERCENT_SCALE, money_text, to_scaled
from rerate.domain.rating import CUSTOMER_COLUMNS, VENDOR_COLUMNS, RatingOptions, Side, rate_batch
from rerate.domain.scopes import Scope
from rerate.domain.statuses import Status
from rerate.ledger.reader import Visibility, connect_duckdb, files_of, scoped_select, second_cursor
from rerate.ledger.schema import DERIVED_FIELDS, REVISION_FILE_SCHEMA
from rerate.ledger.scope_sql import collection_xdr_ids, scope_days, scope_predicate
from rerate.ledger.tables import REVISIONS, XDRS, PartitionedWriter, unit_prefix
from rerate.ledger.totals import AGGREGATES, BY_PREFIX, Aggregate
from rerate.services import audit, faults
from rerate.services.compiled import mediation_context, rating_context
from rerate.services.diff_file import DiffWriter, diff_rows
from rerate.services.dry_runs import APPLIES, note_applying
from rerate.services.errors import CacheDriftError, InvalidInputError
from rerate.services.jsonable import plain
from rerate.services.locks import ledger_lock
from rerate.services.parties import tariff_named
from rerate.services.periods import closed_conflict, closed_periods, stored_lines, touched
from rerate.services.recovery import recover_interrupted
from rerate.services.rollback_totals import CollectionDelta, WholeCollection
from rerate.services.visibility import APPLIED, claim_scheduled, current_visibility

SAMPLE_SIZE = 20


@dataclass(frozen=True)
class RerateRequest:
    scope: Scope
    tariff: str | None = None
    ghost_percent: Decimal = Decimal(0)
    sides: tuple[Side, ...] = (Side.CUSTOMER, Side.VENDOR)
    dry_run: bool = False
    allow_closed: bool = False


@dataclass
class CorrectionReport:
    """What a correction did or, for a dry run, would do."""

    job_id: int
    kind: str
    state: str
    description: str
    in_scope: int = 0
    changed: int = 0
    before: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    after: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    delta: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    by_customer: list[dict[str, Any]] = field(default_factory=list)
    by_day: list[dict[str, Any]] = field(default_factory=list)
    by_destination: list[dict[str, Any]] = field(default_factory=list)
    new_failures: dict[str, int] = field(default_factory=dict)
    cured: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    diff_path: str | None = None
    adjustments: list[dict[str, Any]] = field(default_factory=list)


def _changed_mask(old: pa.Table, new: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    changed = pa.array([False] * old.num_rows)
    for name in columns:
        a, b = old.column(name), new.column(name)
        equal = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        changed = pc.or_(changed, pc.invert(pc.or_(equal, both_null)))
    return changed


#: Money measure -> (value column, currency column, status column): amounts of rated XDRs count.
_MONEY_COLUMNS = {
    "amount": ("amount", "currency", "status"),
    "cost": ("cost", "vendor_currency", "vendor_status"),
}


def _rated_money(rows: pa.Table) -> dict[str, dict[str, Decimal]]:
    """Per currency, the amount of customer-rated and the cost of vendor-rated rows (exact)."""
    result: dict[str, dict[str, Decimal]] = {}
    for kind, (value, currency, status) in _MONEY_COLUMNS.items():
        nanos, _ = decimal_to_nanos(rows.column(value))
        rated = np.asarray(
            pc.fill_null(pc.equal(rows.column(status), "rated"), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        encoded = pc.dictionary_encode(rows.column(currency).combine_chunks())
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        for code, name in enumerate(encoded.dictionary.to_pylist()):
            picked = nanos[rated & (codes == code)]
            # int64 sums are exact while they cannot overflow; beyond that, Python integers.
            safe = picked.size == 0 or int(np.abs(picked).max()) < (1 << 62) // picked.size
            total = int(picked.sum()) if safe else sum(int(v) for v in picked)
            slot = result.setdefault(name, {"amount": Decimal(0), "cost": Decimal(0)})
            slot[kind] += Decimal(total).scaleb(-MONEY_DECIMALS)
    return result


def _add(target: dict[str, dict[str, Decimal]], other: dict[str, dict[str, Decimal]], sign: int = 1) -> None:
    for currency, values in other.items():
        slot = target.setdefault(currency, {"amount": Decimal(0), "cost": Decimal(0)})
        for kind, value in values.items():
            slot[kind] += sign * value


class JobProgress(Protocol):
    """Receives a job's progress: one step per call date of the scope."""

    def started(self, description: str, days: int) -> None: ...
    def advanced(self, day: str, xdrs: int) -> None: ...


class QuietProgress:
    def started(self, description: str, days: int) -> None:
        pass

    def advanced(self, day: str, xdrs: int) -> None:
        pass


#: What every correction reads: the XDR's identity, what the totals group by, every derived field.
BASE_COLUMNS = (
    "xdr_id",
    "source_id",
    "connect_time",
    "duration",
    "service",
    *(f.name for f in DERIVED_FIELDS),
    "call_date",
)
#: Read only when a job is applied, for its revisions and totals: no transform changes them, and
#: a dry run's diff, money and breakdowns do not show them.  Text columns are two thirds of the
#: read's CPU (measured), so a dry run leaves them out.
_WRITTEN_ONLY = frozenset({"service", "destination_group", "rating_key"})


def _scope_batches(
    app: App,
    con: duckdb.DuckDBPyConnection,
    visibility: Visibility,
    correction: Correction,
    progress: JobProgress,
    description: str,
) -> Generator[pa.Table, None, None]:
    """The scope's XDRs in their current state, one call date at a time (bounded memory).

    Each day gets views over that day's files only, so a query never scans, or
    resolves revisions for, the rest of the ledger; a scope of collections
    reads only those collections' files.  Only the columns the correction
    needs are decoded.  ``con`` (and a second cursor on it) is used by the reading
    threads only.
    """
    scope = correction.scope
    # A rolled-back collection's XDRs stay voided: re-pricing them would bill them again beside
    # the file's re-ingested copy.  Only reverting the rollback brings them back.
    predicate = f"({scope_predicate(scope)}) AND x.status IS DISTINCT FROM '{Status.VOIDED.value}'"
    xdr_files = app.ledger.files_by_day(XDRS)
    if scope.collections:
        xdr_files = {
            day: kept for day, files in xdr_files.items() if (kept := files_of(files, "c", scope.collections))
        }
    revision_files = app.ledger.files_by_day(REVISIONS) if visibility.jobs else {}
    window = scope_days(scope)
    days = sorted(
        day for day in xdr_files if window is None or window[0].isoformat() <= day <= window[1].isoformat()
    )
    if correction.reads_raw:
        columns = ["*"]
    else:
        skipped = _WRITTEN_ONLY - set(correction.compared) if correction.dry_run else frozenset()
        columns = [c for c in BASE_COLUMNS if c not in skipped]
    # A collection's XDRs are one id range: revisions of others are skipped by row group.
    ranges = [collection_xdr_ids(c) for c in scope.collections]
    revision_filter = " OR ".join(ranges) or None

    # Two days are read at once, each on its own cursor: a small day's file is one row group,
    # which one DuckDB query decodes on one thread only.
    cursors = [con, second_cursor(con)]

    def read(index: int) -> pa.Table:
        cursor, day = cursors[index % len(cursors)], days[index]
        query = scoped_select(
            cursor,
            visibility,
            xdr_files[day],
            revision_files.get(day, []),
            columns,
            predicate,
            revision_filter,
            whole_files=scope.is_whole_collections(),
        )
        return cursor.sql(query).to_arrow_table()

    progress.started(description, len(days))
    # The next days are read (DuckDB, off the GIL) while the caller re-prices this one: both cores work.
    try:
        with ThreadPoolExecutor(max_workers=len(cursors), thread_name_prefix="rerate-scope-reader") as reader:
            ahead = deque(reader.submit(read, index) for index in range(min(len(cursors), len(days))))
            for index, day in enumerate(days):
                batch = ahead.popleft().result()
                if index + len(cursors) < len(days):  # the cursor of the day just read is free
                    ahead.append(reader.submit(read, index + len(cursors)))
                if batch.num_rows:
                    yield batch
                progress.advanced(day, batch.num_rows)
    finally:
        cursors[1].close()


def _reprice(current: pa.Table, context: Any, options: RatingOptions) -> pa.Table:
    inputs = pa.RecordBatch.from_arrays(
        [
            current.column(c).combine_chunks()
            for c in ("connect_time", "duration", "number", "account_id", "customer_id", "vendor_id")
        ],
        names=["connect_time", "duration", "number", "account_id", "customer_id", "vendor_id"],
    )
    rated = rate_batch(inputs, context, options)
    updated = current
    for name in rated.schema.names:
        column = rated.column(name)
        target = current.schema.field(name).type
        updated = updated.set_column(updated.schema.get_field_index(name), name, column.cast(target))
    return updated


@dataclass(frozen=True)
class Correction:
    """One kind of correction, ready to run: how to turn an XDR's current state into its new one."""

    kind: str
    scope: Scope
    description: str
    parameters: dict[str, Any]
    dry_run: bool
    #: Columns compared to decide whether an XDR changed (and shown in the diff).
    compared: tuple[str, ...]
    #: ``(current rows, catalog contexts) -> new rows``; the same schema in and out.
    transform: Callable[[pa.Table, Contexts], pa.Table]
    #: Changes inside closed billing periods are refused unless this is set.
    allow_closed: bool = False
    #: The transform needs the raw fields too (re-mediation), not just :data:`BASE_COLUMNS`.
    reads_raw: bool = False
    #: For a correction of every XDR of a collection (a rollback): its totals delta, money and
    #: breakdowns may come from the collection's own aggregate rows instead of each XDR.
    whole_collection: WholeCollection | None = None


@dataclass(frozen=True)
class Contexts:
    rating: Any
    mediation: Any


def _job_row(app: App, correction: Correction) -> Job:
    return Job(
        kind=correction.kind,
        state="planning" if correction.dry_run else "running",
        dry_run=correction.dry_run,
        scope=correction.scope.as_dict(),
        parameters=correction.parameters,
        description=correction.description,
        actor=app.actor,
        started_at=datetime.now(UTC),
    )


def _note_pricing_basis(session: Session, job: Job, correction: Correction) -> None:
    """A preview remembers the catalog it priced with: applying it after a tariff, an assignment
    or a rule changed would apply something else than what was approved."""
    if correction.dry_run:
        job.parameters = {**dict(job.parameters), "pricing_mark": audit.pricing_mark(session)}


def _start_job(app: App, correction: Correction, job_id: int | None) -> int:
    """The job to run: a new one, or the scheduled ``job_id`` (claimed so that it runs once).

    An XDR's current state is its revision of the highest job number, so an applied job must be
    numbered after every job applied before it.  A scheduled job overtaken by one created after
    it (the CLI, say, while it waited) therefore runs as a new job, in the same transaction as the
    claim; the scheduled one is marked ``superseded`` and names it.
    """
    with app.catalog.transaction() as session:
        if job_id is None:
            job = _job_row(app, correction)
            session.add(job)
            session.flush()
            _note_pricing_basis(session, job, correction)
            note_applying(session, job)  # an apply killed from here on is found by its job
            return job.id
        claim_scheduled(session, job_id, "planning" if correction.dry_run else "running")
        overtaken = session.scalar(select(Job.id).where(Job.id > job_id, Job.state == APPLIED).limit(1))
        if correction.dry_run or overtaken is None:
            claimed = session.get(Job, job_id)
            if claimed is not None:
                _note_pricing_basis(session, claimed, correction)
            return job_id
        scheduled, replacement = session.get(Job, job_id), _job_row(app, correction)
        assert scheduled is not None
        # The dry run the scheduled job applies is applied by its replacement: noted on both.
        applies = {APPLIES: dict(scheduled.parameters)[APPLIES]} if APPLIES in scheduled.parameters else {}
        replacement.parameters = {**replacement.parameters, "scheduled_as_job": job_id, **applies}
        session.add(replacement)
        session.flush()
        note_applying(session, replacement)
        scheduled.state = "superseded"
        scheduled.finished_at = datetime.now(UTC)
        scheduled.parameters = {**scheduled.parameters, "ran_as_job": replacement.id}
        audit.record(
            session,
            app.actor,
            "job.superseded",
            f"job {job_id}",
            after={"ran_as_job": replacement.id, "because": f"job {overtaken} was applied before it"},
        )
        return replacement.id


def rerate(app: App, request: RerateRequest, progress: JobProgress | None = None) -> CorrectionReport:
    """Re-price a scope with today's configuration, or with ``request.tariff`` for every XDR in it."""
    return execute(app, rerate_correction(app, request), progress=progress)


#: Ghost time of up to ten times the call: far beyond any real use, and it keeps the ghost usage of
#: the longest call an integer the kernel computes exactly (a larger factor would wrap around).
MAX_GHOST_PERCENT = Decimal(1000)


def parse_ghost_percent(text: str, *, field: str = "--ghost-percent") -> Decimal:
    """A ghost percent as typed (``2.5``), as a plain decimal: ``1e2`` is stored and shown as 100."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ArithmeticError):
        value = Decimal("NaN")
    if not value.is_finite() or value.adjusted() > 6:
        raise InvalidInputError(f"{field} must be a decimal number such as 2.5, got {text!r}")
    if value and value.adjusted() < -6:  # written out, 1e-300000000 would take 300 MB
        raise InvalidInputError(f"{field} has at most 4 decimals, got {text!r}")
    return Decimal(format(value, "f"))


def rerate_correction(app: App, request: RerateRequest) -> Correction:
    """The re-rating of ``request`` as a correction ready to run (or to schedule)."""
    if not 0 <= request.ghost_percent <= MAX_GHOST_PERCENT or request.ghost_percent * PERCENT_SCALE != int(
        request.ghost_percent * PERCENT_SCALE
    ):
        raise InvalidInputError(
            f"--ghost-percent must be between 0 and {MAX_GHOST_PERCENT}, with at most 4 decimals"
        )
    overrides: dict[Side, int] = {}
    if request.tariff:
        with app.catalog.reading() as session:
            overrides = dict.fromkeys(request.sides, tariff_named(session, request.tariff).id)
    options = RatingOptions(
        ghost_percent_scaled=to_scaled(request.ghost_percent, 4, field="ghost percent"),
        sides=frozenset(request.sides),
        tariff_override=overrides,
    )
    what = f"re-rate {', '.join(s.value for s in request.sides)} side(s) of {request.scope.describe()}"
    if request.tariff:
        what += f" with tariff {request.tariff}"
    if request.ghost_percent:
        what += f", ghost time {request.ghost_percent} %"
    correction = Correction(
        kind="rerate",
        scope=request.scope,
        description=what,
        parameters={
            "tariff": request.tariff,
            "ghost_percent": str(request.ghost_percent),
            "sides": [s.value for s in request.sides],
            "allow_closed": request.allow_closed,
        },
        dry_run=request.dry_run,
        compared=tuple(
            c
            for side in request.sides
            for c in (CUSTOMER_COLUMNS if side is Side.CUSTOMER else VENDOR_COLUMNS)
        ),
        transform=lambda current, contexts: _reprice(current, contexts.rating, options),
        allow_closed=request.allow_closed,
    )
    return correction


def execute(
    app: App,
    correction: Correction,
    job_id: int | None = None,
    progress: JobProgress | None = None,
    progress_for: Callable[[int], JobProgress] | None = None,
) -> CorrectionReport:
    """Run a correction as a dry run, or apply it under the ledger lock.

    ``job_id`` runs an existing (scheduled) job row instead of recording a new one;
    ``progress_for`` makes the progress of the job that actually runs (it may be a new one).
    """
    if Status.VOIDED.value in correction.scope.statuses:
        raise InvalidInputError(
            "voided XDRs are never re-rated or re-processed: to bring a rolled-back collection "
            "back, revert its rollback ('rerate jobs revert ID')"
        )
    app.ledger.ensure()

    def watcher(running: int) -> JobProgress:
        return progress or (progress_for(running) if progress_for else QuietProgress())

    if correction.dry_run:
        running = _start_job(app, correction, job_id)
        try:
            return _run(app, running, correction, watcher(running))
        except BaseException as exc:  # a preview wrote nothing to the ledger: only its job row to end
            _fail_preview(app, running, exc)
            raise
    with ledger_lock(app.home, f"job by {app.actor}"):
        recover_interrupted(app)
        job_id = _start_job(app, correction, job_id)
        try:
            return _run(app, job_id, correction, watcher(job_id))
        except BaseException as exc:
            with app.catalog.transaction() as session:
                job = session.get(Job, job_id)
                if job is not None:
                    job.error = f"{type(exc).__name__}: {exc}"
                    # Who asked, and why it failed: the recovery below only says it cleaned up.
                    audit.record(
                        session, app.actor, "job.failed", f"job {job_id}", after={"error": job.error}
                    )
            recover_interrupted(app)
            raise


def _fail_preview(app: App, job_id: int, exc: BaseException) -> None:
    """A dry run that failed or was interrupted ends ``failed``: otherwise it would show as
    still planning for ever (listings, API, web UI)."""
    with app.catalog.transaction() as session:
        job = session.get(Job, job_id)
        if job is not None and job.state == "planning":
            job.state = "failed"
            job.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            job.finished_at = datetime.now(UTC)
            audit.record(session, app.actor, "job.failed", f"job {job_id}", after={"error": job.error})


def _run(app: App, job_id: int, correction: Correction, progress: JobProgress) -> CorrectionReport:
    report = CorrectionReport(
        job_id=job_id,
        kind=correction.kind,
        state="planned" if correction.dry_run else "applied",
        description=correction.description,
    )
    folder = app.home / "jobs" / str(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    diff_path = folder / "diff.arrow"
    with app.catalog.reading() as session:
        visibility = current_visibility(session)
        contexts = Contexts(rating_context(session, cache_dir=app.home / "cache"), mediation_context(session))
        closed = closed_periods(session)
        customer_names = {row[0]: row[1] for row in session.execute(select(Customer.id, Customer.name))}
    con = connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp")
    reading = connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp")
    prefix = unit_prefix("j", job_id)
    revisions = PartitionedWriter(
        app.ledger.path(REVISIONS), prefix, REVISION_FILE_SCHEMA, sort_rows=False, compression="snappy"
    )
    compared = correction.compared
    parts = _Parts()
    diff = DiffWriter(diff_path, compared)
    label = f"job {job_id} ({'dry run' if correction.dry_run else 'apply'})"
    totals_label = None if correction.dry_run else f"job:{job_id}"  # a dry run writes no totals
    # Both aggregates' delta files are encoded on the writers' threads, then published in order.
    totals_writers = {
        aggregate: aggregate.writer(app.ledger.path(aggregate.table), prefix)
        for aggregate in (() if correction.dry_run else AGGREGATES)
    }

    def write_totals(aggregate: Aggregate, rows: pa.Table) -> None:
        totals_writers[aggregate].write_rows(rows.cast(aggregate.schema))

    whole: Future[CollectionDelta] | None = None
    # Computed on a thread (its own DuckDB connection) while the XDRs are read.  Each aggregate's
    # delta is encoded as soon as it is known: after the XDRs, the rollback waited for that
    # encoding alone (measured).
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerate-collection-totals")
    if correction.whole_collection is not None and correction.whole_collection.usable(app, visibility):
        whole = side.submit(correction.whole_collection.delta, app, visibility, totals_label, write_totals)
    batches = _scope_batches(app, reading, visibility, correction, progress, label)

    def account(current: pa.Table, updated: pa.Table) -> None:
        """Count, measure and record one batch's changes (in batch order, on the accounting thread)."""
        report.in_scope += current.num_rows
        changed = _changed_mask(current, updated, compared)
        count = pc.sum(changed).as_py() or 0
        if whole is None and count < current.num_rows:  # the changed ones' money: _changed_money
            unchanged = current if count == 0 else current.filter(pc.invert(changed))
            _add(report.before, _rated_money(unchanged))
        if count == 0:
            return
        # Often every XDR in scope changes (a new tariff): no copy then.
        old, new = (
            (current, updated)
            if count == current.num_rows
            else (current.filter(changed), updated.filter(changed))
        )
        report.changed += old.num_rows
        if whole is None:
            _measure(con, old, new, totals_label, parts)
        rows = diff_rows(old, new, compared)
        diff.write(rows)
        if len(report.sample) < SAMPLE_SIZE:
            report.sample.extend(rows.slice(0, SAMPLE_SIZE - len(report.sample)).to_pylist())
        if not correction.dry_run:
            job_ids = pa.array(np.full(new.num_rows, job_id, dtype=np.int64))
            revisions.write_xdrs(new.append_column("job_id", job_ids))
        faults.checkpoint("rerate.batch_written")

    # A batch is accounted for on its own thread while the next one is transformed: re-pricing
    # alone kept one core busy while the comparisons, money and breakdown waited (measured).
    # One batch at a time in each stage bounds memory.
    accounting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerate-accounting")
    accounted: Future[None] | None = None
    try:
        try:
            with closing(batches):  # the reading thread stops before anything else happens
                for current in batches:
                    updated = correction.transform(current, contexts)
                    if accounted is not None:
                        accounted.result()
                    accounted = accounting.submit(account, current, updated)
                if accounted is not None:
                    accounted.result()
            if whole is not None:
                _take_whole(report, whole.result(), parts)
            if parts.breakdown:
                _money_lines(con, parts.breakdown)
                if whole is None:
                    _changed_money(con, report)
        finally:
            accounting.shutdown()  # the batch being accounted for finishes first
            reading.close()
            side.shutdown()  # and so does the collection's delta
        diff.close()
        revisions.close()
        report.diff_path = str(diff_path)
        _add(report.after, report.before)
        _add(report.after, report.delta)
        if parts.breakdown:
            _summarize(con, report)
        for row in report.by_customer:
            row["customer"] = customer_names.get(row["customer_id"], "(unknown account)")
        period_lines = _by_period(con) if parts.breakdown else []
        report.adjustments = touched(period_lines, closed)
        if report.adjustments and not correction.dry_run and not correction.allow_closed:
            raise closed_conflict("this correction", "apply", report.adjustments)
        if correction.dry_run:
            _finish(app, job_id, report, state="planned")
            return report
        prefix_parts = parts.totals[BY_PREFIX]
        if len(prefix_parts) > 1:  # one month's key gets a delta from each of its days: one row each
            con.register("prefix_delta", pa.concat_tables(prefix_parts))
            parts.totals[BY_PREFIX] = [con.sql(BY_PREFIX.compact_select("prefix_delta")).to_arrow_table()]
        for aggregate in AGGREGATES:
            if parts.totals[aggregate]:
                write_totals(aggregate, pa.concat_tables(parts.totals[aggregate]))
        for aggregate, totals_writer in totals_writers.items():
            totals_writer.close()
            app.ledger.commit(aggregate.table, totals_writer.actions, {"job_id": str(job_id)})
        faults.checkpoint("rerate.totals_committed")
        version = app.ledger.commit(REVISIONS, revisions.actions, {"job_id": str(job_id)})
        faults.checkpoint("rerate.revisions_committed")
        _finish(app, job_id, report, state=APPLIED, revision_version=version, period_lines=period_lines)
        return report
    except BaseException:
        # Whatever failed (a batch, a closed period, a full disk): files still being encoded are
        # finished before the job's clean-up removes them, and the diff goes, as no job row
        # points to it.
        for writer in (revisions, *totals_writers.values()):
            writer.abandon()
        diff.abandon()
        diff_path.unlink(missing_ok=True)
        raise


@dataclass
class _Parts:
    """What a job collects per call date: the aggregates' delta rows and the breakdown rows."""

    totals: dict[Aggregate, list[pa.Table]] = field(default_factory=lambda: {a: [] for a in AGGREGATES})
    breakdown: list[pa.Table] = field(default_factory=list)


def _measure(
    con: duckdb.DuckDBPyConnection, old: pa.Table, new: pa.Table, label: str | None, parts: _Parts
) -> None:
    """The breakdown of a day's changed XDRs, and with ``label`` its totals' delta.

    One query per aggregate: a day's keys are nearly as many as its rows, so neither GROUPING
    SETS over both nor grouping integer codes of the string keys paid (measured on 157,000-XDR
    days).
    """
    con.register("old_changed", old)
    con.register("new_changed", new)
    if label is not None:
        for aggregate in AGGREGATES:
            delta = con.sql(aggregate.delta_select("new_changed", "old_changed", f"'{label}'"))
            parts.totals[aggregate].append(delta.to_arrow_table().cast(aggregate.schema))
    parts.breakdown.append(con.sql(_BREAKDOWN_SELECT).to_arrow_table())


def _take_whole(report: CorrectionReport, whole: CollectionDelta, parts: _Parts) -> None:
    """A whole collection's money, breakdown and totals delta, once its XDRs were all read."""
    if (report.in_scope, report.changed) != (whole.xdrs, whole.xdrs):
        raise CacheDriftError(
            f"the collection's totals count {whole.xdrs:,} XDRs but {report.in_scope:,} were read "
            f"({report.changed:,} changed): run 'rerate cache sync' and try again"
        )
    _add(report.before, whole.before)
    _add(report.delta, whole.before, sign=-1)
    parts.breakdown.append(whole.breakdown)


#: Per call date, the changed XDRs' old and new money by customer, destination and status change
#: (rows aligned).  Each sum keeps its own currency, customer and destination: an amount moved to
#: another currency, a cost in the vendor's currency, or an XDR moved to another customer (a
#: re-mediation) must never be netted against another currency's or another customer's money.
_BREAKDOWN_SELECT = """
SELECT n.customer_id, n.call_date, coalesce(n.country, '') AS country,
       o.customer_id AS old_customer_id, coalesce(o.country, '') AS old_country,
       coalesce(n.currency, o.currency) AS currency,
       o.currency AS old_currency, n.currency AS new_currency,
       o.vendor_currency AS old_vendor_currency, n.vendor_currency AS new_vendor_currency,
       o.status AS old_status, n.status AS new_status, n.reason AS new_reason,
       o.vendor_status AS old_vendor_status, n.vendor_status AS new_vendor_status,
       n.vendor_reason AS new_vendor_reason,
       count(*) AS xdrs,
       sum(o.amount) FILTER (WHERE o.status = 'rated') AS old_amount,
       sum(n.amount) FILTER (WHERE n.status = 'rated') AS new_amount,
       sum(o.cost) FILTER (WHERE o.vendor_status = 'rated') AS old_cost,
       sum(n.cost) FILTER (WHERE n.vendor_status = 'rated') AS new_cost
FROM new_changed n POSITIONAL JOIN old_changed o
GROUP BY ALL
"""


def _changed_money(con: duckdb.DuckDBPyConnection, report: CorrectionReport) -> None:
    """The changed XDRs' money into the totals before and the delta (unchanged ones count alike).

    Summed from their money lines rather than from every XDR again: a pass over each batch's rows
    less (measured: about 1.2 CPU seconds of an 11.8 M-XDR dry run).
    """
    rows = con.execute(
        """
        SELECT currency, -sum(amount) FILTER (WHERE state = 'old'), -sum(cost) FILTER (WHERE state = 'old'),
               sum(amount), sum(cost)
        FROM money_lines WHERE currency IS NOT NULL GROUP BY currency
        """
    ).fetchall()
    for currency, old_amount, old_cost, amount, cost in rows:
        for target, values in ((report.before, (old_amount, old_cost)), (report.delta, (amount, cost))):
            slot = target.setdefault(currency, {"amount": Decimal(0), "cost": Decimal(0)})
            slot["amount"] += Decimal(values[0] or 0)
            slot["cost"] += Decimal(values[1] or 0)


#: The breakdown as money lines, each in one currency: an XDR counts under its new customer,
#: destination and customer currency (or else the old one); its old amount and cost leave their
#: customer, destination and currencies (``state`` old), and its new ones enter theirs (new).  An
#: XDR that moved to another customer leaves a line with the old one even without money
#: (``moved``): that customer's closed periods are touched too.
_MONEY_LINES = """
SELECT customer_id, call_date, country, currency, xdrs, 0 AS amount, 0 AS cost,
       NULL AS state, false AS moved
FROM breakdown
UNION ALL
SELECT customer_id, call_date, country, new_currency, 0, new_amount, 0, 'new', false FROM breakdown
WHERE new_amount IS NOT NULL
UNION ALL
SELECT old_customer_id, call_date, old_country, old_currency, 0, coalesce(-old_amount, 0), 0, 'old',
       old_customer_id IS DISTINCT FROM customer_id
FROM breakdown WHERE old_amount IS NOT NULL OR old_customer_id IS DISTINCT FROM customer_id
UNION ALL
SELECT customer_id, call_date, country, new_vendor_currency, 0, 0, new_cost, 'new', false FROM breakdown
WHERE new_cost IS NOT NULL
UNION ALL
SELECT old_customer_id, call_date, old_country, old_vendor_currency, 0, 0, -old_cost, 'old', false
FROM breakdown WHERE old_cost IS NOT NULL
"""
#: A line is kept when it counts XDRs, moves money or records XDRs leaving a customer (XDRs that
#: had none, an unknown account's, leave no line of their own: nothing of theirs is invoiced).
_LINE_KEPT = (
    "HAVING sum(xdrs) > 0 OR sum(amount) <> 0 OR sum(cost) <> 0 OR bool_or(moved AND customer_id IS NOT NULL)"
)


#: Report attribute -> (breakdown column, the key's name in the report).
_BREAKDOWNS = {
    "by_customer": ("customer_id", "customer_id"),
    "by_day": ("call_date", "day"),
    "by_destination": ("country", "country"),
}


def _money_lines(con: duckdb.DuckDBPyConnection, parts: list[pa.Table]) -> None:
    """The job's breakdown (``breakdown``) and its money lines (``money_lines``), for the summaries."""
    con.register("breakdown", pa.concat_tables(parts))
    con.execute(f"CREATE OR REPLACE TEMP VIEW money_lines AS {_MONEY_LINES}")


def _summarize(con: duckdb.DuckDBPyConnection, report: CorrectionReport) -> None:
    """Deltas by customer, by day and by destination country, failures made and cured."""
    for attribute, (column, key) in _BREAKDOWNS.items():
        rows = con.execute(
            f"SELECT {column}, currency, sum(xdrs)::BIGINT, sum(amount), sum(cost) "
            f"FROM money_lines GROUP BY ALL {_LINE_KEPT} ORDER BY 1, 2"
        ).fetchall()
        setattr(
            report,
            attribute,
            [
                {
                    key: r[0].isoformat() if hasattr(r[0], "isoformat") else r[0],
                    "currency": r[1],
                    "xdrs": r[2],
                    "amount_delta": r[3],
                    "cost_delta": r[4],
                }
                for r in rows
            ],
        )
    # Either side counts: a vendor side that fails loses the call's cost as surely as a
    # customer side loses its revenue.  Vendor-side reasons are named so.
    report.new_failures = dict(
        con.execute(
            "SELECT reason, sum(xdrs)::BIGINT FROM ("
            "  SELECT new_reason AS reason, xdrs FROM breakdown"
            "  WHERE new_status = 'failed' AND old_status = 'rated'"
            "  UNION ALL"
            "  SELECT 'vendor ' || new_vendor_reason, xdrs FROM breakdown"
            "  WHERE new_vendor_status = 'failed' AND old_vendor_status = 'rated'"
            ") GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    (cured,) = con.execute(
        "SELECT coalesce(sum(xdrs), 0)::BIGINT FROM breakdown "
        "WHERE (old_status = 'failed' AND new_status = 'rated') "
        "OR (old_vendor_status = 'failed' AND new_vendor_status = 'rated')"
    ).fetchall()
    report.cured = int(cured[0])


def _by_period(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = con.execute(
        f"""
        SELECT customer_id, strftime(call_date, '%Y-%m'), country, currency, sum(xdrs)::BIGINT,
               sum(amount), sum(cost)
        FROM money_lines WHERE customer_id IS NOT NULL GROUP BY ALL {_LINE_KEPT} ORDER BY ALL
        """
    ).fetchall()
    return [
        {
            "customer_id": r[0],
            "period": r[1],
            "destination": r[2],
            "currency": r[3],
            "xdrs": r[4],
            "amount_delta": Decimal(r[5]),
            "cost_delta": Decimal(r[6]),
        }
        for r in rows
    ]


def _finish(
    app: App,
    job_id: int,
    report: CorrectionReport,
    *,
    state: str,
    revision_version: int | None = None,
    period_lines: list[dict[str, Any]] | None = None,
) -> None:
    with app.catalog.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state = state
        job.in_scope = report.in_scope
        job.changed = report.changed
        job.totals = {
            "before": _plain(report.before),
            "after": _plain(report.after),
            "delta": _plain(report.delta),
        }
        if period_lines is not None:  # what an applied job changed per customer period, for its revert
            job.totals["periods"] = stored_lines(period_lines)
        job.diff_path = report.diff_path
        job.revision_version = revision_version
        # The whole report (breakdowns, sample, adjustments) for the web UI's preview and result pages.
        folder = app.home / "jobs" / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps(plain(report)))
        job.finished_at = datetime.now(UTC)
        if state == APPLIED:
            for line in report.adjustments:  # committed with the job: visible exactly when it is
                session.add(adjustment_row(job_id, line))
        audit.record(
            session,
            app.actor,
            f"job.{state}",
            f"job {job_id}",
            after={
                "description": job.description,
                "in_scope": report.in_scope,
                "changed": report.changed,
                "delta": _plain(report.delta),
            },
        )


def adjustment_row(job_id: int, line: dict[str, Any]) -> Adjustment:
    """A period line inside a closed period (:func:`~rerate.services.periods.touched`), as recorded."""
    return Adjustment(
        job_id=job_id,
        customer_id=line["customer_id"],
        period=line["period"],
        destination=line["destination"] or "",
        currency=line["currency"] or "",
        xdrs=line["xdrs"],
        amount_delta=line["amount_delta"],
        cost_delta=line["cost_delta"],
    )


def _plain(money: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, str]]:
    return {c: {k: money_text(v) for k, v in vals.items()} for c, vals in money.items()}
