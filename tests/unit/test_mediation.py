from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rerate.domain.mediation import normalize_numbers
from tests.reference_rater import normalize


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


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet="0123456789 -+a٣", max_size=24),
            st.from_regex(r"(\+|00)?[0-9]{1,22}", fullmatch=True),
        ),
        max_size=40,
    )
)
def test_a_batch_is_normalized_as_each_number_alone(numbers: list[str | None]) -> None:
    # Clean and dirty numbers mixed in one batch: the bulk path rewrites only the dirty ones.
    assert normalize_numbers(pa.array(numbers, pa.string())).to_pylist() == [normalize(n) for n in numbers]
