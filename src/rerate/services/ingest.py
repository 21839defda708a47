"""Ingest: XDR files become collections in the ledger, validated, mediated and rated.

Each file is one collection, loaded as one unit of work:

1. the file is read in chunks; malformed rows go to the collection's rejects
   file with their line and reason, and the rest of the file goes on;
2. each chunk is mediated and rated by the kernel, and written as sorted
   Parquet files (one per day) into the XDR table's directory, unpublished;
3. duplicates (a ``source_id`` already loaded for that day, or repeated in the
   file) are found with one DuckDB pass and filtered out of the new files;
4. the new files' daily totals are published, then the files themselves, each
   in one Delta commit;
5. the catalog marks the collection ``loaded``: only now does any reader see it.

A crash anywhere before step 5 leaves nothing visible; the next writer removes
the leftovers (:mod:`rerate.services.recovery`).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, select

from rerate.bootstrap import App
from rerate.catalog.models import Collection
from rerate.domain.mediation import mediate_keyed
from rerate.domain.rating import NUMBER_KEY, rate_batch
from rerate.domain.xdr_templates import XdrTemplate
from rerate.ledger.reader import connect_duckdb, in_parts, sql_paths
from rerate.ledger.schema import XDR_FILE_SCHEMA
from rerate.ledger.tables import TOTALS, XDRS, PartitionedWriter, unit_prefix
from rerate.ledger.totals import AGGREGATES, DAILY, Aggregate
from rerate.services import audit, faults
from rerate.services.compiled import mediation_context, rating_context
from rerate.services.errors import DamagedFileError, InvalidInputError, RerateError
from rerate.services.locks import ledger_lock
from rerate.services.periods import closed_periods, period_bounds
from rerate.services.recovery import recover_interrupted, remove_unit_files
from rerate.services.visibility import current_visibility, rolled_back_collections
from rerate.services.xdr_files import GLOB_CHARACTERS, XdrFile
from rerate.services.xdr_templates import find_template


@dataclass
class CollectionReport:
    file: str
    state: str  # loaded | already_loaded | error
    collection_id: int | None = None
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    #: Unanswered calls the template leaves out.
    skipped: int = 0
    failed: int = 0
    template: str = "canonical"
    rejects_path: str | None = None
    duplicate_of: int | None = None
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class IngestProgress(Protocol):
    def file_started(self, name: str, total_bytes: int) -> None: ...
    def advanced(self, bytes_read: int, rows: int) -> None: ...
    def stage(self, text: str) -> None: ...


class SilentProgress:
    def file_started(self, name: str, total_bytes: int) -> None:
        pass

    def advanced(self, bytes_read: int, rows: int) -> None:
        pass

    def stage(self, text: str) -> None:
        pass


def expand_sources(sources: Sequence[str]) -> list[Path]:
    """Files to ingest, in order: a folder gives its files in name order, a glob its matches.

    Hidden files and sub-folders are left out.  A glob that matches nothing in
    a folder that exists gives nothing, as an empty folder does: a scheduled
    run over a drop folder often finds no new file.  A name that is none of
    these (a missing file, or a glob into a missing folder) stays as it is: its
    report says it was not found, and the other sources still load.
    """
    paths: list[Path] = []
    for given in sources:
        source = os.path.expanduser(given)  # a quoted glob reaches rerate with its ~ unexpanded
        path = Path(source)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if _listed(p) and not p.name.startswith(".")))
        elif path.is_file():  # a file named like a glob ("a[1].csv") is that file
            paths.append(path)
        elif GLOB_CHARACTERS & set(source):
            matches = sorted(Path(m) for m in glob.glob(source) if _listed(Path(m)))
            paths.extend(matches if matches or _glob_folder(source).is_dir() else [path])
        else:
            paths.append(path)
    return paths


def _listed(path: Path) -> bool:
    """Whether a folder's or a glob's entry is ingested: a file, or a broken link (its report
    says so, where leaving it out said nothing); not a sub-folder."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def _glob_folder(pattern: str) -> Path:
    """The folder a glob looks in: its leading path up to the first part with a wildcard."""
    fixed = []
    for part in Path(pattern).parts[:-1]:
        if GLOB_CHARACTERS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def file_checksum(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def ingest(
    app: App, paths: list[Path], progress: IngestProgress | None = None, template: str | None = None
) -> list[CollectionReport]:
    """Ingest each file as its own collection, in the order given, read by ``template`` (canonical)."""
    app.ledger.ensure()
    with ledger_lock(app.home, f"ingest by {app.actor}"):
        recover_interrupted(app)
        return ingest_locked(app, paths, progress, template)


def check_template_name(template: str | None) -> None:
    """Refuse a blank template name: it is not the canonical layout by accident."""
    if template is not None and not template.strip():
        raise InvalidInputError(
            "give the template's name (see 'rerate template list'), or leave --template out"
        )


def ingest_locked(
    app: App, paths: list[Path], progress: IngestProgress | None = None, template: str | None = None
) -> list[CollectionReport]:
    """:func:`ingest` for a caller that holds the ledger lock and has recovered interrupted units."""
    progress = progress or SilentProgress()
    check_template_name(template)
    with app.catalog.reading() as session:
        layout = find_template(session, template or "canonical")
    reports = []
    for path in paths:
        started = time.perf_counter()
        try:
            report = _ingest_file(app, path, layout, progress)
        except RerateError as exc:
            report = CollectionReport(file=str(path), state="error", error=str(exc), template=layout.name)
        except Exception as exc:  # one unreadable file must not stop the others
            # What no check foresaw in this file: its collection was removed as a crash's would be
            # (its row keeps the whole error), the next files still load, and the operator learns
            # which file and why.
            first = (str(exc).splitlines() or [""])[0][:300]
            report = CollectionReport(
                file=str(path),
                state="error",
                error=f"{path.name} could not be loaded ({type(exc).__name__}: {first}); nothing was kept",
                template=layout.name,
            )
        report.seconds = round(time.perf_counter() - started, 3)
        reports.append(report)
    return reports


def _ingest_file(app: App, path: Path, template: XdrTemplate, progress: IngestProgress) -> CollectionReport:
    # A bad file, or one the template does not fit, fails here, before anything is recorded.
    source = XdrFile(path, template, chunk_bytes=app.settings.ingest_chunk_mb << 20)
    checksum = file_checksum(path)
    with app.catalog.transaction() as session:
        rolled_back = rolled_back_collections(session)
        twins = session.scalars(
            select(Collection).where(Collection.checksum == checksum, Collection.state == "loaded")
        ).all()
        # A file read before with another template that loaded nothing (the wrong template, most
        # likely: every row rejected or skipped) may be read again with this one.
        twin = next(
            (t for t in twins if t.id not in rolled_back and (t.loaded > 0 or t.template == template.name)),
            None,
        )
        if twin is not None:
            return CollectionReport(
                file=str(path),
                state="already_loaded",
                template=template.name,
                duplicate_of=twin.id,
                error=f"already loaded as collection {twin.id} ({twin.file_name}); nothing loaded",
            )
        collection = Collection(
            file_name=path.name,
            source_path=str(path.resolve()),
            checksum=checksum,
            template=template.name,
            actor=app.actor,
        )
        session.add(collection)
        session.flush()
        collection_id = collection.id
    try:
        return _load(app, source, collection_id, progress)
    except DamagedFileError as exc:
        _forget(app, collection_id)
        raise DamagedFileError(f"{exc}; nothing was kept") from exc
    except BaseException as exc:
        with app.catalog.transaction() as session:
            failed = session.get(Collection, collection_id)
            if failed is not None:
                failed.error = f"{type(exc).__name__}: {exc}"
        recover_interrupted(app)  # the same cleanup a crash gets at the next run
        raise


def _forget(app: App, collection_id: int) -> None:
    """Remove every trace of a collection that published nothing: its unpublished files, its
    folder (rejects) and its catalog row.  A damaged file then leaves no collection, however
    often a scheduled run over its folder meets it; nothing (audit trail, ledger) named the id."""
    remove_unit_files(app, "c", collection_id)
    shutil.rmtree(app.home / "collections" / str(collection_id), ignore_errors=True)
    with app.catalog.transaction() as session:
        session.execute(delete(Collection).where(Collection.id == collection_id))


def _load(app: App, source: XdrFile, collection_id: int, progress: IngestProgress) -> CollectionReport:
    writers: list[PartitionedWriter] = []
    try:
        return _load_into(app, source, collection_id, progress, writers)
    except BaseException:
        # Files still being encoded must land before the clean-up removes the collection's files,
        # or one could appear after it and stay on disk, in no commit.
        for writer in writers:
            writer.abandon()
        raise


def _load_into(
    app: App,
    source: XdrFile,
    collection_id: int,
    progress: IngestProgress,
    writers: list[PartitionedWriter],
) -> CollectionReport:
    folder = app.home / "collections" / str(collection_id)
    folder.mkdir(parents=True, exist_ok=True)
    rejects_path = folder / "rejects.csv"
    prefix = unit_prefix("c", collection_id)
    writer = PartitionedWriter(app.ledger.path(XDRS), prefix, XDR_FILE_SCHEMA)
    writers.append(writer)
    with app.catalog.reading() as session:
        mediation = mediation_context(session)
        rating = rating_context(session, cache_dir=app.home / "cache")
        visibility = current_visibility(session)
        # XDRs of rolled-back collections are voided: their source ids may load again.
        rolled_back = rolled_back_collections(session)
        live = tuple(c for c in visibility.collections if c not in rolled_back)
        closed = closed_periods(session)
    con = connect_duckdb(app.settings.duckdb_memory_limit, spill_to=app.home / "tmp")
    report = CollectionReport(
        file=str(source.path), state="loaded", collection_id=collection_id, template=source.template.name
    )
    progress.file_started(source.path.name, source.size)
    days: set[str] = set()
    with rejects_path.open("w", newline="", encoding="utf-8") as rejects_file:
        rejects = csv.writer(rejects_file)
        rejects.writerow(["file", "line", "reason", "raw"])
        for raw in source.batches():
            projected = source.query.project(con, raw.table)
            typed = projected.table
            for reject in raw.rejects:
                rejects.writerow([source.path.name, reject.line, reject.reason, reject.raw])
            for line, reason, text in projected.rejects:
                rejects.writerow([source.path.name, line, reason, text])
            report.rejected += len(raw.rejects) + len(projected.rejects)
            report.skipped += projected.skipped
            report.read += raw.table.num_rows + len(raw.rejects)
            if typed.num_rows:
                xdrs = mediate_and_rate(typed, collection_id, mediation, rating)
                late = in_closed_periods(xdrs, closed)
                if late is not None:
                    late_rows = xdrs.filter(late).select(["line", "source_id", "customer_id", "call_date"])
                    for line, source_id, customer, day in zip(
                        *(column.to_pylist() for column in late_rows.columns), strict=True
                    ):
                        period = f"{day:%Y-%m}"
                        rejects.writerow(
                            [
                                source.path.name,
                                line,
                                LATE_REASON.format(closed[(customer, period)], period),
                                source_id,
                            ]
                        )
                    report.rejected += int(pc.sum(late).as_py() or 0)
                    xdrs = xdrs.filter(pc.invert(late))
                days.update(d.isoformat() for d in pc.unique(xdrs.column("call_date")).to_pylist())
                writer.write_xdrs(xdrs)
            progress.advanced(raw.bytes_read, raw.table.num_rows + len(raw.rejects))
            faults.checkpoint("ingest.batch_written")
        writer.flush()
        progress.stage("checking duplicates")
        duplicates = _remove_duplicates(app, con, writer, live, sorted(days), writers)
        for line, source_id, why in duplicates:
            rejects.writerow([source.path.name, line, why, source_id])
    writer.close()
    report.duplicates = len(duplicates)
    report.loaded = writer.rows_written - report.duplicates
    report.rejects_path = str(rejects_path)

    progress.stage("publishing")
    # Both aggregates are written before either is committed: the last parts of one are encoded
    # while DuckDB groups the other.
    totals_writers: list[tuple[Aggregate, PartitionedWriter]] = []
    for aggregate in AGGREGATES:
        totals_writer = aggregate.writer(app.ledger.path(aggregate.table), prefix)
        writers.append(totals_writer)
        totals_writers.append((aggregate, totals_writer))
        if writer.actions:
            label = f"collection:{collection_id}"
            for totals in _totals(con, app.ledger.path(XDRS), writer, aggregate, label):
                totals_writer.wait_for_room()  # a part per writer thread: memory stays flat
                totals_writer.write_rows(totals)
                if aggregate is DAILY:
                    failing = pc.or_(
                        pc.equal(totals.column("status"), "failed"),
                        pc.equal(totals.column("vendor_status"), "failed"),
                    )
                    report.failed += int(pc.sum(pc.filter(totals.column("calls"), failing)).as_py() or 0)
    versions: dict[str, int] = {}
    for aggregate, totals_writer in totals_writers:
        totals_writer.close()
        versions[aggregate.table] = app.ledger.commit(
            aggregate.table, totals_writer.actions, {"collection_id": str(collection_id)}
        )
    totals_version = versions[TOTALS]
    faults.checkpoint("ingest.totals_committed")
    xdr_version = app.ledger.commit(XDRS, writer.actions, {"collection_id": str(collection_id)})
    faults.checkpoint("ingest.xdrs_committed")
    with app.catalog.transaction() as session:
        collection = session.get(Collection, collection_id)
        assert collection is not None
        collection.state = "loaded"
        collection.finished_at = datetime.now(UTC)
        collection.read = report.read
        collection.loaded = report.loaded
        collection.duplicates = report.duplicates
        collection.rejected = report.rejected
        collection.skipped = report.skipped
        collection.failed = report.failed
        collection.rejects_path = report.rejects_path
        collection.xdr_version = xdr_version
        collection.totals_version = totals_version
        audit.record(
            session,
            app.actor,
            "collection.ingest",
            f"collection {collection_id}",
            after={k: v for k, v in report.as_dict().items() if k not in {"state", "seconds"}},
        )
    return report


#: Rows of one aggregate file written by an ingest: a large file's totals are written in parts.
#: The parts being written (one per writer thread) and the one being gathered are held beside
#: DuckDB's grouping, at the file's peak memory: parts of a million rows cost about 120 MB more
#: peak RSS on a 20 M-XDR file than parts of a quarter of that (measured).
TOTALS_PART_ROWS = 1 << 18


def _totals(
    con: duckdb.DuckDBPyConnection,
    table_dir: Path,
    writer: PartitionedWriter,
    aggregate: Aggregate,
    label: str,
) -> Iterator[pa.Table]:
    """One aggregate of the new files, in parts of :data:`TOTALS_PART_ROWS` rows (the last one fewer).

    A large file's daily totals can hold millions of rows (nearly one per XDR where calls are
    spread thin): they are streamed from DuckDB (whose grouping is capped by its memory limit
    and spills), never held whole.
    """
    files = [str(table_dir / action.path) for action in writer.actions]
    source = f"read_parquet({sql_paths(files)}, hive_partitioning=true)"
    reader = con.sql(aggregate.select(source, f"'{label}'")).to_arrow_reader(TOTALS_PART_ROWS)
    for part in in_parts(reader, TOTALS_PART_ROWS):  # a small file's totals stay one file
        yield part.cast(aggregate.schema)


def mediate_and_rate(typed: pa.Table, collection_id: int, mediation: Any, rating: Any) -> pa.Table:
    batch = typed.combine_chunks()
    line = batch.column("line")
    xdr_id = pc.bit_wise_or(pa.scalar(collection_id << 32, pa.int64()), line)
    mediated, number_keys = mediate_keyed(batch, mediation)
    rated = rate_batch(
        pa.RecordBatch.from_arrays(
            [
                batch.column("connect_time").combine_chunks(),
                batch.column("duration").combine_chunks(),
                mediated.column("number"),
                mediated.column("account_id"),
                mediated.column("customer_id"),
                mediated.column("vendor_id"),
                pa.array(number_keys),
            ],
            names=[
                "connect_time",
                "duration",
                "number",
                "account_id",
                "customer_id",
                "vendor_id",
                NUMBER_KEY,
            ],
        ),
        rating,
    )
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "xdr_id": xdr_id,
        "collection_id": pa.array(np.full(batch.num_rows, collection_id, dtype=np.int64)),
    }
    for name in (
        "line",
        "source_id",
        "connect_time",
        "duration",
        "cli",
        "cld",
        "account",
        "vendor",
        "service",
        "extra",
    ):
        columns[name] = batch.column(name)
    for name in mediated.schema.names:
        columns[name] = mediated.column(name)
    for name in rated.schema.names:
        columns[name] = rated.column(name)
    columns["call_date"] = batch.column("call_date")
    return pa.table(columns)


