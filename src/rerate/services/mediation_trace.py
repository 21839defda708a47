"""``rerate mediation test``: the first rows of a file followed from raw fields to rated XDR.

Nothing is written.  Each row shows its raw fields (as the template read
them), the canonical XDR, the mediation result (after the rules in force) and
the rating of both sides, or why the row was rejected or skipped: what an
operator needs to see why an XDR failed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from rerate.bootstrap import App
from rerate.catalog.models import Customer, Vendor
from rerate.domain.mediation import strip_numbers
from rerate.domain.money import decimal_text
from rerate.ledger.reader import connect_duckdb
from rerate.ledger.tables import XDRS
from rerate.services.compiled import mediation_context, rating_context
from rerate.services.errors import InvalidInputError
from rerate.services.ingest import LATE_REASON, in_closed_periods, live_xdrs_sql, mediate_and_rate
from rerate.services.periods import closed_periods
from rerate.services.visibility import current_visibility, rolled_back_collections
from rerate.services.xdr_files import GLOB_CHARACTERS, XdrFile
from rerate.services.xdr_projection import LINE
from rerate.services.xdr_templates import find_template

CANONICAL = ("source_id", "connect_time", "duration", "cli", "cld", "account", "vendor", "service")
RATED = (
    "status",
    "reason",
    "prefix",
    "billed",
    "amount",
    "currency",
    "vendor_status",
    "vendor_reason",
    "vendor_prefix",
    "vendor_billed",
    "cost",
    "vendor_currency",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def trace(app: App, path: Path, template_name: str = "canonical", limit: int = 20) -> list[dict[str, Any]]:
    """The first ``limit`` rows of ``path`` (read by the template) from raw to rated."""
    path = Path(os.path.expanduser(path))  # as ingest reads a name given quoted
    if not path.exists() and GLOB_CHARACTERS & set(str(path)):
        raise InvalidInputError(f"mediation test follows one file, and {path} is a pattern: name one file")
    with app.catalog.reading() as session:
        template = find_template(session, template_name)
        mediation = mediation_context(session)
        rating = rating_context(session, cache_dir=app.home / "cache")
        customers = {i: n for i, n in session.execute(select(Customer.id, Customer.name))}
        vendors = {i: n for i, n in session.execute(select(Vendor.id, Vendor.name))}
        # What ingest would refuse after rating: calls in closed periods, and duplicates.
        rolled_back = rolled_back_collections(session)
        checks = _IngestChecks(
            closed_periods(session),
            tuple(c for c in current_visibility(session).collections if c not in rolled_back),
        )
    source = XdrFile(path, template)
    rows: list[dict[str, Any]] = []
    con = connect_duckdb()
    for raw in source.batches():
        # The first lines of the file, whether the reader rejected them or not: a malformed row
        # further down the chunk must not take the place of an earlier one.
        wanted = sorted([r.line for r in raw.rejects] + raw.table.column(LINE).to_pylist())
        wanted = wanted[: max(limit - len(rows), 0)]
        if not wanted:
            break
        last = wanted[-1]
        for reject in raw.rejects:
            if reject.line <= last:
                # A row the reader could not split into the template's fields: its line as read.
                raw_text = {"text": reject.raw}
                rows.append({"line": reject.line, "outcome": f"rejected: {reject.reason}", "raw": raw_text})
        table = raw.table.filter(pc.less_equal(raw.table.column(LINE), last))
        if table.num_rows:
            rows.extend(_traced(app, table, source, con, mediation, rating, customers, vendors, checks))
        if len(rows) >= limit:
            break
    rows.sort(key=lambda r: r["line"])
    return rows[:limit]


@dataclass
class _IngestChecks:
    """Ingest's checks after rating, as the trace applies them to the rows it shows."""

    closed: dict[tuple[int, str], str]
    live: tuple[int, ...]
    #: Source ids of earlier traced rows, per call date (a repeat is a duplicate of that line).
    seen: dict[tuple[date, str], int] = field(default_factory=dict)

    def refusals(self, app: App, con: Any, xdrs: pa.Table) -> dict[int, str]:
        """Line -> the outcome ingest gives a row although it rated: ``rejected: ...`` (a closed
        period) or ``duplicate: ...``, as its report counts them."""
        refused: dict[int, str] = {}
        late = in_closed_periods(xdrs, self.closed)
        rows = zip(
            *(xdrs.column(c).to_pylist() for c in ("line", "source_id", "customer_id", "call_date")),
            strict=True,
        )
        loaded = self._loaded(app, con, xdrs)
        for index, (line, source_id, customer, day) in enumerate(rows):
            if late is not None and late[index].as_py():
                period = f"{day:%Y-%m}"
                refused[line] = "rejected: " + LATE_REASON.format(self.closed[(customer, period)], period)
            elif (day, source_id) in loaded:
                refused[line] = "duplicate: of an XDR already loaded"
            elif (day, source_id) in self.seen:
                refused[line] = f"duplicate: of line {self.seen[(day, source_id)]} of this file"
            else:
                self.seen[(day, source_id)] = line
        return refused

    def _loaded(self, app: App, con: Any, xdrs: pa.Table) -> set[tuple[date, str]]:
        """The (call date, source id) pairs of these XDRs that the ledger's live collections hold."""
        found: set[tuple[date, str]] = set()
        for day in pc.unique(xdrs.column("call_date")).to_pylist():
            files = app.ledger.files(XDRS, days=(day, day))
            if not files:
                continue
            ids = xdrs.filter(pc.equal(xdrs.column("call_date"), day)).column("source_id")
            con.register("traced_ids", pa.table({"source_id": ids}))
            rows = con.execute(
                f"""SELECT DISTINCT source_id FROM ({live_xdrs_sql(files, self.live)})
                    WHERE source_id IN (SELECT source_id FROM traced_ids)"""
            ).fetchall()
            found.update((day, r[0]) for r in rows)
        return found


