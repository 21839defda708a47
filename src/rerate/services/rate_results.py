"""The review of a rate import as rows: the ``--preview --json`` entries and the results file."""

from __future__ import annotations

import csv
import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from rerate.domain.deck_review import ReviewedRate
from rerate.services.errors import RerateError

#: Columns of the results file, one row per rate the deck asked for (and per discontinued prefix).
RESULT_COLUMNS = (
    "line",
    "sheet",
    "prefix",
    "status",
    "action",
    "error",
    "effective_from",
    "first_price",
    "next_price",
    "first_interval",
    "next_interval",
    "connect_fee",
    "old_effective_from",
    "old_first_price",
    "old_next_price",
    "old_first_interval",
    "old_next_interval",
    "country",
    "description",
)


def money(value: Any) -> str | None:
    """A price as plain decimal text: ``0.0000002``, never ``2E-7``."""
    if value is None:
        return None
    text = str(value)
    return format(value, "f") if "E" in text else text


def when(value: Any) -> str | None:
    return _iso_utc(value) if isinstance(value, datetime) else None


@lru_cache(maxsize=1 << 12)  # decks and histories have few distinct times
def _iso_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def rate_entry(rate: ReviewedRate) -> dict[str, Any]:
    """One rate of the review, money as decimal strings (the ``--preview --json`` contract)."""
    values = rate.values
    old = rate.old.values if rate.old else {}
    return {
        "line": rate.line,
        "sheet": rate.sheet,
        "prefix": rate.prefix,
        "first_price": money(values.get("first_price")),
        "next_price": money(values.get("next_price")),
        "first_interval": values.get("first_interval"),
        "next_interval": values.get("next_interval"),
        "connect_fee": money(values.get("connect_fee")),
        "effective_from": when(values.get("effective_from")),
        "status": rate.status.value,
        "action": rate.action.value,
        "error": rate.error,
        "error_column": rate.error_column,
        "old_first_price": money(old.get("first_price")),
        "old_next_price": money(old.get("next_price")),
        "old_effective_from": when(rate.old.effective_from) if rate.old else None,
    }


def write_results(path: Path, rates: Sequence[ReviewedRate]) -> None:
    """Every row's outcome, as CSV, or as XLSX when ``path`` ends in ``.xlsx``."""
    rows = [_result_row(r) for r in rates]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("results")
        sheet.append(list(RESULT_COLUMNS))
        for row in rows:  # money as text: a spreadsheet number is a binary float
            sheet.append([str(v) if isinstance(v, Decimal) else v for v in row])
        book.save(path)
        return
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RESULT_COLUMNS)
        writer.writerows(rows)


def _result_row(rate: ReviewedRate) -> tuple[Any, ...]:
    """One row of the results file, in :data:`RESULT_COLUMNS` order.

    Values stay as they are (the CSV writer turns them into text in C and
    writes None as empty); times are formatted once per distinct time, and
    prices as plain decimals (``str`` would write a tiny price as ``2E-7``).
    """
    values = rate.values
    old = rate.old
    stored = old.values if old else {}
    return (
        rate.line,
        rate.sheet,
        rate.prefix,
        rate.status,  # string enums: written as their values, without the slow ``.value`` lookup
        rate.action,
        rate.error,
        when(values.get("effective_from")),
        money(values.get("first_price")),
        money(values.get("next_price")),
        values.get("first_interval"),
        values.get("next_interval"),
        money(values.get("connect_fee")),
        when(old.effective_from) if old else None,
        money(stored.get("first_price")),
        money(stored.get("next_price")),
        stored.get("first_interval"),
        stored.get("next_interval"),
        values.get("country"),
        values.get("description"),
    )


def write_results_aside(paths: Sequence[Path], rates: Sequence[ReviewedRate]) -> Callable[[], None]:
    """Start writing the results files on the other core; the function returned waits for them.

    The rows are final once reviewed, and turning 200,000 of them into a file
    is Python work of about as long as storing them: a forked child writes
    them while this process loads the rates.  Where processes cannot fork,
    the files are written here and now.  Waiting raises if the child failed.
    """
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        for path in paths:
            write_results(path, rates)
        return lambda: None
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_write_in_child, args=(list(paths), rates, send), daemon=True)
    child.start()
    send.close()

    def wait() -> None:
        problem = receive.recv() if receive.poll(None) else "the results writer stopped without a word"
        child.join()
        receive.close()
        if problem is not None or child.exitcode != 0:
            raise RerateError(f"writing the results file failed: {problem or f'exit code {child.exitcode}'}")

    return wait


def _write_in_child(paths: list[Path], rates: Sequence[ReviewedRate], send: Any) -> None:
    try:
        for path in paths:
            write_results(path, rates)
    except BaseException:
        send.send(traceback.format_exc(limit=3))
    else:
        send.send(None)
    finally:
        send.close()