#: Why a late XDR is rejected: loading it would change an invoiced period behind its back.
LATE_REASON = (
    "call in the closed billing period {} {}: the invoice is issued; load it only after "
    "deciding how it is billed"
)


def in_closed_periods(xdrs: pa.Table, closed: dict[tuple[int, str], str]) -> pa.Array | None:
    """Which XDRs fall in a closed billing period of their customer (None: none do).

    Only the months this batch holds are looked at: a handful, however many periods are closed.
    """
    if not closed or xdrs.num_rows == 0:
        return None
    months = {f"{d:%Y-%m}" for d in pc.unique(xdrs.column("call_date")).to_pylist() if d is not None}
    late: pa.Array | None = None
    for month in sorted(months):
        customers = [customer for customer, period in closed if period == month]
        if not customers:
            continue
        first, end = period_bounds(month)
        in_month = pc.and_(
            pc.greater_equal(xdrs.column("call_date"), pa.scalar(first.date(), pa.date32())),
            pc.less(xdrs.column("call_date"), pa.scalar(end.date(), pa.date32())),
        )
        hit = pc.fill_null(
            pc.and_(in_month, pc.is_in(xdrs.column("customer_id"), pa.array(customers, pa.int64()))), False
        )
        late = hit if late is None else pc.or_(late, hit)
    if late is None or not pc.any(late).as_py():
        return None
    return late


