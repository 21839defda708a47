from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerate.domain.prefix_index import EpochIndex, TimedPrefixIndex, encode_numbers
from tests.reference_prefix import flatten_spans, prefix_span


def brute_longest(prefixes: list[str], number: str) -> int:
    matches = [i for i, p in enumerate(prefixes) if number.startswith(p)]
    return max(matches, key=lambda i: len(prefixes[i])) if matches else -1


def test_short_number_does_not_match_longer_prefix() -> None:
    index = EpochIndex.build(["440", "4"], [0, 1])
    assert index.lookup(encode_numbers(["44", "440", "4401"])).tolist() == [1, 0, 0]


def test_invalid_number_key_matches_nothing() -> None:
    index = EpochIndex.build(["1"], [0])
    assert index.lookup(encode_numbers([None, ""])).tolist() == [-1, -1]


def test_prefix_longer_than_key_space_is_refused() -> None:
    with pytest.raises(ValueError, match="1 to 18 digits"):
        EpochIndex.build(["1" * 19], [0])


@settings(max_examples=200, deadline=None)
@given(
    prefixes=st.lists(st.text("0123", min_size=1, max_size=6), min_size=1, max_size=25, unique=True),
    numbers=st.lists(st.text("0123", min_size=0, max_size=8), min_size=1, max_size=40),
)
def test_epoch_index_is_longest_prefix(prefixes: list[str], numbers: list[str]) -> None:
    index = EpochIndex.build(prefixes, list(range(len(prefixes))))
    found = index.lookup(encode_numbers(numbers)).tolist()
    assert found == [brute_longest(prefixes, n) if n else -1 for n in numbers]


@settings(max_examples=100, deadline=None)
@given(prefixes=st.lists(st.text("0129", min_size=1, max_size=5), min_size=1, max_size=30, unique=True))
def test_vectorized_flatten_equals_sweep(prefixes: list[str]) -> None:
    payloads = list(range(len(prefixes)))
    bounds, winners = flatten_spans([(*prefix_span(p), v) for p, v in zip(prefixes, payloads, strict=True)])
    index = EpochIndex.build(prefixes, payloads)
    assert bounds.tolist() == index.bounds.tolist()
    assert winners.tolist() == index.winners.tolist()


def test_timed_index_follows_history_and_discontinuation() -> None:
    index = TimedPrefixIndex.build(
        prefixes=["44", "447", "447"],
        effective_from=[100, 100, 200],
        discontinued=[False, False, True],
        payloads=[1, 2, 3],
    )
    keys = encode_numbers(["4470", "4470", "4470"])
    assert index.lookup(np.array([99, 150, 250]), keys).tolist() == [-1, 2, 1]
