from __future__ import annotations

import pyarrow as pa
import pytest

from rerate.domain.mediation import normalize_numbers


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+44 20 7946-0000", "442079460000"),
        ("0049301234", "49301234"),
        ("0044", "44"),
        ("+0044", "0044"),  # one leading + or one leading 00, not both
        ("44", "44"),
        ("1" * 20, "1" * 20),
        ("1" * 21, None),
        ("anonymous", None),
        ("+", None),
        ("", None),
        (None, None),
    ],
)
def test_default_number_normalization(raw: str | None, normalized: str | None) -> None:
    assert normalize_numbers(pa.array([raw], pa.string())).to_pylist() == [normalized]
