"""CLI of ingest: XDR files, folders and globs, read by import templates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rerate.bootstrap import App
from rerate.entrypoints.console import DataTable, RichIngestProgress, err, out, print_json, print_listing
from rerate.entrypoints.options import JsonOption
from rerate.services import xdr_templates
from rerate.services.ingest import check_template_name, expand_sources
from rerate.services.ingest import ingest as ingest_service

template_cli = typer.Typer(
    help="XDR import templates: switch and mediator file layouts.", no_args_is_help=True
)

_COLUMNS = (
    "file",
    "collection",
    "state",
    "read",
    "loaded",
    "duplicates",
    "rejected",
    "skipped",
    "failed",
    "seconds",
)


def register(cli: typer.Typer, app: Callable[[], App]) -> None:
    cli.add_typer(template_cli, name="template")

    @cli.command()
    def ingest(
        sources: Annotated[
            list[str],
            typer.Argument(
                help="XDR files, folders (their files in name order) or globs; .gz/.xz/.zip read as they are."
            ),
        ],
        template: Annotated[
            str | None,
            typer.Option(help="Layout of the files: a built-in or saved template \\[default: canonical]."),
        ] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Load XDR files, one collection each: validate, de-duplicate, mediate, rate.

        Files already loaded (same checksum) are skipped, so a mediator's drop folder can be
        ingested again and again on a schedule.
        """
        check_template_name(template)  # refused even where nothing is to load
        found = {source: expand_sources([source]) for source in sources}  # each folder listed once
        paths = [path for source in sources for path in found[source]]
        if not paths:  # a quiet drop folder: nothing to do, and nothing wrong
            if as_json:
                print_json([])
            else:
                err.print(f"nothing to load: no file in {', '.join(escape(s) for s in sources)}")
            return
        quiet = [source for source in sources if not found[source]]
        if quiet:  # said beside the others' results (on stderr: --json's output stays one document)
            err.print(f"nothing to load from {', '.join(escape(s) for s in quiet)}: no file there")
        with RichIngestProgress(enabled=not as_json and err.is_terminal) as progress:
            reports = ingest_service(app(), paths, progress, template=template)
        if as_json:
            print_json([r.as_dict() for r in reports])
        else:
            table = DataTable(
                title=f"Ingest ({reports[0].template if reports else template or 'canonical'} layout)"
            )
            for column in _COLUMNS:
                table.add_column(column, justify="right" if column not in ("file", "state") else "left")
            for r in reports:
                table.add_row(
                    Path(r.file).name,
                    str(r.collection_id or r.duplicate_of or ""),  # already loaded: as which collection
                    r.state,
                    *(f"{n:,}" for n in (r.read, r.loaded, r.duplicates, r.rejected, r.skipped, r.failed)),
                    f"{r.seconds:.1f}",
                )
            out.print(table)
            for r in reports:
                if r.error:
                    name = Path(r.file).name
                    # Most reasons name the file already ("x.csv is not UTF-8 text"): once is enough.
                    said = r.error if r.error.startswith(name) else f"{name}: {r.error}"
                    err.print(f"[yellow]{escape(said)}[/]")
                if r.rejected or r.duplicates:
                    out.print(f"  rejects and duplicates of {Path(r.file).name}: {r.rejects_path}")
        if any(r.state == "error" for r in reports):
            raise typer.Exit(1)

    @template_cli.command("list")
    def template_list(as_json: JsonOption = False) -> None:
        """Built-in and saved XDR templates."""
        rows = xdr_templates.list_templates(app())
        print_listing(
            rows, title="XDR import templates", columns=("name", "kind", "description"), as_json=as_json
        )

    @template_cli.command("show")
    def template_show(name: str, as_json: JsonOption = False) -> None:
        """A template as the TOML file 'template add' reads (copy a built-in, edit it, save it)."""
        if as_json:
            print_json(xdr_templates.show_template(app(), name))
        else:
            print(xdr_templates.template_toml(app(), name), end="")

    @template_cli.command("add")
    def template_add(
        name: str,
        file: Annotated[Path, typer.Argument(help="The template as TOML (see docs/xdr-templates.md).")],
    ) -> None:
        """Save a template under NAME (replacing a saved one of that name)."""
        template = xdr_templates.add_template(app(), name, file)
        fields = ", ".join(template.fields)
        out.print(f"[green]template {escape(template.name)} saved[/]: fields {escape(str(fields))}")
