"""Who may do what: the roles of the service and the permissions each one holds.

The matrix is the product's contract with a carrier's teams (docs/service.md
prints it from :data:`MATRIX`): admin does everything; finance corrects,
including closed billing periods, closes periods, reads reports and runs CDR
deliveries; NOC ingests, re-processes, re-rates and rolls back within open
periods; support looks and previews (dry runs); read-only looks.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    NOC = "noc"
    SUPPORT = "support"
    READONLY = "readonly"


class Permission(StrEnum):
    VIEW = "view"  # every page and GET route: XDRs, jobs, reports, tariffs, audit
    DRY_RUN = "dry_run"  # previews of corrections, which write nothing to the ledger
    INGEST = "ingest"
    RERATE = "rerate"  # apply re-ratings in open periods
    REPROCESS = "reprocess"
    ROLLBACK = "rollback"  # collection rollbacks in open periods
    REVERT = "revert"  # undo an applied job, cancel a scheduled one
    CLOSED_PERIODS = "closed_periods"  # --allow-closed: corrections that touch closed periods
    CLOSE_PERIOD = "close_period"
    DELIVERIES = "deliveries"  # CDR delivery schedules, runs, resends
    TARIFFS = "tariffs"  # rate-deck imports and tariff settings
    USERS = "users"


_CORRECT = {Permission.RERATE, Permission.REPROCESS, Permission.ROLLBACK, Permission.REVERT}

MATRIX: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.FINANCE: frozenset(
        {
            Permission.VIEW,
            Permission.DRY_RUN,
            *_CORRECT,
            Permission.CLOSED_PERIODS,
            Permission.CLOSE_PERIOD,
            Permission.DELIVERIES,
        }
    ),
    Role.NOC: frozenset({Permission.VIEW, Permission.DRY_RUN, Permission.INGEST, *_CORRECT}),
    Role.SUPPORT: frozenset({Permission.VIEW, Permission.DRY_RUN}),
    Role.READONLY: frozenset({Permission.VIEW}),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in MATRIX[role]


def correction_permissions(kind: str, *, dry_run: bool, allow_closed: bool) -> list[Permission]:
    """What a correction of ``kind`` needs: a dry run needs only DRY_RUN, whatever it previews."""
    if dry_run:
        return [Permission.DRY_RUN]
    needed = [Permission(kind)]
    if allow_closed:
        needed.append(Permission.CLOSED_PERIODS)
    return needed


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}; roles: {', '.join(r.value for r in Role)}") from None
