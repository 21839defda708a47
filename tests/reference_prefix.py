"""The plain sweep that flattens nested spans: a reference for the vectorized index."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rerate.domain.prefix_index import _PAD, KEY_DIGITS, Int64Array


def prefix_span(prefix: str) -> tuple[int, int]:
    """Inclusive key range ``(lo, hi)`` covered by a digit prefix of 1 to 18 digits."""
    if not prefix.isdigit() or not 1 <= len(prefix) <= KEY_DIGITS:
        raise ValueError(f"prefix must be 1 to {KEY_DIGITS} digits: {prefix!r}")
    lo = 0
    for ch in prefix.ljust(KEY_DIGITS, "/"):
        lo = lo * 11 + (ord(ch) - _PAD)
    return lo, lo + 11 ** (KEY_DIGITS - len(prefix)) - 1


def flatten_spans(
    spans: Iterable[tuple[int, int, int]],
) -> tuple[Int64Array, Int64Array]:
    """Flatten nested ``(lo, hi, payload)`` spans into boundaries and winners.

    Spans must be laminar (nested or disjoint), which prefix spans always are.
    The result ``bounds`` starts at 0; ``winners[i]`` holds for keys from
    ``bounds[i]`` up to ``bounds[i + 1] - 1`` and is ``-1`` where nothing matches.
    """
    bounds: list[int] = [0]
    winners: list[int] = [-1]

    def emit(position: int, winner: int) -> None:
        if bounds[-1] == position:
            winners[-1] = winner
            if len(winners) > 1 and winners[-2] == winner:
                bounds.pop()
                winners.pop()
        elif winners[-1] != winner:
            bounds.append(position)
            winners.append(winner)

    stack: list[tuple[int, int]] = []
    for lo, hi, payload in sorted(spans, key=lambda s: (s[0], -s[1])):
        while stack and stack[-1][0] < lo:
            end, _ = stack.pop()
            emit(end + 1, stack[-1][1] if stack else -1)
        emit(lo, payload)
        stack.append((hi, payload))
    while stack:
        end, _ = stack.pop()
        emit(end + 1, stack[-1][1] if stack else -1)
    return np.asarray(bounds, dtype=np.int64), np.asarray(winners, dtype=np.int64)
