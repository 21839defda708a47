"""The service's job runner and scheduler.

Corrections asked for through the API or the web UI are queued as jobs
(state ``scheduled``, due now); jobs scheduled for later (``--at``) wait for
their time.  A thread of the service looks for due work every few seconds
(at once when woken) and runs it **in a child process**: a re-rating of
millions of XDRs keeps both cores busy for a minute, and in its own process
it neither holds the web server's interpreter lock nor takes the server down
if it fails.  Children come from a fork server (rerate's modules preloaded),
so starting one costs milliseconds.  Progress is written to the job's row,
where ``GET /api/jobs/{id}`` reads it.  The same loop sends the CDR
deliveries that are due, less often.  A failure is recorded on the job or in
the delivery log and the loop goes on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from rerate.bootstrap import App, bootstrap
from rerate.catalog.models import DeliverySchedule, Job
from rerate.services.corrections import JobProgress
from rerate.services.errors import LedgerBusyError
from rerate.services.ingest import IngestProgress
from rerate.services.visibility import UNFINISHED
from rerate.settings import Settings

log = logging.getLogger("rerate.runner")
#: How much nicer than the web server the job processes are (``nice`` levels).
JOB_NICENESS = 10


class StoredProgress:
    """A job's progress written to its row."""

    def __init__(self, app: App, job_id: int) -> None:
        self.app = app
        self.job_id = job_id

    def store(self, **values: object) -> None:
        with self.app.catalog.transaction() as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))

    def started(self, description: str, days: int) -> None:
        self.store(days_total=days, days_done=0, xdrs_read=0)

    def advanced(self, day: str, xdrs: int) -> None:
        self.store(days_done=Job.days_done + 1, xdrs_read=Job.xdrs_read + xdrs)


class StoredIngestProgress:
    """An ingest job's progress on its row: megabytes read of the file's, XDRs read."""

    def __init__(self, app: App, job_id: int) -> None:
        self.progress = StoredProgress(app, job_id)

    def file_started(self, name: str, total_bytes: int) -> None:
        self.progress.store(days_total=max(1, total_bytes >> 20), days_done=0, xdrs_read=0)

    def advanced(self, bytes_read: int, rows: int) -> None:
        self.progress.store(days_done=bytes_read >> 20, xdrs_read=Job.xdrs_read + rows)  # bytes: so far

    def stage(self, text: str) -> None:
        pass


def _yield_to_the_server() -> None:
    """Batch work runs at a lower CPU priority: a page or an API read never waits behind a re-rating
    (the reads are short, so the job loses little: see docs/performance.md)."""
    with contextlib.suppress(OSError):
        os.nice(JOB_NICENESS)


def run_due_jobs(settings: Settings) -> None:
    """Every due job, oldest first (in the child process)."""
    from rerate.services.schedule import run_due

    _yield_to_the_server()
    app = bootstrap(settings)
    try:

        def progress(job_id: int) -> JobProgress:
            return StoredProgress(app, job_id)

        def loading(job_id: int) -> IngestProgress:
            return StoredIngestProgress(app, job_id)

        for outcome in run_due(app, datetime.now(UTC), progress=progress, ingest_progress=loading):
            if isinstance(outcome, str):
                log.warning("%s", outcome)
    finally:
        app.close()


def run_due_deliveries(settings: Settings) -> None:
    """The CDR deliveries that are due, and corrected deliveries (in the child process)."""
    from rerate.services.delivery import run_deliveries

    _yield_to_the_server()
    app = bootstrap(settings)
    try:
        run_deliveries(app)
    finally:
        app.close()


def _context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:  # no fork server on this platform: a fresh interpreter per pass
        return multiprocessing.get_context("spawn")
    context.set_forkserver_preload(["rerate.services.job_runner", "rerate.services.schedule"])
    return context


@dataclass
class JobRunner:
    """Runs due jobs and deliveries until stopped; :meth:`wake` makes it look now."""

    app: App
    poll_seconds: float = 5.0
    #: How often due CDR deliveries are looked for (they are due at most every few minutes).
    delivery_poll_seconds: float = 300.0
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _deliveries_checked: float = float("-inf")
    _child: multiprocessing.process.BaseProcess | None = None
    #: Called after each pass that ran jobs (the service warms its report cache with it).
    after_jobs: Callable[[], None] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rerate-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Let the running job finish (up to ``timeout``), else stop it: it is then recovered and failed."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return
        self._thread.join(timeout)
        child = self._child
        if self._thread.is_alive() and child is not None:
            child.terminate()  # the pass sees a dead child and fails what it was running
            self._thread.join(30)

    def _jobs_due(self) -> list[int]:
        with self.app.catalog.reading() as session:
            return list(
                session.scalars(
                    select(Job.id).where(Job.state == "scheduled", Job.scheduled_for <= datetime.now(UTC))
                )
            )

    def _deliveries_due(self) -> bool:
        if time.monotonic() - self._deliveries_checked < self.delivery_poll_seconds:
            return False
        self._deliveries_checked = time.monotonic()
        with self.app.catalog.reading() as session:
            active = session.scalar(
                select(func.count()).select_from(DeliverySchedule).where(DeliverySchedule.active.is_(True))
            )
        return bool(active)

    def _in_child(self, target: Callable[[Settings], None]) -> bool:
        """Run ``target`` in a child process; True when it ended normally."""
        child = _context().Process(target=target, args=(self.app.settings,), daemon=True)
        self._child = child
        child.start()
        child.join()
        self._child = None
        if child.exitcode != 0:
            log.error("%s ended with exit code %s", target.__name__, child.exitcode)
        return bool(child.exitcode == 0)

    def _fail(self, job_ids: list[int]) -> None:
        """What a dead child (killed, out of memory) left: cleaned up and failed, never left running.

        A job it was applying is recovered as a crashed unit (its partial ledger files removed, the
        job failed); a preview or an ingest it was running is failed; jobs it had not reached stay
        scheduled for the next pass.
        """
        from rerate.services.locks import ledger_lock
        from rerate.services.recovery import recover_interrupted

        try:
            with ledger_lock(self.app.home, "job runner recovery"):
                recover_interrupted(self.app)
        except LedgerBusyError:  # the CLI holds the ledger: its own start recovers the dead unit
            log.warning("the ledger is busy: the next writer will clean up after the dead job")
        with self.app.catalog.transaction() as session:
            for job in session.scalars(select(Job).where(Job.id.in_(job_ids))):
                if job.state in UNFINISHED and job.state != "scheduled":
                    job.state = "failed"
                    job.error = (job.error or "") + "the job's process ended unexpectedly"
                    job.finished_at = datetime.now(UTC)

    def run_once(self) -> None:
        """One pass: every due job, then (now and then) the due deliveries."""
        due = self._jobs_due()
        if due and not self._in_child(run_due_jobs):
            self._fail(due)
        if due:
            self._after_jobs()
        if self._deliveries_due():
            self._in_child(run_due_deliveries)

    def _after_jobs(self) -> None:
        if self.after_jobs is None:
            return
        try:
            self.after_jobs()
        except Exception:  # a cache left cold only costs the next reader a computation
            log.exception("warming the report cache failed")

    def _loop(self) -> None:
        self._after_jobs()  # the service starts with its cache warm
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # never let one bad pass stop the scheduler
                log.exception("runner pass failed")
            self._wake.wait(self.poll_seconds)
