"""Tariffs (rate history at a date, rate-deck imports) and the parties of the catalog."""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile

from rerate.bootstrap import App
from rerate.domain.deck_review import Mode, PastPolicy
from rerate.domain.roles import Permission
from rerate.entrypoints.api.routes_ledger import save_upload
from rerate.entrypoints.api.security import Viewer, require
from rerate.services import listings, rate_import, tariff_admin
from rerate.services.errors import InvalidInputError
from rerate.services.jsonable import plain
from rerate.services.timeparse import parse_utc

router = APIRouter(prefix="/api/tariffs", tags=["tariffs"])
parties_router = APIRouter(prefix="/api/parties", tags=["parties"])
#: Every router of this module, one per resource.
ROUTERS = (router, parties_router)


@router.get("")
def tariffs(app: Viewer) -> list[dict[str, Any]]:
    return listings.tariffs(app)


@router.get("/{name:path}")  # a name may hold "/"
def show_tariff(app: Viewer, name: str, at: str | None = None) -> dict[str, Any]:
    """The tariff's rates in force at ``at`` (default now)."""
    moment: datetime | None = parse_utc(at, field="at") if at else None
    return dict(plain(tariff_admin.show_tariff(app, name, at=moment)))


def pairs(lines: str, name: str) -> dict[str, str]:
    """``KEY=VALUE`` entries, one per line or comma separated."""
    found: dict[str, str] = {}
    for entry in lines.replace(",", "\n").splitlines():
        if entry.strip():
            key, sep, value = entry.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise InvalidInputError(f"{name}: give KEY=VALUE, got {entry.strip()!r}")
            found[key.strip()] = value.strip()
    return found


@router.post("/{name:path}/import")
def import_deck(
    name: str,
    file: UploadFile,
    app: Annotated[App, Depends(require(Permission.TARIFFS))],
    preview: Annotated[bool, Form()] = True,
    mode: Annotated[str, Form()] = "add",
    past: Annotated[str, Form()] = "skip",
    template: Annotated[str | None, Form()] = None,
    currency: Annotated[str | None, Form()] = None,
    mapping: Annotated[str, Form()] = "",
    countries: Annotated[str, Form()] = "",
    groups: Annotated[str, Form()] = "",
    skip_duplicates: Annotated[bool, Form()] = True,
) -> dict[str, Any]:
    """The rate-deck wizard: upload, parse, map, review (``preview``), then load; the review's rows."""
    try:
        mode_, past_ = Mode(mode), PastPolicy(past)
    except ValueError as exc:
        raise InvalidInputError(f"mode is add or replace, past is skip, now or backdate ({exc})") from None
    path = save_upload(app, file)
    try:
        request = rate_import.DeckImportRequest(
            tariff=name,
            path=path,
            mode=mode_,
            past=past_,
            skip_duplicates=skip_duplicates,
            preview=preview,
            template=template or None,
            mapping=pairs(mapping, "mapping"),
            countries=pairs(countries, "countries"),
            groups=pairs(groups, "groups"),
            currency=currency or None,
        )
        report = rate_import.import_deck(app, request)
    finally:  # the deck is kept by the import itself (its results file); the upload is not needed
        shutil.rmtree(path.parent, ignore_errors=True)
    return dict(plain(report.as_dict()))


@parties_router.get("")
def parties(app: Viewer) -> dict[str, list[dict[str, Any]]]:
    """Customers, accounts (with their customer now) and vendors (with their connections)."""
    return listings.parties(app)
