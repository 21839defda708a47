"""How a correction's scope and ghost percent read back to the operator."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from rerate.domain.scopes import Scope
from rerate.services.corrections import parse_ghost_percent
from rerate.services.errors import InvalidInputError

OCT_1, OCT_2 = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
ACME_LABELS = {"customers": ("Acme",)}


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        (Scope(end=OCT_2), "XDRs connected before 2026-10-02 00:00 UTC"),
        (Scope(start=OCT_1), "XDRs connected from 2026-10-01 00:00 UTC on"),
        (Scope(start=OCT_1, end=OCT_2), "XDRs connected from 2026-10-01 00:00 to 2026-10-02 00:00 UTC"),
        (Scope(customers=(1,), labels=ACME_LABELS), "XDRs of customer Acme"),
        (
            Scope(customers=(1,), labels=ACME_LABELS, statuses=("failed",), end=OCT_2),
            "XDRs of customer Acme; status failed, connected before 2026-10-02 00:00 UTC",
        ),
    ],
)
def test_a_scope_reads_as_a_sentence(scope: Scope, words: str) -> None:
    assert scope.describe() == words


@pytest.mark.parametrize(("typed", "value"), [("2.5", "2.5"), ("1e2", "100"), (" 7 ", "7"), ("0", "0")])
def test_a_ghost_percent_is_kept_as_a_plain_decimal(typed: str, value: str) -> None:
    parsed = parse_ghost_percent(typed)
    assert parsed == Decimal(value) and str(parsed) == value


@pytest.mark.parametrize("typed", ["abc", "", "nan", "inf", "1e9"])
def test_a_ghost_percent_that_is_no_number_names_the_option(typed: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^--ghost-percent must be a decimal number"):
        parse_ghost_percent(typed)
