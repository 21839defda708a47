"""Rendering helpers shared by CLI commands: JSON, tables, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.errors import MarkupError
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from rerate.services.jsonable import plain


class SafeConsole(Console):
    """A console whose messages never crash on a name that reads as broken markup (``[/]``).

    Messages mark up their own words and interpolate names, which are escaped where printed;
    should one slip through, the message is printed as plain text rather than a traceback.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        try:
            super().print(*objects, **kwargs)
        except MarkupError:
            super().print(*objects, **{**kwargs, "markup": False})

    def rule(self, title: Any = "", **kwargs: Any) -> None:
        try:
            super().rule(title, **kwargs)
        except MarkupError:
            super().rule(Text(str(title)), **kwargs)


# Tables stay readable when output goes to a file or a CI log (Rich assumes 80 columns there).
out = SafeConsole(width=None if sys.stdout.isatty() else 160)
err = SafeConsole(stderr=True, width=None if sys.stderr.isatty() else 160)


class DataTable(Table):
    """A table whose text cells are shown as they are: names such as ``[bold]`` or ``[/]`` are a
    carrier's data, not Rich markup (which would mangle them, or crash the command)."""

    def __init__(self, *headers: Any, title: Any = None, caption: Any = None, **kwargs: Any) -> None:
        super().__init__(
            *headers,
            title=Text(title) if isinstance(title, str) else title,
            caption=Text(caption) if isinstance(caption, str) else caption,
            **kwargs,
        )

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **kwargs)


def print_json(value: Any) -> None:
    print(json.dumps(plain(value), indent=2, sort_keys=False))


def print_listing(
    rows: Sequence[Mapping[str, Any]], *, title: str, columns: Sequence[str], as_json: bool
) -> None:
    """``rows`` as JSON (every field), or as a table of ``columns`` (header: the column names)."""
    if as_json:
        print_json(list(rows))
        return
    table = DataTable(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


class RichIngestProgress:
    """Ingest progress as a Rich bar on stderr (stdout stays clean for --json)."""

    def __init__(self, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[rows]:>12,} rows"),
            TimeElapsedColumn(),
            console=err,
            disable=not enabled,
        )
        self.task: Any = None
        self.rows = 0

    def __enter__(self) -> RichIngestProgress:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def file_started(self, name: str, total_bytes: int) -> None:
        self.rows = 0
        self.task = self.progress.add_task(name, total=total_bytes, rows=0)

    def advanced(self, bytes_read: int, rows: int) -> None:
        self.rows += rows
        self.progress.update(self.task, completed=bytes_read, rows=self.rows)

    def stage(self, text: str) -> None:
        if self.task is not None:
            name = self.progress.tasks[-1].description.split(" · ")[0]
            self.progress.update(self.task, description=f"{name} · {text}")


class RichJobProgress:
    """A correction job's progress (call dates of its scope) as a Rich bar on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} days"),
            TextColumn("{task.fields[xdrs]:>12,} XDRs"),
            TimeElapsedColumn(),
            console=err,
            disable=not enabled,
        )
        self.task: Any = None
        self.xdrs = 0

    def __enter__(self) -> RichJobProgress:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def started(self, description: str, days: int) -> None:
        self.xdrs = 0
        self.task = self.progress.add_task(description, total=days, xdrs=0)

    def advanced(self, day: str, xdrs: int) -> None:
        self.xdrs += xdrs
        self.progress.update(self.task, advance=1, xdrs=self.xdrs)
