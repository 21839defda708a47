"""Request bodies of the API and the job as the API shows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rerate.bootstrap import App
from rerate.catalog.models import Job
from rerate.services.jsonable import plain
from rerate.services.visibility import UNFINISHED


def _listed(value: Any) -> Any:
    """A scope field may be one value or a list of them."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class ScopeBody(BaseModel):
    """The scope options of the CLI (``--customer`` ... ``--from``/``--to``), several values each."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    LIST_FIELDS: ClassVar[tuple[str, ...]] = (
        "customer",
        "account",
        "vendor",
        "prefix",
        "country",
        "destination_group",
        "collection",
        "status",
    )

    customer: list[str] = []
    account: list[str] = []
    vendor: list[str] = []
    prefix: list[str] = []
    country: list[str] = []
    destination_group: list[str] = []
    collection: list[int] = []
    status: list[str] = []
    start: str | None = Field(default=None, alias="from")
    end: str | None = Field(default=None, alias="to")

    @field_validator(*LIST_FIELDS, mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return _listed(value)


class RerateBody(ScopeBody):
    tariff: str | None = None
    ghost_percent: str = "0"
    side: str = "both"
    dry_run: bool = False
    allow_closed: bool = False
    #: ISO time to apply it later (not with a dry run).
    at: str | None = None


class ReprocessBody(ScopeBody):
    failed: bool = True
    dry_run: bool = False
    allow_closed: bool = False
    at: str | None = None


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False
    allow_closed: bool = False


class PeriodCloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str
    period: str


class UserBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    role: str
    password: str | None = None


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str
    email: list[str]
    cc: list[str] = []
    cadence: str
    weekday: str | None = None
    at: str = "06:00"
    timezone: str | None = None
    format: str = "csv"
    columns: str | None = None
    compress: str | None = None
    max_attachment_mb: int | None = None
    include_failed: bool = False


def job_view(app: App, job: Job) -> dict[str, Any]:
    """A job for API clients: its row, progress, and (once finished) the full report."""
    view: dict[str, Any] = {
        "job_id": job.id,
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "finished": job.state not in UNFINISHED,
        "dry_run": job.dry_run,
        "description": job.description,
        "scope": job.scope,
        "parameters": job.parameters,
        "actor": job.actor,
        "created_at": job.created_at,
        "scheduled_for": job.scheduled_for,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "in_scope": job.in_scope,
        "changed": job.changed,
        # Without the per-period changes kept for a revert: thousands of rows, in every listing.
        "totals": {k: v for k, v in (job.totals or {}).items() if k != "periods"},
        "error": job.error,
        "progress": {
            "days_done": job.days_done,
            "days_total": job.days_total,
            "xdrs_read": job.xdrs_read,
            # what days_done counts: a correction's call dates, an ingest's megabytes of the file
            "unit": "MB" if job.kind == "ingest" else "call dates",
        },
        "reverts_job_id": job.reverts_job_id,
        "reverted_by_job_id": job.reverted_by_job_id,
        # None once pruned (``rerate jobs prune-diffs``): no link to a file that is gone.
        "diff_url": f"/api/jobs/{job.id}/diff" if job.diff_path and Path(job.diff_path).is_file() else None,
    }
    report = app.home / "jobs" / str(job.id) / "report.json"
    if report.is_file():
        view["report"] = json.loads(report.read_text())
    return dict(plain(view))