def _remove_duplicates(
    app: App,
    con: duckdb.DuckDBPyConnection,
    writer: PartitionedWriter,
    visible: tuple[int, ...],
    days: list[str],
    writers: list[PartitionedWriter],
) -> list[tuple[int, str, str]]:
    """Filter duplicate XDRs out of the new, unpublished files; returns (line, source_id, reason).

    The files rewritten without them are written by a writer added to ``writers``, the unit's
    writers that :func:`_load` waits for if anything fails.

    A duplicate has the ``source_id`` of an XDR already loaded for the same
    call date, or of an earlier line of this file for that date.  The check
    runs one day at a time, so its memory is bounded by one day's XDRs.
    """
    if not writer.actions:
        return []
    table_dir = app.ledger.path(XDRS)
    # One read of the table's log for every day: opening it per day cost more than a small
    # file's whole check (measured: 5 ms a day, so 0.2 s for a file that spans a month).
    published = app.ledger.files_by_day(XDRS) if visible else {}
    found: list[tuple[int, int, str, str, str]] = []
    for day in days:
        new_files = [
            str(table_dir / a.path) for a in writer.actions if a.partition_values.get("call_date") == day
        ]
        if not new_files:
            continue
        old_files = published.get(day, [])
        found.extend(_duplicates_of_day(con, new_files, live_xdrs_sql(old_files, visible)))
    return _drop_rows(con, writer, table_dir, found, writers)


