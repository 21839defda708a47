"""CLI of mediation: the rule list, and a row-by-row trace of a file from raw fields to rated XDR."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rerate.bootstrap import App
from rerate.entrypoints.console import out, print_json, print_listing
from rerate.entrypoints.options import JsonOption
from rerate.services import mediation_rules, mediation_trace
from rerate.services.timeparse import parse_utc

mediation_cli = typer.Typer(
    help="Mediation: rules that rewrite numbers and identifiers, and a trace.", no_args_is_help=True
)
rule_cli = typer.Typer(help="The ordered, scoped, effective-dated mediation rules.", no_args_is_help=True)
mediation_cli.add_typer(rule_cli, name="rule")


class RuleKind(StrEnum):
    number = "number"
    account = "account"
    vendor = "vendor"
    service = "service"
    rating_key = "rating-key"


def register(cli: typer.Typer, app: Callable[[], App]) -> None:
    cli.add_typer(mediation_cli, name="mediation")

    @rule_cli.command("add")
    def rule_add(
        kind: Annotated[
            RuleKind,
            typer.Argument(
                help="number (prefix rewrite), account or vendor (alias), service (classify by number), "
                "rating-key (a key from the service, e.g. '{service}:inbound')."
            ),
        ],
        match: Annotated[str, typer.Option(help="Number prefix, or the identifier as it appears in XDRs.")],
        replace: Annotated[
            str, typer.Option(help="New prefix ('' removes it), or the identifier to read.")
        ] = "",
        account: Annotated[str | None, typer.Option(help="Only XDRs of this account identifier.")] = None,
        vendor: Annotated[str | None, typer.Option(help="Only XDRs of this vendor connection.")] = None,
        valid_from: Annotated[str | None, typer.Option("--from", help="In force from (ISO, UTC).")] = None,
        valid_to: Annotated[
            str | None, typer.Option("--to", help="In force until (ISO, UTC, excluded).")
        ] = None,
        min_length: Annotated[int | None, typer.Option(help="Number rules: only numbers this long.")] = None,
        position: Annotated[int | None, typer.Option(help="Place in the list \\[default: last].")] = None,
        description: Annotated[str | None, typer.Option(help="Why the rule exists.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Add a rule.  For each XDR the first matching rule of a kind applies; re-process to apply it
        to XDRs already loaded."""
        rule = mediation_rules.add_rule(
            app(),
            kind.value.replace("-", "_"),
            match,
            replace,
            account=account,
            vendor=vendor,
            valid_from=parse_utc(valid_from, field="--from") if valid_from else None,
            valid_to=parse_utc(valid_to, field="--to") if valid_to else None,
            min_length=min_length,
            position=position,
            description=description,
        )
        if as_json:
            print_json({"id": rule.id, "position": rule.position, "in_words": rule.describe()})
        else:
            out.print(f"[green]rule {rule.id}[/] (position {rule.position}): {escape(rule.describe())}")

    @rule_cli.command("list")
    def rule_list(as_json: JsonOption = False) -> None:
        """The rules in the order they are tried."""
        print_listing(
            mediation_rules.list_rules(app()),
            title="Mediation rules (first match per kind applies)",
            columns=("id", "position", "kind", "in_words", "description"),
            as_json=as_json,
        )

    @rule_cli.command("remove")
    def rule_remove(
        rule_id: Annotated[int, typer.Argument(help="The rule's id (rerate mediation rule list).")],
        ending: Annotated[
            str | None,
            typer.Option("--from", help="Keep it for earlier XDRs and end it at this time instead."),
        ] = None,
    ) -> None:
        """Remove a rule (a mistake), or end it from a time (history stays explainable)."""
        done = mediation_rules.remove_rule(
            app(), rule_id, ending=parse_utc(ending, field="--from") if ending else None
        )
        out.print(f"[green]{done}[/]")

    @mediation_cli.command("test")
    def mediation_test(
        file: Annotated[Path, typer.Argument(help="An XDR file, as it would be ingested.")],
        template: Annotated[str, typer.Option(help="Its layout (rerate template list).")] = "canonical",
        limit: Annotated[int, typer.Option(min=1, max=10**6, help="How many rows to follow.")] = 20,
        as_json: JsonOption = False,
    ) -> None:
        """Follow the first rows of FILE: raw fields -> canonical -> mediated -> rated.  Writes nothing."""
        rows = mediation_trace.trace(app(), file, template, limit)
        if as_json:
            print_json(rows)
            return
        for row in rows:
            out.rule(f"line {row['line']}: {row['outcome']}")
            for part in ("raw", "canonical", "mediated", "rated"):
                if part in row:
                    fields = ", ".join(f"{k}={v}" for k, v in row[part].items() if v not in (None, ""))
                    out.print(f"  [bold]{part:>9}[/]: {fields}", highlight=False)
        if not rows:
            out.print("the file has no rows")
