"""The rate-deck import wizard (seed 001): parse, map, review, create destinations, load, report.

One call runs every step the seed's screens show, with the operator's choices
given up front (or by a template) instead of clicked: :func:`import_deck`
with ``preview=True`` stops after the review and writes nothing; otherwise
the whole load (tariff, destinations, groups, rates, the import's record and
its audit row) is one catalog transaction, so a deck never half-loads.
Rows with errors are skipped and reported (the seed's "Skipped (due to
errors)"), or, with ``strict``, the whole deck is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from operator import methodcaller
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.bulk import insert_columns, insert_many
from rerate.catalog.models import (
    Destination,
    ExchangeRate,
    Job,
    Rate,
    RateImport,
    Tariff,
)
from rerate.domain.deck_mapping import (
    VIRTUAL,
    Candidate,
    DeckSettings,
    fields_without_column,
    find_header,
    guess_mapping,
    map_rows,
    rules_without_source,
)
from rerate.domain.deck_review import (
    COMPARED,
    Action,
    Mode,
    PastPolicy,
    ReviewedRate,
    ReviewOptions,
    Summary,
    review,
    summarize,
)
from rerate.domain.expressions import ExpressionError
from rerate.domain.scopes import Scope
from rerate.ledger.tables import XDRS
from rerate.services import audit
from rerate.services.deck_files import DeckFile, Sheet, read_deck
from rerate.services.destinations import (
    NewDestination,
    add_to_groups,
    destination_countries,
    new_destinations,
)
from rerate.services.errors import InvalidInputError, RerateError
from rerate.services.mailer import send_mail
from rerate.services.memory import paused_gc
from rerate.services.rate_history import load_history
from rerate.services.rate_results import rate_entry, write_results_aside
from rerate.services.rate_templates import load_template, save_template
from rerate.services.tariffs import new_tariff
from rerate.services.timeparse import next_whole_second

TEMPLATE_KIND = "rate_deck"


@dataclass
class DeckImportRequest:
    tariff: str
    path: Path
    mode: Mode = Mode.ADD
    past: PastPolicy = PastPolicy.SKIP
    skip_duplicates: bool = True
    preview: bool = False
    #: Refuse the whole deck when a row has an error (default: skip such rows, as the seed does).
    strict: bool = False
    template: str | None = None
    save_template: str | None = None
    #: Settings that override the template's (and the guesses): ``DeckSettings`` field -> value.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: field -> column, on top of the template's or the guessed mapping.
    mapping: Mapping[str, str] = field(default_factory=dict)
    #: New destinations: code prefix -> ISO country (applies to the new codes under it).
    countries: Mapping[str, str] = field(default_factory=dict)
    #: New destinations: code prefix -> destination group to put them in.
    groups: Mapping[str, str] = field(default_factory=dict)
    #: A new tariff's currency and decimals.
    currency: str | None = None
    decimals: int | None = None
    results_file: Path | None = None
    #: Who gets the import report (the summary, with the results file attached).
    email: Sequence[str] = ()
    now: datetime | None = None


@dataclass
class SheetUse:
    name: str | None
    header_line: int | None
    mapping: dict[str, str]
    rows: int


@dataclass
class DeckImportReport:
    tariff: str
    file: str
    state: str  # preview | imported | rejected
    mapping: dict[str, str]
    settings: dict[str, Any]
    sheets: list[SheetUse]
    rates: list[ReviewedRate]
    summary: Summary
    new_destinations: list[NewDestination]
    problems: list[str] = field(default_factory=list)
    tariff_created: bool = False
    import_id: int | None = None
    results_path: str | None = None
    proposed_jobs: list[int] = field(default_factory=list)
    #: The report e-mail: its Message-ID, or why it could not be sent (the import stands either way).
    mail_id: str | None = None
    mail_error: str | None = None
    #: Countries of the loaded codes the system knew already (the load reuses them).
    known_countries: dict[str, str] = field(default_factory=dict, repr=False)
    encoding: str | None = None
    delimiter: str | None = None

    @property
    def unresolved(self) -> list[NewDestination]:
        return [d for d in self.new_destinations if d.country is None]

    def as_dict(self, *, rows: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = {
            "tariff": self.tariff,
            "file": self.file,
            "state": self.state,
            "mapping": self.mapping,
            "sheets": [s.__dict__ for s in self.sheets],
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "summary": self.summary.as_dict(),
            "new_destinations": [d.__dict__ for d in self.new_destinations],
            "unresolved_destinations": [d.prefix for d in self.unresolved],
            "problems": self.problems,
            "tariff_created": self.tariff_created,
            "import_id": self.import_id,
            "results_file": self.results_path,
            "proposed_jobs": self.proposed_jobs,
            "mail_id": self.mail_id,
            "mail_error": self.mail_error,
        }
        if rows:
            result["rows"] = [rate_entry(r) for r in self.rates]
        return result


# --------------------------------------------------------------------------- the wizard


def _settings(session: Session, request: DeckImportRequest) -> DeckSettings:
    settings = load_template(session, request.template) if request.template else DeckSettings()
    try:
        settings = replace(settings, **dict(request.overrides))
    except TypeError as exc:
        raise InvalidInputError(f"unknown import setting: {exc}") from exc
    settings.mapping = {**settings.mapping, **request.mapping}
    problems = settings.check()
    if problems:
        raise InvalidInputError("; ".join(problems))
    return settings


def _sheet_header(sheet: Sheet, settings: DeckSettings) -> int | None:
    """0-based index into ``sheet.rows`` of the header, or None (no header)."""
    if settings.header_row == 0:
        return None
    if settings.header_row is not None:
        for index, (line, _) in enumerate(sheet.rows):
            if line == settings.header_row:
                return index
        raise InvalidInputError(f"the file has no line {settings.header_row} to use as the header")
    return find_header([cells for _, cells in sheet.rows], named=settings.mapping.values())


def _with_guesses(guessed: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """The operator's mapping, completed by the guesses for fields and columns it leaves free."""
    taken_columns = {c.strip().lower() for c in given.values()}
    fields = set(given) | {t for name in given for t in VIRTUAL.get(name, ())}
    extra = {
        name: column
        for name, column in guessed.items()
        if name not in fields
        and column.strip().lower() not in taken_columns
        and not (set(VIRTUAL.get(name, ())) & fields)
    }
    return {**extra, **given}


