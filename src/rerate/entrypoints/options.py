"""Command-line options shared by many commands, declared once so they read and behave alike."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show what would change, change nothing.")]
AllowClosedOption = Annotated[
    bool, typer.Option("--allow-closed", help="Also change closed periods (adjustment lines).")
]
AtOption = Annotated[str | None, typer.Option("--at", help="Apply later, at this ISO UTC time.")]
