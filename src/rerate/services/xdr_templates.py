"""XDR import templates: the built-in layouts, and the ones operators save under a name."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import tomli_w
from sqlalchemy import select
from sqlalchemy.orm import Session

from rerate.bootstrap import App
from rerate.catalog.models import ImportTemplate
from rerate.domain.xdr_templates import TemplateError, XdrTemplate, check_new_template, parse_template
from rerate.services import audit
from rerate.services.errors import InvalidInputError, NotFoundError
from rerate.services.xdr_projection import LINE, TemplateQuery

TEMPLATE_KIND = "xdr"


@cache
def builtin_templates() -> dict[str, XdrTemplate]:
    """The layouts rerate ships (``src/rerate/templates/*.toml``), by name."""
    found: dict[str, XdrTemplate] = {}
    for entry in sorted(resources.files("rerate.templates").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            template = parse_template(tomllib.loads(entry.read_text(encoding="utf-8")))
            found[template.name] = template
    return found


def find_template(session: Session, name: str) -> XdrTemplate:
    """A built-in or saved template; :class:`NotFoundError` lists the known ones."""
    builtin = builtin_templates().get(name)
    if builtin is not None:
        return builtin
    saved = session.scalar(
        select(ImportTemplate).where(ImportTemplate.kind == TEMPLATE_KIND, ImportTemplate.name == name)
    )
    if saved is None:
        known = [*builtin_templates(), *_saved_names(session)]
        raise NotFoundError(f"no XDR template {name!r}; templates: {', '.join(known)}")
    try:
        return parse_template(saved.settings, name=name)
    except TemplateError as exc:  # saved by an older rerate that checked less: say how to mend it
        raise InvalidInputError(
            f"the saved template {name!r} cannot be read ({exc}); save it again with "
            f"'rerate template add {name} FILE'"
        ) from exc


def _saved_names(session: Session) -> list[str]:
    query = (
        select(ImportTemplate.name).where(ImportTemplate.kind == TEMPLATE_KIND).order_by(ImportTemplate.name)
    )
    return list(session.scalars(query))


def read_template_file(path: Path, name: str) -> XdrTemplate:
    """A template from a TOML file, checked down to the queries it makes."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInputError(f"file not found: {path}") from exc
    except OSError as exc:  # a folder, no permission
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path.name} is not a TOML file: {exc}") from exc
    try:
        template = parse_template(data, name=name)
        check_new_template(data)
        _try_query(template)
    except TemplateError as exc:
        raise InvalidInputError(f"{path.name}: {exc}") from exc
    return template


def _try_query(template: XdrTemplate) -> None:
    """Run the template's query on one empty row, so a pattern DuckDB cannot use is caught when saved."""
    columns = list(template.columns) or sorted(template.columns_read())
    query = TemplateQuery(template, columns)
    empty = pa.table({**{c: pa.array([""], pa.string()) for c in columns}, LINE: pa.array([1], pa.int64())})
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        query.project(con, empty)
    except duckdb.Error as exc:
        raise TemplateError(f"the template's query fails: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()


def add_template(app: App, name: str, path: Path) -> XdrTemplate:
    """Save (or replace) the template ``name`` from a TOML file; built-in names are taken."""
    name = name.strip()
    if not name:
        raise InvalidInputError("a template needs a name: rerate template add NAME FILE")
    if name in builtin_templates():
        raise InvalidInputError(f"{name!r} is a built-in template; save yours under another name")
    template = read_template_file(path, name)
    with app.catalog.transaction() as session:
        # Two names that differ only in case would be told apart by nobody reading a job's log.
        saved_names = list(
            session.scalars(select(ImportTemplate.name).where(ImportTemplate.kind == TEMPLATE_KIND))
        )
        # Replacing a template keeps its name, whatever twins an older rerate let in beside it.
        twins = [] if name in saved_names else [*builtin_templates(), *saved_names]
        for known in twins:
            if known.casefold() == name.casefold():
                raise InvalidInputError(
                    f"{name!r} differs from the template {known!r} only in case: use that name, or another"
                )
        saved = session.scalar(
            select(ImportTemplate).where(ImportTemplate.kind == TEMPLATE_KIND, ImportTemplate.name == name)
        )
        before = saved.settings if saved else None
        if saved is None:
            saved = ImportTemplate(kind=TEMPLATE_KIND, name=name, created_by=app.actor)
            session.add(saved)
        saved.settings = template.as_dict()
        saved.updated_at = datetime.now(UTC)
        audit.record(
            session, app.actor, "template.save", f"XDR template {name}", before=before, after=saved.settings
        )
    return template


def list_templates(app: App) -> list[dict[str, Any]]:
    rows = [
        {"name": t.name, "kind": "built-in", "description": t.description}
        for t in builtin_templates().values()
    ]
    with app.catalog.reading() as session:
        for saved in session.scalars(
            select(ImportTemplate).where(ImportTemplate.kind == TEMPLATE_KIND).order_by(ImportTemplate.name)
        ):
            rows.append(
                {
                    "name": saved.name,
                    "kind": f"saved by {saved.created_by}",
                    "description": str(saved.settings.get("description", "")),
                }
            )
    return rows


def show_template(app: App, name: str) -> dict[str, Any]:
    with app.catalog.reading() as session:
        return find_template(session, name).as_dict()


def template_toml(app: App, name: str) -> str:
    """The template as a TOML file that ``rerate template add`` reads back: a built-in, copied and
    edited (a time zone, a trunk pattern), becomes the carrier's own."""
    return tomli_w.dumps(_without_nulls(show_template(app, name)))


def _without_nulls(value: Any) -> Any:
    """TOML has no null: a setting left unset is left out, as a hand-written file leaves it."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