def _candidates(
    deck: DeckFile, settings: DeckSettings, exchange_rates: Mapping[str, Decimal], from_template: bool
) -> tuple[list[Candidate], list[SheetUse], dict[str, str]]:
    wanted = settings.sheets
    names = [s.name for s in deck.sheets]
    missing = [w for w in wanted if w not in names]
    if missing:
        raise InvalidInputError(f"no sheet named {', '.join(missing)}; sheets: {', '.join(map(str, names))}")
    candidates: list[Candidate] = []
    used: list[SheetUse] = []
    first_mapping: dict[str, str] | None = None
    never_applied = set(settings.rules)
    for sheet in deck.sheets:
        if wanted and sheet.name not in wanted:
            continue
        header_index = _sheet_header(sheet, settings)
        if header_index is None and sheet.name is not None and not wanted and len(deck.sheets) > 1:
            continue  # a workbook's notes or cover sheet
        header = sheet.rows[header_index][1] if header_index is not None else None
        body = sheet.rows[(header_index + 1 if header_index is not None else 0) + settings.skip_rows :]
        mapping = dict(settings.mapping)
        if not from_template:  # a template's mapping is complete; an operator's --map is not
            mapping = _with_guesses(guess_mapping(header, [cells for _, cells in body]), mapping)
        elif header is not None and len(deck.sheets) > 1 and fields_without_column(mapping, header):
            # A template keeps the first sheet's mapping; another sheet of the workbook may name its
            # columns otherwise.  Its fields whose column this sheet lacks are guessed from its header.
            lacking = fields_without_column(mapping, header)
            kept = {name: column for name, column in mapping.items() if name not in lacking}
            mapping = _with_guesses(guess_mapping(header, [cells for _, cells in body]), kept)
        if "prefix" not in mapping or not (
            {"price", "first_price"} & (set(mapping) | set(settings.defaults))
        ):
            where = f"sheet {sheet.name!r}" if sheet.name else deck.path.name
            found_header = (
                f"the header on line {sheet.rows[header_index][0]}"
                if header_index is not None
                else "no header"
            )
            raise InvalidInputError(
                f"{where}: {found_header}, and no prefix and price columns could be recognized "
                f"(recognized: {', '.join(f'{k}={v}' for k, v in mapping.items()) or 'nothing'}); "
                "name them with --map prefix=COLUMN --map price=COLUMN (COLUMN: a header text or #1, #2, ...)"
            )
        sheet_settings = replace(settings, mapping=mapping)
        try:
            found = map_rows(
                ((line, sheet.name, cells) for line, cells in body),
                header,
                sheet_settings,
                exchange_rates=exchange_rates,
            )
        except (ValueError, ExpressionError) as exc:
            where = f"sheet {sheet.name!r}: " if sheet.name else ""
            header_text = (
                f" (header on line {sheet.rows[header_index][0]})" if header_index is not None else ""
            )
            raise InvalidInputError(f"{deck.path.name}: {where}{exc}{header_text}") from exc
        candidates.extend(found)
        never_applied &= rules_without_source(settings, mapping)
        header_line = sheet.rows[header_index][0] if header_index is not None else None
        used.append(SheetUse(sheet.name, header_line, mapping, len(found)))
        if first_mapping is None:
            first_mapping = mapping
    if not used:
        raise InvalidInputError(
            f"{deck.path.name}: no sheet has a header with a prefix and a price column; "
            "name the columns with --map prefix=COLUMN --map price=COLUMN (COLUMN may be #1, #2, ...)"
        )
    if never_applied:
        fields_named = ", ".join(sorted(never_applied))
        raise InvalidInputError(
            f"{deck.path.name}: the rule on {fields_named} would never apply: no column, default or link "
            f"gives that field; map a column to it (--map FIELD=COLUMN) or give it a --default"
        )
    return candidates, used, first_mapping or {}


