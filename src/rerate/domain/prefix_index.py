"""Longest-prefix lookup at a point in time, compiled to sorted arrays.

ARCHITECTURE.md ("Rating kernel"): a tariff's rate history is cut into epochs at
its distinct effective dates; in each epoch the prefixes in force are flattened
into disjoint ranges of an 18-digit key space, each carrying its winning rate.
A lookup is then one binary search (``numpy.searchsorted``) per XDR.

Numbers are encoded in base 11 so that a short number never falls inside a
longer prefix: digit ``k`` becomes ``k + 1`` and padding is ``0``.  The prefix
``p`` of length ``L`` covers exactly the keys ``[key(p), key(p) + 11**(18-L))``,
and prefixes nest like intervals, so the innermost interval is the longest
prefix.

>>> index = EpochIndex.build(["44", "447"], [10, 11])
>>> index.lookup(encode_numbers(["447700900123", "4420", "4"])).tolist()
[11, 10, -1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

KEY_DIGITS = 18
_POWERS = np.array([11 ** (KEY_DIGITS - 1 - i) for i in range(KEY_DIGITS)], dtype=np.int64)
_TAIL = np.zeros(KEY_DIGITS, dtype=np.uint8)
_PAD = ord("0") - 1  # "/" sorts just below "0"; after subtracting it, pad = 0, digit k = k + 1

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def encode_numbers(numbers: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> Int64Array:
    """Base-11 keys of digit strings (first 18 digits); ``-1`` for null or empty."""
    arr = numbers if isinstance(numbers, pa.Array | pa.ChunkedArray) else pa.array(numbers)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.string())
    n = len(arr)
    # Straight from the string buffers: digit i of every number in one gather (a pad byte past
    # the end of the data keeps the last gathers in bounds; digits past a number's length count 0).
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=arr.offset + n + 1)[arr.offset :]
    data = arr.buffers()[2]
    padded = np.concatenate(
        [np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8), _TAIL]
    )
    starts = offsets[:-1].astype(np.int64)
    lengths = np.minimum(np.diff(offsets), KEY_DIGITS)
    keys = np.zeros(n, dtype=np.int64)
    for i in range(KEY_DIGITS):
        digits = (padded[starts + i] - np.uint8(_PAD)).astype(np.int64)  # uint8 arithmetic, as ever
        keys += np.where(lengths > i, digits, 0) * _POWERS[i]
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    keys[~valid | (lengths == 0)] = -1
    return keys


_SPAN = np.array([11 ** (KEY_DIGITS - length) for length in range(KEY_DIGITS + 1)], dtype=np.int64)


def flatten_prefixes(
    keys: Int64Array, lengths: Int64Array, payloads: Int64Array
) -> tuple[Int64Array, Int64Array]:
    """Flatten nested prefix ranges into boundaries and the winner from each one on.

    Every boundary of the result is the start or the end + 1 of some prefix's
    span.  The winner at a boundary point is its longest covering prefix, found
    with one binary search per prefix length present (at most 18), instead of
    a sweep in Python.
    """
    if len(keys) == 0:
        return np.zeros(1, dtype=np.int64), np.full(1, -1, dtype=np.int64)
    span = _SPAN[lengths]
    points = np.unique(np.concatenate([[0], keys, keys + span]))
    winner = np.full(len(points), -1, dtype=np.int64)
    for length in sorted(set(lengths.tolist()), reverse=True):
        mine = lengths == length
        order = np.argsort(keys[mine])
        candidates = keys[mine][order]
        owners = payloads[mine][order]
        truncated = points - points % _SPAN[length]
        slot = np.minimum(np.searchsorted(candidates, truncated), len(candidates) - 1)
        hit = (candidates[slot] == truncated) & (winner < 0)
        winner[hit] = owners[slot[hit]]
    changes = np.concatenate([[True], winner[1:] != winner[:-1]])
    return points[changes], winner[changes]


def prefix_keys(prefixes: Sequence[str]) -> tuple[Int64Array, Int64Array]:
    """Keys and digit counts of digit prefixes (1 to 18 digits each)."""
    array = pa.array(prefixes, pa.string())
    lengths = np.asarray(pc.utf8_length(array).to_numpy(zero_copy_only=False), dtype=np.int64)
    valid = pc.all(pc.match_substring_regex(array, f"^[0-9]{{1,{KEY_DIGITS}}}$")).as_py()
    if len(prefixes) and not valid:
        bad = next(p for p in prefixes if not p.isdigit() or not 1 <= len(p) <= KEY_DIGITS)
        raise ValueError(f"prefix must be 1 to {KEY_DIGITS} digits: {bad!r}")
    return encode_numbers(array), lengths


@dataclass(frozen=True)
class EpochIndex:
    """Longest-prefix lookup for one fixed set of prefixes."""

    bounds: Int64Array
    winners: Int64Array

    @classmethod
    def build(cls, prefixes: Sequence[str], payloads: Sequence[int]) -> EpochIndex:
        keys, lengths = prefix_keys(prefixes)
        bounds, winners = flatten_prefixes(keys, lengths, np.asarray(payloads, dtype=np.int64))
        return cls(bounds, winners)

    def lookup(self, keys: Int64Array) -> Int64Array:
        """Payload of the longest prefix of each key; ``-1`` for none or key ``-1``."""
        slot = np.searchsorted(self.bounds, keys, side="right") - 1
        found = self.winners[np.maximum(slot, 0)]
        return np.where(keys < 0, -1, found)


@dataclass(frozen=True)
class TimedPrefixIndex:
    """Longest prefix in force at a time: one :class:`EpochIndex` per epoch.

    ``epoch_starts`` are the distinct effective dates (epoch seconds).  Before
    the first one nothing exists.
    """

    epoch_starts: Int64Array
    epochs: tuple[EpochIndex, ...]

    @classmethod
    def build(
        cls,
        prefixes: Sequence[str],
        effective_from: Sequence[int],
        discontinued: Sequence[bool],
        payloads: Sequence[int],
    ) -> TimedPrefixIndex:
        """Compile a rate history (shared/RATING.md 1.2 and 1.3).

        For each prefix the row in force is the one with the greatest
        ``effective_from <= t``; a discontinued row in force means the prefix
        does not exist at ``t``.
        """
        keys, lengths = prefix_keys(prefixes)
        starts_all = np.asarray(effective_from, dtype=np.int64)
        dropped = np.asarray(discontinued, dtype=bool)
        payload = np.asarray(payloads, dtype=np.int64)
        # Rows by prefix, then time: the row in force for a prefix at t is the
        # last of its group with effective_from <= t.
        order = np.lexsort((starts_all, keys))
        keys, lengths, starts_all, dropped, payload = (
            keys[order],
            lengths[order],
            starts_all[order],
            dropped[order],
            payload[order],
        )
        last_of_group = np.concatenate([keys[1:] != keys[:-1], [True]]) if len(keys) else np.zeros(0, bool)
        epochs: list[EpochIndex] = []
        starts = np.unique(starts_all)
        for start in starts.tolist():
            effective = starts_all <= start
            # Within each prefix group rows are time-ordered, so the row in force
            # is the last effective one: effective here and not effective next.
            following_effective = np.concatenate([effective[1:], [False]]) & ~last_of_group
            in_force = effective & ~following_effective & ~dropped
            bounds, winners = flatten_prefixes(keys[in_force], lengths[in_force], payload[in_force])
            epochs.append(EpochIndex(bounds, winners))
        return cls(starts.astype(np.int64), tuple(epochs))

    def lookup(self, when: Int64Array, keys: Int64Array) -> Int64Array:
        """Payload of the longest prefix of ``keys[i]`` in force at ``when[i]``.

        Callers that pass ``keys`` in ascending order get the fastest searches:
        XDRs are grouped by epoch with a stable sort, which keeps that order.
        """
        result = np.full(len(keys), -1, dtype=np.int64)
        if not self.epochs or len(keys) == 0:
            return result
        epoch = np.searchsorted(self.epoch_starts, when, side="right") - 1
        if len(self.epochs) == 1:
            live = epoch >= 0
            result[live] = (
                self.epochs[0].lookup(keys[live]) if not live.all() else self.epochs[0].lookup(keys)
            )
            return result
        small = epoch.astype(np.int16 if len(self.epochs) < 32_000 else np.int32)
        order = np.argsort(small, kind="stable")  # radix sort for int16
        counts = np.bincount(epoch + 1, minlength=len(self.epochs) + 1)
        grouped_keys = keys[order]
        found = np.full(len(keys), -1, dtype=np.int64)
        position = int(counts[0])  # epoch -1: before the first effective date
        for e, count in enumerate(counts[1:].tolist()):
            if count:
                span = slice(position, position + count)
                found[span] = self.epochs[e].lookup(grouped_keys[span])
                position += count
        result[order] = found
        return result