def live_xdrs_sql(files: Sequence[str], live: Sequence[int]) -> str:
    """The ``source_id`` and ``collection_id`` of the XDRs in ``files`` (one call date's) that
    belong to the ``live`` collections: what a call loaded again is a duplicate of."""
    if not files or not live:
        return "SELECT NULL::VARCHAR AS source_id, NULL::BIGINT AS collection_id WHERE false"
    listed = ", ".join(str(int(c)) for c in live)
    return (
        f"SELECT source_id, collection_id FROM read_parquet({sql_paths(files)}, hive_partitioning=false) "
        f"WHERE collection_id IN ({listed})"
    )


def _duplicates_of_day(
    con: duckdb.DuckDBPyConnection, new_files: list[str], old_sql: str
) -> list[tuple[int, int, str, str, str]]:
    rows = con.execute(
        f"""
        WITH fresh AS (
            SELECT xdr_id, line, source_id, filename
            FROM read_parquet({sql_paths(new_files)}, hive_partitioning=false, filename=true)
        ),
        repeated AS (
            SELECT source_id, min(xdr_id) AS first_id FROM fresh GROUP BY source_id HAVING count(*) > 1
        ),
        earlier AS (SELECT DISTINCT source_id FROM ({old_sql}))
        SELECT f.xdr_id, f.line, f.source_id, f.filename,
               CASE WHEN e.source_id IS NOT NULL THEN 'duplicate of an XDR already loaded'
                    ELSE 'duplicate of line ' || (r.first_id & 4294967295)::VARCHAR || ' of this file'
               END AS why
        FROM fresh f
        LEFT JOIN earlier e USING (source_id)
        LEFT JOIN repeated r USING (source_id)
        WHERE e.source_id IS NOT NULL OR (r.first_id IS NOT NULL AND f.xdr_id <> r.first_id)
        """
    ).fetchall()
    return [(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


def _drop_rows(
    con: duckdb.DuckDBPyConnection,
    writer: PartitionedWriter,
    table_dir: Path,
    found: list[tuple[int, int, str, str, str]],
    writers: list[PartitionedWriter],
) -> list[tuple[int, str, str]]:
    """Rewrite the new files that hold duplicates, without them."""
    if not found:
        return []
    touched = sorted({row[3] for row in found})
    dropped_ids = pa.table({"xdr_id": pa.array([row[0] for row in found], pa.int64())})
    con.register("dropped_ids", dropped_ids)
    replacement = PartitionedWriter(table_dir, writer.prefix, XDR_FILE_SCHEMA)
    writers.append(replacement)
    for filename in touched:
        kept = con.sql(
            f"SELECT * FROM read_parquet('{filename}', hive_partitioning=false) "
            "WHERE xdr_id NOT IN (SELECT xdr_id FROM dropped_ids)"
        ).to_arrow_table()
        relative = str(Path(filename).relative_to(table_dir))
        day = relative.split("/", 1)[0].split("=", 1)[1]
        if kept.num_rows:
            kept = kept.append_column(
                "call_date", pa.array([datetime.fromisoformat(day).date()] * kept.num_rows)
            )
            replacement.write_xdrs(kept)
        Path(filename).unlink()
    replacement.close()
    writer.replace([str(Path(f).relative_to(table_dir)) for f in touched], replacement.actions)
    found.sort(key=lambda row: row[1])
    return [(row[1], row[2], row[4]) for row in found]