def _exchange_rates(session: Session, currency: str, now: datetime) -> dict[str, Decimal]:
    rows = session.execute(
        select(ExchangeRate.currency, ExchangeRate.rate)
        .where(ExchangeRate.to_currency == currency, ExchangeRate.effective_from <= now)
        .order_by(ExchangeRate.effective_from)
    ).all()
    return {code: rate for code, rate in rows}  # the latest in force wins


def import_deck(app: App, request: DeckImportRequest) -> DeckImportReport:
    """Run the wizard on ``request.path`` for tariff ``request.tariff``."""
    # Hundreds of thousands of small objects that all live until the end: the cyclic
    # garbage collector would rescan them again and again for nothing.
    with paused_gc():
        return _import_deck(app, request)


def _import_deck(app: App, request: DeckImportRequest) -> DeckImportReport:
    now = next_whole_second(request.now or datetime.now(UTC))
    with app.catalog.reading() as session:
        settings = _settings(session, request)
        tariff = session.scalar(select(Tariff).where(Tariff.name == request.tariff))
        if tariff is None:  # checked before the deck is read, so a preview refuses it too
            currency = new_tariff(request.tariff, request.currency, request.decimals).currency
        else:
            currency = tariff.currency
        exchange_rates = _exchange_rates(session, currency, now)
    deck = read_deck(
        request.path, delimiter=settings.delimiter, quotechar=settings.quotechar, encoding=settings.encoding
    )
    candidates, sheets, mapping = _candidates(deck, settings, exchange_rates, request.template is not None)
    if not candidates:
        raise InvalidInputError(f"{request.path.name}: no rate rows found below the header")
    wanted = None if request.mode is Mode.REPLACE else {c.prefix for c in candidates}
    with app.catalog.reading() as session:
        history = load_history(session, tariff.id, wanted) if tariff else {}
    options = ReviewOptions(
        now=now,
        mode=request.mode,
        past=request.past,
        skip_duplicates=request.skip_duplicates,
        defaults_only_new=[t for name in settings.defaults_only_new for t in VIRTUAL.get(name, (name,))],
    )
    rates = review(candidates, history, options)
    summary = summarize(rates)
    report = DeckImportReport(
        tariff=request.tariff,
        file=str(request.path),
        state="preview",
        mapping=mapping,
        settings=replace(settings, mapping=mapping).as_dict(),
        sheets=sheets,
        rates=rates,
        summary=summary,
        new_destinations=[],
        tariff_created=tariff is None,
        encoding=deck.encoding,
        delimiter=deck.delimiter,
    )
    with app.catalog.reading() as session:
        loading = {r.prefix for r in rates if r.action is not Action.SKIP}
        report.known_countries = destination_countries(session, loading)
        report.new_destinations = new_destinations(
            session, rates, report.known_countries, request.countries, request.groups
        )
    summary.new_destinations = len(report.new_destinations)
    if report.unresolved:
        listed = ", ".join(d.prefix for d in report.unresolved[:20])
        more = f" and {len(report.unresolved) - 20} more" if len(report.unresolved) > 20 else ""
        report.problems.append(
            f"new destination(s) without a country: {listed}{more}; "
            "assign them a country as PREFIX=CC (--country on the command line, the countries box in the "
            "web wizard; a prefix covers every new code under it)"
        )
    if request.strict and summary.skipped_errors:
        report.problems.append(f"{summary.skipped_errors} row(s) have errors and --strict refuses the deck")
    if summary.skipped_errors and summary.skipped_errors == summary.total_processed:
        # Nothing but errors: most likely the wrong mapping.  Importing would only record an empty
        # import (and create an empty tariff).
        report.problems.append(
            f"every row ({summary.skipped_errors:,}) has an error: nothing to load; see the rows' errors "
            "and the mapping (--map FIELD=COLUMN)"
        )
    if report.problems:
        report.state = "rejected"
    if request.preview or report.state == "rejected":
        return report
    _load(app, request, report, currency, now)
    if request.past is PastPolicy.BACKDATE:
        report.proposed_jobs = _propose_rerating(app, request.tariff, report, now)
    if request.email:
        _mail_report(app, request, report)
    return report


