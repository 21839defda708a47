"""The role matrix: what each team may do."""

from __future__ import annotations

import pytest

from rerate.domain.roles import MATRIX, Permission, Role, allowed, correction_permissions, parse_role


def test_the_matrix_of_the_product() -> None:
    assert MATRIX[Role.ADMIN] == frozenset(Permission)
    assert MATRIX[Role.READONLY] == {Permission.VIEW}
    assert MATRIX[Role.SUPPORT] == {Permission.VIEW, Permission.DRY_RUN}
    for role in Role:  # everyone sees; only admin manages users and tariffs
        assert allowed(role, Permission.VIEW)
        assert allowed(role, Permission.USERS) == (role is Role.ADMIN)
        assert allowed(role, Permission.TARIFFS) == (role is Role.ADMIN)
    # Closed periods belong to finance; NOC corrects open periods and ingests.
    assert allowed(Role.FINANCE, Permission.CLOSED_PERIODS) and not allowed(
        Role.NOC, Permission.CLOSED_PERIODS
    )
    assert allowed(Role.FINANCE, Permission.CLOSE_PERIOD) and not allowed(Role.NOC, Permission.CLOSE_PERIOD)
    assert allowed(Role.NOC, Permission.INGEST) and not allowed(Role.FINANCE, Permission.INGEST)
    assert allowed(Role.FINANCE, Permission.DELIVERIES) and not allowed(Role.NOC, Permission.DELIVERIES)
    for role in (Role.FINANCE, Role.NOC):
        assert {Permission.RERATE, Permission.REPROCESS, Permission.ROLLBACK, Permission.REVERT} <= MATRIX[
            role
        ]


def test_what_a_correction_needs() -> None:
    assert correction_permissions("rerate", dry_run=True, allow_closed=True) == [Permission.DRY_RUN]
    assert correction_permissions("rollback", dry_run=False, allow_closed=False) == [Permission.ROLLBACK]
    assert correction_permissions("reprocess", dry_run=False, allow_closed=True) == [
        Permission.REPROCESS,
        Permission.CLOSED_PERIODS,
    ]


def test_roles_are_named_plainly() -> None:
    assert parse_role(" Finance ") is Role.FINANCE
    with pytest.raises(ValueError, match="roles: admin, finance, noc, support, readonly"):
        parse_role("boss")