def _traced(
    app: App,
    table: pa.Table,
    source: XdrFile,
    con: Any,
    mediation: Any,
    rating: Any,
    customers: dict[int, str],
    vendors: dict[int, str],
    checks: _IngestChecks,
) -> list[dict[str, Any]]:
    everything = source.query.every_row(con, table)
    raws = {
        line: {c: table.column(c)[i].as_py() for c in source.query.needed}  # the fields the template reads
        for i, line in enumerate(table.column(LINE).to_pylist())
    }
    usable = pc.and_(
        pc.is_null(everything.column("reject_reason")), pc.invert(everything.column("unanswered"))
    )
    if source.template.unanswered == "zero":
        usable = pc.is_null(everything.column("reject_reason"))
    typed = everything.filter(usable).drop_columns(["reject_reason", "unanswered"])
    rewritten: dict[int, str] = {}
    if source.query.expressions and typed.num_rows:  # as ingest reads them
        typed, refused = source.query.rewrite(typed)
        rewritten = {line: reason for line, reason, _ in refused}
        typed, _ = source.query.answered(typed)  # left out: shown as skipped below
    outcome: dict[int, dict[str, Any]] = {}
    if typed.num_rows:
        ruled = mediation.rules.apply(typed, strip_numbers(typed.column("cld"))[0])
        xdrs = mediate_and_rate(typed, 0, mediation, rating)
        refused_after_rating = checks.refusals(app, con, xdrs)
        for i, line in enumerate(xdrs.column("line").to_pylist()):
            record = {name: _plain(xdrs.column(name)[i].as_py()) for name in (*CANONICAL, "number", *RATED)}
            customer_id = xdrs.column("customer_id")[i].as_py()
            vendor_id = xdrs.column("vendor_id")[i].as_py()
            failed = [r for r in (record["reason"], record["vendor_reason"]) if r]
            outcome[line] = {
                "canonical": {name: record[name] for name in CANONICAL},
                "mediated": {
                    "cld_after_rules": ruled["cld"][i].as_py(),
                    "number": record["number"],
                    "account_after_rules": ruled["account"][i].as_py(),
                    "customer": customers.get(customer_id) if customer_id is not None else None,
                    "vendor_after_rules": ruled["vendor"][i].as_py(),
                    "vendor": vendors.get(vendor_id) if vendor_id is not None else None,
                    "country": _plain(xdrs.column("country")[i].as_py()),
                    "destination_group": _plain(xdrs.column("destination_group")[i].as_py()),
                    "rating_key": xdrs.column("rating_key")[i].as_py(),
                },
                "rated": {name: record[name] for name in RATED},
                "outcome": "rated" if not failed else "failed: " + ", ".join(failed),
            }
            if line in refused_after_rating:  # rated as shown, then refused as ingest would
                outcome[line]["outcome"] = refused_after_rating[line]
    traced = []
    reasons = dict(
        zip(
            everything.column("line").to_pylist(), everything.column("reject_reason").to_pylist(), strict=True
        )
    )
    for line, raw in raws.items():
        entry: dict[str, Any] = {"line": line, "raw": raw}
        if line in outcome:
            entry.update(outcome[line])
        elif reasons.get(line) or line in rewritten:
            entry["outcome"] = f"rejected: {reasons.get(line) or rewritten[line]}"
        else:
            entry["outcome"] = "skipped: not answered"
        traced.append(entry)
    return traced