#: The seed's summary lines, in its order and words.
SUMMARY_LINES = (
    ("total_processed", "Total rates processed"),
    ("created", "Total rates created"),
    ("overridden", "Old rates overridden"),
    ("skipped_errors", "Skipped (due to errors)"),
    ("skipped_duplicates", "Skipped (duplicates)"),
    ("new_rates_for_tariff", "Rates for destinations, previously absent in this tariff, created"),
    ("new_destinations", "Destinations, previously absent in the system, created"),
    ("skipped_past", "Skipped (effective in the past)"),
    ("discontinued", "Discontinued"),
    ("withdrawn", "Versions not yet in force withdrawn (replace mode)"),
    ("increases", "Price increases"),
    ("decreases", "Price decreases"),
)


def _mail_report(app: App, request: DeckImportRequest, report: DeckImportReport) -> None:
    counts = report.summary.as_dict()
    lines = [f"Rate upload into tariff {report.tariff} from {request.path.name}: {report.state}.", ""]
    lines += [f"{label}: {counts[key]:,}" for key, label in SUMMARY_LINES]
    lines += ["", "Every row's outcome is in the attached results file."]
    lines += [f"Re-rating proposed as dry-run job {job}." for job in report.proposed_jobs]
    try:
        report.mail_id = send_mail(
            app.settings,
            list(request.email),
            f"Rate upload report: {report.tariff} ({request.path.name})",
            "\n".join(lines) + "\n",
            [Path(report.results_path)] if report.results_path else [],
        )
    except RerateError as exc:
        report.mail_error = str(exc)


#: Above this many backdated prefixes the proposal scopes the tariff and window alone (still exact:
#: XDRs whose price does not change are reported as unchanged, and never revised).
_MAX_SCOPE_PREFIXES = 500


def _propose_rerating(app: App, tariff_name: str, report: DeckImportReport, now: datetime) -> list[int]:
    """A dry-run re-rating of the XDRs the backdated rates can change: the proposal an operator applies."""
    from rerate.domain.rating import Side
    from rerate.services.corrections import RerateRequest, rerate

    backdated = [r for r in report.rates if r.action is not Action.SKIP and r.values["effective_from"] < now]
    if not backdated:
        return []
    start = min(r.values["effective_from"] for r in backdated)
    if not any(day >= start.date().isoformat() for day in app.ledger.files_by_day(XDRS)):
        return []  # no XDR at or after the earliest backdated rate: nothing to re-rate
    prefixes = sorted({r.prefix for r in backdated})
    covering = [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
    with app.catalog.reading() as session:
        tariff_id = session.scalar(select(Tariff.id).where(Tariff.name == tariff_name))
    assert tariff_id is not None
    proposed: list[int] = []
    empty: list[int] = []
    # Side by side, with the tariff itself: the XDRs priced with it get its corrected rates, and
    # nothing else moves (another side, or a re-rating an operator made onto this tariff on purpose).
    for side in (Side.CUSTOMER, Side.VENDOR):
        scope = Scope(
            tariffs=(tariff_id,),
            tariff_sides=(side.value,),
            prefixes=tuple(covering) if len(covering) <= _MAX_SCOPE_PREFIXES else (),
            start=start,
            labels={"tariffs": (tariff_name,)},
        )
        proposal = rerate(app, RerateRequest(scope=scope, tariff=tariff_name, sides=(side,), dry_run=True))
        if proposal.in_scope:
            proposed.append(proposal.job_id)
        else:
            empty.append(proposal.job_id)
    with app.catalog.transaction() as session:
        record = session.get(RateImport, report.import_id)
        if record is not None:
            record.proposed_jobs = proposed
        # A side with no XDR priced with the tariff is no proposal: its dry run must not wait in the
        # job list as one more correction to apply.
        for job_id in empty:
            job = session.get(Job, job_id)
            if job is not None and job.state == "planned":
                job.state = "cancelled"
                job.error = f"nothing to re-rate: no XDR is priced with {tariff_name} on this side"
    return proposed


def _load(
    app: App,
    request: DeckImportRequest,
    report: DeckImportReport,
    currency: str,
    now: datetime,
) -> None:
    loading = [r for r in report.rates if r.action is not Action.SKIP]
    written: list[Path] = []
    try:
        _load_in_transaction(app, request, report, currency, now, loading, written)
    except BaseException:
        for path in written:  # the import did not happen: no report of it
            path.unlink(missing_ok=True)
        raise
    report.state = "imported"


def _load_in_transaction(
    app: App,
    request: DeckImportRequest,
    report: DeckImportReport,
    currency: str,
    now: datetime,
    loading: Sequence[ReviewedRate],
    written: list[Path],
) -> None:
    """Everything the import changes, in one catalog transaction; files written are listed in ``written``."""
    with app.catalog.transaction() as session:
        tariff = session.scalar(select(Tariff).where(Tariff.name == request.tariff))
        if tariff is None:
            tariff = new_tariff(request.tariff, currency, request.decimals)
            session.add(tariff)
            session.flush()
        record = RateImport(
            tariff_id=tariff.id,
            file_name=request.path.name,
            mode=request.mode.value,
            settings=report.settings,
            summary=report.summary.as_dict(),
            actor=app.actor,
        )
        session.add(record)
        session.flush()  # its id names the results folder
        report.import_id = record.id
        results = app.home / "imports" / str(record.id) / "results.csv"
        files = [path for path in (results, request.results_file) if path is not None]
        written.extend(files)
        wait_for_results = write_results_aside(files, report.rates)
        try:
            _store_rates(session, report, loading, tariff.id, now)
        finally:  # the files are complete (or failed) before the commit, or before they are removed
            wait_for_results()
        if loading or any(r.withdraws for r in report.rates):
            tariff.revision += 1
        record.results_path = str(results)
        report.results_path = str(results)
        if request.save_template:
            save_template(session, request.save_template, DeckSettings.from_dict(report.settings), app.actor)
        audit.record(
            session,
            app.actor,
            "tariff.import_deck",
            f"tariff {request.tariff}",
            after={"file": request.path.name, "mode": request.mode.value, **report.summary.as_dict()},
        )


def _store_rates(
    session: Session, report: DeckImportReport, loading: Sequence[ReviewedRate], tariff_id: int, now: datetime
) -> None:
    """New destinations (and their groups), new rate versions, and rewritten not-yet-effective ones."""
    if report.new_destinations:
        insert_many(
            session,
            Destination.__table__,
            [
                {"prefix": d.prefix, "country": d.country, "description": d.description, "created_at": now}
                for d in report.new_destinations
            ],
        )
        add_to_groups(session, report.new_destinations)
    countries = {
        **report.known_countries,
        **{d.prefix: d.country for d in report.new_destinations if d.country},
    }
    withdrawn = sorted({i for r in report.rates for i in r.withdraws})
    for start in range(0, len(withdrawn), 5_000):  # not yet in force: no XDR was priced by them
        session.execute(delete(Rate).where(Rate.id.in_(withdrawn[start : start + 5_000])))
    fresh = [r for r in loading if r.action is Action.INSERT]
    insert_columns(session, Rate.__table__, _rate_columns(fresh, tariff_id, countries, now))
    for rate in loading:
        if rate.action is Action.REPLACE_FUTURE:
            values = _rate_row(rate, tariff_id, countries, now)
            values.pop("tariff_id")
            session.execute(update(Rate).where(Rate.id == rate.replaces_id).values(**values))


def _rate_row(
    rate: ReviewedRate, tariff_id: int, countries: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """One rate's row of the ``rates`` table (for rewriting a version in place)."""
    return {name: values[0] for name, values in _rate_columns([rate], tariff_id, countries, now).items()}


_RATE_COLUMNS = {*COMPARED, "effective_from", "description", "country"}


def _rate_columns(
    rates: Sequence[ReviewedRate], tariff_id: int, countries: Mapping[str, str], now: datetime
) -> dict[str, list[Any]]:
    """The ``rates`` table's columns for new versions (what :func:`_rate_row` gives, column-wise)."""
    rows = [r.values for r in rates]
    columns: dict[str, list[Any]] = {  # map() with a C getter: no Python frame per value
        name: list(map(methodcaller("get", name), rows)) for name in _RATE_COLUMNS if name != "country"
    }
    columns["prefix"] = [r.prefix for r in rates]
    columns["tariff_id"] = [tariff_id] * len(rates)
    columns["created_at"] = [now] * len(rates)
    found = [r.values.get("country") or countries.get(r.prefix) for r in rates]
    columns["country"] = [c.upper() if isinstance(c, str) else None for c in found]
    return columns
